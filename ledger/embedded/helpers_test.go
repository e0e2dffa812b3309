package embedded

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	pebbleds "github.com/ipfs/go-ds-pebble"

	"github.com/finp2p/go-finp2p/ledger"
)

const testLedgerID = "org-b:ledger"

// testClock returns a clock that advances one second per reading.
func testClock() func() time.Time {
	var mu sync.Mutex
	now := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Second)
		return now
	}
}

// memStore is an in-memory datastore safe for concurrent use.
func memStore() datastore.Batching {
	return dssync.MutexWrap(datastore.NewMapDatastore())
}

// openTest opens a ledger over ds with a test clock.
func openTest(t testing.TB, ds datastore.Batching) *Ledger {
	t.Helper()
	l, err := Open(context.Background(), ds, testLedgerID, WithClock(testClock()))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

// pebbleStore opens a pebble datastore in dir, closed at the end of the test.
func pebbleStore(t testing.TB, dir string) *pebbleds.Datastore {
	t.Helper()
	ds, err := pebbleds.NewDatastore(dir)
	if err != nil {
		t.Fatalf("pebble datastore: %v", err)
	}
	t.Cleanup(func() { _ = ds.Close() })
	return ds
}

// keys hands out unique idempotency keys.
type keys struct {
	mu sync.Mutex
	n  int
}

func (k *keys) next() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.n++
	return fmt.Sprintf("key-%d", k.n)
}

// must returns a function that returns v, or fails the test when err is
// not nil; used as must[T](t)(call()).
func must[T any](t testing.TB) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func mustTx(t testing.TB) func(ledger.Transaction, error) ledger.Transaction {
	return must[ledger.Transaction](t)
}
func mustVersion(t testing.TB) func(uint64, error) uint64 { return must[uint64](t) }
func mustString(t testing.TB) func(string, error) string  { return must[string](t) }
func mustStatus(t testing.TB) func(ledger.OperationStatus, error) ledger.OperationStatus {
	return must[ledger.OperationStatus](t)
}
func mustJournal(t testing.TB) func([]ledger.Transaction, error) []ledger.Transaction {
	return must[[]ledger.Transaction](t)
}

// wantBalance checks an account's balance of an asset.
func wantBalance(t testing.TB, l *Ledger, asset, account, current, available, held string) {
	t.Helper()
	b, err := l.Balance(context.Background(), asset, account)
	if err != nil {
		t.Fatalf("Balance(%s, %s): %v", asset, account, err)
	}
	want := ledger.Balance{Asset: asset, Account: account, Current: current, Available: available, Held: held}
	if b != want {
		t.Errorf("Balance(%s, %s) = %+v, want %+v", asset, account, b, want)
	}
}

// wantSupply checks an asset's supply.
func wantSupply(t testing.TB, l *Ledger, asset, supply string) {
	t.Helper()
	got, err := l.Supply(context.Background(), asset)
	if err != nil {
		t.Fatalf("Supply(%s): %v", asset, err)
	}
	if got != supply {
		t.Errorf("Supply(%s) = %s, want %s", asset, got, supply)
	}
}

// wantError checks that err wraps target and mentions every problem.
func wantError(t testing.TB, err, target error, problems ...string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
	for _, p := range problems {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not name %q", err, p)
		}
	}
}
