package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"github.com/finp2p/go-finp2p/internal/limitedfile"
	"os"
	"strings"
	"time"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/atomicfile"
)

// Default certificate lifetimes; an authority never issues beyond its own.
const (
	defaultNodeValidity         = 8760 * time.Hour  // one year
	defaultGovernanceCAValidity = 43800 * time.Hour // five years
	maxInputFile                = 1 << 20
)

// certifyOptions describe one certification.
type certifyOptions struct {
	CA           string
	CSR          string
	Out          string
	GovernanceCA bool
	Validity     time.Duration // 0: the default for the kind
}

// certifyResult is what certifyCSR issued and wrote.
type certifyResult struct {
	Out  string
	Cert *x509.Certificate
	// Member is the node the certificate proves; zero for a governance CA.
	Member governance.Member
	// Bundle is what Out holds: the leaf, then the issuing governance CA if
	// the issuer is not a founding root.
	Bundle []*x509.Certificate
}

func runCertify(_ context.Context, args []string) error {
	fs := newFlagSet("certify", "--ca CADIR --csr FILE --out FILE [flags]",
		"Certifies a request with the authority in CADIR. A node request (node.csr) gets a node\n"+
			"certificate; --out then holds the leaf followed by the issuing governance CA (never the\n"+
			"founding root), the bundle a node's config \"certificate\" expects. With --governance-ca a\n"+
			"founding authority certifies a governance CA request (ca-request/ca.csr) instead.")
	var o certifyOptions
	fs.StringVar(&o.CA, "ca", "", "authority directory (ca.key, ca.pem, chain.pem, state.json) (required)")
	fs.StringVar(&o.CSR, "csr", "", "certificate request file, PEM or DER (required)")
	fs.StringVar(&o.Out, "out", "", "file to write the certificate to (required)")
	fs.BoolVar(&o.GovernanceCA, "governance-ca", false, "certify a governance CA request (founding authorities only)")
	fs.DurationVar(&o.Validity, "validity", 0, fmt.Sprintf("certificate lifetime (default %s for a node, %s for a governance CA)", defaultNodeValidity, defaultGovernanceCAValidity))
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if err := requireFlags("ca", o.CA, "csr", o.CSR, "out", o.Out); err != nil {
		return err
	}
	res, err := certifyCSR(o, time.Now())
	if err != nil {
		return err
	}
	if o.GovernanceCA {
		fields(os.Stdout,
			"kind", "governance CA",
			"org", strings.Join(res.Cert.Subject.Organization, ","),
			"subject", res.Cert.Subject.String(),
			"serial", serialHex(res.Cert),
			"expires", res.Cert.NotAfter.UTC().Format(time.RFC3339),
			"out", res.Out,
		)
		fmt.Fprintf(os.Stdout, "next: install it on the governance node: finp2p ca install --dir CADIR --key ca-request/ca.key --cert %s --genesis GENESIS\n", res.Out)
		return nil
	}
	m := res.Member
	fields(os.Stdout,
		"kind", "node",
		"org", m.OrgID,
		"finid", m.FinID,
		"peer", m.PeerID.String(),
		"role", string(m.Role),
		"serial", serialHex(res.Cert),
		"expires", res.Cert.NotAfter.UTC().Format(time.RFC3339),
		"out", res.Out,
	)
	return nil
}

// certifyCSR issues a certificate for the request and writes it.
func certifyCSR(o certifyOptions, now time.Time) (certifyResult, error) {
	if o.Validity < 0 {
		return certifyResult{}, fmt.Errorf("--validity %s is negative", o.Validity)
	}
	authority, err := governance.OpenAuthority(o.CA)
	if err != nil {
		return certifyResult{}, err
	}
	data, err := limitedfile.Read(o.CSR, maxInputFile)
	if err != nil {
		return certifyResult{}, err
	}
	csr, err := governance.ParseCSR(data)
	if err != nil {
		return certifyResult{}, fmt.Errorf("CSR %s: %w", o.CSR, err)
	}
	var res certifyResult
	if o.GovernanceCA {
		validity := o.Validity
		if validity == 0 {
			validity = defaultGovernanceCAValidity
		}
		cert, err := authority.CertifyGovernanceCA(csr, now, validity)
		if err != nil {
			return certifyResult{}, fmt.Errorf("CSR %s: %w", o.CSR, err)
		}
		res = certifyResult{Cert: cert, Bundle: []*x509.Certificate{cert}}
	} else {
		validity := o.Validity
		if validity == 0 {
			validity = defaultNodeValidity
		}
		cert, member, err := authority.CertifyNode(csr, now, validity)
		if err != nil {
			return certifyResult{}, fmt.Errorf("CSR %s: %w", o.CSR, err)
		}
		// The leaf and, under a governance CA, that CA: never the founding
		// root, which every node has from the genesis.
		bundle := []*x509.Certificate{cert}
		if !authority.IsFounding() {
			bundle = append(bundle, authority.Certificate())
		}
		res = certifyResult{Cert: cert, Member: member, Bundle: bundle}
	}
	if err := atomicfile.Write(o.Out, governance.EncodeCertificatesPEM(res.Bundle...), 0o644); err != nil {
		return certifyResult{}, fmt.Errorf("certificate serial %s was issued and recorded by %s but not written: %w", serialHex(res.Cert), o.CA, err)
	}
	res.Out = o.Out
	return res, nil
}

// serialHex writes a certificate's serial as revoke --serial accepts it.
func serialHex(cert *x509.Certificate) string {
	return "0x" + cert.SerialNumber.Text(16)
}
