package node_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/finp2p/go-finp2p/internal/testnet"
	"github.com/finp2p/go-finp2p/node"
	"google.golang.org/protobuf/proto"

	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/protocols/pb"
	"github.com/finp2p/go-finp2p/resource"
)

// collect reads n updates from ch, or fails at the deadline.
func collect(t *testing.T, who string, ch <-chan node.Update, n int) []node.Update {
	t.Helper()
	var got []node.Update
	deadline := time.After(20 * time.Second)
	for len(got) < n {
		select {
		case u, ok := <-ch:
			if !ok {
				t.Fatalf("%s: subscription closed after %d updates", who, len(got))
			}
			got = append(got, u)
		case <-deadline:
			t.Fatalf("%s: %d of %d updates within 20s", who, len(got), n)
		}
	}
	return got
}

func inOrder(t *testing.T, who string, got []node.Update, first uint64, prefix string) {
	t.Helper()
	for i, u := range got {
		want := first + uint64(i)
		if u.Seq != want || string(u.Data) != fmt.Sprintf("%s-%d", prefix, want) {
			t.Fatalf("%s: update %d is seq %d %q, want seq %d", who, i, u.Seq, u.Data, want)
		}
	}
}

func TestResourceTopicsDeliverEveryUpdateInOrder(t *testing.T) {
	net := testnet.New(t, testnet.Options{Members: 4, Join: true})
	a, b, c, d := net.Nodes()[2], net.Nodes()[3], net.Nodes()[4], net.Nodes()[5]
	for _, nd := range []*node.Node{a, c, d} {
		testnet.Eventually(t, 10*time.Second, nd.Self().OrgID+" resolves member-2", func() bool {
			return resolves(nd, "member-2", b.ID(), "")
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	asset := resource.MustParseID("member-2:102:fund-1")
	testnet.Eventually(t, 10*time.Second, "member-2's DHT has peers", func() bool { return b.DHT().RoutingTable().Size() > 0 })
	if _, err := b.Advertise(ctx, asset, node.AdvertiseOptions{Topic: "fund-1"}); err != nil {
		t.Fatal(err)
	}

	// member-1 loses updates 5 to 8 on the way; it gets them from the owner.
	var dropped sync.Map
	a.DropIncomingUpdates(func(u node.Update) bool {
		if u.Seq >= 5 && u.Seq <= 8 {
			_, again := dropped.LoadOrStore(u.Seq, true)
			return !again
		}
		return false
	})
	subA, err := a.Subscribe(ctx, asset)
	if err != nil {
		t.Fatal(err)
	}
	subC, err := c.Subscribe(ctx, asset)
	if err != nil {
		t.Fatal(err)
	}
	topic := protocols.TopicResourcePrefix + asset.String()
	testnet.Eventually(t, 10*time.Second, "member-2 sees both subscribers on the topic", func() bool {
		return len(b.PubSub().Router().ListPeers(topic)) >= 2
	})
	if _, err := c.Publish(ctx, asset, []byte("forged")); !errors.Is(err, resource.ErrNotOwner) {
		t.Fatalf("member-3 publishing on member-2's topic: %v", err)
	}
	// member-4 speaks gossipsub directly, without the node's checks: its
	// update is rejected by the others' validators and never delivered.
	if _, err := d.Connect(ctx, testnet.AddrInfo(a)); err != nil {
		t.Fatal(err)
	}
	raw, err := d.PubSub().Router().Join(topic)
	if err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, 10*time.Second, "member-4 sees member-1 on the topic", func() bool {
		return slices.Contains(raw.ListPeers(), a.ID())
	})
	forged, err := proto.Marshal(&pb.ResourceUpdate{Resource: asset.String(), Seq: 11, Data: []byte("forged")})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 20; i++ {
		if _, err := b.Publish(ctx, asset, fmt.Appendf(nil, "fund-%d", i)); err != nil {
			t.Fatal(err)
		}
		if i == 10 {
			if err := raw.Publish(ctx, forged); err != nil {
				t.Fatal(err)
			}
		}
	}
	inOrder(t, "member-1", collect(t, "member-1", subA, 20), 1, "fund")
	inOrder(t, "member-3", collect(t, "member-3", subC, 20), 1, "fund")
	// Nothing was delivered twice: the next update is the next one read.
	if _, err := b.Publish(ctx, asset, []byte("fund-21")); err != nil {
		t.Fatal(err)
	}
	inOrder(t, "member-1", collect(t, "member-1", subA, 1), 21, "fund")
	inOrder(t, "member-3", collect(t, "member-3", subC, 1), 21, "fund")
	// member-1 received member-4's forged update directly and lowered its
	// score.
	testnet.Eventually(t, 10*time.Second, "member-4's score at member-1 below zero", func() bool {
		return a.PubSub().Score(d.ID()) < 0
	})
	t.Logf("member-4's score at member-1 after one forged update: %.1f", a.PubSub().Score(d.ID()))
	n := 0
	dropped.Range(func(any, any) bool { n++; return true })
	if n != 4 {
		t.Fatalf("the test hook dropped %d updates, want 4", n)
	}
}

func TestRestrictedTopicIsEncryptedAndRekeyed(t *testing.T) {
	net := testnet.New(t, testnet.Options{Members: 3, Join: true})
	a, b, c := net.Nodes()[2], net.Nodes()[3], net.Nodes()[4]
	for _, nd := range []*node.Node{a, c} {
		testnet.Eventually(t, 10*time.Second, nd.Self().OrgID+" resolves member-2", func() bool {
			return resolves(nd, "member-2", b.ID(), "")
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	asset := resource.MustParseID("member-2:102:private-1")
	if _, err := b.Advertise(ctx, asset, node.AdvertiseOptions{To: []string{"member-1", "member-3"}}); err != nil {
		t.Fatal(err)
	}
	both := map[string]resource.Right{"member-1": resource.RightRead | resource.RightSubscribe, "member-3": resource.RightRead | resource.RightSubscribe}
	if err := b.SetACL(ctx, resource.ACL{Resource: asset, Grants: both}); err != nil {
		t.Fatal(err)
	}
	subA, err := a.Subscribe(ctx, asset)
	if err != nil {
		t.Fatal(err)
	}
	subC, err := c.Subscribe(ctx, asset)
	if err != nil {
		t.Fatal(err)
	}
	topic := protocols.TopicResourcePrefix + asset.String()
	testnet.Eventually(t, 10*time.Second, "member-2 sees both subscribers", func() bool {
		return len(b.PubSub().Router().ListPeers(topic)) >= 2
	})
	for i := 1; i <= 5; i++ {
		if _, err := b.Publish(ctx, asset, fmt.Appendf(nil, "secret-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	inOrder(t, "member-1", collect(t, "member-1", subA, 5), 1, "secret")
	inOrder(t, "member-3", collect(t, "member-3", subC, 5), 1, "secret")

	// member-3 loses access: the key rotates, member-1 still reads the new
	// updates, member-3 receives them but cannot read them.
	if err := b.SetACL(ctx, resource.ACL{Resource: asset, Grants: map[string]resource.Right{"member-1": resource.RightRead | resource.RightSubscribe}}); err != nil {
		t.Fatal(err)
	}
	unreadable := c.UnreadableUpdates()
	for i := 6; i <= 10; i++ {
		if _, err := b.Publish(ctx, asset, fmt.Appendf(nil, "secret-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	inOrder(t, "member-1", collect(t, "member-1", subA, 5), 6, "secret")
	testnet.Eventually(t, 10*time.Second, "member-3 fails to read the 5 new updates", func() bool {
		return c.UnreadableUpdates()-unreadable == 5
	})
	select {
	case u := <-subC:
		t.Fatalf("member-3 read update %d after losing access", u.Seq)
	default:
	}
	if _, err := c.Subscribe(ctx, asset); !errors.Is(err, resource.ErrAccessDenied) {
		t.Fatalf("member-3 subscribing again: %v", err)
	}
}

func TestPrivateACLEncryptsAndOwnerSeesOwnUpdates(t *testing.T) {
	net := testnet.New(t, testnet.Options{Members: 3, Join: true})
	a, b, c := net.Nodes()[2], net.Nodes()[3], net.Nodes()[4]
	for _, nd := range []*node.Node{a, c} {
		testnet.Eventually(t, 10*time.Second, nd.Self().OrgID+" resolves member-2", func() bool {
			return resolves(nd, "member-2", b.ID(), "")
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Advertised publicly, but its ACL is not public: updates are
	// encrypted all the same, and an org the ACL does not name cannot read
	// them even though nothing stops it from subscribing to the topic.
	asset := resource.MustParseID("member-2:102:listed-1")
	testnet.Eventually(t, 10*time.Second, "member-2's DHT has peers", func() bool { return b.DHT().RoutingTable().Size() > 0 })
	if _, err := b.Advertise(ctx, asset, node.AdvertiseOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetACL(ctx, resource.ACL{Resource: asset, Grants: map[string]resource.Right{"member-1": resource.RightSubscribe}}); err != nil {
		t.Fatal(err)
	}
	subA, err := a.Subscribe(ctx, asset)
	if err != nil {
		t.Fatal(err)
	}
	subC, err := c.Subscribe(ctx, asset)
	if err != nil {
		t.Fatal(err)
	}
	subB, err := b.Subscribe(ctx, asset)
	if err != nil {
		t.Fatal(err)
	}
	topic := protocols.TopicResourcePrefix + asset.String()
	testnet.Eventually(t, 10*time.Second, "member-2 sees both subscribers", func() bool {
		return len(b.PubSub().Router().ListPeers(topic)) >= 2
	})
	unreadable := c.UnreadableUpdates()
	for i := 1; i <= 3; i++ {
		if _, err := b.Publish(ctx, asset, fmt.Appendf(nil, "price-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	inOrder(t, "member-1", collect(t, "member-1", subA, 3), 1, "price")
	inOrder(t, "member-2 (owner)", collect(t, "member-2", subB, 3), 1, "price")
	// member-3 has no baseline (the owner refused it the head), so it may
	// take a later update as its first; it reads none of them.
	testnet.Eventually(t, 10*time.Second, "member-3 fails to read the updates", func() bool {
		return c.UnreadableUpdates() > unreadable
	})
	select {
	case u := <-subC:
		t.Fatalf("member-3 read update %d without a grant", u.Seq)
	default:
	}
	// The owner reads its own state locally.
	if err := b.SetResourceState(ctx, asset, []byte("state")); err != nil {
		t.Fatal(err)
	}
	if data, err := b.GetResource(ctx, asset); err != nil || string(data) != "state" {
		t.Fatalf("owner reads its own state: %q, %v", data, err)
	}
}

// TestSubscriptionLearnsHeadAfterFailedAsk: when the publisher's head
// cannot be had at subscription, the node keeps asking in the background;
// once it has it, an update lost on gossip before any other arrives is
// noticed and fetched, so the subscription starts at the right place.
func TestSubscriptionLearnsHeadAfterFailedAsk(t *testing.T) {
	net := testnet.New(t, testnet.Options{Members: 2, Join: true})
	sub, owner := net.Nodes()[2], net.Nodes()[3]
	testnet.Eventually(t, 10*time.Second, "member-1 resolves member-2", func() bool {
		return resolves(sub, "member-2", owner.ID(), "")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	asset := resource.MustParseID("member-2:102:fund-head")
	testnet.Eventually(t, 10*time.Second, "member-2's DHT has peers", func() bool { return owner.DHT().RoutingTable().Size() > 0 })
	if _, err := owner.Advertise(ctx, asset, node.AdvertiseOptions{Topic: "fund-head"}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if _, err := owner.Publish(ctx, asset, fmt.Appendf(nil, "head-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// The first two asks for the head fail; update 4 is lost on gossip.
	sub.FailHeadRequests(2)
	var lost sync.Once
	sub.DropIncomingUpdates(func(u node.Update) bool {
		drop := false
		if u.Seq == 4 {
			lost.Do(func() { drop = true })
		}
		return drop
	})
	ch, err := sub.Subscribe(ctx, asset)
	if err != nil {
		t.Fatal(err)
	}
	if _, known := sub.SubscriptionStart(asset, owner.ID()); known {
		t.Fatal("start known although the head request failed")
	}
	testnet.Eventually(t, 10*time.Second, "member-1 learns member-2's head", func() bool {
		seq, known := sub.SubscriptionStart(asset, owner.ID())
		return known && seq == 3
	})
	topic := protocols.TopicResourcePrefix + asset.String()
	testnet.Eventually(t, 10*time.Second, "member-2 sees the subscriber on the topic", func() bool {
		return slices.Contains(owner.PubSub().Router().ListPeers(topic), sub.ID())
	})
	for i := 4; i <= 5; i++ {
		if _, err := owner.Publish(ctx, asset, fmt.Appendf(nil, "head-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	inOrder(t, "member-1", collect(t, "member-1", ch, 2), 4, "head")
}
