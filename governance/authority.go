package governance

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/finp2p/go-finp2p/internal/limitedfile"
	"io/fs"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/finp2p/go-finp2p/internal/atomicfile"
)

// Files of an authority directory.
const (
	authorityKeyFile   = "ca.key"     // the CA's Ed25519 key, PKCS#8 PEM, 0600
	authorityCertFile  = "ca.pem"     // the CA's own certificate
	authorityChainFile = "chain.pem"  // the certificates above the CA; empty for a root
	authorityStateFile = "state.json" // orgs, issued and revoked certificates, next CRL number

	stateVersion  = 1
	maxStateFile  = 256 << 20
	serialBits    = 128
	maxCRLReason  = 10
	reasonRemoved = 7 // RFC 5280 leaves reason code 7 unused
)

// CertificateKind says what an authority issued a certificate for.
type CertificateKind string

// Kinds of certificates an authority issues.
const (
	// KindGovernanceCA is a governance CA certificate issued by a founding authority.
	KindGovernanceCA CertificateKind = "governance-ca"
	// KindNode is a node's leaf certificate.
	KindNode CertificateKind = "node"
)

// IssuedCertificate is an authority's record of a certificate it issued.
type IssuedCertificate struct {
	Serial    *big.Int
	Kind      CertificateKind
	Org       string
	FinID     string  // empty for a governance CA
	PeerID    peer.ID // empty for a governance CA
	Role      Role    // empty for a governance CA
	NotBefore time.Time
	NotAfter  time.Time
	// DER is the issued certificate.
	DER []byte
	// Revoked is set once Revoke was called for the certificate.
	Revoked          bool
	RevokedAt        time.Time
	RevocationReason int
}

// Authority is a certificate authority run by a founding node (a self-signed
// founding root) or a governance node (a governance CA certified by a founding
// root). It keeps its key, certificate and state in a directory; every state
// change is written atomically before the call that made it returns. An
// Authority is safe for concurrent use within one process; two processes must
// not open the same directory at once.
type Authority struct {
	dir      string
	key      ed25519.PrivateKey
	cert     *x509.Certificate
	chain    []*x509.Certificate
	org      string
	founding bool

	mu    sync.Mutex
	state *authorityState
}

type authorityState struct {
	Version       int               `json:"version"`
	Orgs          map[string]string `json:"orgs"` // org id → FinID
	Issued        []issuedRecord    `json:"issued"`
	Revoked       []revokedRecord   `json:"revoked"`
	NextCRLNumber uint64            `json:"nextCRLNumber"`
}

type issuedRecord struct {
	Serial      string          `json:"serial"` // hexadecimal
	Kind        CertificateKind `json:"kind"`
	Org         string          `json:"org"`
	FinID       string          `json:"finid,omitempty"`
	Peer        string          `json:"peer,omitempty"`
	Role        Role            `json:"role,omitempty"`
	NotBefore   time.Time       `json:"notBefore"`
	NotAfter    time.Time       `json:"notAfter"`
	Certificate []byte          `json:"certificate"` // DER, base64 in JSON
}

type revokedRecord struct {
	Serial string    `json:"serial"` // hexadecimal
	Time   time.Time `json:"time"`
	Reason int       `json:"reason"`
}

func newState() *authorityState {
	return &authorityState{Version: stateVersion, Orgs: map[string]string{}, NextCRLNumber: 1}
}

// clone copies the state so a change can be written before it is applied.
func (s *authorityState) clone() *authorityState {
	c := *s
	c.Orgs = make(map[string]string, len(s.Orgs))
	for k, v := range s.Orgs {
		c.Orgs[k] = v
	}
	c.Issued = slices.Clone(s.Issued)
	c.Revoked = slices.Clone(s.Revoked)
	return &c
}

func (s *authorityState) issued(serial string) (issuedRecord, bool) {
	for _, r := range s.Issued {
		if r.Serial == serial {
			return r, true
		}
	}
	return issuedRecord{}, false
}

func (s *authorityState) revoked(serial string) (revokedRecord, bool) {
	for _, r := range s.Revoked {
		if r.Serial == serial {
			return r, true
		}
	}
	return revokedRecord{}, false
}

func (s *authorityState) validate() error {
	if s.Version != stateVersion {
		return fmt.Errorf("version %d, want %d", s.Version, stateVersion)
	}
	if s.NextCRLNumber == 0 {
		return errors.New("nextCRLNumber is 0, want at least 1")
	}
	for org, finID := range s.Orgs {
		if err := ValidateOrgID(org); err != nil {
			return fmt.Errorf("orgs: %w", err)
		}
		if err := validateFinID(finID); err != nil {
			return fmt.Errorf("orgs[%q]: %w", org, err)
		}
	}
	seen := make(map[string]bool, len(s.Issued))
	for i, r := range s.Issued {
		if _, err := parseSerial(r.Serial); err != nil {
			return fmt.Errorf("issued[%d]: %w", i, err)
		}
		if seen[r.Serial] {
			return fmt.Errorf("issued[%d]: serial %s appears twice", i, r.Serial)
		}
		seen[r.Serial] = true
		if err := ValidateOrgID(r.Org); err != nil {
			return fmt.Errorf("issued[%d]: %w", i, err)
		}
		switch r.Kind {
		case KindGovernanceCA:
		case KindNode:
			if _, err := peer.Decode(r.Peer); err != nil {
				return fmt.Errorf("issued[%d]: peer %q: %w", i, r.Peer, err)
			}
			if _, err := ParseRole(string(r.Role)); err != nil {
				return fmt.Errorf("issued[%d]: %w", i, err)
			}
			if err := validateFinID(r.FinID); err != nil {
				return fmt.Errorf("issued[%d]: %w", i, err)
			}
		default:
			return fmt.Errorf("issued[%d]: unknown kind %q", i, r.Kind)
		}
	}
	for i, r := range s.Revoked {
		if !seen[r.Serial] {
			return fmt.Errorf("revoked[%d]: serial %s was not issued by this authority", i, r.Serial)
		}
	}
	return nil
}

func parseSerial(s string) (*big.Int, error) {
	n, ok := new(big.Int).SetString(s, 16)
	if !ok || n.Sign() <= 0 {
		return nil, fmt.Errorf("serial %q is not a positive hexadecimal number", s)
	}
	return n, nil
}

func serialKey(n *big.Int) string { return n.Text(16) }

// InitFoundingAuthority creates a founding authority in dir: a new Ed25519 key
// and a self-signed founding root certificate valid from now for validity. It
// refuses a directory that already holds a CA.
func InitFoundingAuthority(dir, network, org string, now time.Time, validity time.Duration) (*Authority, error) {
	if err := ValidateNetworkName(network); err != nil {
		return nil, fmt.Errorf("init founding authority in %s: %w", dir, err)
	}
	if err := ValidateOrgID(org); err != nil {
		return nil, fmt.Errorf("init founding authority in %s: %w", dir, err)
	}
	if validity <= 0 {
		return nil, fmt.Errorf("init founding authority in %s: validity %v is not positive", dir, validity)
	}
	if err := prepareAuthorityDir(dir); err != nil {
		return nil, fmt.Errorf("init founding authority: %w", err)
	}
	key, err := GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("init founding authority in %s: %w", dir, err)
	}
	pub := key.Public().(ed25519.PublicKey)
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("init founding authority in %s: %w", dir, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization: []string{org},
			CommonName:   fmt.Sprintf("%s founding root (%s)", network, org),
		},
		NotBefore:             now,
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
		SubjectKeyId:          keyID(pub),
		URIs:                  []*url.URL{sanURI(sanOrg, org)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, fmt.Errorf("init founding authority in %s: create root certificate: %w", dir, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("init founding authority in %s: parse root certificate: %w", dir, err)
	}
	a := &Authority{dir: dir, key: key, cert: cert, org: org, founding: true, state: newState()}
	if err := a.install(); err != nil {
		return nil, fmt.Errorf("init founding authority: %w", err)
	}
	return a, nil
}

// InitGovernanceAuthority installs in dir a governance CA: key, and the
// certificate a founding authority issued for it with CertifyGovernanceCA,
// and chain, the founding root above it. It refuses a directory that already
// holds a CA.
func InitGovernanceAuthority(dir string, key ed25519.PrivateKey, cert *x509.Certificate, chain []*x509.Certificate) (*Authority, error) {
	if cert == nil {
		return nil, fmt.Errorf("init governance authority in %s: no certificate", dir)
	}
	if err := checkKeyPair(key, cert); err != nil {
		return nil, fmt.Errorf("init governance authority in %s: %w", dir, err)
	}
	org, err := checkGovernanceCA(cert, chain)
	if err != nil {
		return nil, fmt.Errorf("init governance authority in %s: %w", dir, err)
	}
	if err := prepareAuthorityDir(dir); err != nil {
		return nil, fmt.Errorf("init governance authority: %w", err)
	}
	a := &Authority{dir: dir, key: key, cert: cert, chain: slices.Clone(chain), org: org, state: newState()}
	if err := a.install(); err != nil {
		return nil, fmt.Errorf("init governance authority: %w", err)
	}
	return a, nil
}

// checkGovernanceCA checks the governance CA profile: a CA with path length 0,
// allowed to sign certificates and CRLs, with an org SAN, issued directly by
// the founding root that is the only certificate of chain.
func checkGovernanceCA(cert *x509.Certificate, chain []*x509.Certificate) (string, error) {
	if !cert.BasicConstraintsValid || !cert.IsCA || cert.MaxPathLen != 0 || !cert.MaxPathLenZero {
		return "", fmt.Errorf("%w: certificate %s is not a governance CA: want a CA with MaxPathLen 0", ErrUntrustedChain, describe(cert))
	}
	const usage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	if cert.KeyUsage&usage != usage {
		return "", fmt.Errorf("%w: certificate %s may not sign certificates and CRLs", ErrUntrustedChain, describe(cert))
	}
	org, err := orgOf(cert)
	if err != nil {
		return "", fmt.Errorf("%w: certificate %s: %w", ErrUntrustedChain, describe(cert), err)
	}
	if len(chain) != 1 {
		return "", fmt.Errorf("%w: governance CA %s: chain holds %d certificates, want exactly its founding root", ErrUntrustedChain, describe(cert), len(chain))
	}
	root := chain[0]
	if err := validateRoot(root); err != nil {
		return "", fmt.Errorf("%w: founding root %s of governance CA %s: %w", ErrUntrustedChain, describe(root), describe(cert), err)
	}
	if !bytes.Equal(cert.RawIssuer, root.RawSubject) {
		return "", fmt.Errorf("%w: governance CA %s was issued by %q, not by founding root %s", ErrUntrustedChain, describe(cert), cert.Issuer.String(), describe(root))
	}
	if err := cert.CheckSignatureFrom(root); err != nil {
		return "", fmt.Errorf("%w: governance CA %s: signature of founding root %s does not verify: %w", ErrUntrustedChain, describe(cert), describe(root), err)
	}
	return org, nil
}

// prepareAuthorityDir creates dir if needed and refuses one that already
// holds any authority file, so an existing CA is never replaced.
func prepareAuthorityDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create authority directory %s: %w", dir, err)
	}
	for _, name := range []string{authorityKeyFile, authorityCertFile, authorityChainFile, authorityStateFile} {
		p := filepath.Join(dir, name)
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("directory %s already holds a CA (%s exists): %w", dir, name, atomicfile.ErrExists)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("check %s: %w", p, err)
		}
	}
	return nil
}

// install writes a new authority's files. Each is created exclusively; the
// key goes first and the state last, so an interrupted init leaves a directory
// that OpenAuthority refuses and a new init does not overwrite.
func (a *Authority) install() error {
	if err := WriteKeyFile(filepath.Join(a.dir, authorityKeyFile), a.key); err != nil {
		return err
	}
	if err := atomicfile.Create(filepath.Join(a.dir, authorityCertFile), EncodeCertificatesPEM(a.cert), 0o644); err != nil {
		return fmt.Errorf("write CA certificate: %w", err)
	}
	if err := atomicfile.Create(filepath.Join(a.dir, authorityChainFile), EncodeCertificatesPEM(a.chain...), 0o644); err != nil {
		return fmt.Errorf("write CA chain: %w", err)
	}
	data, err := json.MarshalIndent(a.state, "", "  ")
	if err != nil {
		return fmt.Errorf("encode authority state: %w", err)
	}
	if err := atomicfile.Create(filepath.Join(a.dir, authorityStateFile), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write authority state: %w", err)
	}
	return nil
}

// OpenAuthority opens the authority in dir created by InitFoundingAuthority
// or InitGovernanceAuthority.
func OpenAuthority(dir string) (*Authority, error) {
	key, err := ReadKeyFile(filepath.Join(dir, authorityKeyFile))
	if err != nil {
		return nil, fmt.Errorf("open authority: %w", err)
	}
	certPath := filepath.Join(dir, authorityCertFile)
	certs, err := LoadCertificatesPEM(certPath)
	if err != nil {
		return nil, fmt.Errorf("open authority: %w", err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("open authority: %s holds %d certificates, want only the CA's own", certPath, len(certs))
	}
	cert := certs[0]
	if err := checkKeyPair(key, cert); err != nil {
		return nil, fmt.Errorf("open authority: %s and %s: %w", certPath, authorityKeyFile, err)
	}
	chainPath := filepath.Join(dir, authorityChainFile)
	chainData, err := limitedfile.Read(chainPath, maxPEMFile)
	if err != nil {
		return nil, fmt.Errorf("open authority: %w", err)
	}
	var chain []*x509.Certificate
	if len(bytes.TrimSpace(chainData)) > 0 {
		if chain, err = ParseCertificatesPEM(chainData); err != nil {
			return nil, fmt.Errorf("open authority: %s: %w", chainPath, err)
		}
	}
	a := &Authority{dir: dir, key: key, cert: cert, chain: chain}
	if len(chain) == 0 {
		if err := validateRoot(cert); err != nil {
			return nil, fmt.Errorf("open authority: %s has an empty chain but %s is not a founding root: %w", dir, describe(cert), err)
		}
		a.founding = true
		a.org, _ = orgOf(cert) // validateRoot checked it
	} else if a.org, err = checkGovernanceCA(cert, chain); err != nil {
		return nil, fmt.Errorf("open authority %s: %w", dir, err)
	}
	statePath := filepath.Join(dir, authorityStateFile)
	data, err := limitedfile.Read(statePath, maxStateFile)
	if err != nil {
		return nil, fmt.Errorf("open authority: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	st := newState()
	if err := dec.Decode(st); err != nil {
		return nil, fmt.Errorf("open authority: decode %s: %w", statePath, err)
	}
	if st.Orgs == nil {
		st.Orgs = map[string]string{}
	}
	if err := st.validate(); err != nil {
		return nil, fmt.Errorf("open authority: %s: %w", statePath, err)
	}
	a.state = st
	return a, nil
}

// saveState writes st durably; the caller applies it only if this succeeds.
func (a *Authority) saveState(st *authorityState) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode authority state: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(a.dir, authorityStateFile), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("save authority state: %w", err)
	}
	return nil
}

// Certificate returns the CA's own certificate.
func (a *Authority) Certificate() *x509.Certificate { return a.cert }

// Chain returns the certificates above the CA: the founding root for a
// governance CA, none for a founding root.
func (a *Authority) Chain() []*x509.Certificate { return slices.Clone(a.chain) }

// IsFounding reports whether the authority is a founding root.
func (a *Authority) IsFounding() bool { return a.founding }

// Org returns the organisation that runs the authority.
func (a *Authority) Org() string { return a.org }

// Dir returns the authority's directory.
func (a *Authority) Dir() string { return a.dir }

// CertifyGovernanceCA issues a governance CA certificate for the key and org
// of csr. Only a founding authority may (else ErrRoleNotAllowed).
func (a *Authority) CertifyGovernanceCA(csr *x509.CertificateRequest, now time.Time, validity time.Duration) (*x509.Certificate, error) {
	if !a.founding {
		return nil, fmt.Errorf("%w: governance CA %s is not a founding authority and may not certify governance CAs", ErrRoleNotAllowed, describe(a.cert))
	}
	org, err := parseGovernanceCARequest(csr)
	if err != nil {
		return nil, fmt.Errorf("certify governance CA: %w", err)
	}
	pub, _ := ed25519Key(csr.PublicKey)
	if pub.Equal(a.key.Public()) {
		return nil, fmt.Errorf("certify governance CA for %s: %w: the request uses the founding root's own key", org, ErrBadCSR)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{org}, CommonName: org + " governance CA"},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		URIs:                  []*url.URL{sanURI(sanOrg, org)},
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	cert, err := a.issue(tmpl, pub, now, validity)
	if err != nil {
		return nil, fmt.Errorf("certify governance CA for %s: %w", org, err)
	}
	st := a.state.clone()
	st.Issued = append(st.Issued, issuedRecord{
		Serial: serialKey(cert.SerialNumber), Kind: KindGovernanceCA, Org: org,
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, Certificate: cert.Raw,
	})
	if err := a.saveState(st); err != nil {
		return nil, fmt.Errorf("certify governance CA for %s: %w", org, err)
	}
	a.state = st
	return cert, nil
}

// CertifyNode issues a node certificate for csr, which carries the node's
// org, peer ID and role. The first certificate for an org gives it a new
// FinID; later nodes of the same org (a cluster) share it. A founding-role
// certificate is issued only by a founding authority to its own org, a
// governance-role one by a founding authority or by a governance authority to
// its own org. The certificate is recorded durably before it is returned.
func (a *Authority) CertifyNode(csr *x509.CertificateRequest, now time.Time, validity time.Duration) (*x509.Certificate, Member, error) {
	req, err := parseNodeRequest(csr)
	if err != nil {
		return nil, Member{}, fmt.Errorf("certify node: %w", err)
	}
	what := fmt.Sprintf("%s node %s of %s", req.role, req.peer, req.org)
	switch req.role {
	case RoleFounding:
		if !a.founding {
			return nil, Member{}, fmt.Errorf("certify %s: %w: only a founding authority certifies founding nodes", what, ErrRoleNotAllowed)
		}
		if req.org != a.org {
			return nil, Member{}, fmt.Errorf("certify %s: %w: a founding authority certifies founding nodes of its own org %s only", what, ErrRoleNotAllowed, a.org)
		}
	case RoleGovernance:
		if !a.founding && req.org != a.org {
			return nil, Member{}, fmt.Errorf("certify %s: %w: a governance CA certifies governance nodes of its own org %s only; other governance nodes need a founding authority", what, ErrRoleNotAllowed, a.org)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.state.Issued {
		if r.Kind == KindNode && r.Peer == req.peer.String() && r.Org != req.org {
			if _, revoked := a.state.revoked(r.Serial); !revoked {
				return nil, Member{}, fmt.Errorf("certify %s: %w: peer is already certified for org %s (serial 0x%s)", what, ErrKeyMismatch, r.Org, r.Serial)
			}
		}
	}
	st := a.state.clone()
	finID, ok := st.Orgs[req.org]
	if !ok {
		finID = uuid.NewString()
		st.Orgs[req.org] = finID
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{req.org}, CommonName: req.peer.String()},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		URIs: []*url.URL{
			sanURI(sanOrg, req.org),
			sanURI(sanFinID, finID),
			sanURI(sanPeer, req.peer.String()),
			sanURI(sanRole, string(req.role)),
		},
	}
	cert, err := a.issue(tmpl, req.pubKey, now, validity)
	if err != nil {
		return nil, Member{}, fmt.Errorf("certify %s: %w", what, err)
	}
	st.Issued = append(st.Issued, issuedRecord{
		Serial: serialKey(cert.SerialNumber), Kind: KindNode, Org: req.org, FinID: finID,
		Peer: req.peer.String(), Role: req.role,
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, Certificate: cert.Raw,
	})
	if err := a.saveState(st); err != nil {
		return nil, Member{}, fmt.Errorf("certify %s: %w", what, err)
	}
	a.state = st
	chain := []*x509.Certificate{cert}
	if !a.founding {
		chain = append(chain, a.cert)
	}
	return cert, Member{
		OrgID:    req.org,
		FinID:    finID,
		PeerID:   req.peer,
		Role:     req.role,
		NotAfter: cert.NotAfter,
		Serial:   cert.SerialNumber,
		Chain:    chain,
	}, nil
}

// issue signs tmpl for pub, valid from now for validity but never beyond the
// CA's own NotAfter. The caller holds a.mu.
func (a *Authority) issue(tmpl *x509.Certificate, pub ed25519.PublicKey, now time.Time, validity time.Duration) (*x509.Certificate, error) {
	if validity <= 0 {
		return nil, fmt.Errorf("validity %v is not positive", validity)
	}
	if now.Before(a.cert.NotBefore) {
		return nil, fmt.Errorf("%w: CA certificate %s is valid only from %s", ErrNotYetValid, describe(a.cert), a.cert.NotBefore.UTC().Format(time.RFC3339))
	}
	if !now.Before(a.cert.NotAfter) {
		return nil, fmt.Errorf("%w: CA certificate %s expired at %s", ErrExpired, describe(a.cert), a.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	serial, err := a.uniqueSerial()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now
	tmpl.NotAfter = now.Add(validity)
	if tmpl.NotAfter.After(a.cert.NotAfter) {
		tmpl.NotAfter = a.cert.NotAfter
	}
	tmpl.SubjectKeyId = keyID(pub)
	tmpl.AuthorityKeyId = a.cert.SubjectKeyId
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, pub, a.key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse issued certificate: %w", err)
	}
	return cert, nil
}

func (a *Authority) uniqueSerial() (*big.Int, error) {
	for {
		s, err := randomSerial()
		if err != nil {
			return nil, err
		}
		if _, taken := a.state.issued(serialKey(s)); !taken && s.Cmp(a.cert.SerialNumber) != 0 {
			return s, nil
		}
	}
}

// randomSerial returns a random positive serial number of at most 128 bits.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), serialBits)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("generate serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// FinID returns the FinID the authority gave org, if it certified the org.
func (a *Authority) FinID(org string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	id, ok := a.state.Orgs[org]
	return id, ok
}

// Issued returns every certificate the authority issued, oldest first, with
// its revocation status.
func (a *Authority) Issued() []IssuedCertificate {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]IssuedCertificate, 0, len(a.state.Issued))
	for _, r := range a.state.Issued {
		serial, _ := parseSerial(r.Serial) // validated on load and on issue
		ic := IssuedCertificate{
			Serial: serial, Kind: r.Kind, Org: r.Org, FinID: r.FinID, Role: r.Role,
			NotBefore: r.NotBefore, NotAfter: r.NotAfter, DER: slices.Clone(r.Certificate),
		}
		if r.Peer != "" {
			ic.PeerID, _ = peer.Decode(r.Peer) // validated on load and on issue
		}
		if rv, ok := a.state.revoked(r.Serial); ok {
			ic.Revoked, ic.RevokedAt, ic.RevocationReason = true, rv.Time, rv.Reason
		}
		out = append(out, ic)
	}
	return out
}

// Revoke records that the certificate with serial, which this authority
// issued, is revoked from now for reason (an RFC 5280 CRL reason code, 0 for
// unspecified). Revoking a revoked certificate again changes nothing. The
// revocation reaches other nodes with the next CRL.
func (a *Authority) Revoke(serial *big.Int, reason int, now time.Time) error {
	if serial == nil || serial.Sign() <= 0 {
		return fmt.Errorf("revoke: serial %s is not a positive number", serialString(serial))
	}
	if reason < 0 || reason > maxCRLReason || reason == reasonRemoved {
		return fmt.Errorf("revoke serial %s: reason code %d is not an RFC 5280 CRL reason", serialString(serial), reason)
	}
	if now.IsZero() {
		return fmt.Errorf("revoke serial %s: no revocation time", serialString(serial))
	}
	key := serialKey(serial)
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.state.issued(key); !ok {
		return fmt.Errorf("revoke serial %s: not a certificate issued by %s", serialString(serial), describe(a.cert))
	}
	if _, ok := a.state.revoked(key); ok {
		return nil
	}
	st := a.state.clone()
	st.Revoked = append(st.Revoked, revokedRecord{Serial: key, Time: now.UTC(), Reason: reason})
	if err := a.saveState(st); err != nil {
		return fmt.Errorf("revoke serial %s: %w", serialString(serial), err)
	}
	a.state = st
	return nil
}

// CRL returns a DER revocation list of every certificate the authority
// revoked, signed by the CA key, valid from now for validity. Each call uses a
// new, higher CRL number, persisted before the list is signed.
func (a *Authority) CRL(now time.Time, validity time.Duration) ([]byte, error) {
	if validity <= 0 {
		return nil, fmt.Errorf("create CRL of %s: validity %v is not positive", describe(a.cert), validity)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.state.clone()
	number := new(big.Int).SetUint64(st.NextCRLNumber)
	st.NextCRLNumber++
	if err := a.saveState(st); err != nil {
		return nil, fmt.Errorf("create CRL of %s: %w", describe(a.cert), err)
	}
	a.state = st
	entries := make([]x509.RevocationListEntry, 0, len(st.Revoked))
	for _, r := range st.Revoked {
		serial, _ := parseSerial(r.Serial)
		entries = append(entries, x509.RevocationListEntry{SerialNumber: serial, RevocationTime: r.Time, ReasonCode: r.Reason})
	}
	tmpl := &x509.RevocationList{
		Number:                    number,
		ThisUpdate:                now,
		NextUpdate:                now.Add(validity),
		RevokedCertificateEntries: entries,
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, a.cert, a.key)
	if err != nil {
		return nil, fmt.Errorf("create CRL %d of %s: %w", number, describe(a.cert), err)
	}
	return der, nil
}
