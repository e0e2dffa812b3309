package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/finp2p/go-finp2p/internal/testnet"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/resource"
)

// resourceNet is a joined network of two members where member-2 owns an
// asset member-1 may read and subscribe to.
func resourceNet(b *testing.B) (a, owner *node.Node, asset resource.ID) {
	net := testnet.New(b, testnet.Options{Members: 2, Join: true})
	a, owner = net.Nodes()[2], net.Nodes()[3]
	testnet.Eventually(b, 10*time.Second, "member-1 resolves member-2", func() bool {
		return resolves(a, "member-2", owner.ID(), "")
	})
	asset = resource.MustParseID("member-2:102:bench")
	ctx := context.Background()
	if err := owner.SetACL(ctx, resource.ACL{Resource: asset, Grants: map[string]resource.Right{"member-1": resource.RightRead | resource.RightSubscribe}}); err != nil {
		b.Fatal(err)
	}
	if err := owner.SetResourceState(ctx, asset, make([]byte, 1024)); err != nil {
		b.Fatal(err)
	}
	return a, owner, asset
}

// BenchmarkGetResource measures one resource/get round trip on loopback:
// stream, ACL check, datastore read of 1 KiB.
func BenchmarkGetResource(b *testing.B) {
	a, _, asset := resourceNet(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.GetResource(ctx, asset); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublishToSubscriber measures an update from the owner's Publish
// (store, then gossip) until the subscriber's channel delivers it.
func BenchmarkPublishToSubscriber(b *testing.B) {
	a, owner, asset := resourceNet(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub, err := a.Subscribe(ctx, asset)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := owner.Publish(ctx, asset, []byte("warm-up")); err != nil {
		b.Fatal(err)
	}
	<-sub
	topic := protocols.TopicResourcePrefix + asset.String()
	testnet.Eventually(b, 10*time.Second, "owner sees the subscriber", func() bool { return len(owner.PubSub().Router().ListPeers(topic)) > 0 })
	data := make([]byte, 256)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := owner.Publish(ctx, asset, data); err != nil {
			b.Fatal(err)
		}
		select {
		case <-sub:
		case <-time.After(10 * time.Second):
			b.Fatal(fmt.Errorf("update not delivered within 10s"))
		}
	}
}
