package asset_test

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/finp2p/go-finp2p/asset"
)

// BenchmarkReplayGuardCheck measures recording a new request of one peer
// with the default bounds, the clock moving 100 µs per request (10,000
// requests/s), each with its own 36-character idempotency key, and reports
// the heap the guard holds per remembered request. Past 2.4 million
// requests (twice the default window at that rate) the oldest expire as
// new ones come, so -benchtime=3000000x shows the steady state.
func BenchmarkReplayGuardCheck(b *testing.B) {
	clock := &fakeClock{now: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	g, err := asset.NewReplayGuard(asset.WithReplayClock(clock.Now))
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	n := make([]byte, asset.NonceSize)
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		i++
		binary.BigEndian.PutUint64(n, i)
		if err := g.Check(peerA, n, keys[i%uint64(len(keys))], clock.Now()); err != nil {
			b.Fatalf("request %d: %v", i, err)
		}
		clock.Advance(100 * time.Microsecond)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if l := g.Len(); l > 0 {
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(l), "heap-B/entry")
		b.ReportMetric(float64(l), "entries")
	}
}
