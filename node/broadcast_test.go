package node_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/finp2p/go-finp2p/broadcast"
	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/testnet"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/resource"
)

// ledgerNetwork is a network joined through rendezvous whose member-1 is
// the primary node of ledger "member-1/embedded", followed by the members
// in followers and, if govFollows, by the governance node.
type ledgerNetwork struct {
	net       *testnet.Network
	founding  *node.Node
	gov       *node.Node
	members   []*node.Node // members[i] is member-(i+1)
	ledger    string
	onLedger  []*node.Node // primary first
	followers []*node.Node
}

func newLedgerNetwork(t testing.TB, members int, followers []int, govFollows bool) *ledgerNetwork {
	t.Helper()
	const l = "member-1/embedded"
	ln := &ledgerNetwork{ledger: l}
	ln.net = testnet.NewEmpty(t, node.WithLedgerFollowers("*"))
	n := ln.net
	ln.founding = n.StartNode(n.Repo("founding-org", governance.RoleFounding, n.Founding))
	n.SetRendezvous(ln.founding)
	var govOpts []node.Option
	if govFollows {
		govOpts = append(govOpts, node.WithFollowLedgers(l))
	}
	ln.gov = n.StartNode(n.Repo("governance-org", governance.RoleGovernance, n.Governance), govOpts...)
	n.SetRendezvous(ln.founding, ln.gov)
	for i := 1; i <= members; i++ {
		var opts []node.Option
		if slices.Contains(followers, i) {
			opts = append(opts, node.WithFollowLedgers(l))
		}
		nd := n.StartNode(n.Repo(fmt.Sprintf("member-%d", i), governance.RoleMember, n.Governance), opts...)
		ln.members = append(ln.members, nd)
	}
	ln.onLedger = []*node.Node{ln.members[0]}
	for _, i := range followers {
		ln.followers = append(ln.followers, ln.members[i-1])
	}
	if govFollows {
		ln.followers = append(ln.followers, ln.gov)
	}
	ln.onLedger = append(ln.onLedger, ln.followers...)
	return ln
}

// newLedgerNetworkB is the benchmarks' ledger network: member-1's ledger
// followed by members 2-4 and the governance node.
func newLedgerNetworkB(b *testing.B, members int) *ledgerNetwork {
	return newLedgerNetwork(b, members, []int{2, 3, 4}, true)
}

// waitScope waits until from knows want nodes on the ledger.
func (ln *ledgerNetwork) waitScope(t *testing.T, from *node.Node, want int) {
	t.Helper()
	testnet.Eventually(t, 3*time.Minute, fmt.Sprintf("%s knows %d nodes on %s", from.Self().OrgID, want, ln.ledger), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		orgs, err := from.Orgs(ctx, discovery.Filter{Ledger: ln.ledger})
		if err != nil {
			return false
		}
		count := 0
		for _, o := range orgs {
			count += len(o.Nodes)
		}
		return count == want
	})
}

// waitReplicated waits until every follower in fs has the primary's
// version of the ledger.
func (ln *ledgerNetwork) waitReplicated(t *testing.T, fs ...*node.Node) {
	t.Helper()
	ctx := context.Background()
	want, err := ln.members[0].Ledger().Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		testnet.Eventually(t, 30*time.Second, fmt.Sprintf("%s replicates version %d", f.Self().OrgID, want), func() bool {
			return replicaVersion(t, f, ln.ledger) == want
		})
	}
}

func replicaVersion(t *testing.T, n *node.Node, ledgerID string) uint64 {
	t.Helper()
	infos, err := n.Ledgers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, li := range infos {
		if li.ID == ledgerID {
			return li.Version
		}
	}
	t.Fatalf("%s does not read ledger %s", n.Self().OrgID, ledgerID)
	return 0
}

func peersOf(rs []broadcast.Responder) []peer.ID {
	var out []peer.ID
	for _, r := range rs {
		out = append(out, r.Peer)
	}
	return out
}

func orgsOf(rs []broadcast.Responder) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Org)
	}
	slices.Sort(out)
	return out
}

// TestLedgerBroadcasts is the issue's scenario: 20 members, 5 nodes on
// ledger L (its primary, three member followers and the governance node).
func TestLedgerBroadcasts(t *testing.T) {
	if testing.Short() {
		t.Skip("20-member network")
	}
	ln := newLedgerNetwork(t, 20, []int{2, 3, 4}, true)
	primary, m2, m3, m4 := ln.members[0], ln.members[1], ln.members[2], ln.members[3]
	origin := ln.members[19] // member-20, not on L
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	testnet.Eventually(t, 3*time.Minute, "member-1 resolves member-20", func() bool {
		return resolves(primary, "member-20", origin.ID(), "")
	})
	bond := resource.MustParseID("member-1:102:bond-2031")
	alice, bob := "alice@member-20", "bob@member-20"
	if _, err := primary.CreateAsset(ctx, bond, 2, "create"); err != nil {
		t.Fatal(err)
	}
	if _, err := primary.Issue(ctx, bond, alice, "100", "issue"); err != nil {
		t.Fatal(err)
	}
	if err := primary.SetACL(ctx, resource.ACL{Resource: bond, Grants: map[string]resource.Right{"member-20": resource.RightTransact}}); err != nil {
		t.Fatal(err)
	}
	ln.waitScope(t, origin, 5)
	ln.waitReplicated(t, ln.followers...)

	// Quorum 3 of the 5 nodes on L agree on the balance.
	res, err := origin.BalanceOf(ctx, bond, alice, node.BroadcastOptions{Quorum: 3, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	b := res.Broadcast
	if !b.OK || res.Balance == nil || res.Balance.Current != "100" || len(b.AgreedBy) < 3 || len(b.Disagreed) > 0 {
		t.Fatalf("balance broadcast: %+v\nbalance %+v", b.Result, res.Balance)
	}
	if !b.Encrypted || len(b.Asked) != 5 || b.Scope.Ledger != ln.ledger {
		t.Fatalf("asked %v (encrypted %v, scope %s)", b.Asked, b.Encrypted, b.Scope)
	}
	for _, r := range b.AgreedBy {
		if !slices.ContainsFunc(ln.onLedger, func(n *node.Node) bool { return n.ID() == r.Peer }) {
			t.Fatalf("responder %s (%s) is not on the ledger", r.Peer, r.Org)
		}
	}
	t.Logf("quorum 3 of 5: agreed by %v in %s", orgsOf(b.AgreedBy), b.Took)

	// A follower that stops replicating answers from an older ledger
	// version: the newest version wins and the stale node is named.
	if err := m4.PauseReplication(ln.ledger, true); err != nil {
		t.Fatal(err)
	}
	stale := replicaVersion(t, m4, ln.ledger)
	if _, err := origin.Transfer(ctx, node.AssetRequest{Asset: bond, From: alice, To: bob, Quantity: "30", IdempotencyKey: "t1"}); err != nil {
		t.Fatal(err)
	}
	ln.waitReplicated(t, m2, m3, ln.gov)
	if got := replicaVersion(t, m4, ln.ledger); got != stale {
		t.Fatalf("paused follower moved from version %d to %d", stale, got)
	}
	res, err = origin.BalanceOf(ctx, bond, alice, node.BroadcastOptions{Quorum: 5, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	b = res.Broadcast
	if !b.OK || res.Balance.Current != "70" || len(b.AgreedBy) != 4 || len(b.Disagreed) != 1 {
		t.Fatalf("stale follower: %+v", b.Result)
	}
	if d := b.Disagreed[0]; d.Peer != m4.ID() || d.LedgerVersion != stale || !strings.Contains(d.Reason, "stale ledger version") || !strings.Contains(b.Resolution, "stale: "+m4.ID().String()) {
		t.Fatalf("stale node reported as %+v; resolution %q", d, b.Resolution)
	}
	t.Logf("stale follower: %s", b.Resolution)
	// Resumed, it asks the primary for what it missed and catches up.
	if err := m4.PauseReplication(ln.ledger, false); err != nil {
		t.Fatal(err)
	}
	ln.waitReplicated(t, m4)

	// Receipt validation: the real receipt is valid; one with a changed
	// quantity is reported invalid by the responders.
	rc, err := origin.Transfer(ctx, node.AssetRequest{Asset: bond, From: alice, To: bob, Quantity: "5", IdempotencyKey: "t2"})
	if err != nil {
		t.Fatal(err)
	}
	ln.waitReplicated(t, ln.followers...)
	tx := rc.Receipt.Transaction
	vres, err := origin.ValidateReceipt(ctx, tx, node.BroadcastOptions{Quorum: 3, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !vres.Broadcast.OK || vres.Validation == nil || !vres.Validation.Valid {
		t.Fatalf("real receipt: %+v %+v", vres.Validation, vres.Broadcast.Result)
	}
	forged := tx
	forged.Quantity = "500"
	vres, err = origin.ValidateReceipt(ctx, forged, node.BroadcastOptions{Quorum: 3, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !vres.Broadcast.OK || vres.Validation == nil || vres.Validation.Valid || !strings.Contains(vres.Validation.Reason, "quantity") || len(vres.Broadcast.AgreedBy) < 3 {
		t.Fatalf("changed quantity: %+v %+v", vres.Validation, vres.Broadcast.Result)
	}
	if strings.Contains(vres.Validation.Reason, "\"5\"") {
		t.Fatalf("the reason gives the ledger's quantity away: %q", vres.Validation.Reason)
	}

	// Forged and out-of-scope responses are dropped and reported: one
	// signed by a node not on L, one whose signature is broken, one
	// answering another request; and a request with a quorum larger than
	// the scope is refused before it is sent.
	outsider := ln.members[9] // member-10
	var hookErr error
	var acks []string
	origin.OnBroadcastSent(func(r *broadcast.Request) {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		send := func(from *node.Node, sealed []byte) {
			if _, err := from.Connect(cctx, testnet.AddrInfo(origin)); err != nil {
				hookErr = err
				return
			}
			ack, err := from.SendBroadcastResponse(cctx, origin.ID(), sealed)
			if err != nil {
				hookErr = err
			}
			acks = append(acks, ack)
		}
		out, err := outsider.SealBroadcastResponse(&broadcast.Response{RequestID: r.ID, Answer: []byte(`{"current":"1000000"}`), LedgerVersion: 1 << 40})
		if err != nil {
			hookErr = err
			return
		}
		send(outsider, out)
		bad, err := m2.SealBroadcastResponse(&broadcast.Response{RequestID: r.ID, Answer: []byte(`{"current":"1000000"}`), LedgerVersion: 1 << 40})
		if err != nil {
			hookErr = err
			return
		}
		bad[len(bad)-1] ^= 0xff // the signature is the envelope's last field
		send(m2, bad)
	})
	res, err = origin.BalanceOf(ctx, bond, alice, node.BroadcastOptions{Quorum: 5, Timeout: 10 * time.Second})
	origin.OnBroadcastSent(nil)
	if err != nil || hookErr != nil {
		t.Fatal(err, hookErr)
	}
	b = res.Broadcast
	if !b.OK || res.Balance.Current != "65" || len(b.AgreedBy) != 5 {
		t.Fatalf("with forged responses: %+v", b.Result)
	}
	if len(b.Dropped) != 2 || len(acks) != 2 || acks[0] == "" || acks[1] == "" {
		t.Fatalf("dropped %+v, acks %q", b.Dropped, acks)
	}
	if d := b.Dropped[0]; d.Peer != outsider.ID() || !errors.Is(d.Err, broadcast.ErrOutOfScope) {
		t.Fatalf("outsider's response dropped as %+v", d)
	}
	if d := b.Dropped[1]; d.Peer != m2.ID() || !(errors.Is(d.Err, broadcast.ErrMalformed) || errors.Is(d.Err, broadcast.ErrForged)) {
		t.Fatalf("broken signature dropped as %+v", d)
	}
	t.Logf("dropped: %s; %s", b.Dropped[0].Reason, b.Dropped[1].Reason)
	unknownBefore := origin.UnknownBroadcastResponses()
	late, err := outsider.SealBroadcastResponse(&broadcast.Response{RequestID: broadcast.NewRequestID(), Answer: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	if ack, err := outsider.SendBroadcastResponse(ctx, origin.ID(), late); err != nil || !strings.Contains(ack, "no broadcast") {
		t.Fatalf("response to an unknown request: ack %q, %v", ack, err)
	}
	if origin.UnknownBroadcastResponses() != unknownBefore+1 {
		t.Fatal("response to an unknown request not counted")
	}
	if _, err := origin.BalanceOf(ctx, bond, alice, node.BroadcastOptions{Quorum: 6}); !errors.Is(err, broadcast.ErrQuorumTooLarge) {
		t.Fatalf("quorum 6 of 5: %v", err)
	}

	// Encrypted payload: a member outside the scope that joins L's topic
	// relays the request but cannot read it.
	relay := ln.members[14] // member-15
	var mu sync.Mutex
	var relayed []*broadcast.VerifiedRequest
	relay.OnBroadcastDelivered(func(vr *broadcast.VerifiedRequest) {
		mu.Lock()
		relayed = append(relayed, vr)
		mu.Unlock()
	})
	if err := relay.JoinBroadcastTopic(protocols.TopicBroadcastLedger(ln.ledger)); err != nil {
		t.Fatal(err)
	}
	if _, err := relay.Connect(ctx, testnet.AddrInfo(origin)); err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, 30*time.Second, "the relay receives a balance request", func() bool {
		if _, err := origin.BalanceOf(ctx, bond, alice, node.BroadcastOptions{Quorum: 3, Timeout: 5 * time.Second}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		return len(relayed) > 0
	})
	mu.Lock()
	vr := relayed[0]
	mu.Unlock()
	if !vr.Request.Encrypted || strings.Contains(string(vr.Request.Payload), alice) {
		t.Fatalf("relayed payload readable: %q", vr.Request.Payload)
	}
	if _, err := broadcast.DecryptPayload(vr.Request, relay.ID(), relay.EncryptionKey()); !errors.Is(err, broadcast.ErrNotRecipient) {
		t.Fatalf("relay decrypting: %v, want ErrNotRecipient", err)
	}
	if p, err := broadcast.DecryptPayload(vr.Request, m3.ID(), m3.EncryptionKey()); err != nil || !strings.Contains(string(p), alice) {
		t.Fatalf("a node on the ledger decrypting: %q, %v", p, err)
	}

	// Two nodes on L stopped: quorum 3 of 5 is still reached; quorum 5
	// reports both as failed at the deadline.
	for _, nd := range []*node.Node{m2, m3} {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := nd.Close(cctx); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	res, err = origin.BalanceOf(ctx, bond, alice, node.BroadcastOptions{Quorum: 3, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if b := res.Broadcast; !b.OK || res.Balance.Current != "65" || len(b.AgreedBy) != 3 || slices.Contains(peersOf(b.AgreedBy), m2.ID()) {
		t.Fatalf("quorum 3 with two nodes stopped: %+v", b.Result)
	}
	// Long enough for the three live nodes to answer under -race on 2 cores.
	const timeout = 8 * time.Second
	cctx, ccancel := context.WithTimeout(ctx, timeout+5*time.Second)
	defer ccancel()
	res, err = origin.BalanceOf(cctx, bond, alice, node.BroadcastOptions{Quorum: 5, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	b = res.Broadcast
	slices.Sort(b.Failed)
	want := []peer.ID{m2.ID(), m3.ID()}
	slices.Sort(want)
	if b.OK || !slices.Equal(b.Failed, want) || len(b.AgreedBy) != 3 || !strings.Contains(b.Resolution, "quorum not reached: 3 of 5") {
		t.Fatalf("quorum 5 with two nodes stopped: %+v", b.Result)
	}
	if b.Took < timeout-100*time.Millisecond {
		t.Fatalf("gave up after %s, before the %s deadline", b.Took, timeout)
	}
	t.Logf("quorum 5 with two stopped: %s after %s", b.Resolution, b.Took)
}
