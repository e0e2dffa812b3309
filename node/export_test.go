package node

import (
	"context"
	"crypto/ecdh"
	"fmt"

	gossip "github.com/libp2p/go-libp2p-pubsub"
	gossippb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/finp2p/go-finp2p/asset"
	"github.com/finp2p/go-finp2p/broadcast"
	bpb "github.com/finp2p/go-finp2p/broadcast/pb"
	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/ledger"
	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/protocols/pb"
	"github.com/finp2p/go-finp2p/resource"
)

// ResolveFromDHT resolves org from the DHT alone, bypassing cache and
// registrar, so tests can check that path by itself.
func (n *Node) ResolveFromDHT(ctx context.Context, org string) ([]*discovery.Record, error) {
	return n.disc.dhtRecords(ctx, org)
}

// ValidateCapability runs the capabilities topic validator on data as if it
// had arrived from peer from.
func (n *Node) ValidateCapability(from peer.ID, data []byte) gossip.ValidationResult {
	msg := &gossip.Message{Message: &gossippb.Message{Data: data}, ReceivedFrom: from}
	return n.disc.validate(context.Background(), from, msg)
}

// DropIncomingUpdates makes the node drop the incoming resource updates f
// picks, before processing them, as a lossy network would.
func (n *Node) DropIncomingUpdates(f func(Update) bool) { n.upd.dropHook = f }

// FailHeadRequests makes n's next k requests for a publisher's head fail.
func (n *Node) FailHeadRequests(k int) { n.upd.failHeads.Store(int32(k)) }

// SubscriptionStart is the last update of publisher p the node counts as
// delivered on id's topic, if it knows one.
func (n *Node) SubscriptionStart(id resource.ID, p peer.ID) (uint64, bool) {
	n.upd.mu.Lock()
	t := n.upd.topics[id]
	n.upd.mu.Unlock()
	if t == nil {
		return 0, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	seq, ok := t.last[p]
	return seq, ok
}

// SendAssetRequest sends a sealed asset request to a node of the asset's
// org as is, and returns the sealed receipt or the typed refusal.
func (n *Node) SendAssetRequest(ctx context.Context, org string, sealed []byte) ([]byte, error) {
	var receipt []byte
	err := n.sendToOrg(ctx, org, func(ctx context.Context, p peer.ID) error {
		var reply pb.AssetTxResponse
		if err := n.request(ctx, p, protocols.AssetTx, &pb.AssetTxRequest{Request: sealed}, &reply, 128<<10); err != nil {
			return err
		}
		if reply.Code != "" {
			return codeError(reply.Code, reply.Error)
		}
		receipt = reply.Receipt
		return nil
	})
	return receipt, err
}

// SendAssetRequestTo seals a transfer request and sends it to node p
// directly, returning the sealed receipt or the refusal.
func (n *Node) SendAssetRequestTo(ctx context.Context, p peer.ID, id resource.ID, from, to, quantity, key string) ([]byte, error) {
	req := &asset.Request{
		Network: n.genesis.Network, Operation: ledger.OpTransfer, Asset: id.String(),
		From: from, To: to, Quantity: quantity, IdempotencyKey: n.self.OrgID + "/" + key,
		Nonce: asset.NewNonce(), Timestamp: n.cfg.now(), RequesterOrg: n.self.OrgID, Peer: n.host.ID(), Chain: n.disc.chain,
	}
	sealed, err := asset.SealRequest(req, n.disc.priv)
	if err != nil {
		return nil, err
	}
	var reply pb.AssetTxResponse
	if err := n.request(ctx, p, protocols.AssetTx, &pb.AssetTxRequest{Request: sealed}, &reply, 128<<10); err != nil {
		return nil, err
	}
	if reply.Code != "" {
		return nil, fmt.Errorf("refused (%s): %s", reply.Code, reply.Error)
	}
	return reply.Receipt, nil
}

// OnBroadcastSent calls f with every broadcast request n sends, after its
// collector waits for responses and before the request leaves.
func (n *Node) OnBroadcastSent(f func(*broadcast.Request)) { n.bc.testOnSent = f }

// OnBroadcastDelivered calls f with every broadcast request gossip delivers
// to n, whether n is in its scope or only relays it.
func (n *Node) OnBroadcastDelivered(f func(*broadcast.VerifiedRequest)) { n.bc.testOnDelivered = f }

// JoinBroadcastTopic subscribes n to a broadcast topic, as a node outside
// the topic's scope that relays its requests.
func (n *Node) JoinBroadcastTopic(name string) error {
	_, err := n.bc.topic(name)
	return err
}

// EncryptionKey is n's X25519 key for broadcast payloads.
func (n *Node) EncryptionKey() *ecdh.PrivateKey { return n.bc.key }

// PauseReplication stops (or resumes) n's replication of ledger id.
func (n *Node) PauseReplication(id string, paused bool) error { return n.repl.pause(id, paused) }

// SealBroadcastResponse signs r as n: network, org, chain and peer filled.
func (n *Node) SealBroadcastResponse(r *broadcast.Response) ([]byte, error) {
	r.Network, r.ResponderOrg, r.Chain = n.genesis.Network, n.self.OrgID, n.disc.chain
	return broadcast.SealResponse(r, n.disc.priv)
}

// SendBroadcastResponse hands a sealed response to node to as is, and
// returns why to refused it ("" if taken).
func (n *Node) SendBroadcastResponse(ctx context.Context, to peer.ID, sealed []byte) (string, error) {
	var ack bpb.Ack
	if err := n.request(ctx, to, protocols.BroadcastResponse, &bpb.Delivery{Record: sealed}, &ack, 4096); err != nil {
		return "", err
	}
	return ack.Error, nil
}
