package asset_test

import (
	"context"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/finp2p/go-finp2p/asset"
	"github.com/finp2p/go-finp2p/ledger"
	"github.com/finp2p/go-finp2p/ledger/embedded"
)

// TestTransferFlow runs an asset transaction as the node does, without the
// network: bank-a seals a transfer request, bank-x's primary node opens it,
// checks replay, executes it on its ledger and answers with a receipt that
// bank-a checks and stores. A retry of the same request gets the same
// transaction.
func TestTransferFlow(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	l, err := embedded.Open(ctx, dssync.MutexWrap(datastore.NewMapDatastore()), "bank-x:ledger")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreateAsset(ctx, ledger.CreateAsset{IdempotencyKey: "create", Asset: testAsset, Decimals: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Issue(ctx, ledger.Issue{IdempotencyKey: "issue", Asset: testAsset, To: "alice", Quantity: "100"}); err != nil {
		t.Fatal(err)
	}
	guard, err := asset.NewReplayGuard(asset.WithReplayClock(func() time.Time { return f.now }))
	if err != nil {
		t.Fatal(err)
	}

	// The primary node's side.
	serve := func(sealed []byte) []byte {
		t.Helper()
		vr, err := f.reqV.Open(sealed)
		if err != nil {
			t.Fatal(err)
		}
		r := vr.Request
		if err := guard.Check(r.Peer, r.Nonce, r.IdempotencyKey, r.Timestamp); err != nil {
			t.Fatal(err)
		}
		tx, err := l.Transfer(ctx, ledger.Transfer{IdempotencyKey: r.IdempotencyKey, Asset: r.Asset, From: r.From, To: r.To, Quantity: r.Quantity})
		if err != nil {
			t.Fatal(err)
		}
		receipt, err := asset.SealReceipt(&asset.Receipt{
			Network: f.rcptV.Network, Transaction: tx, RequestHash: vr.Hash,
			RequesterOrg: vr.Signer.OrgID, OwnerOrg: vr.AssetID.Org(), Chain: f.bankX.chain,
		}, f.bankX.key)
		if err != nil {
			t.Fatal(err)
		}
		return receipt
	}

	// The requester's side.
	store := asset.NewReceiptStore(dssync.MutexWrap(datastore.NewMapDatastore()), f.rcptV)
	req := f.request(func(r *asset.Request) { r.Nonce = nil })
	sealed, err := asset.SealRequest(req, f.bankA.key)
	if err != nil {
		t.Fatal(err)
	}
	first, err := store.Put(ctx, serve(sealed))
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Receipt.Answers(req, asset.RequestHash(sealed)); err != nil {
		t.Fatal(err)
	}

	// The answer was lost: the same request again returns the same
	// transaction, and storing its receipt is a no-op.
	again, err := store.Put(ctx, serve(sealed))
	if err != nil {
		t.Fatal(err)
	}
	if again.Receipt.Transaction.ID != first.Receipt.Transaction.ID {
		t.Fatalf("retry executed again: %s, then %s", first.Receipt.Transaction.ID, again.Receipt.Transaction.ID)
	}
	if b, err := l.Balance(ctx, testAsset, "bob"); err != nil || b.Current != first.Receipt.Transaction.Quantity {
		t.Fatalf("bob's balance %+v, %v", b, err)
	}

	// The same nonce under another idempotency key is a replay.
	replayed, err := asset.SealRequest(f.request(func(r *asset.Request) { r.Nonce, r.IdempotencyKey = req.Nonce, "transfer-2" }), f.bankA.key)
	if err != nil {
		t.Fatal(err)
	}
	vr, err := f.reqV.Open(replayed)
	if err != nil {
		t.Fatal(err)
	}
	checkErr(t, guard.Check(vr.Request.Peer, vr.Request.Nonce, vr.Request.IdempotencyKey, vr.Request.Timestamp), errs(asset.ErrReplay))
}
