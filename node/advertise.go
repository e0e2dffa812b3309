package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	gossip "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/governance"
)

// advertise publishes a new advertisement of this node when what it would
// say changed (or when forced by start and the periodic refresh): to the
// cache, the capabilities topic, every connected registrar and the DHT.
func (d *discoverer) advertise(reason string) {
	force := reason == "start" || reason == "periodic" || reason == "requested"
	rec, err := d.build(force)
	d.mu.Lock()
	d.lastErr = err
	d.mu.Unlock()
	if err != nil {
		d.log.Error("not advertised", "trigger", reason, "error", err)
		return
	}
	if rec == nil {
		return
	}
	d.log.Info("advertising", "trigger", reason, "seq", rec.Ad.Seq, "addrs", rec.Ad.Addrs, "expires", rec.Ad.Expires.Format(time.RFC3339))
	d.learn(rec)

	ctx, cancel := context.WithTimeout(d.ctx, 2*discovery.StreamTimeout)
	defer cancel()
	// Right after joining, the members met have not yet told which topics
	// they subscribe to; wait briefly for one so the advertisement goes out.
	wait, cancelWait := context.WithTimeout(ctx, topicPeerWait)
	if err := d.topic.WaitPeers(wait); err != nil {
		d.log.Debug("advertising with no capabilities topic peer", "error", err)
	}
	cancelWait()
	if err := d.topic.Publish(ctx, rec.Sealed); err != nil {
		d.log.Warn("advertisement not published on the capabilities topic", "error", err)
	}
	// Every connected member gets it directly too: registrars register
	// it, the others cache it.
	var wg sync.WaitGroup
	for _, m := range d.n.members.Members() {
		p := m.PeerID
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.register(p, rec)
		}()
	}
	wg.Wait()
	d.putDHT()
}

// build makes and checks a new advertisement, or returns nil when the
// current one says the same and force is not set.
func (d *discoverer) build(force bool) (*discovery.Record, error) {
	addrs, err := d.addrs()
	if err != nil {
		return nil, err
	}
	protos := d.protocols()
	cfg := d.n.cfg
	now := cfg.now()

	d.mu.Lock()
	defer d.mu.Unlock()
	if cur := d.current; cur != nil && !force &&
		slices.EqualFunc(cur.Ad.Addrs, addrs, ma.Multiaddr.Equal) &&
		slices.Equal(cur.Ad.Protocols, protos) {
		return nil, nil
	}
	seq := max(d.seq+1, uint64(now.UnixMicro()))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	if err := d.n.ds.Put(d.ctx, seqKey, b[:]); err != nil {
		return nil, fmt.Errorf("store advertisement sequence: %w", err)
	}
	d.seq = seq
	expires := now.Add(time.Duration(cfg.AdvertisementTTL))
	if na := d.n.self.NotAfter; na.Before(expires) {
		expires = na
	}
	ad := &discovery.Advertisement{
		Network:   d.n.genesis.Network,
		Org:       d.n.self.OrgID,
		FinID:     d.n.self.FinID,
		Peer:      d.n.host.ID(),
		Addrs:     addrs,
		Protocols: protos,
		Services:  cfg.Services,
		Ledgers:   d.n.advertisedLedgers(),
		Version:   Version,
		Seq:       seq,
		Expires:   expires.Truncate(time.Second),
		Chain:     d.chain,

		EncryptionKey: d.n.bc.key.PublicKey().Bytes(),
		Executes:      d.n.executedLedger(),
	}
	sealed, err := discovery.Seal(ad, d.priv)
	if err != nil {
		return nil, err
	}
	// The node checks its own advertisement as every receiver will, so an
	// operator sees the refusal (a private address, a missing protocol)
	// here rather than as silence from the network.
	rec, err := d.verifier.Open(sealed)
	if err != nil {
		return nil, fmt.Errorf("own advertisement: %w", err)
	}
	d.current = rec
	d.dhtDirty = true
	return rec, nil
}

// protocols are the FinP2P and gossipsub protocols the host serves.
func (d *discoverer) protocols() []string {
	var out []string
	for _, p := range d.n.host.Mux().Protocols() {
		s := string(p)
		if strings.HasPrefix(s, "/finp2p/") || strings.HasPrefix(s, "/meshsub/") {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (d *discoverer) register(p peer.ID, rec *discovery.Record) {
	// A registrar that fails to take the record (a stream cut short while
	// the network is busy) is tried again twice, so the org does not stay
	// unlisted until the next periodic advertisement.
	var err error
	for attempt, wait := 0, time.Second; attempt < 3; attempt, wait = attempt+1, 2*wait {
		ctx, cancel := context.WithTimeout(d.ctx, discovery.StreamTimeout)
		err = discovery.Register(ctx, d.n.host, p, rec.Sealed)
		cancel()
		if err == nil {
			d.log.Debug("advertisement registered", "peer", p, "org", d.n.peerOrg(p), "seq", rec.Ad.Seq)
			return
		}
		if errors.Is(err, discovery.ErrNotRegistrar) || d.n.host.Network().Connectedness(p) != network.Connected {
			break
		}
		select {
		case <-time.After(wait):
		case <-d.ctx.Done():
			return
		}
	}
	if d.ctx.Err() == nil {
		d.log.Warn("advertisement not registered", "peer", p, "org", d.n.peerOrg(p), "seq", rec.Ad.Seq, "error", err)
	}
}

// putDHT stores the current record under its DHT key and provides the org's
// content ID, so DHT resolution finds every node of the org. One put runs at
// a time: asked for while one runs (a joining node meets many peers at
// once), it returns at once and the running one puts again when it ends if
// the record is still not in the DHT.
func (d *discoverer) putDHT() {
	d.mu.Lock()
	if d.dhtPut {
		d.dhtAgain = true
		d.mu.Unlock()
		return
	}
	d.dhtPut = true
	d.mu.Unlock()
	for {
		d.putDHTOnce()
		d.mu.Lock()
		again := d.dhtAgain && d.dhtDirty && d.ctx.Err() == nil
		d.dhtAgain = false
		if !again {
			d.dhtPut = false
			d.mu.Unlock()
			return
		}
		d.mu.Unlock()
	}
}

func (d *discoverer) putDHTOnce() {
	d.mu.Lock()
	cur := d.current
	d.mu.Unlock()
	if cur == nil {
		return
	}
	ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
	defer cancel()
	err := d.n.dht.PutValue(ctx, discovery.DHTKey(cur.Ad.Org, cur.Ad.Peer), cur.Sealed)
	if err == nil {
		err = d.n.dht.Provide(ctx, discovery.OrgCID(cur.Ad.Org), true)
	}
	if err != nil {
		if d.ctx.Err() == nil {
			d.log.Debug("advertisement not in the DHT yet", "seq", cur.Ad.Seq, "error", err)
		}
		return
	}
	d.mu.Lock()
	if d.current == cur {
		d.dhtDirty = false
	}
	d.mu.Unlock()
}

// validate is the capabilities topic validator: a forged, malformed or
// policy-breaking advertisement is rejected (penalising the sender), an
// expired or stale one ignored; each is logged with why.
func (d *discoverer) validate(_ context.Context, from peer.ID, msg *gossip.Message) gossip.ValidationResult {
	rec, err := d.verifier.Open(msg.Data)
	if err != nil {
		if errors.Is(err, discovery.ErrExpired) {
			d.log.Info("ignored an expired advertisement", "peer", from, "org", d.n.peerOrg(from), "reason", err)
			return gossip.ValidationIgnore
		}
		d.log.Warn("rejected an advertisement on the capabilities topic", "peer", from, "org", d.n.peerOrg(from), "reason", err)
		return gossip.ValidationReject
	}
	if !d.cache.Newer(rec) {
		if d.cache.Holds(rec) {
			if from == d.n.host.ID() {
				// This node's own publication (of its advertisement, or
				// as a registrar of a member's).
				return gossip.ValidationAccept
			}
			// A copy that came by another path: already known here.
			return gossip.ValidationIgnore
		}
		d.log.Info("ignored a stale advertisement", "peer", rec.Ad.Peer, "org", rec.Ad.Org, "via", from, "seq", rec.Ad.Seq)
		return gossip.ValidationIgnore
	}
	msg.ValidatorData = rec
	return gossip.ValidationAccept
}

func (d *discoverer) deliver(msg *gossip.Message) {
	if rec, ok := msg.ValidatorData.(*discovery.Record); ok {
		d.learn(rec)
	}
}

// Advertisement is this node's current advertisement, if it has one.
func (n *Node) Advertisement() (discovery.NodeInfo, bool) {
	if n.disc == nil {
		return discovery.NodeInfo{}, false
	}
	n.disc.mu.Lock()
	defer n.disc.mu.Unlock()
	if n.disc.current == nil {
		return discovery.NodeInfo{}, false
	}
	return discovery.Info(n.disc.current), true
}

// AdvertisementError is why the node's last advertisement failed, or nil.
func (n *Node) AdvertisementError() error {
	if n.disc == nil {
		return nil
	}
	n.disc.mu.Lock()
	defer n.disc.mu.Unlock()
	return n.disc.lastErr
}

// Readvertise asks the node to advertise again now, with a new sequence.
func (n *Node) Readvertise() {
	if n.disc == nil {
		return
	}
	select {
	case n.disc.kick <- struct{}{}:
	default:
	}
}

// Resolve returns org's nodes and their addresses: from the local cache when
// it holds a current advertisement (refreshing it from a registrar in the
// background), else from a registrar, else from the DHT. What it finds is
// cached. The error wraps discovery.ErrOrgNotFound and says what was tried.
func (n *Node) Resolve(ctx context.Context, org string) (discovery.Resolution, error) {
	if err := governance.ValidateOrgID(org); err != nil {
		return discovery.Resolution{}, fmt.Errorf("resolve: %w", err)
	}
	d := n.disc
	if d == nil || d.ctx == nil {
		return discovery.Resolution{}, errors.New("resolve: the node is not started")
	}
	if recs := d.cache.Org(org); len(recs) > 0 {
		d.refreshLater(org)
		return discovery.Group(recs, discovery.SourceCache)[0], nil
	}
	tried := []string{"cache: no current advertisement"}
	recs, triedRegistrars, err := d.fromRegistrars(ctx, func(ctx context.Context, p peer.ID) ([][]byte, error) {
		return discovery.Lookup(ctx, n.host, p, org)
	}, func() []*discovery.Record { return d.registrar.Directory().Org(org) })
	tried = append(tried, triedRegistrars...)
	if err == nil && len(recs) > 0 {
		discovery.SortRecords(recs)
		return discovery.Group(recs, discovery.SourceRegistrar)[0], nil
	}
	if recs, err := d.fromDHT(ctx, org); err != nil {
		tried = append(tried, "dht: "+err.Error())
	} else {
		discovery.SortRecords(recs)
		return discovery.Group(recs, discovery.SourceDHT)[0], nil
	}
	return discovery.Resolution{}, fmt.Errorf("resolve %s: %w (tried %s)", org, discovery.ErrOrgNotFound, strings.Join(tried, "; "))
}

// refreshLater refreshes org from a registrar in the background, at most
// once per resolveRefresh.
func (d *discoverer) refreshLater(org string) {
	if d.registrar != nil {
		return // a registrar's cache is its directory
	}
	d.mu.Lock()
	if time.Since(d.refreshed[org]) < resolveRefresh {
		d.mu.Unlock()
		return
	}
	d.refreshed[org] = time.Now()
	d.mu.Unlock()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		ctx, cancel := context.WithTimeout(d.ctx, discovery.StreamTimeout)
		defer cancel()
		_, _, _ = d.fromRegistrars(ctx, func(ctx context.Context, p peer.ID) ([][]byte, error) {
			return discovery.Lookup(ctx, d.n.host, p, org)
		}, nil)
	}()
}

// fromDHT learns org's records from the DHT.
func (d *discoverer) fromDHT(ctx context.Context, org string) ([]*discovery.Record, error) {
	recs, err := d.dhtRecords(ctx, org)
	for _, rec := range recs {
		d.learn(rec)
	}
	return recs, err
}

// dhtRecords finds the providers of the org's content ID and fetches and
// verifies each one's record from its DHT key.
func (d *discoverer) dhtRecords(ctx context.Context, org string) ([]*discovery.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, resolveFromDHT)
	defer cancel()
	var recs []*discovery.Record
	var errs []error
	for ai := range d.n.dht.FindProvidersAsync(ctx, discovery.OrgCID(org), 0) {
		val, err := d.n.dht.GetValue(ctx, discovery.DHTKey(org, ai.ID))
		if err != nil {
			errs = append(errs, fmt.Errorf("record of %s: %w", ai.ID, err))
			continue
		}
		rec, err := d.verifier.Open(val)
		if err != nil {
			errs = append(errs, fmt.Errorf("record of %s: %w", ai.ID, err))
			continue
		}
		recs = append(recs, rec)
	}
	if len(recs) == 0 {
		if len(errs) == 0 {
			return nil, errors.New("no provider of the org found")
		}
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return nil, errors.New(strings.Join(msgs, "; "))
	}
	return recs, nil
}

// Orgs lists the network's members that match f, one Resolution per org:
// from a registrar (this node's own on a governance node), or from the
// cache when no registrar answers.
func (n *Node) Orgs(ctx context.Context, f discovery.Filter) ([]discovery.Resolution, error) {
	d := n.disc
	if d == nil || d.ctx == nil {
		return nil, errors.New("list members: the node is not started")
	}
	recs, tried, err := d.fromRegistrars(ctx, func(ctx context.Context, p peer.ID) ([][]byte, error) {
		return discovery.List(ctx, n.host, p, f)
	}, func() []*discovery.Record { return d.registrar.Directory().List(f) })
	if err != nil {
		n.log.Info("members listed from the cache", "registrars", tried)
		return discovery.Group(d.cache.List(f), discovery.SourceCache), nil
	}
	discovery.SortRecords(recs)
	return discovery.Group(recs, discovery.SourceRegistrar), nil
}
