package asset_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	pebbleds "github.com/ipfs/go-ds-pebble"

	"github.com/finp2p/go-finp2p/asset"
)

// BenchmarkReceiptStorePut measures storing receipts durably on a pebble
// datastore from many goroutines at once, as a requester with many
// transfers in flight does. The receipts are sealed before the timer
// starts.
func BenchmarkReceiptStorePut(b *testing.B) {
	f := newFixture(b)
	for _, workers := range []int{1, 16, 64} {
		b.Run("workers="+strconv.Itoa(workers), func(b *testing.B) {
			ds, err := pebbleds.NewDatastore(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = ds.Close() })
			store := asset.NewReceiptStore(namespace.Wrap(ds, datastore.NewKey("/r")), f.rcptV)
			sealed := make([][]byte, b.N)
			for i := range sealed {
				var h [32]byte
				_, _ = rand.Read(h[:])
				sealed[i] = f.sealReceipt(b, f.bankX, func(r *asset.Receipt) {
					r.Transaction.ID = "tx-" + strconv.Itoa(i)
					r.RequestHash = hex.EncodeToString(h[:])
				})
			}
			ctx := context.Background()
			var next atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
						if _, err := store.Put(ctx, sealed[i]); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}
