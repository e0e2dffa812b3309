package node_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	gossip "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/protocols"

	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/internal/testnet"
	"github.com/finp2p/go-finp2p/node"
)

// resolves reports whether from resolves org to a resolution that lists
// peer p (with, if want is set, that address among p's addresses).
func resolves(from *node.Node, org string, p peer.ID, want string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := from.Resolve(ctx, org)
	if err != nil {
		return false
	}
	for _, nd := range res.Nodes {
		if nd.Peer == p && (want == "" || slices.Contains(nd.Addrs, want)) {
			return true
		}
	}
	return false
}

func tcpAddr(nd *node.Node) string {
	for _, a := range nd.Host().Addrs() {
		if _, err := a.ValueForProtocol(6 /* tcp */); err == nil {
			return a.String()
		}
	}
	return ""
}

func TestJoinThroughRendezvousAndResolveEveryOrg(t *testing.T) {
	start := time.Now()
	net := testnet.New(t, testnet.Options{Members: 10, Join: true})
	nodes := net.Nodes()
	members := nodes[2:]
	for _, m := range members {
		for _, other := range nodes {
			if other == m {
				continue
			}
			org := other.Self().OrgID
			testnet.Eventually(t, 20*time.Second, fmt.Sprintf("%s resolves %s", m.Self().OrgID, org), func() bool {
				return resolves(m, org, other.ID(), "")
			})
		}
	}
	t.Logf("10 members joined and resolved all 11 other orgs in %s", time.Since(start))

	// Joining goes beyond the rendezvous nodes: each member meets other
	// members directly and has them in its DHT routing table.
	for _, m := range members {
		testnet.Eventually(t, 15*time.Second, m.Self().OrgID+" connected to another member and with 3 DHT peers", func() bool {
			direct := 0
			for _, mi := range m.Members() {
				if mi.Role == governance.RoleMember {
					direct++
				}
			}
			return direct > 0 && m.DHT().RoutingTable().Size() >= 3
		})
	}

	// The registrar lists every member, with filters.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	orgs, err := members[0].Orgs(ctx, discovery.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(orgs) != 12 || orgs[0].Source != discovery.SourceRegistrar {
		t.Fatalf("Orgs listed %d orgs (source %q), want 12 from the registrar", len(orgs), orgs[0].Source)
	}
	if orgs, _ := members[0].Orgs(ctx, discovery.Filter{Protocol: "/finp2p/kad/1.0.0"}); len(orgs) != 12 {
		t.Fatalf("Orgs with the DHT protocol: %d, want 12", len(orgs))
	}
	if orgs, _ := members[0].Orgs(ctx, discovery.Filter{Service: "no-such-service"}); len(orgs) != 0 {
		t.Fatalf("Orgs with an unknown service: %d, want 0", len(orgs))
	}
}

// restart closes nd and starts a node from the same repo again, on new
// ports, with the given extra options.
func restart(t *testing.T, net *testnet.Network, nd *node.Node, repo string, opts ...node.Option) *node.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := nd.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return net.StartNode(repo, opts...)
}

func TestRestartOnNewPortIsResolvedByOthers(t *testing.T) {
	net := testnet.New(t, testnet.Options{Members: 3, Join: true})
	nodes := net.Nodes()
	m1, m2, m3 := nodes[2], nodes[3], nodes[4]
	for _, other := range []*node.Node{m2, m3} {
		testnet.Eventually(t, 10*time.Second, "member-1 resolved by "+other.Self().OrgID, func() bool {
			return resolves(other, "member-1", m1.ID(), tcpAddr(m1))
		})
	}
	old := tcpAddr(m1)
	repo := repoOf(t, net, m1)
	m1 = restart(t, net, m1, repo)
	if tcpAddr(m1) == old {
		t.Fatalf("restarted on the same address %s", old)
	}
	start := time.Now()
	for _, other := range []*node.Node{m2, m3} {
		testnet.Eventually(t, 5*time.Second, other.Self().OrgID+" resolves member-1's new address", func() bool {
			return resolves(other, "member-1", m1.ID(), tcpAddr(m1))
		})
	}
	t.Logf("new address %s resolved by both members %s after the restart", tcpAddr(m1), time.Since(start))
}

// repoOf finds the repo directory of a node started by net.
func repoOf(t *testing.T, net *testnet.Network, nd *node.Node) string {
	t.Helper()
	repo, ok := net.RepoOf(nd)
	if !ok {
		t.Fatalf("no repo for %s", nd.ID())
	}
	return repo
}

func TestRejoinFromBackupPeersWhileRendezvousIsDown(t *testing.T) {
	// member-1 keeps its datastore across the restart, as a pebble repo does.
	ds := dssync.MutexWrap(datastore.NewMapDatastore())
	net := testnet.NewEmpty(t)
	founding := net.StartNode(net.Repo("founding-org", governance.RoleFounding, net.Founding))
	net.SetRendezvous(founding)
	gov := net.StartNode(net.Repo("governance-org", governance.RoleGovernance, net.Governance))
	net.SetRendezvous(founding, gov)
	repo1 := net.Repo("member-1", governance.RoleMember, net.Governance)
	m1 := net.StartNode(repo1, node.WithDatastore(ds))
	m2 := net.StartNode(net.Repo("member-2", governance.RoleMember, net.Governance))
	m3 := net.StartNode(net.Repo("member-3", governance.RoleMember, net.Governance))
	for _, other := range []*node.Node{m2, m3} {
		testnet.Eventually(t, 10*time.Second, "member-1 learns "+other.Self().OrgID, func() bool {
			return resolves(m1, other.Self().OrgID, other.ID(), "")
		})
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, nd := range []*node.Node{founding, gov} {
		if err := nd.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	m1 = restart(t, net, m1, repo1, node.WithDatastore(ds))
	start := time.Now()
	testnet.Eventually(t, 20*time.Second, "restarted member-1 connected to member-2 and member-3", func() bool {
		orgs := map[string]bool{}
		for _, m := range m1.Members() {
			orgs[m.OrgID] = true
		}
		return orgs["member-2"] && orgs["member-3"]
	})
	// With no registrar up, the others learn member-1's new address over
	// the capabilities topic or the DHT.
	for _, other := range []*node.Node{m2, m3} {
		testnet.Eventually(t, 10*time.Second, other.Self().OrgID+" resolves member-1's new address without a registrar", func() bool {
			return resolves(other, "member-1", m1.ID(), tcpAddr(m1))
		})
	}
	t.Logf("member-1 rejoined from its backup peers in %s", time.Since(start))
}

func TestClusterNodesBothResolve(t *testing.T) {
	net := testnet.New(t, testnet.Options{Members: 2, Join: true})
	a := net.StartNode(net.Repo("bank-x", governance.RoleMember, net.Governance), node.WithServices("custody"), node.WithLedgers("ethereum"))
	b := net.StartNode(net.Repo("bank-x", governance.RoleMember, net.Governance), node.WithServices("custody"), node.WithLedgers("ethereum"))
	if a.Self().FinID != b.Self().FinID {
		t.Fatalf("cluster nodes have FinIDs %s and %s", a.Self().FinID, b.Self().FinID)
	}
	m1 := net.Nodes()[2]
	testnet.Eventually(t, 10*time.Second, "both bank-x nodes in member-1's resolution", func() bool {
		return resolves(m1, "bank-x", a.ID(), tcpAddr(a)) && resolves(m1, "bank-x", b.ID(), tcpAddr(b))
	})
	// The DHT alone finds both too: each node provides the org's key.
	testnet.Eventually(t, 10*time.Second, "both bank-x nodes found in the DHT", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		recs, err := m1.ResolveFromDHT(ctx, "bank-x")
		if err != nil {
			return false
		}
		found := map[peer.ID]bool{}
		for _, r := range recs {
			found[r.Ad.Peer] = true
		}
		return found[a.ID()] && found[b.ID()]
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	orgs, err := m1.Orgs(ctx, discovery.Filter{Service: "custody", Ledger: "ethereum"})
	if err != nil {
		t.Fatal(err)
	}
	if len(orgs) != 1 || orgs[0].Org != "bank-x" || len(orgs[0].Nodes) != 2 {
		t.Fatalf("custody on ethereum: %+v, want bank-x with two nodes", orgs)
	}
}

func TestAddressAndProtocolChangesReadvertise(t *testing.T) {
	net := testnet.New(t, testnet.Options{Members: 2, Join: true})
	m1, m2 := net.Nodes()[2], net.Nodes()[3]
	testnet.Eventually(t, 10*time.Second, "member-2 resolves member-1", func() bool {
		return resolves(m2, "member-1", m1.ID(), "")
	})
	before, _ := m1.Advertisement()

	extra := ma.StringCast("/ip4/127.0.0.1/tcp/0")
	if err := m1.Host().Network().Listen(extra); err != nil {
		t.Fatal(err)
	}
	var added string
	for _, a := range m1.Host().Network().ListenAddresses() {
		if s := a.String(); strings.Contains(s, "/tcp/") && !slices.Contains(before.Addrs, s) {
			added = s
		}
	}
	start := time.Now()
	testnet.Eventually(t, 5*time.Second, "member-2 resolves member-1's added address "+added, func() bool {
		return resolves(m2, "member-1", m1.ID(), added)
	})
	t.Logf("added address reached member-2 %s after listening", time.Since(start))
	after, _ := m1.Advertisement()
	if after.Seq <= before.Seq {
		t.Fatalf("sequence %d after the change, %d before", after.Seq, before.Seq)
	}

	const proto = "/finp2p/test-extension/1.0.0"
	m1.Host().SetStreamHandler(proto, func(s network.Stream) { _ = s.Reset() })
	start = time.Now()
	testnet.Eventually(t, 5*time.Second, "member-2 sees member-1's new protocol", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := m2.Resolve(ctx, "member-1")
		return err == nil && len(res.Nodes) == 1 && slices.Contains(res.Nodes[0].Protocols, proto)
	})
	t.Logf("added protocol reached member-2 %s after registering", time.Since(start))
}

func TestProductionNetworkRefusesPrivateAddresses(t *testing.T) {
	net := testnet.NewEmpty(t)
	net.SetDevelopment(false)
	repo := net.Repo("bank-x", governance.RoleMember, net.Governance)

	_, err := net.TryStartNode(repo, node.WithAnnounce("/ip4/127.0.0.1/tcp/4001"))
	if !errors.Is(err, discovery.ErrAddressPolicy) || !strings.Contains(err.Error(), "/ip4/127.0.0.1/tcp/4001 is a loopback address") {
		t.Fatalf("start with a loopback announce address: %v", err)
	}
	_, err = net.TryStartNode(repo, node.WithAnnounce("/ip4/192.168.1.20/tcp/4001"))
	if !errors.Is(err, discovery.ErrAddressPolicy) || !strings.Contains(err.Error(), "192.168.1.20/tcp/4001 is a private address") {
		t.Fatalf("start with a private announce address: %v", err)
	}

	// Listening on loopback only, with nothing announced: the node runs,
	// but does not advertise, and says why.
	nd := net.StartNode(repo)
	testnet.Eventually(t, 5*time.Second, "the advertisement error", func() bool { return nd.AdvertisementError() != nil })
	if err := nd.AdvertisementError(); !strings.Contains(err.Error(), "127.0.0.1") || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("advertisement error %q does not name the loopback address", err)
	}
	if _, ok := nd.Advertisement(); ok {
		t.Fatal("advertised a loopback address on a production network")
	}
}

func TestProductionNetworkAdvertisesAnnounceAddresses(t *testing.T) {
	net := testnet.NewEmpty(t)
	net.SetDevelopment(false)
	// Only this one node runs, so nothing ever dials the announced address.
	nd := net.StartNode(net.Repo("bank-x", governance.RoleMember, net.Governance),
		node.WithAnnounce("/dns4/node1.bank-x.example/tcp/4001", "/ip4/1.2.3.4/udp/4001/quic-v1"))
	testnet.Eventually(t, 5*time.Second, "the node advertises", func() bool { _, ok := nd.Advertisement(); return ok })
	ad, _ := nd.Advertisement()
	if !slices.Equal(ad.Addrs, []string{"/dns4/node1.bank-x.example/tcp/4001", "/ip4/1.2.3.4/udp/4001/quic-v1"}) {
		t.Fatalf("advertised %v", ad.Addrs)
	}
	if st := nd.Status(); st.Advertisement == nil || st.Advertisement.Seq != ad.Seq {
		t.Fatalf("status advertisement %+v", st.Advertisement)
	}
}

func TestForgedAndStaleAdvertisementsRefused(t *testing.T) {
	net := testnet.New(t, testnet.Options{Members: 2, Join: true})
	gov, m1, m2 := net.Nodes()[1], net.Nodes()[2], net.Nodes()[3]
	testnet.Eventually(t, 10*time.Second, "member-2 resolves member-1", func() bool {
		return resolves(m2, "member-1", m1.ID(), "")
	})
	good, _ := m1.Advertisement()

	key := m1.Host().Peerstore().PrivKey(m1.ID())
	var chain [][]byte
	for _, c := range m1.Self().Chain {
		chain = append(chain, c.Raw)
	}
	ad := func(edit func(*discovery.Advertisement)) []byte {
		a := &discovery.Advertisement{
			Network: testnet.NetworkName, Org: "member-1", FinID: m1.Self().FinID, Peer: m1.ID(),
			Addrs: m1.Host().Addrs(), Services: []string{"forged"}, Version: "evil",
			Seq: good.Seq + 1000, Expires: time.Now().Add(time.Hour).Truncate(time.Second), Chain: chain,
		}
		for _, p := range protocols.Mandatory {
			a.Protocols = append(a.Protocols, string(p))
		}
		edit(a)
		sealed, err := discovery.Seal(a, key)
		if err != nil {
			t.Fatal(err)
		}
		return sealed
	}
	otherOrg := ad(func(a *discovery.Advertisement) { a.Org, a.FinID = "member-2", m2.Self().FinID })
	otherPeer := ad(func(a *discovery.Advertisement) { a.Org, a.FinID, a.Peer = "member-2", m2.Self().FinID, m2.ID() })
	stale := ad(func(a *discovery.Advertisement) { a.Seq = 1 })
	noDHT := ad(func(a *discovery.Advertisement) {
		a.Protocols = slices.DeleteFunc(a.Protocols, func(p string) bool { return p == string(protocols.DHT) })
	})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cases := []struct {
		name   string
		sealed []byte
		key    string // the DHT key it is put under
		want   string // what the registrar's refusal says
		topic  gossip.ValidationResult
	}{
		{"signed by another org", otherOrg, discovery.DHTKey("member-2", m1.ID()), "does not match its signer's certificate", gossip.ValidationReject},
		{"another node's record", otherPeer, discovery.DHTKey("member-2", m2.ID()), "signed by peer " + m1.ID().String(), gossip.ValidationReject},
		{"stale sequence", stale, discovery.DHTKey("member-1", m1.ID()), "stale advertisement", gossip.ValidationIgnore},
		{"no DHT protocol", noDHT, discovery.DHTKey("member-1", m1.ID()), "lacks a mandatory protocol: /finp2p/kad/1.0.0", gossip.ValidationReject},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := discovery.Register(ctx, m1.Host(), gov.ID(), c.sealed)
			if !errors.Is(err, discovery.ErrRefused) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("registrar: %v, want a refusal saying %q", err, c.want)
			}
			if got := m2.ValidateCapability(m1.ID(), c.sealed); got != c.topic {
				t.Errorf("topic validator: %v, want %v", got, c.topic)
			}
			// The DHT refuses it: a forged record fails validation, a
			// stale one loses to the newer record held.
			if err := m1.DHT().PutValue(ctx, c.key, c.sealed); err == nil {
				t.Errorf("DHT accepted the record under %s", c.key)
			}
		})
	}

	// The good record stayed everywhere.
	res, err := m2.Resolve(ctx, "member-1")
	if err != nil || len(res.Nodes) != 1 || res.Nodes[0].Seq != good.Seq {
		t.Fatalf("member-1 resolved by member-2 as %+v, %v; want seq %d", res, err, good.Seq)
	}
	sealed, err := discovery.Lookup(ctx, m2.Host(), gov.ID(), "member-1")
	if err != nil || len(sealed) != 1 {
		t.Fatalf("registrar lookup: %d records, %v", len(sealed), err)
	}
	testnet.Eventually(t, 10*time.Second, "the good record in the DHT", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		recs, err := m2.ResolveFromDHT(ctx, "member-1")
		return err == nil && len(recs) == 1 && recs[0].Ad.Seq == good.Seq
	})
}
