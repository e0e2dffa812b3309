package resource_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/finp2p/go-finp2p/resource"
)

// FuzzParseID checks that every accepted string is exactly one of the two
// forms of its ID (so each resource has one string per form), that both
// forms parse back to the same ID, and that refusals wrap ErrBadID.
func FuzzParseID(f *testing.F) {
	for _, tc := range validIDs {
		f.Add(tc.canonical)
		f.Add("finp2p://" + tc.org + "/" + tc.typ + "/" + tc.local)
	}
	for _, s := range []string{"", "bank-x:102", "bank-x:loan:x", "bank-x:0102:x", "finp2p://bank-x/102/x?y", "FINP2P://bank-x/102/x", "bank-x:102:a%2F", "finp2p:/a/102/x", "bank-x:102:a:b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := resource.ParseID(s)
		if err != nil {
			if !errors.Is(err, resource.ErrBadID) {
				t.Fatalf("ParseID(%q) error %q does not wrap ErrBadID", s, err)
			}
			if !id.IsZero() {
				t.Fatalf("ParseID(%q) returned %v with an error", s, id)
			}
			return
		}
		if id.IsZero() {
			t.Fatalf("ParseID(%q) accepted a zero ID", s)
		}
		if s != id.String() && s != id.URI() {
			t.Fatalf("ParseID(%q) accepted a string that is neither %q nor %q", s, id.String(), id.URI())
		}
		for _, form := range []string{id.String(), id.URI()} {
			back, err := resource.ParseID(form)
			if err != nil || back != id {
				t.Fatalf("ParseID(%q) = %v, %v; want %v (from %q)", form, back, err, id, s)
			}
		}
		if n, err := resource.NewID(id.Org(), id.Type(), id.Local()); err != nil || n != id {
			t.Fatalf("NewID(parts of %q) = %v, %v", s, n, err)
		}
		text, err := id.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back resource.ID
		if err := back.UnmarshalText(text); err != nil || back != id {
			t.Fatalf("text round trip of %q: %v, %v", s, back, err)
		}
	})
}

// FuzzSignedACLRecord feeds arbitrary payloads to the ACL record decoder: it
// must not panic, and what it accepts must encode and decode to itself.
func FuzzSignedACLRecord(f *testing.F) {
	seed := &resource.SignedACL{
		ACL: resource.ACL{
			Resource: resource.MustParseID("bank-x:102:a"),
			Owner:    "bank-x",
			Version:  3,
			Public:   true,
			Grants:   map[string]resource.Right{"bank-y": resource.RightQuery, "bank-z": resource.AllRights},
		},
		Chain: [][]byte{[]byte("leaf"), []byte("ca")},
	}
	data, err := seed.MarshalRecord()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x01, 'x'})
	f.Fuzz(func(t *testing.T, data []byte) {
		var rec resource.SignedACL
		if err := rec.UnmarshalRecord(data); err != nil {
			if !errors.Is(err, resource.ErrBadACL) {
				t.Fatalf("error %q does not wrap ErrBadACL", err)
			}
			return
		}
		again, err := rec.MarshalRecord()
		if err != nil {
			t.Fatal(err)
		}
		var back resource.SignedACL
		if err := back.UnmarshalRecord(again); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(back, rec) {
			t.Fatalf("round trip: %+v, want %+v", back, rec)
		}
		if third, _ := back.MarshalRecord(); !bytes.Equal(third, again) {
			t.Fatal("encoding is not deterministic")
		}
	})
}

// FuzzOpenACL feeds arbitrary bytes to ACLVerifier.Open, seeded with a
// valid sealed ACL: it must not panic, refusals wrap one of the package's
// sentinels, and anything accepted is a valid ACL signed by its owner org.
func FuzzOpenACL(f *testing.F) {
	fx := newACLFixture(f)
	v := fx.verifier()
	f.Add(fx.seal(f, testACL(fx.bankX, 1), fx.bankX))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		acl, m, err := v.Open(data)
		if err != nil {
			for _, want := range []error{resource.ErrBadACL, resource.ErrForged, resource.ErrUntrustedSigner, resource.ErrTooLarge} {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("error %q wraps none of the ACL sentinels", err)
		}
		if err := acl.Validate(); err != nil {
			t.Fatalf("accepted an invalid ACL: %v", err)
		}
		if m.OrgID != acl.Owner || acl.Owner != acl.Resource.Org() {
			t.Fatalf("accepted ACL of %s owned by %q signed by org %q", acl.Resource, acl.Owner, m.OrgID)
		}
	})
}
