package governance

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	// maxChainCerts bounds the certificates a peer may send: a leaf, a
	// governance CA and optionally the root, plus one spare so that an
	// over-long chain gets x509's own path-length error.
	maxChainCerts = 4
	// maxCertDER bounds one DER certificate; FinP2P's Ed25519 certificates
	// are well under a kilobyte.
	maxCertDER = 16 << 10
	// maxCRLDER bounds a DER revocation list.
	maxCRLDER = 16 << 20
)

// UnverifiedOrg is what logs give as the org of a peer that has not proved
// its membership (yet): every log line about a peer carries "peer" and "org".
const UnverifiedOrg = "unverified"

// Member is what a verified certificate chain proves about a node.
type Member struct {
	OrgID    string
	FinID    string
	PeerID   peer.ID
	Role     Role
	NotAfter time.Time
	Serial   *big.Int
	// Chain is the verified chain without the root: the leaf first, then the
	// governance CA if the leaf was issued by one.
	Chain []*x509.Certificate
}

// StoredCRL is a revocation list a TrustStore accepted, with what is needed to
// check it again: a node persists these and shares them with its peers.
type StoredCRL struct {
	// DER is the revocation list.
	DER []byte
	// IssuerChain is the issuing CA's certificate first, then its issuers.
	IssuerChain [][]byte
	// Number is the list's CRL number.
	Number *big.Int
}

// TrustStore verifies certificate chains against the genesis founding roots
// and keeps the newest revocation list of each CA. It remembers the chains
// it verified from DER (see WithVerifyCache) until a certificate of the
// chain is no longer valid at the time a caller asks about or a new
// revocation list arrives. It is safe for concurrent use.
type TrustStore struct {
	roots     []*x509.Certificate
	pool      *x509.CertPool
	rootByRaw map[string]*x509.Certificate
	cache     *verifyCache // nil when off

	mu   sync.RWMutex
	crls map[string]*crlEntry // by issuerID of the CA
	// generation counts the changes to crls; it is changed under mu, and a
	// cached verification is good only for the generation it was made at.
	generation atomic.Uint64
}

type crlEntry struct {
	stored  StoredCRL
	issuer  *x509.Certificate
	revoked map[string]time.Time // serialKey → revocation time
}

// NewTrustStore returns a trust store for the given founding roots, each of
// which must follow the founding root profile.
func NewTrustStore(roots []*x509.Certificate, opts ...TrustStoreOption) (*TrustStore, error) {
	if len(roots) == 0 {
		return nil, ErrNoRoots
	}
	cfg := trustStoreConfig{cacheSize: DefaultVerifyCacheSize}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("trust store: %w", err)
		}
	}
	t := &TrustStore{
		pool:      x509.NewCertPool(),
		rootByRaw: make(map[string]*x509.Certificate, len(roots)),
		cache:     newVerifyCache(cfg.cacheSize),
		crls:      map[string]*crlEntry{},
	}
	for i, r := range roots {
		if r == nil {
			return nil, fmt.Errorf("%w: root %d is nil", ErrUntrustedChain, i)
		}
		if err := validateRoot(r); err != nil {
			return nil, fmt.Errorf("%w: root %d %s is not a founding root: %w", ErrUntrustedChain, i, describe(r), err)
		}
		if _, dup := t.rootByRaw[string(r.Raw)]; dup {
			continue
		}
		t.rootByRaw[string(r.Raw)] = r
		t.roots = append(t.roots, r)
		t.pool.AddCert(r)
	}
	return t, nil
}

// RootsPool returns a copy of the pool of founding roots.
func (t *TrustStore) RootsPool() *x509.CertPool { return t.pool.Clone() }

// Roots returns the founding root certificates.
func (t *TrustStore) Roots() []*x509.Certificate { return slices.Clone(t.roots) }

// issuerID identifies a CA for revocation: subject name and key id.
func issuerID(ca *x509.Certificate) string {
	return string(ca.RawSubject) + "\x00" + string(ca.SubjectKeyId)
}

// VerifyDER parses a DER chain (leaf first) and verifies it like Verify.
// A chain verified before is not parsed again: the earlier result is
// returned while every certificate involved is valid at now and no
// revocation list was added since. The Member's certificates are shared
// with the cache; callers must not modify them.
func (t *TrustStore) VerifyDER(chain [][]byte, now time.Time) (Member, error) {
	if t.cache == nil || !cacheable(chain) {
		certs, err := parseChainDER(chain)
		if err != nil {
			return Member{}, err
		}
		return t.Verify(certs, now)
	}
	k := chainKey(chain)
	if m, ok := t.cache.get(k, now, t.generation.Load()); ok {
		return m, nil
	}
	certs, err := parseChainDER(chain)
	if err != nil {
		return Member{}, err
	}
	m, vc, err := t.verify(certs, now)
	if err != nil {
		return Member{}, err
	}
	t.cache.put(k, vc)
	return m, nil
}

// cacheable reports whether chain is within the bounds parseChainDER
// enforces, so that the cache never hashes more than they allow and an
// out-of-bounds chain gets parseChainDER's error.
func cacheable(chain [][]byte) bool {
	if len(chain) == 0 || len(chain) > maxChainCerts {
		return false
	}
	for _, der := range chain {
		if len(der) > maxCertDER {
			return false
		}
	}
	return true
}

// VerifySigner verifies the DER chain carried in a signed record and checks
// that the leaf holds signer, the libp2p key that signed the record.
func (t *TrustStore) VerifySigner(chain [][]byte, signer crypto.PubKey, now time.Time) (Member, error) {
	if signer == nil || signer.Type() != crypto.Ed25519 {
		return Member{}, fmt.Errorf("%w: signer key is not Ed25519", ErrKeyMismatch)
	}
	raw, err := signer.Raw()
	if err != nil {
		return Member{}, fmt.Errorf("%w: signer key: %w", ErrKeyMismatch, err)
	}
	return t.VerifyPeer(chain, ed25519.PublicKey(raw), now)
}

// VerifyPeer verifies a DER chain a remote peer presented and checks that the
// leaf holds the key the peer proved it has on the connection.
func (t *TrustStore) VerifyPeer(chain [][]byte, remoteKey ed25519.PublicKey, now time.Time) (Member, error) {
	m, err := t.VerifyDER(chain, now)
	if err != nil {
		return Member{}, err
	}
	leafKey, _ := ed25519Key(m.Chain[0].PublicKey)
	if !leafKey.Equal(remoteKey) {
		remote := "with a malformed key"
		if id, err := PeerIDFromKey(remoteKey); err == nil {
			remote = id.String()
		}
		return Member{}, fmt.Errorf("%w: certificate key is not the peer's key: certificate %s is for peer %s, the remote peer is %s", ErrKeyMismatch, describe(m.Chain[0]), m.PeerID, remote)
	}
	return m, nil
}

func parseChainDER(chain [][]byte) ([]*x509.Certificate, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: empty certificate chain", ErrUntrustedChain)
	}
	if len(chain) > maxChainCerts {
		return nil, fmt.Errorf("%w: chain holds %d certificates, at most %d allowed", ErrUntrustedChain, len(chain), maxChainCerts)
	}
	certs := make([]*x509.Certificate, len(chain))
	for i, der := range chain {
		if len(der) > maxCertDER {
			return nil, fmt.Errorf("%w: certificate %d of the chain is %d bytes, at most %d allowed", ErrUntrustedChain, i, len(der), maxCertDER)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d of the chain does not parse: %w", ErrUntrustedChain, i, err)
		}
		certs[i] = c
	}
	return certs, nil
}

// Verify checks chain (leaf first, then at most one governance CA; a trailing
// founding root is tolerated) at time now against the founding roots, the
// FinP2P profile and the known revocation lists, and returns the member it
// proves.
func (t *TrustStore) Verify(chain []*x509.Certificate, now time.Time) (Member, error) {
	m, _, err := t.verify(chain, now)
	return m, err
}

// verify is Verify; on success it also returns what VerifyDER caches: the
// member, the times between which every certificate involved is valid, and
// the revocation generation the chain was checked against.
func (t *TrustStore) verify(chain []*x509.Certificate, now time.Time) (Member, *verifiedChain, error) {
	if len(chain) == 0 {
		return Member{}, nil, fmt.Errorf("%w: empty certificate chain", ErrUntrustedChain)
	}
	if len(chain) > maxChainCerts {
		return Member{}, nil, fmt.Errorf("%w: chain holds %d certificates, at most %d allowed", ErrUntrustedChain, len(chain), maxChainCerts)
	}
	for i, c := range chain {
		if c == nil {
			return Member{}, nil, fmt.Errorf("%w: certificate %d of the chain is nil", ErrUntrustedChain, i)
		}
	}
	if len(chain) > 1 {
		if _, isRoot := t.rootByRaw[string(chain[len(chain)-1].Raw)]; isRoot {
			chain = chain[:len(chain)-1]
		}
	}
	for _, c := range chain {
		if err := checkValidity(c, now); err != nil {
			return Member{}, nil, err
		}
	}
	leaf := chain[0]
	names, err := checkLeaf(leaf)
	if err != nil {
		return Member{}, nil, err
	}

	opts := x509.VerifyOptions{
		Roots:         t.pool,
		Intermediates: x509.NewCertPool(),
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	for _, c := range chain[1:] {
		opts.Intermediates.AddCert(c)
	}
	chains, err := leaf.Verify(opts)
	if err != nil {
		return Member{}, nil, t.chainError(leaf, chain, now, err)
	}
	verified := chains[0]
	path, root := verified[:len(verified)-1], verified[len(verified)-1]
	rootOrg, _ := orgOf(root) // validated by NewTrustStore

	switch len(path) {
	case 1:
		if names.role == RoleFounding && names.org != rootOrg {
			return Member{}, nil, fmt.Errorf("%w: founding-role certificate %s of org %s is signed by the founding root of org %s", ErrRoleNotAllowed, describe(leaf), names.org, rootOrg)
		}
	case 2:
		ca := path[1]
		caOrg, err := checkIntermediate(ca)
		if err != nil {
			return Member{}, nil, err
		}
		switch names.role {
		case RoleFounding:
			return Member{}, nil, fmt.Errorf("%w: founding-role certificate %s is signed by governance CA %s; founding nodes are certified by their founding root only", ErrRoleNotAllowed, describe(leaf), describe(ca))
		case RoleGovernance:
			if names.org != caOrg {
				return Member{}, nil, fmt.Errorf("%w: governance-role certificate %s of org %s is signed by governance CA %s of org %s; governance nodes of other orgs are certified by a founding root", ErrRoleNotAllowed, describe(leaf), names.org, describe(ca), caOrg)
			}
		}
	default:
		return Member{}, nil, fmt.Errorf("%w: certificate %s chains through %d intermediates; the profile allows at most one governance CA", ErrUntrustedChain, describe(leaf), len(path)-1)
	}

	t.mu.RLock()
	defer t.mu.RUnlock()
	for i, c := range path {
		issuer := verified[i+1]
		if e, ok := t.crls[issuerID(issuer)]; ok {
			if at, revoked := e.revoked[serialKey(c.SerialNumber)]; revoked {
				return Member{}, nil, fmt.Errorf("%w: certificate %s was revoked by %s at %s (CRL %s)", ErrRevoked, describe(c), describe(issuer), at.UTC().Format(time.RFC3339), e.stored.Number)
			}
		}
	}
	m := Member{
		OrgID:    names.org,
		FinID:    names.finID,
		PeerID:   names.peerID,
		Role:     names.role,
		NotAfter: leaf.NotAfter,
		Serial:   leaf.SerialNumber,
		Chain:    slices.Clone(path),
	}
	vc := &verifiedChain{member: m.clone(), generation: t.generation.Load()}
	vc.notBefore, vc.notAfter = validityWindow(chain, verified)
	return m, vc, nil
}

func checkValidity(c *x509.Certificate, now time.Time) error {
	if now.Before(c.NotBefore) {
		return fmt.Errorf("%w: certificate %s is valid only from %s (now %s)", ErrNotYetValid, describe(c), c.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if now.After(c.NotAfter) {
		return fmt.Errorf("%w: certificate %s expired at %s (now %s)", ErrExpired, describe(c), c.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// chainError turns x509's verification error into one that wraps a sentinel.
// An expired or not yet valid founding root gets its own error, since x509
// reports it only as an unknown authority.
func (t *TrustStore) chainError(leaf *x509.Certificate, chain []*x509.Certificate, now time.Time, err error) error {
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) && inv.Reason == x509.Expired && inv.Cert != nil {
		if verr := checkValidity(inv.Cert, now); verr != nil {
			return verr
		}
	}
	top := chain[len(chain)-1]
	for _, r := range t.roots {
		if bytes.Equal(top.RawIssuer, r.RawSubject) && top.CheckSignatureFrom(r) == nil {
			if verr := checkValidity(r, now); verr != nil {
				return fmt.Errorf("founding root of %s: %w", describe(leaf), verr)
			}
		}
	}
	return fmt.Errorf("%w: certificate %s: %w", ErrUntrustedChain, describe(leaf), err)
}

type leafNames struct {
	org, finID string
	peerID     peer.ID
	role       Role
}

// checkLeaf applies the FinP2P rules for a node certificate: not a CA, an
// Ed25519 key, org, finid, peer and role SANs, and a peer SAN that is the
// key's own peer ID.
func checkLeaf(leaf *x509.Certificate) (leafNames, error) {
	var out leafNames
	if leaf.IsCA {
		return out, fmt.Errorf("%w: leaf certificate %s is a CA", ErrUntrustedChain, describe(leaf))
	}
	pub, ok := ed25519Key(leaf.PublicKey)
	if !ok {
		return out, fmt.Errorf("%w: leaf certificate %s holds a %v key, want Ed25519", ErrUntrustedChain, describe(leaf), leaf.PublicKeyAlgorithm)
	}
	n, err := parseNames(leaf.URIs)
	if err != nil {
		return out, fmt.Errorf("%w: leaf certificate %s: %w", ErrUntrustedChain, describe(leaf), err)
	}
	for _, f := range []struct{ kind, value string }{{sanOrg, n.org}, {sanFinID, n.finID}, {sanPeer, n.peer}, {sanRole, n.role}} {
		if f.value == "" {
			return out, fmt.Errorf("%w: leaf certificate %s has no finp2p:%s URI SAN", ErrUntrustedChain, describe(leaf), f.kind)
		}
	}
	if err := ValidateOrgID(n.org); err != nil {
		return out, fmt.Errorf("%w: leaf certificate %s: %w", ErrUntrustedChain, describe(leaf), err)
	}
	if err := validateFinID(n.finID); err != nil {
		return out, fmt.Errorf("%w: leaf certificate %s: %w", ErrUntrustedChain, describe(leaf), err)
	}
	role, err := ParseRole(n.role)
	if err != nil {
		return out, fmt.Errorf("%w: leaf certificate %s: %w", ErrUntrustedChain, describe(leaf), err)
	}
	claimed, err := peer.Decode(n.peer)
	if err != nil {
		return out, fmt.Errorf("%w: leaf certificate %s: finp2p:peer SAN %q is not a peer ID: %w", ErrUntrustedChain, describe(leaf), n.peer, err)
	}
	actual, err := PeerIDFromKey(pub)
	if err != nil {
		return out, fmt.Errorf("leaf certificate %s: %w", describe(leaf), err)
	}
	if claimed != actual {
		return out, fmt.Errorf("%w: leaf certificate %s names peer %s but its key is peer %s", ErrKeyMismatch, describe(leaf), claimed, actual)
	}
	return leafNames{org: n.org, finID: n.finID, peerID: actual, role: role}, nil
}

// checkIntermediate applies the governance CA profile to a verified
// intermediate and returns its org.
func checkIntermediate(ca *x509.Certificate) (string, error) {
	if !ca.IsCA || ca.MaxPathLen != 0 || !ca.MaxPathLenZero {
		return "", fmt.Errorf("%w: intermediate %s is not a governance CA (want a CA with MaxPathLen 0)", ErrUntrustedChain, describe(ca))
	}
	if ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		return "", fmt.Errorf("%w: intermediate %s may not sign certificates", ErrUntrustedChain, describe(ca))
	}
	org, err := orgOf(ca)
	if err != nil {
		return "", fmt.Errorf("%w: governance CA %s: %w", ErrUntrustedChain, describe(ca), err)
	}
	return org, nil
}

// AddCRL checks a revocation list and keeps it if it is the newest known for
// its issuer. issuerChain is the issuing CA's certificate first, then its
// issuers; for a list issued by a founding root, just the root. The issuer
// must be a founding root or a governance CA that verifies to one at now. It
// returns true if the list is now the stored one for its issuer, false (and
// no error) if an equal or newer CRL number is already stored.
func (t *TrustStore) AddCRL(crlDER []byte, issuerChain [][]byte, now time.Time) (bool, error) {
	if len(crlDER) > maxCRLDER {
		return false, fmt.Errorf("%w: CRL is %d bytes, at most %d allowed", ErrBadCRL, len(crlDER), maxCRLDER)
	}
	crl, err := x509.ParseRevocationList(crlDER)
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrBadCRL, err)
	}
	if crl.Number == nil || crl.Number.Sign() < 0 {
		return false, fmt.Errorf("%w: CRL of %q has no CRL number", ErrBadCRL, crl.Issuer.String())
	}
	certs, err := parseChainDER(issuerChain)
	if err != nil {
		return false, fmt.Errorf("CRL issuer chain: %w", err)
	}
	issuer := certs[0]
	if err := t.checkCRLIssuer(certs, now); err != nil {
		return false, err
	}
	if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) {
		return false, fmt.Errorf("%w: CRL names issuer %q but the issuer chain starts with %s", ErrBadCRL, crl.Issuer.String(), describe(issuer))
	}
	if len(crl.AuthorityKeyId) > 0 && !bytes.Equal(crl.AuthorityKeyId, issuer.SubjectKeyId) {
		return false, fmt.Errorf("%w: CRL %s names another key of issuer %s", ErrBadCRL, crl.Number, describe(issuer))
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return false, fmt.Errorf("%w: CRL %s signature does not verify with issuer %s: %w", ErrBadCRL, crl.Number, describe(issuer), err)
	}

	revoked := make(map[string]time.Time, len(crl.RevokedCertificateEntries))
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber != nil {
			revoked[serialKey(e.SerialNumber)] = e.RevocationTime
		}
	}
	entry := &crlEntry{
		stored: StoredCRL{
			DER:         slices.Clone(crlDER),
			IssuerChain: cloneChain(issuerChain),
			Number:      new(big.Int).Set(crl.Number),
		},
		issuer:  issuer,
		revoked: revoked,
	}
	id := issuerID(issuer)
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.crls[id]; ok && old.stored.Number.Cmp(crl.Number) >= 0 {
		return false, nil
	}
	t.crls[id] = entry
	// Chains verified before this list are verified again.
	t.generation.Add(1)
	return true, nil
}

// checkCRLIssuer accepts a founding root, or a governance CA that verifies to
// one at now.
func (t *TrustStore) checkCRLIssuer(certs []*x509.Certificate, now time.Time) error {
	issuer := certs[0]
	if _, isRoot := t.rootByRaw[string(issuer.Raw)]; isRoot {
		return nil
	}
	if !issuer.IsCA {
		return fmt.Errorf("%w: CRL issuer %s is not a CA", ErrUntrustedChain, describe(issuer))
	}
	if err := checkValidity(issuer, now); err != nil {
		return fmt.Errorf("CRL issuer: %w", err)
	}
	opts := x509.VerifyOptions{
		Roots:         t.pool,
		Intermediates: x509.NewCertPool(),
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	chains, err := issuer.Verify(opts)
	if err != nil {
		return fmt.Errorf("%w: CRL issuer %s does not chain to a founding root: %w", ErrUntrustedChain, describe(issuer), err)
	}
	if len(chains[0]) != 2 {
		return fmt.Errorf("%w: CRL issuer %s is not issued directly by a founding root", ErrUntrustedChain, describe(issuer))
	}
	if _, err := checkIntermediate(issuer); err != nil {
		return fmt.Errorf("CRL issuer: %w", err)
	}
	return nil
}

func cloneChain(chain [][]byte) [][]byte {
	out := make([][]byte, len(chain))
	for i, c := range chain {
		out[i] = slices.Clone(c)
	}
	return out
}

// CRLs returns copies of the stored revocation lists, one per issuer, so a
// node can persist them and pass them on.
func (t *TrustStore) CRLs() []StoredCRL {
	t.mu.RLock()
	defer t.mu.RUnlock()
	ids := make([]string, 0, len(t.crls))
	for id := range t.crls {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]StoredCRL, 0, len(ids))
	for _, id := range ids {
		s := t.crls[id].stored
		out = append(out, StoredCRL{DER: slices.Clone(s.DER), IssuerChain: cloneChain(s.IssuerChain), Number: new(big.Int).Set(s.Number)})
	}
	return out
}

// IsRevoked reports whether cert is on its issuer's stored revocation list,
// and since when. The issuer is found by cert's issuer name and authority key
// id.
func (t *TrustStore) IsRevoked(cert *x509.Certificate) (bool, time.Time) {
	if cert == nil || cert.SerialNumber == nil {
		return false, time.Time{}
	}
	serial := serialKey(cert.SerialNumber)
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, e := range t.crls {
		if !bytes.Equal(e.issuer.RawSubject, cert.RawIssuer) {
			continue
		}
		if len(cert.AuthorityKeyId) > 0 && !bytes.Equal(cert.AuthorityKeyId, e.issuer.SubjectKeyId) {
			continue
		}
		if at, ok := e.revoked[serial]; ok {
			return true, at
		}
	}
	return false, time.Time{}
}
