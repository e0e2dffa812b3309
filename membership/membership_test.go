package membership_test

import (
	"context"
	"errors"
	"math/big"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	gossip "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	msmux "github.com/multiformats/go-multistream"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/testnet"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/protocols/pb"
)

func TestMembersCompleteHandshake(t *testing.T) {
	net := testnet.New(t, testnet.Options{Members: 3})
	nodes := net.Nodes()
	if len(nodes) != 5 {
		t.Fatalf("network has %d nodes, want 5", len(nodes))
	}
	wantRole := map[string]governance.Role{
		"founding-org":   governance.RoleFounding,
		"governance-org": governance.RoleGovernance,
		"member-1":       governance.RoleMember,
		"member-2":       governance.RoleMember,
		"member-3":       governance.RoleMember,
	}
	for _, nd := range nodes {
		if got := nd.Self().Role; got != wantRole[nd.Self().OrgID] {
			t.Errorf("%s: own role %s, want %s", nd.Self().OrgID, got, wantRole[nd.Self().OrgID])
		}
		members := nd.Members()
		if len(members) != 4 {
			t.Fatalf("%s sees %d members, want 4", nd.Self().OrgID, len(members))
		}
		for _, m := range members {
			if wantRole[m.OrgID] != m.Role {
				t.Errorf("%s sees %s with role %s, want %s", nd.Self().OrgID, m.OrgID, m.Role, wantRole[m.OrgID])
			}
			if m.FinID == "" {
				t.Errorf("%s sees %s without a FinID", nd.Self().OrgID, m.OrgID)
			}
		}
	}
	// Identify ran once both sides were verified, so the peers' protocols
	// are known and kad-dht adds members to its routing table.
	for _, nd := range nodes {
		testnet.Eventually(t, 10*time.Second, nd.Self().OrgID+" has every member in its DHT routing table", func() bool {
			return nd.DHT().RoutingTable().Size() == 4
		})
	}
}

// rogue is a libp2p host with a valid key and no certificate.
func rogue(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

var errNotConnected = errors.New("not connected")

// dial connects h to nd at the transport level. host.Connect would wait for
// identify, which a member holds until the handshake deadline.
func dial(ctx context.Context, t *testing.T, h host.Host, nd *node.Node) {
	t.Helper()
	h.Peerstore().AddAddrs(nd.ID(), nd.Host().Addrs(), time.Hour)
	if _, err := h.Network().DialPeer(ctx, nd.ID()); err != nil {
		t.Fatalf("transport connection: %v", err)
	}
}

// rawStream opens a stream on an existing connection and negotiates proto,
// without waiting for identify as host.NewStream does.
func rawStream(ctx context.Context, h host.Host, p peer.ID, proto protocol.ID) (network.Stream, error) {
	conns := h.Network().ConnsToPeer(p)
	if len(conns) == 0 {
		return nil, errNotConnected
	}
	s, err := conns[0].NewStream(ctx)
	if err != nil {
		return nil, err
	}
	_ = s.SetDeadline(time.Now().Add(3 * time.Second))
	if err := msmux.SelectProtoOrFail(proto, s); err != nil {
		s.Reset()
		return nil, err
	}
	return s, nil
}

func TestUncertifiedPeerGetsNoAnswer(t *testing.T) {
	var skew atomic.Int64 // how far the nodes' clock is ahead
	clock := node.WithClock(func() time.Time { return time.Now().Add(time.Duration(skew.Load())) })
	net := testnet.New(t, testnet.Options{Members: 1, NodeOptions: []node.Option{node.WithHandshakeTimeout(3 * time.Second), clock}})
	member := net.Nodes()[2]
	r := rogue(t)

	// The rogue joins gossip on the revocations topic, as a member would.
	rps, err := gossip.NewGossipSub(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := rps.Join(protocols.TopicRevocations)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dial(ctx, t, r, member)

	// kad-dht FIND_NODE: the member must not answer.
	t.Run("kad-dht FIND_NODE", func(t *testing.T) {
		s, err := rawStream(ctx, r, member.ID(), protocols.DHT)
		if errors.Is(err, errNotConnected) {
			t.Fatal("rogue was disconnected before it could ask")
		}
		if err != nil {
			return // refused during negotiation: no answer
		}
		defer s.Reset()
		req := &dhtpb.Message{Type: dhtpb.Message_FIND_NODE, Key: []byte(member.ID())}
		if err := protocols.WriteMsg(s, req); err != nil {
			return
		}
		var resp dhtpb.Message
		if err := protocols.ReadMsg(s, &resp, 1<<20); err == nil {
			t.Fatalf("member answered FIND_NODE from an uncertified peer with %d peers", len(resp.CloserPeers))
		}
	})

	for _, proto := range []protocol.ID{gossip.GossipSubID_v12, gossip.GossipSubID_v11, identify.ID} {
		t.Run(string(proto), func(t *testing.T) {
			s, err := rawStream(ctx, r, member.ID(), proto)
			if errors.Is(err, errNotConnected) {
				t.Fatal("rogue was disconnected before it could ask")
			}
			if err != nil {
				return
			}
			defer s.Reset()
			buf := make([]byte, 1)
			if n, err := s.Read(buf); err == nil || n > 0 {
				t.Fatalf("member sent %d bytes on %s to an uncertified peer", n, proto)
			}
		})
	}

	// The member's own outbound gossip never reaches the rogue either.
	if peers := rps.ListPeers(protocols.TopicRevocations); len(peers) != 0 {
		t.Fatalf("rogue has gossip peers %v", peers)
	}

	testnet.Eventually(t, 10*time.Second, "rogue disconnected", func() bool {
		return r.Network().Connectedness(member.ID()) != network.Connected
	})
	reason, blocked := member.Blocked(r.ID())
	if !blocked || !strings.Contains(reason, "no membership handshake") {
		t.Fatalf("member: blocked=%v reason=%q, want blocked for a missing handshake", blocked, reason)
	}
	if member.DHT().RoutingTable().Find(r.ID()) != "" {
		t.Fatal("rogue is in the member's DHT routing table")
	}
	// A blocked peer cannot come back.
	if err := r.Connect(ctx, testnet.AddrInfo(member)); err == nil {
		testnet.Eventually(t, 5*time.Second, "blocked rogue's reconnection dropped", func() bool {
			return r.Network().Connectedness(member.ID()) != network.Connected
		})
	}
	// A peer that only ran out of time may be a member slowed by load: its
	// block ends after 30s, not after the 10-minute block of a peer whose
	// credentials failed.
	skew.Store(int64(29 * time.Second))
	if _, blocked := member.Blocked(r.ID()); !blocked {
		t.Fatal("rogue unblocked within 29s of a missed handshake")
	}
	skew.Store(int64(31 * time.Second))
	if reason, blocked := member.Blocked(r.ID()); blocked {
		t.Fatalf("rogue still blocked 31s after a missed handshake: %s", reason)
	}
}

func TestForgedChainRefusedAndBlocked(t *testing.T) {
	var skew atomic.Int64 // how far the nodes' clock is ahead
	clock := node.WithClock(func() time.Time { return time.Now().Add(time.Duration(skew.Load())) })
	net := testnet.New(t, testnet.Options{Members: 1, NodeOptions: []node.Option{clock}})
	member := net.Nodes()[2]

	// A CA outside the genesis certifies the rogue's key properly.
	foreign, err := governance.InitFoundingAuthority(filepath.Join(t.TempDir(), "ca"), testnet.NetworkName, "evil-org", time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, err := governance.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	csrDER, err := governance.CreateNodeCSR(key, "evil-org", governance.RoleMember)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := governance.ParseCSR(csrDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _, err := foreign.CertifyNode(csr, time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := crypto.UnmarshalEd25519PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	r, err := libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dial(ctx, t, r, member)
	s, err := rawStream(ctx, r, member.ID(), protocols.Membership)
	if err != nil {
		t.Fatal(err)
	}
	if err := protocols.WriteMsg(s, &pb.Hello{Network: testnet.NetworkName, Chain: [][]byte{leaf.Raw, foreign.Certificate().Raw}}); err != nil {
		t.Fatal(err)
	}
	_ = s.CloseWrite()
	var reply pb.HelloReply
	if err := protocols.ReadMsg(s, &reply, protocols.MaxHelloSize); err != nil {
		t.Fatalf("no reply to a forged chain: %v", err)
	}
	_ = s.Close()
	if reply.Hello != nil || !strings.Contains(reply.Error, "certificate chain") {
		t.Fatalf("reply = %+v, want an error about the certificate chain", &reply)
	}
	testnet.Eventually(t, 5*time.Second, "forged peer disconnected", func() bool {
		return r.Network().Connectedness(member.ID()) != network.Connected
	})
	if _, blocked := member.Blocked(r.ID()); !blocked {
		t.Fatal("forged peer not blocked")
	}
	// Failed credentials keep the whole 10-minute block.
	skew.Store(int64(9 * time.Minute))
	if _, blocked := member.Blocked(r.ID()); !blocked {
		t.Fatal("forged peer unblocked within 9 minutes")
	}
}

func TestWrongNetworkRefused(t *testing.T) {
	net := testnet.New(t, testnet.Options{Members: 1})
	member := net.Nodes()[2]
	other := testnet.NewEmpty(t)
	// Same genesis roots, other network name: refused by name.
	stranger := net.StartNode(net.Repo("member-9", governance.RoleMember, net.Governance))
	_ = other
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := stranger.Connect(ctx, testnet.AddrInfo(member)); err != nil {
		t.Fatalf("same network: %v", err)
	}
	// A node of another network (another genesis) cannot verify, either way.
	alien := other.StartNode(other.Repo("alien", governance.RoleMember, other.Governance))
	if _, err := alien.Connect(ctx, testnet.AddrInfo(member)); err == nil {
		t.Fatal("a node of another network was accepted")
	}
}

func TestRevokedMemberDisconnectedEverywhere(t *testing.T) {
	net := testnet.New(t, testnet.Options{Members: 3})
	nodes := net.Nodes()
	gov, revoked := nodes[1], nodes[4]

	// Gossip reaches the peers whose subscriptions the publisher has seen.
	testnet.Eventually(t, 10*time.Second, "governance node sees every member on the revocations topic", func() bool {
		return len(gov.PubSub().Router().ListPeers(protocols.TopicRevocations)) == 4
	})
	serial := revoked.Self().Serial
	if err := net.Governance.Revoke(new(big.Int).Set(serial), 1, time.Now()); err != nil {
		t.Fatal(err)
	}
	crl, err := net.Governance.CRL(time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	applied, err := gov.ApplyRevocationList(context.Background(), crl, [][]byte{net.Governance.Certificate().Raw})
	if err != nil || !applied {
		t.Fatalf("apply CRL at the governance node: applied=%v err=%v", applied, err)
	}

	for _, nd := range nodes[:4] {
		testnet.Eventually(t, 10*time.Second, nd.Self().OrgID+" drops the revoked member", func() bool {
			for _, m := range nd.Members() {
				if m.PeerID == revoked.ID() {
					return false
				}
			}
			_, blocked := nd.Blocked(revoked.ID())
			return blocked && nd.Host().Network().Connectedness(revoked.ID()) != network.Connected
		})
	}
	testnet.Eventually(t, 10*time.Second, "revoked member isolated", func() bool { return len(revoked.Members()) == 0 })

	// It cannot come back.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := revoked.Connect(ctx, testnet.AddrInfo(nodes[2])); err == nil {
		t.Fatal("revoked member reconnected")
	}
	// The others still talk to each other.
	if got := len(nodes[2].Members()); got != 3 {
		t.Fatalf("member-1 sees %d members after the revocation, want 3", got)
	}

	// A list that is not newer is not applied again, and a forged one is refused.
	if applied, err := nodes[2].ApplyRevocationList(context.Background(), crl, [][]byte{net.Governance.Certificate().Raw}); err != nil || applied {
		t.Fatalf("re-applying the same list: applied=%v err=%v", applied, err)
	}
	bogus := append([]byte(nil), crl...)
	bogus[len(bogus)-1] ^= 0xff
	if _, err := nodes[2].ApplyRevocationList(context.Background(), bogus, [][]byte{net.Governance.Certificate().Raw}); err == nil {
		t.Fatal("a CRL with a broken signature was applied")
	}
}
