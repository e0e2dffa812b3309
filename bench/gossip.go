package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/resource"
)

// updateSize is the size of every published update.
const updateSize = 256

// gossipRun is one publishing run on a fresh resource topic, with the
// baseline alongside: the same messages published at the same moments on a
// raw gossipsub topic joined on the same routers, without the node's
// validator, numbering, store and catch-up.
type gossipRun struct {
	cfg       *config
	nw        *network
	publisher *member
	id        resource.ID
	rawTopic  string

	mu   sync.Mutex
	pubs map[uint64]time.Time // node: seq → publish time
	raws map[uint64]time.Time // raw: seq → publish time
	subs []*subscriber
	// failedRestarts are the churn subscribers that did not come back.
	failedRestarts []string
}

// subscriber is one member's subscriptions, across its restarts.
type subscriber struct {
	m *member

	mu       sync.Mutex
	cancel   context.CancelFunc
	live     []window // when its subscriptions were live
	node     map[uint64]time.Time
	raw      map[uint64]time.Time
	dupes    int
	rawDupes int
	wg       sync.WaitGroup
}

// window is a stretch of time a subscription was live: it expects every
// message published in it.
type window struct{ from, to time.Time }

func (w window) holds(t time.Time) bool {
	return t.After(w.from) && (w.to.IsZero() || t.Before(w.to))
}

// subscribe subscribes s's node to the resource and the raw topic, and
// reads both until the subscription ends.
func (g *gossipRun) subscribe(ctx context.Context, s *subscriber) error {
	n := s.m.Node()
	ctx, cancel := context.WithCancel(ctx)
	updates, err := n.Subscribe(ctx, g.id)
	if err != nil {
		cancel()
		return err
	}
	t, err := n.PubSub().Router().Join(g.rawTopic)
	if err != nil {
		cancel()
		return fmt.Errorf("raw topic: %w", err)
	}
	rawSub, err := t.Subscribe()
	if err != nil {
		cancel()
		return fmt.Errorf("raw topic: %w", err)
	}
	s.mu.Lock()
	s.cancel = func() {
		cancel()
		rawSub.Cancel()
		_ = t.Close()
	}
	s.live = append(s.live, window{from: time.Now()})
	s.mu.Unlock()
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		for u := range updates {
			s.got(u.Seq, false)
		}
	}()
	go func() {
		defer s.wg.Done()
		for {
			msg, err := rawSub.Next(ctx)
			if err != nil {
				return
			}
			if len(msg.Data) >= 8 {
				s.got(binary.BigEndian.Uint64(msg.Data), true)
			}
		}
	}()
	return nil
}

func (s *subscriber) got(seq uint64, raw bool) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	m, dupes := s.node, &s.dupes
	if raw {
		m, dupes = s.raw, &s.rawDupes
	}
	if _, ok := m[seq]; ok {
		*dupes++
		return
	}
	m[seq] = now
}

// unsubscribe ends s's subscriptions and closes its window at end (the
// zero time: now).
func (s *subscriber) unsubscribe(end time.Time) {
	if end.IsZero() {
		end = time.Now()
	}
	s.mu.Lock()
	cancel := s.cancel
	s.cancel = nil
	if len(s.live) > 0 && s.live[len(s.live)-1].to.IsZero() {
		s.live[len(s.live)-1].to = end
	}
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.wg.Wait()
}

// has reports whether s got every update published before t on the
// node's topic.
func (g *gossipRun) has(s *subscriber, t time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for seq, at := range g.pubs {
		if _, ok := s.node[seq]; !ok && at.Before(t) {
			return false
		}
	}
	return true
}

// restart stops s's node and starts it again from its repo (a new
// process would do the same: a fresh in-memory state, new ports), waits
// until it has joined and subscribes again.
//
// The subscription's window ends when the restart is decided; the node is
// stopped once it has every update published before (or after 5 s), so
// that updates still on their way when it stops are not counted against it.
func (g *gossipRun) restart(ctx context.Context, s *subscriber) error {
	end := time.Now()
	_ = poll(ctx, 5*time.Second, 5*time.Millisecond, func() bool { return g.has(s, end) }, "")
	s.unsubscribe(end)
	if err := g.nw.stop(s.m); err != nil {
		return err
	}
	if err := g.nw.start(ctx, s.m); err != nil {
		return err
	}
	n := s.m.Node()
	if err := waitJoined(ctx, n, time.Minute); err != nil {
		return err
	}
	// Resolving the owner is what Subscribe does first; a node that just
	// joined asks a registrar.
	if err := poll(ctx, 30*time.Second, 10*time.Millisecond, func() bool {
		return resolves(ctx, n, g.publisher.org, g.publisher.Node().ID(), time.Second)
	}, "restarted node resolves the publisher"); err != nil {
		return err
	}
	return g.subscribe(ctx, s)
}

// gossipStats summarise one topic of a run.
type gossipStats struct {
	expected, delivered, dupes int
	lat                        []time.Duration
}

func (g *gossipRun) stats(raw bool) gossipStats {
	var st gossipStats
	g.mu.Lock()
	pubs := g.pubs
	if raw {
		pubs = g.raws
	}
	g.mu.Unlock()
	for _, s := range g.subs {
		s.mu.Lock()
		got, dupes := s.node, s.dupes
		if raw {
			got, dupes = s.raw, s.rawDupes
		}
		st.dupes += dupes
		for seq, at := range pubs {
			if !slices.ContainsFunc(s.live, func(w window) bool { return w.holds(at) }) {
				continue
			}
			st.expected++
			if t, ok := got[seq]; ok {
				st.delivered++
				st.lat = append(st.lat, t.Sub(at))
			}
		}
		s.mu.Unlock()
	}
	slices.Sort(st.lat)
	return st
}

// complete reports whether every subscriber has every message it expects
// on the node's topic.
func (g *gossipRun) complete() bool {
	st := g.stats(false)
	return st.delivered == st.expected
}

// run publishes cfg.messages updates at cfg.rate a second on the
// resource's topic and the raw topic, restarting churn subscribers spread
// over the publishing, then waits for stragglers.
func (g *gossipRun) run(ctx context.Context, churn []*subscriber) error {
	pub := g.publisher.Node()
	rawTopic, err := pub.PubSub().Router().Join(g.rawTopic)
	if err != nil {
		return err
	}
	defer rawTopic.Close()
	// Every subscriber's router knows a peer on both topics; then two
	// gossipsub heartbeats to build the meshes.
	topic := protocols.TopicResourcePrefix + g.id.String()
	if err := poll(ctx, 30*time.Second, 20*time.Millisecond, func() bool {
		for _, s := range g.subs {
			r := s.m.Node().PubSub().Router()
			if len(r.ListPeers(topic)) == 0 || len(r.ListPeers(g.rawTopic)) == 0 {
				return false
			}
		}
		return true
	}, "every subscriber sees a peer on the topics"); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	settle(ctx, 15*time.Second)

	interval := time.Second / time.Duration(g.cfg.rate)
	span := interval * time.Duration(g.cfg.messages)
	var wg sync.WaitGroup
	start := time.Now()
	for i, s := range churn {
		at := start.Add(span * time.Duration(2*i+1) / time.Duration(2*len(churn)+1))
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(at))
			if err := g.restart(ctx, s); err != nil {
				// It stays away; it is expected to have what was
				// published before it stopped.
				progress("gossip: restart of %s failed: %v", s.m.org, err)
				g.mu.Lock()
				g.failedRestarts = append(g.failedRestarts, s.m.org+": "+firstLine(err.Error()))
				g.mu.Unlock()
			}
		}()
	}
	for i := range g.cfg.messages {
		time.Sleep(time.Until(start.Add(interval * time.Duration(i))))
		seq := uint64(i + 1)
		data := make([]byte, updateSize) // gossipsub sends it after Publish returns
		binary.BigEndian.PutUint64(data, seq)
		g.mu.Lock()
		g.pubs[seq] = time.Now()
		g.mu.Unlock()
		got, err := pub.Publish(ctx, g.id, data)
		if err != nil {
			return fmt.Errorf("publish %d: %w", seq, err)
		}
		if got != seq {
			return fmt.Errorf("publish: sequence number %d, want %d", got, seq)
		}
		g.mu.Lock()
		g.raws[seq] = time.Now()
		g.mu.Unlock()
		if err := rawTopic.Publish(ctx, data); err != nil {
			return fmt.Errorf("raw publish %d: %w", seq, err)
		}
	}
	wg.Wait()
	// Stragglers: a subscriber that missed an update fetches it when it
	// sees the next one, or at its next catch-up (every 2 s).
	_ = poll(ctx, 10*time.Second, 50*time.Millisecond, g.complete, "")
	time.Sleep(500 * time.Millisecond) // late duplicates
	for _, s := range g.subs {
		s.unsubscribe(time.Time{})
	}
	return nil
}

// gossipSection measures delivery on a resource topic with
// cfg.subscribers subscribers, without and with 20% of them restarting
// during the run.
func gossipSection(ctx context.Context, cfg *config, rep *report, b *bigNetwork) error {
	size, err := b.growTo(ctx, cfg.subscribers)
	if err != nil {
		return err
	}
	subscribers := min(cfg.subscribers, size)
	if subscribers < cfg.subscribers {
		rep.note("gossip: %d subscribers instead of %d: the network stopped growing at %d nodes when its growth budget was spent.", subscribers, cfg.subscribers, size)
	}
	publisher, err := b.nw.add(ctx, "publisher-org", governance.RoleMember, false)
	if err != nil {
		return err
	}
	pn := publisher.Node()
	if err := waitJoined(ctx, pn, 30*time.Second); err != nil {
		return err
	}
	var members []*member
	for _, m := range b.nw.members() {
		if m != publisher && m.Node() != nil {
			members = append(members, m)
		}
	}
	members = members[:subscribers]
	progress("gossip: %d subscribers resolve the publisher", len(members))
	if err := forEach(ctx, members, 16, func(m *member) error {
		return poll(ctx, 30*time.Second, 10*time.Millisecond, func() bool {
			return resolves(ctx, m.Node(), publisher.org, pn.ID(), time.Second)
		}, m.org+" resolves the publisher")
	}); err != nil {
		return err
	}
	for _, withChurn := range []bool{false, true} {
		name := "steady"
		if withChurn {
			name = "churn"
		}
		id := resource.MustParseID("publisher-org:102:gossip-" + name)
		if err := pn.SetACL(ctx, resource.ACL{Resource: id, Public: true}); err != nil {
			return err
		}
		g := &gossipRun{cfg: cfg, nw: b.nw, publisher: publisher, id: id, rawTopic: "/finp2p-bench/raw-gossip/" + name,
			pubs: map[uint64]time.Time{}, raws: map[uint64]time.Time{}}
		for _, m := range members {
			g.subs = append(g.subs, &subscriber{m: m, node: map[uint64]time.Time{}, raw: map[uint64]time.Time{}})
		}
		if err := forEach(ctx, g.subs, 16, func(s *subscriber) error { return g.subscribe(ctx, s) }); err != nil {
			return err
		}
		var churn []*subscriber
		if withChurn {
			// 20% of the subscribers, never the rendezvous nodes.
			pool := slices.Clone(g.subs[2:])
			rand.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
			churn = pool[:len(g.subs)/5]
		}
		progress("gossip (%s): %d updates at %d/s to %d subscribers, %d of them restarting", name, cfg.messages, cfg.rate, len(g.subs), len(churn))
		stop := func() {}
		if withChurn {
			stop = cfg.profile("gossip-churn")
		}
		err := g.run(ctx, churn)
		stop()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		st, raw := g.stats(false), g.stats(true)
		what := fmt.Sprintf("%d subscribers, steady", len(g.subs))
		if withChurn {
			what = fmt.Sprintf("%d subscribers, %d restarting during the run", len(g.subs), len(churn))
		}
		rep.add(row{
			section:  "gossip",
			what:     what + ": delivered / expected",
			value:    fmt.Sprintf("%d / %d (%.2f%%)", st.delivered, st.expected, pct(st.delivered, st.expected)),
			baseline: fmt.Sprintf("raw gossipsub %d / %d (%.2f%%)", raw.delivered, raw.expected, pct(raw.delivered, raw.expected)),
			ratio:    ratio(pct(st.delivered, st.expected), pct(raw.delivered, raw.expected)),
			target:   "every message delivered",
			status:   target(st.delivered == st.expected),
		})
		rep.add(row{
			section:  "gossip",
			what:     what + ": latency p50 / p99 / max",
			value:    fmt.Sprintf("%s / %s / %s", fmtDur(percentile(st.lat, 50)), fmtDur(percentile(st.lat, 99)), fmtDur(percentile(st.lat, 100))),
			baseline: fmt.Sprintf("raw %s / %s / %s", fmtDur(percentile(raw.lat, 50)), fmtDur(percentile(raw.lat, 99)), fmtDur(percentile(raw.lat, 100))),
			ratio:    "p50 " + ratio(float64(percentile(st.lat, 50)), float64(percentile(raw.lat, 50))),
		})
		if len(g.failedRestarts) > 0 {
			rep.note("gossip: %d of the %d restarting subscribers did not come back within a minute (counted for what was published before they stopped): %s", len(g.failedRestarts), len(churn), strings.Join(g.failedRestarts, "; "))
		}
		rep.add(row{
			section:  "gossip",
			what:     what + ": duplicates delivered per message",
			value:    fmt.Sprintf("%.3f", float64(st.dupes)/float64(max(1, st.delivered))),
			baseline: fmt.Sprintf("raw %.3f", float64(raw.dupes)/float64(max(1, raw.delivered))),
		})
	}
	rep.note("gossip: %d updates of %d bytes at %d/s per run. A subscriber is expected to get every update published while its subscription was live (from Subscribe's return until it was stopped); a restarting subscriber (stopped, started again from its repo with fresh in-memory state, joined, subscribed again) is not expected to get those published while it was away, since Subscribe delivers updates published from then on. Duplicates are counted as subscribers see them (node.Subscribe's channel, the raw subscription); gossipsub's own wire-level duplicates are not visible through the node's API.",
		cfg.messages, updateSize, cfg.rate)
	return nil
}

func pct(a, b int) float64 {
	if b == 0 {
		return 100
	}
	return 100 * float64(a) / float64(b)
}

// forEach runs f on every item, at most parallel at once, and joins the
// errors.
func forEach[T any](ctx context.Context, items []T, parallel int, f func(T) error) error {
	sem := make(chan struct{}, parallel)
	errs := make(chan error, len(items))
	var wg sync.WaitGroup
	for _, it := range items {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(it); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := errors.Join(collect(errs)...); err != nil {
		return err
	}
	return ctx.Err()
}
