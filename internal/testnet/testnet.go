// Package testnet builds small certified FinP2P networks for tests: a
// founding authority and node, a governance authority and node, and members,
// each a real node on 127.0.0.1, so a test of a flow starts from one line.
package testnet

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/atomicfile"
	"github.com/finp2p/go-finp2p/node"
)

// NetworkName is the genesis network name of every test network.
const NetworkName = "finp2p-test"

// Network is a certified test network.
type Network struct {
	t   testing.TB
	Dir string
	// GenesisFile is the path of the network's genesis file.
	GenesisFile string
	Founding    *governance.Authority
	Governance  *governance.Authority
	// NodeOptions apply to every node started by StartNode.
	NodeOptions []node.Option

	mu    sync.Mutex
	nodes []*node.Node
	repos map[*node.Node]string
}

// Options shape a Network.
type Options struct {
	// Members is the number of member nodes, each its own org (member-1, ...).
	Members int
	// NodeOptions apply to every node.
	NodeOptions []node.Option
	// Join makes the network form as a real one does: the founding and
	// governance nodes are the genesis rendezvous nodes, and members join
	// through them by themselves instead of being connected to everyone.
	Join bool
}

// New builds and starts a network: a founding node, a governance node and
// o.Members members, all connected to the founding node and verified. Nodes()
// returns them in that order. Everything is closed when the test ends.
func New(t testing.TB, o Options) *Network {
	t.Helper()
	n := NewEmpty(t, o.NodeOptions...)
	founding := n.StartNode(n.Repo("founding-org", governance.RoleFounding, n.Founding))
	if o.Join {
		n.SetRendezvous(founding)
	}
	gov := n.StartNode(n.Repo("governance-org", governance.RoleGovernance, n.Governance))
	if o.Join {
		n.SetRendezvous(founding, gov)
	}
	for i := 1; i <= o.Members; i++ {
		n.StartNode(n.Repo(fmt.Sprintf("member-%d", i), governance.RoleMember, n.Governance))
	}
	if !o.Join {
		n.ConnectAll()
	}
	return n
}

// SetRendezvous rewrites the genesis file so that repos created from now on
// join through the given nodes' TCP addresses.
func (n *Network) SetRendezvous(nodes ...*node.Node) {
	n.t.Helper()
	n.editGenesis(func(g *governance.Genesis) {
		g.Rendezvous = nil
		for _, nd := range nodes {
			for _, a := range nd.Addrs() {
				if strings.Contains(a.String(), "/tcp/") {
					g.Rendezvous = append(g.Rendezvous, a.String())
					break
				}
			}
		}
	})
}

// SetDevelopment rewrites the genesis file's development mark; repos
// created from now on carry it.
func (n *Network) SetDevelopment(dev bool) {
	n.t.Helper()
	n.editGenesis(func(g *governance.Genesis) { g.Development = dev })
}

func (n *Network) editGenesis(edit func(*governance.Genesis)) {
	n.t.Helper()
	g, err := governance.LoadGenesis(n.GenesisFile)
	if err != nil {
		n.t.Fatal(err)
	}
	edit(g)
	if err := g.Save(n.GenesisFile); err != nil {
		n.t.Fatal(err)
	}
}

// NewEmpty creates the authorities and genesis file but starts no node.
func NewEmpty(t testing.TB, opts ...node.Option) *Network {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	founding, err := governance.InitFoundingAuthority(filepath.Join(dir, "founding-ca"), NetworkName, "founding-org", now.Add(-48*time.Hour), 96*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	govKey, err := governance.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	csrDER, err := governance.CreateGovernanceCACSR(govKey, "governance-org")
	if err != nil {
		t.Fatal(err)
	}
	csr, err := governance.ParseCSR(csrDER)
	if err != nil {
		t.Fatal(err)
	}
	govCert, err := founding.CertifyGovernanceCA(csr, now.Add(-47*time.Hour), 72*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	gov, err := governance.InitGovernanceAuthority(filepath.Join(dir, "governance-ca"), govKey, govCert, []*x509.Certificate{founding.Certificate()})
	if err != nil {
		t.Fatal(err)
	}
	g := &governance.Genesis{
		Network:     NetworkName,
		Roots:       []string{string(governance.EncodeCertificatesPEM(founding.Certificate()))},
		Created:     now,
		Development: true,
	}
	genesisFile := filepath.Join(dir, "genesis.json")
	if err := g.Save(genesisFile); err != nil {
		t.Fatal(err)
	}
	return &Network{t: t, Dir: dir, GenesisFile: genesisFile, Founding: founding, Governance: gov, NodeOptions: opts}
}

// Repo creates a repo for a node of org with role, certified by ca, and
// returns its directory.
func (n *Network) Repo(org string, role governance.Role, ca *governance.Authority) string {
	n.t.Helper()
	dir, err := os.MkdirTemp(n.Dir, org+"-")
	if err != nil {
		n.t.Fatal(err)
	}
	_, err = node.Init(dir, node.InitOptions{Org: org, Role: role, Genesis: n.GenesisFile})
	if err != nil {
		n.t.Fatal(err)
	}
	n.Certify(dir, ca, time.Now().Add(-time.Minute), 6*time.Hour)
	return dir
}

// Certify has ca certify the repo's CSR, valid from notBefore for validity,
// and writes the chain file the node loads.
func (n *Network) Certify(repo string, ca *governance.Authority, notBefore time.Time, validity time.Duration) *x509.Certificate {
	n.t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, node.CSRFileName))
	if err != nil {
		n.t.Fatal(err)
	}
	csr, err := governance.ParseCSR(data)
	if err != nil {
		n.t.Fatal(err)
	}
	leaf, _, err := ca.CertifyNode(csr, notBefore, validity)
	if err != nil {
		n.t.Fatal(err)
	}
	chain := []*x509.Certificate{leaf}
	if !ca.IsFounding() {
		chain = append(chain, ca.Certificate())
	}
	if err := atomicfile.Write(filepath.Join(repo, node.CertFileName), governance.EncodeCertificatesPEM(chain...), 0o644); err != nil {
		n.t.Fatal(err)
	}
	return leaf
}

// nodeOptions are the options StartNode uses for repo: loopback TCP and
// QUIC on free ports, an in-memory datastore, a short handshake deadline,
// then the network's and the call's own options.
func (n *Network) nodeOptions(repo string, opts []node.Option) []node.Option {
	base := []node.Option{
		node.WithRepo(repo),
		node.WithListenAddrs("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"),
		node.WithInMemoryDatastore(),
		node.WithHandshakeTimeout(5 * time.Second),
	}
	base = append(base, n.NodeOptions...)
	return append(base, opts...)
}

// StartNode starts a node from repo and closes it when the test ends.
func (n *Network) StartNode(repo string, opts ...node.Option) *node.Node {
	n.t.Helper()
	nd, err := n.TryStartNode(repo, opts...)
	if err != nil {
		n.t.Fatal(err)
	}
	return nd
}

// TryStartNode is StartNode that returns the error instead of failing.
func (n *Network) TryStartNode(repo string, opts ...node.Option) (*node.Node, error) {
	nd, err := node.Open(repo, n.nodeOptions(repo, opts)...)
	if err != nil {
		return nil, err
	}
	if err := nd.Start(context.Background()); err != nil {
		return nil, err
	}
	n.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := nd.Close(ctx); err != nil {
			n.t.Errorf("close node %s: %v", nd.ID(), err)
		}
	})
	n.mu.Lock()
	n.nodes = append(n.nodes, nd)
	if n.repos == nil {
		n.repos = make(map[*node.Node]string)
	}
	n.repos[nd] = repo
	n.mu.Unlock()
	return nd, nil
}

// RepoOf returns the repo directory nd was started from.
func (n *Network) RepoOf(nd *node.Node) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	repo, ok := n.repos[nd]
	return repo, ok
}

// Nodes returns the started nodes in start order.
func (n *Network) Nodes() []*node.Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*node.Node(nil), n.nodes...)
}

// ConnectAll connects every node to every other node and waits until each
// pair has verified the other.
func (n *Network) ConnectAll() {
	n.t.Helper()
	nodes := n.Nodes()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(nodes)*len(nodes))
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := a.Connect(ctx, AddrInfo(b)); err != nil {
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		n.t.Fatal(err)
	}
}

// AddrInfo is how to dial nd.
func AddrInfo(nd *node.Node) peer.AddrInfo {
	return peer.AddrInfo{ID: nd.ID(), Addrs: nd.Host().Addrs()}
}

// Eventually polls cond until it holds or the deadline passes.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
