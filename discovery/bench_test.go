package discovery_test

import (
	"context"
	"testing"

	"github.com/finp2p/go-finp2p/discovery"
)

// BenchmarkSeal measures signing an advertisement into its envelope.
func BenchmarkSeal(b *testing.B) {
	f := newFixture(b)
	ad := f.ad(f.bankX)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := discovery.Seal(ad, f.bankX.key); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen measures the full check every receiver makes of an
// advertisement: envelope signature, certificate chain, policy.
func BenchmarkOpen(b *testing.B) {
	f := newFixture(b)
	sealed := f.sealed(b, f.bankX, nil)
	v := f.verifier(false)
	b.SetBytes(int64(len(sealed)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Open(sealed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDirectoryPut measures a registrar registering a newer
// advertisement of one node: verify, compare, persist.
func BenchmarkDirectoryPut(b *testing.B) {
	f := newFixture(b)
	dir := discovery.NewDirectory(newDatastore(), f.verifier(false), quiet)
	ads := make([][]byte, 0, 1024)
	for i := range cap(ads) {
		ad := f.ad(f.bankX)
		ad.Seq = uint64(i + 1)
		ads = append(ads, seal(b, ad, f.bankX.key))
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(ads) {
			b.StopTimer()
			dir = discovery.NewDirectory(newDatastore(), f.verifier(false), quiet)
			i = 0
			b.StartTimer()
		}
		if _, _, err := dir.Put(ctx, ads[i]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkDirectoryList measures a filtered listing of a directory of
// three records (two orgs, one with two nodes); the cost grows with the
// number of records, each checked for expiry and revocation.
func BenchmarkDirectoryList(b *testing.B) {
	f := newFixture(b)
	dir := discovery.NewDirectory(newDatastore(), f.verifier(false), quiet)
	ctx := context.Background()
	for _, m := range []member{f.bankX, f.bankX2, f.bankY} {
		if _, _, err := dir.Put(ctx, f.sealed(b, m, nil)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if got := dir.List(discovery.Filter{Service: "custody"}); len(got) != 3 {
			b.Fatalf("listed %d", len(got))
		}
	}
}
