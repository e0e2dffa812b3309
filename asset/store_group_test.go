package asset_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	dssync "github.com/ipfs/go-datastore/sync"
	pebbleds "github.com/ipfs/go-ds-pebble"

	"github.com/finp2p/go-finp2p/asset"
)

// syncCounter counts a datastore's Syncs and fails them on demand.
type syncCounter struct {
	datastore.Batching
	syncs atomic.Int64
	fail  atomic.Bool
}

var errSyncFailed = errors.New("sync failed")

func (s *syncCounter) Sync(ctx context.Context, prefix datastore.Key) error {
	s.syncs.Add(1)
	if s.fail.Load() {
		return errSyncFailed
	}
	return s.Batching.Sync(ctx, prefix)
}

// receiptsFor seals n receipts of bank-x with distinct transaction ids and
// request hashes.
func receiptsFor(t testing.TB, f *fixture, prefix string, n int) [][]byte {
	t.Helper()
	out := make([][]byte, n)
	for i := range out {
		var h [32]byte
		_, _ = rand.Read(h[:])
		out[i] = f.sealReceipt(t, f.bankX, func(r *asset.Receipt) {
			r.Transaction.ID = fmt.Sprintf("%s-%d", prefix, i)
			r.RequestHash = hex.EncodeToString(h[:])
		})
	}
	return out
}

// TestReceiptStoreConcurrentPuts puts receipts from many goroutines at once
// on pebble, each receipt twice: every Put succeeds, each receipt is
// stored once and found by its id and request, and Puts share syncs.
func TestReceiptStoreConcurrentPuts(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pds, err := pebbleds.NewDatastore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pds.Close() })
	ds := &syncCounter{Batching: pds}
	store := asset.NewReceiptStore(namespace.Wrap(ds, datastore.NewKey("/r")), f.rcptV)
	const n = 200
	sealed := receiptsFor(t, f, "tx", n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < 2*n; i = next.Add(1) - 1 {
				if _, err := store.Put(ctx, sealed[i%n]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	list, err := store.List(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != n {
		t.Fatalf("%d receipts listed, want %d", len(list), n)
	}
	for i := range n {
		vr, err := store.Get(ctx, fmt.Sprintf("tx-%d", i))
		if err != nil || string(vr.Sealed) != string(sealed[i]) {
			t.Fatalf("receipt %d: %v", i, err)
		}
		if _, err := store.ByRequest(ctx, vr.Receipt.RequestHash); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d Puts, %d syncs", 2*n, ds.syncs.Load())
}

// TestReceiptStoreSyncFails checks that a Put whose sync fails fails, and
// that putting the receipt again syncs it.
func TestReceiptStoreSyncFails(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ds := &syncCounter{Batching: dssync.MutexWrap(datastore.NewMapDatastore())}
	store := asset.NewReceiptStore(ds, f.rcptV)
	sealed := receiptsFor(t, f, "tx", 4)
	ds.fail.Store(true)
	var wg sync.WaitGroup
	for _, s := range sealed {
		wg.Go(func() {
			if _, err := store.Put(ctx, s); !errors.Is(err, errSyncFailed) {
				t.Errorf("Put with a failing sync: %v", err)
			}
		})
	}
	wg.Wait()
	// A read, too, refuses to return a receipt it cannot make durable.
	if _, err := store.Get(ctx, "tx-0"); !errors.Is(err, errSyncFailed) {
		t.Errorf("Get with a failing sync: %v", err)
	}
	ds.fail.Store(false)
	for _, s := range sealed {
		if _, err := store.Put(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if list, err := store.List(ctx, 0); err != nil || len(list) != len(sealed) {
		t.Fatalf("listed %d, %v", len(list), err)
	}
}
