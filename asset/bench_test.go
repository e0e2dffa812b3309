package asset_test

import (
	"testing"
)

// BenchmarkRequestOpen measures the owner's check of a sealed asset
// request: envelope signature, fields, window and the signer's chain.
func BenchmarkRequestOpen(b *testing.B) {
	f := newFixture(b)
	sealed := f.sealRequest(b, nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.reqV.Open(sealed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReceiptVerify measures the requester's check of a sealed
// receipt: envelope signature, fields and the signer's chain at SignedAt.
func BenchmarkReceiptVerify(b *testing.B) {
	f := newFixture(b)
	sealed := f.sealReceipt(b, f.bankX, nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.rcptV.Verify(sealed); err != nil {
			b.Fatal(err)
		}
	}
}
