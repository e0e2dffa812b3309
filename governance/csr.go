package governance

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net/url"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
)

// CreateNodeCSR returns a DER certificate signing request for a node key:
// subject O=org, CN=<peerID>, and URI SANs finp2p:org:<org>,
// finp2p:peer:<peerID> and finp2p:role:<role>.
func CreateNodeCSR(nodeKey ed25519.PrivateKey, org string, role Role) ([]byte, error) {
	if err := ValidateOrgID(org); err != nil {
		return nil, fmt.Errorf("create node CSR: %w", err)
	}
	if _, err := ParseRole(string(role)); err != nil {
		return nil, fmt.Errorf("create node CSR: %w", err)
	}
	if len(nodeKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("create node CSR: node key has %d bytes, want an Ed25519 private key", len(nodeKey))
	}
	id, err := PeerIDFromKey(nodeKey.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("create node CSR: %w", err)
	}
	tmpl := &x509.CertificateRequest{
		Subject: pkix.Name{Organization: []string{org}, CommonName: id.String()},
		URIs: []*url.URL{
			sanURI(sanOrg, org),
			sanURI(sanPeer, id.String()),
			sanURI(sanRole, string(role)),
		},
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, nodeKey)
	if err != nil {
		return nil, fmt.Errorf("create node CSR for %s of %s: %w", id, org, err)
	}
	return der, nil
}

// CreateGovernanceCACSR returns a DER certificate signing request for a
// governance CA key: subject O=org, CN="<org> governance CA", URI SAN
// finp2p:org:<org>. A founding authority answers it with CertifyGovernanceCA.
func CreateGovernanceCACSR(caKey ed25519.PrivateKey, org string) ([]byte, error) {
	if err := ValidateOrgID(org); err != nil {
		return nil, fmt.Errorf("create governance CA CSR: %w", err)
	}
	if len(caKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("create governance CA CSR: CA key has %d bytes, want an Ed25519 private key", len(caKey))
	}
	tmpl := &x509.CertificateRequest{
		Subject: pkix.Name{Organization: []string{org}, CommonName: org + " governance CA"},
		URIs:    []*url.URL{sanURI(sanOrg, org)},
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, caKey)
	if err != nil {
		return nil, fmt.Errorf("create governance CA CSR for %s: %w", org, err)
	}
	return der, nil
}

// nodeRequest is what a node CSR asks for, after checking.
type nodeRequest struct {
	org    string
	peer   peer.ID
	role   Role
	pubKey ed25519.PublicKey
}

// parseNodeRequest checks a node CSR against the profile: a valid signature,
// an Ed25519 key, exactly the org, peer and role URI SANs, and a peer SAN
// that is the key's peer ID.
func parseNodeRequest(csr *x509.CertificateRequest) (nodeRequest, error) {
	if err := checkCSR(csr); err != nil {
		return nodeRequest{}, err
	}
	subject := csr.Subject.String()
	if err := noOtherSANs(csr); err != nil {
		return nodeRequest{}, fmt.Errorf("%w: CSR %q: %w", ErrBadCSR, subject, err)
	}
	n, err := parseNames(csr.URIs)
	if err != nil {
		return nodeRequest{}, fmt.Errorf("%w: CSR %q: %w", ErrBadCSR, subject, err)
	}
	switch {
	case len(n.foreign) > 0 || len(n.other) > 0:
		return nodeRequest{}, fmt.Errorf("%w: CSR %q carries URI SANs outside the FinP2P profile: %s", ErrBadCSR, subject, strings.Join(append(n.foreign, n.other...), ", "))
	case n.finID != "":
		return nodeRequest{}, fmt.Errorf("%w: CSR %q carries a finp2p:finid SAN; the authority assigns the FinID", ErrBadCSR, subject)
	case n.org == "":
		return nodeRequest{}, fmt.Errorf("%w: CSR %q has no finp2p:org SAN", ErrBadCSR, subject)
	case n.peer == "":
		return nodeRequest{}, fmt.Errorf("%w: CSR %q has no finp2p:peer SAN", ErrBadCSR, subject)
	case n.role == "":
		return nodeRequest{}, fmt.Errorf("%w: CSR %q has no finp2p:role SAN", ErrBadCSR, subject)
	}
	if err := ValidateOrgID(n.org); err != nil {
		return nodeRequest{}, fmt.Errorf("%w: CSR %q: %w", ErrBadCSR, subject, err)
	}
	if err := subjectOrgMatches(csr.Subject, n.org); err != nil {
		return nodeRequest{}, fmt.Errorf("%w: CSR %q: %w", ErrBadCSR, subject, err)
	}
	role, err := ParseRole(n.role)
	if err != nil {
		return nodeRequest{}, fmt.Errorf("%w: CSR %q: %w", ErrBadCSR, subject, err)
	}
	claimed, err := peer.Decode(n.peer)
	if err != nil {
		return nodeRequest{}, fmt.Errorf("%w: CSR %q: finp2p:peer SAN %q is not a peer ID: %w", ErrBadCSR, subject, n.peer, err)
	}
	pub, _ := ed25519Key(csr.PublicKey)
	actual, err := PeerIDFromKey(pub)
	if err != nil {
		return nodeRequest{}, fmt.Errorf("%w: CSR %q: %w", ErrBadCSR, subject, err)
	}
	if claimed != actual {
		return nodeRequest{}, fmt.Errorf("%w: CSR %q claims peer %s but its key is peer %s", ErrKeyMismatch, subject, claimed, actual)
	}
	return nodeRequest{org: n.org, peer: actual, role: role, pubKey: pub}, nil
}

// parseGovernanceCARequest checks a governance CA CSR and returns its org.
func parseGovernanceCARequest(csr *x509.CertificateRequest) (string, error) {
	if err := checkCSR(csr); err != nil {
		return "", err
	}
	subject := csr.Subject.String()
	if err := noOtherSANs(csr); err != nil {
		return "", fmt.Errorf("%w: CSR %q: %w", ErrBadCSR, subject, err)
	}
	n, err := parseNames(csr.URIs)
	if err != nil {
		return "", fmt.Errorf("%w: CSR %q: %w", ErrBadCSR, subject, err)
	}
	switch {
	case n.org == "":
		return "", fmt.Errorf("%w: CSR %q has no finp2p:org SAN", ErrBadCSR, subject)
	case n.peer != "" || n.role != "" || n.finID != "":
		return "", fmt.Errorf("%w: CSR %q carries node SANs (peer, role or finid); this looks like a node request, not a governance CA request", ErrBadCSR, subject)
	case len(n.foreign) > 0 || len(n.other) > 0:
		return "", fmt.Errorf("%w: CSR %q carries URI SANs outside the FinP2P profile: %s", ErrBadCSR, subject, strings.Join(append(n.foreign, n.other...), ", "))
	}
	if err := ValidateOrgID(n.org); err != nil {
		return "", fmt.Errorf("%w: CSR %q: %w", ErrBadCSR, subject, err)
	}
	if err := subjectOrgMatches(csr.Subject, n.org); err != nil {
		return "", fmt.Errorf("%w: CSR %q: %w", ErrBadCSR, subject, err)
	}
	return n.org, nil
}

// noOtherSANs refuses DNS, e-mail and IP SANs, which the profile never
// certifies; silently dropping them would surprise the requester.
func noOtherSANs(csr *x509.CertificateRequest) error {
	if len(csr.DNSNames) > 0 || len(csr.EmailAddresses) > 0 || len(csr.IPAddresses) > 0 {
		return fmt.Errorf("carries DNS, e-mail or IP SANs (%d, %d, %d), which FinP2P certificates do not hold", len(csr.DNSNames), len(csr.EmailAddresses), len(csr.IPAddresses))
	}
	return nil
}

func subjectOrgMatches(subject pkix.Name, org string) error {
	for _, o := range subject.Organization {
		if o != org {
			return fmt.Errorf("subject O=%q differs from finp2p:org SAN %q", o, org)
		}
	}
	return nil
}
