package node_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/finp2p/go-finp2p/internal/testnet"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/resource"
)

// BenchmarkBroadcastQuorum measures a balance broadcast with quorum 3 to
// the 5 nodes of one ledger (its primary, three member followers and the
// governance node) on networks of 10, 50 and 100 members, from a member
// not on the ledger. It reports the p50 and p99 time to the result.
//
//	go test -run x -bench BroadcastQuorum -benchtime 200x ./node/
func BenchmarkBroadcastQuorum(b *testing.B) {
	for _, members := range []int{10, 50, 100} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			ln := newLedgerNetworkB(b, members)
			primary, origin := ln.members[0], ln.members[members-1]
			ctx := context.Background()
			bond := resource.MustParseID("member-1:102:bench")
			account := "alice@" + origin.Self().OrgID
			if _, err := primary.CreateAsset(ctx, bond, 0, "create"); err != nil {
				b.Fatal(err)
			}
			if _, err := primary.Issue(ctx, bond, account, "100", "issue"); err != nil {
				b.Fatal(err)
			}
			testnet.Eventually(b, 2*time.Minute, "the origin knows the ledger's 5 nodes and they answer", func() bool {
				res, err := origin.BalanceOf(ctx, bond, account, node.BroadcastOptions{Quorum: 5, Timeout: 5 * time.Second})
				return err == nil && res.Broadcast.OK && res.LedgerVersion == 2
			})
			var took []time.Duration
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				res, err := origin.BalanceOf(ctx, bond, account, node.BroadcastOptions{Quorum: 3, Timeout: 5 * time.Second})
				if err != nil || !res.Broadcast.OK {
					b.Fatalf("broadcast: %v %+v", err, res)
				}
				took = append(took, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
