package resource

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// limitClock is a clock a test moves by hand.
type limitClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *limitClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *limitClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newLimitClock() *limitClock { return &limitClock{now: time.Unix(1_700_000_000, 0)} }

func (l *RefusalLimiter) trackedOrgs() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.orgs)
}

// TestRefusalLimiterFlood sends 1000 requests from an org whose requests are
// all refused, interleaved with requests from an org whose requests are all
// allowed, over one second: flood gets at most burst + rate*elapsed examined,
// good gets every one examined.
func TestRefusalLimiterFlood(t *testing.T) {
	const (
		rate     = 10
		burst    = 20
		requests = 1000
		step     = time.Millisecond
	)
	clock := newLimitClock()
	l := NewRefusalLimiter(rate, burst, clock.Now)
	start := clock.Now()
	floodExamined, goodExamined := 0, 0
	for range requests {
		if l.Allow("flood") {
			floodExamined++
			l.Refused("flood")
		}
		if l.Allow("good") {
			goodExamined++ // and allowed: never charged
		}
		clock.Add(step)
	}
	elapsed := clock.Now().Sub(start).Seconds()
	if max := burst + int(rate*elapsed); floodExamined > max {
		t.Errorf("flood: %d of %d requests examined in %.1fs, want at most %d", floodExamined, requests, elapsed, max)
	}
	if floodExamined < burst {
		t.Errorf("flood: %d requests examined, want at least the burst %d", floodExamined, burst)
	}
	if goodExamined != requests {
		t.Errorf("good: %d of %d requests examined", goodExamined, requests)
	}
	if l.trackedOrgs() != 1 {
		t.Errorf("tracking %d orgs, want only flood", l.trackedOrgs())
	}
}

// TestRefusalLimiterRefills checks that an org that stops being refused is
// examined again at the configured rate, and that a full bucket caps at
// the burst.
func TestRefusalLimiterRefills(t *testing.T) {
	clock := newLimitClock()
	l := NewRefusalLimiter(10, 20, clock.Now)
	drain := func() int {
		n := 0
		for l.Allow("bank-y") {
			l.Refused("bank-y")
			n++
			if n > 1000 {
				t.Fatal("Allow never turns false")
			}
		}
		return n
	}
	if n := drain(); n != 20 {
		t.Fatalf("first burst: %d examined, want 20", n)
	}
	clock.Add(time.Second)
	if n := drain(); n != 10 {
		t.Errorf("after 1s: %d examined, want 10", n)
	}
	clock.Add(time.Hour)
	if n := drain(); n != 20 {
		t.Errorf("after an hour: %d examined, want the burst 20", n)
	}
}

// TestRefusalLimiterDebt charges refusals of requests that were examined at
// the same moment: the overdraft is paid back, up to one burst.
func TestRefusalLimiterDebt(t *testing.T) {
	clock := newLimitClock()
	l := NewRefusalLimiter(10, 20, clock.Now)
	for range 100 {
		l.Refused("bank-y")
	}
	// The bucket is at -20 (capped): 21 tokens, 2.1s, until one request.
	clock.Add(2 * time.Second)
	if l.Allow("bank-y") {
		t.Error("examined before the debt is paid")
	}
	clock.Add(200 * time.Millisecond)
	if !l.Allow("bank-y") {
		t.Error("not examined once the debt is paid")
	}
}

// TestRefusalLimiterAllowedRequestsAreFree checks that requests that are
// examined and allowed neither consume budget nor keep state.
func TestRefusalLimiterAllowedRequestsAreFree(t *testing.T) {
	clock := newLimitClock()
	l := NewRefusalLimiter(1, 1, clock.Now)
	for i := range 10000 {
		if !l.Allow("good") {
			t.Fatalf("request %d of an org never refused was not examined", i)
		}
	}
	if n := l.trackedOrgs(); n != 0 {
		t.Errorf("tracking %d orgs, want 0", n)
	}
	// One refusal empties a burst of 1; other orgs are unaffected.
	l.Refused("bad")
	if l.Allow("bad") || !l.Allow("good") {
		t.Error("one org's refusal affected the wrong org")
	}
}

// TestRefusalLimiterBoundedMemory charges more orgs than the limiter tracks:
// the map stays capped, and orgs whose buckets refilled are forgotten.
func TestRefusalLimiterBoundedMemory(t *testing.T) {
	clock := newLimitClock()
	l := NewRefusalLimiter(10, 2, clock.Now)
	for i := range maxRefusalOrgs + 500 {
		org := fmt.Sprintf("org-%d", i)
		l.Refused(org)
		l.Refused(org)
		clock.Add(time.Microsecond)
	}
	if n := l.trackedOrgs(); n > maxRefusalOrgs {
		t.Errorf("tracking %d orgs, cap %d", n, maxRefusalOrgs)
	}
	// The most recent offender is still limited.
	if l.Allow(fmt.Sprintf("org-%d", maxRefusalOrgs+499)) {
		t.Error("the latest refused org was forgotten")
	}
	// Once the buckets are full again, the next charge sweeps them away.
	clock.Add(time.Minute)
	l.Refused("late")
	if n := l.trackedOrgs(); n != 1 {
		t.Errorf("tracking %d orgs after they went idle, want 1", n)
	}
}

func TestRefusalLimiterDefaults(t *testing.T) {
	clock := newLimitClock()
	l := NewRefusalLimiter(0, -1, clock.Now)
	n := 0
	for l.Allow("bank-y") && n < 1000 {
		l.Refused("bank-y")
		n++
	}
	if n != DefaultRefusalBurst {
		t.Errorf("default burst: %d examined, want %d", n, DefaultRefusalBurst)
	}
	clock.Add(time.Second)
	n = 0
	for l.Allow("bank-y") && n < 1000 {
		l.Refused("bank-y")
		n++
	}
	if n != DefaultRefusalRate {
		t.Errorf("default rate: %d examined in 1s, want %d", n, DefaultRefusalRate)
	}
	if !NewRefusalLimiter(1, 1, nil).Allow("x") {
		t.Error("a limiter on the real clock refused a fresh org")
	}
}

// TestRefusalLimiterConcurrent runs Allow and Refused from many goroutines
// for the race detector.
func TestRefusalLimiterConcurrent(t *testing.T) {
	clock := newLimitClock()
	l := NewRefusalLimiter(10, 20, clock.Now)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			org := fmt.Sprintf("org-%d", g%3)
			for range 500 {
				if l.Allow(org) {
					l.Refused(org)
				}
				clock.Add(time.Millisecond)
			}
		}()
	}
	wg.Wait()
}
