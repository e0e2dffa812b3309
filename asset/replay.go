package asset

import (
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Default bounds of a ReplayGuard. An entry costs about 200 bytes, so the
// default total is about 20 MB; a peer may hold a tenth of it, so one busy
// or hostile member cannot lock the others out.
const (
	DefaultReplayMaxEntries = 100_000
	DefaultReplayMaxPerPeer = 10_000
)

// ReplayGuard remembers the (peer, nonce) of recent asset requests so a
// replayed one is refused. It remembers each for twice the window in which
// RequestVerifier accepts a request's timestamp, counted from when it was
// first seen, which outlasts any copy of the request that would still pass
// the timestamp check. It is bounded: when full it refuses new requests
// (ErrReplayGuardFull) rather than forget one that is not yet expired. It
// is safe for concurrent use.
type ReplayGuard struct {
	window     time.Duration
	maxEntries int
	maxPerPeer int
	now        func() time.Time

	mu      sync.Mutex
	seen    map[replayKey]replayEntry
	perPeer map[peer.ID]int
	queue   []queued // in order of expiry
	head    int
}

type replayKey struct {
	peer  peer.ID
	nonce [NonceSize]byte
}

type replayEntry struct {
	// keyed is false for a request recorded by Seen, which no retry matches.
	keyed    bool
	key      string
	firstAt  time.Time
	expireAt time.Time
}

type queued struct {
	key      replayKey
	expireAt time.Time
}

// replayConfig is what ReplayOptions set.
type replayConfig struct {
	window     time.Duration
	maxEntries int
	maxPerPeer int
	now        func() time.Time
}

// ReplayOption configures a ReplayGuard.
type ReplayOption func(*replayConfig) error

// WithReplayWindow sets the request timestamp window; use the
// RequestVerifier's. DefaultWindow by default.
func WithReplayWindow(d time.Duration) ReplayOption {
	return func(c *replayConfig) error {
		if d <= 0 {
			return fmt.Errorf("replay guard: window %s is not positive", d)
		}
		c.window = d
		return nil
	}
}

// WithReplayLimits bounds the requests remembered in total and per peer;
// DefaultReplayMaxEntries and DefaultReplayMaxPerPeer by default.
func WithReplayLimits(maxEntries, maxPerPeer int) ReplayOption {
	return func(c *replayConfig) error {
		if maxEntries <= 0 || maxPerPeer <= 0 {
			return fmt.Errorf("replay guard: limits %d in total and %d per peer must be positive", maxEntries, maxPerPeer)
		}
		c.maxEntries, c.maxPerPeer = maxEntries, maxPerPeer
		return nil
	}
}

// WithReplayClock sets the clock; time.Now by default.
func WithReplayClock(now func() time.Time) ReplayOption {
	return func(c *replayConfig) error {
		if now == nil {
			return fmt.Errorf("replay guard: nil clock")
		}
		c.now = now
		return nil
	}
}

// NewReplayGuard returns an empty guard.
func NewReplayGuard(opts ...ReplayOption) (*ReplayGuard, error) {
	c := replayConfig{window: DefaultWindow, maxEntries: DefaultReplayMaxEntries, maxPerPeer: DefaultReplayMaxPerPeer, now: time.Now}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	if c.maxPerPeer > c.maxEntries {
		c.maxPerPeer = c.maxEntries
	}
	return &ReplayGuard{
		window:     c.window,
		maxEntries: c.maxEntries,
		maxPerPeer: c.maxPerPeer,
		now:        c.now,
		seen:       make(map[replayKey]replayEntry),
		perPeer:    make(map[peer.ID]int),
	}, nil
}

// Seen records the request of peer p with nonce and timestamp ts, and
// refuses with ErrReplay one whose peer and nonce were seen already,
// whatever its idempotency key. A timestamp outside the window is
// ErrStaleRequest, a nonce of the wrong size ErrBadRequest.
func (g *ReplayGuard) Seen(p peer.ID, nonce []byte, ts time.Time) error {
	return g.check(p, nonce, false, "", ts)
}

// Check is Seen that lets a retry through: it returns nil the first time
// it sees the peer and nonce, nil again for the same peer and nonce with the
// same idempotency key (the very same request sent again, which the
// ledger's idempotency answers without a second effect), and ErrReplay for
// the same peer and nonce with another key.
func (g *ReplayGuard) Check(p peer.ID, nonce []byte, idempotencyKey string, ts time.Time) error {
	return g.check(p, nonce, true, idempotencyKey, ts)
}

func (g *ReplayGuard) check(p peer.ID, nonce []byte, keyed bool, idemKey string, ts time.Time) error {
	if len(nonce) != NonceSize {
		return fmt.Errorf("%w: nonce of %d bytes, want %d", ErrBadRequest, len(nonce), NonceSize)
	}
	now := g.now()
	// A request outside the window would not pass the verifier, and
	// remembering it would not outlast its replays.
	if skew := now.Sub(ts); skew > g.window || -skew > g.window {
		return fmt.Errorf("%w: request of peer %s dated %s, %s from now, outside the %s window", ErrStaleRequest, p, ts.UTC().Format(time.RFC3339Nano), skew, g.window)
	}
	k := replayKey{peer: p, nonce: [NonceSize]byte(nonce)}

	g.mu.Lock()
	defer g.mu.Unlock()
	g.evict(now)
	if e, ok := g.seen[k]; ok {
		if keyed && e.keyed && e.key == idemKey {
			return nil
		}
		why := ""
		if keyed && e.keyed {
			why = fmt.Sprintf(" with idempotency key %q, now with %q", e.key, idemKey)
		}
		return fmt.Errorf("%w: nonce %x of peer %s was first seen at %s%s", ErrReplay, nonce, p, e.firstAt.UTC().Format(time.RFC3339Nano), why)
	}
	if len(g.seen) >= g.maxEntries {
		return fmt.Errorf("%w: %d requests seen in the last %s, at most %d; retry later", ErrReplayGuardFull, len(g.seen), 2*g.window, g.maxEntries)
	}
	if n := g.perPeer[p]; n >= g.maxPerPeer {
		return fmt.Errorf("%w: %d requests of peer %s seen in the last %s, at most %d per peer; retry later", ErrReplayGuardFull, n, p, 2*g.window, g.maxPerPeer)
	}
	e := replayEntry{keyed: keyed, key: idemKey, firstAt: now, expireAt: now.Add(2 * g.window)}
	g.seen[k] = e
	g.perPeer[p]++
	g.queue = append(g.queue, queued{key: k, expireAt: e.expireAt})
	return nil
}

// evict forgets the requests that expired by now. Entries are queued in
// the order they were seen, which is their order of expiry.
func (g *ReplayGuard) evict(now time.Time) {
	for g.head < len(g.queue) && !g.queue[g.head].expireAt.After(now) {
		k := g.queue[g.head].key
		g.queue[g.head] = queued{}
		g.head++
		delete(g.seen, k)
		if g.perPeer[k.peer]--; g.perPeer[k.peer] <= 0 {
			delete(g.perPeer, k.peer)
		}
	}
	if g.head == len(g.queue) {
		g.queue, g.head = g.queue[:0], 0
	} else if g.head > len(g.queue)/2 {
		g.queue, g.head = append(g.queue[:0], g.queue[g.head:]...), 0
	}
}

// Len returns the number of requests remembered and not yet expired.
func (g *ReplayGuard) Len() int {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.evict(now)
	return len(g.seen)
}
