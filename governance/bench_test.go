package governance

import (
	"crypto/x509"
	"testing"
	"time"
)

// BenchmarkVerifyChain measures verifying the DER chain a peer presents, as
// every signed message's receiver does: a member certified by a governance
// CA (leaf and CA) and one certified by the founding root (leaf only), with
// the default verification cache (the chain is verified once, then found
// in the cache) and without it (verified from DER each time).
func BenchmarkVerifyChain(b *testing.B) {
	n := newTestNet(b)
	_, viaCA, _ := certify(b, n.gov, "bank-x", RoleMember)
	_, viaRoot, _ := certify(b, n.root, "bank-y", RoleMember)
	now := t0.Add(time.Hour)
	for _, cache := range []struct {
		name string
		opt  TrustStoreOption
	}{
		{"cached", WithVerifyCache(DefaultVerifyCacheSize)},
		{"uncached", WithVerifyCache(0)},
	} {
		store, err := NewTrustStore([]*x509.Certificate{n.root.Certificate()}, cache.opt)
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range []struct {
			name  string
			chain [][]byte
		}{
			{"leaf+ca", derChain(viaCA)},
			{"leaf", derChain(viaRoot)},
		} {
			b.Run(cache.name+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := store.VerifyDER(c.chain, now); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
