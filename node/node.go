// Package node runs a FinP2P node: a libp2p host (TCP and QUIC) that only
// members of the network can reach, with the private kad-dht, gossipsub and
// the FinP2P protocols on top. It is the public Go API of the library.
//
// A Node is built with New (no I/O), started with Start and stopped with
// Close, which undoes Start in reverse order.
package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	dssync "github.com/ipfs/go-datastore/sync"
	pebbleds "github.com/ipfs/go-ds-pebble"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/ledger"
	"github.com/finp2p/go-finp2p/membership"
	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/pubsub"
	"github.com/finp2p/go-finp2p/resource"
)

// Version is the software version nodes announce.
const Version = "0.1.0-dev"

// Node is one FinP2P node.
type Node struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	started atomic.Bool   // set under mu; read without it by Started
	closers []namedCloser // what Start set up, undone in reverse

	genesis *governance.Genesis
	trust   *governance.TrustStore
	self    governance.Member
	ds      datastore.Batching
	members *membership.Service
	host    host.Host
	ps      *pubsub.PubSub
	dht     *dht.IpfsDHT
	revs    *revocations
	disc    *discoverer
	res     *resources
	acc     *access
	upd     *updates
	ledger  ledger.Ledger
	// standbyOf is the org ledger a standby node keeps a replica of
	// instead of executing one; "" for other nodes.
	standbyOf string
	assets    *assets
	priv      *private
	repl      *replicas
	bc        *broadcasts
	metrics   *metrics // nil without WithMetrics
}

type namedCloser struct {
	name  string
	close func() error
}

// New checks the configuration and returns a node that is not started. It
// does no I/O.
func New(opts ...Option) (*Node, error) {
	cfg := DefaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("node option: %w", err)
		}
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Node{cfg: cfg, log: cfg.logger}, nil
}

// Start loads the node's identity, opens its datastore, starts the host with
// the membership gate, registers every protocol, topic and validator, and only
// then dials the genesis rendezvous nodes. If it fails, what it set up is
// closed again.
func (n *Node) Start(ctx context.Context) (err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started.Load() {
		return errors.New("node already started")
	}
	defer func() {
		if err != nil {
			n.closeLocked(context.Background())
		}
	}()

	key, err := governance.ReadKeyFile(n.cfg.path(n.cfg.Key))
	if err != nil {
		return fmt.Errorf("start: node key: %w", err)
	}
	priv, err := crypto.UnmarshalEd25519PrivateKey(key)
	if err != nil {
		return fmt.Errorf("start: node key %s: %w", n.cfg.path(n.cfg.Key), err)
	}
	if n.genesis, err = governance.LoadGenesis(n.cfg.path(n.cfg.Genesis)); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	roots, err := n.genesis.RootCertificates()
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if n.trust, err = governance.NewTrustStore(roots); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	chain, err := governance.LoadCertificatesPEM(n.cfg.path(n.cfg.Certificate))
	if err != nil {
		return fmt.Errorf("start: node certificate: %w", err)
	}
	chainDER := make([][]byte, len(chain))
	for i, c := range chain {
		chainDER[i] = c.Raw
	}

	if err := n.openDatastore(); err != nil {
		return fmt.Errorf("start: %w", err)
	}

	n.members, err = membership.New(membership.Config{
		Network:          n.genesis.Network,
		Trust:            n.trust,
		Chain:            chainDER,
		Datastore:        namespace.Wrap(n.ds, datastore.NewKey("/membership")),
		HandshakeTimeout: time.Duration(n.cfg.HandshakeTimeout),
		BlockDuration:    time.Duration(n.cfg.BlockDuration),
		Logger:           n.log,
		Registerer:       n.cfg.registerer,
		Now:              n.cfg.now,
	})
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	n.onClose("membership", n.members.Close)
	if err := n.members.Start(ctx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	// Checked after the stored revocation lists are loaded, so a node whose
	// own certificate was revoked says so instead of being refused by all.
	if n.self, err = n.trust.VerifyPeer(chainDER, key.Public().(ed25519.PublicKey), n.cfg.now()); err != nil {
		return fmt.Errorf("start: this node's certificate %s: %w", n.cfg.path(n.cfg.Certificate), err)
	}
	// "peer" and "org" are reserved for the peer a line is about.
	n.log = n.log.With("self", n.self.PeerID, "self_org", n.self.OrgID)

	if n.metrics, err = newMetrics(n.cfg.registerer); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if err := n.startHost(priv); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	n.members.Attach(n.host)

	if n.ps, err = pubsub.New(context.Background(), n.host, pubsub.Config{
		Member:    func(p peer.ID) bool { _, ok := n.members.Verified(p); return ok },
		Logger:    n.log,
		Validated: n.metrics.gossipValidated,
	}); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	n.onClose("pubsub", n.ps.Close)
	if n.revs, err = startRevocations(n.ps, n.members, n.log); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	n.onClose("revocations topic", n.revs.close)

	if n.disc, err = newDiscoverer(n, priv, chainDER); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if err := n.disc.open(ctx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	n.res = newResources(n)
	if err := n.res.open(ctx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	n.acc = newAccess(n.res)
	if err := n.acc.open(ctx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if err := n.openLedger(ctx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if err := n.repl.open(ctx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	n.bc = newBroadcasts(n)
	if err := n.bc.open(ctx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	n.bc.registerKinds()
	if n.dht, err = dht.New(n.host,
		dht.Mode(dht.ModeServer),
		dht.ProtocolPrefix(protocols.DHTPrefix),
		// Only FinP2P records: no public-key or IPNS records in this DHT.
		dht.Validator(record.NamespacedValidator{
			discovery.DHTNamespace: discovery.DHTValidator{V: n.disc.verifier},
			resource.DHTNamespace:  resource.DHTValidator{V: n.res.verifier},
		}),
		dht.Datastore(namespace.Wrap(n.ds, datastore.NewKey("/dht"))),
		// When the routing table empties, kad-dht reconnects to these: the
		// rendezvous nodes and the backup peers.
		dht.BootstrapPeersFunc(n.disc.bootstrapPeers),
		dht.RoutingTableFilter(func(_ any, p peer.ID) bool { _, ok := n.members.Verified(p); return ok }),
		// A query may dial a member not met yet: the membership gate holds
		// the DHT stream until that peer has proved membership, so only
		// peers known to be bad are left out.
		dht.QueryFilter(func(_ any, ai peer.AddrInfo) bool { _, blocked := n.members.Blocked(ai.ID); return !blocked }),
	); err != nil {
		return fmt.Errorf("start: kad-dht: %w", err)
	}
	n.onClose("kad-dht", n.dht.Close)

	// Last: the discovery handler and the capabilities topic, then the loop
	// that joins through the rendezvous nodes (or the backup peers) and
	// advertises.
	n.res.start()
	n.onClose("resources", n.res.close)
	n.acc.start()
	n.onClose("resource access", n.acc.close)
	n.upd = newUpdates(n)
	n.upd.start()
	n.onClose("resource updates", n.upd.close)
	n.priv = newPrivate(n)
	n.priv.start()
	n.onClose("private data", n.priv.close)
	if n.assets, err = newAssets(n); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	n.assets.start()
	n.onClose("asset transactions", n.assets.close)
	if err := n.bc.start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	n.onClose("broadcasts", n.bc.close)
	if err := n.disc.start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	n.onClose("discovery", n.disc.close)
	// After discovery: a follower resolves its ledger's primary.
	n.repl.start()
	n.onClose("ledger replication", n.repl.close)

	n.started.Store(true)
	n.log.Info("node started", "role", n.self.Role, "network", n.genesis.Network, "addrs", n.host.Addrs())
	return nil
}

func (n *Node) openDatastore() error {
	switch {
	case n.cfg.datastore != nil:
		n.ds = n.cfg.datastore
	case n.cfg.Datastore == DatastoreMemory:
		n.ds = dssync.MutexWrap(datastore.NewMapDatastore())
	default:
		dir := filepath.Join(n.cfg.RepoDir, DatastoreDir)
		ds, err := OpenPebble(dir)
		if err != nil {
			return fmt.Errorf("open datastore %s: %w", dir, err)
		}
		n.ds = ds
		n.onClose("datastore", ds.Close)
	}
	return nil
}

// OpenPebble opens (or creates) a pebble datastore in dir as a node opens
// its own: writes not synced until Sync, a bloom filter on every level,
// a 64 MiB block cache.
func OpenPebble(dir string) (*pebbleds.Datastore, error) {
	return pebbleds.NewDatastore(dir, pebbleds.WithPebbleOpts(pebbleOptions()), pebbleds.WithCacheSize(pebbleCacheSize))
}

// Sizes of the node's pebble datastore: its block cache, and its memtable,
// larger than pebble's 4 MiB default so that fewer, larger flushes leave
// less for compactions to rewrite (a transfer writes a few KiB).
const (
	pebbleCacheSize    = 64 << 20
	pebbleMemTableSize = 32 << 20
)

// pebbleOptions are pebble's defaults with a bloom filter on every level:
// most of a transfer's reads look up keys that are not there (idempotency
// keys, receipts not stored yet), and without a filter each such lookup
// reads and decompresses an index and a data block of every table.
func pebbleOptions() *pebble.Options {
	opts := &pebble.Options{MemTableSize: pebbleMemTableSize}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return opts
}

func (n *Node) startHost(priv crypto.PrivKey) error {
	rcOpts, err := resourceManagerOptions(n.cfg.registerer)
	if err != nil {
		return err
	}
	limits := resourceLimits()
	inner, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()), rcOpts...)
	if err != nil {
		return fmt.Errorf("resource manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(priv),
		libp2p.ListenAddrStrings(n.cfg.Listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.ResourceManager(n.members.ResourceManager(inner)),
		libp2p.ConnectionGater(n.members.ConnectionGater()),
		libp2p.UserAgent("go-finp2p/" + Version),
		libp2p.DisableRelay(),
		libp2p.Ping(false),
	}
	if n.cfg.registerer != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(n.cfg.registerer))
	} else {
		opts = append(opts, libp2p.DisableMetrics())
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		_ = inner.Close()
		if errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use") {
			return &ConfigError{Field: "listen", Err: fmt.Errorf("%v: a port is already in use by another process: pick another port or stop the process that holds it: %w", n.cfg.Listen, err)}
		}
		return fmt.Errorf("libp2p host on %v: %w", n.cfg.Listen, err)
	}
	// With metrics, the FinP2P protocols' streams are counted and timed
	// by the host they are set up on (meteredHost).
	n.host = n.metrics.host(h)
	n.onClose("host", h.Close)
	return nil
}

// Request protocols a member may run many of at once with one node: a
// bank's node sends asset transactions, queries and broadcast answers in
// parallel over one connection. libp2p's default of about 64 inbound
// streams per peer and protocol would refuse the 65th concurrent request.
var busyProtocols = []protocol.ID{
	protocols.AssetTx, protocols.PrivateData, protocols.ResourceGet, protocols.ResourceACL,
	protocols.BroadcastRequest, protocols.BroadcastResponse,
}

// busyProtocolPeerLimit is the per-peer limit of each busy protocol.
var busyProtocolPeerLimit = rcmgr.BaseLimit{StreamsInbound: 1024, StreamsOutbound: 1024, Streams: 2048, Memory: 64 << 20}

// resourceLimits are libp2p's default limits with room for busyProtocols.
func resourceLimits() rcmgr.ScalingLimitConfig {
	cfg := rcmgr.DefaultLimits
	// The copy would share the package default's map.
	cfg.ProtocolPeerLimits = maps.Clone(cfg.ProtocolPeerLimits)
	for _, p := range busyProtocols {
		cfg.AddProtocolPeerLimit(p, busyProtocolPeerLimit, rcmgr.BaseLimitIncrease{})
	}
	return cfg
}

func (n *Node) onClose(name string, f func() error) {
	n.closers = append(n.closers, namedCloser{name, f})
}

// Started reports whether Start has finished and Close has not begun. It
// does not wait for a Start or Close in progress.
func (n *Node) Started() bool { return n.started.Load() }

// Close stops the node, undoing Start in reverse order, within ctx.
func (n *Node) Close(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.started.Store(false)
	return n.closeLocked(ctx)
}

func (n *Node) closeLocked(ctx context.Context) error {
	closers := n.closers
	n.closers = nil
	done := make(chan error, 1)
	go func() {
		var errs []error
		for i := len(closers) - 1; i >= 0; i-- {
			t0 := time.Now()
			err := closers[i].close()
			n.log.Debug("closed", "part", closers[i].name, "took", time.Since(t0))
			if err != nil {
				errs = append(errs, fmt.Errorf("close %s: %w", closers[i].name, err))
			}
		}
		done <- errors.Join(errs...)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("close node: %w", ctx.Err())
	}
}

// ID is the node's peer ID.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Host is the node's libp2p host.
func (n *Node) Host() host.Host { return n.host }

// Addrs are the node's listen addresses with its peer ID.
func (n *Node) Addrs() []ma.Multiaddr {
	info := peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()}
	addrs, _ := peer.AddrInfoToP2pAddrs(&info)
	return addrs
}

// Self is the member this node's certificate proves.
func (n *Node) Self() governance.Member { return n.self }

// Genesis is the network's genesis.
func (n *Node) Genesis() *governance.Genesis { return n.genesis }

// Members lists the verified members the node is connected to.
func (n *Node) Members() []governance.Member { return n.members.Members() }

// Connect dials a peer and waits until it has proved membership.
func (n *Node) Connect(ctx context.Context, ai peer.AddrInfo) (governance.Member, error) {
	if err := n.host.Connect(ctx, ai); err != nil {
		return governance.Member{}, fmt.Errorf("connect to %s: %w", ai.ID, err)
	}
	m, err := n.members.WaitVerified(ctx, ai.ID)
	if err != nil {
		return governance.Member{}, fmt.Errorf("connect to %s: %w", ai.ID, err)
	}
	return m, nil
}

// Blocked reports whether the node refuses peer p, and why.
func (n *Node) Blocked(p peer.ID) (string, bool) { return n.members.Blocked(p) }

// ApplyRevocationList applies a CRL signed by a CA of the network: members it
// revokes are disconnected and blocked, and the list is published to the
// network so every member does the same. issuerChain holds the issuing CA's
// certificate first. It reports whether the list was new to this node.
//
// The list is published first and applied by the topic validator as this
// node validates its own message, so it leaves before the revoked peers are
// cut off and reaches them too, telling their operators why.
func (n *Node) ApplyRevocationList(ctx context.Context, crlDER []byte, issuerChain [][]byte) (bool, error) {
	if n.revs.holds(crlDER) {
		return false, nil
	}
	if err := n.revs.publish(ctx, crlDER, issuerChain); err != nil {
		// A refused list fails validation; say why.
		if _, verr := n.members.ApplyCRL(crlDER, issuerChain); verr != nil {
			return false, fmt.Errorf("revocation list: %w", verr)
		}
		return false, err
	}
	if !n.revs.holds(crlDER) {
		// Valid but not newer than the list held for that CA.
		return false, nil
	}
	return true, nil
}

// DHT is the node's private kad-dht.
func (n *Node) DHT() *dht.IpfsDHT { return n.dht }

// PubSub is the node's gossipsub router.
func (n *Node) PubSub() *pubsub.PubSub { return n.ps }

// peerOrg is the org to log for peer p: its certified org, or
// governance.UnverifiedOrg while it has not proved one. Every log line
// about a peer carries "peer" and "org"; the node's own id and org are
// "self" and "self_org".
func (n *Node) peerOrg(p peer.ID) string {
	if org, ok := n.orgOf(p); ok {
		return org
	}
	return governance.UnverifiedOrg
}
