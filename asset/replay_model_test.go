package asset_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/finp2p/go-finp2p/asset"
)

// replayModel is the replay guard's rule in its plainest form: a map of
// every (peer, nonce) with when it was first seen and its idempotency key,
// forgotten twice the window after, bounded in total and per peer. The
// test's clock only moves forward, so the order of sightings is the order
// of expiry.
type replayModel struct {
	window           time.Duration
	maxTotal, maxPer int
	seen             map[string]modelEntry
	perPeer          map[peer.ID]int
	order            []string // keys of seen, oldest first
}

type modelEntry struct {
	peer    peer.ID
	firstAt time.Time
	keyed   bool
	key     string
}

func (m *replayModel) expire(now time.Time) {
	for len(m.order) > 0 {
		e := m.seen[m.order[0]]
		if e.firstAt.Add(2 * m.window).After(now) {
			return
		}
		delete(m.seen, m.order[0])
		m.perPeer[e.peer]--
		m.order = m.order[1:]
	}
}

func (m *replayModel) check(p peer.ID, nonce []byte, keyed bool, key string, ts, now time.Time) error {
	if skew := now.Sub(ts); skew > m.window || -skew > m.window {
		return asset.ErrStaleRequest
	}
	m.expire(now)
	k := string(p) + "\x00" + string(nonce)
	if e, ok := m.seen[k]; ok {
		if keyed && e.keyed && e.key == key {
			return nil
		}
		return asset.ErrReplay
	}
	if len(m.seen) >= m.maxTotal {
		return asset.ErrReplayGuardFull
	}
	if m.perPeer[p] >= m.maxPer {
		return asset.ErrReplayGuardFull
	}
	m.seen[k] = modelEntry{peer: p, firstAt: now, keyed: keyed, key: key}
	m.perPeer[p]++
	m.order = append(m.order, k)
	return nil
}

// outcome names the sentinel an error wraps.
func outcome(err error) string {
	for _, s := range []error{asset.ErrStaleRequest, asset.ErrReplay, asset.ErrReplayGuardFull} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	if err != nil {
		return "other: " + err.Error()
	}
	return "accepted"
}

// TestReplayGuardMatchesModel runs random sightings through the guard and
// the model and requires the same answer to each, and the same count of
// remembered requests: the compact structure refuses exactly what the
// plain rule refuses. One run has bounds small enough to fill, the other
// holds thousands of requests per peer, across many blocks.
func TestReplayGuardMatchesModel(t *testing.T) {
	runs := []struct {
		name             string
		maxTotal, maxPer int
		nonces, steps    int
		maxStep          time.Duration
	}{
		{"small bounds", 7, 4, 12, 3000, 20 * time.Second},
		{"many per peer", 6000, 4000, 5000, 20000, 60 * time.Millisecond},
	}
	peers := []peer.ID{peerA, peerB, peerC}
	keys := []string{"", "k1", "k2", "a-longer-idempotency-key-of-36-chars"}
	for _, run := range runs {
		t.Run(run.name, func(t *testing.T) {
			g, clock := newGuard(t, asset.WithReplayLimits(run.maxTotal, run.maxPer))
			m := &replayModel{window: time.Minute, maxTotal: run.maxTotal, maxPer: run.maxPer, seen: map[string]modelEntry{}, perPeer: map[peer.ID]int{}}
			rng := rand.New(rand.NewPCG(1, uint64(run.maxTotal)))
			for step := range run.steps {
				if rng.IntN(3) == 0 {
					clock.Advance(time.Duration(rng.Int64N(int64(run.maxStep))))
				}
				now := clock.Now()
				p := peers[rng.IntN(len(peers))]
				n := make([]byte, asset.NonceSize)
				v := rng.IntN(run.nonces)
				n[0], n[1] = byte(v), byte(v>>8)
				ts := now.Add(time.Duration(rng.Int64N(int64(150*time.Second))) - 75*time.Second)
				keyed := rng.IntN(4) != 0
				key := keys[rng.IntN(len(keys))]
				var got error
				if keyed {
					got = g.Check(p, n, key, ts)
				} else {
					got = g.Seen(p, n, ts)
				}
				want := m.check(p, n, keyed, key, ts, now)
				if outcome(got) != outcome(want) {
					t.Fatalf("step %d: %s nonce %d key %q keyed %v: guard says %v, model %s", step, p, v, key, keyed, got, outcome(want))
				}
				if step%97 == 0 {
					m.expire(now)
					if l := g.Len(); l != len(m.seen) {
						t.Fatalf("step %d: Len = %d, model holds %d", step, l, len(m.seen))
					}
				}
			}
		})
	}
}

// TestReplayGuardSustainedRate has one peer send DefaultReplayRate requests
// a second, with the default bounds sized for a one-second window, for
// five windows: none is refused, replays still are, and a peer sending
// faster than the rate for longer than the guard remembers is refused.
func TestReplayGuardSustainedRate(t *testing.T) {
	if asset.DefaultReplayMaxPerPeer < asset.DefaultReplayRate*int(2*asset.DefaultWindow/time.Second) {
		t.Fatalf("DefaultReplayMaxPerPeer %d does not hold %d requests a second for twice the %s window",
			asset.DefaultReplayMaxPerPeer, asset.DefaultReplayRate, asset.DefaultWindow)
	}
	const window = time.Second
	g, clock := newGuard(t, asset.WithReplayWindow(window))
	nonceOf := func(p byte, i int) []byte {
		n := make([]byte, asset.NonceSize)
		n[0], n[1], n[2], n[3] = p, byte(i), byte(i>>8), byte(i>>16)
		return n
	}
	interval := time.Second / asset.DefaultReplayRate
	total := 5 * int(window/interval)
	for i := range total {
		if err := g.Check(peerA, nonceOf(1, i), fmt.Sprintf("key-%d", i), clock.Now()); err != nil {
			t.Fatalf("request %d at %d a second: %v", i, asset.DefaultReplayRate, err)
		}
		clock.Advance(interval)
	}
	// The last window's requests are remembered.
	for _, i := range []int{total - 1, total - int(window/interval)} {
		checkErr(t, g.Check(peerA, nonceOf(1, i), "another key", clock.Now()), errs(asset.ErrReplay))
		checkErr(t, g.Seen(peerA, nonceOf(1, i), clock.Now()), errs(asset.ErrReplay))
		if err := g.Check(peerA, nonceOf(1, i), fmt.Sprintf("key-%d", i), clock.Now()); err != nil {
			t.Fatalf("retry of request %d: %v", i, err)
		}
	}
	if n := g.Len(); n > 2*int(window/interval) {
		t.Fatalf("Len = %d, more than twice the window's %d requests", n, int(window/interval))
	}

	// Ten percent over the rate fills the peer's bound within the time a
	// request is remembered.
	fast := interval * 10 / 11
	var err error
	for i := 0; err == nil && i < 3*int(window/fast); i++ {
		err = g.Check(peerB, nonceOf(2, i), "k", clock.Now())
		clock.Advance(fast)
	}
	checkErr(t, err, errs(asset.ErrReplayGuardFull), "per peer")
}

func TestReplayGuardRateOptions(t *testing.T) {
	for name, opts := range map[string][]asset.ReplayOption{
		"zero rate":       {asset.WithReplayRate(0)},
		"negative rate":   {asset.WithReplayRate(-1)},
		"rate and limits": {asset.WithReplayRate(10), asset.WithReplayLimits(10, 10)},
	} {
		if _, err := asset.NewReplayGuard(opts...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A rate sizes the per-peer bound: 5 a second for twice a 1 s window.
	g, clock := newGuard(t, asset.WithReplayWindow(time.Second), asset.WithReplayRate(5))
	for i := range 10 {
		if err := g.Seen(peerA, nonce(byte(i)), clock.Now()); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	checkErr(t, g.Seen(peerA, nonce(10), clock.Now()), errs(asset.ErrReplayGuardFull), "at most 10 per peer")
}
