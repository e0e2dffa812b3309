package governance

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/finp2p/go-finp2p/internal/limitedfile"
	"io"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/finp2p/go-finp2p/internal/atomicfile"
	"github.com/libp2p/go-libp2p/core/peer"
)

// maxGenesisFile bounds the genesis file LoadGenesis reads.
const maxGenesisFile = 4 << 20

// Genesis is the file every node of a network starts from: the network's
// name, its founding root certificates and the rendezvous nodes to dial first.
type Genesis struct {
	// Network is the network's name.
	Network string `json:"network"`
	// Roots are the PEM-encoded founding root certificates, one per entry.
	Roots []string `json:"roots"`
	// Rendezvous are multiaddrs (DNS or IP) of rendezvous/governance nodes,
	// each ending in /p2p/<peerID>.
	Rendezvous []string `json:"rendezvous"`
	// Created is when the genesis file was made.
	Created time.Time `json:"created"`
	// Development marks a development network, where private and loopback
	// addresses are allowed.
	Development bool `json:"development"`
}

// ParseGenesis decodes a genesis file strictly (unknown fields and trailing
// data are errors) and validates it.
func ParseGenesis(data []byte) (*Genesis, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var g Genesis
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("%w: decode JSON: %w", ErrBadGenesis, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: unexpected data after the JSON object", ErrBadGenesis)
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	return &g, nil
}

// LoadGenesis reads and parses the genesis file at path.
func LoadGenesis(path string) (*Genesis, error) {
	data, err := limitedfile.Read(path, maxGenesisFile)
	if err != nil {
		return nil, fmt.Errorf("load genesis: %w", err)
	}
	g, err := ParseGenesis(data)
	if err != nil {
		return nil, fmt.Errorf("load genesis %s: %w", path, err)
	}
	return g, nil
}

// Validate checks the genesis: a sane network name, a creation time, at least
// one root, every root a self-signed Ed25519 CA with MaxPathLen 1 and an org
// SAN whose signature verifies, and every rendezvous address a multiaddr that
// ends in /p2p/<peerID> (and is public unless Development is set).
func (g *Genesis) Validate() error {
	if err := ValidateNetworkName(g.Network); err != nil {
		return fmt.Errorf("%w: field network: %w", ErrBadGenesis, err)
	}
	if g.Created.IsZero() {
		return fmt.Errorf("%w: field created is missing", ErrBadGenesis)
	}
	if _, err := g.RootCertificates(); err != nil {
		return err
	}
	seen := make(map[string]int, len(g.Rendezvous))
	for i, s := range g.Rendezvous {
		addr, err := ma.NewMultiaddr(s)
		if err != nil {
			return fmt.Errorf("%w: rendezvous[%d] %q is not a multiaddr: %w", ErrBadGenesis, i, s, err)
		}
		if err := checkRendezvous(addr, g.Development); err != nil {
			return fmt.Errorf("%w: rendezvous[%d] %q: %w", ErrBadGenesis, i, s, err)
		}
		if j, dup := seen[addr.String()]; dup {
			return fmt.Errorf("%w: rendezvous[%d] %q repeats rendezvous[%d]", ErrBadGenesis, i, s, j)
		}
		seen[addr.String()] = i
	}
	return nil
}

func checkRendezvous(addr ma.Multiaddr, development bool) error {
	if len(addr) < 2 {
		return errors.New("want a host address followed by /p2p/<peerID>")
	}
	switch addr[0].Code() {
	case ma.P_IP4, ma.P_IP6, ma.P_DNS, ma.P_DNS4, ma.P_DNS6, ma.P_DNSADDR:
	default:
		return fmt.Errorf("starts with /%s, want /ip4, /ip6, /dns, /dns4, /dns6 or /dnsaddr", addr[0].Protocol().Name)
	}
	_, last := ma.SplitLast(addr)
	if last == nil || last.Code() != ma.P_P2P {
		return errors.New("does not end in /p2p/<peerID>")
	}
	if _, err := peer.Decode(last.Value()); err != nil {
		return fmt.Errorf("peer ID %q: %w", last.Value(), err)
	}
	if !development && !manet.IsPublicAddr(addr) {
		return errors.New("is not a public address; private, loopback and other non-routable addresses are allowed only in a development network (\"development\": true)")
	}
	return nil
}

// RootCertificates parses and checks the founding root certificates.
func (g *Genesis) RootCertificates() ([]*x509.Certificate, error) {
	if len(g.Roots) == 0 {
		return nil, fmt.Errorf("%w: %w: field roots is empty", ErrBadGenesis, ErrNoRoots)
	}
	roots := make([]*x509.Certificate, 0, len(g.Roots))
	seen := make(map[string]int, len(g.Roots))
	for i, s := range g.Roots {
		certs, err := ParseCertificatesPEM([]byte(s))
		if err != nil {
			return nil, fmt.Errorf("%w: roots[%d]: %w", ErrBadGenesis, i, err)
		}
		if len(certs) != 1 {
			return nil, fmt.Errorf("%w: roots[%d] holds %d certificates, want one per entry", ErrBadGenesis, i, len(certs))
		}
		if err := validateRoot(certs[0]); err != nil {
			return nil, fmt.Errorf("%w: roots[%d] %s: %w", ErrBadGenesis, i, describe(certs[0]), err)
		}
		if j, dup := seen[string(certs[0].Raw)]; dup {
			return nil, fmt.Errorf("%w: roots[%d] repeats roots[%d]", ErrBadGenesis, i, j)
		}
		seen[string(certs[0].Raw)] = i
		roots = append(roots, certs[0])
	}
	return roots, nil
}

// Marshal encodes the genesis as indented JSON.
func (g *Genesis) Marshal() ([]byte, error) {
	data, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode genesis: %w", err)
	}
	return append(data, '\n'), nil
}

// Save validates the genesis and writes it atomically to path with mode 0644.
func (g *Genesis) Save(path string) error {
	if err := g.Validate(); err != nil {
		return fmt.Errorf("save genesis %s: %w", path, err)
	}
	data, err := g.Marshal()
	if err != nil {
		return fmt.Errorf("save genesis %s: %w", path, err)
	}
	if err := atomicfile.Write(path, data, 0o644); err != nil {
		return fmt.Errorf("save genesis: %w", err)
	}
	return nil
}

// validateRoot checks the founding root profile: a self-signed Ed25519 CA
// with MaxPathLen 1, certificate signing allowed, a subject key id and an
// org SAN.
func validateRoot(cert *x509.Certificate) error {
	if _, ok := ed25519Key(cert.PublicKey); !ok {
		return fmt.Errorf("key is %v, want Ed25519", cert.PublicKeyAlgorithm)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return errors.New("not a CA certificate")
	}
	if cert.MaxPathLen != 1 {
		return fmt.Errorf("MaxPathLen is %d, want 1", cert.MaxPathLen)
	}
	if cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return errors.New("key usage does not allow certificate signing")
	}
	if !bytes.Equal(cert.RawIssuer, cert.RawSubject) {
		return fmt.Errorf("not self-signed: issuer %q differs from subject", cert.Issuer.String())
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		return fmt.Errorf("self-signature does not verify: %w", err)
	}
	if len(cert.SubjectKeyId) == 0 {
		return errors.New("no subject key identifier")
	}
	if _, err := orgOf(cert); err != nil {
		return err
	}
	return nil
}
