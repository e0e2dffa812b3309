package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/atomicfile"
)

// Names inside a genesis directory.
const (
	genesisCADir = "ca"
	genesisFile  = "genesis.json"
	caKeyFile    = "ca.key"
	caCertFile   = "ca.pem"
)

// genesisOptions describe a new network.
type genesisOptions struct {
	Dir         string
	Network     string
	Org         string
	Rendezvous  []string
	Development bool
	Validity    time.Duration
}

// genesisResult is what createGenesis made.
type genesisResult struct {
	CADir       string
	KeyFile     string
	RootFile    string
	GenesisFile string
	Root        *x509.Certificate
	Genesis     *governance.Genesis
}

func runGenesis(_ context.Context, args []string) error {
	fs := newFlagSet("genesis", "--dir DIR --network NAME --org ORG [flags]",
		"Creates a network's founding authority in DIR/ca (a self-signed Ed25519 founding root)\n"+
			"and the genesis file DIR/genesis.json every node of the network starts from.")
	var o genesisOptions
	var rendezvous stringList
	fs.StringVar(&o.Dir, "dir", "", "directory to create the founding authority and genesis file in (required)")
	fs.StringVar(&o.Network, "network", "", "the network's name (required)")
	fs.StringVar(&o.Org, "org", "", "organisation id of the founding organisation (required)")
	fs.Var(&rendezvous, "rendezvous", "multiaddr of a rendezvous node, ending in /p2p/<peerID> (repeatable)")
	fs.BoolVar(&o.Development, "dev", false, "development network: allow private and loopback addresses")
	fs.DurationVar(&o.Validity, "validity", 87600*time.Hour, "validity of the founding root certificate")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if err := requireFlags("dir", o.Dir, "network", o.Network, "org", o.Org); err != nil {
		return err
	}
	o.Rendezvous = rendezvous
	res, err := createGenesis(o, time.Now())
	if err != nil {
		return err
	}
	fields(os.Stdout,
		"network", res.Genesis.Network,
		"authority", res.CADir,
		"key", res.KeyFile,
		"root", res.RootFile,
		"genesis", res.GenesisFile,
		"fingerprint", "SHA256 "+fingerprint(res.Root),
		"expires", res.Root.NotAfter.UTC().Format(time.RFC3339),
	)
	if len(res.Genesis.Rendezvous) == 0 {
		fmt.Fprintf(os.Stdout, "note: the genesis lists no rendezvous node, so nodes will not find each other; pass --rendezvous\n")
	}
	return nil
}

// createGenesis creates the founding authority and the genesis file. Nothing
// is left behind when it fails: the authority is made in a temporary
// directory and moved into place only once the genesis file is written.
func createGenesis(o genesisOptions, now time.Time) (genesisResult, error) {
	if err := governance.ValidateNetworkName(o.Network); err != nil {
		return genesisResult{}, fmt.Errorf("--network: %w", err)
	}
	if err := governance.ValidateOrgID(o.Org); err != nil {
		return genesisResult{}, fmt.Errorf("--org: %w", err)
	}
	if o.Validity <= 0 {
		return genesisResult{}, fmt.Errorf("--validity %s is not positive", o.Validity)
	}
	caDir := filepath.Join(o.Dir, genesisCADir)
	genesisPath := filepath.Join(o.Dir, genesisFile)
	for _, p := range []string{caDir, genesisPath} {
		if _, err := os.Lstat(p); err == nil {
			return genesisResult{}, fmt.Errorf("%s already exists: a genesis is created once; choose another --dir", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return genesisResult{}, fmt.Errorf("check %s: %w", p, err)
		}
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return genesisResult{}, fmt.Errorf("create directory %s: %w", o.Dir, err)
	}
	tmp, err := os.MkdirTemp(o.Dir, ".ca-tmp-")
	if err != nil {
		return genesisResult{}, fmt.Errorf("create temporary authority directory: %w", err)
	}
	moved := false
	defer func() {
		if !moved {
			_ = os.RemoveAll(tmp)
		}
	}()
	authority, err := governance.InitFoundingAuthority(tmp, o.Network, o.Org, now, o.Validity)
	if err != nil {
		return genesisResult{}, err
	}
	root := authority.Certificate()
	g := &governance.Genesis{
		Network:     o.Network,
		Roots:       []string{string(governance.EncodeCertificatesPEM(root))},
		Rendezvous:  o.Rendezvous,
		Created:     now.UTC().Truncate(time.Second),
		Development: o.Development,
	}
	if g.Rendezvous == nil {
		g.Rendezvous = []string{}
	}
	if err := g.Validate(); err != nil {
		if !o.Development && len(o.Rendezvous) > 0 {
			return genesisResult{}, fmt.Errorf("%w (pass --dev for a development network on private or loopback addresses)", err)
		}
		return genesisResult{}, err
	}
	data, err := g.Marshal()
	if err != nil {
		return genesisResult{}, err
	}
	if err := atomicfile.Create(genesisPath, data, 0o644); err != nil {
		return genesisResult{}, fmt.Errorf("write genesis file: %w", err)
	}
	if err := os.Rename(tmp, caDir); err != nil {
		_ = os.Remove(genesisPath)
		return genesisResult{}, fmt.Errorf("move founding authority into %s: %w", caDir, err)
	}
	moved = true
	return genesisResult{
		CADir:       caDir,
		KeyFile:     filepath.Join(caDir, caKeyFile),
		RootFile:    filepath.Join(caDir, caCertFile),
		GenesisFile: genesisPath,
		Root:        root,
		Genesis:     g,
	}, nil
}

// fingerprint is the SHA-256 fingerprint of a certificate in the form
// `openssl x509 -fingerprint -sha256` prints.
func fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}
