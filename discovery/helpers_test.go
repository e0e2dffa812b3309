package discovery_test

import (
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/testnet"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/protocols"
)

// member is a certified node of a test network: its libp2p key, peer ID, DER
// chain (leaf first, without the root) and what the chain proves.
type member struct {
	key   crypto.PrivKey
	id    peer.ID
	chain [][]byte
	cert  governance.Member
}

// fixture is a certified network with three member nodes: two of bank-x (one
// FinID, two peers) and one of bank-y, and a fixed, movable clock.
type fixture struct {
	net   *testnet.Network
	trust *governance.TrustStore
	clock *clock
	bankX member
	// bankX2 is a second node of bank-x: same org and FinID, another peer.
	bankX2 member
	bankY  member
}

// clock is a fixed clock a test moves by hand; safe for the registrar's
// handler goroutine to read while the test runs.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	n := testnet.NewEmpty(t)
	// Whole seconds: advertisements carry their expiry in Unix seconds.
	f := &fixture{net: n, clock: &clock{now: time.Now().Truncate(time.Second)}}
	f.trust = f.newTrust(t)
	f.bankX = f.newMember(t, "bank-x")
	f.bankX2 = f.newMember(t, "bank-x")
	f.bankY = f.newMember(t, "bank-y")
	return f
}

// newTrust returns a fresh trust store of the network's genesis roots, so a
// test can add a revocation list without affecting the others.
func (f *fixture) newTrust(t testing.TB) *governance.TrustStore {
	t.Helper()
	g, err := governance.LoadGenesis(f.net.GenesisFile)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := g.RootCertificates()
	if err != nil {
		t.Fatal(err)
	}
	trust, err := governance.NewTrustStore(roots)
	if err != nil {
		t.Fatal(err)
	}
	return trust
}

func (f *fixture) newMember(t testing.TB, org string) member {
	t.Helper()
	repo := f.net.Repo(org, governance.RoleMember, f.net.Governance)
	edKey, err := governance.ReadKeyFile(filepath.Join(repo, node.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	key, err := crypto.UnmarshalEd25519PrivateKey(edKey)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := governance.LoadCertificatesPEM(filepath.Join(repo, node.CertFileName))
	if err != nil {
		t.Fatal(err)
	}
	chain := make([][]byte, len(certs))
	for i, c := range certs {
		chain[i] = c.Raw
	}
	cert, err := f.trust.VerifyDER(chain, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if cert.PeerID != id || cert.OrgID != org {
		t.Fatalf("certificate of %s is for %s of %s", id, cert.PeerID, cert.OrgID)
	}
	return member{key: key, id: id, chain: chain, cert: cert}
}

// verifier returns a Verifier on the fixture's network, trust store and clock.
func (f *fixture) verifier(development bool) *discovery.Verifier {
	return f.verifierWith(f.trust, development)
}

func (f *fixture) verifierWith(trust *governance.TrustStore, development bool) *discovery.Verifier {
	return &discovery.Verifier{Network: testnet.NetworkName, Trust: trust, Development: development, Now: f.clock.Now}
}

// revokedTrust revokes m's certificate at the governance authority and returns
// a fresh trust store that holds the resulting revocation list.
func (f *fixture) revokedTrust(t testing.TB, m member) *governance.TrustStore {
	t.Helper()
	trust := f.newTrust(t)
	f.revoke(t, trust, m)
	return trust
}

// revoke revokes m's certificate and adds the governance CA's new revocation
// list to trust.
func (f *fixture) revoke(t testing.TB, trust *governance.TrustStore, m member) {
	t.Helper()
	now := f.clock.Now()
	if err := f.net.Governance.Revoke(m.cert.Serial, 1, now.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	crl, err := f.net.Governance.CRL(now.Add(-time.Second), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issuer := [][]byte{f.net.Governance.Certificate().Raw, f.net.Founding.Certificate().Raw}
	if ok, err := trust.AddCRL(crl, issuer, now); err != nil || !ok {
		t.Fatalf("AddCRL = %v, %v", ok, err)
	}
}

// mandatory is protocols.Mandatory as strings.
func mandatory() []string {
	out := make([]string, len(protocols.Mandatory))
	for i, p := range protocols.Mandatory {
		out[i] = string(p)
	}
	return out
}

// ad returns a valid advertisement of m with a public address, sequence 1,
// expiring in an hour.
func (f *fixture) ad(m member) *discovery.Advertisement {
	return &discovery.Advertisement{
		Network:   testnet.NetworkName,
		Org:       m.cert.OrgID,
		FinID:     m.cert.FinID,
		Peer:      m.id,
		Addrs:     []ma.Multiaddr{ma.StringCast("/ip4/203.0.114.7/tcp/4001"), ma.StringCast("/ip4/203.0.114.7/udp/4001/quic-v1")},
		Protocols: mandatory(),
		Services:  []string{"custody"},
		Ledgers:   []string{"ethereum"},
		Version:   "test",
		Seq:       1,
		Expires:   f.clock.Now().Add(time.Hour),
		Chain:     m.chain,
	}
}

// sealed returns m's valid advertisement, changed by edit if not nil, sealed
// with m's key.
func (f *fixture) sealed(t testing.TB, m member, edit func(*discovery.Advertisement)) []byte {
	t.Helper()
	ad := f.ad(m)
	if edit != nil {
		edit(ad)
	}
	return seal(t, ad, m.key)
}

func seal(t testing.TB, ad *discovery.Advertisement, key crypto.PrivKey) []byte {
	t.Helper()
	sealed, err := discovery.Seal(ad, key)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

// wantErr fails unless err wraps want and its message contains every part.
func wantErr(t testing.TB, err, want error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %q does not wrap %q", err, want)
	}
	wantMsg(t, err, parts...)
}

// wantMsg fails unless err is an error whose message contains every part.
func wantMsg(t testing.TB, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}
