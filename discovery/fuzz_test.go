package discovery_test

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/governance"
)

// sentinels are the errors every refusal of Open wraps one of.
var sentinels = []error{
	discovery.ErrMalformed, discovery.ErrBadSignature, discovery.ErrForged, discovery.ErrExpired,
	discovery.ErrTooLarge, discovery.ErrAddressPolicy, discovery.ErrMissingProto, discovery.ErrWrongNetwork,
	governance.ErrExpired, governance.ErrNotYetValid, governance.ErrUntrustedChain, governance.ErrRevoked,
	governance.ErrKeyMismatch, governance.ErrRoleNotAllowed,
}

// checkOpened checks what Open returned for data: a record or an error
// wrapping one of the sentinels, never both, and a record only for an
// advertisement that keeps every rule Open promises.
func checkOpened(t *testing.T, v *discovery.Verifier, data []byte, rec *discovery.Record, err error) {
	t.Helper()
	if err != nil {
		if rec != nil {
			t.Fatalf("Open returned a record and error %v", err)
		}
		if !anyIs(err, sentinels...) {
			t.Fatalf("Open error %q wraps none of the sentinel errors", err)
		}
		return
	}
	if rec == nil || rec.Ad == nil {
		t.Fatal("Open returned neither a record nor an error")
	}
	ad, m, now := rec.Ad, rec.Member, v.Now()
	switch {
	case !bytes.Equal(rec.Sealed, data):
		t.Fatal("the record's envelope is not the input")
	case ad.Network != v.Network:
		t.Fatalf("accepted an advertisement of network %q", ad.Network)
	case ad.Org != m.OrgID || ad.FinID != m.FinID || ad.Peer != m.PeerID:
		t.Fatalf("accepted %s/%s/%s signed by %s/%s/%s", ad.Org, ad.FinID, ad.Peer, m.OrgID, m.FinID, m.PeerID)
	case ad.Seq == 0:
		t.Fatal("accepted sequence number 0")
	case !ad.Expires.After(now) || ad.Expires.After(now.Add(discovery.MaxValidity)):
		t.Fatalf("accepted expiry %s at %s", ad.Expires, now)
	case len(ad.Addrs) == 0:
		t.Fatal("accepted an advertisement without addresses")
	case discovery.CheckProtocols(ad.Protocols) != nil:
		t.Fatal("accepted an advertisement without the mandatory protocols")
	}
	for _, a := range ad.Addrs {
		if err := discovery.CheckAddr(a, v.Development); err != nil {
			t.Fatalf("accepted address %s: %v", a, err)
		}
	}
}

// FuzzOpen feeds arbitrary bytes to Verifier.Open, which reads what peers,
// the DHT and the capabilities topic send: it must never panic, and must
// refuse anything it cannot fully verify.
func FuzzOpen(f *testing.F) {
	fx := newFixture(f)
	v := fx.verifier(false)
	valid := fx.sealed(f, fx.bankX, nil)
	f.Add(valid)
	f.Add(fx.sealed(f, fx.bankY, func(a *discovery.Advertisement) { a.Seq = 1 << 62 }))
	f.Add(fx.sealed(f, fx.bankX, func(a *discovery.Advertisement) { a.Org = "bank-y" }))
	f.Add(valid[:len(valid)/2])
	f.Add([]byte{})
	f.Add([]byte("junk that is no envelope"))
	f.Add(bytes.Repeat([]byte{0xff}, 100))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := v.Open(data)
		checkOpened(t, v, data, rec, err)
	})
}

// FuzzSealAndOpen seals fuzzed advertisements with a member's real key, so the
// checks behind the signature see arbitrary values too.
func FuzzSealAndOpen(f *testing.F) {
	fx := newFixture(f)
	ad := fx.ad(fx.bankX)
	addr := ad.Addrs[0].Bytes()
	f.Add(ad.Network, ad.Org, ad.FinID, uint64(1), int64(3600), addr, "", false, false)
	f.Add(ad.Network, "bank-y", ad.FinID, uint64(1), int64(3600), addr, "", false, false)
	f.Add(ad.Network, ad.Org, ad.FinID, uint64(0), int64(-1), ma.StringCast("/ip4/10.0.0.1/tcp/1").Bytes(), "/finp2p/kad/1.0.0", true, true)
	f.Fuzz(func(t *testing.T, network, org, finID string, seq uint64, expiresIn int64, addr []byte, drop string, dev, otherChain bool) {
		v := fx.verifier(dev)
		ad := fx.ad(fx.bankX)
		ad.Network, ad.Org, ad.FinID, ad.Seq = network, org, finID, seq
		ad.Expires = fx.clock.Now().Add(time.Duration(expiresIn) * time.Second)
		a, err := ma.NewMultiaddrBytes(addr)
		if err != nil {
			return
		}
		ad.Addrs = []ma.Multiaddr{a}
		ad.Protocols = without(ad.Protocols, drop)
		if otherChain {
			ad.Chain = fx.bankY.chain
		}
		data, err := discovery.Seal(ad, fx.bankX.key)
		if err != nil {
			return // a string that is not UTF-8 does not encode
		}
		rec, err := v.Open(data)
		checkOpened(t, v, data, rec, err)
	})
}

// FuzzUnmarshalRecord decodes arbitrary advertisement payloads: no panic, and
// whatever decodes encodes back to an equal advertisement.
func FuzzUnmarshalRecord(f *testing.F) {
	fx := newFixture(f)
	payload, err := fx.ad(fx.bankX).MarshalRecord()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(payload)
	f.Add([]byte{})
	f.Add([]byte{0x22, 0x02, 0x00, 0x01}) // a two-byte peer field
	f.Fuzz(func(t *testing.T, data []byte) {
		var a discovery.Advertisement
		if err := a.UnmarshalRecord(data); err != nil {
			if !errors.Is(err, discovery.ErrMalformed) {
				t.Fatalf("error %q does not wrap ErrMalformed", err)
			}
			return
		}
		again, err := a.MarshalRecord()
		if err != nil {
			t.Fatal(err)
		}
		var b discovery.Advertisement
		if err := b.UnmarshalRecord(again); err != nil {
			t.Fatalf("re-encoded advertisement does not decode: %v", err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip changed the advertisement:\n%+v\n%+v", a, b)
		}
	})
}

// FuzzCheckAddr applies the address policy to arbitrary multiaddrs: no panic,
// refusals wrap ErrAddressPolicy, and development allows all production does.
func FuzzCheckAddr(f *testing.F) {
	for _, s := range []string{
		"/ip4/8.8.8.8/tcp/4001", "/ip4/127.0.0.1/udp/1/quic-v1", "/dns4/localhost/tcp/1",
		"/ip6/::1/tcp/1/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf", "/unix/a",
	} {
		f.Add(ma.StringCast(s).Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ma.NewMultiaddrBytes(data)
		if err != nil {
			return
		}
		prod, dev := discovery.CheckAddr(a, false), discovery.CheckAddr(a, true)
		for _, err := range []error{prod, dev} {
			if err != nil && !errors.Is(err, discovery.ErrAddressPolicy) {
				t.Fatalf("CheckAddr(%s): %q does not wrap ErrAddressPolicy", a, err)
			}
		}
		if prod == nil && dev != nil {
			t.Fatalf("%s is allowed in production but not in development: %v", a, dev)
		}
		if prod == nil && !slices.ContainsFunc([]int{ma.P_TCP, ma.P_QUIC_V1}, func(code int) bool {
			_, err := a.ValueForProtocol(code)
			return err == nil
		}) {
			t.Fatalf("%s allowed without TCP or QUIC", a)
		}
	})
}
