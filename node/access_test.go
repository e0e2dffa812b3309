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

func TestACLGovernsResourceGet(t *testing.T) {
	// Refused requests refill at one per 1000 s: the flood below is judged
	// on counts alone, however slowly the machine runs it.
	net := testnet.New(t, testnet.Options{Members: 4, Join: true, NodeOptions: []node.Option{node.WithRefusalLimit(0.001, 10)}})
	a, b, c, d := net.Nodes()[2], net.Nodes()[3], net.Nodes()[4], net.Nodes()[5]
	for _, nd := range []*node.Node{a, c, d} {
		testnet.Eventually(t, 10*time.Second, nd.Self().OrgID+" resolves member-2", func() bool {
			return resolves(nd, "member-2", b.ID(), "")
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	asset := resource.MustParseID("member-2:102:bond-1")
	if err := b.SetResourceState(ctx, asset, []byte(`{"holders":3}`)); err != nil {
		t.Fatal(err)
	}
	grant := func(grants map[string]resource.Right) {
		t.Helper()
		if err := b.SetACL(ctx, resource.ACL{Resource: asset, Grants: grants}); err != nil {
			t.Fatal(err)
		}
	}
	grant(map[string]resource.Right{"member-1": resource.RightRead, "member-4": resource.RightRead})

	// The ACL reached the orgs it concerns.
	if acl, ok := a.ACL(asset); !ok || !acl.Allows("member-1", resource.RightRead) {
		t.Fatalf("member-1's cached ACL: %+v %v", acl, ok)
	}
	if data, err := a.GetResource(ctx, asset); err != nil || string(data) != `{"holders":3}` {
		t.Fatalf("member-1 get: %q, %v", data, err)
	}
	if _, err := c.GetResource(ctx, asset); !errors.Is(err, resource.ErrAccessDenied) {
		t.Fatalf("member-3 get: %v, want ErrAccessDenied", err)
	}
	// An unknown resource is refused like a forbidden one: refusals do not
	// reveal which resources exist.
	if _, err := a.GetResource(ctx, resource.MustParseID("member-2:102:no-such")); !errors.Is(err, resource.ErrAccessDenied) {
		t.Fatalf("unknown resource: %v", err)
	}
	// A readable resource with no state yet is not found.
	empty := resource.MustParseID("member-2:102:bond-2")
	if err := b.SetACL(ctx, resource.ACL{Resource: empty, Grants: map[string]resource.Right{"member-1": resource.RightRead}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.GetResource(ctx, empty); !errors.Is(err, resource.ErrResourceNotFound) {
		t.Fatalf("resource without state: %v", err)
	}

	// member-2 revokes member-1: member-1's cache follows, and its next
	// request is refused without being sent.
	grant(map[string]resource.Right{"member-4": resource.RightRead})
	if acl, ok := a.ACL(asset); !ok || acl.Allows("member-1", resource.RightRead) {
		t.Fatalf("member-1's cached ACL after the revocation: %+v", acl)
	}
	_, err := a.GetResource(ctx, asset)
	if !errors.Is(err, resource.ErrAccessDenied) || !strings.Contains(err.Error(), "not sent") {
		t.Fatalf("member-1 get after revocation: %v", err)
	}

	// A flood of refused requests from member-3 is cut short by the owner,
	// while member-4's allowed requests are all served.
	before := b.AccessCounts()
	for range 200 {
		_, err := c.GetResource(ctx, asset)
		if !errors.Is(err, resource.ErrAccessDenied) && !errors.Is(err, resource.ErrRateLimited) {
			t.Fatalf("member-3 flood: %v", err)
		}
	}
	for range 20 {
		if _, err := d.GetResource(ctx, asset); err != nil {
			t.Fatalf("member-4 during the flood: %v", err)
		}
	}
	after := b.AccessCounts()
	// member-3 spent one of its 10 refusals before the flood.
	examined, dropped := after.Refused-before.Refused, after.Dropped-before.Dropped
	if examined != 9 || dropped != 191 {
		t.Fatalf("of member-3's 200 requests %d were examined and %d dropped unexamined; want 9 and 191", examined, dropped)
	}
	if served := after.Served - before.Served; served != 20 {
		t.Fatalf("member-4: %d of 20 requests served", served)
	}
	t.Logf("flood: %d of 200 refused requests examined, %d dropped unexamined; 20 of 20 allowed requests served", examined, dropped)
}
