package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"github.com/finp2p/go-finp2p/internal/limitedfile"
	"math/big"
	"os"
	"strings"
	"time"

	"github.com/finp2p/go-finp2p/api"
	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/atomicfile"
)

const defaultCRLValidity = 7 * 24 * time.Hour

// revokeOptions describe one revocation.
type revokeOptions struct {
	CA          string
	Serial      string
	Cert        string
	Reason      int
	Out         string
	CRLValidity time.Duration
}

// revokeResult is what revokeCert did.
type revokeResult struct {
	Serial *big.Int
	// Issued is the authority's record of the revoked certificate.
	Issued governance.IssuedCertificate
	CRL    *x509.RevocationList
	Out    string
}

func runRevoke(_ context.Context, args []string) error {
	fs := newFlagSet("revoke", "--ca CADIR (--serial HEX | --cert FILE) --out FILE [flags]",
		"Revokes a certificate the authority in CADIR issued and writes --out: the authority's new\n"+
			"signed revocation list (PEM) followed by the authority's certificate and the certificates\n"+
			"above it. Hand that file to a running node with 'finp2p publish-crl'.")
	var o revokeOptions
	fs.StringVar(&o.CA, "ca", "", "authority directory that issued the certificate (required)")
	fs.StringVar(&o.Serial, "serial", "", "serial number of the certificate, hexadecimal (as certify prints it)")
	fs.StringVar(&o.Cert, "cert", "", "certificate file (PEM; the first certificate is revoked)")
	fs.IntVar(&o.Reason, "reason", 0, "RFC 5280 CRL reason code (0 unspecified, 1 key compromise, 4 superseded, 5 cessation of operation, ...)")
	fs.StringVar(&o.Out, "out", "", "file to write the revocation list and issuer chain to (required)")
	fs.DurationVar(&o.CRLValidity, "crl-validity", defaultCRLValidity, "how long the revocation list is valid (its next update)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if err := requireFlags("ca", o.CA, "out", o.Out); err != nil {
		return err
	}
	if (o.Serial == "") == (o.Cert == "") {
		return usagef("give exactly one of --serial and --cert")
	}
	res, err := revokeCert(o, time.Now())
	if err != nil {
		return err
	}
	pairs := []string{"revoked", "0x" + res.Serial.Text(16), "org", res.Issued.Org}
	if res.Issued.PeerID != "" {
		pairs = append(pairs, "peer", res.Issued.PeerID.String())
	}
	pairs = append(pairs,
		"kind", string(res.Issued.Kind),
		"crl-number", res.CRL.Number.String(),
		"revoked-total", fmt.Sprint(len(res.CRL.RevokedCertificateEntries)),
		"next-update", res.CRL.NextUpdate.UTC().Format(time.RFC3339),
		"out", res.Out,
	)
	fields(os.Stdout, pairs...)
	fmt.Fprintf(os.Stdout, "next: hand it to a running node: finp2p publish-crl --repo REPO %s\n", res.Out)
	return nil
}

// revokeCert revokes the certificate and writes the new revocation list
// with the issuer chain.
func revokeCert(o revokeOptions, now time.Time) (revokeResult, error) {
	if o.CRLValidity <= 0 {
		return revokeResult{}, fmt.Errorf("--crl-validity %s is not positive", o.CRLValidity)
	}
	authority, err := governance.OpenAuthority(o.CA)
	if err != nil {
		return revokeResult{}, err
	}
	var serial *big.Int
	if o.Cert != "" {
		certs, err := governance.LoadCertificatesPEM(o.Cert)
		if err != nil {
			return revokeResult{}, fmt.Errorf("--cert: %w", err)
		}
		serial = certs[0].SerialNumber
	} else if serial, err = parseSerialHex(o.Serial); err != nil {
		return revokeResult{}, fmt.Errorf("--serial: %w", err)
	}
	if err := authority.Revoke(serial, o.Reason, now); err != nil {
		return revokeResult{}, err
	}
	der, err := authority.CRL(now, o.CRLValidity)
	if err != nil {
		return revokeResult{}, err
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return revokeResult{}, fmt.Errorf("parse the revocation list just signed: %w", err)
	}
	var out bytes.Buffer
	out.Write(governance.EncodeCRLPEM(der))
	out.Write(governance.EncodeCertificatesPEM(append([]*x509.Certificate{authority.Certificate()}, authority.Chain()...)...))
	if err := atomicfile.Write(o.Out, out.Bytes(), 0o644); err != nil {
		return revokeResult{}, fmt.Errorf("serial 0x%s is revoked, but the revocation list was not written: %w", serial.Text(16), err)
	}
	res := revokeResult{Serial: serial, CRL: crl, Out: o.Out}
	for _, ic := range authority.Issued() {
		if ic.Serial.Cmp(serial) == 0 {
			res.Issued = ic
		}
	}
	return res, nil
}

// parseSerialHex reads a serial number written in hexadecimal, with or
// without 0x, and with or without the colons openssl puts between bytes.
func parseSerialHex(s string) (*big.Int, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "0x"), "0X")
	t = strings.ReplaceAll(t, ":", "")
	n, ok := new(big.Int).SetString(t, 16)
	if !ok || n.Sign() <= 0 {
		return nil, fmt.Errorf("%q is not a positive hexadecimal serial number", s)
	}
	return n, nil
}

func runPublishCRL(ctx context.Context, args []string) error {
	fs := newFlagSet("publish-crl", "--repo DIR [--api URL] FILE",
		"Hands a revocation list written by 'finp2p revoke' (the CRL followed by the issuing CA's\n"+
			"certificates) to the running node of repo DIR, which checks it, disconnects and blocks the\n"+
			"revoked members and spreads the list to the whole network.")
	var repo, apiURL string
	fs.StringVar(&repo, "repo", "", "repo of the running node (for its API address and api.token) (required)")
	fs.StringVar(&apiURL, "api", "", "API base URL (default: from the repo's config.json)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := requireFlags("repo", repo); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want exactly one FILE argument, the file 'finp2p revoke --out' wrote")
	}
	file := fs.Arg(0)
	applied, err := publishCRL(ctx, repo, apiURL, file)
	if err != nil {
		return err
	}
	if applied {
		fmt.Fprintf(os.Stdout, "applied  yes: the node accepted the revocation list and spreads it to the network\n")
	} else {
		fmt.Fprintf(os.Stdout, "applied  no: the node already holds this revocation list or a newer one\n")
	}
	return nil
}

// publishCRL sends the list in file to the node's API and reports whether
// the node took it as new.
func publishCRL(ctx context.Context, repo, apiURL, file string) (bool, error) {
	data, err := limitedfile.Read(file, maxInputFile)
	if err != nil {
		return false, err
	}
	req, err := splitCRLFile(data)
	if err != nil {
		return false, fmt.Errorf("%s: %w", file, err)
	}
	c, err := apiClient(repo, apiURL)
	if err != nil {
		return false, err
	}
	resp, err := c.PublishRevocationList(ctx, req)
	if err != nil {
		return false, fmt.Errorf("publish revocation list to %s: %w", c.Base, err)
	}
	return resp.Applied, nil
}

// splitCRLFile separates the revocation list from the issuer certificates.
func splitCRLFile(data []byte) (api.RevocationRequest, error) {
	var crl, chain bytes.Buffer
	rest := data
	crls, certs := 0, 0
	for {
		block, r := pem.Decode(rest)
		if block == nil {
			break
		}
		rest = r
		switch block.Type {
		case "X509 CRL":
			crls++
			_ = pem.Encode(&crl, block)
		case "CERTIFICATE":
			certs++
			_ = pem.Encode(&chain, block)
		default:
			return api.RevocationRequest{}, fmt.Errorf("PEM block %q is neither an X509 CRL nor a CERTIFICATE", block.Type)
		}
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return api.RevocationRequest{}, fmt.Errorf("unexpected non-PEM data after the last PEM block")
	}
	switch {
	case crls == 0:
		return api.RevocationRequest{}, fmt.Errorf("no X509 CRL PEM block found")
	case crls > 1:
		return api.RevocationRequest{}, fmt.Errorf("%d X509 CRL PEM blocks found, want one", crls)
	case certs == 0:
		return api.RevocationRequest{}, fmt.Errorf("no CERTIFICATE PEM block found: the issuing CA's certificate must follow the CRL")
	}
	return api.RevocationRequest{CRL: crl.String(), IssuerChain: chain.String()}, nil
}
