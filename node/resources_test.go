package node_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/finp2p/go-finp2p/internal/testnet"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/resource"
)

func TestResourceAdvertisements(t *testing.T) {
	net := testnet.New(t, testnet.Options{Members: 5, Join: true})
	a, b, c := net.Nodes()[2], net.Nodes()[3], net.Nodes()[4] // member-1, member-2, member-3
	for _, nd := range []*node.Node{a, c} {
		testnet.Eventually(t, 10*time.Second, nd.Self().OrgID+" resolves member-2", func() bool {
			return resolves(nd, "member-2", b.ID(), "")
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	public := resource.MustParseID("member-2:102:9929ccaf-8967-4ba3-9198-a4b8e3128388")
	testnet.Eventually(t, 10*time.Second, "member-2's DHT has peers", func() bool { return b.DHT().RoutingTable().Size() > 0 })
	if _, err := b.Advertise(ctx, public, node.AdvertiseOptions{Topic: "assets/9929ccaf"}); err != nil {
		t.Fatal(err)
	}
	for _, nd := range []*node.Node{a, c} {
		info, err := nd.FindResource(ctx, public)
		if err != nil {
			t.Fatalf("%s finds the public asset: %v", nd.Self().OrgID, err)
		}
		if info.Owner != "member-2" || info.Topic != "assets/9929ccaf" || info.Restricted {
			t.Fatalf("%s found %+v", nd.Self().OrgID, info)
		}
	}

	restricted := resource.MustParseID("finp2p://member-2/102/restricted-1")
	if _, err := b.Advertise(ctx, restricted, node.AdvertiseOptions{To: []string{"member-1"}}); err != nil {
		t.Fatal(err)
	}
	if info, err := a.FindResource(ctx, restricted); err != nil || !info.Restricted {
		t.Fatalf("member-1 finds the restricted asset: %+v, %v", info, err)
	}
	if _, err := c.FindResource(ctx, restricted); !errors.Is(err, resource.ErrResourceNotFound) {
		t.Fatalf("member-3 looking for the restricted asset: %v, want ErrResourceNotFound", err)
	}
	// Nor can member-3 fetch it: with no ACL, only a public resource is
	// readable.
	if err := b.SetResourceState(ctx, restricted, []byte("terms")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetResource(ctx, restricted); !errors.Is(err, resource.ErrAccessDenied) {
		t.Fatalf("member-3 fetching the restricted asset: %v, want ErrAccessDenied", err)
	}
	// Bad input changes nothing: an update over the limit, state over the
	// limit.
	if _, err := b.Publish(ctx, restricted, make([]byte, node.MaxUpdateSize+1)); !errors.Is(err, resource.ErrTooLarge) {
		t.Fatalf("oversized update: %v", err)
	}
	if err := b.SetResourceState(ctx, restricted, make([]byte, node.MaxResourceState+1)); !errors.Is(err, resource.ErrTooLarge) {
		t.Fatalf("oversized state: %v", err)
	}

	// Nobody advertises another org's resource.
	if _, err := c.Advertise(ctx, public, node.AdvertiseOptions{}); !errors.Is(err, resource.ErrNotOwner) {
		t.Fatalf("member-3 advertising member-2's asset: %v", err)
	}

	// Narrowing an audience withdraws the resource from the orgs dropped;
	// making a public resource restricted withdraws it from the DHT.
	narrowed := resource.MustParseID("member-2:102:narrowed")
	if _, err := b.Advertise(ctx, narrowed, node.AdvertiseOptions{To: []string{"member-1", "member-3"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.FindResource(ctx, narrowed); err != nil {
		t.Fatalf("member-3 in the first audience: %v", err)
	}
	if _, err := b.Advertise(ctx, narrowed, node.AdvertiseOptions{To: []string{"member-1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.FindResource(ctx, narrowed); !errors.Is(err, resource.ErrResourceNotFound) {
		t.Fatalf("member-3 after being dropped from the audience: %v", err)
	}
	if _, err := a.FindResource(ctx, narrowed); err != nil {
		t.Fatalf("member-1 still in the audience: %v", err)
	}
	closing := resource.MustParseID("member-2:102:closing")
	if _, err := b.Advertise(ctx, closing, node.AdvertiseOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.FindResource(ctx, closing); err != nil {
		t.Fatalf("member-3 finds the public resource: %v", err)
	}
	if _, err := b.Advertise(ctx, closing, node.AdvertiseOptions{To: []string{"member-1"}}); err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, 10*time.Second, "member-3 no longer finds the now restricted resource", func() bool {
		_, err := c.FindResource(ctx, closing)
		return errors.Is(err, resource.ErrResourceNotFound)
	})

	// Withdrawn: gone for everyone.
	if err := b.Withdraw(ctx, public); err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, 10*time.Second, "member-3 no longer finds the withdrawn asset", func() bool {
		_, err := c.FindResource(ctx, public)
		return errors.Is(err, resource.ErrResourceNotFound) && strings.Contains(err.Error(), "withdrawn")
	})
	if err := b.Withdraw(ctx, restricted); err != nil {
		t.Fatal(err)
	}
	if _, err := a.FindResource(ctx, restricted); !errors.Is(err, resource.ErrResourceNotFound) {
		t.Fatalf("member-1 after the restricted withdrawal: %v", err)
	}
}
