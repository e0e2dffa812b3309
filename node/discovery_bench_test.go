package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/testnet"
)

// BenchmarkResolveCached measures Resolve when the org's advertisement is
// in the node's cache, which is the path every request to a known org takes.
func BenchmarkResolveCached(b *testing.B) {
	net := testnet.New(b, testnet.Options{Members: 2, Join: true})
	m1, m2 := net.Nodes()[2], net.Nodes()[3]
	testnet.Eventually(b, 10*time.Second, "member-2 resolves member-1", func() bool {
		return resolves(m2, "member-1", m1.ID(), "")
	})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := m2.Resolve(ctx, "member-1"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJoin measures how long a new member takes from Start until a
// member that joined before it resolves its org, on a network of a
// founding node, a governance node and two members.
func BenchmarkJoin(b *testing.B) {
	net := testnet.New(b, testnet.Options{Members: 2, Join: true})
	observer := net.Nodes()[2]
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		org := fmt.Sprintf("joiner-%d", i)
		repo := net.Repo(org, governance.RoleMember, net.Governance)
		b.StartTimer()
		nd := net.StartNode(repo)
		testnet.Eventually(b, 10*time.Second, "the new member resolved", func() bool {
			return resolves(observer, org, nd.ID(), "")
		})
	}
}
