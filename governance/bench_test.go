package governance

import (
	"testing"
	"time"
)

// BenchmarkVerifyChain measures verifying the DER chain a peer presents, as
// every signed message's receiver does: a member certified by a governance
// CA (leaf and CA) and one certified by the founding root (leaf only).
func BenchmarkVerifyChain(b *testing.B) {
	n := newTestNet(b)
	_, viaCA, _ := certify(b, n.gov, "bank-x", RoleMember)
	_, viaRoot, _ := certify(b, n.root, "bank-y", RoleMember)
	now := t0.Add(time.Hour)
	for _, c := range []struct {
		name  string
		chain [][]byte
	}{
		{"leaf+ca", derChain(viaCA)},
		{"leaf", derChain(viaRoot)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := n.store.VerifyDER(c.chain, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
