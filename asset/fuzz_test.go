package asset_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/finp2p/go-finp2p/asset"
	"github.com/finp2p/go-finp2p/ledger"
)

// FuzzOpenRequest feeds arbitrary bytes to RequestVerifier.Open: it never
// panics, refuses with an error that names a cause, and what it accepts is
// valid, hashes to RequestHash and opens again the same.
func FuzzOpenRequest(f *testing.F) {
	fx := newFixture(f)
	valid := fx.sealRequest(f, nil)
	f.Add(valid)
	f.Add(fx.sealRequest(f, func(r *asset.Request) { r.Operation, r.From, r.Quantity, r.HoldID = ledger.OpRelease, "", "", "h" }))
	f.Add(rawSeal(f, fx.request(func(r *asset.Request) { r.Quantity = "-1" }), fx.bankA.key))
	f.Add(fx.sealReceipt(f, fx.bankX, nil))
	f.Add(valid[:len(valid)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		vr, err := fx.reqV.Open(data)
		if err != nil {
			if vr != nil {
				t.Fatal("a result with an error")
			}
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if err := vr.Request.Validate(); err != nil {
			t.Fatalf("accepted an invalid request: %v", err)
		}
		if vr.Hash != asset.RequestHash(data) || !bytes.Equal(vr.Sealed, data) || vr.Signer.OrgID != vr.Request.RequesterOrg {
			t.Fatalf("accepted %+v", vr)
		}
		again, err := fx.reqV.Open(vr.Sealed)
		if err != nil || again.Hash != vr.Hash {
			t.Fatalf("opening again: %v", err)
		}
	})
}

// FuzzVerifyReceipt feeds arbitrary bytes to ReceiptVerifier.Verify: it
// never panics, and what it accepts is valid, owned by its signer's org and
// verifies again.
func FuzzVerifyReceipt(f *testing.F) {
	fx := newFixture(f)
	valid := fx.sealReceipt(f, fx.bankX, nil)
	f.Add(valid)
	f.Add(rawSeal(f, fx.receipt(func(r *asset.Receipt) { r.OwnerOrg = "bank-y" }), fx.bankX.key))
	f.Add(fx.sealRequest(f, nil))
	f.Add(valid[:len(valid)-1])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		vr, err := fx.rcptV.Verify(data)
		if err != nil {
			if vr != nil {
				t.Fatal("a result with an error")
			}
			if errors.Is(err, asset.ErrTooLarge) && len(data) <= asset.MaxReceiptSize {
				t.Fatalf("too large at %d bytes", len(data))
			}
			return
		}
		r := vr.Receipt
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted an invalid receipt: %v", err)
		}
		if vr.Signer.OrgID != r.OwnerOrg || vr.Signer.PeerID != r.Peer || !bytes.Equal(vr.Sealed, data) {
			t.Fatalf("accepted %+v signed by %+v", r, vr.Signer)
		}
		if _, err := fx.rcptV.Verify(vr.Sealed); err != nil {
			t.Fatalf("verifying again: %v", err)
		}
	})
}
