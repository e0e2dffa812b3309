package resource_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/record"
	"google.golang.org/protobuf/proto"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/testnet"
	"github.com/finp2p/go-finp2p/resource"
	"github.com/finp2p/go-finp2p/resource/pb"
)

// aclSigner is a certified node of a test network: its key, its DER chain
// (leaf first) and what the chain proves.
type aclSigner struct {
	key    crypto.PrivKey
	chain  [][]byte
	member governance.Member
}

// aclClock is a fixed clock a test moves by hand.
type aclClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *aclClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *aclClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// aclFixture is a certified network with two nodes of bank-x and one of
// bank-y, a trust store of its genesis roots and a clock.
type aclFixture struct {
	net    *testnet.Network
	trust  *governance.TrustStore
	clock  *aclClock
	bankX  aclSigner
	bankX2 aclSigner
	bankY  aclSigner
}

func newACLFixture(t testing.TB) *aclFixture {
	t.Helper()
	f := &aclFixture{net: testnet.NewEmpty(t), clock: &aclClock{now: time.Now()}}
	f.trust = f.newTrust(t)
	f.bankX = f.newSigner(t, "bank-x")
	f.bankX2 = f.newSigner(t, "bank-x")
	f.bankY = f.newSigner(t, "bank-y")
	return f
}

// newTrust returns a fresh trust store of the genesis roots.
func (f *aclFixture) newTrust(t testing.TB) *governance.TrustStore {
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

func (f *aclFixture) newSigner(t testing.TB, org string) aclSigner {
	t.Helper()
	repo := f.net.Repo(org, governance.RoleMember, f.net.Governance)
	raw, err := governance.ReadKeyFile(filepath.Join(repo, "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := crypto.UnmarshalEd25519PrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := governance.LoadCertificatesPEM(filepath.Join(repo, "node.pem"))
	if err != nil {
		t.Fatal(err)
	}
	chain := make([][]byte, len(certs))
	for i, c := range certs {
		chain[i] = c.Raw
	}
	m, err := f.trust.VerifyDER(chain, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if m.OrgID != org {
		t.Fatalf("certificate is of org %q, want %q", m.OrgID, org)
	}
	return aclSigner{key: key, chain: chain, member: m}
}

func (f *aclFixture) verifier() *resource.ACLVerifier {
	return &resource.ACLVerifier{Trust: f.trust, Now: f.clock.Now}
}

// revokedTrust returns a fresh trust store that knows s's certificate is
// revoked.
func (f *aclFixture) revokedTrust(t testing.TB, s aclSigner) *governance.TrustStore {
	t.Helper()
	trust := f.newTrust(t)
	now := f.clock.Now()
	if err := f.net.Governance.Revoke(s.member.Serial, 1, now.Add(-time.Second)); err != nil {
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
	return trust
}

// seal seals acl with s's key and chain.
func (f *aclFixture) seal(t testing.TB, acl resource.ACL, s aclSigner) []byte {
	t.Helper()
	sealed, err := resource.SealACL(acl, s.chain, s.key)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

// testACL is a valid ACL of a resource of s's org at version.
func testACL(s aclSigner, version uint64) resource.ACL {
	org := s.member.OrgID
	return resource.ACL{
		Resource: resource.MustParseID(org + ":102:" + testUUID),
		Owner:    org,
		Version:  version,
		Grants:   map[string]resource.Right{"bank-z": resource.RightRead | resource.RightQuery},
	}
}

// sealRaw seals rec as is, without SealACL's checks, to build what a
// misbehaving node could send.
func sealRaw(t testing.TB, rec record.Record, key crypto.PrivKey) []byte {
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

// rawRecord is a record with any domain, payload type and payload.
type rawRecord struct {
	domain, codec string
	payload       []byte
}

func (r *rawRecord) Domain() string                    { return r.domain }
func (r *rawRecord) Codec() []byte                     { return []byte(r.codec) }
func (r *rawRecord) MarshalRecord() ([]byte, error)    { return r.payload, nil }
func (r *rawRecord) UnmarshalRecord(data []byte) error { r.payload = data; return nil }

// wantACLErr fails unless err wraps every one of want and mentions every
// part.
func wantACLErr(t testing.TB, err error, want []error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", want)
	}
	for _, w := range want {
		if !errors.Is(err, w) {
			t.Errorf("error %q does not wrap %q", err, w)
		}
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}

func TestParseRights(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want resource.Right
	}{
		{"read", resource.RightRead},
		{"read,subscribe", resource.RightRead | resource.RightSubscribe},
		{"query, transact", resource.RightQuery | resource.RightTransact},
		{"transact,read,read", resource.RightRead | resource.RightTransact},
		{"read,subscribe,query,transact", resource.AllRights},
	} {
		got, err := resource.ParseRights(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseRights(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if back, err := resource.ParseRights(got.String()); err != nil || back != got {
			t.Errorf("ParseRights(%q.String() = %q) = %v, %v", tc.in, got.String(), back, err)
		}
	}
	for _, in := range []string{"", " ", "read,", ",read", "read,,query", "Read", "write", "read;query", "all"} {
		if r, err := resource.ParseRights(in); !errors.Is(err, resource.ErrBadRight) {
			t.Errorf("ParseRights(%q) = %v, %v; want ErrBadRight", in, r, err)
		}
	}
}

func TestRightString(t *testing.T) {
	for r, want := range map[resource.Right]string{
		0:                  "none",
		resource.RightRead: "read",
		resource.RightSubscribe | resource.RightRead: "read,subscribe",
		resource.AllRights:                           "read,subscribe,query,transact",
		resource.RightQuery | 0x40:                   "query,0x40",
	} {
		if got := r.String(); got != want {
			t.Errorf("Right(%#x).String() = %q, want %q", uint8(r), got, want)
		}
	}
}

func TestRightHas(t *testing.T) {
	rw := resource.RightRead | resource.RightTransact
	for _, tc := range []struct {
		want resource.Right
		has  bool
	}{
		{resource.RightRead, true},
		{resource.RightTransact, true},
		{rw, true},
		{resource.RightRead | resource.RightQuery, false},
		{resource.RightSubscribe, false},
		{0, false},
	} {
		if got := rw.Has(tc.want); got != tc.has {
			t.Errorf("(%v).Has(%v) = %v, want %v", rw, tc.want, got, tc.has)
		}
	}
}

func TestRightJSON(t *testing.T) {
	grants := map[string]resource.Right{"bank-y": resource.RightRead | resource.RightQuery}
	out, err := json.Marshal(grants)
	if err != nil || string(out) != `{"bank-y":"read,query"}` {
		t.Fatalf("JSON = %s, %v", out, err)
	}
	var back map[string]resource.Right
	if err := json.Unmarshal(out, &back); err != nil || !reflect.DeepEqual(back, grants) {
		t.Errorf("JSON round trip = %v, %v", back, err)
	}
	if _, err := json.Marshal(resource.Right(0)); !errors.Is(err, resource.ErrBadRight) {
		t.Errorf("JSON of no rights: %v, want ErrBadRight", err)
	}
	if err := json.Unmarshal([]byte(`{"bank-y":"read,write"}`), &back); !errors.Is(err, resource.ErrBadRight) {
		t.Errorf("JSON with an unknown right: %v, want ErrBadRight", err)
	}
}

func TestACLAllows(t *testing.T) {
	acl := resource.ACL{
		Resource: resource.MustParseID("bank-x:102:a"),
		Owner:    "bank-x",
		Grants: map[string]resource.Right{
			"bank-y": resource.RightRead | resource.RightQuery,
			"bank-z": resource.RightTransact,
		},
	}
	public := acl.Clone()
	public.Public = true
	for _, tc := range []struct {
		name  string
		acl   resource.ACL
		org   string
		right resource.Right
		want  bool
	}{
		{"owner has every right", acl, "bank-x", resource.AllRights, true},
		{"owner transacts", acl, "bank-x", resource.RightTransact, true},
		{"granted right", acl, "bank-y", resource.RightQuery, true},
		{"granted rights together", acl, "bank-y", resource.RightRead | resource.RightQuery, true},
		{"one right not granted", acl, "bank-y", resource.RightRead | resource.RightTransact, false},
		{"right not granted", acl, "bank-y", resource.RightSubscribe, false},
		{"other org's grant", acl, "bank-z", resource.RightRead, false},
		{"no grant", acl, "bank-w", resource.RightRead, false},
		{"empty org", acl, "", resource.RightRead, false},
		{"no right asked", acl, "bank-x", 0, false},
		{"unknown right asked", acl, "bank-x", 0x10, false},
		{"public read", public, "bank-w", resource.RightRead, true},
		{"public subscribe", public, "bank-w", resource.RightSubscribe | resource.RightRead, true},
		{"public is not query", public, "bank-w", resource.RightQuery, false},
		{"public is not transact", public, "bank-w", resource.RightTransact, false},
		{"public and grant combine", public, "bank-z", resource.RightSubscribe | resource.RightTransact, true},
		{"public and grant, one missing", public, "bank-z", resource.RightQuery | resource.RightRead, false},
		{"zero ACL", resource.ACL{}, "bank-x", resource.RightRead, false},
	} {
		if got := tc.acl.Allows(tc.org, tc.right); got != tc.want {
			t.Errorf("%s: Allows(%q, %v) = %v, want %v", tc.name, tc.org, tc.right, got, tc.want)
		}
	}
}

func TestACLValidate(t *testing.T) {
	id := resource.MustParseID("bank-x:102:a")
	valid := resource.ACL{Resource: id, Owner: "bank-x", Version: 1, Grants: map[string]resource.Right{"bank-y": resource.RightRead}}
	if err := valid.Validate(); err != nil {
		t.Fatalf("valid ACL: %v", err)
	}
	if err := (resource.ACL{Resource: id, Owner: "bank-x", Public: true}).Validate(); err != nil {
		t.Errorf("public ACL without grants: %v", err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*resource.ACL)
		parts []string
	}{
		{"no resource", func(a *resource.ACL) { a.Resource = resource.ID{} }, []string{"no resource"}},
		{"no owner", func(a *resource.ACL) { a.Owner = "" }, []string{"owner", `"bank-x"`}},
		{"other owner", func(a *resource.ACL) { a.Owner = "bank-y" }, []string{"owner", `"bank-y"`, "resource's org"}},
		{"grant to owner", func(a *resource.ACL) { a.Grants["bank-x"] = resource.RightRead }, []string{"grant to the owner org"}},
		{"empty grant", func(a *resource.ACL) { a.Grants["bank-z"] = 0 }, []string{`"bank-z"`, "no rights"}},
		{"unknown right", func(a *resource.ACL) { a.Grants["bank-z"] = resource.RightRead | 0x80 }, []string{`"bank-z"`, "unknown rights", "0x80"}},
		{"bad org id", func(a *resource.ACL) { a.Grants["Bank Z"] = resource.RightRead }, []string{`"Bank Z"`}},
		{"empty org id", func(a *resource.ACL) { a.Grants[""] = resource.RightRead }, []string{`organisation id ""`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			acl := valid.Clone()
			tc.edit(&acl)
			wantACLErr(t, acl.Validate(), []error{resource.ErrBadACL}, tc.parts...)
		})
	}
}

func TestACLClone(t *testing.T) {
	a := resource.ACL{Owner: "bank-x", Grants: map[string]resource.Right{"bank-y": resource.RightRead}}
	b := a.Clone()
	b.Grants["bank-y"] = resource.AllRights
	if a.Grants["bank-y"] != resource.RightRead {
		t.Error("Clone shares its grants")
	}
}

func TestSignedACLRecordRoundTrip(t *testing.T) {
	rec := &resource.SignedACL{
		ACL: resource.ACL{
			Resource: resource.MustParseID("bank-x:acme.loan:L-1"),
			Owner:    "bank-x",
			Version:  7,
			Public:   true,
			Grants:   map[string]resource.Right{"bank-z": resource.RightQuery, "bank-y": resource.AllRights},
		},
		Chain: [][]byte{[]byte("leaf"), []byte("ca")},
	}
	data, err := rec.MarshalRecord()
	if err != nil {
		t.Fatal(err)
	}
	var back resource.SignedACL
	if err := back.UnmarshalRecord(data); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, rec) {
		t.Errorf("round trip = %+v, want %+v", back, *rec)
	}
	// Grants are written sorted, so one ACL has one encoding.
	var m pb.ACL
	if err := proto.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Grants) != 2 || m.Grants[0].Org != "bank-y" || m.Grants[1].Org != "bank-z" {
		t.Errorf("grants encoded as %v, want sorted by org", m.Grants)
	}
}

func TestSignedACLRecordRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		msg   *pb.ACL
		parts []string
	}{
		{"bad resource", &pb.ACL{Resource: "bank-x:loan:1", Owner: "bank-x"}, []string{"resource", "type part"}},
		{"duplicate grant", &pb.ACL{Resource: "bank-x:102:1", Owner: "bank-x", Grants: []*pb.ACLGrant{{Org: "bank-y", Rights: 1}, {Org: "bank-y", Rights: 2}}}, []string{`"bank-y"`, "more than one grant"}},
		{"rights too wide", &pb.ACL{Resource: "bank-x:102:1", Owner: "bank-x", Grants: []*pb.ACLGrant{{Org: "bank-y", Rights: 0x101}}}, []string{`"bank-y"`, "unknown rights"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := proto.Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			var rec resource.SignedACL
			wantACLErr(t, rec.UnmarshalRecord(data), []error{resource.ErrBadACL}, tc.parts...)
		})
	}
	var rec resource.SignedACL
	wantACLErr(t, rec.UnmarshalRecord([]byte{0xff}), []error{resource.ErrBadACL})
}

func TestSealAndOpenACL(t *testing.T) {
	f := newACLFixture(t)
	v := f.verifier()
	for _, s := range []aclSigner{f.bankX, f.bankX2} {
		acl := testACL(s, 3)
		acl.Public = true
		acl.Grants["bank-y"] = resource.AllRights
		got, m, err := v.Open(f.seal(t, acl, s))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, acl) {
			t.Errorf("Open = %+v, want %+v", got, acl)
		}
		if m.OrgID != "bank-x" || m.PeerID != s.member.PeerID {
			t.Errorf("signer = %s of %s, want %s of bank-x", m.PeerID, m.OrgID, s.member.PeerID)
		}
	}
	// An ACL with no grants, of a custom resource type.
	acl := resource.ACL{Resource: resource.MustParseID("bank-y:acme.loan:x"), Owner: "bank-y", Version: 1}
	if got, _, err := v.Open(f.seal(t, acl, f.bankY)); err != nil || !reflect.DeepEqual(got, acl) {
		t.Errorf("Open = %+v, %v; want %+v", got, err, acl)
	}
}

func TestSealACLRefuses(t *testing.T) {
	f := newACLFixture(t)
	t.Run("invalid ACL", func(t *testing.T) {
		acl := testACL(f.bankX, 1)
		acl.Grants["bank-x"] = resource.RightRead
		_, err := resource.SealACL(acl, f.bankX.chain, f.bankX.key)
		wantACLErr(t, err, []error{resource.ErrBadACL}, "seal ACL", "grant to the owner org")
	})
	t.Run("another node's chain", func(t *testing.T) {
		_, err := resource.SealACL(testACL(f.bankX, 1), f.bankX2.chain, f.bankX.key)
		wantACLErr(t, err, []error{resource.ErrForged}, "not the signing key's")
	})
	t.Run("no chain", func(t *testing.T) {
		_, err := resource.SealACL(testACL(f.bankX, 1), nil, f.bankX.key)
		wantACLErr(t, err, []error{resource.ErrForged}, "no certificate chain")
	})
	t.Run("chain does not parse", func(t *testing.T) {
		_, err := resource.SealACL(testACL(f.bankX, 1), [][]byte{[]byte("junk")}, f.bankX.key)
		wantACLErr(t, err, nil, "leaf certificate")
	})
	t.Run("too large", func(t *testing.T) {
		acl := testACL(f.bankX, 1)
		for i := range 2000 {
			acl.Grants[fmt.Sprintf("org-%04d-%s", i, strings.Repeat("x", 40))] = resource.RightRead
		}
		_, err := resource.SealACL(acl, f.bankX.chain, f.bankX.key)
		wantACLErr(t, err, []error{resource.ErrTooLarge}, "at most 65536")
	})
}

func TestOpenACLRefuses(t *testing.T) {
	f := newACLFixture(t)
	valid := testACL(f.bankX, 1)
	sealed := f.seal(t, valid, f.bankX)
	payload, err := (&resource.SignedACL{ACL: valid, Chain: f.bankX.chain}).MarshalRecord()
	if err != nil {
		t.Fatal(err)
	}
	signed := func(acl resource.ACL, chain [][]byte, key crypto.PrivKey) []byte {
		return sealRaw(t, &resource.SignedACL{ACL: acl, Chain: chain}, key)
	}
	withOwner := valid.Clone()
	withOwner.Owner = "bank-y"
	grantToOwner := valid.Clone()
	grantToOwner.Grants["bank-x"] = resource.RightRead
	otherKey, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	secpKey, _, err := crypto.GenerateSecp256k1Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	tampered := append([]byte(nil), sealed...)
	tampered[len(tampered)-70] ^= 1 // inside the payload, before the signature

	for _, tc := range []struct {
		name   string
		sealed []byte
		v      *resource.ACLVerifier
		want   []error
		parts  []string
	}{
		{"too large", make([]byte, resource.MaxACLSize+1), nil, []error{resource.ErrTooLarge}, []string{"65537 bytes"}},
		{"garbage", []byte("not an envelope"), nil, []error{resource.ErrBadACL}, []string{"envelope"}},
		{"empty", nil, nil, []error{resource.ErrBadACL}, nil},
		{"tampered", tampered, nil, []error{resource.ErrBadACL}, []string{"envelope"}},
		{"another domain", sealRaw(t, &rawRecord{domain: "finp2p-advertisement", codec: "/finp2p/acl/1", payload: payload}, f.bankX.key), nil, []error{resource.ErrBadACL}, []string{"signature"}},
		{"another payload type", sealRaw(t, &rawRecord{domain: resource.ACLDomain, codec: "/finp2p/other/1", payload: payload}, f.bankX.key), nil, []error{resource.ErrBadACL}, []string{"payload type", `"/finp2p/other/1"`}},
		{"payload does not decode", sealRaw(t, &rawRecord{domain: resource.ACLDomain, codec: "/finp2p/acl/1", payload: []byte{0xff}}, f.bankX.key), nil, []error{resource.ErrBadACL}, nil},
		{"owner is not the resource's org", signed(withOwner, f.bankY.chain, f.bankY.key), nil, []error{resource.ErrForged}, []string{`owner "bank-y"`, `belongs to "bank-x"`}},
		{"invalid ACL", signed(grantToOwner, f.bankX.chain, f.bankX.key), nil, []error{resource.ErrBadACL}, []string{"grant to the owner org"}},
		{"signed by another org", signed(valid, f.bankY.chain, f.bankY.key), nil, []error{resource.ErrForged}, []string{`owned by "bank-x"`, `org "bank-y"`, f.bankY.member.PeerID.String()}},
		{"chain of another node", signed(valid, f.bankX2.chain, f.bankX.key), nil, []error{resource.ErrForged, governance.ErrKeyMismatch}, []string{"signer's certificate"}},
		{"uncertified key", signed(valid, f.bankX.chain, otherKey), nil, []error{resource.ErrForged, governance.ErrKeyMismatch}, nil},
		{"not an Ed25519 key", signed(valid, f.bankX.chain, secpKey), nil, []error{resource.ErrForged}, []string{"not Ed25519"}},
		{"no chain", signed(valid, nil, f.bankX.key), nil, []error{resource.ErrUntrustedSigner, governance.ErrUntrustedChain}, []string{"empty certificate chain"}},
		{"junk chain", signed(valid, [][]byte{[]byte("junk")}, f.bankX.key), nil, []error{resource.ErrUntrustedSigner, governance.ErrUntrustedChain}, nil},
		{"signer expired", sealed, &resource.ACLVerifier{Trust: f.trust, Now: func() time.Time { return time.Now().Add(7 * time.Hour) }}, []error{resource.ErrUntrustedSigner, governance.ErrExpired}, nil},
		{"signer revoked", sealed, &resource.ACLVerifier{Trust: f.revokedTrust(t, f.bankX), Now: f.clock.Now}, []error{resource.ErrUntrustedSigner, governance.ErrRevoked}, nil},
		{"no trust store", sealed, &resource.ACLVerifier{}, []error{resource.ErrUntrustedSigner}, []string{"no trust store"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.v
			if v == nil {
				v = f.verifier()
			}
			acl, m, err := v.Open(tc.sealed)
			wantACLErr(t, err, tc.want, tc.parts...)
			if !reflect.DeepEqual(acl, resource.ACL{}) || m.OrgID != "" {
				t.Errorf("Open returned %+v, %+v with its error", acl, m)
			}
		})
	}
	// The revocation above is on another trust store: the fixture's still
	// accepts the ACL.
	if _, _, err := f.verifier().Open(sealed); err != nil {
		t.Fatalf("valid ACL: %v", err)
	}
}
