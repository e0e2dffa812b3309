package resource

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/record"
	"google.golang.org/protobuf/proto"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/signedrecord"
	"github.com/finp2p/go-finp2p/resource/pb"
)

// Signed envelope domain and payload type of a sealed ACL. The domain is part
// of what is signed, so an ACL signature cannot be replayed as a signature of
// another kind of record.
const (
	ACLDomain      = "finp2p-acl"
	aclPayloadType = "/finp2p/acl/1"
)

// MaxACLSize bounds a sealed ACL; Open refuses larger ones before any work.
const MaxACLSize = 64 << 10

// Errors of the ACL model, wrapped with the detail. A pub/sub validator
// rejects ErrBadACL, ErrForged, ErrUntrustedSigner and ErrTooLarge and ignores
// ErrStale.
var (
	// ErrBadRight is a rights list that does not parse.
	ErrBadRight = errors.New("bad access right")
	// ErrBadACL is a malformed or invalid ACL, or a bad envelope signature.
	ErrBadACL = errors.New("bad ACL")
	// ErrForged is a signed record whose signer is not certified for the org
	// the record claims: someone speaking for another org's resource.
	ErrForged = errors.New("signer is not certified for the resource's owner org")
	// ErrUntrustedSigner is a signer whose certificate chain does not verify
	// (unknown, expired or revoked); the governance error is wrapped too.
	ErrUntrustedSigner = errors.New("untrusted signer")
	// ErrTooLarge is a sealed record over its size limit.
	ErrTooLarge = errors.New("record too large")
	// ErrStale is a record older than, or as old as but different from, the
	// one held.
	ErrStale = errors.New("stale record")
)

// Right is a set of access rights to a resource.
type Right uint8

// Access rights; combine them with |.
const (
	// RightRead lets an org fetch the resource's current information.
	RightRead Right = 1 << iota
	// RightSubscribe lets an org receive the resource's topic updates.
	RightSubscribe
	// RightQuery lets an org query private data of the resource.
	RightQuery
	// RightTransact lets an org send transactions on the resource.
	RightTransact

	// AllRights is every right; the owner org always holds it.
	AllRights = RightRead | RightSubscribe | RightQuery | RightTransact
	// publicRights are what a public resource gives every member.
	publicRights = RightRead | RightSubscribe
)

var rightNames = []struct {
	r    Right
	name string
}{{RightRead, "read"}, {RightSubscribe, "subscribe"}, {RightQuery, "query"}, {RightTransact, "transact"}}

// ParseRights parses a comma-separated list of right names such as
// "read,subscribe" (names: read, subscribe, query, transact).
func ParseRights(s string) (Right, error) {
	if strings.TrimSpace(s) == "" {
		return 0, fmt.Errorf("%w: empty list; want names from read, subscribe, query, transact", ErrBadRight)
	}
	var out Right
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		r, ok := rightByName(name)
		if !ok {
			return 0, fmt.Errorf("%w: %s in %s: want names from read, subscribe, query, transact separated by commas", ErrBadRight, quote(name), quote(s))
		}
		out |= r
	}
	return out, nil
}

func rightByName(name string) (Right, bool) {
	for _, n := range rightNames {
		if n.name == name {
			return n.r, true
		}
	}
	return 0, false
}

// String lists the rights as ParseRights reads them, "none" for the empty
// set; unknown bits are shown in hex.
func (r Right) String() string {
	if r == 0 {
		return "none"
	}
	var names []string
	for _, n := range rightNames {
		if r&n.r != 0 {
			names = append(names, n.name)
		}
	}
	if extra := r &^ AllRights; extra != 0 {
		names = append(names, fmt.Sprintf("%#x", uint8(extra)))
	}
	return strings.Join(names, ",")
}

// Has reports whether r holds every right in want. It is false for an empty
// want, so a zero Right never authorises anything.
func (r Right) Has(want Right) bool { return want != 0 && r&want == want }

// valid reports whether r is a non-empty set of known rights.
func (r Right) valid() bool { return r != 0 && r&^AllRights == 0 }

// MarshalText writes the rights as a comma-separated list; an empty set or
// unknown bits are an error.
func (r Right) MarshalText() ([]byte, error) {
	if !r.valid() {
		return nil, fmt.Errorf("%w: %s is not a set of known rights", ErrBadRight, r)
	}
	return []byte(r.String()), nil
}

// UnmarshalText parses a comma-separated list with ParseRights.
func (r *Right) UnmarshalText(text []byte) error {
	parsed, err := ParseRights(string(text))
	if err != nil {
		return err
	}
	*r = parsed
	return nil
}

// ACL is the access control list of one resource. It belongs to the owner
// org, which checks it before any work; other nodes cache it so they do not
// send requests that would be refused.
type ACL struct {
	// Resource is the resource the list controls.
	Resource ID
	// Owner is the owner org; it must be Resource.Org().
	Owner string
	// Version grows with every change; the highest version wins.
	Version uint64
	// Public lets every member read and subscribe.
	Public bool
	// Grants are the rights of orgs other than the owner.
	Grants map[string]Right
}

// Allows reports whether org holds every right in r: the owner org holds all
// of them, every org holds read and subscribe on a public resource, and
// other orgs hold what they are granted. It is false for an empty org or r.
func (a ACL) Allows(org string, r Right) bool {
	if org == "" || !r.valid() {
		return false
	}
	if org == a.Owner {
		return true
	}
	have := a.Grants[org]
	if a.Public {
		have |= publicRights
	}
	return have.Has(r)
}

// Validate checks that the list names a resource, that its owner is the
// resource's org, and that every grant is to another valid org id and holds
// known rights. A grant to the owner is refused: the owner always has every
// right, and a list has one encoding of what it means.
func (a ACL) Validate() error {
	if a.Resource.IsZero() {
		return fmt.Errorf("%w: no resource", ErrBadACL)
	}
	if a.Owner != a.Resource.Org() {
		return fmt.Errorf("%w: %s: owner %s is not the resource's org %q", ErrBadACL, a.Resource, quote(a.Owner), a.Resource.Org())
	}
	for _, org := range slices.Sorted(maps.Keys(a.Grants)) {
		r := a.Grants[org]
		switch {
		case org == a.Owner:
			return fmt.Errorf("%w: %s: grant to the owner org %q: the owner always has every right", ErrBadACL, a.Resource, org)
		case r == 0:
			return fmt.Errorf("%w: %s: grant to %q has no rights", ErrBadACL, a.Resource, org)
		case !r.valid():
			return fmt.Errorf("%w: %s: grant to %q has unknown rights %#x", ErrBadACL, a.Resource, org, uint8(r&^AllRights))
		}
		if err := governance.ValidateOrgID(org); err != nil {
			return fmt.Errorf("%w: %s: grant: %w", ErrBadACL, a.Resource, err)
		}
	}
	return nil
}

// Clone returns a copy that shares nothing with a.
func (a ACL) Clone() ACL {
	a.Grants = maps.Clone(a.Grants)
	return a
}

// SignedACL is the record a sealed ACL carries: the list and the signing
// node's DER certificate chain (leaf first), which proves the node is
// certified for the owner org.
type SignedACL struct {
	ACL   ACL
	Chain [][]byte
}

var _ record.Record = (*SignedACL)(nil)

// Domain is the signed envelope domain of ACLs.
func (*SignedACL) Domain() string { return ACLDomain }

// Codec is the signed envelope payload type of ACLs.
func (*SignedACL) Codec() []byte { return []byte(aclPayloadType) }

// MarshalRecord encodes the record as its protobuf message, grants sorted by
// org.
func (s *SignedACL) MarshalRecord() ([]byte, error) {
	m := &pb.ACL{
		Resource: s.ACL.Resource.String(),
		Owner:    s.ACL.Owner,
		Version:  s.ACL.Version,
		Public:   s.ACL.Public,
		Chain:    s.Chain,
	}
	for _, org := range slices.Sorted(maps.Keys(s.ACL.Grants)) {
		m.Grants = append(m.Grants, &pb.ACLGrant{Org: org, Rights: uint32(s.ACL.Grants[org])})
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

// UnmarshalRecord decodes the protobuf message: the resource id must parse,
// each org may have one grant, and rights must fit a Right. It does not
// validate the ACL or check the signer.
func (s *SignedACL) UnmarshalRecord(data []byte) error {
	var m pb.ACL
	if err := proto.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%w: %w", ErrBadACL, err)
	}
	id, err := ParseID(m.Resource)
	if err != nil {
		return fmt.Errorf("%w: resource: %w", ErrBadACL, err)
	}
	acl := ACL{Resource: id, Owner: m.Owner, Version: m.Version, Public: m.Public}
	if len(m.Grants) > 0 {
		acl.Grants = make(map[string]Right, len(m.Grants))
	}
	for _, g := range m.Grants {
		if _, dup := acl.Grants[g.Org]; dup {
			return fmt.Errorf("%w: %s: org %s has more than one grant", ErrBadACL, id, quote(g.Org))
		}
		if g.Rights > uint32(^Right(0)) {
			return fmt.Errorf("%w: %s: grant to %s has unknown rights %#x", ErrBadACL, id, quote(g.Org), g.Rights)
		}
		acl.Grants[g.Org] = Right(g.Rights)
	}
	*s = SignedACL{ACL: acl, Chain: m.Chain}
	return nil
}

// SealACL signs acl with the key of one of the owner's nodes, whose DER
// certificate chain (leaf first) it carries, and returns the signed
// envelope's bytes: what travels and is stored. It refuses an invalid ACL, a
// chain whose leaf is not key's certificate and a result over MaxACLSize.
func SealACL(acl ACL, chain [][]byte, key crypto.PrivKey) ([]byte, error) {
	if err := acl.Validate(); err != nil {
		return nil, fmt.Errorf("seal ACL: %w", err)
	}
	if err := signedrecord.CheckLeafKey(chain, key, ErrForged); err != nil {
		return nil, fmt.Errorf("seal ACL of %s: %w", acl.Resource, err)
	}
	env, err := record.Seal(&SignedACL{ACL: acl, Chain: chain}, key)
	if err != nil {
		return nil, fmt.Errorf("seal ACL of %s: %w", acl.Resource, err)
	}
	data, err := env.Marshal()
	if err != nil {
		return nil, fmt.Errorf("seal ACL of %s: %w", acl.Resource, err)
	}
	if len(data) > MaxACLSize {
		return nil, fmt.Errorf("%w: sealed ACL of %s is %d bytes, at most %d", ErrTooLarge, acl.Resource, len(data), MaxACLSize)
	}
	return data, nil
}

// ACLVerifier applies the checks every receiver of a sealed ACL makes: a
// topic validator, the cache, the owner loading its own lists. ACLs are bound
// to a network by their signer's certificate, which must chain to the
// network's founding roots.
type ACLVerifier struct {
	// Trust verifies the signer's certificate chain, revocations included.
	Trust *governance.TrustStore
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

func (v *ACLVerifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// Open checks a sealed ACL — size, envelope signature and payload type, that
// its owner is the resource's org, that it is valid, that the signer's
// certificate chain verifies and holds the signing key, and that it
// certifies the owner org — and returns the ACL and the member that signed
// it. The error says which check failed.
func (v *ACLVerifier) Open(sealed []byte) (ACL, governance.Member, error) {
	if len(sealed) > MaxACLSize {
		return ACL{}, governance.Member{}, fmt.Errorf("%w: sealed ACL of %d bytes, at most %d", ErrTooLarge, len(sealed), MaxACLSize)
	}
	var rec SignedACL
	env, err := record.ConsumeTypedEnvelope(sealed, &rec)
	if err != nil {
		if errors.Is(err, ErrBadACL) {
			return ACL{}, governance.Member{}, err
		}
		return ACL{}, governance.Member{}, fmt.Errorf("%w: envelope: %w", ErrBadACL, err)
	}
	if !bytes.Equal(env.PayloadType, []byte(aclPayloadType)) {
		return ACL{}, governance.Member{}, fmt.Errorf("%w: payload type %s is not %q", ErrBadACL, quote(string(env.PayloadType)), aclPayloadType)
	}
	acl := rec.ACL
	if acl.Owner != acl.Resource.Org() {
		return ACL{}, governance.Member{}, fmt.Errorf("%w: ACL of %s names owner %s, the resource belongs to %q", ErrForged, acl.Resource, quote(acl.Owner), acl.Resource.Org())
	}
	if err := acl.Validate(); err != nil {
		return ACL{}, governance.Member{}, err
	}
	if v.Trust == nil {
		return ACL{}, governance.Member{}, fmt.Errorf("%w: ACL of %s: the verifier has no trust store", ErrUntrustedSigner, acl.Resource)
	}
	if env.PublicKey.Type() != crypto.Ed25519 {
		return ACL{}, governance.Member{}, fmt.Errorf("%w: ACL of %s signed by a %s key, not Ed25519", ErrForged, acl.Resource, env.PublicKey.Type())
	}
	raw, err := env.PublicKey.Raw()
	if err != nil {
		return ACL{}, governance.Member{}, fmt.Errorf("%w: ACL of %s: signing key: %w", ErrBadACL, acl.Resource, err)
	}
	m, err := v.Trust.VerifyPeer(rec.Chain, ed25519.PublicKey(raw), v.now())
	if err != nil {
		kind := ErrUntrustedSigner
		if errors.Is(err, governance.ErrKeyMismatch) {
			kind = ErrForged
		}
		return ACL{}, governance.Member{}, fmt.Errorf("%w: ACL of %s: signer's certificate: %w", kind, acl.Resource, err)
	}
	if m.OrgID != acl.Owner {
		return ACL{}, governance.Member{}, fmt.Errorf("%w: ACL of %s owned by %q is signed by peer %s of org %q", ErrForged, acl.Resource, acl.Owner, m.PeerID, m.OrgID)
	}
	return acl, m, nil
}
