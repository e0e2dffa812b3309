package node_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/finp2p/go-finp2p/broadcast"
	"github.com/finp2p/go-finp2p/internal/testnet"
	"github.com/finp2p/go-finp2p/node"
)

// TestBroadcastScopes sends a custom kind to every scope: every member
// (gossip), selected orgs (direct streams), the rendezvous cluster
// (gossip) and the closest DHT nodes (direct streams), and checks who
// answered.
func TestBroadcastScopes(t *testing.T) {
	net := testnet.New(t, testnet.Options{Members: 4, Join: true})
	nodes := net.Nodes()
	founding, gov, origin := nodes[0], nodes[1], nodes[2]
	for _, nd := range nodes {
		// Each node answers with its org; member-4 cannot answer.
		org := nd.Self().OrgID
		err := nd.HandleBroadcast("whoami", func(_ context.Context, req *broadcast.VerifiedRequest, payload []byte) ([]byte, uint64, error) {
			if org == "member-4" {
				return nil, 0, errors.New("member-4 does not say")
			}
			return append([]byte(org+":"), payload...), 1, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, nd := range nodes[3:] {
		testnet.Eventually(t, 30*time.Second, "member-1 resolves "+nd.Self().OrgID, func() bool {
			return resolves(origin, nd.Self().OrgID, nd.ID(), "")
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	send := func(scope broadcast.Scope, quorum int, encrypt bool) *node.BroadcastResult {
		t.Helper()
		res, err := origin.Broadcast(ctx, node.BroadcastRequest{Kind: "whoami", Scope: scope, Payload: []byte("q"),
			BroadcastOptions: node.BroadcastOptions{Quorum: quorum, Timeout: 10 * time.Second, Consistency: broadcast.Majority, Encrypt: encrypt}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	answered := func(res *node.BroadcastResult) []string {
		var out []string
		for _, r := range append(append(slices.Clone(res.AgreedBy), res.Disagreed...), res.Unanswered...) {
			out = append(out, r.Org)
		}
		slices.Sort(out)
		return out
	}

	// Every member: 5 other nodes; each answer differs, so majority is an
	// unresolved tie, but every node answered or said why it could not.
	testnet.Eventually(t, 30*time.Second, "every node answers an all-members broadcast", func() bool {
		res := send(broadcast.Scope{Kind: broadcast.ScopeAll}, 0, true)
		return slices.Equal(answered(res), []string{"founding-org", "governance-org", "member-2", "member-3", "member-4"}) && len(res.Unanswered) == 1
	})

	// Selected orgs, over direct streams.
	res := send(broadcast.Scope{Kind: broadcast.ScopeOrgs, Orgs: []string{"member-2", "member-3"}}, 2, true)
	if got := answered(res); !slices.Equal(got, []string{"member-2", "member-3"}) || len(res.NotSent) > 0 {
		t.Fatalf("orgs scope answered by %v (not sent %v): %+v", got, res.NotSent, res.Result)
	}
	// A single org agrees with itself.
	res = send(broadcast.Scope{Kind: broadcast.ScopeOrgs, Orgs: []string{"member-2"}}, 1, false)
	if !res.OK || string(res.Agreed) != "member-2:q" {
		t.Fatalf("one org: %+v", res.Result)
	}

	// The rendezvous cluster: the governance and founding nodes.
	res = send(broadcast.Scope{Kind: broadcast.ScopeRendezvous}, 2, false)
	if got := answered(res); !slices.Equal(got, []string{"founding-org", "governance-org"}) {
		t.Fatalf("rendezvous scope answered by %v: %+v", got, res.Result)
	}
	for _, r := range res.AgreedBy {
		if !r.Rendezvous {
			t.Fatalf("rendezvous responder %s not marked", r.Org)
		}
	}
	_ = founding
	_ = gov

	// The closest DHT nodes, over direct streams.
	testnet.Eventually(t, 30*time.Second, "member-1 has DHT neighbours", func() bool { return origin.DHT().RoutingTable().Size() >= 2 })
	res = send(broadcast.Scope{Kind: broadcast.ScopeClosest}, 1, false)
	if len(answered(res)) < 2 || len(res.Asked) != origin.DHT().RoutingTable().Size() {
		t.Fatalf("closest scope: asked %d, answered by %v", len(res.Asked), answered(res))
	}

	// Bad requests are refused before anything is sent.
	for name, req := range map[string]node.BroadcastRequest{
		"quorum over scope": {Kind: "whoami", Scope: broadcast.Scope{Kind: broadcast.ScopeOrgs, Orgs: []string{"member-2"}}, BroadcastOptions: node.BroadcastOptions{Quorum: 2}},
		"bad scope":         {Kind: "whoami", Scope: broadcast.Scope{Kind: "everyone"}},
		"unknown org":       {Kind: "whoami", Scope: broadcast.Scope{Kind: broadcast.ScopeOrgs, Orgs: []string{"nobody-here"}}, BroadcastOptions: node.BroadcastOptions{Timeout: time.Second}},
		"timeout too long":  {Kind: "whoami", Scope: broadcast.Scope{Kind: broadcast.ScopeAll}, BroadcastOptions: node.BroadcastOptions{Timeout: time.Hour}},
		"no such ledger":    {Kind: "balance", Scope: broadcast.Scope{Kind: broadcast.ScopeLedger, Ledger: "nobody/embedded"}},
	} {
		if _, err := origin.Broadcast(ctx, req); err == nil {
			t.Errorf("%s: sent", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
