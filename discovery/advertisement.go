// Package discovery holds FinP2P org advertisements and the directories built
// from them: a node's signed Advertisement (sealed in a libp2p signed
// envelope), the checks every receiver applies (Verifier), the address policy,
// the persistent Directory used both as a registrar's store and as a node's
// cache and backup peer list, the registrar's /finp2p/discovery/1.0.0 service
// and client, and the kad-dht validator for the finp2p-org namespace.
package discovery

import (
	"crypto/ecdh"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/finp2p/go-finp2p/protocols/pb"
)

// Envelope domain and payload type of a sealed advertisement. The domain is
// part of what is signed, so an advertisement signature can never be replayed
// as a signature of another kind of record.
const (
	EnvelopeDomain = "finp2p-advertisement"
	payloadType    = "/finp2p/advertisement/1"
)

// Limits on the fields of an advertisement, checked before anything costly.
const (
	MaxAddrs     = 32
	MaxProtocols = 128
	MaxServices  = 64
	MaxLedgers   = 64
	MaxNameLen   = 128
)

// Errors a Verifier returns, wrapped with the detail.
var (
	ErrMalformed     = errors.New("malformed advertisement")
	ErrBadSignature  = errors.New("advertisement signature")
	ErrForged        = errors.New("advertisement does not match its signer's certificate")
	ErrExpired       = errors.New("advertisement expired")
	ErrStale         = errors.New("stale advertisement")
	ErrTooLarge      = errors.New("advertisement too large")
	ErrAddressPolicy = errors.New("address not allowed in an advertisement")
	ErrMissingProto  = errors.New("advertisement lacks a mandatory protocol")
	ErrWrongNetwork  = errors.New("advertisement is for another network")
	ErrOrgNotFound   = errors.New("organisation not found")
)

// Advertisement is what one node announces about itself and its org.
type Advertisement struct {
	Network   string
	Org       string
	FinID     string
	Peer      peer.ID
	Addrs     []ma.Multiaddr
	Protocols []string
	Services  []string
	Ledgers   []string
	Version   string
	Seq       uint64
	Expires   time.Time
	// Chain is the node's DER certificate chain, leaf first, without root.
	Chain [][]byte
	// EncryptionKey is the node's X25519 public key for broadcast payloads
	// sealed to it, EncryptionKeySize bytes; empty if it has none.
	EncryptionKey []byte
	// Executes is the ledger the node executes its org's asset transactions
	// on, one of Ledgers; empty for a node that executes none (a cluster's
	// standby node keeps only a replica of its org's ledger).
	Executes string
}

// EncryptionKeySize is the size of an advertised X25519 public key.
const EncryptionKeySize = 32

var _ record.Record = (*Advertisement)(nil)

// Domain is the signed envelope domain of advertisements.
func (a *Advertisement) Domain() string { return EnvelopeDomain }

// Codec is the signed envelope payload type of advertisements.
func (a *Advertisement) Codec() []byte { return []byte(payloadType) }

// MarshalRecord encodes the advertisement as its protobuf message.
func (a *Advertisement) MarshalRecord() ([]byte, error) {
	m := &pb.Advertisement{
		Network:       a.Network,
		Org:           a.Org,
		FinId:         a.FinID,
		Peer:          []byte(a.Peer),
		Protocols:     a.Protocols,
		Services:      a.Services,
		Ledgers:       a.Ledgers,
		Version:       a.Version,
		Seq:           a.Seq,
		Expires:       a.Expires.Unix(),
		Chain:         a.Chain,
		EncryptionKey: a.EncryptionKey,
		Executes:      a.Executes,
	}
	for _, addr := range a.Addrs {
		m.Addrs = append(m.Addrs, addr.Bytes())
	}
	return proto.Marshal(m)
}

// UnmarshalRecord decodes the protobuf message and checks the shape of every
// field; it does not check the signature or the certificate chain.
func (a *Advertisement) UnmarshalRecord(data []byte) error {
	var m pb.Advertisement
	if err := proto.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	p, err := peer.IDFromBytes(m.Peer)
	if err != nil {
		return fmt.Errorf("%w: peer id: %w", ErrMalformed, err)
	}
	switch {
	case len(m.Addrs) > MaxAddrs:
		return fmt.Errorf("%w: %d addresses, at most %d", ErrMalformed, len(m.Addrs), MaxAddrs)
	case len(m.Protocols) > MaxProtocols:
		return fmt.Errorf("%w: %d protocols, at most %d", ErrMalformed, len(m.Protocols), MaxProtocols)
	case len(m.Services) > MaxServices:
		return fmt.Errorf("%w: %d services, at most %d", ErrMalformed, len(m.Services), MaxServices)
	case len(m.Ledgers) > MaxLedgers:
		return fmt.Errorf("%w: %d ledgers, at most %d", ErrMalformed, len(m.Ledgers), MaxLedgers)
	}
	if k := m.EncryptionKey; len(k) != 0 {
		if _, err := ecdh.X25519().NewPublicKey(k); err != nil {
			return fmt.Errorf("%w: encryption key of %d bytes is not an X25519 public key", ErrMalformed, len(k))
		}
	}
	if m.Executes != "" && !slices.Contains(m.Ledgers, m.Executes) {
		return fmt.Errorf("%w: executed ledger %q is not among the advertised ledgers", ErrMalformed, m.Executes)
	}
	for _, list := range [][]string{m.Protocols, m.Services, m.Ledgers, {m.Version}} {
		for _, s := range list {
			if len(s) > MaxNameLen {
				return fmt.Errorf("%w: name of %d bytes, at most %d", ErrMalformed, len(s), MaxNameLen)
			}
		}
	}
	addrs := make([]ma.Multiaddr, 0, len(m.Addrs))
	for i, b := range m.Addrs {
		addr, err := ma.NewMultiaddrBytes(b)
		if err != nil {
			return fmt.Errorf("%w: address %d: %w", ErrMalformed, i, err)
		}
		addrs = append(addrs, addr)
	}
	*a = Advertisement{
		Network:       m.Network,
		Org:           m.Org,
		FinID:         m.FinId,
		Peer:          p,
		Addrs:         addrs,
		Protocols:     m.Protocols,
		Services:      m.Services,
		Ledgers:       m.Ledgers,
		Version:       m.Version,
		Seq:           m.Seq,
		Expires:       time.Unix(m.Expires, 0).UTC(),
		Chain:         m.Chain,
		EncryptionKey: m.EncryptionKey,
		Executes:      m.Executes,
	}
	return nil
}

// Seal signs the advertisement with the node's key and returns the signed
// envelope's bytes, which is what travels and is stored.
func Seal(a *Advertisement, key crypto.PrivKey) ([]byte, error) {
	env, err := record.Seal(a, key)
	if err != nil {
		return nil, fmt.Errorf("seal advertisement: %w", err)
	}
	data, err := env.Marshal()
	if err != nil {
		return nil, fmt.Errorf("seal advertisement: %w", err)
	}
	return data, nil
}

// Has reports whether the advertisement lists s in list.
func has(list []string, s string) bool { return s == "" || slices.Contains(list, s) }

// Matches reports whether the advertisement passes f.
func (a *Advertisement) Matches(f Filter) bool {
	return has(a.Services, f.Service) && has(a.Protocols, f.Protocol) && has(a.Ledgers, f.Ledger)
}

// Filter selects advertisements by service, protocol or ledger; an empty
// field matches every advertisement.
type Filter struct {
	Service  string `json:"service,omitempty"`
	Protocol string `json:"protocol,omitempty"`
	Ledger   string `json:"ledger,omitempty"`
}
