package node

import (
	"context"

	gossip "github.com/libp2p/go-libp2p-pubsub"
	gossippb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/protocols/pb"
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
