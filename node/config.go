package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipfs/go-datastore"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/atomicfile"
	"github.com/finp2p/go-finp2p/ledger"
)

// Files in a node's repo directory.
const (
	ConfigFileName  = "config.json"
	KeyFileName     = "node.key"
	CSRFileName     = "node.csr"
	CertFileName    = "node.pem"
	GenesisFileName = "genesis.json"
	TokenFileName   = "api.token"
	DatastoreDir    = "datastore"
)

// Datastore kinds.
const (
	DatastorePebble = "pebble"
	DatastoreMemory = "memory"
)

// Config is a node's configuration. The part with JSON tags is what a repo's
// config.json holds; paths in it are relative to the repo directory.
type Config struct {
	// RepoDir holds the node's key, certificate, genesis file and datastore.
	RepoDir string `json:"-"`
	// Listen lists the TCP and QUIC (quic-v1) multiaddrs the node listens on.
	Listen []string `json:"listen"`
	// API is the host:port of the local HTTP API. It binds to loopback
	// unless the operator chooses otherwise.
	API string `json:"api"`
	// Genesis is the genesis file.
	Genesis string `json:"genesis"`
	// Certificate is the PEM file holding the node's certificate followed by
	// the CA certificates above it (not the founding root).
	Certificate string `json:"certificate"`
	// Key is the node's Ed25519 key, PKCS#8 PEM, mode 0600.
	Key string `json:"key"`
	// Datastore is "pebble" (persistent, in the repo) or "memory" (tests).
	Datastore string `json:"datastore"`
	// HandshakeTimeout bounds the membership handshake.
	HandshakeTimeout Duration `json:"handshake_timeout"`
	// BlockDuration is how long a peer that failed the handshake is blocked.
	BlockDuration Duration `json:"block_duration"`
	// Announce, if set, replaces the addresses the node advertises (like
	// kubo's Addresses.Announce): multiaddrs without /p2p.
	Announce []string `json:"announce,omitempty"`
	// NoAnnounce removes addresses from what is advertised: an exact
	// multiaddr, or an IP range written /ip4/10.0.0.0/ipcidr/8.
	NoAnnounce []string `json:"no_announce,omitempty"`
	// Services are the FinP2P services the org offers, as advertised.
	Services []string `json:"services,omitempty"`
	// Ledgers are the distributed ledgers the org can reach, as advertised.
	Ledgers []string `json:"ledgers,omitempty"`
	// AdvertisementTTL is how long an advertisement is valid; the node
	// re-advertises well before it expires.
	AdvertisementTTL Duration `json:"advertisement_ttl"`
	// FollowLedgers are ledgers of other orgs this node keeps a replica of,
	// received from each ledger's primary node; it answers balance and
	// receipt-validation broadcasts from the replica. A ledger id names its
	// org before the first "/" (e.g. "bank-a/embedded"), and only a node of
	// that org is accepted as its primary.
	FollowLedgers []string `json:"follow_ledgers,omitempty"`
	// LedgerFollowers are the orgs allowed to replicate this node's
	// embedded ledger; "*" allows every member.
	LedgerFollowers []string `json:"ledger_followers,omitempty"`

	datastore  datastore.Batching
	ledger     ledger.Ledger
	provider   PrivateDataProvider
	refusals   refusalLimit
	logger     *slog.Logger
	registerer prometheus.Registerer
	now        func() time.Time
}

// Duration is a time.Duration written as "10s" in JSON.
type Duration time.Duration

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string such as "10s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"10s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// DefaultConfig is what init writes and what New starts from.
func DefaultConfig() Config {
	return Config{
		Listen:           []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"},
		API:              "127.0.0.1:5001",
		Genesis:          GenesisFileName,
		Certificate:      CertFileName,
		Key:              KeyFileName,
		Datastore:        DatastorePebble,
		HandshakeTimeout: Duration(10 * time.Second),
		BlockDuration:    Duration(10 * time.Minute),
		AdvertisementTTL: Duration(24 * time.Hour),
	}
}

// Option changes a Config and reports a value it cannot accept.
type Option func(*Config) error

// WithRepo sets the repo directory.
func WithRepo(dir string) Option {
	return func(c *Config) error {
		if dir == "" {
			return errors.New("repo directory is empty")
		}
		c.RepoDir = dir
		return nil
	}
}

// WithListenAddrs replaces the listen addresses.
func WithListenAddrs(addrs ...string) Option {
	return func(c *Config) error {
		for _, a := range addrs {
			if err := checkListenAddr(a); err != nil {
				return err
			}
		}
		c.Listen = append([]string(nil), addrs...)
		return nil
	}
}

// WithAPIAddr sets the host:port of the local HTTP API.
func WithAPIAddr(addr string) Option {
	return func(c *Config) error {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("api address %q: %w", addr, err)
		}
		c.API = addr
		return nil
	}
}

// WithGenesisFile sets the genesis file.
func WithGenesisFile(path string) Option {
	return pathOption("genesis", path, func(c *Config) *string { return &c.Genesis })
}

// WithCertFile sets the certificate chain file.
func WithCertFile(path string) Option {
	return pathOption("certificate", path, func(c *Config) *string { return &c.Certificate })
}

// WithKeyFile sets the node key file.
func WithKeyFile(path string) Option {
	return pathOption("key", path, func(c *Config) *string { return &c.Key })
}

func pathOption(name, path string, field func(*Config) *string) Option {
	return func(c *Config) error {
		if path == "" {
			return fmt.Errorf("%s file path is empty", name)
		}
		*field(c) = path
		return nil
	}
}

// WithInMemoryDatastore keeps all node state in memory; for tests.
func WithInMemoryDatastore() Option {
	return func(c *Config) error {
		c.Datastore = DatastoreMemory
		return nil
	}
}

// WithDatastore makes the node use ds; the node does not close it.
func WithDatastore(ds datastore.Batching) Option {
	return func(c *Config) error {
		if ds == nil {
			return errors.New("datastore is nil")
		}
		c.datastore = ds
		return nil
	}
}

// WithHandshakeTimeout bounds the membership handshake.
func WithHandshakeTimeout(d time.Duration) Option {
	return func(c *Config) error {
		if d <= 0 {
			return fmt.Errorf("handshake timeout %s must be positive", d)
		}
		c.HandshakeTimeout = Duration(d)
		return nil
	}
}

// WithBlockDuration sets how long a peer that failed the handshake is blocked.
func WithBlockDuration(d time.Duration) Option {
	return func(c *Config) error {
		if d <= 0 {
			return fmt.Errorf("block duration %s must be positive", d)
		}
		c.BlockDuration = Duration(d)
		return nil
	}
}

// WithAnnounce sets the addresses the node advertises instead of its
// listen addresses.
func WithAnnounce(addrs ...string) Option {
	return func(c *Config) error {
		for _, a := range addrs {
			if err := checkAnnounceAddr(a); err != nil {
				return err
			}
		}
		c.Announce = append([]string(nil), addrs...)
		return nil
	}
}

// WithNoAnnounce sets addresses or /ipcidr ranges never advertised.
func WithNoAnnounce(addrs ...string) Option {
	return func(c *Config) error {
		if _, err := parseNoAnnounce(addrs); err != nil {
			return err
		}
		c.NoAnnounce = append([]string(nil), addrs...)
		return nil
	}
}

// WithServices sets the services the node advertises.
func WithServices(services ...string) Option {
	return func(c *Config) error {
		if err := checkNames("service", services); err != nil {
			return err
		}
		c.Services = append([]string(nil), services...)
		return nil
	}
}

// WithLedgers sets the ledgers the node advertises it can reach.
func WithLedgers(ledgers ...string) Option {
	return func(c *Config) error {
		if err := checkNames("ledger", ledgers); err != nil {
			return err
		}
		c.Ledgers = append([]string(nil), ledgers...)
		return nil
	}
}

// WithFollowLedgers makes the node keep replicas of ledgers of other orgs.
func WithFollowLedgers(ledgers ...string) Option {
	return func(c *Config) error {
		if err := checkFollowLedgers(ledgers); err != nil {
			return err
		}
		c.FollowLedgers = append([]string(nil), ledgers...)
		return nil
	}
}

// WithLedgerFollowers sets the orgs allowed to replicate this node's
// embedded ledger ("*" for every member).
func WithLedgerFollowers(orgs ...string) Option {
	return func(c *Config) error {
		if err := checkFollowers(orgs); err != nil {
			return err
		}
		c.LedgerFollowers = append([]string(nil), orgs...)
		return nil
	}
}

// WithAdvertisementTTL sets how long an advertisement is valid.
func WithAdvertisementTTL(d time.Duration) Option {
	return func(c *Config) error {
		if err := checkAdvertisementTTL(d); err != nil {
			return err
		}
		c.AdvertisementTTL = Duration(d)
		return nil
	}
}

// WithLedger makes the node execute its org's asset transactions on l
// instead of the embedded ledger in its datastore.
func WithLedger(l ledger.Ledger) Option {
	return func(c *Config) error {
		if l == nil {
			return errors.New("ledger is nil")
		}
		c.ledger = l
		return nil
	}
}

// WithPrivateDataProvider makes the node answer private data queries about
// its org's resources from p instead of its datastore.
func WithPrivateDataProvider(p PrivateDataProvider) Option {
	return func(c *Config) error {
		if p == nil {
			return errors.New("private data provider is nil")
		}
		c.provider = p
		return nil
	}
}

// refusalLimit is the per-org budget of refused resource requests.
type refusalLimit struct {
	perSecond float64
	burst     int
}

// WithRefusalLimit sets how many refused resource requests an org may send
// at once (burst) and per second before the node drops its requests
// unexamined. The defaults are resource.DefaultRefusalRate and
// resource.DefaultRefusalBurst.
func WithRefusalLimit(perSecond float64, burst int) Option {
	return func(c *Config) error {
		if !(perSecond > 0) || burst <= 0 {
			return fmt.Errorf("refusal limit %g/s, burst %d: both must be positive", perSecond, burst)
		}
		c.refusals = refusalLimit{perSecond, burst}
		return nil
	}
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option {
	return func(c *Config) error {
		if l == nil {
			return errors.New("logger is nil")
		}
		c.logger = l
		return nil
	}
}

// WithMetrics registers the node's metrics, libp2p's among them, with r.
func WithMetrics(r prometheus.Registerer) Option {
	return func(c *Config) error {
		if r == nil {
			return errors.New("metrics registerer is nil")
		}
		c.registerer = r
		return nil
	}
}

// WithClock replaces time.Now, for tests of expiry.
func WithClock(now func() time.Time) Option {
	return func(c *Config) error {
		if now == nil {
			return errors.New("clock is nil")
		}
		c.now = now
		return nil
	}
}

// WithConfig replaces the file part of the configuration with f, after
// checking every field. Later options still override it.
func WithConfig(f Config) Option {
	return func(c *Config) error {
		repo := c.RepoDir
		internal := *c
		*c = f
		c.RepoDir = repo
		c.datastore, c.logger, c.registerer, c.now = internal.datastore, internal.logger, internal.registerer, internal.now
		c.refusals, c.ledger, c.provider = internal.refusals, internal.ledger, internal.provider
		return nil
	}
}

// LoadConfigFile reads a repo's config.json strictly: an unknown field is an
// error that names it.
func LoadConfigFile(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config %s: %w", path, err)
	}
	c := DefaultConfig()
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// WriteConfigFile writes the file part of c as indented JSON, atomically.
func WriteConfigFile(path string, c Config) error {
	data, err := marshalConfig(c)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o644)
}

func marshalConfig(c Config) ([]byte, error) {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return append(data, '\n'), nil
}

// ConfigError is an invalid configuration: the config.json field that is
// wrong and why.
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string { return "config: " + e.Field + ": " + e.Err.Error() }

func (e *ConfigError) Unwrap() error { return e.Err }

// Validate checks every field and names the first that is wrong, as a
// *ConfigError.
func (c *Config) Validate() error {
	if c.RepoDir == "" {
		return &ConfigError{Field: "repo", Err: errors.New("repo directory is not set")}
	}
	if len(c.Listen) == 0 {
		return &ConfigError{Field: "listen", Err: errors.New("no listen address")}
	}
	for _, a := range c.Listen {
		if err := checkListenAddr(a); err != nil {
			return &ConfigError{Field: "listen", Err: err}
		}
	}
	if _, _, err := net.SplitHostPort(c.API); err != nil {
		return &ConfigError{Field: "api", Err: fmt.Errorf("%q: %w", c.API, err)}
	}
	for name, v := range map[string]string{"genesis": c.Genesis, "certificate": c.Certificate, "key": c.Key} {
		if v == "" {
			return &ConfigError{Field: name, Err: errors.New("file path is empty")}
		}
	}
	if c.datastore == nil && c.Datastore != DatastorePebble && c.Datastore != DatastoreMemory {
		return &ConfigError{Field: "datastore", Err: fmt.Errorf("%q is not %q or %q", c.Datastore, DatastorePebble, DatastoreMemory)}
	}
	if c.HandshakeTimeout <= 0 {
		return &ConfigError{Field: "handshake_timeout", Err: fmt.Errorf("%s must be positive", time.Duration(c.HandshakeTimeout))}
	}
	if c.BlockDuration <= 0 {
		return &ConfigError{Field: "block_duration", Err: fmt.Errorf("%s must be positive", time.Duration(c.BlockDuration))}
	}
	for _, a := range c.Announce {
		if err := checkAnnounceAddr(a); err != nil {
			return &ConfigError{Field: "announce", Err: err}
		}
	}
	if _, err := parseNoAnnounce(c.NoAnnounce); err != nil {
		return &ConfigError{Field: "no_announce", Err: err}
	}
	if err := checkNames("service", c.Services); err != nil {
		return &ConfigError{Field: "services", Err: err}
	}
	if err := checkNames("ledger", c.Ledgers); err != nil {
		return &ConfigError{Field: "ledgers", Err: err}
	}
	if err := checkAdvertisementTTL(time.Duration(c.AdvertisementTTL)); err != nil {
		return &ConfigError{Field: "advertisement_ttl", Err: err}
	}
	if err := checkFollowLedgers(c.FollowLedgers); err != nil {
		return &ConfigError{Field: "follow_ledgers", Err: err}
	}
	if err := checkFollowers(c.LedgerFollowers); err != nil {
		return &ConfigError{Field: "ledger_followers", Err: err}
	}
	return nil
}

// checkFollowLedgers checks ledger ids to follow: valid ids, each naming
// its org before a "/", no repeats.
func checkFollowLedgers(ids []string) error {
	if err := checkNames("ledger", ids); err != nil {
		return err
	}
	for _, id := range ids {
		if err := ledger.CheckID("ledger", id); err != nil {
			return err
		}
		org, _, ok := strings.Cut(id, "/")
		if !ok {
			return fmt.Errorf("ledger %q names no org: want <org>/<name>, e.g. %q", id, "bank-a/embedded")
		}
		if err := governance.ValidateOrgID(org); err != nil {
			return fmt.Errorf("ledger %q: %w", id, err)
		}
	}
	return nil
}

// checkFollowers checks the orgs allowed to follow: org ids or "*".
func checkFollowers(orgs []string) error {
	for _, o := range orgs {
		if o == "*" {
			continue
		}
		if err := governance.ValidateOrgID(o); err != nil {
			return fmt.Errorf("follower %q: %w", o, err)
		}
	}
	return nil
}

// path resolves a configured file path against the repo directory.
func (c *Config) path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.RepoDir, p)
}

func checkListenAddr(s string) error {
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", s, err)
	}
	tcp := false
	quic := false
	ma.ForEach(a, func(c ma.Component) bool {
		switch c.Protocol().Code {
		case ma.P_TCP:
			tcp = true
		case ma.P_QUIC_V1:
			quic = true
		}
		return true
	})
	if !tcp && !quic {
		return fmt.Errorf("listen address %q is neither TCP nor QUIC (quic-v1)", s)
	}
	return nil
}
