package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/finp2p/go-finp2p/governance"
)

// caInstallOptions describe installing an issued governance CA.
type caInstallOptions struct {
	Dir     string
	Key     string
	Cert    string
	Genesis string
}

func runCA(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("missing subcommand: want 'finp2p ca install'")
	}
	switch args[0] {
	case "install":
		return runCAInstall(ctx, args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Fprintf(os.Stderr, "Usage: finp2p ca install --dir CADIR --key KEY --cert CERT --genesis FILE\n\n"+
			"Subcommands:\n  install  install a governance CA certificate issued by a founding authority\n")
		return nil
	}
	return usagef("unknown subcommand %q: want 'finp2p ca install'", args[0])
}

func runCAInstall(_ context.Context, args []string) error {
	fs := newFlagSet("ca install", "--dir CADIR --key KEY --cert CERT --genesis FILE",
		"Installs the governance CA a founding authority certified (certify --governance-ca) in\n"+
			"CADIR, with its key and the founding root from the genesis that signed it, so this\n"+
			"governance organisation can certify its own and member nodes.")
	var o caInstallOptions
	fs.StringVar(&o.Dir, "dir", "", "directory to install the governance authority in (required)")
	fs.StringVar(&o.Key, "key", "", "the governance CA's key, e.g. REPO/ca-request/ca.key (required)")
	fs.StringVar(&o.Cert, "cert", "", "the governance CA certificate the founding authority issued (required)")
	fs.StringVar(&o.Genesis, "genesis", "", "the network's genesis file (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if err := requireFlags("dir", o.Dir, "key", o.Key, "cert", o.Cert, "genesis", o.Genesis); err != nil {
		return err
	}
	a, err := installCA(o)
	if err != nil {
		return err
	}
	cert := a.Certificate()
	fields(os.Stdout,
		"authority", a.Dir(),
		"org", a.Org(),
		"subject", cert.Subject.String(),
		"issuer", cert.Issuer.String(),
		"serial", serialHex(cert),
		"expires", cert.NotAfter.UTC().Format(time.RFC3339),
	)
	fmt.Fprintf(os.Stdout, "note: the authority keeps its own copy of the key; %s is no longer needed\n", o.Key)
	return nil
}

// installCA installs the governance authority.
func installCA(o caInstallOptions) (*governance.Authority, error) {
	key, err := governance.ReadKeyFile(o.Key)
	if err != nil {
		return nil, err
	}
	certs, err := governance.LoadCertificatesPEM(o.Cert)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("--cert %s holds %d certificates, want only the governance CA's", o.Cert, len(certs))
	}
	cert := certs[0]
	g, err := governance.LoadGenesis(o.Genesis)
	if err != nil {
		return nil, err
	}
	roots, err := g.RootCertificates()
	if err != nil {
		return nil, err
	}
	root, err := issuingRoot(cert, roots)
	if err != nil {
		return nil, fmt.Errorf("--cert %s: %w", o.Cert, err)
	}
	return governance.InitGovernanceAuthority(o.Dir, key, cert, []*x509.Certificate{root})
}

// issuingRoot finds the genesis founding root that signed cert.
func issuingRoot(cert *x509.Certificate, roots []*x509.Certificate) (*x509.Certificate, error) {
	for _, r := range roots {
		if bytes.Equal(cert.RawIssuer, r.RawSubject) && cert.CheckSignatureFrom(r) == nil {
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w: certificate %q was not signed by any founding root of the genesis (issuer %q)",
		governance.ErrUntrustedChain, cert.Subject.String(), cert.Issuer.String())
}
