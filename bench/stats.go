package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// percentile returns the p-th percentile (0..100) of sorted durations, by
// the nearest-rank method; 0 when there are none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// load is the outcome of a closed-loop load run: every operation's
// latency, how long the run took and the process CPU time it used.
type load struct {
	ops     int
	elapsed time.Duration
	cpu     time.Duration
	lat     []time.Duration // sorted
}

func (l load) perSecond() float64 {
	if l.elapsed <= 0 {
		return 0
	}
	return float64(l.ops) / l.elapsed.Seconds()
}

func (l load) p(q float64) time.Duration { return percentile(l.lat, q) }

// cpuPerOp is the process CPU time per operation.
func (l load) cpuPerOp() time.Duration {
	if l.ops == 0 {
		return 0
	}
	return l.cpu / time.Duration(l.ops)
}

// merge adds another run of the same operation.
func (l load) merge(o load) load {
	lat := append(slices.Clone(l.lat), o.lat...)
	slices.Sort(lat)
	return load{ops: l.ops + o.ops, elapsed: l.elapsed + o.elapsed, cpu: l.cpu + o.cpu, lat: lat}
}

// runLoad runs op from conc workers, each starting its next operation as
// soon as the last one returns, for d, but at least minOps and at most
// maxOps (0: no limit) operations in all. seq numbers the operations of
// the run from 1, uniquely across workers. The first error ends the run.
func runLoad(ctx context.Context, conc int, d time.Duration, minOps, maxOps int, op func(ctx context.Context, seq int64) error) (load, error) {
	var (
		next  atomic.Int64
		mu    sync.Mutex
		lats  []time.Duration
		first error
		wg    sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cpu0 := cpuTime()
	start := time.Now()
	deadline := start.Add(d)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 256)
			for ctx.Err() == nil {
				seq := next.Add(1)
				if (time.Now().After(deadline) && seq > int64(minOps)) || (maxOps > 0 && seq > int64(maxOps)) {
					break
				}
				t0 := time.Now()
				if err := op(ctx, seq); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("operation %d: %w", seq, err)
					}
					mu.Unlock()
					cancel()
					break
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	if first != nil {
		return load{}, first
	}
	slices.Sort(lats)
	return load{ops: len(lats), elapsed: elapsed, cpu: cpu, lat: lats}, nil
}

// fmtDur prints a duration with three significant figures in a unit that
// suits it.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Microsecond:
		return fmt.Sprintf("%d ns", d.Nanoseconds())
	case d < time.Millisecond:
		return sig3(float64(d)/float64(time.Microsecond)) + " µs"
	case d < time.Second:
		return sig3(float64(d)/float64(time.Millisecond)) + " ms"
	}
	return sig3(d.Seconds()) + " s"
}

// sig3 prints v with three significant figures (integers as they are).
func sig3(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// fmtRate prints operations per second.
func fmtRate(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.0f/s", v)
	}
	return sig3(v) + "/s"
}

// ratio prints a/b as "1.23×".
func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// settle waits until the process has been quiet (under a quarter of a core
// busy over half a second) or until within has passed, so that a
// measurement does not start while a network that just grew is still busy
// verifying and storing the newcomers' records. It returns how long it
// waited and the share of a core busy in its last half second.
func settle(ctx context.Context, within time.Duration) (time.Duration, float64) {
	const window = 500 * time.Millisecond
	t0 := time.Now()
	busy := 0.0
	for time.Since(t0) < within && ctx.Err() == nil {
		c0 := cpuTime()
		time.Sleep(window)
		busy = float64(cpuTime()-c0) / float64(window)
		if busy < 0.25 {
			break
		}
	}
	return time.Since(t0), busy
}
