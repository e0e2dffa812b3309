package node_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/testnet"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/resource"
)

// TestClusterStandby runs org member-2 as a two-node cluster: a primary
// node executing the org's ledger and a standby node keeping a replica of
// it. Transactions sent to the org reach the primary whatever order the
// org's nodes are found in; the standby answers broadcasts from its replica,
// refuses to execute, and forwards its own org's transactions to the primary.
func TestClusterStandby(t *testing.T) {
	net := testnet.NewEmpty(t)
	founding := net.StartNode(net.Repo("founding-org", governance.RoleFounding, net.Founding))
	net.SetRendezvous(founding)
	gov := net.StartNode(net.Repo("governance-org", governance.RoleGovernance, net.Governance))
	net.SetRendezvous(founding, gov)
	requester := net.StartNode(net.Repo("member-1", governance.RoleMember, net.Governance))
	// The standby starts first, so it is the org's first advertised node.
	const l = "member-2/embedded"
	standbyRepo := net.Repo("member-2", governance.RoleMember, net.Governance)
	standbyDS := dssync.MutexWrap(datastore.NewMapDatastore()) // kept for its promotion
	standby := net.StartNode(standbyRepo, node.WithFollowLedgers(l), node.WithDatastore(standbyDS))
	primary := net.StartNode(net.Repo("member-2", governance.RoleMember, net.Governance))

	if id, ok := standby.Standby(); !ok || id != l || standby.Ledger() != nil {
		t.Fatalf("standby: Standby() = %q, %v; Ledger() = %v", id, ok, standby.Ledger())
	}
	if _, ok := primary.Standby(); ok || primary.Ledger() == nil || primary.Ledger().ID() != l {
		t.Fatalf("primary: not executing %s", l)
	}
	testnet.Eventually(t, 30*time.Second, "member-1 resolves both nodes of member-2", func() bool {
		return resolves(requester, "member-2", standby.ID(), "") && resolves(requester, "member-2", primary.ID(), "")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	res, err := requester.Resolve(ctx, "member-2")
	if err != nil {
		t.Fatal(err)
	}
	for _, nd := range res.Nodes {
		want := ""
		if nd.Peer == primary.ID() {
			want = l
		}
		if nd.Executes != want || !slices.Contains(nd.Ledgers, l) {
			t.Fatalf("node %s advertises executes %q, ledgers %v; want executes %q and %s among the ledgers", nd.Peer, nd.Executes, nd.Ledgers, want, l)
		}
	}

	// The standby executes nothing itself.
	bond := resource.MustParseID("member-2:102:cluster-bond")
	if _, err := standby.CreateAsset(ctx, bond, 0, "create-on-standby"); !errors.Is(err, node.ErrStandby) {
		t.Fatalf("CreateAsset on the standby: %v, want ErrStandby", err)
	}
	if _, err := primary.CreateAsset(ctx, bond, 0, "create"); err != nil {
		t.Fatal(err)
	}
	users := make([]string, 2)
	for i, name := range []string{"alice", "bob"} {
		u, err := requester.CreateUser(ctx, []byte(`{"name":"`+name+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		if err := requester.SetACL(ctx, resource.ACL{Resource: u.Resource, Grants: map[string]resource.Right{"member-2": resource.RightQuery}}); err != nil {
			t.Fatal(err)
		}
		users[i] = u.Resource.String()
	}
	alice, bob := users[0], users[1]
	if _, err := primary.Issue(ctx, bond, alice, "100", "issue"); err != nil {
		t.Fatal(err)
	}
	if err := primary.SetACL(ctx, resource.ACL{Resource: bond, Grants: map[string]resource.Right{"member-1": resource.RightTransact}}); err != nil {
		t.Fatal(err)
	}

	// Routed to the primary, which signs the receipt.
	rc, err := requester.Transfer(ctx, node.AssetRequest{Asset: bond, From: alice, To: bob, Quantity: "30", IdempotencyKey: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if rc.Signer.PeerID != primary.ID() {
		t.Fatalf("receipt signed by %s, want the primary %s", rc.Signer.PeerID, primary.ID())
	}
	// A request the standby receives directly is refused as not its to
	// execute, not as a refusal of the transaction.
	if _, err := requester.SendAssetRequestTo(ctx, standby.ID(), bond, alice, bob, "1", "direct-to-standby"); err == nil || !strings.Contains(err.Error(), "standby") {
		t.Fatalf("request sent to the standby: %v, want a standby refusal", err)
	}

	// The standby's replica follows the primary.
	want, err := primary.Ledger().Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, 30*time.Second, fmt.Sprintf("standby replicates version %d", want), func() bool {
		infos, err := standby.Ledgers(ctx)
		if err != nil || len(infos) != 1 {
			return false
		}
		return infos[0].ID == l && infos[0].Role == "standby" && infos[0].Version == want && infos[0].Primary == primary.ID()
	})

	// A transfer asked of the standby by its own org goes to the primary.
	rc2, err := standby.Transfer(ctx, node.AssetRequest{Asset: bond, From: alice, To: bob, Quantity: "5", IdempotencyKey: "t2"})
	if err != nil {
		t.Fatal(err)
	}
	if rc2.Signer.PeerID != primary.ID() || rc2.Receipt.RequesterOrg != "member-2" {
		t.Fatalf("standby's transfer: signed by %s for %s", rc2.Signer.PeerID, rc2.Receipt.RequesterOrg)
	}
	bal, err := primary.Balance(ctx, bond, bob)
	if err != nil || bal.Current != "35" {
		t.Fatalf("bob's balance on the primary: %+v, %v", bal, err)
	}

	// Both nodes of the cluster answer a balance broadcast on the ledger.
	testnet.Eventually(t, 30*time.Second, "the standby has the primary's version", func() bool {
		infos, err := standby.Ledgers(ctx)
		v, _ := primary.Ledger().Version(ctx)
		return err == nil && len(infos) == 1 && infos[0].Version == v
	})
	br, err := requester.BalanceOf(ctx, bond, bob, node.BroadcastOptions{Quorum: 2, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !br.Broadcast.OK || br.Balance == nil || br.Balance.Current != "35" {
		t.Fatalf("balance broadcast: %+v (%s)", br.Balance, br.Broadcast.Resolution)
	}
	var by []peer.ID
	for _, r := range br.Broadcast.AgreedBy {
		by = append(by, r.Peer)
	}
	if !slices.Contains(by, primary.ID()) || !slices.Contains(by, standby.ID()) {
		t.Fatalf("agreed by %v, want the primary %s and the standby %s", by, primary.ID(), standby.ID())
	}

	// With the primary gone, the org's transactions fail naming the standby
	// rather than being executed on a replica.
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	if err := primary.Close(cctx); err != nil {
		t.Fatal(err)
	}
	ccancel()
	tctx, tcancel := context.WithTimeout(ctx, 20*time.Second)
	defer tcancel()
	_, err = requester.Transfer(tctx, node.AssetRequest{Asset: bond, From: alice, To: bob, Quantity: "1", IdempotencyKey: "t3"})
	if err == nil || !strings.Contains(err.Error(), node.ErrStandby.Error()) {
		t.Fatalf("transfer with the primary stopped: %v, want the standby named", err)
	}

	// The operator promotes the standby: the same repo and datastore,
	// started without following its org's ledger. It executes the ledger
	// from its replica, at the version it had, and the org's transactions
	// go to it.
	replicated, err := standby.Ledgers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel = context.WithTimeout(ctx, 10*time.Second)
	if err := standby.Close(cctx); err != nil {
		t.Fatal(err)
	}
	ccancel()
	promoted := net.StartNode(standbyRepo, node.WithDatastore(standbyDS))
	if _, ok := promoted.Standby(); ok || promoted.Ledger() == nil {
		t.Fatal("the promoted node does not execute its org's ledger")
	}
	if v, err := promoted.Ledger().Version(ctx); err != nil || v != replicated[0].Version {
		t.Fatalf("promoted ledger at version %d (%v), the replica was at %d", v, err, replicated[0].Version)
	}
	testnet.Eventually(t, 30*time.Second, "member-1 sees the promoted node execute "+l, func() bool {
		res, err := requester.Resolve(ctx, "member-2")
		if err != nil {
			return false
		}
		for _, nd := range res.Nodes {
			if nd.Peer == promoted.ID() && nd.Executes == l {
				return true
			}
		}
		return false
	})
	rc3, err := requester.Transfer(ctx, node.AssetRequest{Asset: bond, From: alice, To: bob, Quantity: "1", IdempotencyKey: "t3"})
	if err != nil {
		t.Fatal(err)
	}
	if rc3.Signer.PeerID != promoted.ID() || rc3.Receipt.Transaction.Version != replicated[0].Version+1 {
		t.Fatalf("transfer after promotion: signed by %s at version %d", rc3.Signer.PeerID, rc3.Receipt.Transaction.Version)
	}
	if bal, err := promoted.Balance(ctx, bond, bob); err != nil || bal.Current != "36" {
		t.Fatalf("bob's balance on the promoted node: %+v, %v", bal, err)
	}
}
