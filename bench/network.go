package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/node"
)

// networkName is the genesis network name of every bench network.
const networkName = "finp2p-bench"

// network is a certified FinP2P network built through the public API only
// (governance and node), the way a real one is: a founding authority and
// node, a governance authority and node (both rendezvous nodes and
// registrars), and members that join through them.
type network struct {
	dir         string
	genesisFile string
	founding    *governance.Authority
	governance  *governance.Authority
	log         *slog.Logger

	mu    sync.Mutex
	nodes []*member
}

// member is one node of a bench network and the repo it runs from.
type member struct {
	org  string
	repo string
	opts []node.Option
	// pebble makes the node keep its state in the pebble datastore in its
	// repo, as config.json says by default, instead of in memory.
	pebble bool

	mu sync.Mutex
	n  *node.Node
}

// Node is the running node, nil while it is stopped.
func (m *member) Node() *node.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n
}

// newNetwork creates the founding and governance authorities and a
// development genesis file in dir. It starts no node.
func newNetwork(dir string, log *slog.Logger) (*network, error) {
	now := time.Now()
	founding, err := governance.InitFoundingAuthority(filepath.Join(dir, "founding-ca"), networkName, "founding-org", now.Add(-48*time.Hour), 96*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("founding authority: %w", err)
	}
	govKey, err := governance.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("governance CA key: %w", err)
	}
	csrDER, err := governance.CreateGovernanceCACSR(govKey, "governance-org")
	if err != nil {
		return nil, fmt.Errorf("governance CA request: %w", err)
	}
	csr, err := governance.ParseCSR(csrDER)
	if err != nil {
		return nil, fmt.Errorf("governance CA request: %w", err)
	}
	govCert, err := founding.CertifyGovernanceCA(csr, now.Add(-47*time.Hour), 72*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("certify governance CA: %w", err)
	}
	gov, err := governance.InitGovernanceAuthority(filepath.Join(dir, "governance-ca"), govKey, govCert, []*x509.Certificate{founding.Certificate()})
	if err != nil {
		return nil, fmt.Errorf("governance authority: %w", err)
	}
	g := &governance.Genesis{
		Network:     networkName,
		Roots:       []string{string(governance.EncodeCertificatesPEM(founding.Certificate()))},
		Created:     now,
		Development: true, // loopback addresses
	}
	genesisFile := filepath.Join(dir, "genesis.json")
	if err := g.Save(genesisFile); err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	return &network{dir: dir, genesisFile: genesisFile, founding: founding, governance: gov, log: log}, nil
}

// newRepo initialises a repo for a node of org with role, certified by ca
// (the founding authority for the founding node, the governance authority
// for everyone else).
func (nw *network) newRepo(org string, role governance.Role, ca *governance.Authority) (string, error) {
	dir, err := os.MkdirTemp(nw.dir, org+"-")
	if err != nil {
		return "", fmt.Errorf("repo of %s: %w", org, err)
	}
	if _, err := node.Init(dir, node.InitOptions{Org: org, Role: role, Genesis: nw.genesisFile}); err != nil {
		return "", fmt.Errorf("repo of %s: %w", org, err)
	}
	data, err := os.ReadFile(filepath.Join(dir, node.CSRFileName))
	if err != nil {
		return "", fmt.Errorf("repo of %s: %w", org, err)
	}
	csr, err := governance.ParseCSR(data)
	if err != nil {
		return "", fmt.Errorf("repo of %s: %w", org, err)
	}
	leaf, _, err := ca.CertifyNode(csr, time.Now().Add(-time.Minute), 12*time.Hour)
	if err != nil {
		return "", fmt.Errorf("certify %s: %w", org, err)
	}
	chain := []*x509.Certificate{leaf}
	if !ca.IsFounding() {
		chain = append(chain, ca.Certificate())
	}
	if err := os.WriteFile(filepath.Join(dir, node.CertFileName), governance.EncodeCertificatesPEM(chain...), 0o644); err != nil {
		return "", fmt.Errorf("repo of %s: %w", org, err)
	}
	return dir, nil
}

// setRendezvous rewrites the genesis file so that repos created from now
// on join through these nodes' TCP addresses.
func (nw *network) setRendezvous(nodes ...*node.Node) error {
	g, err := governance.LoadGenesis(nw.genesisFile)
	if err != nil {
		return err
	}
	g.Rendezvous = nil
	for _, n := range nodes {
		for _, a := range n.Addrs() {
			if strings.Contains(a.String(), "/tcp/") {
				g.Rendezvous = append(g.Rendezvous, a.String())
				break
			}
		}
	}
	return g.Save(nw.genesisFile)
}

// options are the options of a bench node: loopback TCP and QUIC on free
// ports, the bench's logger, state in memory unless m.pebble, then m.opts.
func (nw *network) options(m *member) []node.Option {
	opts := []node.Option{
		node.WithListenAddrs("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"),
		node.WithHandshakeTimeout(5 * time.Second),
		node.WithLogger(nw.log),
	}
	if !m.pebble {
		opts = append(opts, node.WithInMemoryDatastore())
	}
	return append(opts, m.opts...)
}

// add creates a repo for org and starts its node, which keeps its state
// in pebble if persistent, else in memory.
func (nw *network) add(ctx context.Context, org string, role governance.Role, persistent bool, opts ...node.Option) (*member, error) {
	ca := nw.governance
	if role == governance.RoleFounding {
		ca = nw.founding
	}
	repo, err := nw.newRepo(org, role, ca)
	if err != nil {
		return nil, err
	}
	m := &member{org: org, repo: repo, opts: opts, pebble: persistent}
	if err := nw.start(ctx, m); err != nil {
		return nil, err
	}
	nw.mu.Lock()
	nw.nodes = append(nw.nodes, m)
	nw.mu.Unlock()
	return m, nil
}

// start starts m's node from its repo (again, after stop).
func (nw *network) start(ctx context.Context, m *member) error {
	n, err := node.Open(m.repo, nw.options(m)...)
	if err != nil {
		return fmt.Errorf("node of %s: %w", m.org, err)
	}
	if err := n.Start(ctx); err != nil {
		return fmt.Errorf("node of %s: %w", m.org, err)
	}
	m.mu.Lock()
	m.n = n
	m.mu.Unlock()
	return nil
}

// stop closes m's node.
func (nw *network) stop(m *member) error {
	m.mu.Lock()
	n := m.n
	m.n = nil
	m.mu.Unlock()
	if n == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return n.Close(ctx)
}

// bootstrap starts the founding and governance nodes and makes them the
// genesis rendezvous nodes; govOpts are the governance node's options.
func (nw *network) bootstrap(ctx context.Context, govOpts ...node.Option) error {
	f, err := nw.add(ctx, "founding-org", governance.RoleFounding, false)
	if err != nil {
		return err
	}
	if err := nw.setRendezvous(f.Node()); err != nil {
		return err
	}
	g, err := nw.add(ctx, "governance-org", governance.RoleGovernance, false, govOpts...)
	if err != nil {
		return err
	}
	return nw.setRendezvous(f.Node(), g.Node())
}

// members returns every member added, in order.
func (nw *network) members() []*member {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return append([]*member(nil), nw.nodes...)
}

// size is the number of nodes added.
func (nw *network) size() int {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return len(nw.nodes)
}

// grow adds members named prefix-<i> until the network has total nodes,
// starting at most parallel at a time, each waited for until it has joined
// (proved membership to a peer and advertised itself). It starts no new
// node after deadline (if not zero) and returns how many nodes the network
// has. A node that does not join within a minute is stopped, left out and
// counted in failed.
func (nw *network) grow(ctx context.Context, total, parallel int, prefix string, deadline time.Time, progress func(int)) (failed int, err error) {
	var (
		mu       sync.Mutex
		joined   = nw.size()
		inflight int
		errs     []error
		wg       sync.WaitGroup
		done     = make(chan struct{}, total+parallel)
	)
	expired := func() bool { return !deadline.IsZero() && time.Now().After(deadline) }
	for i := nw.size(); ; i++ {
		mu.Lock()
		for inflight >= parallel || (joined+inflight >= total && inflight > 0) {
			mu.Unlock()
			<-done
			mu.Lock()
		}
		stop := joined >= total || len(errs) > 0 || ctx.Err() != nil || expired()
		if !stop {
			inflight++
		}
		mu.Unlock()
		if stop {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { done <- struct{}{} }()
			m, err := nw.add(ctx, fmt.Sprintf("%s-%d", prefix, i), governance.RoleMember, false)
			if err == nil {
				if werr := waitJoined(ctx, m.Node(), time.Minute); werr != nil {
					_ = nw.stop(m)
					nw.remove(m)
					m = nil
				}
			}
			mu.Lock()
			inflight--
			switch {
			case err != nil:
				errs = append(errs, err)
			case m == nil:
				failed++
			default:
				joined++
			}
			n := joined
			mu.Unlock()
			if progress != nil && m != nil {
				progress(n)
			}
		}()
	}
	wg.Wait()
	return failed, errors.Join(errs...)
}

// remove leaves m out of the network's members.
func (nw *network) remove(m *member) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.nodes = slices.DeleteFunc(nw.nodes, func(x *member) bool { return x == m })
}

// collect drains errs.
func collect(errs <-chan error) []error {
	var out []error
	for err := range errs {
		out = append(out, err)
	}
	return out
}

// waitJoined waits until n is connected to a verified member and has
// advertised itself.
func waitJoined(ctx context.Context, n *node.Node, within time.Duration) error {
	return poll(ctx, within, 10*time.Millisecond, func() bool {
		_, advertised := n.Advertisement()
		return advertised && len(n.Members()) > 0
	}, fmt.Sprintf("node %s joined", n.ID()))
}

// resolves reports whether from resolves org to a record of peer p.
func resolves(ctx context.Context, from *node.Node, org string, p peer.ID, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := from.Resolve(ctx, org)
	if err != nil {
		return false
	}
	for _, nd := range res.Nodes {
		if nd.Peer == p {
			return true
		}
	}
	return false
}

// poll checks cond every interval until it holds, ctx ends or within
// passes.
func poll(ctx context.Context, within, interval time.Duration, cond func() bool, what string) error {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s: %s", within, what)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(interval):
		}
	}
	return nil
}

// close stops every node, many at once.
func (nw *network) close() {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, m := range nw.members() {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := nw.stop(m); err != nil {
				nw.log.Warn("close node", "org", m.org, "error", err)
			}
		}()
	}
	wg.Wait()
}
