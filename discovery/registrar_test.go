package discovery_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/protocols/pb"
)

func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// TestRegistrar runs the registrar's service on one plain libp2p host and its
// client on another.
func TestRegistrar(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	server, client := newHost(t), newHost(t)
	if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
		t.Fatal(err)
	}
	reg := discovery.NewRegistrar(discovery.NewDirectory(newDatastore(), f.verifier(false), quiet), true, quiet)
	registered := make(chan *discovery.Record, 8)
	reg.OnRegister = func(r *discovery.Record) { registered <- r }
	reg.Attach(server)
	p := server.ID()

	// nextRegistered returns what OnRegister got during the Register call
	// that just returned: the handler calls it before it answers.
	nextRegistered := func() *discovery.Record {
		select {
		case r := <-registered:
			return r
		default:
			return nil
		}
	}

	x := f.sealed(t, f.bankX, nil)
	if err := discovery.Register(ctx, client, p, x); err != nil {
		t.Fatal(err)
	}
	if r := nextRegistered(); r == nil || !bytes.Equal(r.Sealed, x) {
		t.Error("OnRegister was not called with the registered record")
	}
	if err := discovery.Register(ctx, client, p, x); err != nil {
		t.Fatalf("registering the same advertisement again: %v", err)
	}
	if r := nextRegistered(); r != nil {
		t.Error("OnRegister was called for an advertisement already held")
	}
	x2 := f.sealed(t, f.bankX2, func(a *discovery.Advertisement) { a.Services = []string{"payments"} })
	y := f.sealed(t, f.bankY, nil)
	for _, s := range [][]byte{x2, y} {
		if err := discovery.Register(ctx, client, p, s); err != nil {
			t.Fatal(err)
		}
		nextRegistered()
	}

	refused := []struct {
		name   string
		sealed []byte
		want   error
		parts  []string
	}{
		{"forged", f.sealed(t, f.bankX, func(a *discovery.Advertisement) { a.Seq = 2; a.Org = "bank-y" }), discovery.ErrRefused, []string{"does not match its signer's certificate", `"bank-y"`}},
		{"stale", f.sealed(t, f.bankX, func(a *discovery.Advertisement) { a.Version = "other" }), discovery.ErrRefused, []string{"stale advertisement", "sequence 1, 1 is held"}},
		{"wrong network", f.sealed(t, f.bankX, func(a *discovery.Advertisement) { a.Seq = 2; a.Network = "elsewhere" }), discovery.ErrRefused, []string{"another network", `"elsewhere"`}},
		{"garbage", []byte("garbage"), discovery.ErrRefused, []string{"malformed advertisement"}},
	}
	for _, tc := range refused {
		t.Run("refused "+tc.name, func(t *testing.T) {
			err := discovery.Register(ctx, client, p, tc.sealed)
			wantErr(t, err, tc.want, append(tc.parts, p.String())...)
			if r := nextRegistered(); r != nil {
				t.Error("OnRegister was called for a refused advertisement")
			}
		})
	}
	t.Run("oversized", func(t *testing.T) {
		// Larger than a discovery request may be: the registrar resets the
		// stream instead of answering.
		err := discovery.Register(ctx, client, p, make([]byte, protocols.MaxDiscoveryRequestSize))
		if err == nil {
			t.Fatal("an oversized request was answered")
		}
	})

	t.Run("Lookup", func(t *testing.T) {
		got, err := discovery.Lookup(ctx, client, p, "bank-y")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !bytes.Equal(got[0], y) {
			t.Errorf("Lookup(bank-y) = %d advertisements, want bank-y's", len(got))
		}
		if got, err := discovery.Lookup(ctx, client, p, "bank-x"); err != nil || len(got) != 2 {
			t.Errorf("Lookup(bank-x) = %d advertisements, %v; want its two nodes'", len(got), err)
		}
		if got, err := discovery.Lookup(ctx, client, p, "bank-z"); err != nil || len(got) != 0 {
			t.Errorf("Lookup(bank-z) = %d advertisements, %v; want none", len(got), err)
		}
	})
	t.Run("List", func(t *testing.T) {
		got, err := discovery.List(ctx, client, p, discovery.Filter{Service: "payments"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !bytes.Equal(got[0], x2) {
			t.Errorf("List(payments) = %d advertisements, want bank-x's second node's", len(got))
		}
		if got, err := discovery.List(ctx, client, p, discovery.Filter{}); err != nil || len(got) != 3 {
			t.Errorf("List() = %d advertisements, %v; want 3", len(got), err)
		}
		if got, err := discovery.List(ctx, client, p, discovery.Filter{Ledger: "none"}); err != nil || len(got) != 0 {
			t.Errorf("List(ledger none) = %d advertisements, %v; want none", len(got), err)
		}
	})
	t.Run("unknown request", func(t *testing.T) {
		s, err := client.NewStream(ctx, p, protocols.Discovery)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := protocols.WriteMsg(s, &pb.DiscoveryRequest{}); err != nil {
			t.Fatal(err)
		}
		_ = s.CloseWrite()
		var resp pb.DiscoveryResponse
		if err := protocols.ReadMsg(s, &resp, protocols.MaxDiscoveryResponseSize); err != nil {
			t.Fatal(err)
		}
		if resp.Error != "unknown discovery request" || len(resp.Advertisements) != 0 {
			t.Errorf("response to an empty request: %+v", &resp)
		}
	})
	t.Run("Detach", func(t *testing.T) {
		reg.Detach(server)
		if _, err := discovery.Lookup(ctx, client, p, "bank-x"); err == nil {
			t.Error("Lookup answered after Detach")
		}
	})
	if reg.Directory() == nil || len(reg.Directory().List(discovery.Filter{})) != 3 {
		t.Error("the registrar's directory does not hold the three registered nodes")
	}
}

// TestRegistrarWithoutQueries checks the service a member node runs: it takes
// advertisements into its cache but refuses lookups and listings.
func TestRegistrarWithoutQueries(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	server, client := newHost(t), newHost(t)
	if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
		t.Fatal(err)
	}
	cache := discovery.NewDirectory(newDatastore(), f.verifier(false), quiet)
	discovery.NewRegistrar(cache, false, quiet).Attach(server)
	p := server.ID()

	x := f.sealed(t, f.bankX, nil)
	if err := discovery.Register(ctx, client, p, x); err != nil {
		t.Fatal(err)
	}
	if got := cache.Org("bank-x"); len(got) != 1 || !bytes.Equal(got[0].Sealed, x) {
		t.Error("the registered advertisement is not in the cache")
	}
	err := discovery.Register(ctx, client, p, f.sealed(t, f.bankX, func(a *discovery.Advertisement) { a.Seq = 2; a.Org = "bank-y" }))
	wantErr(t, err, discovery.ErrRefused, "does not match its signer's certificate")

	_, err = discovery.Lookup(ctx, client, p, "bank-x")
	wantErr(t, err, discovery.ErrRefused, discovery.ErrNotRegistrar.Error(), p.String())
	_, err = discovery.List(ctx, client, p, discovery.Filter{})
	wantErr(t, err, discovery.ErrRefused, discovery.ErrNotRegistrar.Error())
}
