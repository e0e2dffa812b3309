package resource

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	"google.golang.org/protobuf/proto"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/resource/pb"
)

// Resource advertisement envelope domain and payload type; the domain is
// signed, so the signature cannot be replayed as another kind of record.
const (
	AdvertisementDomain = "finp2p-resource"
	advertPayloadType   = "/finp2p/resource-advertisement/1"

	// MaxAdvertisementSize bounds a sealed resource advertisement.
	MaxAdvertisementSize = 64 << 10
	// MaxTopicLen bounds a resource's topic name.
	MaxTopicLen = 256
	// MaxAdvertisementValidity is how far ahead an advertisement may expire.
	MaxAdvertisementValidity = 7 * 24 * time.Hour
)

// Errors about resource advertisements, wrapped with the detail.
var (
	ErrBadAdvertisement = errors.New("malformed resource advertisement")
	ErrAdvertExpired    = errors.New("resource advertisement expired")
	ErrWrongNetwork     = errors.New("resource advertisement is for another network")
	ErrNotOwner         = errors.New("resource advertisement not signed by the resource's org")
	ErrResourceNotFound = errors.New("resource not found")
)

// Advertisement is a resource advertisement: {resourceid, topic?} with the
// owner's identity. A withdrawal is a newer advertisement marked Withdrawn.
type Advertisement struct {
	Network    string
	Resource   ID
	Topic      string
	Peer       peer.ID
	Restricted bool
	Withdrawn  bool
	Seq        uint64
	Expires    time.Time
	// Chain is the signing node's DER certificate chain, leaf first.
	Chain [][]byte
}

var _ record.Record = (*Advertisement)(nil)

// Domain is the signed envelope domain.
func (a *Advertisement) Domain() string { return AdvertisementDomain }

// Codec is the signed envelope payload type.
func (a *Advertisement) Codec() []byte { return []byte(advertPayloadType) }

// MarshalRecord encodes the advertisement.
func (a *Advertisement) MarshalRecord() ([]byte, error) {
	return proto.Marshal(&pb.ResourceAdvertisement{
		Network:    a.Network,
		Resource:   a.Resource.String(),
		Topic:      a.Topic,
		Peer:       []byte(a.Peer),
		Restricted: a.Restricted,
		Withdrawn:  a.Withdrawn,
		Seq:        a.Seq,
		Expires:    a.Expires.Unix(),
		Chain:      a.Chain,
	})
}

// UnmarshalRecord decodes the advertisement and checks the form of its fields.
func (a *Advertisement) UnmarshalRecord(data []byte) error {
	var m pb.ResourceAdvertisement
	if err := proto.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%w: %w", ErrBadAdvertisement, err)
	}
	id, err := ParseID(m.Resource)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadAdvertisement, err)
	}
	p, err := peer.IDFromBytes(m.Peer)
	if err != nil {
		return fmt.Errorf("%w: peer id: %w", ErrBadAdvertisement, err)
	}
	if len(m.Topic) > MaxTopicLen {
		return fmt.Errorf("%w: topic of %d bytes, at most %d", ErrBadAdvertisement, len(m.Topic), MaxTopicLen)
	}
	*a = Advertisement{
		Network:    m.Network,
		Resource:   id,
		Topic:      m.Topic,
		Peer:       p,
		Restricted: m.Restricted,
		Withdrawn:  m.Withdrawn,
		Seq:        m.Seq,
		Expires:    time.Unix(m.Expires, 0).UTC(),
		Chain:      m.Chain,
	}
	return nil
}

// SealAdvertisement signs a with the node's key.
func SealAdvertisement(a *Advertisement, key crypto.PrivKey) ([]byte, error) {
	env, err := record.Seal(a, key)
	if err != nil {
		return nil, fmt.Errorf("seal resource advertisement %s: %w", a.Resource, err)
	}
	data, err := env.Marshal()
	if err != nil {
		return nil, fmt.Errorf("seal resource advertisement %s: %w", a.Resource, err)
	}
	return data, nil
}

// SignedAdvertisement is an advertisement that passed verification, with
// the member that signed it and the envelope it came in.
type SignedAdvertisement struct {
	Ad     *Advertisement
	Signer governance.Member
	Sealed []byte
}

// AdvertisementVerifier checks resource advertisements the same way
// wherever they arrive: the DHT validator, the direct stream, a node loading
// its store.
type AdvertisementVerifier struct {
	Network string
	Trust   *governance.TrustStore
	Now     func() time.Time
}

func (v *AdvertisementVerifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// Open checks a sealed resource advertisement: size, signature, network,
// that the signing key is the advertised peer's and is certified for the
// resource's org, sequence and expiry. The error says which check failed.
func (v *AdvertisementVerifier) Open(sealed []byte) (*SignedAdvertisement, error) {
	if len(sealed) > MaxAdvertisementSize {
		return nil, fmt.Errorf("%w: resource advertisement of %d bytes, at most %d", ErrTooLarge, len(sealed), MaxAdvertisementSize)
	}
	var ad Advertisement
	env, err := record.ConsumeTypedEnvelope(sealed, &ad)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadAdvertisement, err)
	}
	if !bytes.Equal(env.PayloadType, []byte(advertPayloadType)) {
		return nil, fmt.Errorf("%w: payload type %q", ErrBadAdvertisement, env.PayloadType)
	}
	if ad.Network != v.Network {
		return nil, fmt.Errorf("%w: %q, this node is on %q", ErrWrongNetwork, ad.Network, v.Network)
	}
	signer, err := peer.IDFromPublicKey(env.PublicKey)
	if err != nil || signer != ad.Peer {
		return nil, fmt.Errorf("%w: advertisement of peer %s signed by another key", ErrNotOwner, ad.Peer)
	}
	now := v.now()
	switch {
	case ad.Seq == 0:
		return nil, fmt.Errorf("%w: sequence number 0", ErrBadAdvertisement)
	case !ad.Expires.After(now):
		return nil, fmt.Errorf("%w: %s expired at %s", ErrAdvertExpired, ad.Resource, ad.Expires.Format(time.RFC3339))
	case ad.Expires.After(now.Add(MaxAdvertisementValidity)):
		return nil, fmt.Errorf("%w: expiry %s is more than %s ahead", ErrBadAdvertisement, ad.Expires.Format(time.RFC3339), MaxAdvertisementValidity)
	}
	m, err := v.Trust.VerifySigner(ad.Chain, env.PublicKey, now)
	if err != nil {
		return nil, fmt.Errorf("resource advertisement of %s: signer's certificate: %w", ad.Resource, err)
	}
	if m.OrgID != ad.Resource.Org() {
		return nil, fmt.Errorf("%w: %s belongs to org %q, signed by a node of org %q", ErrNotOwner, ad.Resource, ad.Resource.Org(), m.OrgID)
	}
	return &SignedAdvertisement{Ad: &ad, Signer: m, Sealed: sealed}, nil
}
