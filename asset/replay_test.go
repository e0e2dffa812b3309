package asset_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/finp2p/go-finp2p/asset"
)

// fakeClock is a settable clock safe for concurrent use.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func nonce(b byte) []byte { return bytes.Repeat([]byte{b}, asset.NonceSize) }

func newGuard(t *testing.T, opts ...asset.ReplayOption) (*asset.ReplayGuard, *fakeClock) {
	t.Helper()
	clock := &fakeClock{now: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	g, err := asset.NewReplayGuard(append([]asset.ReplayOption{asset.WithReplayWindow(time.Minute), asset.WithReplayClock(clock.Now)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return g, clock
}

const peerA, peerB, peerC = peer.ID("peer-a"), peer.ID("peer-b"), peer.ID("peer-c")

func TestReplayGuard(t *testing.T) {
	g, clock := newGuard(t)
	ts := clock.Now()
	if err := g.Check(peerA, nonce(1), "key-1", ts); err != nil {
		t.Fatalf("first sighting: %v", err)
	}
	if err := g.Check(peerA, nonce(1), "key-1", ts); err != nil {
		t.Fatalf("retry of the same request: %v", err)
	}
	err := g.Check(peerA, nonce(1), "key-2", ts)
	checkErr(t, err, errs(asset.ErrReplay), fmt.Sprintf("nonce %x of peer %s", nonce(1), peerA), `idempotency key "key-1", now with "key-2"`)
	checkErr(t, g.Seen(peerA, nonce(1), ts), errs(asset.ErrReplay), "first seen at 2026-03-04T05:06:07Z")
	if err := g.Check(peerB, nonce(1), "key-2", ts); err != nil {
		t.Fatalf("same nonce of another peer: %v", err)
	}

	// Seen refuses any second sighting, and a request it recorded has no
	// retry.
	if err := g.Seen(peerA, nonce(2), ts); err != nil {
		t.Fatal(err)
	}
	checkErr(t, g.Seen(peerA, nonce(2), ts), errs(asset.ErrReplay))
	checkErr(t, g.Check(peerA, nonce(2), "", ts), errs(asset.ErrReplay))
	checkErr(t, g.Check(peerA, nonce(2), "key-1", ts), errs(asset.ErrReplay))

	checkErr(t, g.Check(peerA, nonce(3), "k", ts.Add(-time.Minute-time.Nanosecond)), errs(asset.ErrStaleRequest), "outside the 1m0s window")
	checkErr(t, g.Check(peerA, nonce(3), "k", ts.Add(time.Minute+time.Nanosecond)), errs(asset.ErrStaleRequest))
	checkErr(t, g.Check(peerA, nonce(3)[:15], "k", ts), errs(asset.ErrBadRequest), "nonce of 15 bytes")
	if g.Len() != 3 {
		t.Fatalf("Len = %d, want 3", g.Len())
	}

	// A request is remembered for twice the window from its first sighting.
	clock.Advance(2*time.Minute - time.Nanosecond)
	checkErr(t, g.Check(peerA, nonce(1), "key-2", clock.Now()), errs(asset.ErrReplay))
	clock.Advance(time.Nanosecond)
	if n := g.Len(); n != 0 {
		t.Fatalf("Len after expiry = %d, want 0", n)
	}
	if err := g.Check(peerA, nonce(1), "key-2", clock.Now()); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}

func TestReplayGuardBounded(t *testing.T) {
	g, clock := newGuard(t, asset.WithReplayLimits(3, 2))
	t0 := clock.Now()
	for i, p := range []peer.ID{peerA, peerA} {
		if err := g.Check(p, nonce(byte(i)), "k", clock.Now()); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
	}
	checkErr(t, g.Check(peerA, nonce(2), "k", t0), errs(asset.ErrReplayGuardFull), "2 requests of peer "+peerA.String(), "at most 2 per peer")
	if err := g.Check(peerB, nonce(3), "k", t0); err != nil {
		t.Fatal(err)
	}
	checkErr(t, g.Check(peerC, nonce(9), "k", t0), errs(asset.ErrReplayGuardFull), "3 requests seen in the last 2m0s, at most 3")
	// Retries of remembered requests still pass when full.
	if err := g.Check(peerA, nonce(0), "k", t0); err != nil {
		t.Fatalf("retry when full: %v", err)
	}
	// The oldest expires first and makes room.
	clock.Advance(2*time.Minute - 2*time.Second)
	if n := g.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}
	if err := g.Check(peerC, nonce(9), "k", clock.Now()); err != nil {
		t.Fatalf("after the oldest expired: %v", err)
	}
	checkErr(t, g.Check(peerA, nonce(8), "k", clock.Now()), errs(asset.ErrReplayGuardFull), "at most 3")
	// Everything expires in time, and the guard keeps working.
	clock.Advance(10 * time.Minute)
	for i := range 3 {
		err := g.Check(peerA, nonce(byte(20+i)), "k", clock.Now())
		if i < 2 && err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			checkErr(t, err, errs(asset.ErrReplayGuardFull), "per peer")
		}
	}
}

func TestReplayGuardOptions(t *testing.T) {
	for name, opt := range map[string]asset.ReplayOption{
		"zero window":   asset.WithReplayWindow(0),
		"zero limit":    asset.WithReplayLimits(0, 1),
		"zero per peer": asset.WithReplayLimits(1, 0),
		"nil clock":     asset.WithReplayClock(nil),
	} {
		if _, err := asset.NewReplayGuard(opt); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := asset.NewReplayGuard(); err != nil {
		t.Fatal(err)
	}
}

// TestReplayGuardConcurrent sends each request from many goroutines at
// once: exactly one sighting of each is new under Seen.
func TestReplayGuardConcurrent(t *testing.T) {
	g, clock := newGuard(t)
	const requests, senders = 50, 8
	var mu sync.Mutex
	accepted := map[byte]int{}
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for i := range requests {
				if err := g.Seen(peerA, nonce(byte(i)), clock.Now()); err == nil {
					mu.Lock()
					accepted[byte(i)]++
					mu.Unlock()
				}
				clock.Advance(time.Millisecond)
			}
		})
	}
	wg.Wait()
	for i := range requests {
		if accepted[byte(i)] != 1 {
			t.Fatalf("request %d accepted %d times", i, accepted[byte(i)])
		}
	}
}
