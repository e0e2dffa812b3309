// Package pubsub sets up gossipsub for a FinP2P node: members-only peers,
// strict message signing, an explicit maximum message size, and topics whose
// validator is always registered before the node subscribes.
package pubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	gossip "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/finp2p/go-finp2p/protocols"
)

// Config is what New needs.
type Config struct {
	// Member reports whether a peer has proved membership; gossip is
	// exchanged with members only. Required.
	Member func(peer.ID) bool
	// MaxMessageSize bounds every message; default protocols.MaxGossipMessageSize.
	MaxMessageSize int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Validated, if set, is told every topic validator's verdict on a
	// message from another peer (metrics).
	Validated func(topic string, result gossip.ValidationResult)
}

// PubSub is a node's gossipsub router.
type PubSub struct {
	ps        *gossip.PubSub
	self      peer.ID
	log       *slog.Logger
	validated func(string, gossip.ValidationResult)
	cancel    context.CancelFunc

	scoreMu sync.RWMutex
	scores  map[peer.ID]float64
}

// Peer scoring: a message a topic validator rejects (forged, malformed, or
// from a node without the right to publish) costs its sender
// InvalidMessagePenalty, squared over repeats and decaying by a tenth a
// second; a peer whose score falls below the thresholds stops receiving
// gossip, then publications, then is ignored.
const (
	InvalidMessagePenalty = -100
	GossipThreshold       = -500
	PublishThreshold      = -1000
	GraylistThreshold     = -2500
)

func scoreParams() *gossip.PeerScoreParams {
	return &gossip.PeerScoreParams{
		SkipAtomicValidation: true,
		Topics:               map[string]*gossip.TopicScoreParams{},
		AppSpecificScore:     func(peer.ID) float64 { return 0 },
		DecayInterval:        time.Second,
		DecayToZero:          0.01,
		RetainScore:          10 * time.Minute,
	}
}

func topicScoreParams() *gossip.TopicScoreParams {
	return &gossip.TopicScoreParams{
		SkipAtomicValidation:           true,
		TopicWeight:                    1,
		TimeInMeshQuantum:              time.Second, // unused (weight 0), but divided by
		InvalidMessageDeliveriesWeight: InvalidMessagePenalty,
		InvalidMessageDeliveriesDecay:  0.9,
	}
}

// Score is the gossipsub score this node gives p, as of the last
// inspection (every 100 ms).
func (p *PubSub) Score(id peer.ID) float64 {
	p.scoreMu.RLock()
	defer p.scoreMu.RUnlock()
	return p.scores[id]
}

// New starts gossipsub on h. Create it before the node dials anyone, so no
// peer's arrival is missed.
func New(ctx context.Context, h host.Host, cfg Config) (*PubSub, error) {
	if cfg.Member == nil {
		return nil, errors.New("pubsub: membership check is required")
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = protocols.MaxGossipMessageSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &PubSub{self: h.ID(), log: cfg.Logger, validated: cfg.Validated, cancel: cancel}
	ps, err := gossip.NewGossipSub(ctx, h,
		gossip.WithPeerFilter(func(p peer.ID, _ string) bool { return cfg.Member(p) }),
		gossip.WithMessageSignaturePolicy(gossip.StrictSign),
		gossip.WithMaxMessageSize(cfg.MaxMessageSize),
		// A node's own messages go to every member subscribed to the topic,
		// not only to its mesh, which is empty until a heartbeat grafts it:
		// FinP2P topics carry control messages (revocations, capabilities)
		// that must not be lost right after a node joins.
		gossip.WithFloodPublish(true),
		gossip.WithPeerScore(scoreParams(), &gossip.PeerScoreThresholds{
			GossipThreshold:             GossipThreshold,
			PublishThreshold:            PublishThreshold,
			GraylistThreshold:           GraylistThreshold,
			AcceptPXThreshold:           10,
			OpportunisticGraftThreshold: 5,
		}),
		gossip.WithPeerScoreInspect(func(scores map[peer.ID]float64) { p.setScores(scores) }, 100*time.Millisecond),
	)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("pubsub: start gossipsub: %w", err)
	}
	p.ps = ps
	return p, nil
}

func (p *PubSub) setScores(scores map[peer.ID]float64) {
	p.scoreMu.Lock()
	p.scores = scores
	p.scoreMu.Unlock()
}

// Close stops gossipsub.
func (p *PubSub) Close() error {
	p.cancel()
	return nil
}

// Router is the underlying gossipsub router.
func (p *PubSub) Router() *gossip.PubSub { return p.ps }

// Topic is a joined, validated and subscribed topic.
type Topic struct {
	name   string
	ps     *gossip.PubSub
	topic  *gossip.Topic
	sub    *gossip.Subscription
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Join registers validate for name, then joins and subscribes to it, and
// calls handle for every message that passed validation and came from another
// node. handle runs on one goroutine, in delivery order.
func (p *PubSub) Join(name string, validate gossip.ValidatorEx, handle func(*gossip.Message)) (*Topic, error) {
	if p.validated != nil {
		inner := validate
		validate = func(ctx context.Context, from peer.ID, msg *gossip.Message) gossip.ValidationResult {
			r := inner(ctx, from, msg)
			if from != p.self {
				p.validated(name, r)
			}
			return r
		}
	}
	if err := p.ps.RegisterTopicValidator(name, validate); err != nil {
		return nil, fmt.Errorf("pubsub: register validator for %s: %w", name, err)
	}
	topic, err := p.ps.Join(name)
	if err != nil {
		_ = p.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("pubsub: join %s: %w", name, err)
	}
	if err := topic.SetScoreParams(topicScoreParams()); err != nil {
		_ = topic.Close()
		_ = p.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("pubsub: score parameters of %s: %w", name, err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		_ = topic.Close()
		_ = p.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("pubsub: subscribe to %s: %w", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Topic{name: name, ps: p.ps, topic: topic, sub: sub, cancel: cancel}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		for {
			msg, err := sub.Next(ctx)
			if err != nil {
				return
			}
			if msg.ReceivedFrom == p.self {
				continue
			}
			if handle != nil {
				handle(msg)
			}
		}
	}()
	return t, nil
}

// Publish sends data on the topic.
func (t *Topic) Publish(ctx context.Context, data []byte) error {
	if err := t.topic.Publish(ctx, data); err != nil {
		return fmt.Errorf("publish on %s: %w", t.name, err)
	}
	return nil
}

// WaitPeers waits until at least one other node subscribed to the topic is
// connected, or ctx ends. A message published before that reaches nobody.
func (t *Topic) WaitPeers(ctx context.Context) error {
	if len(t.topic.ListPeers()) > 0 {
		return nil
	}
	h, err := t.topic.EventHandler()
	if err != nil {
		return fmt.Errorf("watch peers of %s: %w", t.name, err)
	}
	defer h.Cancel()
	for len(t.topic.ListPeers()) == 0 {
		if _, err := h.NextPeerEvent(ctx); err != nil {
			return fmt.Errorf("no peer on %s: %w", t.name, err)
		}
	}
	return nil
}

// Topic is the underlying gossipsub topic.
func (t *Topic) Topic() *gossip.Topic { return t.topic }

// Close unsubscribes, leaves the topic and removes its validator.
func (t *Topic) Close() error {
	t.cancel()
	t.sub.Cancel()
	t.wg.Wait()
	err := t.topic.Close()
	_ = t.ps.UnregisterTopicValidator(t.name)
	return err
}
