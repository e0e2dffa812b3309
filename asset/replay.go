package asset

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Default bounds of a ReplayGuard. A guard remembers each request for
// twice the window, so a peer sending DefaultReplayRate requests a second
// needs DefaultReplayRate × 2 × window entries: the per-peer bound is sized
// from the window so that it can, and the total bound holds two such peers,
// so that one busy or hostile member cannot lock the others out. An entry
// costs about 120 bytes with a 36-character idempotency key (see
// BenchmarkReplayGuardCheck), so with the default window a peer at the
// full rate holds about 290 MB and the total is bounded at about 580 MB;
// the memory is taken only as requests arrive.
const (
	// DefaultReplayRate is the rate of requests, per second, that one
	// peer can sustain for as long as it likes under the default bounds.
	DefaultReplayRate = 10_000
	// DefaultReplayMaxPerPeer is the per-peer bound for DefaultWindow.
	DefaultReplayMaxPerPeer = DefaultReplayRate * int(2*DefaultWindow/time.Second)
	// DefaultReplayMaxEntries is the total bound for DefaultWindow.
	DefaultReplayMaxEntries = 2 * DefaultReplayMaxPerPeer
)

// ReplayGuard remembers the (peer, nonce) of recent asset requests so a
// replayed one is refused. It remembers each for twice the window in which
// RequestVerifier accepts a request's timestamp, counted from when it was
// first seen, which outlasts any copy of the request that would still pass
// the timestamp check. It is bounded: when full it refuses new requests
// (ErrReplayGuardFull) rather than forget one that is not yet expired. It
// is safe for concurrent use.
//
// Each peer's requests are kept in the order they were seen, in blocks
// that hold no pointers (the idempotency keys in a byte buffer per block),
// with an index from nonce to position, so an entry is small and the
// garbage collector need not look inside them.
type ReplayGuard struct {
	window     time.Duration
	maxEntries int
	maxPerPeer int
	now        func() time.Time

	mu    sync.Mutex
	peers map[peer.ID]*peerReplays // peers with at least one entry
	total int                      // entries of all peers, some maybe expired
}

// peerReplays is what a ReplayGuard remembers of one peer: its requests in
// the order they were seen, numbered from first to next-1, in blocks of
// replayBlockSize.
type peerReplays struct {
	index  map[[NonceSize]byte]uint64 // nonce → number
	blocks []*replayBlock             // blocks[0] holds number first
	first  uint64
	next   uint64
}

// maxReplayKey bounds an idempotency key in bytes, far above what
// ledger.CheckIdempotencyKey allows, for the entries' 16-bit lengths.
const maxReplayKey = 1<<16 - 1

// replayBlockSize is the number of entries in a block: small enough that a
// peer with few requests costs little, large enough that a peer at the
// full rate has few blocks.
const replayBlockSize = 512

type replayBlock struct {
	entries [replayBlockSize]replayEntry
	keys    []byte // the idempotency keys of the entries
}

type replayEntry struct {
	nonce   [NonceSize]byte
	firstAt int64 // Unix nanoseconds
	keyOff  uint32
	keyLen  uint16
	// keyed is false for a request recorded by Seen, which no retry
	// matches.
	keyed bool
}

func (p *peerReplays) len() int { return int(p.next - p.first) }

// entry returns the entry numbered n, which p holds, and its block.
func (p *peerReplays) entry(n uint64) (*replayEntry, *replayBlock) {
	b := p.blocks[n/replayBlockSize-p.first/replayBlockSize]
	return &b.entries[n%replayBlockSize], b
}

// key returns the idempotency key of the entry numbered n.
func (p *peerReplays) key(n uint64) []byte {
	e, b := p.entry(n)
	return b.keys[e.keyOff : e.keyOff+uint32(e.keyLen)]
}

// add appends an entry.
func (p *peerReplays) add(nonce [NonceSize]byte, firstAt time.Time, keyed bool, key string) {
	if p.next%replayBlockSize == 0 {
		p.blocks = append(p.blocks, &replayBlock{})
	}
	b := p.blocks[len(p.blocks)-1]
	b.entries[p.next%replayBlockSize] = replayEntry{
		nonce:   nonce,
		firstAt: firstAt.UnixNano(),
		keyOff:  uint32(len(b.keys)),
		keyLen:  uint16(len(key)),
		keyed:   keyed,
	}
	b.keys = append(b.keys, key...)
	if p.next%replayBlockSize == replayBlockSize-1 {
		// The block is full: drop the slack its keys grew with.
		b.keys = append(make([]byte, 0, len(b.keys)), b.keys...)
	}
	p.index[nonce] = p.next
	p.next++
}

// evict forgets the entries first seen at or before seenBy (Unix
// nanoseconds), and returns how many it forgot. Entries are in the order
// they were seen, which is their order of expiry.
func (p *peerReplays) evict(seenBy int64) int {
	n := 0
	for p.first < p.next {
		e, _ := p.entry(p.first)
		if e.firstAt > seenBy {
			break
		}
		if p.index[e.nonce] == p.first {
			delete(p.index, e.nonce)
		}
		p.first++
		n++
		if p.first%replayBlockSize == 0 { // the oldest block is spent
			p.blocks[0] = nil
			p.blocks = p.blocks[1:]
		}
	}
	return n
}

// replayConfig is what ReplayOptions set.
type replayConfig struct {
	window     time.Duration
	rate       int
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

// WithReplayRate sizes the bounds for one peer sending perSecond requests
// a second for as long as it likes: perSecond × twice the window per peer,
// and twice that in total. DefaultReplayRate by default.
func WithReplayRate(perSecond int) ReplayOption {
	return func(c *replayConfig) error {
		if perSecond <= 0 {
			return fmt.Errorf("replay guard: rate %d a second is not positive", perSecond)
		}
		c.rate = perSecond
		return nil
	}
}

// WithReplayLimits bounds the requests remembered in total and per peer,
// instead of sizing the bounds from a rate (WithReplayRate).
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

// replayBounds returns the bounds for a peer sending rate requests a
// second, each remembered for twice window.
func replayBounds(rate int, window time.Duration) (maxEntries, maxPerPeer int) {
	const maxBound = 1 << 40 // far beyond memory, and no overflow below
	perPeer := float64(rate) * (2 * window).Seconds()
	if perPeer > maxBound/2 {
		perPeer = maxBound / 2
	}
	maxPerPeer = max(int(perPeer), 1)
	return 2 * maxPerPeer, maxPerPeer
}

// NewReplayGuard returns an empty guard.
func NewReplayGuard(opts ...ReplayOption) (*ReplayGuard, error) {
	c := replayConfig{window: DefaultWindow, now: time.Now}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	switch {
	case c.maxEntries > 0 && c.rate > 0:
		return nil, errors.New("replay guard: WithReplayLimits and WithReplayRate both set the bounds; give one")
	case c.maxEntries == 0:
		rate := c.rate
		if rate == 0 {
			rate = DefaultReplayRate
		}
		c.maxEntries, c.maxPerPeer = replayBounds(rate, c.window)
	}
	if c.maxPerPeer > c.maxEntries {
		c.maxPerPeer = c.maxEntries
	}
	return &ReplayGuard{
		window:     c.window,
		maxEntries: c.maxEntries,
		maxPerPeer: c.maxPerPeer,
		now:        c.now,
		peers:      make(map[peer.ID]*peerReplays),
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
	if len(idemKey) > maxReplayKey {
		return fmt.Errorf("%w: idempotency key of %d bytes, at most %d", ErrBadRequest, len(idemKey), maxReplayKey)
	}
	now := g.now()
	// A request outside the window would not pass the verifier, and
	// remembering it would not outlast its replays.
	if skew := now.Sub(ts); skew > g.window || -skew > g.window {
		return fmt.Errorf("%w: request of peer %s dated %s, %s from now, outside the %s window", ErrStaleRequest, p, ts.UTC().Format(time.RFC3339Nano), skew, g.window)
	}
	n := [NonceSize]byte(nonce)

	g.mu.Lock()
	defer g.mu.Unlock()
	seenBy := g.seenBy(now)
	pr := g.peers[p]
	if pr != nil {
		g.evictPeer(p, pr, seenBy)
		pr = g.peers[p] // nil if none was left
	}
	if pr != nil {
		if num, ok := pr.index[n]; ok {
			e, _ := pr.entry(num)
			key := pr.key(num)
			if keyed && e.keyed && string(key) == idemKey {
				return nil
			}
			why := ""
			if keyed && e.keyed {
				why = fmt.Sprintf(" with idempotency key %q, now with %q", key, idemKey)
			}
			return fmt.Errorf("%w: nonce %x of peer %s was first seen at %s%s", ErrReplay, nonce, p, time.Unix(0, e.firstAt).UTC().Format(time.RFC3339Nano), why)
		}
	}
	if g.total >= g.maxEntries {
		// Other peers' entries are evicted only now: counting them until
		// then costs nothing, and refusing on their account would be wrong.
		g.evictAll(seenBy)
		if g.total >= g.maxEntries {
			return fmt.Errorf("%w: %d requests seen in the last %s, at most %d; retry later", ErrReplayGuardFull, g.total, 2*g.window, g.maxEntries)
		}
	}
	if pr != nil && pr.len() >= g.maxPerPeer {
		return fmt.Errorf("%w: %d requests of peer %s seen in the last %s, at most %d per peer; retry later", ErrReplayGuardFull, pr.len(), p, 2*g.window, g.maxPerPeer)
	}
	if pr == nil {
		pr = &peerReplays{index: make(map[[NonceSize]byte]uint64)}
		g.peers[p] = pr
	}
	pr.add(n, now, keyed, idemKey)
	g.total++
	return nil
}

// seenBy returns the latest first sighting that has expired at now, in
// Unix nanoseconds: a request is forgotten twice the window after it was
// first seen.
func (g *ReplayGuard) seenBy(now time.Time) int64 {
	return now.Add(-2 * g.window).UnixNano()
}

// evictPeer forgets p's expired entries, and p when none is left. The
// caller holds g.mu.
func (g *ReplayGuard) evictPeer(p peer.ID, pr *peerReplays, seenBy int64) {
	g.total -= pr.evict(seenBy)
	if pr.len() == 0 {
		delete(g.peers, p)
	}
}

// evictAll forgets every peer's expired entries. The caller holds g.mu.
func (g *ReplayGuard) evictAll(seenBy int64) {
	for p, pr := range g.peers {
		g.evictPeer(p, pr, seenBy)
	}
}

// Len returns the number of requests remembered and not yet expired.
func (g *ReplayGuard) Len() int {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.evictAll(g.seenBy(now))
	return g.total
}
