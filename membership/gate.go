package membership

import (
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/finp2p/go-finp2p/protocols"
)

// ResourceManager wraps inner so that a stream to or from a peer can be
// attached to a protocol only once the peer has proved membership. The host
// attaches every stream (inbound before its handler runs, outbound before it
// is used), so this one check covers identify, kad-dht, gossipsub and every
// FinP2P protocol alike.
func (s *Service) ResourceManager(inner network.ResourceManager) network.ResourceManager {
	return &resourceManager{ResourceManager: inner, s: s}
}

type resourceManager struct {
	network.ResourceManager
	s *Service
}

func (r *resourceManager) OpenStream(p peer.ID, dir network.Direction) (network.StreamManagementScope, error) {
	if r.s.isBlocked(p) {
		r.s.metrics.refusedStreams.WithLabelValues("").Inc()
		return nil, fmt.Errorf("open stream with %s: %w", p, ErrBlocked)
	}
	scope, err := r.ResourceManager.OpenStream(p, dir)
	if err != nil {
		return nil, err
	}
	return &streamScope{StreamManagementScope: scope, s: r.s, peer: p}, nil
}

type streamScope struct {
	network.StreamManagementScope
	s    *Service
	peer peer.ID
}

func (sc *streamScope) SetProtocol(proto protocol.ID) error {
	if err := sc.s.admit(sc.peer, proto); err != nil {
		sc.s.metrics.refusedStreams.WithLabelValues(string(proto)).Inc()
		return err
	}
	return sc.StreamManagementScope.SetProtocol(proto)
}

// admit decides whether a stream with p may speak proto.
//
// Identify is the one protocol that waits instead of being refused: the host
// runs it once per connection as soon as the connection is up, never retries
// it, and holds every host.NewStream until it finishes. Letting it wait for the
// handshake therefore makes every stream opened through the host wait until
// both sides have verified each other, and keeps identify itself (listen
// addresses, protocol list) from reaching a peer that is not a member.
func (s *Service) admit(p peer.ID, proto protocol.ID) error {
	s.mu.Lock()
	if b, ok := s.blockedLocked(p); ok {
		s.mu.Unlock()
		return fmt.Errorf("protocol %s with %s: %w: %s", proto, p, ErrBlocked, b.reason)
	}
	if proto == protocols.Membership {
		s.mu.Unlock()
		return nil
	}
	st := s.stateLocked(p)
	if st.verified() {
		s.mu.Unlock()
		return nil
	}
	h := s.host
	s.mu.Unlock()
	// A stream on a connection that is already gone (identify push from a
	// closing host, say) has no handshake to wait for.
	if h != nil && h.Network().Connectedness(p) != network.Connected {
		return fmt.Errorf("protocol %s with %s: %w: not connected", proto, p, ErrNotVerified)
	}

	if proto == identify.ID || proto == identify.IDPush {
		timer := time.NewTimer(s.cfg.HandshakeTimeout)
		defer timer.Stop()
		select {
		case <-st.done:
			if st.err == nil {
				return nil
			}
		case <-timer.C:
		case <-s.ctx.Done():
		}
	}
	return fmt.Errorf("protocol %s with %s: %w", proto, p, ErrNotVerified)
}

// ConnectionGater returns the gater that keeps blocked and revoked peers out
// before any stream is opened.
func (s *Service) ConnectionGater() connmgr.ConnectionGater { return (*gater)(s) }

type gater Service

func (g *gater) InterceptPeerDial(p peer.ID) bool { return !(*Service)(g).isBlocked(p) }

func (g *gater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }

func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !(*Service)(g).isBlocked(p)
}

func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
