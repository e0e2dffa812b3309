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

// BenchmarkTransferRoundTrip measures one asset transfer between two nodes
// on loopback: signed request, the owner's checks, the embedded ledger
// (pebble would add its sync; here the datastore is in memory), the signed
// receipt, its verification and durable store at the requester. It reports
// transfers/s and the p50 and p99 latency.
func BenchmarkTransferRoundTrip(b *testing.B) {
	net := testnet.New(b, testnet.Options{Members: 2, Join: true})
	a, owner := net.Nodes()[2], net.Nodes()[3]
	testnet.Eventually(b, 10*time.Second, "member-1 resolves member-2", func() bool {
		return resolves(a, "member-2", owner.ID(), "")
	})
	ctx := context.Background()
	bond := resource.MustParseID("member-2:102:bench-bond")
	if _, err := owner.CreateAsset(ctx, bond, 0, "create"); err != nil {
		b.Fatal(err)
	}
	if _, err := owner.Issue(ctx, bond, "alice@member-1", "1000000000", "issue"); err != nil {
		b.Fatal(err)
	}
	if err := owner.SetACL(ctx, resource.ACL{Resource: bond, Grants: map[string]resource.Right{"member-1": resource.RightTransact}}); err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	i := 0
	start := time.Now()
	for b.Loop() {
		i++
		t0 := time.Now()
		if _, err := a.Transfer(ctx, node.AssetRequest{Asset: bond, From: "alice@member-1", To: "bob@member-1", Quantity: "1", IdempotencyKey: fmt.Sprint("t-", i)}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "transfers/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
