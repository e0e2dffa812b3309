package discovery_test

import (
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	record "github.com/libp2p/go-libp2p-record"
	mh "github.com/multiformats/go-multihash"

	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/governance"
)

// The node hands DHTValidator to kad-dht as the finp2p-org namespace's validator.
var _ record.Validator = discovery.DHTValidator{}

func TestDHTKey(t *testing.T) {
	f := newFixture(t)
	want := "/finp2p-org/bank-x/" + f.bankX.id.String()
	if got := discovery.DHTKey("bank-x", f.bankX.id); got != want {
		t.Errorf("DHTKey = %q, want %q", got, want)
	}
	if discovery.DHTKey("bank-x", f.bankX.id) == discovery.DHTKey("bank-x", f.bankX2.id) {
		t.Error("two nodes of one org share a DHT key")
	}
}

func TestDHTValidate(t *testing.T) {
	f := newFixture(t)
	val := discovery.DHTValidator{V: f.verifier(false)}
	sealed := f.sealed(t, f.bankX, nil)
	expired := f.sealed(t, f.bankX, func(a *discovery.Advertisement) { a.Expires = f.clock.Now().Add(-1) })
	id := f.bankX.id.String()

	if err := val.Validate(discovery.DHTKey("bank-x", f.bankX.id), sealed); err != nil {
		t.Fatalf("Validate under its own key: %v", err)
	}
	cases := []struct {
		name  string
		key   string
		value []byte
		want  error // nil: any error
		parts []string
	}{
		{"other org's key", discovery.DHTKey("bank-y", f.bankX.id), sealed, discovery.ErrForged, []string{"/finp2p-org/bank-y/" + id}},
		{"other peer's key", discovery.DHTKey("bank-x", f.bankX2.id), sealed, discovery.ErrForged, []string{f.bankX2.id.String()}},
		{"empty org", discovery.DHTKey("", f.bankX.id), sealed, discovery.ErrForged, nil},
		{"other namespace", "/pk/bank-x/" + id, sealed, nil, []string{"namespace", "finp2p-org"}},
		{"namespace prefix only", "/finp2p-orgs/bank-x/" + id, sealed, nil, []string{"namespace"}},
		{"no peer", "/finp2p-org/bank-x", sealed, nil, []string{"/finp2p-org/<org>/<peer>"}},
		{"bad peer", "/finp2p-org/bank-x/not-a-peer", sealed, nil, []string{"peer"}},
		{"trailing component", "/finp2p-org/bank-x/" + id + "/extra", sealed, nil, []string{"peer"}},
		{"expired", discovery.DHTKey("bank-x", f.bankX.id), expired, discovery.ErrExpired, nil},
		{"garbage", discovery.DHTKey("bank-x", f.bankX.id), []byte("garbage"), discovery.ErrMalformed, nil},
		{"empty", discovery.DHTKey("bank-x", f.bankX.id), nil, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := val.Validate(tc.key, tc.value)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.want != nil {
				wantErr(t, err, tc.want, tc.parts...)
			} else {
				wantMsg(t, err, tc.parts...)
			}
		})
	}
}

func TestDHTSelect(t *testing.T) {
	f := newFixture(t)
	val := discovery.DHTValidator{V: f.verifier(false)}
	key := discovery.DHTKey("bank-x", f.bankX.id)
	seq := func(n uint64) []byte {
		return f.sealed(t, f.bankX, func(a *discovery.Advertisement) { a.Seq = n })
	}
	// Invalid values with higher sequence numbers than any valid one.
	expired := f.sealed(t, f.bankX, func(a *discovery.Advertisement) { a.Seq = 9; a.Expires = f.clock.Now().Add(-1) })
	otherNode := f.sealed(t, f.bankX2, func(a *discovery.Advertisement) { a.Seq = 9 })
	forged := f.sealed(t, f.bankX, func(a *discovery.Advertisement) { a.Seq = 9; a.Org = "bank-y" })

	cases := []struct {
		name   string
		values [][]byte
		want   int
	}{
		{"one", [][]byte{seq(1)}, 0},
		{"highest wins", [][]byte{seq(1), seq(3), seq(2)}, 1},
		{"highest last", [][]byte{seq(1), seq(2), seq(3)}, 2},
		{"invalid skipped", [][]byte{expired, otherNode, seq(2), forged, []byte("junk"), seq(1), nil}, 2},
		{"invalid first", [][]byte{forged, seq(1)}, 1},
		{"tie keeps the first", [][]byte{seq(4), f.sealed(t, f.bankX, func(a *discovery.Advertisement) { a.Seq = 4; a.Version = "b" })}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := val.Select(key, tc.values)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Select = %d, want %d", got, tc.want)
			}
		})
	}
	for name, values := range map[string][][]byte{
		"only invalid": {expired, otherNode, forged, []byte("junk")},
		"none":         nil,
	} {
		t.Run(name, func(t *testing.T) {
			if got, err := val.Select(key, values); err == nil {
				t.Errorf("Select = %d, want an error", got)
			}
		})
	}
	t.Run("key outside the namespace", func(t *testing.T) {
		if got, err := val.Select("/pk/"+f.bankX.id.String(), [][]byte{seq(1)}); err == nil {
			t.Errorf("Select = %d, want an error", got)
		}
	})
}

func TestOrgCID(t *testing.T) {
	a, b := discovery.OrgCID("bank-x"), discovery.OrgCID("bank-x")
	if !a.Equals(b) {
		t.Errorf("OrgCID is not deterministic: %s, %s", a, b)
	}
	if a.Equals(discovery.OrgCID("bank-y")) {
		t.Error("two orgs share an OrgCID")
	}
	if a.Equals(discovery.OrgCID("")) {
		t.Error("OrgCID of bank-x is that of the empty org")
	}
	if a.Version() != 1 || a.Type() != cid.Raw {
		t.Errorf("OrgCID is version %d, codec %#x; want a CIDv1 of raw", a.Version(), a.Type())
	}
	dec, err := mh.Decode(a.Hash())
	if err != nil {
		t.Fatal(err)
	}
	if dec.Code != mh.SHA2_256 {
		t.Errorf("OrgCID hash is %s, want sha2-256", dec.Name)
	}
	want, err := mh.Sum([]byte("finp2p-org/bank-x"), mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Equals(cid.NewCidV1(cid.Raw, want)) {
		t.Errorf("OrgCID(bank-x) = %s, want the CID of %q", a, "finp2p-org/bank-x")
	}
}

// TestDHTSelectVerifiesAgain checks that Select, which orders values by
// their unchecked sequence numbers and verifies only as many as it must,
// still refuses what Validate would: a forged signature claiming the
// highest sequence, and values that passed Validate before but have since
// expired or lost their signer's certificate to a revocation.
func TestDHTSelectVerifiesAgain(t *testing.T) {
	f := newFixture(t)
	trust := f.newTrust(t)
	val := discovery.DHTValidator{V: f.verifierWith(trust, false)}
	key := discovery.DHTKey("bank-x", f.bankX.id)
	seq := func(n uint64) []byte {
		return f.sealed(t, f.bankX, func(a *discovery.Advertisement) { a.Seq = n })
	}
	one, two := seq(1), seq(2)
	// The signature is the envelope's last field: a changed last byte keeps
	// the value decodable, with its sequence 9, but unsigned.
	badSig := seq(9)
	badSig[len(badSig)-1] ^= 1
	if err := val.Validate(key, badSig); err == nil {
		t.Fatal("Validate accepted a forged signature")
	}
	for _, v := range [][]byte{one, two} {
		if err := val.Validate(key, v); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := val.Select(key, [][]byte{one, badSig, two}); err != nil || got != 2 {
		t.Fatalf("Select = %d, %v; want 2 (the forged sequence 9 skipped)", got, err)
	}
	// Validated bytes are verified again: a later revocation refuses them.
	f.revoke(t, trust, f.bankX)
	wantErr(t, val.Validate(key, two), governance.ErrRevoked)
	if got, err := val.Select(key, [][]byte{one, two}); err == nil {
		t.Errorf("Select = %d after the signer's revocation, want an error", got)
	}

	// And so does the clock: an advertisement validated before it expired
	// is refused after.
	val = discovery.DHTValidator{V: f.verifier(false)}
	key2 := discovery.DHTKey("bank-x", f.bankX2.id)
	ad := f.sealed(t, f.bankX2, nil)
	if err := val.Validate(key2, ad); err != nil {
		t.Fatal(err)
	}
	if got, err := val.Select(key2, [][]byte{ad}); err != nil || got != 0 {
		t.Fatalf("Select = %d, %v", got, err)
	}
	f.clock.Add(time.Hour)
	wantErr(t, val.Validate(key2, ad), discovery.ErrExpired)
	if got, err := val.Select(key2, [][]byte{ad}); err == nil {
		t.Errorf("Select = %d after expiry, want an error", got)
	}
}
