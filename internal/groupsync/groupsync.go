// Package groupsync lets concurrent writers of a datastore share one Sync
// (group commit). A writer commits its batch without syncing, under
// whatever lock orders its writes, records it with Committed, releases the
// lock and then Waits: one Sync makes durable every write committed before
// it started, so writers that commit while a Sync runs share the next one
// instead of each waiting for its own. The embedded ledger and the asset
// receipt store use it.
package groupsync

import "sync"

// Syncer tracks which committed writes are durable. T is the state a write
// leaves behind (the embedded ledger's head, say), so a reader can tell the
// last durable state from the last committed one. It is safe for
// concurrent use.
type Syncer[T any] struct {
	sync func() error

	mu         sync.Mutex
	last       uint64 // ticket of the last committed write
	lastState  T
	durable    uint64 // ticket of the last write known durable
	durableSt  T
	running    *round[T] // the Sync in progress, nil if none
	next       *round[T] // the Sync to start when running ends, nil if none
	syncs      uint64    // Syncs started, for tests and benchmarks
	syncFailed uint64
}

// round is one Sync and the writes it makes durable: those up to target.
type round[T any] struct {
	target uint64
	state  T
	done   chan struct{} // closed when err is set
	err    error
	joined int // writers waiting for it to start, for tests
}

// New returns a Syncer whose every write so far is durable and left state
// start. sync makes every write committed before it is called durable.
func New[T any](sync func() error, start T) *Syncer[T] {
	return &Syncer[T]{sync: sync, lastState: start, durableSt: start}
}

// Committed records a write that was committed but not yet synced, which
// left state st, and returns its ticket for Wait. Writers call it in the
// order of their commits, under the lock that orders them.
func (s *Syncer[T]) Committed(st T) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last++
	s.lastState = st
	return s.last
}

// Last returns the ticket of the last committed write. A caller that read
// state others wrote, rather than writing, waits for it before it answers,
// so that it never tells what a crash could undo.
func (s *Syncer[T]) Last() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Durable returns the state of the last write known to be durable.
func (s *Syncer[T]) Durable() T {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.durableSt
}

// Syncs returns how many Syncs were started and how many of them failed.
func (s *Syncer[T]) Syncs() (started, failed uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncs, s.syncFailed
}

// Wait returns once the write with ticket t, and so every write before it,
// is durable: at once if it is already, else after a Sync that started
// after the write was committed. If that Sync fails, Wait returns its
// error, as it does to every writer that waited for the same Sync; the
// writes stay committed, and a later Sync may still make them durable.
func (s *Syncer[T]) Wait(t uint64) error {
	s.mu.Lock()
	if t <= s.durable {
		s.mu.Unlock()
		return nil
	}
	if s.running == nil {
		r := s.start()
		s.mu.Unlock()
		s.run(r)
		return r.err
	}
	if s.running.target >= t {
		r := s.running
		s.mu.Unlock()
		<-r.done
		return r.err
	}
	// The running Sync started before t was committed: join the next one.
	// Its first writer runs it once the running one ends.
	r, lead := s.next, s.next == nil
	if lead {
		r = &round[T]{done: make(chan struct{})}
		s.next = r
	}
	r.joined++
	prev := s.running
	s.mu.Unlock()
	if lead {
		<-prev.done // prev's end started r
		s.run(r)
	} else {
		<-r.done
	}
	return r.err
}

// start makes a new round the running one, covering every write committed
// so far. The caller holds s.mu.
func (s *Syncer[T]) start() *round[T] {
	r := &round[T]{done: make(chan struct{})}
	s.begin(r)
	return r
}

// begin makes r the running round, covering every write committed so far.
// The caller holds s.mu.
func (s *Syncer[T]) begin(r *round[T]) {
	r.target, r.state = s.last, s.lastState
	s.running = r
	s.syncs++
}

// run syncs for the running round r, records the outcome, and starts the
// next round, if one is waiting, before it wakes r's writers.
func (s *Syncer[T]) run(r *round[T]) {
	err := s.sync()
	s.mu.Lock()
	defer s.mu.Unlock()
	r.err = err
	if err != nil {
		s.syncFailed++
	} else if r.target > s.durable {
		s.durable, s.durableSt = r.target, r.state
	}
	s.running = nil
	if n := s.next; n != nil {
		s.next = nil
		s.begin(n)
	}
	close(r.done)
}
