package discovery_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/testnet"
	"github.com/finp2p/go-finp2p/protocols"
)

func TestOpenValid(t *testing.T) {
	f := newFixture(t)
	ad := f.ad(f.bankX)
	sealed := seal(t, ad, f.bankX.key)
	rec, err := f.verifier(false).Open(sealed)
	if err != nil {
		t.Fatal(err)
	}
	m := rec.Member
	if m.OrgID != "bank-x" || m.FinID != f.bankX.cert.FinID || m.PeerID != f.bankX.id || m.Role != governance.RoleMember {
		t.Errorf("member = %s %s %s %s, want bank-x %s %s member", m.OrgID, m.FinID, m.PeerID, m.Role, f.bankX.cert.FinID, f.bankX.id)
	}
	if m.FinID == "" || m.FinID != f.bankX2.cert.FinID || m.FinID == f.bankY.cert.FinID {
		t.Errorf("FinIDs: bank-x %q and %q, bank-y %q; want one per org", m.FinID, f.bankX2.cert.FinID, f.bankY.cert.FinID)
	}
	if !bytes.Equal(rec.Sealed, sealed) {
		t.Error("record does not keep the sealed envelope")
	}
	got := rec.Ad
	if got.Network != ad.Network || got.Org != ad.Org || got.FinID != ad.FinID || got.Peer != ad.Peer ||
		got.Version != ad.Version || got.Seq != ad.Seq || !got.Expires.Equal(ad.Expires) ||
		!slices.Equal(got.Protocols, ad.Protocols) || !slices.Equal(got.Services, ad.Services) || !slices.Equal(got.Ledgers, ad.Ledgers) {
		t.Errorf("opened advertisement %+v, sealed %+v", got, ad)
	}
	if len(got.Addrs) != len(ad.Addrs) || !got.Addrs[0].Equal(ad.Addrs[0]) || !got.Addrs[1].Equal(ad.Addrs[1]) {
		t.Errorf("addresses %v, want %v", got.Addrs, ad.Addrs)
	}
	if len(got.Chain) != len(ad.Chain) {
		t.Errorf("chain of %d certificates, want %d", len(got.Chain), len(ad.Chain))
	}
}

func TestOpenRefuses(t *testing.T) {
	f := newFixture(t)
	later := &clock{now: f.clock.Now().Add(7 * time.Hour)} // past the node certificates' 6 h
	secp, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secpID, err := peer.IDFromPrivateKey(secp)
	if err != nil {
		t.Fatal(err)
	}
	junk := bytes.Repeat([]byte{0xA5}, 70<<10)

	type testCase struct {
		name string
		edit func(*discovery.Advertisement)
		// key signs the advertisement; bank-x's key if nil.
		key crypto.PrivKey
		// v opens it; the production verifier if nil.
		v     *discovery.Verifier
		want  error
		parts []string
	}
	cases := []testCase{
		{
			name:  "other org",
			edit:  func(a *discovery.Advertisement) { a.Org = "bank-y" },
			want:  discovery.ErrForged,
			parts: []string{`"bank-y"`, `"bank-x"`},
		},
		{
			name:  "other org with its FinID",
			edit:  func(a *discovery.Advertisement) { a.Org, a.FinID = "bank-y", f.bankY.cert.FinID },
			want:  discovery.ErrForged,
			parts: []string{`"bank-y"`},
		},
		{
			name:  "peer of another node",
			edit:  func(a *discovery.Advertisement) { a.Peer = f.bankY.id },
			want:  discovery.ErrForged,
			parts: []string{f.bankY.id.String(), f.bankX.id.String()},
		},
		{
			name:  "peer of another node of the same org",
			edit:  func(a *discovery.Advertisement) { a.Peer = f.bankX2.id },
			want:  discovery.ErrForged,
			parts: []string{f.bankX2.id.String(), f.bankX.id.String()},
		},
		{
			name: "chain of another node",
			edit: func(a *discovery.Advertisement) { a.Chain = f.bankX2.chain },
			want: governance.ErrKeyMismatch,
		},
		{
			name:  "FinID mismatch",
			edit:  func(a *discovery.Advertisement) { a.FinID = "00000000-0000-4000-8000-000000000000" },
			want:  discovery.ErrForged,
			parts: []string{"00000000-0000-4000-8000-000000000000", f.bankX.cert.FinID},
		},
		{
			name:  "FinID of another org",
			edit:  func(a *discovery.Advertisement) { a.FinID = f.bankY.cert.FinID },
			want:  discovery.ErrForged,
			parts: []string{f.bankY.cert.FinID},
		},
		{
			name:  "signed with a non-Ed25519 key",
			edit:  func(a *discovery.Advertisement) { a.Peer = secpID },
			key:   secp,
			want:  discovery.ErrForged,
			parts: []string{"not Ed25519"},
		},
		{
			name:  "revoked signer",
			v:     f.verifierWith(f.revokedTrust(t, f.bankX), false),
			want:  governance.ErrRevoked,
			parts: []string{"revoked", f.bankX.id.String()},
		},
		{
			name:  "signer's certificate expired",
			edit:  func(a *discovery.Advertisement) { a.Expires = later.Now().Add(time.Hour) },
			v:     &discovery.Verifier{Network: testnet.NetworkName, Trust: f.trust, Now: later.Now},
			want:  governance.ErrExpired,
			parts: []string{"certificate"},
		},
		{
			name:  "no chain",
			edit:  func(a *discovery.Advertisement) { a.Chain = nil },
			want:  governance.ErrUntrustedChain,
			parts: []string{"empty certificate chain"},
		},
		{
			name:  "expired",
			edit:  func(a *discovery.Advertisement) { a.Expires = f.clock.Now().Add(-time.Second) },
			want:  discovery.ErrExpired,
			parts: []string{f.bankX.id.String(), f.clock.Now().Add(-time.Second).UTC().Format(time.RFC3339)},
		},
		{
			name: "expires now",
			edit: func(a *discovery.Advertisement) { a.Expires = f.clock.Now() },
			want: discovery.ErrExpired,
		},
		{
			name:  "expiry beyond MaxValidity",
			edit:  func(a *discovery.Advertisement) { a.Expires = f.clock.Now().Add(discovery.MaxValidity + time.Second) },
			want:  discovery.ErrMalformed,
			parts: []string{discovery.MaxValidity.String()},
		},
		{
			name:  "oversized",
			edit:  func(a *discovery.Advertisement) { a.Chain = append(a.Chain, junk) },
			want:  discovery.ErrTooLarge,
			parts: []string{"at most 65536"},
		},
		{
			name:  "private address",
			edit:  func(a *discovery.Advertisement) { a.Addrs = append(a.Addrs, ma.StringCast("/ip4/10.1.2.3/tcp/4001")) },
			want:  discovery.ErrAddressPolicy,
			parts: []string{"private", "/ip4/10.1.2.3/tcp/4001"},
		},
		{
			name: "loopback address",
			edit: func(a *discovery.Advertisement) {
				a.Addrs = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/udp/4001/quic-v1")}
			},
			want:  discovery.ErrAddressPolicy,
			parts: []string{"loopback", "/ip4/127.0.0.1/udp/4001/quic-v1"},
		},
		{
			name: "address with a peer ID in development",
			edit: func(a *discovery.Advertisement) {
				a.Addrs = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/1/p2p/" + f.bankX.id.String())}
			},
			v:     f.verifier(true),
			want:  discovery.ErrAddressPolicy,
			parts: []string{"peer ID"},
		},
		{
			name:  "no address",
			edit:  func(a *discovery.Advertisement) { a.Addrs = nil },
			want:  discovery.ErrMalformed,
			parts: []string{"no address"},
		},
		{
			name: "too many addresses",
			edit: func(a *discovery.Advertisement) {
				for len(a.Addrs) <= discovery.MaxAddrs {
					a.Addrs = append(a.Addrs, a.Addrs[0])
				}
			},
			want:  discovery.ErrMalformed,
			parts: []string{"33 addresses"},
		},
		{
			name:  "name too long",
			edit:  func(a *discovery.Advertisement) { a.Services = []string{strings.Repeat("s", discovery.MaxNameLen+1)} },
			want:  discovery.ErrMalformed,
			parts: []string{"129 bytes"},
		},
		{
			name:  "wrong network",
			edit:  func(a *discovery.Advertisement) { a.Network = "finp2p-other" },
			want:  discovery.ErrWrongNetwork,
			parts: []string{`"finp2p-other"`, testnet.NetworkName},
		},
		{
			name:  "seq 0",
			edit:  func(a *discovery.Advertisement) { a.Seq = 0 },
			want:  discovery.ErrMalformed,
			parts: []string{"sequence number 0"},
		},
	}
	for _, p := range protocols.Mandatory {
		cases = append(cases, testCase{
			name: "without " + string(p),
			edit: func(a *discovery.Advertisement) {
				a.Protocols = without(a.Protocols, string(p))
			},
			want:  discovery.ErrMissingProto,
			parts: []string{string(p)},
		})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ad := f.ad(f.bankX)
			if tc.edit != nil {
				tc.edit(ad)
			}
			key := tc.key
			if key == nil {
				key = f.bankX.key
			}
			v := tc.v
			if v == nil {
				v = f.verifier(false)
			}
			rec, err := v.Open(seal(t, ad, key))
			if rec != nil {
				t.Errorf("Open returned a record with error %v", err)
			}
			wantErr(t, err, tc.want, tc.parts...)
		})
	}
}

// without returns list without s.
func without(list []string, s string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(e string) bool { return e == s })
}

func TestOpenAccepts(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name string
		edit func(*discovery.Advertisement)
		dev  bool
	}{
		{name: "private address in development", dev: true, edit: func(a *discovery.Advertisement) {
			a.Addrs = []ma.Multiaddr{ma.StringCast("/ip4/10.1.2.3/tcp/4001")}
		}},
		{name: "loopback addresses in development", dev: true, edit: func(a *discovery.Advertisement) {
			a.Addrs = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4001"), ma.StringCast("/ip6/::1/udp/4001/quic-v1")}
		}},
		{name: "expiry at MaxValidity", edit: func(a *discovery.Advertisement) {
			a.Expires = f.clock.Now().Add(discovery.MaxValidity)
		}},
		{name: "extra protocols", edit: func(a *discovery.Advertisement) {
			a.Protocols = append([]string{"/finp2p/asset/tx/1.0.0"}, a.Protocols...)
		}},
		{name: "no services, ledgers or version", edit: func(a *discovery.Advertisement) {
			a.Services, a.Ledgers, a.Version = nil, nil, ""
		}},
		{name: "second node of the org", edit: func(a *discovery.Advertisement) {
			*a = *f.ad(f.bankX2)
		}},
		{name: "chain with the founding root", edit: func(a *discovery.Advertisement) {
			a.Chain = append(a.Chain[:len(a.Chain):len(a.Chain)], f.net.Founding.Certificate().Raw)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ad := f.ad(f.bankX)
			tc.edit(ad)
			key := f.bankX.key
			if ad.Peer == f.bankX2.id {
				key = f.bankX2.key
			}
			rec, err := f.verifier(tc.dev).Open(seal(t, ad, key))
			if err != nil {
				t.Fatal(err)
			}
			if rec.Member.PeerID != ad.Peer || rec.Member.OrgID != ad.Org {
				t.Errorf("member %s of %s, want %s of %s", rec.Member.PeerID, rec.Member.OrgID, ad.Peer, ad.Org)
			}
		})
	}
}

// TestOpenTampered changes a sealed advertisement byte by byte and cuts it
// short at every length: no change may be accepted.
func TestOpenTampered(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(false)
	sealed := f.sealed(t, f.bankX, nil)

	t.Run("payload", func(t *testing.T) {
		i := bytes.Index(sealed, []byte("custody"))
		if i < 0 {
			t.Fatal("service name not found in the envelope")
		}
		tampered := bytes.Clone(sealed)
		tampered[i] ^= 0x01 // custody → bustody
		_, err := v.Open(tampered)
		wantErr(t, err, discovery.ErrBadSignature)
	})
	t.Run("signature", func(t *testing.T) {
		tampered := bytes.Clone(sealed)
		tampered[len(tampered)-1] ^= 0x80
		_, err := v.Open(tampered)
		wantErr(t, err, discovery.ErrBadSignature)
	})
	t.Run("every byte", func(t *testing.T) {
		// One bit of each byte, a different one from byte to byte, keeps
		// this fast under the race detector.
		for i := range sealed {
			tampered := bytes.Clone(sealed)
			tampered[i] ^= 1 << (i % 8)
			rec, err := v.Open(tampered)
			if err == nil || rec != nil {
				t.Fatalf("flipping bit %d of byte %d: accepted", i%8, i)
			}
			if !anyIs(err, discovery.ErrBadSignature, discovery.ErrMalformed) {
				t.Fatalf("flipping bit %d of byte %d: %v, want a bad signature or malformed", i%8, i, err)
			}
		}
	})
	t.Run("every truncation", func(t *testing.T) {
		for n := range len(sealed) {
			if rec, err := v.Open(sealed[:n]); err == nil || rec != nil {
				t.Fatalf("first %d bytes accepted", n)
			}
		}
	})
}

func anyIs(err error, targets ...error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// otherRecord is a record of another payload type in the advertisement
// envelope domain.
type otherRecord struct{ payload []byte }

func (r *otherRecord) Domain() string                    { return discovery.EnvelopeDomain }
func (r *otherRecord) Codec() []byte                     { return []byte("/finp2p/other/1") }
func (r *otherRecord) MarshalRecord() ([]byte, error)    { return r.payload, nil }
func (r *otherRecord) UnmarshalRecord(data []byte) error { r.payload = data; return nil }

func TestOpenOtherRecords(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(true)

	t.Run("libp2p peer record", func(t *testing.T) {
		// Signed by a member with its own key: the envelope domain keeps it
		// from being taken as an advertisement.
		pr := &peer.PeerRecord{PeerID: f.bankX.id, Addrs: f.ad(f.bankX).Addrs, Seq: 1}
		env, err := record.Seal(pr, f.bankX.key)
		if err != nil {
			t.Fatal(err)
		}
		data, err := env.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Open(data)
		wantErr(t, err, discovery.ErrBadSignature)
	})
	t.Run("other payload type", func(t *testing.T) {
		payload, err := f.ad(f.bankX).MarshalRecord()
		if err != nil {
			t.Fatal(err)
		}
		env, err := record.Seal(&otherRecord{payload: payload}, f.bankX.key)
		if err != nil {
			t.Fatal(err)
		}
		data, err := env.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Open(data)
		wantErr(t, err, discovery.ErrMalformed, "payload type", "/finp2p/other/1")
	})
	t.Run("signed garbage payload", func(t *testing.T) {
		env, err := record.Seal(&garbageAd{}, f.bankX.key)
		if err != nil {
			t.Fatal(err)
		}
		data, err := env.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Open(data)
		wantErr(t, err, discovery.ErrMalformed)
	})
}

// garbageAd seals bytes that are no advertisement under the advertisement's
// domain and payload type.
type garbageAd struct{ discovery.Advertisement }

func (g *garbageAd) MarshalRecord() ([]byte, error) { return []byte{0xff, 0xff, 0xff}, nil }

func TestOpenGarbage(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(true)
	rnd := mrand.New(mrand.NewPCG(1, 2))
	inputs := [][]byte{nil, {}, {0}, {0x0a}, []byte("not an envelope"), bytes.Repeat([]byte{0xff}, 64)}
	for _, n := range []int{1, 16, 256, 4096, protocols.MaxAdvertisementSize} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		inputs = append(inputs, b)
	}
	for i, in := range inputs {
		rec, err := v.Open(in)
		if err == nil || rec != nil {
			t.Errorf("input %d (%d bytes) accepted", i, len(in))
		}
	}
	_, err := v.Open(make([]byte, protocols.MaxAdvertisementSize+1))
	wantErr(t, err, discovery.ErrTooLarge, "65537 bytes")
}

func TestCheckProtocols(t *testing.T) {
	if err := discovery.CheckProtocols(mandatory()); err != nil {
		t.Fatal(err)
	}
	wantErr(t, discovery.CheckProtocols(nil), discovery.ErrMissingProto, string(protocols.Mandatory[0]))
	for _, p := range protocols.Mandatory {
		wantErr(t, discovery.CheckProtocols(without(mandatory(), string(p))), discovery.ErrMissingProto, string(p))
	}
}

func TestCheckAddr(t *testing.T) {
	const id = "12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf"
	// prod and dev are "" when the address is accepted, else a part of the
	// reason the refusal must give.
	cases := []struct {
		addr      string
		prod, dev string
	}{
		{addr: "/ip4/8.8.8.8/tcp/4001"},
		{addr: "/ip4/8.8.8.8/udp/4001/quic-v1"},
		{addr: "/ip6/2001:4860:4860::8888/tcp/4001"},
		{addr: "/ip6/2001:4860:4860::8888/udp/4001/quic-v1"},
		{addr: "/dns4/node.example.com/tcp/4001"},
		{addr: "/dns6/node.example.com/udp/4001/quic-v1"},
		{addr: "/dns/node.example.com/tcp/443"},
		{addr: "/ip4/8.8.8.8/udp/4001/quic-v1/webtransport"},

		{addr: "/ip4/127.0.0.1/tcp/4001", prod: "loopback"},
		{addr: "/ip4/127.1.2.3/udp/4001/quic-v1", prod: "loopback"},
		{addr: "/ip6/::1/tcp/4001", prod: "loopback"},
		{addr: "/dns4/localhost/tcp/4001", prod: "loopback"},
		{addr: "/dns/localhost/udp/4001/quic-v1", prod: "loopback"},
		{addr: "/dns4/node.localhost/tcp/4001", prod: "loopback"},
		{addr: "/ip4/10.1.2.3/tcp/4001", prod: "private"},
		{addr: "/ip4/172.16.5.4/tcp/4001", prod: "private"},
		{addr: "/ip4/192.168.1.2/udp/4001/quic-v1", prod: "private"},
		{addr: "/ip4/100.64.0.1/tcp/4001", prod: "private"},
		{addr: "/ip4/169.254.1.1/tcp/4001", prod: "private"},
		{addr: "/ip6/fd00::1/tcp/4001", prod: "private"},
		{addr: "/ip6/fe80::1/tcp/4001", prod: "private"},
		{addr: "/ip4/0.0.0.0/tcp/4001", prod: "unspecified", dev: "unspecified"},
		{addr: "/ip6/::/udp/4001/quic-v1", prod: "unspecified", dev: "unspecified"},
		{addr: "/ip4/8.8.8.8/tcp/4001/p2p-circuit", prod: "relay", dev: "relay"},
		{addr: "/ip4/192.0.2.1/tcp/4001", prod: "not a public address"},
		{addr: "/ip4/224.0.0.1/tcp/4001", prod: "not a public address"},
		{addr: "/ip6/2001:db8::1/tcp/4001", prod: "not a public address"},
		{addr: "/ip6/::ffff:10.1.2.3/tcp/4001", prod: "not a public address"},
		{addr: "/dns4/printer.local/tcp/4001", prod: "not a public name"},

		{addr: "/ip4/8.8.8.8/tcp/4001/p2p/" + id, prod: "peer ID", dev: "peer ID"},
		{addr: "/ip4/127.0.0.1/tcp/4001/p2p/" + id, prod: "peer ID", dev: "peer ID"},
		{addr: "/ip4/8.8.8.8/udp/1", prod: "neither TCP nor QUIC", dev: "neither TCP nor QUIC"},
		{addr: "/ip4/10.1.2.3/udp/1", prod: "neither TCP nor QUIC", dev: "neither TCP nor QUIC"},
		{addr: "/ip4/8.8.8.8/udp/1/quic", prod: "neither TCP nor QUIC", dev: "neither TCP nor QUIC"},
		{addr: "/ip4/8.8.8.8", prod: "neither TCP nor QUIC", dev: "neither TCP nor QUIC"},
		{addr: "/unix/tmp/finp2p.sock", prod: "does not start with an IP address or DNS name", dev: "does not start with an IP address or DNS name"},
		{addr: "/p2p/" + id, prod: "does not start with an IP address or DNS name", dev: "does not start with an IP address or DNS name"},
		{addr: "/dnsaddr/example.com", prod: "does not start with an IP address or DNS name", dev: "does not start with an IP address or DNS name"},
		{addr: "/ip6zone/eth0/ip6/fe80::1/tcp/1", prod: "does not start with an IP address or DNS name", dev: "does not start with an IP address or DNS name"},
	}
	for _, tc := range cases {
		addr := ma.StringCast(tc.addr)
		for _, mode := range []struct {
			dev  bool
			want string
		}{{false, tc.prod}, {true, tc.dev}} {
			name := "production"
			if mode.dev {
				name = "development"
			}
			t.Run(name+tc.addr, func(t *testing.T) {
				err := discovery.CheckAddr(addr, mode.dev)
				if mode.want == "" {
					if err != nil {
						t.Fatal(err)
					}
					return
				}
				wantErr(t, err, discovery.ErrAddressPolicy, mode.want, tc.addr)
			})
		}
	}
	t.Run("empty", func(t *testing.T) {
		wantErr(t, discovery.CheckAddr(nil, true), discovery.ErrAddressPolicy, "empty")
		wantErr(t, discovery.CheckAddr(ma.Multiaddr{}, false), discovery.ErrAddressPolicy, "empty")
	})
}

// TestCheckAddrLoopbackInDisguise holds addresses that reach the dialer's own
// loopback (libp2p resolves them to 127.0.0.1) but that the production address
// policy lets through today: DNS names are compared case-sensitively with
// "localhost", and a /dns4 component may hold an IP literal, which the
// resolver returns as is; CheckAddr judges both as what a dialer reaches.
func TestCheckAddrLoopbackInDisguise(t *testing.T) {
	for _, s := range []string{
		"/dns4/LOCALHOST/tcp/4001",
		"/dns/LocalHost/udp/4001/quic-v1",
		"/dns4/node.LOCALHOST/tcp/4001",
		"/dns4/127.0.0.1/tcp/4001",
		"/dns4/10.1.2.3/tcp/4001",
		"/dns6/::1/tcp/4001",
	} {
		t.Run(s, func(t *testing.T) {
			wantErr(t, discovery.CheckAddr(ma.StringCast(s), false), discovery.ErrAddressPolicy, s)
		})
	}
	t.Run("Open", func(t *testing.T) {
		f := newFixture(t)
		_, err := f.verifier(false).Open(f.sealed(t, f.bankX, func(a *discovery.Advertisement) {
			a.Addrs = []ma.Multiaddr{ma.StringCast("/dns4/127.0.0.1/tcp/4001")}
		}))
		wantErr(t, err, discovery.ErrAddressPolicy, "/dns4/127.0.0.1/tcp/4001")
	})
}
