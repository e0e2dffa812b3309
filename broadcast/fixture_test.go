package broadcast_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"

	"github.com/finp2p/go-finp2p/broadcast"
	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/testnet"
	"github.com/finp2p/go-finp2p/node"
)

// signer is a certified node that signs requests or responses.
type signer struct {
	org   string
	key   crypto.PrivKey
	id    peer.ID
	chain [][]byte
}

type fixture struct {
	net   *testnet.Network
	trust *governance.TrustStore
	now   time.Time
	reqV  *broadcast.RequestVerifier
	respV *broadcast.ResponseVerifier
	// origin (bank-a) asks; nodes are the responders bank-b to bank-f;
	// outsider (bank-z) is outside every scope the tests use.
	origin   signer
	nodes    []signer
	outsider signer
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	net := testnet.NewEmpty(t)
	g, err := governance.LoadGenesis(net.GenesisFile)
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
	f := &fixture{net: net, trust: trust, now: time.Now().Truncate(time.Second)}
	clock := func() time.Time { return f.now }
	f.reqV = &broadcast.RequestVerifier{Network: testnet.NetworkName, Trust: trust, Now: clock}
	f.respV = &broadcast.ResponseVerifier{Network: testnet.NetworkName, Trust: trust, Now: clock}
	f.origin = f.signer(t, "bank-a")
	for _, org := range []string{"bank-b", "bank-c", "bank-d", "bank-e", "bank-f"} {
		f.nodes = append(f.nodes, f.signer(t, org))
	}
	f.outsider = f.signer(t, "bank-z")
	return f
}

// signer creates and certifies a member node of org.
func (f *fixture) signer(t testing.TB, org string) signer {
	t.Helper()
	repo := f.net.Repo(org, governance.RoleMember, f.net.Governance)
	ed, err := governance.ReadKeyFile(filepath.Join(repo, node.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	key, err := crypto.UnmarshalEd25519PrivateKey(ed)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := governance.LoadCertificatesPEM(filepath.Join(repo, node.CertFileName))
	if err != nil {
		t.Fatal(err)
	}
	s := signer{org: org, key: key}
	s.id, _ = peer.IDFromPrivateKey(key)
	for _, c := range certs {
		s.chain = append(s.chain, c.Raw)
	}
	return s
}

// request returns a valid balance request of bank-a to the orgs of
// f.nodes, quorum 3, edited by edit.
func (f *fixture) request(edit func(*broadcast.Request)) *broadcast.Request {
	var orgs []string
	for _, n := range f.nodes {
		orgs = append(orgs, n.org)
	}
	r := &broadcast.Request{
		Network:     testnet.NetworkName,
		ID:          strings.Repeat("ab", broadcast.IDSize),
		Kind:        "balance",
		Scope:       broadcast.Scope{Kind: broadcast.ScopeOrgs, Orgs: orgs},
		Payload:     []byte(`{"user":"alice","asset":"bank-x:102:bond-1"}`),
		Quorum:      3,
		Deadline:    f.now.Add(time.Minute),
		Consistency: broadcast.Majority,
		OriginOrg:   "bank-a",
		Peer:        f.origin.id,
		Chain:       f.origin.chain,
	}
	if edit != nil {
		edit(r)
	}
	return r
}

// response returns a valid response of s to the fixture's request.
func (f *fixture) response(s signer, answer string, version uint64, edit func(*broadcast.Response)) *broadcast.Response {
	r := &broadcast.Response{
		Network:       testnet.NetworkName,
		RequestID:     strings.Repeat("ab", broadcast.IDSize),
		Answer:        []byte(answer),
		LedgerVersion: version,
		ResponderOrg:  s.org,
		Peer:          s.id,
		Chain:         s.chain,
	}
	if edit != nil {
		edit(r)
	}
	return r
}

// sealResponse seals a response of s with SealResponse.
func (f *fixture) sealResponse(t testing.TB, s signer, answer string, version uint64, edit func(*broadcast.Response)) []byte {
	t.Helper()
	sealed, err := broadcast.SealResponse(f.response(s, answer, version, edit), s.key)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

// rawSeal signs rec with key without any of the Seal functions' checks,
// so tests can build what a careless or hostile node would send.
func rawSeal(t testing.TB, rec record.Record, key crypto.PrivKey) []byte {
	t.Helper()
	env, err := record.Seal(rec, key)
	if err != nil {
		t.Fatal(err)
	}
	data, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// checkErr fails unless err wraps want and says each of says.
func checkErr(t testing.TB, err error, want error, says ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %q does not wrap %q", err, want)
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not say %q", err, s)
		}
	}
}
