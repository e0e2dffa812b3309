package resource

import (
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of a RefusalLimiter.
const (
	// DefaultRefusalRate is how many refused requests per second an org may
	// send in the long run before its requests are dropped unexamined.
	DefaultRefusalRate = 10
	// DefaultRefusalBurst is how many refused requests an org may send at
	// once.
	DefaultRefusalBurst = 20
	// maxRefusalOrgs caps the orgs a RefusalLimiter tracks. Orgs are
	// certified members, so a real network has far fewer with refusals in
	// flight; the cap only bounds memory if that ever stops holding.
	maxRefusalOrgs = 4096
)

// RefusalLimiter is the owner side's defence against orgs that keep sending
// requests its ACLs refuse: each org has a token bucket charged only by
// refused requests, and while it is empty the org's requests are dropped
// before they are examined. Allowed requests never consume budget, so an
// org that behaves is never slowed. Memory is bounded: an org is tracked only
// while its bucket is not full, and at most a fixed number are tracked. It
// is safe for concurrent use.
type RefusalLimiter struct {
	rate  rate.Limit
	burst int
	now   func() time.Time
	// idle is how long an emptied bucket takes to fill again; an org not
	// charged for that long is no longer tracked.
	idle time.Duration

	mu        sync.Mutex
	orgs      map[string]*refusals
	lastSweep time.Time
}

type refusals struct {
	lim  *rate.Limiter
	last time.Time // last charge
}

// NewRefusalLimiter returns a limiter that lets each org have burst refused
// requests at once and perSecond per second in the long run. Values that are
// not positive take the defaults (DefaultRefusalRate, DefaultRefusalBurst);
// a nil now means time.Now.
func NewRefusalLimiter(perSecond float64, burst int, now func() time.Time) *RefusalLimiter {
	if !(perSecond > 0) {
		perSecond = DefaultRefusalRate
	}
	if burst <= 0 {
		burst = DefaultRefusalBurst
	}
	if now == nil {
		now = time.Now
	}
	// Debt is capped at burst tokens (see Refused), so a bucket is full
	// again at most 2*burst/perSecond after its last charge.
	idle := time.Duration(2 * float64(burst) / perSecond * float64(time.Second))
	return &RefusalLimiter{
		rate:  rate.Limit(perSecond),
		burst: burst,
		now:   now,
		idle:  idle + time.Second,
		orgs:  make(map[string]*refusals),
	}
}

// Allow reports whether a request from org should be examined at all: false
// while org's refused requests have used up its budget.
func (l *RefusalLimiter) Allow(org string) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.orgs[org]
	if !ok {
		return true
	}
	return e.lim.TokensAt(now) >= 1
}

// Refused charges org's budget for a request that was examined and refused.
// Requests examined at the same time may overdraw the budget; the debt, up
// to one burst, is paid back before org is examined again.
func (l *RefusalLimiter) Refused(org string) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now, false)
	e, ok := l.orgs[org]
	if !ok {
		if len(l.orgs) >= maxRefusalOrgs {
			l.sweepLocked(now, true)
		}
		e = &refusals{lim: rate.NewLimiter(l.rate, l.burst)}
		l.orgs[org] = e
	}
	e.last = now
	if e.lim.TokensAt(now) >= 1-float64(l.burst) {
		e.lim.ReserveN(now, 1)
	}
}

// sweepLocked forgets orgs whose buckets are full again, which loses
// nothing: a new bucket is full. It runs at most once per idle period unless
// forced by a full map; if that frees too little, the orgs charged least
// recently are forgotten, an eighth of the map at a time so that a steady
// stream of new orgs costs O(log n) each.
func (l *RefusalLimiter) sweepLocked(now time.Time, force bool) {
	if !force && now.Sub(l.lastSweep) < l.idle {
		return
	}
	l.lastSweep = now
	for org, e := range l.orgs {
		if e.lim.TokensAt(now) >= float64(l.burst) {
			delete(l.orgs, org)
		}
	}
	if !force || len(l.orgs) < maxRefusalOrgs {
		return
	}
	type charged struct {
		org  string
		last time.Time
	}
	all := make([]charged, 0, len(l.orgs))
	for org, e := range l.orgs {
		all = append(all, charged{org, e.last})
	}
	slices.SortFunc(all, func(a, b charged) int { return a.last.Compare(b.last) })
	for _, c := range all[:len(all)/8+1] {
		delete(l.orgs, c.org)
	}
}
