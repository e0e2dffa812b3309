package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-datastore/namespace"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio/pbio"

	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/ledger"
	"github.com/finp2p/go-finp2p/ledger/embedded"
	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/protocols/pb"
)

// Replication: a primary node serves its embedded ledger's journal on
// /finp2p/ledger/replicate/1.0.0 to the orgs its config lets follow, entry
// by entry, each signed with the node's key, and keeps the stream open for
// new entries. A follower keeps a read-only replica per followed ledger,
// checks every entry's signature and hash chain (embedded.Ledger.Apply),
// and when the stream breaks asks again from its own version + 1, which is
// how it catches up on what it missed.
const (
	replicateBatch     = 256
	replicateKeepAlive = 5 * time.Second
	replicateWrite     = 10 * time.Second
	maxReplicateEntry  = 64 << 10
	// replicateRetryMax bounds the wait between attempts to reach a
	// ledger's primary.
	replicateRetryMax = 10 * time.Second
)

// journal is what a primary needs of its ledger to serve followers; the
// embedded ledger has it.
type journal interface {
	Journal(ctx context.Context, from uint64, limit int) ([]ledger.Transaction, error)
}

// signal wakes every waiter when fired.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }

// wait returns a channel closed at the next fire.
func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

func (s *signal) fire() {
	s.mu.Lock()
	close(s.ch)
	s.ch = make(chan struct{})
	s.mu.Unlock()
}

// signalingLedger fires changed after every committed mutation, so the
// replication streams send new entries at once.
type signalingLedger struct {
	ledger.Ledger
	changed *signal
}

func (l signalingLedger) done(tx ledger.Transaction, err error) (ledger.Transaction, error) {
	if err == nil {
		l.changed.fire()
	}
	return tx, err
}

func (l signalingLedger) CreateAsset(ctx context.Context, r ledger.CreateAsset) (ledger.Transaction, error) {
	return l.done(l.Ledger.CreateAsset(ctx, r))
}
func (l signalingLedger) Issue(ctx context.Context, r ledger.Issue) (ledger.Transaction, error) {
	return l.done(l.Ledger.Issue(ctx, r))
}
func (l signalingLedger) Transfer(ctx context.Context, r ledger.Transfer) (ledger.Transaction, error) {
	return l.done(l.Ledger.Transfer(ctx, r))
}
func (l signalingLedger) Redeem(ctx context.Context, r ledger.Redeem) (ledger.Transaction, error) {
	return l.done(l.Ledger.Redeem(ctx, r))
}
func (l signalingLedger) Hold(ctx context.Context, r ledger.Hold) (ledger.Transaction, error) {
	return l.done(l.Ledger.Hold(ctx, r))
}
func (l signalingLedger) Release(ctx context.Context, r ledger.Release) (ledger.Transaction, error) {
	return l.done(l.Ledger.Release(ctx, r))
}
func (l signalingLedger) Rollback(ctx context.Context, r ledger.Rollback) (ledger.Transaction, error) {
	return l.done(l.Ledger.Rollback(ctx, r))
}

// Journal serves the underlying ledger's journal, when it has one.
func (l signalingLedger) Journal(ctx context.Context, from uint64, limit int) ([]ledger.Transaction, error) {
	j, ok := l.Ledger.(journal)
	if !ok {
		return nil, fmt.Errorf("ledger %s keeps no journal this node can serve", l.ID())
	}
	return j.Journal(ctx, from, limit)
}

// entrySigned is what a primary signs for each journal entry: the hash
// chains the entry to every earlier one.
func entrySigned(ledgerID string, version uint64, hash string) []byte {
	return fmt.Appendf(nil, "finp2p ledger entry\x00%s\x00%d\x00%s", ledgerID, version, hash)
}

// ledgerOrg is the org a ledger id names before its first "/".
func ledgerOrg(id string) string {
	org, _, _ := strings.Cut(id, "/")
	return org
}

// replicas runs the follower side for every followed ledger and the
// primary side for this node's own ledger.
type replicas struct {
	n       *Node
	changed *signal
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	// replicas, one per followed ledger, is filled by open and not
	// changed after.
	replicas map[string]*replica
}

// replica is one followed ledger.
type replica struct {
	id      string
	l       *embedded.Ledger
	mu      sync.Mutex
	primary peer.ID // the primary streaming to it now, "" if none
	head    uint64  // the primary's version, as last heard
	lastErr string
	paused  bool
	stop    context.CancelFunc // ends the current stream
	resume  *signal
}

func newReplicas(n *Node, changed *signal) *replicas {
	return &replicas{n: n, changed: changed, replicas: map[string]*replica{}}
}

// open opens a read-only replica for every followed ledger.
func (r *replicas) open(ctx context.Context) error {
	for _, id := range r.n.cfg.FollowLedgers {
		if r.n.ledger != nil && id == r.n.ledger.ID() {
			return fmt.Errorf("follow ledger %s: it is this node's own ledger", id)
		}
		ds := namespace.Wrap(r.n.ds, replicaPrefix(id))
		l, err := embedded.Open(ctx, ds, id, embedded.WithReadOnly())
		if err != nil {
			return fmt.Errorf("replica of ledger %s: %w", id, err)
		}
		r.replicas[id] = &replica{id: id, l: l, resume: newSignal()}
	}
	return nil
}

func (r *replicas) start() {
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.n.host.SetStreamHandler(protocols.LedgerReplicate, r.serve)
	for _, rp := range r.replicas {
		r.wg.Add(1)
		go r.follow(rp)
	}
}

func (r *replicas) close() error {
	r.n.host.RemoveStreamHandler(protocols.LedgerReplicate)
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	return nil
}

// reader returns a ledger this node can read: its own or a replica.
func (r *replicas) reader(id string) (ledger.Ledger, bool) {
	if r.n.ledger != nil && r.n.ledger.ID() == id {
		return r.n.ledger, true
	}
	rp, ok := r.replicas[id]
	if !ok {
		return nil, false
	}
	return rp.l, true
}

// serve streams this node's journal to a follower its config allows.
func (r *replicas) serve(s network.Stream) {
	n := r.n
	remote := s.Conn().RemotePeer()
	m, ok := n.members.Verified(remote)
	if !ok {
		_ = s.Reset()
		return
	}
	_ = s.SetDeadline(time.Now().Add(replicateWrite))
	var req pb.ReplicateRequest
	if err := protocols.ReadMsg(s, &req, 1024); err != nil {
		n.log.Info("replication request unreadable", "peer", remote, "org", m.OrgID, "error", err)
		_ = s.Reset()
		return
	}
	refuse := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		n.log.Info("replication refused", "peer", remote, "org", m.OrgID, "ledger", req.Ledger, "reason", msg)
		_ = protocols.WriteMsg(s, &pb.ReplicateEntry{Error: msg})
		_ = s.Close()
	}
	j, isJournal := n.ledger.(journal)
	switch {
	case n.ledger == nil || req.Ledger != n.ledger.ID():
		refuse("this node is not the primary of ledger %q", req.Ledger)
		return
	case !isJournal:
		refuse("ledger %s keeps no journal to replicate", req.Ledger)
		return
	case m.OrgID != n.self.OrgID && !slices.Contains(n.cfg.LedgerFollowers, "*") && !slices.Contains(n.cfg.LedgerFollowers, m.OrgID):
		refuse("org %s may not follow ledger %s", m.OrgID, req.Ledger)
		return
	}
	n.log.Info("follower connected", "peer", remote, "org", m.OrgID, "ledger", req.Ledger, "from", req.From)
	_ = s.SetReadDeadline(time.Time{})
	// The stream has no reader on this side from here; a follower that
	// goes away shows as a failed write (keep-alives make one happen).
	go func() { _, _ = s.Read(make([]byte, 1)); _ = s.Reset() }()
	from := max(req.From, 1)
	for {
		wake := r.changed.wait()
		txs, err := j.Journal(r.ctx, from, replicateBatch)
		if err != nil {
			n.log.Warn("replication: read journal", "peer", remote, "org", m.OrgID, "ledger", req.Ledger, "from", from, "error", err)
			_ = s.Reset()
			return
		}
		head, _ := n.ledger.Version(r.ctx)
		for _, tx := range txs {
			b, err := json.Marshal(tx)
			if err != nil {
				_ = s.Reset()
				return
			}
			sig, err := n.disc.priv.Sign(entrySigned(tx.LedgerID, tx.Version, tx.Hash))
			if err != nil {
				_ = s.Reset()
				return
			}
			_ = s.SetWriteDeadline(time.Now().Add(replicateWrite))
			if err := protocols.WriteMsg(s, &pb.ReplicateEntry{Transaction: b, Signature: sig, Head: head}); err != nil {
				_ = s.Reset()
				return
			}
			from = tx.Version + 1
		}
		if len(txs) == replicateBatch {
			continue
		}
		select {
		case <-wake:
		case <-time.After(replicateKeepAlive):
			_ = s.SetWriteDeadline(time.Now().Add(replicateWrite))
			if err := protocols.WriteMsg(s, &pb.ReplicateEntry{Head: head}); err != nil {
				_ = s.Reset()
				return
			}
		case <-r.ctx.Done():
			_ = s.Reset()
			return
		}
	}
}

// follow keeps replica rp fed: it finds the ledger's primary, streams from
// the replica's version + 1, and after a break tries again.
func (r *replicas) follow(rp *replica) {
	defer r.wg.Done()
	wait := 200 * time.Millisecond
	for r.ctx.Err() == nil {
		rp.mu.Lock()
		paused, resume := rp.paused, rp.resume.wait()
		rp.mu.Unlock()
		if paused {
			select {
			case <-resume:
				continue
			case <-r.ctx.Done():
				return
			}
		}
		applied, err := r.stream(rp)
		if applied > 0 {
			wait = 200 * time.Millisecond
		}
		if err != nil && r.ctx.Err() == nil {
			rp.mu.Lock()
			rp.lastErr = err.Error()
			rp.mu.Unlock()
			r.n.log.Debug("replication interrupted", "ledger", rp.id, "error", err, "retry_in", wait)
		}
		select {
		case <-time.After(wait):
		case <-resume:
		case <-r.ctx.Done():
			return
		}
		wait = min(2*wait, replicateRetryMax)
	}
}

// primaries are the nodes that advertise they execute ledger id and are
// of the org the id names.
func (r *replicas) primaries(ctx context.Context, id string) ([]discovery.NodeInfo, error) {
	res, err := r.n.Resolve(ctx, ledgerOrg(id))
	if err != nil {
		return nil, err
	}
	var out []discovery.NodeInfo
	for _, nd := range res.Nodes {
		if nd.Executes == id && nd.Peer != r.n.host.ID() {
			out = append(out, nd)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no node of org %s advertises ledger %s as its own", res.Org, id)
	}
	return out, nil
}

// stream runs one replication stream from a primary of rp's ledger until
// it breaks, and returns how many entries it applied.
func (r *replicas) stream(rp *replica) (int, error) {
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	rp.mu.Lock()
	rp.stop = cancel
	rp.mu.Unlock()
	defer func() {
		rp.mu.Lock()
		rp.primary, rp.stop = "", nil
		rp.mu.Unlock()
	}()

	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	prims, err := r.primaries(rctx, rp.id)
	rcancel()
	if err != nil {
		return 0, fmt.Errorf("find primary of %s: %w", rp.id, err)
	}
	var errs []string
	for _, nd := range prims {
		applied, err := r.streamFrom(ctx, rp, addrInfo(nd.Peer, nd.Addrs))
		if applied > 0 || err == nil || ctx.Err() != nil {
			return applied, err
		}
		errs = append(errs, fmt.Sprintf("%s: %v", nd.Peer, err))
	}
	return 0, errors.New(strings.Join(errs, "; "))
}

func (r *replicas) streamFrom(ctx context.Context, rp *replica, ai peer.AddrInfo) (int, error) {
	n := r.n
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	m, err := n.Connect(cctx, ai)
	cancel()
	if err != nil {
		return 0, err
	}
	if m.OrgID != ledgerOrg(rp.id) {
		return 0, fmt.Errorf("peer %s is of org %s, not of the ledger's org %s", ai.ID, m.OrgID, ledgerOrg(rp.id))
	}
	pub := n.host.Peerstore().PubKey(ai.ID)
	if pub == nil {
		return 0, fmt.Errorf("no public key of %s", ai.ID)
	}
	s, err := n.host.NewStream(ctx, ai.ID, protocols.LedgerReplicate)
	if err != nil {
		return 0, err
	}
	defer s.Reset()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	from, _ := rp.l.Head()
	_ = s.SetDeadline(time.Now().Add(replicateWrite))
	if err := protocols.WriteMsg(s, &pb.ReplicateRequest{Ledger: rp.id, From: from + 1}); err != nil {
		return 0, err
	}
	rp.mu.Lock()
	rp.primary = ai.ID
	rp.mu.Unlock()
	applied := 0
	// One reader for the whole stream: it buffers, so a reader per message
	// would lose what it read ahead.
	rd := pbio.NewDelimitedReader(s, maxReplicateEntry)
	for {
		_ = s.SetReadDeadline(time.Now().Add(3 * replicateKeepAlive))
		var e pb.ReplicateEntry
		if err := rd.ReadMsg(&e); err != nil {
			return applied, fmt.Errorf("read from primary %s: %w", ai.ID, err)
		}
		observeRead(s, &e)
		if e.Error != "" {
			return applied, fmt.Errorf("primary %s refused: %s", ai.ID, e.Error)
		}
		rp.mu.Lock()
		rp.head, rp.lastErr = max(rp.head, e.Head), ""
		rp.mu.Unlock()
		n.metrics.replicaHeard(rp)
		if len(e.Transaction) == 0 {
			continue
		}
		err := r.apply(ctx, rp, pub, &e)
		n.metrics.replicated(rp, err)
		if err != nil {
			n.log.Warn("replicated entry refused", "ledger", rp.id, "peer", ai.ID, "org", m.OrgID, "error", err)
			return applied, err
		}
		applied++
	}
}

// apply checks one entry's signature and applies it to the replica, which
// checks its hash chain and re-executes it.
func (r *replicas) apply(ctx context.Context, rp *replica, pub crypto.PubKey, e *pb.ReplicateEntry) error {
	var tx ledger.Transaction
	if err := json.Unmarshal(e.Transaction, &tx); err != nil {
		return fmt.Errorf("entry is not a transaction: %w", err)
	}
	ok, err := pub.Verify(entrySigned(tx.LedgerID, tx.Version, tx.Hash), e.Signature)
	if err != nil || !ok {
		return fmt.Errorf("entry at version %d: signature does not verify with the primary's key", tx.Version)
	}
	if err := rp.l.Apply(ctx, tx); err != nil {
		return fmt.Errorf("apply version %d: %w", tx.Version, err)
	}
	return nil
}

// pause stops replicating ledger id until resume; for tests.
func (r *replicas) pause(id string, paused bool) error {
	rp, ok := r.replicas[id]
	if !ok {
		return fmt.Errorf("not following ledger %s", id)
	}
	rp.mu.Lock()
	rp.paused = paused
	stop := rp.stop
	rp.mu.Unlock()
	if paused && stop != nil {
		stop()
	}
	if !paused {
		rp.resume.fire()
	}
	return nil
}

// LedgerInfo describes a ledger this node can read.
type LedgerInfo struct {
	// ID is the ledger id.
	ID string `json:"id"`
	// Role is "primary" for the ledger the node executes its org's asset
	// transactions on, "follower" for a replica of another org's ledger,
	// "standby" for a cluster's standby node's replica of its org's.
	Role string `json:"role"`
	// Version is the ledger version this node has.
	Version uint64 `json:"version"`
	// PrimaryVersion is, for a replica, the primary's version as last heard.
	PrimaryVersion uint64 `json:"primary_version,omitempty"`
	// Primary is, for a replica, the primary node streaming to it now.
	Primary peer.ID `json:"primary,omitempty"`
	// Error is, for a replica, why the last replication stream ended.
	Error string `json:"error,omitempty"`
}

// Ledgers lists the ledgers this node can read: its own, then the replicas
// of the ledgers it follows.
func (n *Node) Ledgers(ctx context.Context) ([]LedgerInfo, error) {
	if n.repl == nil {
		return nil, errors.New("ledgers: the node is not started")
	}
	var out []LedgerInfo
	if n.ledger != nil {
		v, err := n.ledger.Version(ctx)
		if err != nil {
			return nil, fmt.Errorf("ledger %s: %w", n.ledger.ID(), err)
		}
		out = append(out, LedgerInfo{ID: n.ledger.ID(), Role: "primary", Version: v})
	}
	for _, id := range slices.Sorted(maps.Keys(n.repl.replicas)) {
		rp := n.repl.replicas[id]
		v, _ := rp.l.Head()
		role := "follower"
		if id == n.standbyOf {
			role = "standby"
		}
		rp.mu.Lock()
		out = append(out, LedgerInfo{ID: id, Role: role, Version: v, PrimaryVersion: rp.head, Primary: rp.primary, Error: rp.lastErr})
		rp.mu.Unlock()
	}
	return out, nil
}

// readableLedgers are the ids of the ledgers this node reads: the one it
// executes on first, then the ones it follows.
func (n *Node) readableLedgers() []string {
	var out []string
	if n.ledger != nil {
		out = append(out, n.ledger.ID())
	}
	return appendNew(out, n.cfg.FollowLedgers...)
}

// executedLedger is the id of the ledger this node executes, "" if none.
func (n *Node) executedLedger() string {
	if n.ledger == nil {
		return ""
	}
	return n.ledger.ID()
}

// advertisedLedgers are the ledgers the node says it can reach: those it
// reads, then the configured ones.
func (n *Node) advertisedLedgers() []string {
	return appendNew(n.readableLedgers(), n.cfg.Ledgers...)
}

// appendNew appends the items not in list yet.
func appendNew(list []string, items ...string) []string {
	for _, s := range items {
		if !slices.Contains(list, s) {
			list = append(list, s)
		}
	}
	return list
}
