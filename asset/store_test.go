package asset_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	dssync "github.com/ipfs/go-datastore/sync"
	pebbleds "github.com/ipfs/go-ds-pebble"

	"github.com/finp2p/go-finp2p/asset"
)

// receiptFor returns an edit giving a receipt its transaction id, request
// hash and signing time.
func receiptFor(txID string, request byte, signedAt time.Time) func(*asset.Receipt) {
	return func(r *asset.Receipt) {
		r.Transaction.ID = txID
		r.RequestHash = strings.Repeat(string("0123456789abcdef"[request%16]), 64)
		r.SignedAt = signedAt
	}
}

func TestReceiptStore(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ds := namespace.Wrap(dssync.MutexWrap(datastore.NewMapDatastore()), datastore.NewKey("/receipts"))
	store := asset.NewReceiptStore(ds, f.rcptV)

	// Transaction ids may hold anything a ledger id may, '/' and ".." too.
	ids := []string{"tx-1", "a/../b", "tx/2"}
	var sealed [][]byte
	for i, id := range ids {
		s := f.sealReceipt(t, f.bankX, receiptFor(id, byte(i), f.now.Add(time.Duration(i)*time.Second)))
		sealed = append(sealed, s)
		vr, err := store.Put(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if vr.Receipt.Transaction.ID != id {
			t.Fatalf("put returned transaction %q", vr.Receipt.Transaction.ID)
		}
	}
	for i, id := range ids {
		vr, err := store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if string(vr.Sealed) != string(sealed[i]) || vr.Signer.OrgID != "bank-x" {
			t.Fatalf("get %q: another receipt", id)
		}
		vr, err = store.ByRequest(ctx, vr.Receipt.RequestHash)
		if err != nil || vr.Receipt.Transaction.ID != id {
			t.Fatalf("by request of %q: %v", id, err)
		}
	}
	list, err := store.List(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].Receipt.Transaction.ID != "tx/2" || list[2].Receipt.Transaction.ID != "tx-1" {
		t.Fatalf("list: %v", txIDs(list))
	}
	if list, err := store.List(ctx, 2); err != nil || len(list) != 2 || list[0].Receipt.Transaction.ID != "tx/2" {
		t.Fatalf("list of 2: %v, %v", txIDs(list), err)
	}

	_, err = store.Get(ctx, "tx-9")
	checkErr(t, err, errs(asset.ErrNotFound, datastore.ErrNotFound), `"tx-9"`)
	_, err = store.ByRequest(ctx, strings.Repeat("e", 64))
	checkErr(t, err, errs(asset.ErrNotFound, datastore.ErrNotFound))
	_, err = store.ByRequest(ctx, "../tx")
	checkErr(t, err, errs(asset.ErrNotFound), "hex")

	// The same receipt again, or re-signed later, is a no-op: the first
	// stays.
	if _, err := store.Put(ctx, sealed[0]); err != nil {
		t.Fatalf("same receipt again: %v", err)
	}
	resigned := f.sealReceipt(t, f.bankX, receiptFor("tx-1", 0, f.now.Add(time.Minute)))
	if _, err := store.Put(ctx, resigned); err != nil {
		t.Fatalf("re-signed receipt: %v", err)
	}
	if vr, err := store.Get(ctx, "tx-1"); err != nil || string(vr.Sealed) != string(sealed[0]) {
		t.Fatalf("after re-signed put: %v", err)
	}
	// A receipt of the same transaction for a new request (a retry sealed
	// again) is found by its request; the transaction keeps one receipt.
	retry := f.sealReceipt(t, f.bankX, receiptFor("tx-1", 9, f.now.Add(time.Minute)))
	if _, err := store.Put(ctx, retry); err != nil {
		t.Fatalf("receipt of a retry: %v", err)
	}
	if vr, err := store.ByRequest(ctx, strings.Repeat("9", 64)); err != nil || string(vr.Sealed) != string(retry) {
		t.Fatalf("by request of the retry: %v", err)
	}
	if list, err := store.List(ctx, 0); err != nil || len(list) != 3 {
		t.Fatalf("list after retries: %v, %v", txIDs(list), err)
	}

	// Conflicts write nothing.
	conflicts := []struct {
		name   string
		sealed []byte
		says   string
	}{
		{"another quantity for a stored transaction", f.sealReceipt(t, f.bankX, func(r *asset.Receipt) {
			receiptFor("tx-1", 10, f.now)(r)
			r.Transaction.Quantity = "13"
		}), "transaction tx-1 already has a receipt with another quantity"},
		{"another transaction for a stored request", f.sealReceipt(t, f.bankX, receiptFor("tx-3", 0, f.now)), "already answered by transaction tx-1"},
	}
	for _, c := range conflicts {
		_, err := store.Put(ctx, c.sealed)
		checkErr(t, err, errs(asset.ErrConflict), c.says)
	}
	if _, err := store.ByRequest(ctx, strings.Repeat("a", 64)); !errors.Is(err, asset.ErrNotFound) {
		t.Fatalf("conflicting receipt indexed by its request: %v", err)
	}
	if _, err := store.Get(ctx, "tx-3"); !errors.Is(err, asset.ErrNotFound) {
		t.Fatalf("conflicting receipt stored: %v", err)
	}
	// A receipt that does not verify is not stored.
	_, err = store.Put(ctx, f.sealReceipt(t, f.bankX, receiptFor("tx-4", 4, f.now))[1:])
	checkErr(t, err, errs(asset.ErrMalformed))
	if _, err := store.Get(ctx, "tx-4"); !errors.Is(err, asset.ErrNotFound) {
		t.Fatalf("invalid receipt stored: %v", err)
	}

	// A new store on the same datastore holds the same.
	again := asset.NewReceiptStore(ds, f.rcptV)
	if list, err := again.List(ctx, 0); err != nil || len(list) != 3 {
		t.Fatalf("list from a new store: %v, %v", txIDs(list), err)
	}
}

func txIDs(list []*asset.VerifiedReceipt) []string {
	var out []string
	for _, vr := range list {
		out = append(out, vr.Receipt.Transaction.ID)
	}
	return out
}

// TestReceiptStorePersists reopens a pebble datastore: what Put returned
// for is there.
func TestReceiptStorePersists(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	dir := t.TempDir()
	open := func() *pebbleds.Datastore {
		ds, err := pebbleds.NewDatastore(dir)
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}
	ds := open()
	sealed := f.sealReceipt(t, f.bankX, receiptFor("tx-1", 1, f.now))
	if _, err := asset.NewReceiptStore(namespace.Wrap(ds, datastore.NewKey("/r")), f.rcptV).Put(ctx, sealed); err != nil {
		t.Fatal(err)
	}
	if err := ds.Close(); err != nil {
		t.Fatal(err)
	}
	ds = open()
	t.Cleanup(func() { _ = ds.Close() })
	store := asset.NewReceiptStore(namespace.Wrap(ds, datastore.NewKey("/r")), f.rcptV)
	vr, err := store.Get(ctx, "tx-1")
	if err != nil || string(vr.Sealed) != string(sealed) {
		t.Fatalf("after reopening: %v", err)
	}
	if _, err := store.ByRequest(ctx, strings.Repeat("1", 64)); err != nil {
		t.Fatal(err)
	}
}

// plainStore hides the batching of a datastore.
type plainStore struct{ datastore.Datastore }

func TestReceiptStoreWithoutBatching(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	store := asset.NewReceiptStore(plainStore{dssync.MutexWrap(datastore.NewMapDatastore())}, f.rcptV)
	sealed := f.sealReceipt(t, f.bankX, receiptFor("tx-1", 1, f.now))
	if _, err := store.Put(ctx, sealed); err != nil {
		t.Fatal(err)
	}
	if list, err := store.List(ctx, 0); err != nil || len(list) != 1 {
		t.Fatalf("list: %v, %v", txIDs(list), err)
	}
}
