package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	gossip "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/finp2p/go-finp2p/ledger"
	"github.com/finp2p/go-finp2p/protocols"
)

// The node's metrics (docs/metrics.md lists them). They exist only when
// WithMetrics is given; every method of *metrics does nothing on nil, so
// the hooks in the rest of the package need no check.
//
// Labels take values from small fixed sets: protocol ids of this package,
// outcomes, topic kinds, ledger operations and the broadcast kinds this node
// answers. Peer ids, org ids and resource ids never become labels.

// Request directions and outcomes.
const (
	dirInbound  = "inbound"
	dirOutbound = "outbound"

	// outcomeOK: the answer was given (inbound) or received (outbound).
	outcomeOK = "ok"
	// outcomeDenied: the answer refused access ("denied" or "rate-limited").
	outcomeDenied = "denied"
	// outcomeRefused: the answer refused the request for another reason
	// (bad request, unknown resource, ledger refusal, ...).
	outcomeRefused = "refused"
	// outcomeError: no answer: the stream failed, timed out, or carried
	// an unreadable request or reply.
	outcomeError = "error"
)

var requestOutcomes = []string{outcomeOK, outcomeDenied, outcomeRefused, outcomeError}

// meteredProtocols are the FinP2P stream protocols the request metrics
// count. The membership handshake (counted by the membership metrics),
// kad-dht and gossipsub are not among them.
var meteredProtocols = []protocol.ID{
	protocols.Discovery,
	protocols.ResourceAdvert,
	protocols.ResourceACL,
	protocols.ResourceGet,
	protocols.ResourceUpdates,
	protocols.ResourceTopicKey,
	protocols.AssetTx,
	protocols.PrivateData,
	protocols.BroadcastRequest,
	protocols.BroadcastResponse,
	protocols.LedgerReplicate,
}

// Gossip topic kinds, the topic label of the validation metric.
const (
	topicRevocations  = "revocations"
	topicCapabilities = "capabilities"
	topicResource     = "resource_updates"
	topicBroadcast    = "broadcast"
)

var gossipResults = map[gossip.ValidationResult]string{
	gossip.ValidationAccept: "accept",
	gossip.ValidationReject: "reject",
	gossip.ValidationIgnore: "ignore",
}

// Broadcast results at the origin.
const (
	// broadcastAgreed: the quorum was reached and every answer agreed.
	broadcastAgreed = "agreed"
	// broadcastDisagreed: the quorum was reached and the answers were
	// resolved under the request's consistency, but some disagreed.
	broadcastDisagreed = "disagreed"
	// broadcastInconsistent: answers came but could not be resolved into
	// one (strict mismatch, unresolved tie).
	broadcastInconsistent = "inconsistent"
	// broadcastRefused: every node asked responded, but too many said
	// they cannot answer for the quorum.
	broadcastRefused = "refused"
	// broadcastTimeout: the quorum was not reached because nodes did not
	// answer before the deadline or could not be reached.
	broadcastTimeout = "timeout"
	// broadcastFailed: the request could not be sent at all (bad request,
	// empty scope, quorum larger than the scope, ...).
	broadcastFailed = "failed"
	// otherKind is the kind label of a kind this node has no handler for.
	otherKind = "other"
)

var broadcastResults = []string{broadcastAgreed, broadcastDisagreed, broadcastInconsistent, broadcastRefused, broadcastTimeout, broadcastFailed}

// Ledger operations that are not asset transactions.
const (
	opBalance     = "balance"
	opTransaction = "transaction"
	opStatus      = "status"
)

var ledgerOperations = []string{
	string(ledger.OpCreateAsset), string(ledger.OpIssue), string(ledger.OpTransfer), string(ledger.OpRedeem),
	string(ledger.OpHold), string(ledger.OpRelease), string(ledger.OpRollback), opBalance, opTransaction, opStatus,
}

var (
	requestBuckets   = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	broadcastBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}
	ledgerBuckets    = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5}
)

type metrics struct {
	requests         *prometheus.CounterVec
	requestSeconds   *prometheus.HistogramVec
	broadcasts       *prometheus.CounterVec
	broadcastSeconds *prometheus.HistogramVec
	broadcastAnswers *prometheus.CounterVec
	ledgerOps        *prometheus.CounterVec
	ledgerSeconds    *prometheus.HistogramVec
	replicatedItems  *prometheus.CounterVec
	replicaLag       *prometheus.GaugeVec
	gossip           *prometheus.CounterVec
	metered          map[protocol.ID]bool
}

// newMetrics registers the node's metrics with r; nil r gives nil metrics.
// Collectors r already holds (a node restarted with the same registry) are
// reused.
func newMetrics(r prometheus.Registerer) (*metrics, error) {
	if r == nil {
		return nil, nil
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "finp2p_requests_total",
			Help: "FinP2P protocol requests by protocol, direction (inbound: served, outbound: sent) and outcome (ok, denied, refused, error).",
		}, []string{"protocol", "direction", "outcome"}),
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "finp2p_request_duration_seconds",
			Help:    "Time from opening (outbound) or accepting (inbound) a FinP2P protocol stream to its answer, by protocol and direction; the ledger replication stream is left out.",
			Buckets: requestBuckets,
		}, []string{"protocol", "direction"}),
		broadcasts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "finp2p_broadcasts_total",
			Help: "Broadcasts this node sent, by kind and result (agreed, disagreed, inconsistent, refused, timeout, failed).",
		}, []string{"kind", "result"}),
		broadcastSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "finp2p_broadcast_duration_seconds",
			Help:    "Time from sending a broadcast to its result, by kind and result.",
			Buckets: broadcastBuckets,
		}, []string{"kind", "result"}),
		broadcastAnswers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "finp2p_broadcast_answers_total",
			Help: "Broadcast requests of others this node was in the scope of, by kind and outcome (answered, cannot_answer, not_delivered).",
		}, []string{"kind", "outcome"}),
		ledgerOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "finp2p_ledger_operations_total",
			Help: "Operations on the ledger this node executes on, by operation and outcome (ok or the refusal code, e.g. insufficient-balance).",
		}, []string{"operation", "outcome"}),
		ledgerSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "finp2p_ledger_operation_duration_seconds",
			Help:    "Duration of operations on the ledger this node executes on, by operation.",
			Buckets: ledgerBuckets,
		}, []string{"operation"}),
		replicatedItems: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "finp2p_ledger_replicated_entries_total",
			Help: "Journal entries received from followed ledgers' primaries, by ledger and outcome (applied, refused).",
		}, []string{"ledger", "outcome"}),
		replicaLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "finp2p_ledger_replica_lag",
			Help: "Versions a followed ledger's replica is behind its primary, as last heard from the primary.",
		}, []string{"ledger"}),
		gossip: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "finp2p_gossip_validations_total",
			Help: "Gossip messages from other peers by topic kind (revocations, capabilities, resource_updates, broadcast) and validation result (accept, reject, ignore).",
		}, []string{"topic", "result"}),
		metered: map[protocol.ID]bool{},
	}
	var err error
	for _, c := range []**prometheus.CounterVec{&m.requests, &m.broadcasts, &m.broadcastAnswers, &m.ledgerOps, &m.replicatedItems, &m.gossip} {
		if *c, err = register(r, *c); err != nil {
			return nil, err
		}
	}
	for _, h := range []**prometheus.HistogramVec{&m.requestSeconds, &m.broadcastSeconds, &m.ledgerSeconds} {
		if *h, err = register(r, *h); err != nil {
			return nil, err
		}
	}
	if m.replicaLag, err = register(r, m.replicaLag); err != nil {
		return nil, err
	}
	// Every series of a fixed label set starts at 0, so a rate or an alert
	// on it works before its first event.
	for _, pid := range meteredProtocols {
		m.metered[pid] = true
		for _, dir := range []string{dirInbound, dirOutbound} {
			for _, o := range requestOutcomes {
				m.requests.WithLabelValues(string(pid), dir, o)
			}
		}
	}
	for _, kind := range []string{KindBalance, KindReceiptValidation} {
		for _, res := range broadcastResults {
			m.broadcasts.WithLabelValues(kind, res)
		}
	}
	for _, op := range ledgerOperations {
		m.ledgerOps.WithLabelValues(op, outcomeOK)
	}
	for _, t := range []string{topicRevocations, topicCapabilities, topicResource, topicBroadcast} {
		for _, res := range gossipResults {
			m.gossip.WithLabelValues(t, res)
		}
	}
	return m, nil
}

// register registers c with r, or returns the equal collector r holds.
func register[C prometheus.Collector](r prometheus.Registerer, c C) (C, error) {
	err := r.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("register metrics: %w", err)
}

// resourceManagerOptions makes libp2p's resource manager report to r
// (libp2p_rcmgr_* families), or to nothing when r is nil. Its collectors
// are process-wide: nodes of one process that share them add up.
func resourceManagerOptions(r prometheus.Registerer) ([]rcmgr.Option, error) {
	if r == nil {
		return []rcmgr.Option{rcmgr.WithMetricsDisabled()}, nil
	}
	if err := registerResourceManager(r); err != nil {
		return nil, err
	}
	str, err := rcmgr.NewStatsTraceReporter()
	if err != nil {
		return nil, fmt.Errorf("resource manager metrics: %w", err)
	}
	return []rcmgr.Option{rcmgr.WithTraceReporter(str)}, nil
}

// registerResourceManager is rcmgr.MustRegisterWith, with its panic (a
// collector of the same name but other labels in r) turned into an error.
func registerResourceManager(r prometheus.Registerer) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("register resource manager metrics: %v", v)
		}
	}()
	rcmgr.MustRegisterWith(r)
	return nil
}

// request counts one request and, but for replication, whose first entry
// may wait for the next ledger change, its time to the answer.
func (m *metrics) request(pid protocol.ID, dir, outcome string, took time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(string(pid), dir, outcome).Inc()
	if pid != protocols.LedgerReplicate {
		m.requestSeconds.WithLabelValues(string(pid), dir).Observe(took.Seconds())
	}
}

// host wraps the node's libp2p host so that the streams of meteredProtocols
// are counted and timed, both ways, by the protocol code's own calls to
// SetStreamHandler and NewStream. Without metrics it is h itself.
func (m *metrics) host(h host.Host) host.Host {
	if m == nil {
		return h
	}
	return meteredHost{Host: h, m: m}
}

// meteredHost is the host the node's protocols run on when it has metrics.
// kad-dht, gossipsub and the membership handshake pass through it untouched.
type meteredHost struct {
	host.Host
	m *metrics
}

// SetStreamHandler sets handler for pid. A metered protocol's request is
// counted when the handler writes its first message (the answer or a
// refusal), or as an error when the handler returns without one.
func (h meteredHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	if !h.m.metered[pid] {
		h.Host.SetStreamHandler(pid, handler)
		return
	}
	h.Host.SetStreamHandler(pid, func(s network.Stream) {
		ms := &meteredStream{Stream: s, m: h.m, pid: pid, dir: dirInbound, start: time.Now()}
		defer ms.done()
		handler(ms)
	})
}

// NewStream opens a stream. A metered protocol's request is counted when
// the first message is read from it (the answer or a refusal), or as an
// error when it is closed or reset without one, or cannot be opened.
func (h meteredHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	if len(pids) != 1 || !h.m.metered[pids[0]] {
		return h.Host.NewStream(ctx, p, pids...)
	}
	start := time.Now()
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		h.m.request(pids[0], dirOutbound, outcomeError, time.Since(start))
		return nil, err
	}
	return &meteredStream{Stream: s, m: h.m, pid: pids[0], dir: dirOutbound, start: start}, nil
}

// meteredStream counts one request: protocols.WriteMsg and ReadMsg show
// it the messages (protocols.MessageObserver), and the first answer
// decides the outcome, and the duration, which is the time to the answer.
// A long-lived stream (replication) is so counted once it is under way.
type meteredStream struct {
	network.Stream
	m     *metrics
	pid   protocol.ID
	dir   string
	start time.Time

	mu      sync.Mutex
	counted bool
}

// MessageRead sees a message read: an outbound stream's answer.
func (s *meteredStream) MessageRead(msg proto.Message) {
	if s.dir == dirOutbound {
		s.answered(msg)
	}
}

// MessageWritten sees a message written: an inbound stream's answer.
func (s *meteredStream) MessageWritten(msg proto.Message) {
	if s.dir == dirInbound {
		s.answered(msg)
	}
}

func (s *meteredStream) answered(msg proto.Message) { s.count(answerOutcome(msg)) }

// answerOutcome tells an answer from a refusal: FinP2P replies carry a
// refusal in their code or error field.
func answerOutcome(msg proto.Message) string {
	var code, text string
	if c, ok := msg.(interface{ GetCode() string }); ok {
		code = c.GetCode()
	}
	if e, ok := msg.(interface{ GetError() string }); ok {
		text = e.GetError()
	}
	switch {
	case code == "denied" || code == "rate-limited":
		return outcomeDenied
	case code != "" || text != "":
		return outcomeRefused
	}
	return outcomeOK
}

// Close closes the stream; an outbound request without an answer ends here.
func (s *meteredStream) Close() error {
	err := s.Stream.Close()
	s.ended()
	return err
}

// Reset resets the stream; an outbound request without an answer ends here.
func (s *meteredStream) Reset() error {
	err := s.Stream.Reset()
	s.ended()
	return err
}

// ResetWithError resets the stream; an outbound request without an answer
// ends here.
func (s *meteredStream) ResetWithError(code network.StreamErrorCode) error {
	err := s.Stream.ResetWithError(code)
	s.ended()
	return err
}

func (s *meteredStream) ended() {
	if s.dir == dirOutbound {
		s.done()
	}
}

// done counts a request that ended without an answer as an error.
func (s *meteredStream) done() { s.count(outcomeError) }

// count counts the request, once.
func (s *meteredStream) count(outcome string) {
	s.mu.Lock()
	counted := s.counted
	s.counted = true
	s.mu.Unlock()
	if !counted {
		s.m.request(s.pid, s.dir, outcome, time.Since(s.start))
	}
}

// observeRead shows a message read from s without protocols.ReadMsg (a
// stream of many messages) to its metrics.
func observeRead(s network.Stream, msg proto.Message) {
	if o, ok := s.(protocols.MessageObserver); ok {
		o.MessageRead(msg)
	}
}

// gossipValidated counts a topic validator's verdict on a message from
// another peer.
func (m *metrics) gossipValidated(topic string, r gossip.ValidationResult) {
	if m == nil {
		return
	}
	res, ok := gossipResults[r]
	if !ok {
		return
	}
	m.gossip.WithLabelValues(topicKind(topic), res).Inc()
}

// topicKind is the kind of a FinP2P gossip topic.
func topicKind(name string) string {
	switch {
	case name == protocols.TopicRevocations:
		return topicRevocations
	case name == protocols.TopicCapabilities:
		return topicCapabilities
	case strings.HasPrefix(name, protocols.TopicResourcePrefix):
		return topicResource
	case name == protocols.TopicBroadcastAll, name == protocols.TopicBroadcastRendezvous,
		strings.HasPrefix(name, protocols.TopicBroadcastLedgerPrefix):
		return topicBroadcast
	}
	return "other"
}

// kindLabel is a broadcast kind as a label: itself if this node answers
// it (the built-in kinds and those given to HandleBroadcast), else
// "other", so that kinds named by others do not make new series.
func (b *broadcasts) kindLabel(kind string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.kinds[kind]; ok {
		return kind
	}
	return otherKind
}

// broadcastSent counts a broadcast this node sent, when send returns.
func (b *broadcasts) broadcastSent(kind string, start time.Time, res **BroadcastResult, err *error) {
	m := b.n.metrics
	if m == nil {
		return
	}
	result, took := broadcastResult(*res, *err), time.Since(start)
	if *res != nil {
		took = (*res).Took
	}
	label := b.kindLabel(kind)
	m.broadcasts.WithLabelValues(label, result).Inc()
	m.broadcastSeconds.WithLabelValues(label, result).Observe(took.Seconds())
}

// broadcastResult is the result label of what send returned.
func broadcastResult(res *BroadcastResult, err error) string {
	switch {
	case err != nil || res == nil:
		return broadcastFailed
	case res.OK && len(res.Disagreed) == 0:
		return broadcastAgreed
	case res.OK:
		return broadcastDisagreed
	case len(res.Disagreed) > 0 && len(res.AgreedBy) == 0:
		return broadcastInconsistent
	case len(res.Failed) == 0:
		return broadcastRefused
	}
	return broadcastTimeout
}

// broadcastAnswered counts this node's response to another's broadcast.
func (b *broadcasts) broadcastAnswered(kind string, answered bool, deliveryErr error) {
	m := b.n.metrics
	if m == nil {
		return
	}
	outcome := "answered"
	switch {
	case deliveryErr != nil:
		outcome = "not_delivered"
	case !answered:
		outcome = "cannot_answer"
	}
	m.broadcastAnswers.WithLabelValues(b.kindLabel(kind), outcome).Inc()
}

// replicated counts an entry of a followed ledger, applied (err nil) or
// refused, and updates the replica's lag.
func (m *metrics) replicated(rp *replica, err error) {
	if m == nil {
		return
	}
	outcome := "applied"
	if err != nil {
		outcome = "refused"
	}
	m.replicatedItems.WithLabelValues(rp.id, outcome).Inc()
	m.replicaHeard(rp)
}

// replicaHeard updates a replica's lag after news of its primary's version.
func (m *metrics) replicaHeard(rp *replica) {
	if m == nil {
		return
	}
	v, _ := rp.l.Head()
	rp.mu.Lock()
	head := rp.head
	rp.mu.Unlock()
	m.replicaLag.WithLabelValues(rp.id).Set(float64(head - min(v, head)))
}

// ledger wraps l so that its operations are counted and timed.
func (m *metrics) ledger(l ledger.Ledger) ledger.Ledger {
	if m == nil {
		return l
	}
	return meteredLedger{Ledger: l, m: m}
}

// meteredLedger counts and times every operation of the ledger the node
// executes on but Version and ID, which the node itself calls all the time.
type meteredLedger struct {
	ledger.Ledger
	m *metrics
}

func (l meteredLedger) done(op string, start time.Time, err error) {
	outcome := outcomeOK
	if err != nil {
		outcome = ledgerCode(err)
	}
	l.m.ledgerOps.WithLabelValues(op, outcome).Inc()
	l.m.ledgerSeconds.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func (l meteredLedger) CreateAsset(ctx context.Context, r ledger.CreateAsset) (ledger.Transaction, error) {
	t0 := time.Now()
	tx, err := l.Ledger.CreateAsset(ctx, r)
	l.done(string(ledger.OpCreateAsset), t0, err)
	return tx, err
}

func (l meteredLedger) Issue(ctx context.Context, r ledger.Issue) (ledger.Transaction, error) {
	t0 := time.Now()
	tx, err := l.Ledger.Issue(ctx, r)
	l.done(string(ledger.OpIssue), t0, err)
	return tx, err
}

func (l meteredLedger) Transfer(ctx context.Context, r ledger.Transfer) (ledger.Transaction, error) {
	t0 := time.Now()
	tx, err := l.Ledger.Transfer(ctx, r)
	l.done(string(ledger.OpTransfer), t0, err)
	return tx, err
}

func (l meteredLedger) Redeem(ctx context.Context, r ledger.Redeem) (ledger.Transaction, error) {
	t0 := time.Now()
	tx, err := l.Ledger.Redeem(ctx, r)
	l.done(string(ledger.OpRedeem), t0, err)
	return tx, err
}

func (l meteredLedger) Hold(ctx context.Context, r ledger.Hold) (ledger.Transaction, error) {
	t0 := time.Now()
	tx, err := l.Ledger.Hold(ctx, r)
	l.done(string(ledger.OpHold), t0, err)
	return tx, err
}

func (l meteredLedger) Release(ctx context.Context, r ledger.Release) (ledger.Transaction, error) {
	t0 := time.Now()
	tx, err := l.Ledger.Release(ctx, r)
	l.done(string(ledger.OpRelease), t0, err)
	return tx, err
}

func (l meteredLedger) Rollback(ctx context.Context, r ledger.Rollback) (ledger.Transaction, error) {
	t0 := time.Now()
	tx, err := l.Ledger.Rollback(ctx, r)
	l.done(string(ledger.OpRollback), t0, err)
	return tx, err
}

func (l meteredLedger) Balance(ctx context.Context, asset, account string) (ledger.Balance, error) {
	t0 := time.Now()
	b, err := l.Ledger.Balance(ctx, asset, account)
	l.done(opBalance, t0, err)
	return b, err
}

func (l meteredLedger) Transaction(ctx context.Context, id string) (ledger.Transaction, error) {
	t0 := time.Now()
	tx, err := l.Ledger.Transaction(ctx, id)
	l.done(opTransaction, t0, err)
	return tx, err
}

func (l meteredLedger) Status(ctx context.Context, key string) (ledger.OperationStatus, error) {
	t0 := time.Now()
	st, err := l.Ledger.Status(ctx, key)
	l.done(opStatus, t0, err)
	return st, err
}

// Journal serves the wrapped ledger's journal (replication), uncounted.
func (l meteredLedger) Journal(ctx context.Context, from uint64, limit int) ([]ledger.Transaction, error) {
	j, ok := l.Ledger.(journal)
	if !ok {
		return nil, fmt.Errorf("ledger %s keeps no journal this node can serve", l.ID())
	}
	return j.Journal(ctx, from, limit)
}
