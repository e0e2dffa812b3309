package governance

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"regexp"
	"strings"

	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// URI SAN kinds of the FinP2P certificate profile. A SAN is written
// "finp2p:<kind>:<value>", for example "finp2p:org:bank-x".
const (
	uriScheme = "finp2p"
	sanOrg    = "org"
	sanFinID  = "finid"
	sanPeer   = "peer"
	sanRole   = "role"
)

var (
	orgIDPattern   = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,62}$`)
	networkPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// ValidateOrgID checks an organisation id: lowercase letters, digits, '.' and
// '-', starting with a letter or digit, at most 63 characters.
func ValidateOrgID(org string) error {
	if !orgIDPattern.MatchString(org) {
		return fmt.Errorf("organisation id %q is not valid: want lowercase [a-z0-9][a-z0-9.-]{0,62}", org)
	}
	return nil
}

// ValidateNetworkName checks a network name: letters, digits, '.', '_' and
// '-', starting with a letter or digit, at most 64 characters.
func ValidateNetworkName(name string) error {
	if !networkPattern.MatchString(name) {
		return fmt.Errorf("network name %q is not valid: want [A-Za-z0-9][A-Za-z0-9._-]{0,63}", name)
	}
	return nil
}

// PeerIDFromKey returns the libp2p peer ID of an Ed25519 public key.
func PeerIDFromKey(pub ed25519.PublicKey) (peer.ID, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("%w: Ed25519 public key has %d bytes, want %d", ErrKeyMismatch, len(pub), ed25519.PublicKeySize)
	}
	pk, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("convert Ed25519 public key to a libp2p key: %w", err)
	}
	id, err := peer.IDFromPublicKey(pk)
	if err != nil {
		return "", fmt.Errorf("derive peer ID from Ed25519 public key: %w", err)
	}
	return id, nil
}

func sanURI(kind, value string) *url.URL {
	return &url.URL{Scheme: uriScheme, Opaque: kind + ":" + value}
}

// finp2pNames holds the FinP2P URI SANs of a certificate or request. Each
// known kind may appear at most once.
type finp2pNames struct {
	org, finID, peer, role string
	other                  []string // finp2p URIs of unknown kinds
	foreign                []string // URIs of other schemes
}

func parseNames(uris []*url.URL) (finp2pNames, error) {
	var n finp2pNames
	for _, u := range uris {
		s := u.String()
		if u.Scheme != uriScheme || u.Opaque == "" {
			n.foreign = append(n.foreign, s)
			continue
		}
		kind, value, ok := strings.Cut(u.Opaque, ":")
		if !ok || value == "" {
			return n, fmt.Errorf("URI SAN %q is not of the form finp2p:<kind>:<value>", s)
		}
		var dst *string
		switch kind {
		case sanOrg:
			dst = &n.org
		case sanFinID:
			dst = &n.finID
		case sanPeer:
			dst = &n.peer
		case sanRole:
			dst = &n.role
		default:
			n.other = append(n.other, s)
			continue
		}
		if *dst != "" {
			return n, fmt.Errorf("URI SAN finp2p:%s appears more than once", kind)
		}
		*dst = value
	}
	return n, nil
}

// orgOf returns the finp2p:org SAN of a CA certificate.
func orgOf(cert *x509.Certificate) (string, error) {
	n, err := parseNames(cert.URIs)
	if err != nil {
		return "", err
	}
	if n.org == "" {
		return "", errors.New("no finp2p:org URI SAN")
	}
	if err := ValidateOrgID(n.org); err != nil {
		return "", err
	}
	return n.org, nil
}

func validateFinID(s string) error {
	u, err := uuid.Parse(s)
	if err != nil || u.String() != s {
		return fmt.Errorf("FinID %q is not a canonical UUID", s)
	}
	return nil
}

// describe names a certificate in error messages: its subject and serial.
func describe(cert *x509.Certificate) string {
	if subject := cert.Subject.String(); subject != "" {
		return fmt.Sprintf("%q (serial %s)", subject, serialString(cert.SerialNumber))
	}
	return fmt.Sprintf("with empty subject (serial %s)", serialString(cert.SerialNumber))
}

func serialString(serial *big.Int) string {
	if serial == nil {
		return "<none>"
	}
	return "0x" + serial.Text(16)
}

// keyID is the subject key identifier of a public key: the first 160 bits of
// its SHA-256 hash (RFC 7093, method 1).
func keyID(pub ed25519.PublicKey) []byte {
	sum := sha256.Sum256(pub)
	return sum[:20]
}

func ed25519Key(pub any) (ed25519.PublicKey, bool) {
	k, ok := pub.(ed25519.PublicKey)
	return k, ok && len(k) == ed25519.PublicKeySize
}
