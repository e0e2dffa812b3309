package groupsync

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// gatedSync is a sync function that reports each call on entered and
// returns only when the test sends its result on release.
type gatedSync struct {
	entered chan struct{}
	release chan error
}

func newGatedSync() *gatedSync {
	return &gatedSync{entered: make(chan struct{}, 16), release: make(chan error)}
}

func (g *gatedSync) sync() error {
	g.entered <- struct{}{}
	return <-g.release
}

// waitJoined returns once n writers wait for the round after the running
// one.
func waitJoined[T any](s *Syncer[T], n int) {
	for {
		s.mu.Lock()
		joined := 0
		if s.next != nil {
			joined = s.next.joined
		}
		s.mu.Unlock()
		if joined == n {
			return
		}
		runtime.Gosched()
	}
}

// TestWritersShareTheNextSync commits a write and syncs it, then commits
// ten more while that Sync runs: they cannot use it, which started before
// them, and share the one after it.
func TestWritersShareTheNextSync(t *testing.T) {
	g := newGatedSync()
	s := New(g.sync, 0)
	first := make(chan error)
	go func() { first <- s.Wait(s.Committed(1)) }()
	<-g.entered

	const writers = 10
	results := make(chan error, writers)
	for i := range writers {
		ticket := s.Committed(2 + i)
		go func() { results <- s.Wait(ticket) }()
	}
	waitJoined(s, writers)
	if got := s.Durable(); got != 0 {
		t.Fatalf("Durable = %d before any Sync ended", got)
	}
	g.release <- nil
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if got := s.Durable(); got != 1 {
		t.Fatalf("Durable = %d after the first Sync, want 1", got)
	}
	<-g.entered // the shared second Sync
	g.release <- nil
	for range writers {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	if started, failed := s.Syncs(); started != 2 || failed != 0 {
		t.Errorf("%d Syncs (%d failed), want 2 for 11 writes", started, failed)
	}
	if got := s.Durable(); got != writers+1 {
		t.Errorf("Durable = %d, want %d", got, writers+1)
	}
	// A durable write's Wait needs no Sync.
	if err := s.Wait(3); err != nil {
		t.Fatal(err)
	}
	if started, _ := s.Syncs(); started != 2 {
		t.Errorf("Wait on a durable write started a Sync")
	}
}

// TestFailedSyncFailsItsWriters fails the Sync that a group of writers
// waits for: each of them gets the error, nothing becomes durable, and the
// next Sync, which succeeds, covers their writes.
func TestFailedSyncFailsItsWriters(t *testing.T) {
	g := newGatedSync()
	s := New(g.sync, "start")
	blocker := make(chan error)
	go func() { blocker <- s.Wait(s.Committed("a")) }()
	<-g.entered

	const writers = 5
	results := make(chan error, writers)
	tickets := make([]uint64, writers)
	for i := range writers {
		tickets[i] = s.Committed("b")
		go func() { results <- s.Wait(tickets[i]) }()
	}
	waitJoined(s, writers)
	g.release <- nil
	if err := <-blocker; err != nil {
		t.Fatal(err)
	}
	<-g.entered
	disk := errors.New("disk on fire")
	g.release <- disk
	for range writers {
		if err := <-results; !errors.Is(err, disk) {
			t.Fatalf("writer got %v, want the Sync's error", err)
		}
	}
	if got := s.Durable(); got != "a" {
		t.Fatalf("Durable = %q after the failed Sync, want %q", got, "a")
	}
	// Waiting again syncs again.
	done := make(chan error)
	go func() { done <- s.Wait(tickets[writers-1]) }()
	<-g.entered
	g.release <- nil
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if started, failed := s.Syncs(); started != 3 || failed != 1 {
		t.Errorf("%d Syncs, %d failed; want 3 and 1", started, failed)
	}
	if got := s.Durable(); got != "b" {
		t.Errorf("Durable = %q, want %q", got, "b")
	}
}

// TestWaitReturnsOnlyWhenDurable has many writers commit to a simulated
// store and wait: when Wait returns, a Sync that started after the write
// has ended.
func TestWaitReturnsOnlyWhenDurable(t *testing.T) {
	var (
		mu      sync.Mutex // orders the writes, as a ledger's lock does
		written atomic.Uint64
		durable atomic.Uint64
		syncs   atomic.Int64
	)
	s := New(func() error {
		syncs.Add(1)
		upTo := written.Load()
		runtime.Gosched() // the fsync
		if upTo > durable.Load() {
			durable.Store(upTo)
		}
		return nil
	}, uint64(0))
	const writers, writes = 16, 200
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range writes {
				mu.Lock()
				n := written.Add(1)
				ticket := s.Committed(n)
				mu.Unlock()
				if err := s.Wait(ticket); err != nil {
					t.Error(err)
					return
				}
				if d := durable.Load(); d < n {
					t.Errorf("Wait returned for write %d with writes up to %d durable", n, d)
					return
				}
				if st := s.Durable(); st < n {
					t.Errorf("Durable = %d after write %d's Wait", st, n)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := s.Durable(); got != writers*writes {
		t.Errorf("Durable = %d, want %d", got, writers*writes)
	}
	t.Logf("%d writes, %d Syncs", writers*writes, syncs.Load())
}
