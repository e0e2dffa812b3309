package broadcast_test

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/finp2p/go-finp2p/broadcast"
	"github.com/finp2p/go-finp2p/governance"
)

// collector returns a collector for f.request with consistency c, whose
// scope is f.nodes and whose rendezvous nodes are rv.
func (f *fixture) collector(c broadcast.Consistency, quorum int, rv ...peer.ID) *broadcast.Collector {
	req := f.request(func(r *broadcast.Request) { r.Consistency = c })
	inScope := func(m governance.Member) bool { return slices.Contains(req.Scope.Orgs, m.OrgID) }
	return broadcast.NewCollector(req, inScope, quorum, func(p peer.ID) bool { return slices.Contains(rv, p) })
}

func (f *fixture) expected() []peer.ID {
	var ids []peer.ID
	for _, n := range f.nodes {
		ids = append(ids, n.id)
	}
	return ids
}

// add adds responses of f.nodes[i] with answers[i] at versions[i].
func (f *fixture) add(t *testing.T, c *broadcast.Collector, answers []string, versions []uint64) {
	t.Helper()
	for i, a := range answers {
		if err := c.Add(f.sealResponse(t, f.nodes[i], a, versions[i], nil), f.respV); err != nil {
			t.Fatal(err)
		}
	}
}

func peersOf(rs []broadcast.Responder) []peer.ID {
	var ids []peer.ID
	for _, r := range rs {
		ids = append(ids, r.Peer)
	}
	return ids
}

func TestCollectorQuorumAndFailures(t *testing.T) {
	f := newFixture(t)
	c := f.collector(broadcast.Majority, 3)
	f.add(t, c, []string{"100", "100"}, []uint64{5, 5})
	if c.Done() {
		t.Fatal("done after 2 of quorum 3")
	}
	res := c.Result(f.expected())
	if res.OK || !strings.Contains(res.Resolution, "quorum not reached: 2 of 3") {
		t.Fatalf("result before quorum: %+v", res)
	}
	if !slices.Equal(res.Failed, f.expected()[2:]) {
		t.Fatalf("failed %v, want %v", res.Failed, f.expected()[2:])
	}
	// A node that cannot answer does not count toward the quorum.
	if err := c.Add(f.sealResponse(t, f.nodes[2], "", 5, func(r *broadcast.Response) { r.Answer, r.Error = nil, "ledger not followed" }), f.respV); err != nil {
		t.Fatal(err)
	}
	if c.Done() {
		t.Fatal("done counting a cannot-answer response")
	}
	if err := c.Add(f.sealResponse(t, f.nodes[3], "100", 5, nil), f.respV); err != nil {
		t.Fatal(err)
	}
	if !c.Done() {
		t.Fatal("not done after 3 answers of quorum 3")
	}
	res = c.Result(f.expected())
	t.Log(res.Resolution)
	if !res.OK || string(res.Agreed) != "100" || !slices.Equal(peersOf(res.AgreedBy), []peer.ID{f.nodes[0].id, f.nodes[1].id, f.nodes[3].id}) {
		t.Fatalf("result %+v", res)
	}
	if !slices.Equal(peersOf(res.Unanswered), []peer.ID{f.nodes[2].id}) || res.Unanswered[0].Error != "ledger not followed" {
		t.Fatalf("unanswered %+v", res.Unanswered)
	}
	if len(res.Failed) != 0 || !slices.Equal(res.NotAwaited, []peer.ID{f.nodes[4].id}) {
		t.Fatalf("failed %v, not awaited %v; want only %s not awaited once the quorum is reached", res.Failed, res.NotAwaited, f.nodes[4].id)
	}
}

func TestCollectorDrops(t *testing.T) {
	f := newFixture(t)
	c := f.collector(broadcast.Majority, 1)
	b := f.nodes[0]
	if err := c.Add(f.sealResponse(t, b, "100", 5, nil), f.respV); err != nil {
		t.Fatal(err)
	}
	forged := f.sealResponse(t, f.nodes[1], "999", 5, nil)
	forged[len(forged)-1] ^= 1
	for _, tc := range []struct {
		name   string
		sealed []byte
		peer   peer.ID
		want   error
		says   string
	}{
		{"duplicate", f.sealResponse(t, b, "101", 6, nil), b.id, broadcast.ErrDuplicate, "second response of " + b.id.String()},
		{"unknown request", f.sealResponse(t, f.nodes[2], "100", 5, func(r *broadcast.Response) { r.RequestID = strings.Repeat("cd", 16) }), f.nodes[2].id, broadcast.ErrUnknownRequest, "names request cdcd"},
		{"out of scope", f.sealResponse(t, f.outsider, "100", 5, nil), f.outsider.id, broadcast.ErrOutOfScope, "org bank-z"},
		{"bad signature", forged, f.nodes[1].id, broadcast.ErrMalformed, "envelope"},
		{"signed by another", rawSeal(t, f.response(f.nodes[3], "999", 9, nil), f.outsider.key), f.nodes[3].id, broadcast.ErrForged, "names peer"},
		{"org not its own", rawSeal(t, f.response(f.outsider, "999", 9, func(r *broadcast.Response) { r.ResponderOrg = "bank-e" }), f.outsider.key), f.outsider.id, broadcast.ErrForged, `org "bank-z"`},
	} {
		err := c.Add(tc.sealed, f.respV)
		checkErr(t, err, tc.want, tc.says)
		res := c.Result(nil)
		d := res.Dropped[len(res.Dropped)-1]
		if d.Peer != tc.peer || d.Reason != err.Error() {
			t.Fatalf("%s: dropped %+v, want peer %s and reason %q", tc.name, d, tc.peer, err)
		}
		t.Logf("%s: %s", tc.name, d.Reason)
	}
	res := c.Result(f.expected())
	if !res.OK || string(res.Agreed) != "100" || len(res.AgreedBy) != 1 || len(res.Dropped) != 6 {
		t.Fatalf("result %+v", res)
	}
	// Forged and unknown-request responses do not count as answers: their
	// senders are still without one (not awaited, the quorum of 1 reached).
	if len(res.Failed) != 0 || !slices.Equal(res.NotAwaited, f.expected()[1:]) {
		t.Fatalf("failed %v, not awaited %v, want %v not awaited", res.Failed, res.NotAwaited, f.expected()[1:])
	}
}

func TestCollectorStrict(t *testing.T) {
	f := newFixture(t)
	c := f.collector(broadcast.Strict, 3)
	f.add(t, c, []string{"100", "100", "100"}, []uint64{5, 5, 4})
	if res := c.Result(f.expected()[:3]); !res.OK || string(res.Agreed) != "100" || len(res.AgreedBy) != 3 || len(res.Failed) != 0 {
		t.Fatalf("agreeing result %+v", res)
	}
	c = f.collector(broadcast.Strict, 3)
	f.add(t, c, []string{"100", "100", "90"}, []uint64{5, 5, 5})
	res := c.Result(f.expected()[:3])
	t.Log(res.Resolution)
	if res.OK || res.Agreed != nil || len(res.Disagreed) != 3 || !strings.Contains(res.Resolution, "2 different answers among 3") {
		t.Fatalf("disagreeing result %+v", res)
	}
}

func TestCollectorMajority(t *testing.T) {
	f := newFixture(t)
	t.Run("most", func(t *testing.T) {
		c := f.collector(broadcast.Majority, 3)
		f.add(t, c, []string{"100", "90", "100"}, []uint64{5, 9, 5})
		res := c.Result(nil)
		t.Log(res.Resolution)
		if !res.OK || string(res.Agreed) != "100" || len(res.Disagreed) != 1 || res.Disagreed[0].Peer != f.nodes[1].id ||
			string(res.Disagreed[0].Answer) != "90" || !strings.Contains(res.Disagreed[0].Reason, "outvoted") {
			t.Fatalf("result %+v", res)
		}
	})
	t.Run("tie by version", func(t *testing.T) {
		c := f.collector(broadcast.Majority, 4)
		f.add(t, c, []string{"100", "90", "100", "90"}, []uint64{5, 6, 5, 6})
		res := c.Result(nil)
		t.Log(res.Resolution)
		if !res.OK || string(res.Agreed) != "90" || !strings.Contains(res.Resolution, "ledger version 6 > 5") {
			t.Fatalf("result %+v", res)
		}
	})
	t.Run("tie by rendezvous", func(t *testing.T) {
		c := f.collector(broadcast.Majority, 4, f.nodes[3].id)
		f.add(t, c, []string{"100", "90", "100", "90"}, []uint64{5, 5, 5, 5})
		res := c.Result(nil)
		t.Log(res.Resolution)
		if !res.OK || string(res.Agreed) != "90" || !strings.Contains(res.Resolution, "rendezvous node "+f.nodes[3].id.String()) ||
			!slices.Equal(peersOf(res.Disagreed), []peer.ID{f.nodes[0].id, f.nodes[2].id}) ||
			!strings.Contains(res.Disagreed[0].Reason, "tie lost to rendezvous node") {
			t.Fatalf("result %+v", res)
		}
		if !res.AgreedBy[1].Rendezvous {
			t.Fatalf("agreed by %+v, want the rendezvous node marked", res.AgreedBy)
		}
	})
	t.Run("unresolved tie", func(t *testing.T) {
		c := f.collector(broadcast.Majority, 2)
		f.add(t, c, []string{"100", "90"}, []uint64{5, 5})
		res := c.Result(nil)
		if res.OK || res.Agreed != nil || len(res.Disagreed) != 2 || !strings.Contains(res.Resolution, "unresolved tie") {
			t.Fatalf("result %+v", res)
		}
	})
}

func TestCollectorNewestVersion(t *testing.T) {
	f := newFixture(t)
	c := f.collector(broadcast.NewestVersion, 3)
	// bank-c serves an out-of-date ledger; bank-d's old version reads the
	// same value as the newest.
	f.add(t, c, []string{"100", "80", "100", "100"}, []uint64{7, 4, 7, 6})
	res := c.Result(f.expected())
	t.Log(res.Resolution)
	stale := f.nodes[1]
	if !res.OK || string(res.Agreed) != "100" || len(res.AgreedBy) != 3 {
		t.Fatalf("result %+v", res)
	}
	if len(res.Disagreed) != 1 || res.Disagreed[0].Peer != stale.id || res.Disagreed[0].Reason != "stale ledger version 4 < 7" || string(res.Disagreed[0].Answer) != "80" {
		t.Fatalf("disagreed %+v, want %s stale", res.Disagreed, stale.id)
	}
	if !strings.Contains(res.Resolution, "stale: "+stale.id.String()+" at version 4") {
		t.Fatalf("resolution %q does not name the stale node", res.Resolution)
	}
	if len(res.Failed) != 0 || !slices.Equal(res.NotAwaited, []peer.ID{f.nodes[4].id}) {
		t.Fatalf("failed %v, not awaited %v", res.Failed, res.NotAwaited)
	}

	t.Run("tie at newest by rendezvous", func(t *testing.T) {
		c := f.collector(broadcast.NewestVersion, 2, f.nodes[1].id)
		f.add(t, c, []string{"100", "90"}, []uint64{7, 7})
		res := c.Result(nil)
		if !res.OK || string(res.Agreed) != "90" || !strings.Contains(res.Disagreed[0].Reason, "lost to rendezvous node") {
			t.Fatalf("result %+v", res)
		}
	})
}

func TestCollectorConcurrent(t *testing.T) {
	f := newFixture(t)
	c := f.collector(broadcast.Majority, 5)
	sealed := make([][]byte, len(f.nodes))
	for i, n := range f.nodes {
		sealed[i] = f.sealResponse(t, n, "100", 5, nil)
	}
	var wg sync.WaitGroup
	for _, s := range sealed {
		for range 2 { // every response twice: one is a duplicate
			wg.Go(func() {
				c.Add(s, f.respV)
				c.Done()
				c.Result(nil)
			})
		}
	}
	wg.Wait()
	res := c.Result(f.expected())
	if !c.Done() || !res.OK || len(res.AgreedBy) != 5 || len(res.Dropped) != 5 || len(res.Failed) != 0 {
		t.Fatalf("result %+v", res)
	}
}
