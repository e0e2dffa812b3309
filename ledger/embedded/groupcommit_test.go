package embedded

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-datastore"

	"github.com/finp2p/go-finp2p/ledger"
)

// TestGroupCommitChain runs many operations at once on a synced pebble
// ledger, some of them the same request with one idempotency key from
// every goroutine, and checks that the journal is a gap-free hash chain
// holding exactly the transactions the calls returned, one per key.
func TestGroupCommitChain(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, pebbleStore(t, t.TempDir()))
	mustTx(t)(l.CreateAsset(ctx, ledger.CreateAsset{IdempotencyKey: "create", Asset: "usd", Decimals: 2}))
	const workers, ops, shared = 32, 20, 5
	for w := range workers {
		for _, side := range []string{"a", "b"} {
			acct := fmt.Sprintf("w%d%s", w, side)
			mustTx(t)(l.Issue(ctx, ledger.Issue{IdempotencyKey: "issue-" + acct, Asset: "usd", To: acct, Quantity: "1000"}))
		}
	}
	mustTx(t)(l.Issue(ctx, ledger.Issue{IdempotencyKey: "issue-pool", Asset: "usd", To: "pool", Quantity: "1000"}))
	setup := mustVersion(t)(l.Version(ctx))

	var mu sync.Mutex
	returned := map[string]ledger.Transaction{} // by idempotency key
	record := func(tx ledger.Transaction) error {
		mu.Lock()
		defer mu.Unlock()
		if old, ok := returned[tx.IdempotencyKey]; ok && old != tx {
			return fmt.Errorf("key %q returned transaction %s at version %d and %s at version %d",
				tx.IdempotencyKey, old.ID, old.Version, tx.ID, tx.Version)
		}
		returned[tx.IdempotencyKey] = tx
		return nil
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			a, b := fmt.Sprintf("w%da", w), fmt.Sprintf("w%db", w)
			for i := range ops {
				var tx ledger.Transaction
				var err error
				switch {
				case i < shared:
					// Every worker sends this very request.
					tx, err = l.Transfer(ctx, ledger.Transfer{IdempotencyKey: fmt.Sprintf("shared-%d", i), Asset: "usd", From: "pool", To: "w0a", Quantity: "1"})
				case i%4 == 0:
					var h ledger.Transaction
					if h, err = l.Hold(ctx, ledger.Hold{IdempotencyKey: fmt.Sprintf("hold-%d-%d", w, i), Asset: "usd", From: a, Quantity: "0.5"}); err == nil {
						if err = record(h); err == nil {
							tx, err = l.Release(ctx, ledger.Release{IdempotencyKey: fmt.Sprintf("release-%d-%d", w, i), HoldID: h.ID, To: b})
						}
					}
				default:
					tx, err = l.Transfer(ctx, ledger.Transfer{IdempotencyKey: fmt.Sprintf("pay-%d-%d", w, i), Asset: "usd", From: a, To: b, Quantity: "0.25"})
				}
				if err == nil {
					err = record(tx)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	head := mustVersion(t)(l.Version(ctx))
	if want := setup + uint64(len(returned)); head != want {
		t.Fatalf("head version %d, want %d: %d setup transactions and %d idempotency keys", head, want, setup, len(returned))
	}
	journal := mustJournal(t)(l.Journal(ctx, 1, int(head)+10))
	if uint64(len(journal)) != head {
		t.Fatalf("journal holds %d entries, head is version %d", len(journal), head)
	}
	prev := genesisHash
	for i, tx := range journal {
		if tx.Version != uint64(i+1) {
			t.Fatalf("journal entry %d has version %d", i+1, tx.Version)
		}
		if tx.PrevHash != prev {
			t.Fatalf("version %d links to %s, not to version %d's hash %s", tx.Version, tx.PrevHash, i, prev)
		}
		if h, err := TransactionHash(tx); err != nil || h != tx.Hash {
			t.Fatalf("version %d: hash %s, its fields hash to %s (%v)", tx.Version, tx.Hash, h, err)
		}
		prev = tx.Hash
	}
	for key, tx := range returned {
		if d := transactionDifferences(journal[tx.Version-1], tx); len(d) > 0 {
			t.Errorf("key %q returned version %d, which the journal has with %s", key, tx.Version, strings.Join(d, ", "))
		}
	}
	if err := l.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	started, failed := l.durable.Syncs()
	t.Logf("%d commits, %d syncs (%d failed)", head, started, failed)
}

// faultyStore is a datastore whose batch commits or syncs fail on demand.
type faultyStore struct {
	datastore.Batching
	failCommit, failSync atomic.Bool
	// syncing, when set, is told of each Sync, which then waits for proceed.
	syncing chan struct{}
	proceed chan struct{}
}

var errDisk = errors.New("disk failure")

func (s *faultyStore) Batch(ctx context.Context) (datastore.Batch, error) {
	b, err := s.Batching.Batch(ctx)
	if err != nil {
		return nil, err
	}
	return faultyBatch{Batch: b, s: s}, nil
}

func (s *faultyStore) Sync(ctx context.Context, prefix datastore.Key) error {
	if s.syncing != nil {
		s.syncing <- struct{}{}
		<-s.proceed
	}
	if s.failSync.Load() {
		return errDisk
	}
	return s.Batching.Sync(ctx, prefix)
}

type faultyBatch struct {
	datastore.Batch
	s *faultyStore
}

func (b faultyBatch) Commit(ctx context.Context) error {
	if b.s.failCommit.Load() {
		return errDisk // and writes nothing
	}
	return b.Batch.Commit(ctx)
}

// TestGroupCommitFailures checks that a batch that fails to commit fails
// its operation and leaves no trace, and that a failed sync fails every
// operation that waited for it, whose retries then return the committed
// transactions.
func TestGroupCommitFailures(t *testing.T) {
	ctx := context.Background()
	ds := &faultyStore{Batching: memStore()}
	l := openTest(t, ds)
	mustTx(t)(l.CreateAsset(ctx, ledger.CreateAsset{IdempotencyKey: "create", Asset: "usd", Decimals: 2}))
	mustTx(t)(l.Issue(ctx, ledger.Issue{IdempotencyKey: "issue", Asset: "usd", To: "alice", Quantity: "100"}))
	pay := func(key string) ledger.Transfer {
		return ledger.Transfer{IdempotencyKey: key, Asset: "usd", From: "alice", To: "bob", Quantity: "1"}
	}

	t.Run("commit", func(t *testing.T) {
		before := dump(t, ds)
		ds.failCommit.Store(true)
		_, err := l.Transfer(ctx, pay("fails"))
		ds.failCommit.Store(false)
		wantError(t, err, errDisk, "commit version 3")
		if after := dump(t, ds); !maps.Equal(after, before) {
			t.Fatalf("a failed commit changed the store: %d records, were %d", len(after), len(before))
		}
		tx := mustTx(t)(l.Transfer(ctx, pay("after")))
		if tx.Version != 3 {
			t.Fatalf("next transaction has version %d, want 3", tx.Version)
		}
		wantBalance(t, l, "usd", "alice", "99", "99", "0")
	})

	t.Run("sync", func(t *testing.T) {
		ds.syncing, ds.proceed = make(chan struct{}), make(chan struct{})
		defer func() { ds.syncing, ds.proceed = nil, nil }()
		// One transfer's sync runs; four more commit meanwhile and share
		// the next sync, which fails.
		first := make(chan error)
		go func() {
			_, err := l.Transfer(ctx, pay("first"))
			first <- err
		}()
		<-ds.syncing
		const group = 4
		results := make(chan error, group)
		for i := range group {
			go func() {
				_, err := l.Transfer(ctx, pay(fmt.Sprintf("group-%d", i)))
				results <- err
			}()
		}
		// The group has committed once the head reaches it; the ledger is
		// free while the first sync runs.
		for {
			l.mu.RLock()
			v := l.head.Version
			l.mu.RUnlock()
			if v == 4+group {
				break
			}
			runtime.Gosched()
		}
		ds.proceed <- struct{}{}
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		ds.failSync.Store(true)
		<-ds.syncing
		ds.proceed <- struct{}{}
		for range group {
			wantError(t, <-results, errDisk, "sync after committing version")
		}
		if v := mustVersion(t)(l.Version(ctx)); v != 4 {
			t.Errorf("Version = %d with versions 5..8 unsynced, want 4", v)
		}
		ds.failSync.Store(false)
		ds.syncing, ds.proceed = nil, nil
		// Retries get the committed transactions, now synced.
		seen := map[uint64]bool{}
		for i := range group {
			tx := mustTx(t)(l.Transfer(ctx, pay(fmt.Sprintf("group-%d", i))))
			if tx.Version < 5 || tx.Version > 8 || seen[tx.Version] {
				t.Errorf("retry of group-%d returned version %d", i, tx.Version)
			}
			seen[tx.Version] = true
		}
		if v := mustVersion(t)(l.Version(ctx)); v != 8 {
			t.Errorf("Version = %d, want 8", v)
		}
		wantBalance(t, l, "usd", "alice", "94", "94", "0")
		if err := l.Verify(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
