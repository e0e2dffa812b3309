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

// BenchmarkOpen measures the check every receiver makes of an
// advertisement it has seen before (the DHT, the topic and the registrar
// each open the same bytes): the envelope signature is remembered, the
// certificate chain comes from the trust store's cache, the policy and the
// time and revocation checks are made again.
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

// BenchmarkOpenFirstSight measures the check of an advertisement a
// Verifier has not seen: envelope signature, policy, and the signer's chain
// (which the trust store has verified before, as it has every member's
// after its first message).
func BenchmarkOpenFirstSight(b *testing.B) {
	f := newFixture(b)
	sealed := f.sealed(b, f.bankX, nil)
	b.SetBytes(int64(len(sealed)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.verifier(false).Open(sealed); err != nil {
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

// BenchmarkDHTPutSelect measures what kad-dht does with an incoming record
// for a key it already holds: Validate the new value, then Select between
// it and the stored one.
func BenchmarkDHTPutSelect(b *testing.B) {
	f := newFixture(b)
	val := discovery.DHTValidator{V: f.verifier(false)}
	key := discovery.DHTKey("bank-x", f.bankX.id)
	old := f.sealed(b, f.bankX, func(a *discovery.Advertisement) { a.Seq = 1 })
	cur := f.sealed(b, f.bankX, func(a *discovery.Advertisement) { a.Seq = 2 })
	b.ReportAllocs()
	for b.Loop() {
		if err := val.Validate(key, cur); err != nil {
			b.Fatal(err)
		}
		if i, err := val.Select(key, [][]byte{cur, old}); err != nil || i != 0 {
			b.Fatalf("Select = %d, %v", i, err)
		}
	}
}

// BenchmarkDHTSelect measures Select among the values a lookup collected
// from several peers: three copies of the newest and two older ones.
func BenchmarkDHTSelect(b *testing.B) {
	f := newFixture(b)
	val := discovery.DHTValidator{V: f.verifier(false)}
	key := discovery.DHTKey("bank-x", f.bankX.id)
	seq := func(n uint64) []byte {
		return f.sealed(b, f.bankX, func(a *discovery.Advertisement) { a.Seq = n })
	}
	newest := seq(3)
	values := [][]byte{seq(1), newest, seq(2), newest, newest}
	b.ReportAllocs()
	for b.Loop() {
		if i, err := val.Select(key, values); err != nil || i != 1 {
			b.Fatalf("Select = %d, %v", i, err)
		}
	}
}
