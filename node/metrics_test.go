package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/finp2p/go-finp2p/broadcast"
	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/testnet"
	"github.com/finp2p/go-finp2p/ledger"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/resource"
)

// TestMetricsAndPeerLogs runs a transfer, a refused transfer, a denied
// resource request, a ledger broadcast, a broadcast that cannot be sent,
// follower replication and a refused membership handshake on real nodes
// with metrics and JSON logs, then checks the counters and histograms
// moved with the right labels, and that every log line about a peer names
// its org.
func TestMetricsAndPeerLogs(t *testing.T) {
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	const l = "member-2/embedded"
	net := testnet.NewEmpty(t, node.WithLedgerFollowers("*"), node.WithLogger(logger))
	founding := net.StartNode(net.Repo("founding-org", governance.RoleFounding, net.Founding))
	net.SetRendezvous(founding)
	gov := net.StartNode(net.Repo("governance-org", governance.RoleGovernance, net.Governance))
	net.SetRendezvous(founding, gov)
	regA, regB, regC := prometheus.NewRegistry(), prometheus.NewRegistry(), prometheus.NewRegistry()
	a := net.StartNode(net.Repo("member-1", governance.RoleMember, net.Governance), node.WithMetrics(regA))
	b := net.StartNode(net.Repo("member-2", governance.RoleMember, net.Governance), node.WithMetrics(regB))
	c := net.StartNode(net.Repo("member-3", governance.RoleMember, net.Governance), node.WithMetrics(regC), node.WithFollowLedgers(l))
	peers := []string{founding.ID().String(), gov.ID().String(), a.ID().String(), b.ID().String(), c.ID().String()}

	testnet.Eventually(t, 60*time.Second, "member-1 resolves member-2", func() bool { return resolves(a, "member-2", b.ID(), "") })
	testnet.Eventually(t, 60*time.Second, "member-2 resolves member-1 and member-3", func() bool {
		return resolves(b, "member-1", a.ID(), "") && resolves(b, "member-3", c.ID(), "")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// member-2 owns a bond on its ledger and lets member-1 transact on it
	// and read it; member-3, which follows the ledger, reads it too, so it
	// answers balance broadcasts of member-1 under the same ACL.
	bond := resource.MustParseID("member-2:102:bond")
	if _, err := b.CreateAsset(ctx, bond, 0, "create-bond"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Issue(ctx, bond, "alice", "100", "issue-1"); err != nil {
		t.Fatal(err)
	}
	if err := b.SetACL(ctx, resource.ACL{Resource: bond, Grants: map[string]resource.Right{
		"member-1": resource.RightTransact | resource.RightRead, "member-3": resource.RightRead,
	}}); err != nil {
		t.Fatal(err)
	}
	// A transfer, one the ledger refuses, and a read the owner denies.
	if _, err := a.Transfer(ctx, node.AssetRequest{Asset: bond, From: "alice", To: "bob", Quantity: "10", IdempotencyKey: "t-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Transfer(ctx, node.AssetRequest{Asset: bond, From: "alice", To: "bob", Quantity: "1000", IdempotencyKey: "t-2"}); !errors.Is(err, ledger.ErrInsufficientBalance) {
		t.Fatalf("transfer over the balance: %v, want insufficient balance", err)
	}
	if _, err := a.GetResource(ctx, resource.MustParseID("member-2:102:secret")); !errors.Is(err, resource.ErrAccessDenied) {
		t.Fatalf("get of a resource without read right: %v, want access denied", err)
	}

	// member-3 follows member-2's ledger: the broadcast asks both.
	testnet.Eventually(t, 60*time.Second, "member-3 replicates member-2's ledger", func() bool {
		return replicaVersion(t, c, l) == 3
	})
	testnet.Eventually(t, 60*time.Second, "member-1 knows both nodes of the ledger", func() bool {
		return len(nodesOnLedger(a, l)) == 2
	})
	bal, err := a.BalanceOf(ctx, bond, "bob", node.BroadcastOptions{Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !bal.Broadcast.OK || bal.Balance == nil || bal.Balance.Current != "10" || len(bal.Broadcast.AgreedBy) != 2 {
		t.Fatalf("balance broadcast: %+v, balance %+v", bal.Broadcast.Result, bal.Balance)
	}
	if _, err := a.Broadcast(ctx, node.BroadcastRequest{Kind: "kind-named-by-the-caller", Scope: broadcast.Scope{Kind: broadcast.ScopeOrgs, Orgs: []string{"member-2"}},
		BroadcastOptions: node.BroadcastOptions{Quorum: 5}}); !errors.Is(err, broadcast.ErrQuorumTooLarge) {
		t.Fatalf("broadcast with a quorum over the scope: %v, want quorum too large", err)
	}

	// A node of another network is refused by member-1: its log lines
	// name it with the org "unverified".
	other := testnet.NewEmpty(t, node.WithLogger(logger))
	stranger := other.StartNode(other.Repo("stranger-org", governance.RoleMember, other.Governance))
	if _, err := stranger.Connect(ctx, testnet.AddrInfo(a)); err == nil {
		t.Fatal("a node of another network proved membership")
	}

	asset, acl, get := string(protocols.AssetTx), string(protocols.ResourceACL), string(protocols.ResourceGet)
	resp, repl := string(protocols.BroadcastResponse), string(protocols.LedgerReplicate)
	want := []struct {
		reg     *prometheus.Registry
		name    string
		labels  map[string]string
		value   float64
		atLeast bool
	}{
		// member-1 sent the transfers and the get, and took the ACL.
		{regA, "finp2p_requests_total", lbl("protocol", asset, "direction", "outbound", "outcome", "ok"), 1, false},
		{regA, "finp2p_requests_total", lbl("protocol", asset, "direction", "outbound", "outcome", "refused"), 1, false},
		{regA, "finp2p_requests_total", lbl("protocol", asset, "direction", "outbound", "outcome", "error"), 0, false},
		{regA, "finp2p_requests_total", lbl("protocol", get, "direction", "outbound", "outcome", "denied"), 1, false},
		{regA, "finp2p_requests_total", lbl("protocol", acl, "direction", "inbound", "outcome", "ok"), 1, false},
		{regA, "finp2p_request_duration_seconds", lbl("protocol", asset, "direction", "outbound"), 2, false},
		{regA, "finp2p_requests_total", lbl("protocol", string(protocols.Discovery), "direction", "outbound", "outcome", "ok"), 1, true},
		{regA, "finp2p_requests_total", lbl("protocol", resp, "direction", "inbound", "outcome", "ok"), 2, false},
		{regA, "finp2p_broadcasts_total", lbl("kind", node.KindBalance, "result", "agreed"), 1, false},
		{regA, "finp2p_broadcast_duration_seconds", lbl("kind", node.KindBalance, "result", "agreed"), 1, false},
		{regA, "finp2p_broadcasts_total", lbl("kind", "other", "result", "failed"), 1, false},
		{regA, "finp2p_ledger_operations_total", lbl("operation", "transfer", "outcome", "ok"), 0, false},
		{regA, "finp2p_gossip_validations_total", lbl("topic", "capabilities", "result", "accept"), 1, true},
		{regA, "finp2p_members_connected", nil, 1, true},
		// member-2 served them, executed on its ledger, streams its journal
		// to member-3 and answered the broadcast.
		{regB, "finp2p_requests_total", lbl("protocol", asset, "direction", "inbound", "outcome", "ok"), 1, false},
		{regB, "finp2p_requests_total", lbl("protocol", asset, "direction", "inbound", "outcome", "refused"), 1, false},
		{regB, "finp2p_requests_total", lbl("protocol", get, "direction", "inbound", "outcome", "denied"), 1, false},
		{regB, "finp2p_requests_total", lbl("protocol", acl, "direction", "outbound", "outcome", "ok"), 2, false},
		{regB, "finp2p_request_duration_seconds", lbl("protocol", asset, "direction", "inbound"), 2, false},
		{regB, "finp2p_requests_total", lbl("protocol", repl, "direction", "inbound", "outcome", "ok"), 1, true},
		{regB, "finp2p_requests_total", lbl("protocol", resp, "direction", "outbound", "outcome", "ok"), 1, false},
		{regB, "finp2p_ledger_operations_total", lbl("operation", "create-asset", "outcome", "ok"), 1, false},
		{regB, "finp2p_ledger_operations_total", lbl("operation", "issue", "outcome", "ok"), 1, false},
		{regB, "finp2p_ledger_operations_total", lbl("operation", "transfer", "outcome", "ok"), 1, false},
		{regB, "finp2p_ledger_operations_total", lbl("operation", "transfer", "outcome", "insufficient-balance"), 1, false},
		{regB, "finp2p_ledger_operations_total", lbl("operation", "balance", "outcome", "ok"), 1, false},
		{regB, "finp2p_ledger_operation_duration_seconds", lbl("operation", "transfer"), 2, false},
		{regB, "finp2p_broadcast_answers_total", lbl("kind", node.KindBalance, "outcome", "answered"), 1, false},
		{regB, "finp2p_gossip_validations_total", lbl("topic", "broadcast", "result", "accept"), 1, false},
		// member-3 replicated the three entries and answered from its replica.
		{regC, "finp2p_requests_total", lbl("protocol", acl, "direction", "inbound", "outcome", "ok"), 1, false},
		{regC, "finp2p_ledger_replicated_entries_total", lbl("ledger", l, "outcome", "applied"), 3, false},
		{regC, "finp2p_ledger_replica_lag", lbl("ledger", l), 0, false},
		{regC, "finp2p_requests_total", lbl("protocol", repl, "direction", "outbound", "outcome", "ok"), 1, true},
		{regC, "finp2p_broadcast_answers_total", lbl("kind", node.KindBalance, "outcome", "answered"), 1, false},
		{regC, "finp2p_gossip_validations_total", lbl("topic", "broadcast", "result", "accept"), 1, false},
	}
	names := map[*prometheus.Registry]string{regA: "member-1", regB: "member-2", regC: "member-3"}
	for _, w := range want {
		what := fmt.Sprintf("%s: %s%v = %g", names[w.reg], w.name, w.labels, w.value)
		if w.atLeast {
			what = fmt.Sprintf("%s: %s%v >= %g", names[w.reg], w.name, w.labels, w.value)
		}
		// Some of it happens after the call that caused it returned (a
		// response is counted once acknowledged): poll.
		var got float64
		var found bool
		deadline := time.Now().Add(20 * time.Second)
		for {
			got, found = sample(t, w.reg, w.name, w.labels)
			if found && (got == w.value || w.atLeast && got > w.value) || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !found || got != w.value && !(w.atLeast && got > w.value) {
			t.Errorf("%s: got %g (series found: %v)", what, got, found)
		}
	}

	// libp2p's resource manager reports to the node's registry, and no
	// label names a peer.
	for reg, name := range names {
		families := gathered(t, reg)
		for _, f := range []string{"libp2p_rcmgr_limit", "libp2p_rcmgr_streams", "finp2p_membership_handshakes_total"} {
			if _, ok := families[f]; !ok {
				t.Errorf("%s: no %s family", name, f)
			}
		}
		for f, labelSets := range families {
			if !strings.HasPrefix(f, "finp2p_") {
				continue
			}
			for _, ls := range labelSets {
				for k, v := range ls {
					for _, p := range peers {
						if strings.Contains(v, p) {
							t.Errorf("%s: %s has label %s=%q naming a peer", name, f, k, v)
						}
					}
				}
			}
		}
	}

	checkPeerLogs(t, logs, "peer refused: membership not proved; disconnected and blocked")
}

// checkPeerLogs waits for a line with message msg about an unverified
// peer, then checks every JSON log record: one object a line, no key
// twice, and "org" wherever there is "peer".
func checkPeerLogs(t *testing.T, logs *syncBuffer, msg string) {
	t.Helper()
	testnet.Eventually(t, 20*time.Second, fmt.Sprintf("a %q log line", msg), func() bool {
		return strings.Contains(logs.String(), `"msg":"`+msg+`"`)
	})
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	aboutPeers, unverified := 0, 0
	for _, line := range lines {
		keys, err := topKeys(line)
		if err != nil {
			t.Fatalf("log line is not a JSON object: %v\n%s", err, line)
		}
		for k, n := range keys {
			if n > 1 {
				t.Errorf("log line has %q %d times: %s", k, n, line)
			}
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if _, ok := rec["self"]; ok {
			if org, _ := rec["self_org"].(string); org == "" {
				t.Errorf("log line with self but no self_org: %s", line)
			}
		}
		p, ok := rec["peer"]
		if !ok {
			continue
		}
		aboutPeers++
		if s, _ := p.(string); s == "" {
			t.Errorf("log line with a peer that is not a peer id: %s", line)
		}
		org, _ := rec["org"].(string)
		switch {
		case org == "":
			t.Errorf("log line about a peer without its org: %s", line)
		case org == governance.UnverifiedOrg:
			unverified++
		}
	}
	if aboutPeers < 10 || unverified == 0 {
		t.Errorf("%d log lines about peers, %d about unverified ones; want many, and some", aboutPeers, unverified)
	}
}

// topKeys counts the keys of the JSON object on line.
func topKeys(line string) (map[string]int, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("want an object, got %v (%v)", tok, err)
	}
	keys := map[string]int{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys[tok.(string)]++
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("more after the object: %v", err)
	}
	return keys, nil
}

// nodesOnLedger lists the nodes from knows to read ledger l.
func nodesOnLedger(from *node.Node, l string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	orgs, err := from.Orgs(ctx, discovery.Filter{Ledger: l})
	if err != nil {
		return nil
	}
	var out []string
	for _, o := range orgs {
		for _, nd := range o.Nodes {
			out = append(out, nd.Peer.String())
		}
	}
	return out
}

func lbl(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// sample is the value of the series of family name with exactly labels:
// a counter's or gauge's value, a histogram's sample count.
func sample(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if !maps.Equal(got, labels) {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

// gathered lists g's families with the label sets of their series.
func gathered(t *testing.T, g prometheus.Gatherer) map[string][]map[string]string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]map[string]string{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			ls := map[string]string{}
			for _, lp := range m.GetLabel() {
				ls[lp.GetName()] = lp.GetValue()
			}
			out[mf.GetName()] = append(out[mf.GetName()], ls)
		}
	}
	return out
}

// syncBuffer is a bytes.Buffer for many writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
