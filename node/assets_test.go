package node_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/finp2p/go-finp2p/asset"
	"github.com/finp2p/go-finp2p/internal/testnet"
	"github.com/finp2p/go-finp2p/ledger"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/resource"
)

func TestAssetTransferWithSignedReceipt(t *testing.T) {
	net := testnet.New(t, testnet.Options{Members: 3, Join: true})
	a, b, c := net.Nodes()[2], net.Nodes()[3], net.Nodes()[4]
	for _, nd := range []*node.Node{a, c} {
		testnet.Eventually(t, 10*time.Second, nd.Self().OrgID+" resolves member-2", func() bool {
			return resolves(nd, "member-2", b.ID(), "")
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bond := resource.MustParseID("member-2:102:bond-2030")
	// member-1's users: profiles with secp256k1 FinIDs, whose details
	// member-1 lets member-2 (the bond's primary node) query.
	users := make([]node.User, 3)
	for i, name := range []string{"alice", "bob", "carol"} {
		u, err := a.CreateUser(ctx, []byte(`{"name":"`+name+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		if len(u.FinID) != 66 || (u.FinID[:2] != "02" && u.FinID[:2] != "03") || u.Resource.Type() != resource.TypeOwner {
			t.Fatalf("user %s: FinID %q, resource %s", name, u.FinID, u.Resource)
		}
		users[i] = u
	}
	for _, u := range users[:2] {
		if err := a.SetACL(ctx, resource.ACL{Resource: u.Resource, Grants: map[string]resource.Right{"member-2": resource.RightQuery}}); err != nil {
			t.Fatal(err)
		}
	}
	alice, bob, carol := users[0].Resource.String(), users[1].Resource.String(), users[2].Resource.String()
	if _, err := b.CreateAsset(ctx, bond, 2, "create-bond"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Issue(ctx, bond, alice, "100", "issue-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Issue(ctx, bond, carol, "10", "issue-2"); err != nil {
		t.Fatal(err)
	}
	if err := b.SetACL(ctx, resource.ACL{Resource: bond, Grants: map[string]resource.Right{"member-1": resource.RightTransact}}); err != nil {
		t.Fatal(err)
	}
	balance := func(account string) string {
		t.Helper()
		bal, err := b.Balance(ctx, bond, account)
		if err != nil {
			t.Fatal(err)
		}
		return bal.Current
	}

	req := node.AssetRequest{Asset: bond, From: alice, To: bob, Quantity: "30.5", IdempotencyKey: "transfer-1"}
	rc, err := a.Transfer(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	tx := rc.Receipt.Transaction
	if tx.Operation != ledger.OpTransfer || tx.From != alice || tx.To != bob || tx.Quantity != "30.5" || tx.Hash == "" || rc.Signer.OrgID != "member-2" {
		t.Fatalf("receipt: %+v signed by %s", tx, rc.Signer.OrgID)
	}
	if got, got2 := balance(alice), balance(bob); got != "69.5" || got2 != "30.5" {
		t.Fatalf("balances alice %s bob %s", got, got2)
	}
	// Private data queries follow the ACL: member-2 may read alice's
	// details, member-3 may not.
	if data, err := b.QueryPrivateData(ctx, users[0].Resource); err != nil || string(data) != `{"name":"alice"}` {
		t.Fatalf("member-2 queries alice: %q, %v", data, err)
	}
	if _, err := c.QueryPrivateData(ctx, users[0].Resource); !errors.Is(err, resource.ErrAccessDenied) {
		t.Fatalf("member-3 queries alice: %v", err)
	}
	// member-1 keeps it and can verify it at any time.
	stored, err := a.Receipt(ctx, tx.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.VerifyReceipt(stored.Sealed); err != nil {
		t.Fatalf("stored receipt does not verify: %v", err)
	}
	for i := range stored.Sealed {
		tampered := append([]byte(nil), stored.Sealed...)
		tampered[i] ^= 0x01
		if _, err := a.VerifyReceipt(tampered); err == nil {
			t.Fatalf("receipt with byte %d changed verified", i)
		}
	}

	// A retry with the same key gets the same receipt; balances move once.
	again, err := a.Transfer(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if again.Receipt.Transaction.ID != tx.ID || string(again.Sealed) != string(rc.Sealed) {
		t.Fatalf("retry got transaction %s, first %s", again.Receipt.Transaction.ID, tx.ID)
	}
	if got := balance(alice); got != "69.5" {
		t.Fatalf("alice after the retry: %s", got)
	}
	// A requester that lost the request it sent (a crash before it was on
	// disk) signs a new one with the same key: it gets a receipt of its own
	// for the same ledger transaction, and balances still move once.
	resent, err := a.SendAssetRequestTo(ctx, b.ID(), bond, alice, bob, "30.5", "transfer-1")
	if err != nil {
		t.Fatal(err)
	}
	rv, err := a.VerifyReceipt(resent)
	if err != nil {
		t.Fatal(err)
	}
	if rv.Receipt.Transaction.ID != tx.ID || rv.Receipt.RequestHash == rc.Receipt.RequestHash {
		t.Fatalf("new request with the first key: transaction %s (first %s), request hash %s (first %s)", rv.Receipt.Transaction.ID, tx.ID, rv.Receipt.RequestHash, rc.Receipt.RequestHash)
	}
	if got := balance(alice); got != "69.5" {
		t.Fatalf("alice after the resent request: %s", got)
	}
	// The same key for another request is refused.
	if _, err := a.SendAssetRequestTo(ctx, b.ID(), bond, alice, bob, "1", "transfer-1"); err == nil || !strings.Contains(err.Error(), "conflict") {
		t.Fatalf("new request with the first key for another quantity: %v", err)
	}
	if _, err := a.Transfer(ctx, node.AssetRequest{Asset: bond, From: alice, To: bob, Quantity: "1", IdempotencyKey: "transfer-1"}); !errors.Is(err, ledger.ErrIdempotencyConflict) {
		t.Fatalf("key reused for another transfer: %v", err)
	}

	// A replayed request (old nonce, new idempotency key) is refused.
	key := a.Host().Peerstore().PrivKey(a.ID())
	var chain [][]byte
	for _, cert := range a.Self().Chain {
		chain = append(chain, cert.Raw)
	}
	raw := &asset.Request{Network: testnet.NetworkName, Operation: ledger.OpTransfer, Asset: bond.String(), From: alice, To: bob,
		Quantity: "1", IdempotencyKey: "member-1/raw-1", Nonce: asset.NewNonce(), Timestamp: time.Now(), RequesterOrg: "member-1", Peer: a.ID(), Chain: chain}
	first, err := asset.SealRequest(raw, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.SendAssetRequest(ctx, "member-2", first); err != nil {
		t.Fatal(err)
	}
	raw.IdempotencyKey = "member-1/raw-2"
	replayed, err := asset.SealRequest(raw, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.SendAssetRequest(ctx, "member-2", replayed); !errors.Is(err, asset.ErrReplay) {
		t.Fatalf("replayed nonce: %v", err)
	}
	raw.IdempotencyKey, raw.Nonce, raw.Timestamp = "member-1/raw-3", asset.NewNonce(), time.Now().Add(-time.Hour)
	stale, err := asset.SealRequest(raw, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.SendAssetRequest(ctx, "member-2", stale); !errors.Is(err, asset.ErrStaleRequest) {
		t.Fatalf("an hour-old request: %v", err)
	}

	// Hold, then release to bob; hold, then roll back.
	hold, err := a.Hold(ctx, node.AssetRequest{Asset: bond, From: alice, Quantity: "9.5", IdempotencyKey: "hold-1"})
	if err != nil {
		t.Fatal(err)
	}
	if bal, _ := b.Balance(ctx, bond, alice); bal.Held != "9.5" || bal.Available != "59" {
		t.Fatalf("alice after the hold: %+v", bal)
	}
	if _, err := a.Release(ctx, node.AssetRequest{Asset: bond, HoldID: hold.Receipt.Transaction.ID, To: bob, IdempotencyKey: "release-1"}); err != nil {
		t.Fatal(err)
	}
	hold2, err := a.Hold(ctx, node.AssetRequest{Asset: bond, From: alice, Quantity: "1", IdempotencyKey: "hold-2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Rollback(ctx, node.AssetRequest{Asset: bond, HoldID: hold2.Receipt.Transaction.ID, IdempotencyKey: "rollback-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Redeem(ctx, node.AssetRequest{Asset: bond, From: bob, Quantity: "0.5", IdempotencyKey: "redeem-1"}); err != nil {
		t.Fatal(err)
	}
	if got, got2 := balance(alice), balance(bob); got != "59" || got2 != "40.5" { // the raw request above moved 1 too
		t.Fatalf("after hold/release/rollback/redeem: alice %s bob %s", got, got2)
	}

	// The owner transacts on its own asset too, with the same checks.
	if _, err := b.Issue(ctx, bond, "treasury@member-2", "5", "issue-3"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Transfer(ctx, node.AssetRequest{Asset: bond, From: "treasury@member-2", To: "desk@member-2", Quantity: "2", IdempotencyKey: "own-1"}); err != nil {
		t.Fatalf("owner transfer: %v", err)
	}
	if got := balance("desk@member-2"); got != "2" {
		t.Fatalf("desk after the owner's transfer: %s", got)
	}

	// Bad input changes nothing.
	version, err := b.Ledger().Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		from *node.Node
		req  node.AssetRequest
		want error
	}{
		"org outside the ACL":  {c, node.AssetRequest{Asset: bond, From: alice, To: bob, Quantity: "1", IdempotencyKey: "c-1"}, resource.ErrAccessDenied},
		"insufficient balance": {a, node.AssetRequest{Asset: bond, From: alice, To: bob, Quantity: "1000", IdempotencyKey: "a-2"}, ledger.ErrInsufficientBalance},
		"negative quantity":    {a, node.AssetRequest{Asset: bond, From: alice, To: bob, Quantity: "-1", IdempotencyKey: "a-3"}, asset.ErrBadRequest},
		"too many decimals":    {a, node.AssetRequest{Asset: bond, From: alice, To: bob, Quantity: "1.001", IdempotencyKey: "a-4"}, ledger.ErrBadQuantity},
		"unknown asset":        {a, node.AssetRequest{Asset: resource.MustParseID("member-2:102:nope"), From: alice, To: bob, Quantity: "1", IdempotencyKey: "a-5"}, resource.ErrAccessDenied},
		// member-1 did not let member-2 query carol's details.
		"user details refused": {a, node.AssetRequest{Asset: bond, From: carol, To: bob, Quantity: "1", IdempotencyKey: "a-6"}, node.ErrUserData},
	} {
		if _, err := c.from.Transfer(ctx, c.req); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if after, _ := b.Ledger().Version(ctx); after != version {
		t.Fatalf("ledger version moved from %d to %d on refused requests", version, after)
	}
}

// TestManyConcurrentTransfersFromOneNode sends 200 transfers at once from
// one node to one owner: every one gets its receipt. libp2p's default
// resource limits refused a peer's streams of one protocol beyond about 64
// at once.
func TestManyConcurrentTransfersFromOneNode(t *testing.T) {
	net := testnet.New(t, testnet.Options{Members: 2, Join: true})
	a, owner := net.Nodes()[2], net.Nodes()[3]
	testnet.Eventually(t, 10*time.Second, "member-1 resolves member-2", func() bool {
		return resolves(a, "member-2", owner.ID(), "")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bond := resource.MustParseID("member-2:102:busy-bond")
	if _, err := owner.CreateAsset(ctx, bond, 0, "create"); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Issue(ctx, bond, "alice@member-1", "1000", "issue"); err != nil {
		t.Fatal(err)
	}
	if err := owner.SetACL(ctx, resource.ACL{Resource: bond, Grants: map[string]resource.Right{"member-1": resource.RightTransact}}); err != nil {
		t.Fatal(err)
	}
	const n = 200
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		go func() {
			<-start
			_, err := a.Transfer(ctx, node.AssetRequest{Asset: bond, From: "alice@member-1", To: "bob@member-1", Quantity: "1", IdempotencyKey: fmt.Sprint("busy-", i)})
			errs <- err
		}()
	}
	close(start)
	failed := 0
	var first error
	for range n {
		if err := <-errs; err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d concurrent transfers failed, first: %v", failed, n, first)
	}
	bal, err := owner.Balance(ctx, bond, "bob@member-1")
	if err != nil || bal.Current != fmt.Sprint(n) {
		t.Fatalf("bob's balance %+v, %v; want %d", bal, err, n)
	}
}
