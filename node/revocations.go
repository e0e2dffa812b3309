package node

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"

	gossip "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/membership"
	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/protocols/pb"
	"github.com/finp2p/go-finp2p/pubsub"
)

// revocations spreads certificate revocation lists over gossipsub, so every
// member drops a revoked peer within seconds of one member learning of it.
type revocations struct {
	topic   *pubsub.Topic
	members *membership.Service
	log     *slog.Logger
}

func startRevocations(ps *pubsub.PubSub, members *membership.Service, log *slog.Logger) (*revocations, error) {
	r := &revocations{members: members, log: log}
	t, err := ps.Join(protocols.TopicRevocations, r.validate, nil)
	if err != nil {
		return nil, err
	}
	r.topic = t
	return r, nil
}

// validate applies a list that verifies (the validator is where a list is
// checked, so applying it there avoids checking its signature twice). A
// forged or malformed list is rejected, which penalises the sender; a stale
// one is ignored and not forwarded.
func (r *revocations) validate(_ context.Context, from peer.ID, msg *gossip.Message) gossip.ValidationResult {
	var rl pb.RevocationList
	if err := proto.Unmarshal(msg.Data, &rl); err != nil || len(rl.Der) == 0 || len(rl.IssuerChain) == 0 {
		r.log.Warn("rejected a malformed revocation list", "peer", from, "org", r.orgOf(from))
		return gossip.ValidationReject
	}
	applied, err := r.members.ApplyCRL(rl.Der, rl.IssuerChain)
	switch {
	case err != nil:
		r.log.Warn("rejected a revocation list", "peer", from, "org", r.orgOf(from), "reason", err)
		return gossip.ValidationReject
	case applied:
		return gossip.ValidationAccept
	case r.holds(rl.Der):
		// The list this node holds: its own publication, or a copy that
		// arrived by another path. Forward it; gossipsub drops duplicates.
		return gossip.ValidationAccept
	default:
		return gossip.ValidationIgnore
	}
}

// orgOf is the org to log for a peer that forwarded a list.
func (r *revocations) orgOf(p peer.ID) string {
	if m, ok := r.members.Verified(p); ok {
		return m.OrgID
	}
	return governance.UnverifiedOrg
}

func (r *revocations) holds(der []byte) bool {
	for _, c := range r.members.CRLs() {
		if bytes.Equal(c.Der, der) {
			return true
		}
	}
	return false
}

func (r *revocations) publish(ctx context.Context, der []byte, issuerChain [][]byte) error {
	data, err := proto.Marshal(&pb.RevocationList{Der: der, IssuerChain: issuerChain})
	if err != nil {
		return fmt.Errorf("encode revocation list: %w", err)
	}
	if len(data) > protocols.MaxGossipMessageSize {
		return fmt.Errorf("revocation list is %d bytes, over the %d-byte gossip limit", len(data), protocols.MaxGossipMessageSize)
	}
	return r.topic.Publish(ctx, data)
}

func (r *revocations) close() error { return r.topic.Close() }
