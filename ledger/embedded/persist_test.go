package embedded

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"

	pebbleds "github.com/ipfs/go-ds-pebble"

	"github.com/finp2p/go-finp2p/ledger"
)

func TestPersistence(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	ds, err := pebbleds.NewDatastore(dir)
	if err != nil {
		t.Fatal(err)
	}
	l := openTest(t, ds)
	mustTx(t)(l.CreateAsset(ctx, ledger.CreateAsset{IdempotencyKey: "create", Asset: "usd", Decimals: 2}))
	mustTx(t)(l.Issue(ctx, ledger.Issue{IdempotencyKey: "issue", Asset: "usd", To: "alice", Quantity: "100"}))
	transfer := mustTx(t)(l.Transfer(ctx, ledger.Transfer{IdempotencyKey: "pay", Asset: "usd", From: "alice", To: "bob", Quantity: "25.5"}))
	hold := mustTx(t)(l.Hold(ctx, ledger.Hold{IdempotencyKey: "hold", Asset: "usd", From: "alice", Quantity: "10"}))
	mustTx(t)(l.Redeem(ctx, ledger.Redeem{IdempotencyKey: "redeem", Asset: "usd", From: "bob", Quantity: "0.5"}))
	journal := mustJournal(t)(l.Journal(ctx, 1, 100))
	if err := ds.Close(); err != nil {
		t.Fatal(err)
	}

	ds = pebbleStore(t, dir)
	l = openTest(t, ds)
	if v := mustVersion(t)(l.Version(ctx)); v != 5 {
		t.Fatalf("version after reopen %d, want 5", v)
	}
	if err := l.Verify(ctx); err != nil {
		t.Fatalf("Verify after reopen: %v", err)
	}
	if got := mustJournal(t)(l.Journal(ctx, 1, 100)); !reflect.DeepEqual(got, journal) {
		t.Errorf("journal after reopen differs:\n%+v\nwant\n%+v", got, journal)
	}
	wantBalance(t, l, "usd", "alice", "74.5", "64.5", "10")
	wantBalance(t, l, "usd", "bob", "25", "25", "0")
	wantSupply(t, l, "usd", "99.5")
	if got := mustTx(t)(l.Transaction(ctx, transfer.ID)); !reflect.DeepEqual(got, transfer) {
		t.Errorf("Transaction after reopen = %+v, want %+v", got, transfer)
	}
	if st := mustStatus(t)(l.Status(ctx, "hold")); !st.Done || st.Transaction.ID != hold.ID {
		t.Errorf("Status after reopen = %+v", st)
	}
	// Idempotency survives: a retry returns the original transaction.
	again := mustTx(t)(l.Transfer(ctx, ledger.Transfer{IdempotencyKey: "pay", Asset: "usd", From: "alice", To: "bob", Quantity: "25.50"}))
	if !reflect.DeepEqual(again, transfer) {
		t.Errorf("retry after reopen = %+v, want %+v", again, transfer)
	}
	_, err = l.Transfer(ctx, ledger.Transfer{IdempotencyKey: "pay", Asset: "usd", From: "alice", To: "bob", Quantity: "1"})
	wantError(t, err, ledger.ErrIdempotencyConflict)
	// The chain continues from the stored head; the hold is still open.
	rel := mustTx(t)(l.Release(ctx, ledger.Release{IdempotencyKey: "settle", HoldID: hold.ID, To: "bob"}))
	if rel.Version != 6 || rel.PrevHash != journal[4].Hash {
		t.Errorf("first transaction after reopen: version %d prev %s, want 6 and %s", rel.Version, rel.PrevHash, journal[4].Hash)
	}
	wantBalance(t, l, "usd", "bob", "35", "35", "0")
	if err := l.Verify(ctx); err != nil {
		t.Fatalf("Verify: %v", err)
	}

	// Tampering with a journal entry on disk is caught.
	rewrite(t, ds, journalKey(3), replace(`"to":"bob"`, `"to":"mallory"`))
	wantError(t, l.Verify(ctx), ErrCorrupt, "journal version 3", "hash mismatch")
}

// TestConcurrentUse runs transfers, holds and reads from many goroutines; the
// race detector checks the locking, and the totals and Verify check that
// serialised mutations lost nothing.
func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, pebbleStore(t, t.TempDir()))
	accounts := []string{"a", "b", "c", "d"}
	mustTx(t)(l.CreateAsset(ctx, ledger.CreateAsset{IdempotencyKey: "create", Asset: "usd", Decimals: 2}))
	for _, a := range accounts {
		mustTx(t)(l.Issue(ctx, ledger.Issue{IdempotencyKey: "issue-" + a, Asset: "usd", To: a, Quantity: "10000"}))
	}
	const workers, ops = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range ops {
				from, to := accounts[rng.IntN(len(accounts))], accounts[rng.IntN(len(accounts))]
				if from == to {
					if _, err := l.Balance(ctx, "usd", from); err != nil {
						errs <- err
						return
					}
					continue
				}
				key := fmt.Sprintf("w%d-%d", w, i)
				q := fmt.Sprintf("%d.%02d", rng.IntN(5), 1+rng.IntN(99))
				var err error
				if i%3 == 0 {
					var h ledger.Transaction
					h, err = l.Hold(ctx, ledger.Hold{IdempotencyKey: key, Asset: "usd", From: from, Quantity: q})
					if err == nil {
						_, err = l.Release(ctx, ledger.Release{IdempotencyKey: key + "-r", HoldID: h.ID, To: to})
					}
				} else {
					_, err = l.Transfer(ctx, ledger.Transfer{IdempotencyKey: key, Asset: "usd", From: from, To: to, Quantity: q})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := ledger.Amount{}
	for _, a := range accounts {
		b := mustBalance(t, l, "usd", a)
		cur, err := ledger.ParseAmount(b.Current, 2)
		if err != nil {
			t.Fatal(err)
		}
		total = total.Add(cur)
		if b.Held != "0" {
			t.Errorf("%s holds %s after every hold was released", a, b.Held)
		}
	}
	if total.String(2) != "40000" {
		t.Errorf("total of balances %s, want 40000", total.String(2))
	}
	if err := l.Verify(ctx); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func mustBalance(t testing.TB, l *Ledger, asset, account string) ledger.Balance {
	t.Helper()
	b, err := l.Balance(context.Background(), asset, account)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
