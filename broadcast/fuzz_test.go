package broadcast_test

import (
	"testing"

	"github.com/finp2p/go-finp2p/broadcast"
)

// FuzzOpenRequest feeds arbitrary bytes to RequestVerifier.Open: it must
// never panic, and never both accept and fail.
func FuzzOpenRequest(f *testing.F) {
	fx := newFixture(f)
	sealed, err := broadcast.SealRequest(fx.request(nil), fx.origin.key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add([]byte{})
	f.Add([]byte("junk"))
	f.Fuzz(func(t *testing.T, data []byte) {
		vr, err := fx.reqV.Open(data)
		if (vr == nil) == (err == nil) {
			t.Fatalf("Open returned %v and %v", vr, err)
		}
	})
}

// FuzzOpenResponse does the same for ResponseVerifier.Open.
func FuzzOpenResponse(f *testing.F) {
	fx := newFixture(f)
	f.Add(fx.sealResponse(f, fx.nodes[0], "42", 7, nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		vr, err := fx.respV.Open(data)
		if (vr == nil) == (err == nil) {
			t.Fatalf("Open returned %v and %v", vr, err)
		}
	})
}
