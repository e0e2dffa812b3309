package governance

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultVerifyCacheSize is how many verified chains a TrustStore remembers
// by default: a network's members present one chain each (two around a
// re-certification), so this covers networks of several hundred nodes.
const DefaultVerifyCacheSize = 1024

// TrustStoreOption configures NewTrustStore.
type TrustStoreOption func(*trustStoreConfig) error

type trustStoreConfig struct {
	cacheSize int
}

// WithVerifyCache sets how many verified certificate chains the store
// remembers, so that a chain a peer presents on every message is verified
// once rather than from DER each time (DefaultVerifyCacheSize by default).
// 0 turns the cache off.
func WithVerifyCache(entries int) TrustStoreOption {
	return func(c *trustStoreConfig) error {
		if entries < 0 {
			return fmt.Errorf("WithVerifyCache: %d entries, want 0 or more", entries)
		}
		c.cacheSize = entries
		return nil
	}
}

// chainKey identifies a DER chain: SHA-256 over the number of certificates
// and each certificate prefixed by its length, so no two chains share a key.
func chainKey(chain [][]byte) [sha256.Size]byte {
	h := sha256.New()
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(chain)))
	h.Write(n[:])
	for _, der := range chain {
		binary.BigEndian.PutUint32(n[:], uint32(len(der)))
		h.Write(n[:])
		h.Write(der)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// verifiedChain is what a successful verification proved, and for how long
// it stays true.
type verifiedChain struct {
	member Member
	// notBefore and notAfter bound the times at which every certificate
	// involved (those presented and the root the chain verified to) is
	// valid; outside them the chain is verified again, so that the error
	// is the full verification's.
	notBefore, notAfter time.Time
	// generation is the store's revocation generation the result was
	// checked against; a new revocation list makes the entry stale.
	generation uint64
}

// validityWindow returns the latest NotBefore and the earliest NotAfter of
// certs.
func validityWindow(certs ...[]*x509.Certificate) (notBefore, notAfter time.Time) {
	first := true
	for _, cs := range certs {
		for _, c := range cs {
			if first || c.NotBefore.After(notBefore) {
				notBefore = c.NotBefore
			}
			if first || c.NotAfter.Before(notAfter) {
				notAfter = c.NotAfter
			}
			first = false
		}
	}
	return notBefore, notAfter
}

// verifyCache is a bounded map from chainKey to verifiedChain. It keeps two
// generations of entries: new ones go to cur, and when cur holds half the
// bound it becomes old and the previous old is dropped; a hit in old moves
// the entry back to cur. So it never holds more than its bound, and chains
// in use stay while those no longer presented age out.
type verifyCache struct {
	half int

	mu       sync.Mutex
	cur, old map[[sha256.Size]byte]*verifiedChain

	hits, misses atomic.Uint64 // for tests and benchmarks
}

func newVerifyCache(size int) *verifyCache {
	if size <= 0 {
		return nil
	}
	return &verifyCache{half: max(size/2, 1)}
}

// get returns the member a chain proved, if it was verified against
// revocation generation gen and every certificate of it is valid at now.
func (c *verifyCache) get(k [sha256.Size]byte, now time.Time, gen uint64) (Member, bool) {
	c.mu.Lock()
	e, ok := c.cur[k]
	if !ok {
		if e, ok = c.old[k]; ok {
			delete(c.old, k)
			c.insert(k, e)
		}
	}
	c.mu.Unlock()
	if !ok || e.generation != gen || now.Before(e.notBefore) || now.After(e.notAfter) {
		c.misses.Add(1)
		return Member{}, false
	}
	c.hits.Add(1)
	return e.member.clone(), true
}

func (c *verifyCache) put(k [sha256.Size]byte, e *verifiedChain) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.old, k)
	c.insert(k, e)
}

// insert adds e to cur, first rotating the generations if cur is full. The
// caller holds c.mu.
func (c *verifyCache) insert(k [sha256.Size]byte, e *verifiedChain) {
	if _, ok := c.cur[k]; !ok && len(c.cur) >= c.half {
		c.old, c.cur = c.cur, nil
	}
	if c.cur == nil {
		c.cur = make(map[[sha256.Size]byte]*verifiedChain)
	}
	c.cur[k] = e
}

// len returns the number of entries held.
func (c *verifyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.old)
}

// clone returns a copy of m that shares only the (immutable) certificates,
// so a caller changing its Member cannot change the cached one.
func (m Member) clone() Member {
	m.Chain = slices.Clone(m.Chain)
	if m.Serial != nil {
		m.Serial = new(big.Int).Set(m.Serial)
	}
	return m
}
