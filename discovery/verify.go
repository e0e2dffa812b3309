package discovery

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/protocols"
)

// MaxValidity is how far in the future an advertisement may expire, so a
// record cannot outlive the re-checks that a re-advertisement brings.
const MaxValidity = 7 * 24 * time.Hour

// Verifier applies the checks every receiver of an advertisement makes: the
// registrar, the DHT validator, the capabilities topic validator and a node
// loading its cache. They share it so the rules are the same everywhere.
type Verifier struct {
	// Network is the genesis network name.
	Network string
	// Trust verifies the signer's certificate chain, revocations included.
	Trust *governance.TrustStore
	// Development allows private and loopback addresses.
	Development bool
	// Now is the clock; time.Now if nil.
	Now func() time.Time

	// signed remembers advertisements that passed Open, so that the
	// envelope signature of the very same bytes is not checked again.
	signed signedMemo
}

// signedMemoSize bounds the advertisements a Verifier remembers as signed:
// a few per member node.
const signedMemoSize = 4096

// signedMemo is a bounded set of SHA-256 hashes of sealed advertisements
// whose envelope signature verified. It keeps two generations: when the
// current one holds half the bound it becomes the old one, and the old
// one is dropped. The zero value is empty and ready.
type signedMemo struct {
	mu       sync.Mutex
	cur, old map[[sha256.Size]byte]struct{}
}

func (m *signedMemo) has(h [sha256.Size]byte) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.cur[h]; ok {
		return true
	}
	if _, ok := m.old[h]; ok {
		delete(m.old, h)
		m.add(h)
		return true
	}
	return false
}

func (m *signedMemo) put(h [sha256.Size]byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.add(h)
}

// add adds h to the current generation. The caller holds m.mu.
func (m *signedMemo) add(h [sha256.Size]byte) {
	if len(m.cur) >= signedMemoSize/2 {
		m.old, m.cur = m.cur, nil
	}
	if m.cur == nil {
		m.cur = make(map[[sha256.Size]byte]struct{})
	}
	m.cur[h] = struct{}{}
}

// Record is an advertisement that passed verification, with the member its
// signer's certificate proves and the sealed envelope it came in.
type Record struct {
	Ad     *Advertisement
	Member governance.Member
	Sealed []byte
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// Open checks a sealed advertisement: size, envelope signature, network,
// that the signing key is the advertised peer's, that its certificate chain
// is valid, unrevoked and names the advertised org and FinID, expiry, the
// address policy and the mandatory protocols. The error says which failed.
//
// The envelope signature of bytes that passed Open before is not checked
// again; every other check is made each time, since the clock and the
// revocation lists move.
func (v *Verifier) Open(sealed []byte) (*Record, error) {
	if len(sealed) > protocols.MaxAdvertisementSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(sealed), protocols.MaxAdvertisementSize)
	}
	h := sha256.Sum256(sealed)
	var ad Advertisement
	var env *record.Envelope
	var err error
	if v.signed.has(h) {
		env, err = unsealUnchecked(sealed, &ad)
	} else {
		env, err = record.ConsumeTypedEnvelope(sealed, &ad)
	}
	if err != nil {
		if env != nil && env.PublicKey != nil {
			// The envelope parsed but its signature or payload did not.
			return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !bytes.Equal(env.PayloadType, []byte(payloadType)) {
		return nil, fmt.Errorf("%w: payload type %q is not %q", ErrMalformed, env.PayloadType, payloadType)
	}
	if err := v.check(&ad, env.PublicKey); err != nil {
		return nil, err
	}
	m, err := v.member(&ad, env.PublicKey)
	if err != nil {
		return nil, err
	}
	v.signed.put(h)
	return &Record{Ad: &ad, Member: m, Sealed: sealed}, nil
}

// unsealUnchecked decodes a sealed advertisement without checking its
// signature: only for bytes whose signature verified before, or to order
// values before verifying them.
func unsealUnchecked(sealed []byte, ad *Advertisement) (*record.Envelope, error) {
	env, err := record.UnmarshalEnvelope(sealed)
	if err != nil {
		return nil, err
	}
	if err := ad.UnmarshalRecord(env.RawPayload); err != nil {
		return env, err
	}
	return env, nil
}

// check applies the rules that need no certificate work.
func (v *Verifier) check(ad *Advertisement, signer crypto.PubKey) error {
	if ad.Network != v.Network {
		return fmt.Errorf("%w: %q, this node is on %q", ErrWrongNetwork, ad.Network, v.Network)
	}
	signerID, err := peer.IDFromPublicKey(signer)
	if err != nil {
		return fmt.Errorf("%w: signer key: %w", ErrBadSignature, err)
	}
	if signerID != ad.Peer {
		return fmt.Errorf("%w: advertisement of peer %s signed by peer %s", ErrForged, ad.Peer, signerID)
	}
	now := v.now()
	if !ad.Expires.After(now) {
		return fmt.Errorf("%w: %s expired at %s", ErrExpired, ad.Peer, ad.Expires.Format(time.RFC3339))
	}
	if ad.Expires.After(now.Add(MaxValidity)) {
		return fmt.Errorf("%w: expiry %s is more than %s ahead", ErrMalformed, ad.Expires.Format(time.RFC3339), MaxValidity)
	}
	if ad.Seq == 0 {
		return fmt.Errorf("%w: sequence number 0", ErrMalformed)
	}
	if len(ad.Addrs) == 0 {
		return fmt.Errorf("%w: no address", ErrMalformed)
	}
	for _, a := range ad.Addrs {
		if err := CheckAddr(a, v.Development); err != nil {
			return err
		}
	}
	return CheckProtocols(ad.Protocols)
}

// member verifies the signer's certificate chain and that it certifies what
// the advertisement claims.
func (v *Verifier) member(ad *Advertisement, signer crypto.PubKey) (governance.Member, error) {
	if signer.Type() != crypto.Ed25519 {
		return governance.Member{}, fmt.Errorf("%w: signer key of type %s is not Ed25519", ErrForged, signer.Type())
	}
	m, err := v.Trust.VerifySigner(ad.Chain, signer, v.now())
	if err != nil {
		return governance.Member{}, fmt.Errorf("advertisement of %s: signer's certificate: %w", ad.Peer, err)
	}
	switch {
	case m.OrgID != ad.Org:
		return governance.Member{}, fmt.Errorf("%w: advertises org %q, certificate is of org %q", ErrForged, ad.Org, m.OrgID)
	case m.FinID != ad.FinID:
		return governance.Member{}, fmt.Errorf("%w: advertises FinID %q, certificate has %q", ErrForged, ad.FinID, m.FinID)
	case m.PeerID != ad.Peer:
		return governance.Member{}, fmt.Errorf("%w: certificate is of peer %s, not %s", ErrForged, m.PeerID, ad.Peer)
	}
	return m, nil
}

// Current reports whether a record verified earlier still holds now: not
// expired, and its signer's certificate neither expired nor revoked since.
func (v *Verifier) Current(r *Record) bool {
	now := v.now()
	if !r.Ad.Expires.After(now) || !r.Member.NotAfter.After(now) {
		return false
	}
	for _, c := range r.Member.Chain {
		if revoked, _ := v.Trust.IsRevoked(c); revoked {
			return false
		}
	}
	return true
}

// CheckProtocols reports the first mandatory protocol missing from list.
func CheckProtocols(list []string) error {
	for _, p := range protocols.Mandatory {
		if !slices.Contains(list, string(p)) {
			return fmt.Errorf("%w: %s is not advertised", ErrMissingProto, p)
		}
	}
	return nil
}

const notReachable = "other members cannot reach it, and the genesis does not mark this network as development"

// CheckAddr applies the address policy: the address must be one another
// member can dial (TCP or QUIC over IP or DNS, no peer ID), and on a network
// whose genesis is not marked development it must be public. The error names
// the address and says why it is refused.
func CheckAddr(a ma.Multiaddr, development bool) error {
	first, _ := ma.SplitFirst(a)
	if first == nil {
		return fmt.Errorf("%w: empty address", ErrAddressPolicy)
	}
	switch first.Protocol().Code {
	case ma.P_IP4, ma.P_IP6, ma.P_DNS, ma.P_DNS4, ma.P_DNS6:
	default:
		return fmt.Errorf("%w: %s does not start with an IP address or DNS name", ErrAddressPolicy, a)
	}
	transport := false
	var bad error
	ma.ForEach(a, func(c ma.Component) bool {
		switch c.Protocol().Code {
		case ma.P_TCP, ma.P_QUIC_V1:
			transport = true
		case ma.P_P2P:
			bad = fmt.Errorf("%w: %s carries a peer ID; the advertisement names the peer", ErrAddressPolicy, a)
			return false
		case ma.P_CIRCUIT:
			bad = fmt.Errorf("%w: %s is a relay address; advertise the node's own address", ErrAddressPolicy, a)
			return false
		}
		return true
	})
	if bad != nil {
		return bad
	}
	if !transport {
		return fmt.Errorf("%w: %s is neither TCP nor QUIC (quic-v1)", ErrAddressPolicy, a)
	}
	// Judge the host part. A DNS component that holds an IP address, or a
	// name under localhost (in any case, with or without the final dot),
	// is judged as what a dialer will reach.
	host := a
	isDNS := false
	switch first.Protocol().Code {
	case ma.P_DNS, ma.P_DNS4, ma.P_DNS6:
		name := strings.TrimSuffix(strings.ToLower(first.Value()), ".")
		if ip := net.ParseIP(name); ip != nil {
			ipm, err := manet.FromIP(ip)
			if err != nil {
				return fmt.Errorf("%w: %s: %w", ErrAddressPolicy, a, err)
			}
			host = ipm
		} else {
			isDNS = true
			if name == "localhost" || strings.HasSuffix(name, ".localhost") {
				if development {
					return nil
				}
				return fmt.Errorf("%w: %s is a loopback address; %s", ErrAddressPolicy, a, notReachable)
			}
		}
	}
	if manet.IsIPUnspecified(host) {
		return fmt.Errorf("%w: %s is an unspecified (wildcard) address, which no member can dial", ErrAddressPolicy, a)
	}
	if development {
		return nil
	}
	// A DNS name is judged by its form only (mDNS .local and other
	// private-use names are private): what it resolves to is the operator's
	// to keep right, and resolving it here would make validity depend on
	// this node's resolver.
	switch {
	case isDNS && manet.IsPrivateAddr(host):
		return fmt.Errorf("%w: %s is a private name; %s", ErrAddressPolicy, a, notReachable)
	case isDNS && !manet.IsPublicAddr(host):
		return fmt.Errorf("%w: %s is not a public name; %s", ErrAddressPolicy, a, notReachable)
	case isDNS:
		return nil
	case manet.IsIPLoopback(host):
		return fmt.Errorf("%w: %s is a loopback address; %s", ErrAddressPolicy, a, notReachable)
	case manet.IsPrivateAddr(host):
		return fmt.Errorf("%w: %s is a private address; %s", ErrAddressPolicy, a, notReachable)
	case !manet.IsPublicAddr(host):
		return fmt.Errorf("%w: %s is not a public address; %s", ErrAddressPolicy, a, notReachable)
	}
	return nil
}
