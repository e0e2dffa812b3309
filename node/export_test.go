package node

import (
	"context"

	gossip "github.com/libp2p/go-libp2p-pubsub"
	gossippb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/finp2p/go-finp2p/discovery"
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
