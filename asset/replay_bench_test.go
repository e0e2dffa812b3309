package asset_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/finp2p/go-finp2p/asset"
)

// BenchmarkReplayGuardCheck measures recording a new request of one peer
// with the default limits, the clock moving 100 µs per request (10,000
// requests/s), and reports the memory the guard holds per remembered
// request.
func BenchmarkReplayGuardCheck(b *testing.B) {
	clock := &fakeClock{now: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	g, err := asset.NewReplayGuard(asset.WithReplayClock(clock.Now))
	if err != nil {
		b.Fatal(err)
	}
	n := make([]byte, asset.NonceSize)
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		i++
		binary.BigEndian.PutUint64(n, i)
		now := clock.Now()
		if err := g.Check(peerA, n, "key", now); err != nil {
			b.Fatalf("request %d: %v", i, err)
		}
		clock.Advance(100 * time.Microsecond)
	}
}
