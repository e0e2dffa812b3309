package asset

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	"google.golang.org/protobuf/proto"

	"github.com/finp2p/go-finp2p/asset/pb"
	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/ledger"
	"github.com/finp2p/go-finp2p/resource"
)

// Signed envelope domain and payload type of asset requests. The domain is
// signed, so a request signature cannot be replayed as another kind of
// record.
const (
	RequestDomain      = "finp2p-asset-request"
	requestPayloadType = "/finp2p/asset-request/1"
)

const (
	// MaxRequestSize bounds a sealed asset request; Open refuses larger ones
	// before any work.
	MaxRequestSize = 64 << 10
	// NonceSize is the length of a request's nonce in bytes.
	NonceSize = 16
	// DefaultWindow is how far a request's timestamp may be from the
	// receiver's clock, either way. A ReplayGuard remembers requests for
	// twice as long.
	DefaultWindow = 2 * time.Minute
)

// Request is an asset transaction request: org RequesterOrg's node Peer asks
// the primary node of the asset's owner org to execute Operation on its
// ledger. Which of From, To, Quantity and HoldID it carries depends on the
// operation, as for the matching ledger call.
type Request struct {
	// Network is the genesis network name.
	Network string
	// Operation is one of issue, transfer, redeem, hold, release and
	// rollback.
	Operation ledger.Operation
	// Asset is the asset's resource id in canonical form (org:type:id).
	Asset string
	// From is the debited account (transfer, redeem, hold).
	From string
	// To is the credited account (issue, transfer, release).
	To string
	// Quantity is a decimal string (issue, transfer, redeem, hold); the
	// ledger checks it against the asset's decimals.
	Quantity string
	// HoldID is the hold a release or rollback closes.
	HoldID string
	// IdempotencyKey makes a retry return the first answer instead of
	// executing again.
	IdempotencyKey string
	// Nonce is NonceSize random bytes; with Peer it identifies the request
	// for replay protection.
	Nonce []byte
	// Timestamp is when the request was signed.
	Timestamp time.Time
	// RequesterOrg is the org of the signing node.
	RequesterOrg string
	// Peer is the signing node.
	Peer peer.ID
	// Chain is the signing node's DER certificate chain, leaf first.
	Chain [][]byte
}

var _ record.Record = (*Request)(nil)

// Domain is the signed envelope domain of asset requests.
func (*Request) Domain() string { return RequestDomain }

// Codec is the signed envelope payload type of asset requests.
func (*Request) Codec() []byte { return []byte(requestPayloadType) }

// MarshalRecord encodes the request as its protobuf message.
func (r *Request) MarshalRecord() ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(&pb.Request{
		Network:        r.Network,
		Operation:      string(r.Operation),
		Asset:          r.Asset,
		From:           r.From,
		To:             r.To,
		Quantity:       r.Quantity,
		HoldId:         r.HoldID,
		IdempotencyKey: r.IdempotencyKey,
		Nonce:          r.Nonce,
		Timestamp:      unixNanos(r.Timestamp),
		RequesterOrg:   r.RequesterOrg,
		Peer:           []byte(r.Peer),
		Chain:          r.Chain,
	})
}

// UnmarshalRecord decodes the protobuf message; it checks only that the
// peer id parses. Validate checks the fields.
func (r *Request) UnmarshalRecord(data []byte) error {
	var m pb.Request
	if err := proto.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%w: asset request: %w", ErrMalformed, err)
	}
	p, err := parsePeer(m.Peer)
	if err != nil {
		return fmt.Errorf("%w: asset request: peer id: %w", ErrMalformed, err)
	}
	*r = Request{
		Network:        m.Network,
		Operation:      ledger.Operation(m.Operation),
		Asset:          m.Asset,
		From:           m.From,
		To:             m.To,
		Quantity:       m.Quantity,
		HoldID:         m.HoldId,
		IdempotencyKey: m.IdempotencyKey,
		Nonce:          m.Nonce,
		Timestamp:      fromUnixNanos(m.Timestamp),
		RequesterOrg:   m.RequesterOrg,
		Peer:           p,
		Chain:          m.Chain,
	}
	return nil
}

// requestFields says which of from, to, quantity and hold id each operation
// a request may ask for takes; it takes none of the others.
var requestFields = map[ledger.Operation]struct{ from, to, quantity, holdID bool }{
	ledger.OpIssue:    {to: true, quantity: true},
	ledger.OpTransfer: {from: true, to: true, quantity: true},
	ledger.OpRedeem:   {from: true, quantity: true},
	ledger.OpHold:     {from: true, quantity: true},
	ledger.OpRelease:  {to: true, holdID: true},
	ledger.OpRollback: {holdID: true},
}

// Validate checks the request's fields, not its signer: a known operation,
// the fields it takes present and well-formed and no others, a canonical
// asset resource id, a quantity of decimal shape (its decimals are the
// ledger's to check), an idempotency key, a NonceSize nonce, a timestamp,
// the requester org, peer and chain. The error wraps ErrBadRequest and names
// the field.
func (r *Request) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
	}
	op := r.Operation
	want, ok := requestFields[op]
	switch {
	case op == "":
		return bad("missing operation")
	case op == ledger.OpCreateAsset:
		return bad("operation %s is the asset owner's own, not a request another node can make", op)
	case !ok:
		return bad("unknown operation %q; want issue, transfer, redeem, hold, release or rollback", op)
	}
	if r.Network == "" {
		return bad("missing network")
	}
	if r.Asset == "" {
		return bad("%s: missing asset", op)
	}
	id, err := resource.ParseID(r.Asset)
	if err != nil {
		return fmt.Errorf("%w: %s: asset: %w", ErrBadRequest, op, err)
	}
	if id.String() != r.Asset {
		return bad("%s: asset %q is not in canonical form %q", op, r.Asset, id.String())
	}
	for _, f := range []struct {
		name, value string
		wanted      bool
	}{{"from", r.From, want.from}, {"to", r.To, want.to}, {"hold_id", r.HoldID, want.holdID}, {"quantity", r.Quantity, want.quantity}} {
		switch {
		case f.wanted && f.value == "":
			return bad("%s: missing %s", op, f.name)
		case !f.wanted && f.value != "":
			return bad("%s takes no %s (got %q)", op, f.name, f.value)
		case !f.wanted:
		case f.name == "quantity":
			// The shape of any quantity; the asset's decimals are the ledger's.
			if _, err := ledger.ParseAmount(f.value, ledger.MaxDecimals); err != nil {
				return fmt.Errorf("%w: %s: quantity: %w", ErrBadRequest, op, err)
			}
		default:
			if err := ledger.CheckID(f.name, f.value); err != nil {
				return fmt.Errorf("%w: %s: %w", ErrBadRequest, op, err)
			}
		}
	}
	if op == ledger.OpTransfer && r.From == r.To {
		return bad("transfer from %q to itself", r.From)
	}
	if err := ledger.CheckIdempotencyKey(r.IdempotencyKey); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadRequest, op, err)
	}
	if len(r.Nonce) != NonceSize {
		return bad("nonce of %d bytes, want %d", len(r.Nonce), NonceSize)
	}
	if err := checkTime("timestamp", r.Timestamp); err != nil {
		return bad("%v", err)
	}
	if r.RequesterOrg == "" {
		return bad("missing requester org")
	}
	if err := governance.ValidateOrgID(r.RequesterOrg); err != nil {
		return fmt.Errorf("%w: requester org: %w", ErrBadRequest, err)
	}
	if r.Peer == "" {
		return bad("missing peer")
	}
	if len(r.Chain) == 0 {
		return bad("missing certificate chain")
	}
	return nil
}

// NewNonce returns NonceSize random bytes.
func NewNonce() []byte {
	n := make([]byte, NonceSize)
	rand.Read(n) // never fails (crypto/rand)
	return n
}

// SealRequest signs r with the requesting node's key and returns the signed
// envelope's bytes: what travels, and what RequestHash hashes. It fills in
// r.Peer from the key, r.Nonce with NewNonce and r.Timestamp with the
// current time where they are empty, and refuses an invalid request, a
// chain whose leaf is not key's certificate and a result over
// MaxRequestSize.
func SealRequest(r *Request, key crypto.PrivKey) ([]byte, error) {
	if r == nil {
		return nil, fmt.Errorf("seal asset request: %w: no request", ErrBadRequest)
	}
	if err := signerPeer(&r.Peer, key); err != nil {
		return nil, fmt.Errorf("seal asset request: %w", err)
	}
	if len(r.Nonce) == 0 {
		r.Nonce = NewNonce()
	}
	if r.Timestamp.IsZero() {
		r.Timestamp = time.Now()
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("seal asset request: %w", err)
	}
	if err := checkLeafKey(r.Chain, key); err != nil {
		return nil, fmt.Errorf("seal asset request: %w", err)
	}
	return seal("asset request", r, key, MaxRequestSize)
}

// RequestHash is the hex SHA-256 of a sealed request: what a receipt binds
// to.
func RequestHash(sealed []byte) string {
	sum := sha256.Sum256(sealed)
	return hex.EncodeToString(sum[:])
}

// VerifiedRequest is an asset request that passed RequestVerifier.Open.
type VerifiedRequest struct {
	// Request is the decoded request.
	Request *Request
	// AssetID is Request.Asset parsed.
	AssetID resource.ID
	// Signer is what the signer's certificate chain proves.
	Signer governance.Member
	// Sealed is the signed envelope as received.
	Sealed []byte
	// Hash is RequestHash(Sealed).
	Hash string
}

// RequestVerifier makes the checks the asset owner's primary node makes on
// a sealed request before any work. It does not check replay (see
// ReplayGuard), the asset's ACL or that this node owns the asset.
type RequestVerifier struct {
	// Network is this node's genesis network name.
	Network string
	// Trust verifies the signer's certificate chain, revocations included.
	Trust *governance.TrustStore
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// Window is how far the request's timestamp may be from Now, either
	// way; DefaultWindow if zero.
	Window time.Duration
}

func (v *RequestVerifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v *RequestVerifier) window() time.Duration {
	if v.Window > 0 {
		return v.Window
	}
	return DefaultWindow
}

// Open checks a sealed asset request: size, envelope signature, payload
// type and encoding, network, that the signing key is the named peer's,
// the fields (Validate), that the timestamp is within the window, that the
// signer's certificate chain verifies now and holds the signing key, and
// that it certifies the requester org. The error says which check failed.
func (v *RequestVerifier) Open(sealed []byte) (*VerifiedRequest, error) {
	var r Request
	env, err := openEnvelope("asset request", sealed, MaxRequestSize, &r)
	if err != nil {
		return nil, err
	}
	if v.Network == "" || v.Trust == nil {
		return nil, errors.New("asset request verifier has no network or trust store")
	}
	if r.Network != v.Network {
		return nil, fmt.Errorf("%w: asset request for network %q, this node is on %q", ErrWrongNetwork, r.Network, v.Network)
	}
	signer, err := peer.IDFromPublicKey(env.PublicKey)
	if err != nil || signer != r.Peer {
		return nil, fmt.Errorf("%w: asset request names peer %s but is signed by %s", ErrForged, r.Peer, describeKey(env.PublicKey))
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	now := v.now()
	if skew := now.Sub(r.Timestamp); skew > v.window() {
		return nil, fmt.Errorf("%w: asset request signed at %s, %s ago, more than the %s window", ErrStaleRequest, r.Timestamp.Format(time.RFC3339Nano), skew, v.window())
	} else if -skew > v.window() {
		return nil, fmt.Errorf("%w: asset request dated %s, %s in the future, more than the %s window", ErrStaleRequest, r.Timestamp.Format(time.RFC3339Nano), -skew, v.window())
	}
	m, err := v.Trust.VerifySigner(r.Chain, env.PublicKey, now)
	if err != nil {
		return nil, signerError("asset request of "+r.Peer.String(), err)
	}
	if m.OrgID != r.RequesterOrg {
		return nil, fmt.Errorf("%w: asset request from org %q is signed by peer %s of org %q", ErrForged, r.RequesterOrg, m.PeerID, m.OrgID)
	}
	return &VerifiedRequest{
		Request: &r,
		AssetID: resource.MustParseID(r.Asset), // Validate parsed it
		Signer:  m,
		Sealed:  slices.Clone(sealed),
		Hash:    RequestHash(sealed),
	}, nil
}

// signerError classifies a governance error about a signer's certificate:
// a chain that is not the signing key's is ErrForged, a revoked one
// ErrRevoked; others (expired, untrusted) keep only the governance error.
func signerError(what string, err error) error {
	switch {
	case errors.Is(err, governance.ErrKeyMismatch):
		return fmt.Errorf("%w: %s: signer's certificate: %w", ErrForged, what, err)
	case errors.Is(err, governance.ErrRevoked):
		return fmt.Errorf("%w: %s: signer's certificate: %w", ErrRevoked, what, err)
	}
	return fmt.Errorf("%s: signer's certificate: %w", what, err)
}
