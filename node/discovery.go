package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/pubsub"
)

// Joining and advertising tunables.
const (
	// advertiseDebounce gathers a burst of host events into one
	// re-advertisement, well inside the second the spec allows.
	advertiseDebounce = 150 * time.Millisecond
	// joinPeers bounds how many backup or listed members a join dials.
	joinPeers = 16
	// rejoinInterval is how often a node with no member connected at all
	// tries to join again.
	rejoinInterval = 15 * time.Second
	// resolveRefresh is how often a resolution served from the cache is
	// refreshed from the registrar in the background.
	resolveRefresh = 30 * time.Second
	// topicPeerWait bounds how long an advertisement waits for a first
	// capabilities topic peer before it is published anyway.
	topicPeerWait = 3 * time.Second
	// resolveFromDHT bounds the DHT part of a resolution.
	resolveFromDHT = 10 * time.Second
)

var seqKey = datastore.NewKey("/discovery/seq")

// discoverer advertises this node and finds others: it joins through the
// rendezvous nodes or the backup peers, keeps the cache of advertisements,
// serves the registrar on governance nodes, and re-advertises on host events.
type discoverer struct {
	n         *Node
	log       *slog.Logger
	priv      crypto.PrivKey
	chain     [][]byte
	verifier  *discovery.Verifier
	cache     *discovery.Directory
	registrar *discovery.Registrar // on governance and founding nodes only
	service   *discovery.Registrar // what serves the discovery protocol
	topic     *pubsub.Topic
	announce  []ma.Multiaddr
	filter    noAnnounce

	kick   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	current   *discovery.Record
	seq       uint64
	dhtDirty  bool                 // the current record is not in the DHT yet
	dhtPut    bool                 // a putDHT is running
	dhtAgain  bool                 // putDHT was asked for while one ran
	refreshed map[string]time.Time // org → last background refresh
	lastErr   error                // why the last advertisement failed
}

func newDiscoverer(n *Node, priv crypto.PrivKey, chain [][]byte) (*discoverer, error) {
	d := &discoverer{
		n:         n,
		log:       n.log,
		priv:      priv,
		chain:     chain,
		kick:      make(chan struct{}, 1),
		refreshed: make(map[string]time.Time),
		verifier: &discovery.Verifier{
			Network:     n.genesis.Network,
			Trust:       n.trust,
			Development: n.genesis.Development,
			Now:         n.cfg.now,
		},
	}
	for _, s := range n.cfg.Announce {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("announce address %q: %w", s, err)
		}
		if err := discovery.CheckAddr(a, n.genesis.Development); err != nil {
			return nil, fmt.Errorf("announce address: %w", err)
		}
		d.announce = append(d.announce, a)
	}
	var err error
	if d.filter, err = parseNoAnnounce(n.cfg.NoAnnounce); err != nil {
		return nil, err
	}
	return d, nil
}

// open loads the cache and, on governance nodes, the registrar.
func (d *discoverer) open(ctx context.Context) error {
	d.cache = discovery.NewDirectory(namespace.Wrap(d.n.ds, datastore.NewKey("/discovery/cache")), d.verifier, d.log)
	loaded, err := d.cache.Load(ctx)
	if err != nil {
		return fmt.Errorf("advertisement cache: %w", err)
	}
	d.log.Debug("advertisement cache loaded", "records", loaded)
	if b, err := d.n.ds.Get(ctx, seqKey); err == nil && len(b) == 8 {
		d.seq = binary.BigEndian.Uint64(b)
	}
	if r := d.n.self.Role; r == governance.RoleGovernance || r == governance.RoleFounding {
		dir := discovery.NewDirectory(namespace.Wrap(d.n.ds, datastore.NewKey("/discovery/registrar")), d.verifier, d.log)
		loaded, err := dir.Load(ctx)
		if err != nil {
			return fmt.Errorf("registrar: %w", err)
		}
		d.log.Info("registrar loaded", "advertisements", loaded)
		d.registrar = discovery.NewRegistrar(dir, true, d.log)
		d.registrar.OnRegister = d.registered
		d.service = d.registrar
	} else {
		d.service = discovery.NewRegistrar(d.cache, false, d.log)
		d.service.OnRegister = d.learn
	}
	return nil
}

// start registers the discovery handler and the capabilities topic, then
// starts the loop that joins and advertises.
func (d *discoverer) start() error {
	d.service.PeerOrg = d.n.peerOrg
	d.service.Attach(d.n.host)
	t, err := d.n.ps.Join(protocols.TopicCapabilities, d.validate, d.deliver)
	if err != nil {
		return err
	}
	d.topic = t
	sub, err := d.n.host.EventBus().Subscribe([]any{
		new(event.EvtLocalAddressesUpdated),
		new(event.EvtLocalProtocolsUpdated),
		new(event.EvtPeerIdentificationCompleted),
	})
	if err != nil {
		_ = t.Close()
		return fmt.Errorf("subscribe to host events: %w", err)
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	changed := make(chan string, 1)
	d.wg.Add(2)
	go func() {
		defer d.wg.Done()
		defer sub.Close()
		d.events(sub, changed)
	}()
	go func() {
		defer d.wg.Done()
		d.loop(changed)
	}()
	return nil
}

// events drains the host's event subscription at once, whatever the loop
// is doing: identify waits for every subscriber to take its event, so a
// subscriber busy advertising (a DHT put can take seconds) would stall the
// identification of every new connection of this node. Address and
// protocol changes go to the loop.
func (d *discoverer) events(sub event.Subscription, changed chan<- string) {
	for {
		select {
		case <-d.ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			reason := ""
			switch e := e.(type) {
			case event.EvtLocalAddressesUpdated:
				reason = "addresses changed"
			case event.EvtLocalProtocolsUpdated:
				reason = "protocols changed"
			case event.EvtPeerIdentificationCompleted:
				d.met(e.Peer) // does its network work in goroutines
				continue
			}
			select {
			case changed <- reason:
			default: // a change is already pending; the loop re-reads everything
			}
		}
	}
}

func (d *discoverer) close() error {
	if d.cancel != nil {
		d.cancel()
		d.wg.Wait()
	}
	if d.service != nil {
		d.service.Detach(d.n.host)
	}
	if d.topic != nil {
		return d.topic.Close()
	}
	return nil
}

// loop joins the network, then re-advertises on host events (debounced),
// before the advertisement expires, and joins again if every member is gone.
func (d *discoverer) loop(changed <-chan string) {
	d.join()
	d.advertise("start")
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.meet()
	}()

	ttl := time.Duration(d.n.cfg.AdvertisementTTL)
	periodic := time.NewTicker(ttl / 3)
	defer periodic.Stop()
	rejoin := time.NewTicker(rejoinInterval)
	defer rejoin.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	reason := ""
	for {
		select {
		case <-d.ctx.Done():
			return
		case reason = <-changed:
			debounce.Reset(advertiseDebounce)
		case <-d.kick:
			reason = "requested"
			debounce.Reset(advertiseDebounce)
		case <-debounce.C:
			d.advertise(reason)
		case <-periodic.C:
			d.advertise("periodic")
			d.n.res.republish(d.ctx)
		case <-rejoin.C:
			if len(d.n.members.Members()) == 0 {
				d.log.Info("no member connected; joining again")
				d.join()
			}
			d.mu.Lock()
			dirty := d.dhtDirty
			d.mu.Unlock()
			if dirty {
				d.putDHT()
			}
			if err := d.cache.Prune(d.ctx); err != nil {
				d.log.Warn("pruning the advertisement cache", "error", err)
			}
		}
	}
}

// met runs once a peer has been verified and identified: it gets this
// node's advertisement (a registrar registers it, a member caches it), and
// a DHT that had no peers gets the record.
func (d *discoverer) met(p peer.ID) {
	if _, ok := d.n.members.Verified(p); !ok {
		return
	}
	d.mu.Lock()
	cur, dirty := d.current, d.dhtDirty
	d.mu.Unlock()
	if cur == nil {
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.register(p, cur)
	}()
	if dirty {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.putDHT()
		}()
	}
}

func isRegistrar(m governance.Member) bool {
	return m.Role == governance.RoleGovernance || m.Role == governance.RoleFounding
}

// bootstrapPeers are the rendezvous nodes and up to joinPeers backup peers.
func (d *discoverer) bootstrapPeers() []peer.AddrInfo {
	out := d.rendezvous()
	backups := d.others(d.cache.Peers())
	rand.Shuffle(len(backups), func(i, j int) { backups[i], backups[j] = backups[j], backups[i] })
	return append(out, backups[:min(len(backups), joinPeers)]...)
}

// rendezvous are the genesis rendezvous nodes other than this one.
func (d *discoverer) rendezvous() []peer.AddrInfo {
	var out []peer.AddrInfo
	for _, s := range d.n.genesis.Rendezvous {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil || ai.ID == d.n.host.ID() {
			continue
		}
		out = append(out, *ai)
	}
	return out
}

// join dials the rendezvous nodes and, so that a node can rejoin while
// they are down, up to joinPeers backup peers from the cache; then it
// fetches the member list from a registrar and refreshes the DHT.
func (d *discoverer) join() {
	targets := d.bootstrapPeers()
	d.dialAll(targets, "join")

	if d.registrar == nil && len(d.n.members.Members()) == 0 {
		d.log.Warn("could not join: no rendezvous node or backup peer answered", "tried", len(targets))
	}
}

// meet fetches the member list from a registrar into the cache (the backup
// list for a later restart), connects to a few members directly so gossip
// and the DHT do not depend on the rendezvous nodes, and refreshes the DHT.
func (d *discoverer) meet() {
	ctx, cancel := context.WithTimeout(d.ctx, 2*discovery.StreamTimeout)
	defer cancel()
	if listed, err := d.fetchList(ctx, discovery.Filter{}); err == nil {
		var meet []peer.AddrInfo
		for _, rec := range d.others(listed) {
			if len(d.n.host.Network().ConnsToPeer(rec.ID)) == 0 {
				meet = append(meet, rec)
			}
		}
		rand.Shuffle(len(meet), func(i, j int) { meet[i], meet[j] = meet[j], meet[i] })
		d.dialAll(meet[:min(len(meet), joinPeers/2)], "meet")
	} else {
		d.log.Info("member list not fetched from a registrar", "error", err)
	}
	select {
	case <-d.n.dht.RefreshRoutingTable():
	case <-d.ctx.Done():
	}
}

func (d *discoverer) others(ais []peer.AddrInfo) []peer.AddrInfo {
	return slices.DeleteFunc(ais, func(ai peer.AddrInfo) bool { return ai.ID == d.n.host.ID() })
}

// dialAll connects to every target at once. It returns when the first
// one has proved membership, or when all have failed; the other dials go on
// in the background, so one dead rendezvous address does not hold up a join.
func (d *discoverer) dialAll(targets []peer.AddrInfo, why string) {
	first := make(chan struct{})
	var once sync.Once
	var pending sync.WaitGroup
	for _, ai := range targets {
		pending.Add(1)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			defer pending.Done()
			ctx, cancel := context.WithTimeout(d.ctx, 2*time.Duration(d.n.cfg.HandshakeTimeout))
			defer cancel()
			if _, err := d.n.Connect(ctx, ai); err != nil {
				d.log.Info("peer unreachable", "why", why, "peer", ai.ID, "org", d.n.peerOrg(ai.ID), "addrs", ai.Addrs, "error", err)
				return
			}
			once.Do(func() { close(first) })
		}()
	}
	all := make(chan struct{})
	go func() {
		pending.Wait()
		close(all)
	}()
	select {
	case <-first:
	case <-all:
	case <-d.ctx.Done():
	}
}

// registrars are the connected, verified governance and founding nodes.
func (d *discoverer) registrars() []peer.ID {
	var out []peer.ID
	for _, m := range d.n.members.Members() {
		if isRegistrar(m) {
			out = append(out, m.PeerID)
		}
	}
	return out
}

// fetchList asks this node's own registrar or the first remote one that
// answers for the members matching f, and learns them into the cache.
func (d *discoverer) fetchList(ctx context.Context, f discovery.Filter) ([]peer.AddrInfo, error) {
	recs, _, err := d.fromRegistrars(ctx, func(ctx context.Context, p peer.ID) ([][]byte, error) {
		return discovery.List(ctx, d.n.host, p, f)
	}, func() []*discovery.Record { return d.registrar.Directory().List(f) })
	if err != nil {
		return nil, err
	}
	out := make([]peer.AddrInfo, len(recs))
	for i, r := range recs {
		out[i] = peer.AddrInfo{ID: r.Ad.Peer, Addrs: r.Ad.Addrs}
	}
	return out, nil
}

// fromRegistrars asks the local registrar (local) or else remote ones in
// turn (remote) and verifies and learns what they return. It reports which
// registrars it tried and why they failed.
func (d *discoverer) fromRegistrars(ctx context.Context, remote func(context.Context, peer.ID) ([][]byte, error), local func() []*discovery.Record) ([]*discovery.Record, []string, error) {
	if d.registrar != nil {
		recs := local()
		for _, r := range recs {
			d.learn(r)
		}
		return recs, nil, nil
	}
	var tried []string
	answered := false
	for _, p := range d.registrars() {
		sealed, err := remote(ctx, p)
		if err != nil {
			tried = append(tried, fmt.Sprintf("registrar %s: %v", p, err))
			continue
		}
		recs := make([]*discovery.Record, 0, len(sealed))
		for _, s := range sealed {
			rec, err := d.verifier.Open(s)
			if err != nil {
				d.log.Warn("registrar sent an advertisement that does not verify", "peer", p, "org", d.n.peerOrg(p), "reason", err)
				continue
			}
			d.learn(rec)
			recs = append(recs, rec)
		}
		if len(recs) > 0 {
			return recs, tried, nil
		}
		// Another registrar may know more (one that was down when the
		// member registered, say).
		answered = true
		tried = append(tried, fmt.Sprintf("registrar %s: nothing registered", p))
	}
	if answered {
		return nil, tried, nil
	}
	if len(tried) == 0 {
		tried = append(tried, "registrar: no governance node connected")
	}
	return nil, tried, errors.New(strings.Join(tried, "; "))
}

// registered passes on an advertisement a member registered with this
// node's registrar: into the cache and onto the capabilities topic. Every
// member is connected to the rendezvous nodes, so a registrar's flood
// publish reaches each of them directly, however far gossip meshes have
// formed.
func (d *discoverer) registered(rec *discovery.Record) {
	d.learn(rec)
	if rec.Ad.Peer == d.n.host.ID() {
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		ctx, cancel := context.WithTimeout(d.ctx, discovery.StreamTimeout)
		defer cancel()
		if err := d.topic.Publish(ctx, rec.Sealed); err != nil && d.ctx.Err() == nil {
			d.log.Warn("registered advertisement not published", "peer", rec.Ad.Peer, "org", rec.Ad.Org, "error", err)
		}
	}()
}

// learn keeps a verified record of another node: in the cache, in the
// peerstore (so its addresses are dialable by peer ID) and, on a governance
// node, in the registrar.
func (d *discoverer) learn(rec *discovery.Record) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(d.ctx), 5*time.Second)
	defer cancel()
	changed, err := d.cache.Add(ctx, rec)
	if err != nil && !errors.Is(err, discovery.ErrStale) {
		d.log.Warn("advertisement not cached", "peer", rec.Ad.Peer, "org", rec.Ad.Org, "error", err)
	}
	if changed && rec.Ad.Peer != d.n.host.ID() {
		d.n.host.Peerstore().AddAddrs(rec.Ad.Peer, rec.Ad.Addrs, peerstore.AddressTTL)
		d.log.Debug("advertisement learned", "org", rec.Ad.Org, "peer", rec.Ad.Peer, "seq", rec.Ad.Seq, "addrs", rec.Ad.Addrs)
	}
	if d.registrar != nil {
		if _, err := d.registrar.Directory().Add(ctx, rec); err != nil && !errors.Is(err, discovery.ErrStale) {
			d.log.Warn("advertisement not registered", "peer", rec.Ad.Peer, "org", rec.Ad.Org, "error", err)
		}
	}
}

// addrs are the addresses to advertise: the configured announce list, or
// the host's addresses less NoAnnounce and, on a production network, less
// the private and loopback ones (each dropped one is logged with why).
func (d *discoverer) addrs() ([]ma.Multiaddr, error) {
	if len(d.announce) > 0 {
		return d.announce, nil
	}
	var out []ma.Multiaddr
	var refused []string
	for _, a := range d.n.host.Addrs() {
		if d.filter.excludes(a) {
			continue
		}
		if err := discovery.CheckAddr(a, d.n.genesis.Development); err != nil {
			refused = append(refused, err.Error())
			continue
		}
		if !slices.ContainsFunc(out, a.Equal) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no address to advertise: %s; set announce in the config to the node's public addresses", strings.Join(refused, "; "))
	}
	if len(refused) > 0 {
		d.log.Debug("addresses not advertised", "reasons", refused)
	}
	if len(out) > discovery.MaxAddrs {
		out = out[:discovery.MaxAddrs]
	}
	return out, nil
}
