package membership

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	msmux "github.com/multiformats/go-multistream"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/protocols/pb"
)

// connected starts the checks for a new connection. The dialing side runs the
// handshake; both sides enforce the deadline.
func (s *Service) connected(_ network.Network, c network.Conn) {
	p := c.RemotePeer()
	s.mu.Lock()
	if _, ok := s.blockedLocked(p); ok {
		s.mu.Unlock()
		go c.Close()
		return
	}
	st := s.stateLocked(p)
	if st.verified() {
		s.mu.Unlock()
		return
	}
	initiate := c.Stat().Direction == network.DirOutbound && !st.handshaking
	if initiate {
		st.handshaking = true
	}
	watch := !st.watched
	st.watched = true
	s.mu.Unlock()

	if initiate {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.initiate(c, st)
		}()
	}
	if watch {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.watchdog(p, st)
		}()
	}
}

// disconnected forgets a peer once its last connection is gone, so that a
// reconnection proves membership again with the certificate it has then.
func (s *Service) disconnected(n network.Network, c network.Conn) {
	p := c.RemotePeer()
	if n.Connectedness(p) == network.Connected {
		return
	}
	s.mu.Lock()
	st, ok := s.peers[p]
	if ok {
		delete(s.peers, p)
	}
	s.mu.Unlock()
	if ok {
		// Anything waiting for this peer's handshake stops waiting.
		s.resolve(st, governance.Member{}, errors.New("disconnected before proving membership"))
	}
}

// watchdog refuses a peer that has not proved membership in time.
func (s *Service) watchdog(p peer.ID, st *peerState) {
	timer := time.NewTimer(s.cfg.HandshakeTimeout)
	defer timer.Stop()
	select {
	case <-st.done:
	case <-s.ctx.Done():
	case <-timer.C:
		err := fmt.Errorf("no membership handshake from %s within %s", p, s.cfg.HandshakeTimeout)
		s.mu.Lock()
		h := s.host
		s.mu.Unlock()
		if h != nil && h.Network().Connectedness(p) != network.Connected {
			// It left before finishing; nothing to block.
			s.resolve(st, governance.Member{}, err)
			return
		}
		s.refuseSlow(p, st, err)
	}
}

// initiate runs the handshake as the dialing side.
func (s *Service) initiate(c network.Conn, st *peerState) {
	p := c.RemotePeer()
	m, err := s.handshake(c)
	switch {
	case err == nil:
		if s.resolve(st, m, nil) {
			s.accepted(m)
		}
	case errors.Is(err, errTransport) && c.IsClosed():
		s.interrupted(p, st, err)
	case errors.Is(err, ErrRefusedByPeer):
		// The fault may be ours (an expired certificate, say): do not block
		// the peer, but do not keep a connection that can carry nothing.
		s.resolve(st, governance.Member{}, err)
		s.log.Error("a peer refused this node's certificate", "peer", p, "org", governance.UnverifiedOrg, "reason", err)
		_ = c.Close()
	case errors.Is(err, errTransport):
		s.refuseSlow(p, st, err)
	default:
		s.refuse(p, st, err)
	}
}

func (s *Service) handshake(c network.Conn) (governance.Member, error) {
	p := c.RemotePeer()
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.HandshakeTimeout)
	defer cancel()
	// The stream is opened on the connection itself: host.NewStream would
	// wait for identify, which waits for this handshake.
	str, err := c.NewStream(ctx)
	if err != nil {
		return governance.Member{}, fmt.Errorf("%w: open membership stream to %s: %w", errTransport, p, err)
	}
	deadline, _ := ctx.Deadline()
	_ = str.SetDeadline(deadline)
	if err := str.SetProtocol(protocols.Membership); err != nil {
		str.Reset()
		return governance.Member{}, fmt.Errorf("membership stream to %s: %w", p, err)
	}
	if err := msmux.SelectProtoOrFail(protocols.Membership, str); err != nil {
		str.Reset()
		return governance.Member{}, fmt.Errorf("%w: peer %s does not speak %s: %w", errTransport, p, protocols.Membership, err)
	}
	if err := protocols.WriteMsg(str, s.hello()); err != nil {
		str.Reset()
		return governance.Member{}, fmt.Errorf("%w: send certificate chain to %s: %w", errTransport, p, err)
	}
	_ = str.CloseWrite()
	var reply pb.HelloReply
	if err := protocols.ReadMsg(str, &reply, protocols.MaxHelloSize); err != nil {
		str.Reset()
		return governance.Member{}, fmt.Errorf("%w: membership reply from %s: %w", errTransport, p, err)
	}
	_ = str.Close()
	if reply.Error != "" {
		return governance.Member{}, fmt.Errorf("%w: %s", ErrRefusedByPeer, reply.Error)
	}
	if reply.Hello == nil {
		return governance.Member{}, fmt.Errorf("membership reply from %s carries neither a certificate chain nor an error", p)
	}
	return s.check(c, reply.Hello)
}

// errTransport marks a handshake that failed in transit rather than on
// the peer's credentials.
var errTransport = errors.New("membership handshake interrupted")

// interrupted records a handshake cut short by the connection closing (a
// peer shutting down or restarting, a simultaneous dial's duplicate): the
// peer is forgotten, not blocked, so it can come back at once.
func (s *Service) interrupted(p peer.ID, st *peerState, err error) {
	s.resolve(st, governance.Member{}, err)
	s.metrics.handshakes.WithLabelValues("interrupted").Inc()
	s.log.Info("membership handshake interrupted: connection closed", "peer", p, "org", governance.UnverifiedOrg, "error", err)
}

// handleStream runs the handshake as the listening side.
func (s *Service) handleStream(str network.Stream) {
	c := str.Conn()
	p := c.RemotePeer()
	_ = str.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	s.mu.Lock()
	st := s.stateLocked(p)
	s.mu.Unlock()

	var hello pb.Hello
	if err := protocols.ReadMsg(str, &hello, protocols.MaxHelloSize); err != nil {
		str.Reset()
		err = fmt.Errorf("membership handshake from %s: %w", p, err)
		switch {
		case c.IsClosed():
			s.interrupted(p, st, err)
		case errors.Is(err, os.ErrDeadlineExceeded):
			s.refuseSlow(p, st, err)
		default:
			s.refuse(p, st, err)
		}
		return
	}
	m, err := s.check(c, &hello)
	if err != nil {
		// Tell the peer why, so its operator can act, and give the answer a
		// moment to arrive before the connection goes.
		_ = protocols.WriteMsg(str, &pb.HelloReply{Error: err.Error()})
		_ = str.Close()
		s.refuseAfter(p, st, err, min(time.Second, s.cfg.HandshakeTimeout))
		return
	}
	// Record the verdict before answering: once the dialer reads the answer
	// it opens streams that must find this side ready.
	if s.resolve(st, m, nil) {
		s.accepted(m)
	} else if !st.verified() {
		// A verdict against this peer raced ahead (deadline); keep it.
		str.Reset()
		return
	}
	if err := protocols.WriteMsg(str, &pb.HelloReply{Hello: s.hello()}); err != nil {
		str.Reset()
		return
	}
	_ = str.Close()
}

// check verifies a peer's Hello: network, revocation lists, chain and key.
func (s *Service) check(c network.Conn, h *pb.Hello) (governance.Member, error) {
	if h.Network != s.cfg.Network {
		return governance.Member{}, fmt.Errorf("%w: peer is on network %q, this node on %q", ErrWrongNetwork, h.Network, s.cfg.Network)
	}
	if len(h.Crls) > protocols.MaxCRLsPerHello {
		return governance.Member{}, fmt.Errorf("hello carries %d revocation lists, at most %d are allowed", len(h.Crls), protocols.MaxCRLsPerHello)
	}
	// Revocation lists first, so that a list that revokes the sender counts.
	for _, crl := range h.Crls {
		if _, err := s.ApplyCRL(crl.Der, crl.IssuerChain); err != nil {
			s.log.Debug("ignored a revocation list from a peer", "peer", c.RemotePeer(), "org", governance.UnverifiedOrg, "reason", err)
		}
	}
	key, err := remoteKey(c)
	if err != nil {
		return governance.Member{}, err
	}
	m, err := s.cfg.Trust.VerifyPeer(h.Chain, key, s.cfg.Now())
	if err != nil {
		return governance.Member{}, fmt.Errorf("certificate chain of %s: %w", c.RemotePeer(), err)
	}
	return m, nil
}

func (s *Service) accepted(m governance.Member) {
	s.metrics.handshakes.WithLabelValues("verified").Inc()
	s.log.Info("member verified", "peer", m.PeerID, "org", m.OrgID, "role", m.Role)
}

// hello is this node's side of the handshake.
func (s *Service) hello() *pb.Hello {
	return &pb.Hello{Network: s.cfg.Network, Chain: s.cfg.Chain, Crls: s.CRLs()}
}
