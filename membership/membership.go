// Package membership keeps a libp2p host members-only. A peer proves
// membership by presenting a certificate chain to the genesis founding roots
// over /finp2p/membership/1.0.0; until it has, every other protocol, identify,
// kad-dht and gossipsub included, refuses it in both directions.
//
// Enforcement sits where every stream passes: the host asks the resource
// manager to attach each negotiated stream to its protocol (SetProtocol) before
// any handler runs or any outbound stream is used, and this package wraps the
// resource manager to refuse that for unverified peers. A connection gater
// keeps blocked and revoked peers from connecting at all.
package membership

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/protocols"
)

// Errors a caller can test for with errors.Is.
var (
	// ErrNotVerified refuses a stream to or from a peer that has not proved membership.
	ErrNotVerified = errors.New("peer has not proved membership")
	// ErrBlocked refuses a peer that failed the handshake or was revoked.
	ErrBlocked = errors.New("peer is blocked")
	// ErrWrongNetwork refuses a peer whose genesis names another network.
	ErrWrongNetwork = errors.New("peer belongs to another network")
	// ErrRefusedByPeer means the remote peer did not accept this node's certificate.
	ErrRefusedByPeer = errors.New("peer refused this node's certificate")
)

// Config is what a Service needs. Network, Trust and Chain are required.
type Config struct {
	// Network is the genesis network name.
	Network string
	// Trust verifies chains to the founding roots and holds revocation lists.
	Trust *governance.TrustStore
	// Chain is this node's certificate chain, DER, leaf first.
	Chain [][]byte
	// Datastore keeps revocation lists and revoked peers across restarts.
	// The caller namespaces it. Nil keeps them in memory only.
	Datastore datastore.Batching
	// HandshakeTimeout bounds a handshake; a peer that has not proved
	// membership by then is disconnected. Default 10s.
	HandshakeTimeout time.Duration
	// BlockDuration is how long a peer whose credentials failed the
	// handshake stays blocked; one that only ran out of time (or whose
	// handshake broke in transit) is blocked for at most 30s, as it may be
	// a member slowed by load. Revoked peers stay blocked for good.
	// Default 10m.
	BlockDuration time.Duration
	// SweepInterval is how often connected members are checked for expiry.
	// Default 30s.
	SweepInterval time.Duration
	// Logger receives one line per refused peer. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the membership metrics. Nil registers none.
	Registerer prometheus.Registerer
	// Now is the clock, for tests. Default time.Now.
	Now func() time.Time
}

// Service verifies peers and enforces the verdict. Create it with New, load
// its persisted state with Start before the host listens, then Attach it to
// the host built with its ResourceManager and ConnectionGater.
type Service struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	host    host.Host
	peers   map[peer.ID]*peerState
	blocked map[peer.ID]block
}

// peerState is the verdict on one peer, shared by everyone waiting for it.
type peerState struct {
	done        chan struct{} // closed once resolved
	resolved    bool
	member      governance.Member
	err         error
	handshaking bool // an outbound handshake is running
	watched     bool // a watchdog enforces the handshake deadline
}

func (st *peerState) verified() bool { return st.resolved && st.err == nil }

type block struct {
	reason    string
	until     time.Time // zero for a permanent block
	permanent bool
}

// New checks the configuration and returns an idle Service. It does no I/O.
func New(cfg Config) (*Service, error) {
	if cfg.Network == "" {
		return nil, errors.New("membership: network name is required")
	}
	if cfg.Trust == nil {
		return nil, errors.New("membership: trust store is required")
	}
	if len(cfg.Chain) == 0 {
		return nil, errors.New("membership: this node's certificate chain is required")
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.HandshakeTimeout < 0 {
		return nil, fmt.Errorf("membership: handshake timeout %s is negative", cfg.HandshakeTimeout)
	}
	if cfg.BlockDuration == 0 {
		cfg.BlockDuration = 10 * time.Minute
	}
	if cfg.BlockDuration < 0 {
		return nil, fmt.Errorf("membership: block duration %s is negative", cfg.BlockDuration)
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "membership"),
		peers:   make(map[peer.ID]*peerState),
		blocked: make(map[peer.ID]block),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.metrics = newMetrics(s)
	if cfg.Registerer != nil {
		if err := s.metrics.register(cfg.Registerer); err != nil {
			return nil, fmt.Errorf("membership: register metrics: %w", err)
		}
	}
	return s, nil
}

// Start loads the persisted revocation lists and revoked peers, so that they
// are enforced from the first connection. Call it before the host listens.
func (s *Service) Start(ctx context.Context) error {
	return s.load(ctx)
}

// Attach registers the handshake handler and connection notifications on h
// and starts the periodic expiry check. h must have been built with this
// Service's ResourceManager and ConnectionGater.
func (s *Service) Attach(h host.Host) {
	s.mu.Lock()
	s.host = h
	s.mu.Unlock()
	h.SetStreamHandler(protocols.Membership, s.handleStream)
	h.Network().Notify(&network.NotifyBundle{
		ConnectedF:    s.connected,
		DisconnectedF: s.disconnected,
	})
	// Connections made before Attach (none in normal use) get checked too.
	for _, c := range h.Network().Conns() {
		s.connected(h.Network(), c)
	}
	s.wg.Add(1)
	go s.sweepLoop()
}

// Close stops the background work. The host is closed by its owner.
func (s *Service) Close() error {
	s.cancel()
	s.mu.Lock()
	if s.host != nil {
		s.host.RemoveStreamHandler(protocols.Membership)
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Verified returns the member a peer proved to be, if it has.
func (s *Service) Verified(p peer.ID) (governance.Member, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.peers[p]; ok && st.verified() {
		return st.member, true
	}
	return governance.Member{}, false
}

// Members lists the verified members this node is connected to.
func (s *Service) Members() []governance.Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []governance.Member
	for p, st := range s.peers {
		if st.verified() && s.host != nil && s.host.Network().Connectedness(p) == network.Connected {
			out = append(out, st.member)
		}
	}
	return out
}

// WaitVerified waits until p has proved membership, failed to, or ctx ends.
func (s *Service) WaitVerified(ctx context.Context, p peer.ID) (governance.Member, error) {
	for {
		s.mu.Lock()
		if b, ok := s.blockedLocked(p); ok {
			s.mu.Unlock()
			return governance.Member{}, fmt.Errorf("peer %s: %w: %s", p, ErrBlocked, b.reason)
		}
		st := s.stateLocked(p)
		h := s.host
		s.mu.Unlock()
		// With no connection left, no handshake will resolve a fresh state.
		if h != nil && h.Network().Connectedness(p) != network.Connected && !isDone(st) {
			return governance.Member{}, fmt.Errorf("peer %s: %w: disconnected before proving membership", p, ErrNotVerified)
		}
		select {
		case <-st.done:
			if st.err != nil {
				return governance.Member{}, st.err
			}
			// A verdict can be withdrawn (revocation, disconnection) right
			// after it was given; report only one that still stands.
			if m, ok := s.Verified(p); ok {
				return m, nil
			}
		case <-ctx.Done():
			return governance.Member{}, fmt.Errorf("waiting for peer %s to prove membership: %w", p, ctx.Err())
		}
	}
}

func isDone(st *peerState) bool {
	select {
	case <-st.done:
		return true
	default:
		return false
	}
}

// Blocked reports whether p is blocked, and why.
func (s *Service) Blocked(p peer.ID) (reason string, blocked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blockedLocked(p)
	return b.reason, ok
}

// stateLocked returns p's current state, starting a fresh one when there is
// none or the last attempt failed. s.mu must be held.
func (s *Service) stateLocked(p peer.ID) *peerState {
	st, ok := s.peers[p]
	if !ok || (st.resolved && st.err != nil) {
		st = &peerState{done: make(chan struct{})}
		s.peers[p] = st
	}
	return st
}

// resolve records the verdict on st. The first verdict wins.
func (s *Service) resolve(st *peerState, m governance.Member, err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.resolved {
		return false
	}
	st.resolved, st.member, st.err = true, m, err
	close(st.done)
	return true
}

// blockedLocked reports an unexpired block. s.mu must be held.
func (s *Service) blockedLocked(p peer.ID) (block, bool) {
	b, ok := s.blocked[p]
	if !ok {
		return block{}, false
	}
	if !b.permanent && !s.cfg.Now().Before(b.until) {
		delete(s.blocked, p)
		return block{}, false
	}
	return b, true
}

func (s *Service) isBlocked(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.blockedLocked(p)
	return ok
}

// refuse resolves st with err, blocks p for the configured time, closes every
// connection to it and says why in the log.
func (s *Service) refuse(p peer.ID, st *peerState, err error) {
	s.refuseAfter(p, st, err, 0)
}

// slowHandshakeBlock bounds the block of a peer that did not finish the
// handshake in time or whose handshake broke in transit: that peer proved
// nothing, but it may be a member slowed by load rather than an intruder,
// so it may try again soon. A peer whose credentials fail is blocked for
// the whole BlockDuration.
const slowHandshakeBlock = 30 * time.Second

// refuseSlow is refuse for a handshake that timed out or broke in transit:
// the peer is blocked for at most slowHandshakeBlock.
func (s *Service) refuseSlow(p peer.ID, st *peerState, err error) {
	s.block(p, st, err, 0, min(slowHandshakeBlock, s.cfg.BlockDuration))
}

// refuseAfter is refuse that keeps the connections open for grace, so that
// an answer already written (the reason for the refusal) can reach the peer.
// The block applies at once: nothing but that answer gets through.
func (s *Service) refuseAfter(p peer.ID, st *peerState, err error, grace time.Duration) {
	s.block(p, st, err, grace, s.cfg.BlockDuration)
}

func (s *Service) block(p peer.ID, st *peerState, err error, grace, d time.Duration) {
	s.resolve(st, governance.Member{}, err)
	s.mu.Lock()
	if b, ok := s.blocked[p]; !ok || !b.permanent {
		s.blocked[p] = block{reason: err.Error(), until: s.cfg.Now().Add(d)}
	}
	h := s.host
	s.mu.Unlock()
	s.metrics.handshakes.WithLabelValues("refused").Inc()
	s.log.Warn("peer refused: membership not proved; disconnected and blocked",
		"peer", p, "org", governance.UnverifiedOrg, "blocked_for", d, "reason", err)
	if h == nil {
		return
	}
	if grace <= 0 {
		_ = h.Network().ClosePeer(p)
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.ctx.Done():
		}
		_ = h.Network().ClosePeer(p)
	}()
}

// remoteKey returns the Ed25519 key the secure channel authenticated.
func remoteKey(c network.Conn) (ed25519.PublicKey, error) {
	pk := c.RemotePublicKey()
	if pk == nil {
		return nil, errors.New("connection carries no remote public key")
	}
	raw, err := pk.Raw()
	if err != nil {
		return nil, fmt.Errorf("read remote public key: %w", err)
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("remote key is %s; FinP2P members use Ed25519 keys", pk.Type())
	}
	return ed25519.PublicKey(raw), nil
}
