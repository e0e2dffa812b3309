package embedded

import (
	"context"
	"strconv"
	"testing"

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
