package node

import (
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-datastore"
	kb "github.com/libp2p/go-libp2p-kbucket"
	gossip "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/finp2p/go-finp2p/broadcast"
	bpb "github.com/finp2p/go-finp2p/broadcast/pb"
	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/pubsub"
)

// Defaults and bounds of broadcast requests.
const (
	// DefaultBroadcastTimeout is how long a broadcast waits for its quorum
	// when the caller sets no timeout.
	DefaultBroadcastTimeout = 5 * time.Second
	// MaxBroadcastTimeout bounds a broadcast's deadline.
	MaxBroadcastTimeout = 2 * time.Minute
	// maxClosest is how many DHT neighbours a closest-scope request goes to.
	maxClosest = 20
	// reachWait bounds how long the origin waits for the scope's nodes to
	// show up as peers of a topic it has just joined.
	reachWait = 2 * time.Second
	// maxSeenRequests bounds the request ids a node remembers to answer
	// each request once.
	maxSeenRequests = 1 << 16
)

var encryptionKeyKey = datastore.NewKey("/broadcast/encryption-key")

// BroadcastOptions tune a broadcast.
type BroadcastOptions struct {
	// Quorum is the number of valid answers to wait for; 0 means every
	// node of the scope for Broadcast, a majority of the ledger's nodes
	// for BalanceOf and ValidateReceipt.
	Quorum int
	// Timeout is how long to wait for the quorum; DefaultBroadcastTimeout
	// when 0.
	Timeout time.Duration
	// Consistency resolves disagreeing answers; newest-version when empty.
	Consistency broadcast.Consistency
	// Encrypt seals the payload to the scope's nodes (HPKE), so nodes that
	// only relay it learn nothing. BalanceOf and ValidateReceipt always
	// encrypt.
	Encrypt bool
	// Ledger, for BalanceOf, is the ledger to ask; default the ledger the
	// asset's org advertises as its own.
	Ledger string
}

// BroadcastRequest is what Broadcast sends.
type BroadcastRequest struct {
	// Kind is what is asked: "balance", "receipt-validation", or a kind
	// registered with HandleBroadcast.
	Kind string
	// Scope is who is asked.
	Scope broadcast.Scope
	// Payload is the kind's question.
	Payload []byte
	BroadcastOptions
}

// BroadcastResult is what a broadcast came to: the resolved Result and what
// was asked of whom.
type BroadcastResult struct {
	broadcast.Result
	// ID is the request id.
	ID          string
	Kind        string
	Scope       broadcast.Scope
	Quorum      int
	Consistency broadcast.Consistency
	Encrypted   bool
	// Asked are the nodes the request was addressed to.
	Asked []peer.ID
	// NotSent are the nodes the request could not be handed to, and why
	// (direct scopes only; on gossip a lost request shows in Failed).
	NotSent map[peer.ID]string
	// Took is the time from sending to the result.
	Took time.Duration
}

// BroadcastHandler answers one kind of broadcast request on a node in its
// scope: the answer and the ledger version it was read at, or an error
// that the response carries as "cannot answer".
type BroadcastHandler func(ctx context.Context, req *broadcast.VerifiedRequest, payload []byte) (answer []byte, ledgerVersion uint64, err error)

// broadcasts sends broadcast requests and collects their responses, and
// answers the requests of others.
type broadcasts struct {
	n     *Node
	key   *ecdh.PrivateKey
	reqV  *broadcast.RequestVerifier
	respV *broadcast.ResponseVerifier

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	kinds   map[string]BroadcastHandler
	topics  map[string]*pubsub.Topic
	pending map[string]*pending
	seen    map[string]time.Time // request id → deadline

	unknown atomic.Int64 // responses to requests not pending here

	// testOnSent, when set, sees every request this node sends;
	// testOnDelivered every request gossip delivers to it.
	testOnSent      func(*broadcast.Request)
	testOnDelivered func(*broadcast.VerifiedRequest)
}

type pending struct {
	c    *broadcast.Collector
	wake chan struct{}
}

func newBroadcasts(n *Node) *broadcasts {
	return &broadcasts{
		n:       n,
		reqV:    &broadcast.RequestVerifier{Network: n.genesis.Network, Trust: n.trust, Now: n.cfg.now},
		respV:   &broadcast.ResponseVerifier{Network: n.genesis.Network, Trust: n.trust, Now: n.cfg.now},
		kinds:   map[string]BroadcastHandler{},
		topics:  map[string]*pubsub.Topic{},
		pending: map[string]*pending{},
		seen:    map[string]time.Time{},
	}
}

// open loads the node's X25519 encryption key, creating it on first start.
func (b *broadcasts) open(ctx context.Context) error {
	raw, err := b.n.ds.Get(ctx, encryptionKeyKey)
	switch {
	case errors.Is(err, datastore.ErrNotFound):
		if b.key, err = broadcast.GenerateEncryptionKey(); err != nil {
			return fmt.Errorf("broadcast encryption key: %w", err)
		}
		if err := b.n.ds.Put(ctx, encryptionKeyKey, b.key.Bytes()); err != nil {
			return fmt.Errorf("store broadcast encryption key: %w", err)
		}
		if err := b.n.ds.Sync(ctx, encryptionKeyKey); err != nil {
			return fmt.Errorf("store broadcast encryption key: %w", err)
		}
	case err != nil:
		return fmt.Errorf("read broadcast encryption key: %w", err)
	default:
		if b.key, err = ecdh.X25519().NewPrivateKey(raw); err != nil {
			return fmt.Errorf("broadcast encryption key in the datastore: %w", err)
		}
	}
	return nil
}

// start registers the handlers and joins the topics of the scopes this
// node is in: every member's, the rendezvous cluster's on governance and
// founding nodes, and one per ledger it reads.
func (b *broadcasts) start() error {
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.n.host.SetStreamHandler(protocols.BroadcastRequest, b.handleRequest)
	b.n.host.SetStreamHandler(protocols.BroadcastResponse, b.handleResponse)
	names := []string{protocols.TopicBroadcastAll}
	if isRegistrar(b.n.self) {
		names = append(names, protocols.TopicBroadcastRendezvous)
	}
	for _, l := range b.n.readableLedgers() {
		names = append(names, protocols.TopicBroadcastLedger(l))
	}
	for _, name := range names {
		if _, err := b.topic(name); err != nil {
			return err
		}
	}
	return nil
}

func (b *broadcasts) close() error {
	b.n.host.RemoveStreamHandler(protocols.BroadcastRequest)
	b.n.host.RemoveStreamHandler(protocols.BroadcastResponse)
	if b.cancel != nil {
		b.cancel()
	}
	b.wg.Wait()
	b.mu.Lock()
	topics := b.topics
	b.topics = map[string]*pubsub.Topic{}
	b.mu.Unlock()
	var errs []error
	for _, t := range topics {
		errs = append(errs, t.Close())
	}
	return errors.Join(errs...)
}

// topic returns the joined topic name, joining it first if needed. A node
// outside a topic's scope that joins it to send relays its requests too,
// without being able to read encrypted ones.
func (b *broadcasts) topic(name string) (*pubsub.Topic, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t, ok := b.topics[name]; ok {
		return t, nil
	}
	t, err := b.n.ps.Join(name, b.validate, b.deliver)
	if err != nil {
		return nil, fmt.Errorf("broadcast topic: %w", err)
	}
	b.topics[name] = t
	return t, nil
}

// topicOf is the gossip topic of a scope, "" for the direct scopes.
func topicOf(s broadcast.Scope) string {
	switch s.Kind {
	case broadcast.ScopeAll:
		return protocols.TopicBroadcastAll
	case broadcast.ScopeRendezvous:
		return protocols.TopicBroadcastRendezvous
	case broadcast.ScopeLedger:
		return protocols.TopicBroadcastLedger(s.Ledger)
	}
	return ""
}

// validate checks a request on a broadcast topic before it is delivered
// or relayed: a valid signed request of a member, published by its own
// origin, on its scope's topic.
func (b *broadcasts) validate(_ context.Context, from peer.ID, msg *gossip.Message) gossip.ValidationResult {
	if from == b.n.host.ID() {
		// This node's own request, sealed by send a moment ago: verifying
		// its chain again would only delay it.
		return gossip.ValidationAccept
	}
	vr, err := b.reqV.Open(msg.Data)
	if errors.Is(err, broadcast.ErrExpired) {
		return gossip.ValidationIgnore
	}
	if err != nil {
		b.n.log.Info("broadcast request refused", "peer", from, "org", b.n.peerOrg(from), "topic", msg.GetTopic(), "reason", err)
		return gossip.ValidationReject
	}
	r := vr.Request
	if r.Peer != msg.GetFrom() {
		b.n.log.Info("broadcast request refused", "peer", from, "org", b.n.peerOrg(from), "reason", fmt.Sprintf("request of %s published by %s", r.Peer, msg.GetFrom()))
		return gossip.ValidationReject
	}
	if want := topicOf(r.Scope); want != msg.GetTopic() {
		b.n.log.Info("broadcast request refused", "peer", from, "org", b.n.peerOrg(from), "reason", fmt.Sprintf("%s request on topic %s", r.Scope, msg.GetTopic()))
		return gossip.ValidationReject
	}
	msg.ValidatorData = vr
	return gossip.ValidationAccept
}

func (b *broadcasts) deliver(msg *gossip.Message) {
	vr, ok := msg.ValidatorData.(*broadcast.VerifiedRequest)
	if !ok {
		return
	}
	if b.testOnDelivered != nil {
		b.testOnDelivered(vr)
	}
	b.goAnswer(vr, false)
}

// handleRequest takes a request of a direct scope from its origin.
func (b *broadcasts) handleRequest(s network.Stream) {
	n := b.n
	remote := s.Conn().RemotePeer()
	m, ok := n.members.Verified(remote)
	if !ok {
		_ = s.Reset()
		return
	}
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	var d bpb.Delivery
	if err := protocols.ReadMsg(s, &d, broadcast.MaxRequestSize+1024); err != nil {
		n.log.Info("broadcast request unreadable", "peer", remote, "org", m.OrgID, "error", err)
		_ = s.Reset()
		return
	}
	vr, err := b.reqV.Open(d.Record)
	if err == nil && vr.Request.Peer != remote {
		err = fmt.Errorf("%w: request of %s handed over by %s", broadcast.ErrForged, vr.Request.Peer, remote)
	}
	if err == nil && topicOf(vr.Request.Scope) != "" {
		err = fmt.Errorf("%w: %s requests travel on gossip, not on direct streams", broadcast.ErrBadScope, vr.Request.Scope)
	}
	ack := &bpb.Ack{}
	if err != nil {
		n.log.Info("broadcast request refused", "peer", remote, "org", m.OrgID, "reason", err)
		ack.Error = err.Error()
	}
	if werr := protocols.WriteMsg(s, ack); werr != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
	if err == nil {
		b.goAnswer(vr, true)
	}
}

func (b *broadcasts) goAnswer(vr *broadcast.VerifiedRequest, direct bool) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.answer(vr, direct)
	}()
}

// firstSight records a request id and reports whether it is new.
func (b *broadcasts) firstSight(r *broadcast.Request) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.seen[r.ID]; ok {
		return false
	}
	if len(b.seen) >= maxSeenRequests {
		now := b.n.cfg.now()
		for id, dl := range b.seen {
			if dl.Before(now) {
				delete(b.seen, id)
			}
		}
		if len(b.seen) >= maxSeenRequests {
			return false
		}
	}
	b.seen[r.ID] = r.Deadline
	return true
}

// inScope says whether this node is among those a request asks.
func (b *broadcasts) inScope(r *broadcast.Request, direct bool) bool {
	n := b.n
	switch r.Scope.Kind {
	case broadcast.ScopeAll:
		return true
	case broadcast.ScopeOrgs:
		return slices.Contains(r.Scope.Orgs, n.self.OrgID)
	case broadcast.ScopeLedger:
		_, ok := n.repl.reader(r.Scope.Ledger)
		return ok
	case broadcast.ScopeRendezvous:
		return isRegistrar(n.self)
	case broadcast.ScopeClosest:
		return direct
	}
	return false
}

// answer runs a request this node is in the scope of and sends the signed
// response to its origin.
func (b *broadcasts) answer(vr *broadcast.VerifiedRequest, direct bool) {
	n := b.n
	r := vr.Request
	if r.Peer == n.host.ID() || !b.firstSight(r) {
		return
	}
	if !b.inScope(r, direct) {
		n.log.Debug("broadcast request relayed, not in its scope", "id", r.ID, "scope", r.Scope.String(), "peer", r.Peer, "org", r.OriginOrg)
		return
	}
	ctx, cancel := context.WithDeadline(b.ctx, r.Deadline)
	defer cancel()
	resp := &broadcast.Response{
		Network:      n.genesis.Network,
		RequestID:    r.ID,
		ResponderOrg: n.self.OrgID,
		Chain:        n.disc.chain,
	}
	payload, err := broadcast.DecryptPayload(r, n.host.ID(), b.key)
	var h BroadcastHandler
	if err == nil {
		b.mu.Lock()
		h = b.kinds[r.Kind]
		b.mu.Unlock()
		if h == nil {
			err = fmt.Errorf("this node does not answer %q requests", r.Kind)
		}
	}
	if err == nil {
		resp.Answer, resp.LedgerVersion, err = h(ctx, vr, payload)
	}
	if err != nil {
		n.log.Info("broadcast request not answered", "id", r.ID, "kind", r.Kind, "peer", r.Peer, "org", r.OriginOrg, "reason", err)
		resp.Answer, resp.Error = nil, truncate(err.Error(), broadcast.MaxErrorLength)
	}
	sealed, err := broadcast.SealResponse(resp, n.disc.priv)
	if err != nil {
		n.log.Warn("seal broadcast response", "id", r.ID, "error", err)
		return
	}
	err = b.respond(ctx, vr, sealed)
	b.broadcastAnswered(r.Kind, resp.Error == "", err)
	if err != nil {
		n.log.Info("broadcast response not delivered", "id", r.ID, "peer", r.Peer, "org", r.OriginOrg, "error", err)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// respond hands a sealed response to the request's origin node, which this
// node may not be connected to when the request came over gossip.
func (b *broadcasts) respond(ctx context.Context, vr *broadcast.VerifiedRequest, sealed []byte) error {
	n := b.n
	origin := vr.Request.Peer
	if n.host.Network().Connectedness(origin) != network.Connected {
		ai := peer.AddrInfo{ID: origin, Addrs: n.host.Peerstore().Addrs(origin)}
		if len(ai.Addrs) == 0 {
			if rec, ok := n.disc.cache.Get(origin); ok {
				ai.Addrs = rec.Ad.Addrs
			}
		}
		if len(ai.Addrs) == 0 {
			res, err := n.Resolve(ctx, vr.Request.OriginOrg)
			if err != nil {
				return err
			}
			for _, nd := range res.Nodes {
				if nd.Peer == origin {
					ai = addrInfo(nd.Peer, nd.Addrs)
				}
			}
		}
		if _, err := n.Connect(ctx, ai); err != nil {
			return err
		}
	}
	var ack bpb.Ack
	if err := n.request(ctx, origin, protocols.BroadcastResponse, &bpb.Delivery{Record: sealed}, &ack, 4096); err != nil {
		return err
	}
	if ack.Error != "" {
		return fmt.Errorf("origin refused: %s", ack.Error)
	}
	return nil
}

// handleResponse takes a response to a request this node sent.
func (b *broadcasts) handleResponse(s network.Stream) {
	n := b.n
	remote := s.Conn().RemotePeer()
	m, ok := n.members.Verified(remote)
	if !ok {
		_ = s.Reset()
		return
	}
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	var d bpb.Delivery
	if err := protocols.ReadMsg(s, &d, broadcast.MaxResponseSize+1024); err != nil {
		n.log.Info("broadcast response unreadable", "peer", remote, "org", m.OrgID, "error", err)
		_ = s.Reset()
		return
	}
	ack := &bpb.Ack{}
	id := broadcast.ClaimedRequestID(d.Record)
	b.mu.Lock()
	p := b.pending[id]
	b.mu.Unlock()
	if p == nil {
		b.unknown.Add(1)
		ack.Error = fmt.Sprintf("%v: no broadcast %q is waiting for responses here", broadcast.ErrUnknownRequest, id)
		n.log.Info("broadcast response dropped", "peer", remote, "org", m.OrgID, "reason", ack.Error)
	} else if err := p.c.Add(d.Record, b.respV); err != nil {
		ack.Error = err.Error()
		n.log.Info("broadcast response dropped", "peer", remote, "org", m.OrgID, "request", id, "reason", err)
	}
	if p != nil {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	if err := protocols.WriteMsg(s, ack); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// HandleBroadcast makes this node answer broadcast requests of kind with
// h, replacing the handler it had. "balance" and "receipt-validation" are
// built in.
func (n *Node) HandleBroadcast(kind string, h BroadcastHandler) error {
	if n.bc == nil {
		return errors.New("handle broadcast: the node is not started")
	}
	if kind == "" || len(kind) > broadcast.MaxKindLength {
		return fmt.Errorf("handle broadcast: %w: kind %q", broadcast.ErrBadRequest, kind)
	}
	n.bc.mu.Lock()
	defer n.bc.mu.Unlock()
	if h == nil {
		delete(n.bc.kinds, kind)
	} else {
		n.bc.kinds[kind] = h
	}
	return nil
}

// UnknownBroadcastResponses counts responses this node dropped because no
// broadcast of its own was waiting for them.
func (n *Node) UnknownBroadcastResponses() int64 {
	if n.bc == nil {
		return 0
	}
	return n.bc.unknown.Load()
}

// Broadcast sends a broadcast request to the nodes of its scope and waits
// until the quorum of valid answers or the timeout, then resolves the
// answers under the request's consistency. The result names who agreed,
// who disagreed and why, who failed, and what was dropped; an error means
// the request could not be sent at all.
func (n *Node) Broadcast(ctx context.Context, req BroadcastRequest) (*BroadcastResult, error) {
	if n.bc == nil {
		return nil, errors.New("broadcast: the node is not started")
	}
	return n.bc.send(ctx, req, func(nodes int) int { return nodes })
}

// send sends req; a quorum of 0 becomes defaultQuorum of the number of
// nodes in the scope.
func (b *broadcasts) send(ctx context.Context, req BroadcastRequest, defaultQuorum func(nodes int) int) (res *BroadcastResult, err error) {
	defer b.broadcastSent(req.Kind, time.Now(), &res, &err)
	n := b.n
	fail := func(err error) (*BroadcastResult, error) {
		return nil, fmt.Errorf("broadcast %s to %s: %w", req.Kind, req.Scope, err)
	}
	if err := req.Scope.Validate(); err != nil {
		return fail(err)
	}
	timeout := req.Timeout
	if timeout == 0 {
		timeout = DefaultBroadcastTimeout
	}
	if timeout < 0 || timeout > MaxBroadcastTimeout {
		return fail(fmt.Errorf("%w: timeout %s out of range (0, %s]", broadcast.ErrBadRequest, timeout, MaxBroadcastTimeout))
	}
	consistency := req.Consistency
	if consistency == "" {
		consistency = broadcast.NewestVersion
	}
	nodes, err := b.scopeNodes(ctx, req.Scope, req.Quorum)
	if err != nil {
		return fail(err)
	}
	if len(nodes) == 0 {
		return fail(fmt.Errorf("%w: this node knows no other node of it", broadcast.ErrEmptyScope))
	}
	quorum := req.Quorum
	if quorum == 0 {
		quorum = defaultQuorum(len(nodes))
	}
	if quorum > len(nodes) {
		return fail(fmt.Errorf("%w: quorum %d, but the scope has %d nodes", broadcast.ErrQuorumTooLarge, quorum, len(nodes)))
	}
	asked := make([]peer.ID, len(nodes))
	expected := make(map[peer.ID]bool, len(nodes))
	for i, nd := range nodes {
		asked[i] = nd.Peer
		expected[nd.Peer] = true
	}
	start := time.Now() // Took counts from when the deadline is set
	r := &broadcast.Request{
		Network:     n.genesis.Network,
		ID:          broadcast.NewRequestID(),
		Kind:        req.Kind,
		Scope:       req.Scope,
		Payload:     req.Payload,
		Quorum:      quorum,
		Deadline:    n.cfg.now().Add(timeout),
		Consistency: consistency,
		OriginOrg:   n.self.OrgID,
		Peer:        n.host.ID(),
		Chain:       n.disc.chain,
	}
	if req.Encrypt {
		var rcpts []broadcast.Recipient
		for _, nd := range nodes {
			if len(nd.EncryptionKey) > 0 {
				rcpts = append(rcpts, broadcast.Recipient{Peer: nd.Peer, Key: nd.EncryptionKey})
			}
		}
		if len(rcpts) == 0 {
			return fail(errors.New("no node of the scope advertises an encryption key"))
		}
		if err := broadcast.EncryptPayload(r, req.Payload, rcpts); err != nil {
			return fail(err)
		}
	}
	sealed, err := broadcast.SealRequest(r, n.disc.priv)
	if err != nil {
		return fail(err)
	}
	inScope := func(m governance.Member) bool {
		switch r.Scope.Kind {
		case broadcast.ScopeOrgs:
			return slices.Contains(r.Scope.Orgs, m.OrgID)
		case broadcast.ScopeRendezvous:
			return isRegistrar(m)
		case broadcast.ScopeClosest:
			return expected[m.PeerID]
		case broadcast.ScopeLedger:
			if expected[m.PeerID] {
				return true
			}
			rec, ok := n.disc.cache.Get(m.PeerID)
			return ok && slices.Contains(rec.Ad.Ledgers, r.Scope.Ledger)
		}
		return true
	}
	rendezvous := func(p peer.ID) bool {
		m, ok := n.members.Verified(p)
		return ok && isRegistrar(m)
	}
	p := &pending{c: broadcast.NewCollector(r, inScope, quorum, rendezvous), wake: make(chan struct{}, 1)}
	b.mu.Lock()
	b.pending[r.ID] = p
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.pending, r.ID)
		b.mu.Unlock()
	}()
	if b.testOnSent != nil {
		b.testOnSent(r)
	}

	wctx, cancel := context.WithDeadline(ctx, r.Deadline)
	defer cancel()
	notSent := map[peer.ID]string{}
	if name := topicOf(r.Scope); name != "" {
		if err := b.publish(wctx, name, sealed, nodes); err != nil {
			return fail(err)
		}
	} else {
		notSent = b.sendDirect(wctx, sealed, nodes)
	}
	for !p.c.Done() && p.c.Responded() < len(nodes)-len(notSent) {
		select {
		case <-p.wake:
		case <-wctx.Done():
		}
		if wctx.Err() != nil {
			break
		}
	}
	res = &BroadcastResult{
		Result:      p.c.Result(asked),
		ID:          r.ID,
		Kind:        r.Kind,
		Scope:       r.Scope,
		Quorum:      quorum,
		Consistency: consistency,
		Encrypted:   r.Encrypted,
		Asked:       asked,
		NotSent:     notSent,
		Took:        time.Since(start),
	}
	n.log.Info("broadcast done", "id", r.ID, "kind", r.Kind, "scope", r.Scope.String(), "ok", res.OK,
		"agreed", len(res.AgreedBy), "disagreed", len(res.Disagreed), "failed", len(res.Failed), "not_awaited", len(res.NotAwaited), "dropped", len(res.Dropped), "took", res.Took)
	return res, nil
}

// publish sends a sealed request on a scope's topic. It first makes sure
// the scope's nodes are connected and known as peers of the topic, so the
// flood publish reaches them directly; gossip carries it to the rest.
func (b *broadcasts) publish(ctx context.Context, name string, sealed []byte, nodes []discovery.NodeInfo) error {
	t, err := b.topic(name)
	if err != nil {
		return err
	}
	// Reaching the scope takes at most a quarter of the time left: a
	// stopped node's QUIC address answers nothing and would hold the dial.
	reach := reachWait
	if dl, ok := ctx.Deadline(); ok {
		reach = min(reach, time.Until(dl)/4)
	}
	rctx, cancel := context.WithTimeout(ctx, reach)
	defer cancel()
	var wg sync.WaitGroup
	for _, nd := range nodes {
		if b.n.host.Network().Connectedness(nd.Peer) == network.Connected {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = b.n.Connect(rctx, addrInfo(nd.Peer, nd.Addrs))
		}()
	}
	wg.Wait()
	b.waitTopicPeers(rctx, t, nodes)
	return t.Publish(ctx, sealed)
}

// waitTopicPeers waits until every connected node of nodes is a peer of t
// (its subscription has arrived), or ctx ends.
func (b *broadcasts) waitTopicPeers(ctx context.Context, t *pubsub.Topic, nodes []discovery.NodeInfo) {
	missing := func() bool {
		peers := t.Topic().ListPeers()
		for _, nd := range nodes {
			if b.n.host.Network().Connectedness(nd.Peer) == network.Connected && !slices.Contains(peers, nd.Peer) {
				return true
			}
		}
		return false
	}
	if !missing() {
		return
	}
	h, err := t.Topic().EventHandler()
	if err != nil {
		return
	}
	defer h.Cancel()
	for missing() {
		if _, err := h.NextPeerEvent(ctx); err != nil {
			return
		}
	}
}

// sendDirect hands a sealed request to each node over its own stream and
// returns the nodes it could not reach, with why.
func (b *broadcasts) sendDirect(ctx context.Context, sealed []byte, nodes []discovery.NodeInfo) map[peer.ID]string {
	var mu sync.Mutex
	notSent := map[peer.ID]string{}
	var wg sync.WaitGroup
	for _, nd := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := func() error {
				if _, err := b.n.Connect(ctx, addrInfo(nd.Peer, nd.Addrs)); err != nil {
					return err
				}
				var ack bpb.Ack
				if err := b.n.request(ctx, nd.Peer, protocols.BroadcastRequest, &bpb.Delivery{Record: sealed}, &ack, 4096); err != nil {
					return err
				}
				if ack.Error != "" {
					return fmt.Errorf("refused: %s", ack.Error)
				}
				return nil
			}()
			if err != nil {
				mu.Lock()
				notSent[nd.Peer] = err.Error()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return notSent
}

// scopeNodes are the nodes a scope asks, this one left out: from the
// advertisement cache (every member receives every advertisement), asking
// a registrar only when the cache knows fewer than quorum of them (or none).
func (b *broadcasts) scopeNodes(ctx context.Context, s broadcast.Scope, quorum int) ([]discovery.NodeInfo, error) {
	n := b.n
	self := n.host.ID()
	var out []discovery.NodeInfo
	add := func(nd discovery.NodeInfo) {
		if nd.Peer != self && !slices.ContainsFunc(out, func(o discovery.NodeInfo) bool { return o.Peer == nd.Peer }) {
			out = append(out, nd)
		}
	}
	switch s.Kind {
	case broadcast.ScopeOrgs:
		for _, org := range s.Orgs {
			res, err := n.Resolve(ctx, org)
			if err != nil {
				return nil, err
			}
			for _, nd := range res.Nodes {
				add(nd)
			}
		}
		return out, nil
	case broadcast.ScopeClosest:
		rt := n.dht.RoutingTable()
		for _, p := range rt.NearestPeers(kb.ConvertPeerID(self), maxClosest) {
			if rec, ok := n.disc.cache.Get(p); ok {
				add(discovery.Info(rec))
			} else if _, ok := n.members.Verified(p); ok {
				add(discovery.NodeInfo{Peer: p})
			}
		}
		return out, nil
	}
	f := discovery.Filter{Ledger: s.Ledger}
	keep := func(nd discovery.NodeInfo) bool {
		return s.Kind != broadcast.ScopeRendezvous || nd.Role == string(governance.RoleGovernance) || nd.Role == string(governance.RoleFounding)
	}
	for _, rec := range n.disc.cache.List(f) {
		if nd := discovery.Info(rec); keep(nd) {
			add(nd)
		}
	}
	cached := len(out)
	if cached > 0 && cached >= quorum {
		return out, nil
	}
	orgs, err := n.Orgs(ctx, f)
	if err != nil && cached == 0 {
		return nil, err
	}
	for _, res := range orgs {
		for _, nd := range res.Nodes {
			if keep(nd) {
				add(nd)
			}
		}
	}
	return out, nil
}
