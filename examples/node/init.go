package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/atomicfile"
	"github.com/finp2p/go-finp2p/node"
)

// Where `init --role governance` puts the governance CA's key and request.
const (
	caRequestDir  = "ca-request"
	caRequestCSR  = "ca.csr"
	caRequestKey  = "ca.key"
	defaultRoleID = string(governance.RoleMember)
)

// initOptions describe a new node repo.
type initOptions struct {
	Repo    string
	Org     string
	Role    governance.Role
	Genesis string
	Listen  []string
	API     string
	// What the node advertises (config.json's announce, no_announce,
	// services and ledgers); empty means the defaults.
	Announce   []string
	NoAnnounce []string
	Services   []string
	Ledgers    []string
}

// initResult is what initRepo made.
type initResult struct {
	Repo      string
	PeerID    peer.ID
	KeyFile   string
	CSRFile   string
	CAKeyFile string // governance role only
	CACSRFile string // governance role only
}

func runInit(_ context.Context, args []string) error {
	fs := newFlagSet("init", "--repo DIR --org ORG [flags]",
		"Creates a node repo: the node's Ed25519 key (node.key, 0600), its certificate request\n"+
			"(node.csr), the API bearer token (api.token, 0600), config.json and a copy of the genesis.\n"+
			"With --role governance it also creates the governance CA's key and request in\n"+
			"DIR/ca-request/ for a founding authority to certify. --announce, --no-announce, --service\n"+
			"and --ledger shape the advertisement other organisations find the node by; each is\n"+
			"repeatable and takes comma-separated values.")
	var o initOptions
	var role string
	var listen stringList
	var announce, noAnnounce, services, ledgers listFlag
	fs.StringVar(&o.Repo, "repo", "", "repo directory to create (required)")
	fs.StringVar(&o.Org, "org", "", "organisation id the node is certified for (required)")
	fs.StringVar(&role, "role", defaultRoleID, "role the node asks for: member, governance or founding")
	fs.StringVar(&o.Genesis, "genesis", "", "genesis file to copy into the repo")
	fs.Var(&listen, "listen", "TCP or QUIC multiaddr to listen on (repeatable; default /ip4/0.0.0.0/tcp/4001 and /ip4/0.0.0.0/udp/4001/quic-v1)")
	fs.StringVar(&o.API, "api", "", "host:port of the node's HTTP API (default 127.0.0.1:5001)")
	fs.Var(&announce, "announce", "multiaddr to advertise instead of the listen addresses, such as a public or NAT address (repeatable)")
	fs.Var(&noAnnounce, "no-announce", "multiaddr, or range such as /ip4/10.0.0.0/ipcidr/8, never to advertise (repeatable)")
	fs.Var(&services, "service", "FinP2P service the organisation offers, such as custody (repeatable)")
	fs.Var(&ledgers, "ledger", "ledger the organisation can reach, such as ethereum (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if err := requireFlags("repo", o.Repo, "org", o.Org); err != nil {
		return err
	}
	r, err := governance.ParseRole(role)
	if err != nil {
		return usagef("--role: %v", err)
	}
	o.Role, o.Listen = r, listen
	o.Announce, o.NoAnnounce, o.Services, o.Ledgers = announce, noAnnounce, services, ledgers
	res, err := initRepo(o)
	if err != nil {
		return err
	}
	pairs := []string{
		"repo", res.Repo,
		"peer", res.PeerID.String(),
		"org", o.Org,
		"role", string(o.Role),
		"key", res.KeyFile,
		"csr", res.CSRFile,
	}
	if res.CACSRFile != "" {
		pairs = append(pairs, "ca-key", res.CAKeyFile, "ca-csr", res.CACSRFile)
	}
	for _, f := range []struct {
		name   string
		values []string
	}{{"announce", o.Announce}, {"no-announce", o.NoAnnounce}, {"services", o.Services}, {"ledgers", o.Ledgers}} {
		if len(f.values) > 0 {
			pairs = append(pairs, f.name, strings.Join(f.values, ","))
		}
	}
	fields(os.Stdout, pairs...)
	if o.Genesis == "" {
		fmt.Fprintf(os.Stdout, "note: no --genesis given; copy the network's genesis file to %s before 'finp2p run'\n",
			filepath.Join(res.Repo, node.GenesisFileName))
	}
	if res.CACSRFile != "" {
		fmt.Fprintf(os.Stdout, "next: a founding authority certifies the CA request: finp2p certify --governance-ca --ca FOUNDING-CA --csr %s --out CA-CERT\n", res.CACSRFile)
	} else {
		fmt.Fprintf(os.Stdout, "next: a governance authority certifies the node: finp2p certify --ca CADIR --csr %s --out %s\n",
			res.CSRFile, filepath.Join(res.Repo, node.CertFileName))
	}
	return nil
}

// initRepo creates the repo and, for a governance node, its CA request.
func initRepo(o initOptions) (initResult, error) {
	if err := governance.ValidateOrgID(o.Org); err != nil {
		return initResult{}, fmt.Errorf("--org: %w", err)
	}
	cfg := node.DefaultConfig()
	if len(o.Listen) > 0 {
		if err := node.WithListenAddrs(o.Listen...)(&cfg); err != nil {
			return initResult{}, fmt.Errorf("--listen: %w", err)
		}
	}
	if o.API != "" {
		if err := node.WithAPIAddr(o.API)(&cfg); err != nil {
			return initResult{}, fmt.Errorf("--api: %w", err)
		}
	}
	// The node's own options check each value, so init refuses what
	// 'finp2p run' would refuse, with the same message.
	for _, f := range []struct {
		flag   string
		values []string
		option func(...string) node.Option
	}{
		{"announce", o.Announce, node.WithAnnounce},
		{"no-announce", o.NoAnnounce, node.WithNoAnnounce},
		{"service", o.Services, node.WithServices},
		{"ledger", o.Ledgers, node.WithLedgers},
	} {
		if len(f.values) == 0 {
			continue
		}
		if err := f.option(f.values...)(&cfg); err != nil {
			return initResult{}, fmt.Errorf("--%s: %w", f.flag, err)
		}
	}
	res, err := node.Init(o.Repo, node.InitOptions{Org: o.Org, Role: o.Role, Genesis: o.Genesis, Config: &cfg})
	if err != nil {
		return initResult{}, err
	}
	out := initResult{Repo: o.Repo, PeerID: res.PeerID, KeyFile: res.KeyFile, CSRFile: res.CSRFile}
	if o.Role == governance.RoleGovernance {
		out.CAKeyFile, out.CACSRFile, err = createCARequest(o.Repo, o.Org)
		if err != nil {
			return initResult{}, fmt.Errorf("node repo %s was created, but its governance CA request was not: %w", o.Repo, err)
		}
	}
	return out, nil
}

// createCARequest makes the governance CA's key (0600) and its request.
func createCARequest(repo, org string) (keyFile, csrFile string, err error) {
	dir := filepath.Join(repo, caRequestDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("create %s: %w", dir, err)
	}
	key, err := governance.GenerateKey()
	if err != nil {
		return "", "", err
	}
	keyFile = filepath.Join(dir, caRequestKey)
	if err := governance.WriteKeyFile(keyFile, key); err != nil {
		return "", "", err
	}
	der, err := governance.CreateGovernanceCACSR(key, org)
	if err != nil {
		return "", "", err
	}
	csrFile = filepath.Join(dir, caRequestCSR)
	if err := atomicfile.Create(csrFile, governance.EncodeCSRPEM(der), 0o644); err != nil {
		return "", "", fmt.Errorf("write governance CA request: %w", err)
	}
	return keyFile, csrFile, nil
}
