package embedded

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-datastore"

	"github.com/finp2p/go-finp2p/ledger"
)

// BenchmarkTransfer measures one transfer on a pebble datastore: a batch of
// six records, with the default sync before returning and without it.
func BenchmarkTransfer(b *testing.B) {
	for _, sync := range []bool{true, false} {
		b.Run("sync="+strconv.FormatBool(sync), func(b *testing.B) {
			ctx := context.Background()
			l, err := Open(ctx, pebbleStore(b, b.TempDir()), testLedgerID, WithSync(sync))
			if err != nil {
				b.Fatal(err)
			}
			mustTx(b)(l.CreateAsset(ctx, ledger.CreateAsset{IdempotencyKey: "create", Asset: "usd", Decimals: 2}))
			mustTx(b)(l.Issue(ctx, ledger.Issue{IdempotencyKey: "issue-a", Asset: "usd", To: "alice", Quantity: "1000000000"}))
			mustTx(b)(l.Issue(ctx, ledger.Issue{IdempotencyKey: "issue-b", Asset: "usd", To: "bob", Quantity: "1000000000"}))
			accounts := [2]string{"alice", "bob"}
			i := 0
			for b.Loop() {
				_, err := l.Transfer(ctx, ledger.Transfer{
					IdempotencyKey: "pay-" + strconv.Itoa(i),
					Asset:          "usd",
					From:           accounts[i%2],
					To:             accounts[(i+1)%2],
					Quantity:       "1.25",
				})
				if err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkApply measures applying a primary's transfers to a replica, in
// entries per second: on an in-memory datastore without sync, and on a
// pebble datastore with the default sync after each entry. The primary's
// journal is written before the timer starts.
func BenchmarkApply(b *testing.B) {
	stores := []struct {
		name  string
		store func(b *testing.B) datastore.Batching
		sync  bool
	}{
		{"mem/sync=false", func(*testing.B) datastore.Batching { return memStore() }, false},
		{"pebble/sync=true", func(b *testing.B) datastore.Batching { return pebbleStore(b, b.TempDir()) }, true},
	}
	for _, s := range stores {
		b.Run(s.name, func(b *testing.B) {
			ctx := context.Background()
			primary, err := Open(ctx, memStore(), testLedgerID, WithSync(false))
			if err != nil {
				b.Fatal(err)
			}
			mustTx(b)(primary.CreateAsset(ctx, ledger.CreateAsset{IdempotencyKey: "create", Asset: "usd", Decimals: 2}))
			mustTx(b)(primary.Issue(ctx, ledger.Issue{IdempotencyKey: "issue-a", Asset: "usd", To: "alice", Quantity: "1000000000"}))
			mustTx(b)(primary.Issue(ctx, ledger.Issue{IdempotencyKey: "issue-b", Asset: "usd", To: "bob", Quantity: "1000000000"}))
			accounts := [2]string{"alice", "bob"}
			for i := range b.N {
				mustTx(b)(primary.Transfer(ctx, ledger.Transfer{
					IdempotencyKey: "pay-" + strconv.Itoa(i),
					Asset:          "usd",
					From:           accounts[i%2],
					To:             accounts[(i+1)%2],
					Quantity:       "1.25",
				}))
			}
			journal := mustJournal(b)(primary.Journal(ctx, 1, b.N+3))
			follower, err := Open(ctx, s.store(b), testLedgerID, WithReadOnly(), WithSync(s.sync))
			if err != nil {
				b.Fatal(err)
			}
			for _, tx := range journal[:3] {
				if err := follower.Apply(ctx, tx); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for _, tx := range journal[3:] {
				if err := follower.Apply(ctx, tx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkTransferParallel measures transfers from many goroutines at once
// on a pebble datastore with the default sync, as an owner node serving
// many requests in flight does: each goroutine moves units between its own
// two accounts, so no transfer fails for want of balance.
func BenchmarkTransferParallel(b *testing.B) {
	for _, workers := range []int{1, 16, 64} {
		b.Run("workers="+strconv.Itoa(workers), func(b *testing.B) {
			ctx := context.Background()
			l, err := Open(ctx, pebbleStore(b, b.TempDir()), testLedgerID)
			if err != nil {
				b.Fatal(err)
			}
			mustTx(b)(l.CreateAsset(ctx, ledger.CreateAsset{IdempotencyKey: "create", Asset: "usd", Decimals: 2}))
			for w := range workers {
				for _, side := range []string{"a", "b"} {
					acct := "w" + strconv.Itoa(w) + side
					mustTx(b)(l.Issue(ctx, ledger.Issue{IdempotencyKey: "issue-" + acct, Asset: "usd", To: acct, Quantity: "1000000000"}))
				}
			}
			var next atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					a, c := "w"+strconv.Itoa(w)+"a", "w"+strconv.Itoa(w)+"b"
					for i := 0; next.Add(1) <= int64(b.N); i++ {
						from, to := a, c
						if i%2 == 1 {
							from, to = c, a
						}
						_, err := l.Transfer(ctx, ledger.Transfer{
							IdempotencyKey: "pay-" + strconv.Itoa(w) + "-" + strconv.Itoa(i),
							Asset:          "usd",
							From:           from,
							To:             to,
							Quantity:       "1.25",
						})
						if err != nil {
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
