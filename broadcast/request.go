package broadcast

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	"google.golang.org/protobuf/proto"

	"github.com/finp2p/go-finp2p/broadcast/pb"
	"github.com/finp2p/go-finp2p/governance"
)

// Signed envelope domains and payload types of broadcast requests and
// responses. The domain is signed, so a signature cannot be replayed as
// another kind of record.
const (
	RequestDomain       = "finp2p-broadcast-request"
	requestPayloadType  = "/finp2p/broadcast-request/1"
	ResponseDomain      = "finp2p-broadcast-response"
	responsePayloadType = "/finp2p/broadcast-response/1"
)

const (
	// MaxRequestSize bounds a sealed broadcast request; Open refuses larger
	// ones before any work.
	MaxRequestSize = 64 << 10
	// MaxResponseSize bounds a sealed broadcast response.
	MaxResponseSize = 64 << 10
	// IDSize is the length of a request id in bytes; it travels in hex.
	IDSize = 16
	// MaxKindLength bounds a request's kind.
	MaxKindLength = 64
)

// Consistency is how the origin resolves responses that do not agree.
type Consistency string

// The consistency options of a broadcast request.
const (
	// Strict: the result is OK only if all valid answers are equal.
	Strict Consistency = "strict"
	// Majority: the answer given by most responders wins; a tie goes to the
	// answer read at the highest ledger version, then to the one a
	// rendezvous node gave.
	Majority Consistency = "majority"
	// NewestVersion: the answer read at the highest ledger version wins;
	// different answers at lower versions are stale.
	NewestVersion Consistency = "newest-version"
)

// Request is a broadcast request: org OriginOrg's node Peer asks the nodes
// of Scope a question of Kind and waits for Quorum valid answers until
// Deadline, resolving disagreement by Consistency.
type Request struct {
	// Network is the genesis network name.
	Network string
	// ID is IDSize random bytes in hex; responses name it.
	ID string
	// Kind is what is asked, e.g. "balance" or "receipt-validation".
	Kind string
	// Scope is who is asked.
	Scope Scope
	// Payload is the kind's question, opaque here.
	Payload []byte
	// Encrypted says Payload is encrypted for the scope's nodes.
	Encrypted bool
	// Quorum is the number of valid answers the origin waits for, at
	// least 1.
	Quorum int
	// Deadline is when the origin stops waiting; responders ignore the
	// request after it.
	Deadline time.Time
	// Consistency is how disagreeing answers are resolved.
	Consistency Consistency
	// OriginOrg is the org of the signing node.
	OriginOrg string
	// Peer is the signing node.
	Peer peer.ID
	// Chain is the signing node's DER certificate chain, leaf first.
	Chain [][]byte
}

var _ record.Record = (*Request)(nil)

// Domain is the signed envelope domain of broadcast requests.
func (*Request) Domain() string { return RequestDomain }

// Codec is the signed envelope payload type of broadcast requests.
func (*Request) Codec() []byte { return []byte(requestPayloadType) }

// MarshalRecord encodes the request as its protobuf message.
func (r *Request) MarshalRecord() ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(&pb.Request{
		Network:     r.Network,
		Id:          r.ID,
		Kind:        r.Kind,
		Scope:       &pb.Scope{Kind: string(r.Scope.Kind), Orgs: r.Scope.Orgs, Ledger: r.Scope.Ledger},
		Payload:     r.Payload,
		Encrypted:   r.Encrypted,
		Quorum:      int64(r.Quorum),
		Deadline:    unixNanos(r.Deadline),
		Consistency: string(r.Consistency),
		OriginOrg:   r.OriginOrg,
		Peer:        []byte(r.Peer),
		Chain:       r.Chain,
	})
}

// UnmarshalRecord decodes the protobuf message; it checks only that the
// peer id parses and the quorum fits an int. Validate checks the fields.
func (r *Request) UnmarshalRecord(data []byte) error {
	var m pb.Request
	if err := proto.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%w: broadcast request: %w", ErrMalformed, err)
	}
	p, err := parsePeer(m.Peer)
	if err != nil {
		return fmt.Errorf("%w: broadcast request: peer id: %w", ErrMalformed, err)
	}
	if int64(int(m.Quorum)) != m.Quorum {
		return fmt.Errorf("%w: broadcast request: quorum %d out of range", ErrMalformed, m.Quorum)
	}
	var s Scope
	if m.Scope != nil {
		s = Scope{Kind: ScopeKind(m.Scope.Kind), Orgs: m.Scope.Orgs, Ledger: m.Scope.Ledger}
	}
	*r = Request{
		Network:     m.Network,
		ID:          m.Id,
		Kind:        m.Kind,
		Scope:       s,
		Payload:     m.Payload,
		Encrypted:   m.Encrypted,
		Quorum:      int(m.Quorum),
		Deadline:    fromUnixNanos(m.Deadline),
		Consistency: Consistency(m.Consistency),
		OriginOrg:   m.OriginOrg,
		Peer:        p,
		Chain:       m.Chain,
	}
	return nil
}

// Validate checks the request's fields, not its signer or its deadline
// against a clock: network, an id of IDSize hex bytes, a kind, a valid
// scope, a quorum of at least 1, a deadline, a known consistency, the
// origin org, peer and chain. The error wraps ErrBadRequest (and
// ErrBadScope for the scope) and names the field.
func (r *Request) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
	}
	if r.Network == "" {
		return bad("missing network")
	}
	if err := checkRequestID("id", r.ID); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if r.Kind == "" {
		return bad("missing kind")
	}
	if len(r.Kind) > MaxKindLength {
		return bad("kind is %d bytes long, at most %d", len(r.Kind), MaxKindLength)
	}
	if err := r.Scope.Validate(); err != nil {
		return fmt.Errorf("%w: scope: %w", ErrBadRequest, err)
	}
	if r.Quorum < 1 {
		return bad("quorum %d, want at least 1", r.Quorum)
	}
	if err := checkTime("deadline", r.Deadline); err != nil {
		return bad("%v", err)
	}
	switch r.Consistency {
	case Strict, Majority, NewestVersion:
	case "":
		return bad("missing consistency")
	default:
		return bad("unknown consistency %q; want strict, majority or newest-version", r.Consistency)
	}
	if r.OriginOrg == "" {
		return bad("missing origin org")
	}
	if err := governance.ValidateOrgID(r.OriginOrg); err != nil {
		return fmt.Errorf("%w: origin org: %w", ErrBadRequest, err)
	}
	if r.Peer == "" {
		return bad("missing peer")
	}
	if len(r.Chain) == 0 {
		return bad("missing certificate chain")
	}
	return nil
}

// checkRequestID checks that id is IDSize bytes in lower-case hex.
func checkRequestID(field, id string) error {
	if id == "" {
		return fmt.Errorf("missing %s", field)
	}
	b, err := hex.DecodeString(id)
	if err != nil || len(b) != IDSize || hex.EncodeToString(b) != id {
		return fmt.Errorf("%s %q is not %d bytes in lower-case hex", field, id, IDSize)
	}
	return nil
}

// NewRequestID returns IDSize random bytes in hex.
func NewRequestID() string {
	b := make([]byte, IDSize)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// SealRequest signs r with the origin node's key and returns the signed
// envelope's bytes. It fills in r.Peer from the key and r.ID with
// NewRequestID where they are empty, and refuses an invalid request, a
// chain whose leaf is not key's certificate and a result over
// MaxRequestSize.
func SealRequest(r *Request, key crypto.PrivKey) ([]byte, error) {
	if r == nil {
		return nil, fmt.Errorf("seal broadcast request: %w: no request", ErrBadRequest)
	}
	if err := signerPeer(&r.Peer, key); err != nil {
		return nil, fmt.Errorf("seal broadcast request: %w", err)
	}
	if r.ID == "" {
		r.ID = NewRequestID()
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("seal broadcast request: %w", err)
	}
	if err := checkLeafKey(r.Chain, key); err != nil {
		return nil, fmt.Errorf("seal broadcast request: %w", err)
	}
	return seal("broadcast request", r, key, MaxRequestSize)
}

// VerifiedRequest is a broadcast request that passed RequestVerifier.Open.
type VerifiedRequest struct {
	// Request is the decoded request.
	Request *Request
	// Signer is what the signer's certificate chain proves.
	Signer governance.Member
	// Sealed is the signed envelope as received.
	Sealed []byte
}

// RequestVerifier makes the checks a receiving node makes on a sealed
// broadcast request before any work. Whether this node is in the scope,
// and replay, are the caller's to check.
type RequestVerifier struct {
	// Network is this node's genesis network name.
	Network string
	// Trust verifies the signer's certificate chain, revocations included.
	Trust *governance.TrustStore
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

func (v *RequestVerifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// Open checks a sealed broadcast request: size, envelope signature, payload
// type and encoding, network, that the signing key is the named peer's,
// the fields (Validate: quorum, scope, ...), that the deadline has not
// passed, that the signer's certificate chain verifies now and holds the
// signing key, and that it certifies the origin org. The error says which
// check failed.
func (v *RequestVerifier) Open(sealed []byte) (*VerifiedRequest, error) {
	var r Request
	env, err := openEnvelope("broadcast request", sealed, MaxRequestSize, &r)
	if err != nil {
		return nil, err
	}
	if v.Network == "" || v.Trust == nil {
		return nil, errors.New("broadcast request verifier has no network or trust store")
	}
	if r.Network != v.Network {
		return nil, fmt.Errorf("%w: broadcast request for network %q, this node is on %q", ErrWrongNetwork, r.Network, v.Network)
	}
	signer, err := peer.IDFromPublicKey(env.PublicKey)
	if err != nil || signer != r.Peer {
		return nil, fmt.Errorf("%w: broadcast request names peer %s but is signed by %s", ErrForged, r.Peer, describeKey(env.PublicKey))
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	now := v.now()
	if !now.Before(r.Deadline) {
		return nil, fmt.Errorf("%w: broadcast request %s had deadline %s, %s ago", ErrExpired, r.ID, r.Deadline.Format(time.RFC3339Nano), now.Sub(r.Deadline))
	}
	m, err := v.Trust.VerifySigner(r.Chain, env.PublicKey, now)
	if err != nil {
		return nil, signerError("broadcast request of "+r.Peer.String(), err)
	}
	if m.OrgID != r.OriginOrg {
		return nil, fmt.Errorf("%w: broadcast request from org %q is signed by peer %s of org %q", ErrForged, r.OriginOrg, m.PeerID, m.OrgID)
	}
	return &VerifiedRequest{Request: &r, Signer: m, Sealed: slices.Clone(sealed)}, nil
}
