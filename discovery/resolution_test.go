package discovery_test

import (
	"slices"
	"testing"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/finp2p/go-finp2p/discovery"
)

func TestGroup(t *testing.T) {
	f := newFixture(t)
	d := discovery.NewDirectory(newDatastore(), f.verifier(false), quiet)
	put(t, d, f.sealed(t, f.bankY, func(a *discovery.Advertisement) { a.Seq = 7 }))
	put(t, d, f.sealed(t, f.bankX2, nil))
	put(t, d, f.sealed(t, f.bankX, func(a *discovery.Advertisement) {
		a.Addrs = []ma.Multiaddr{ma.StringCast("/dns4/x.bank-x.example/tcp/4001")}
		a.Version = "v1.2.3"
	}))

	got := discovery.Group(d.List(discovery.Filter{}), discovery.SourceRegistrar)
	if len(got) != 2 {
		t.Fatalf("Group = %d resolutions, want 2: %+v", len(got), got)
	}
	x, y := got[0], got[1]
	if x.Org != "bank-x" || x.FinID != f.bankX.cert.FinID || x.Source != discovery.SourceRegistrar {
		t.Errorf("first resolution %s %s from %s, want bank-x %s from registrar", x.Org, x.FinID, x.Source, f.bankX.cert.FinID)
	}
	if y.Org != "bank-y" || y.FinID != f.bankY.cert.FinID || y.Source != discovery.SourceRegistrar {
		t.Errorf("second resolution %s %s from %s, want bank-y %s", y.Org, y.FinID, y.Source, f.bankY.cert.FinID)
	}
	var xPeers []string
	for _, n := range x.Nodes {
		xPeers = append(xPeers, n.Peer.String())
	}
	wantX := []string{f.bankX.id.String(), f.bankX2.id.String()}
	slices.Sort(wantX)
	if !slices.Equal(xPeers, wantX) {
		t.Errorf("bank-x's nodes %v, want %v", xPeers, wantX)
	}
	if len(y.Nodes) != 1 || y.Nodes[0].Peer != f.bankY.id || y.Nodes[0].Seq != 7 {
		t.Errorf("bank-y's nodes %+v", y.Nodes)
	}

	if got := discovery.Group(nil, discovery.SourceCache); len(got) != 0 {
		t.Errorf("Group(nil) = %+v", got)
	}
	if got := discovery.Group(d.Org("bank-x"), discovery.SourceDHT); len(got) != 1 || len(got[0].Nodes) != 2 || got[0].Source != discovery.SourceDHT {
		t.Errorf("Group(Org(bank-x)) = %+v", got)
	}
}

func TestInfo(t *testing.T) {
	f := newFixture(t)
	ad := f.ad(f.bankX)
	ad.Version = "v1.2.3"
	ad.Seq = 42
	rec, err := f.verifier(false).Open(seal(t, ad, f.bankX.key))
	if err != nil {
		t.Fatal(err)
	}
	n := discovery.Info(rec)
	if n.Peer != f.bankX.id || n.Role != "member" || n.Version != "v1.2.3" || n.Seq != 42 || !n.Expires.Equal(ad.Expires) {
		t.Errorf("Info = %+v", n)
	}
	if !slices.Equal(n.Addrs, []string{"/ip4/203.0.114.7/tcp/4001", "/ip4/203.0.114.7/udp/4001/quic-v1"}) {
		t.Errorf("Info addresses %v", n.Addrs)
	}
	if !slices.Equal(n.Protocols, mandatory()) || !slices.Equal(n.Services, []string{"custody"}) || !slices.Equal(n.Ledgers, []string{"ethereum"}) {
		t.Errorf("Info protocols %v, services %v, ledgers %v", n.Protocols, n.Services, n.Ledgers)
	}
}
