package broadcast

import (
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	"google.golang.org/protobuf/proto"

	"github.com/finp2p/go-finp2p/broadcast/pb"
	"github.com/finp2p/go-finp2p/governance"
)

// MaxErrorLength bounds a response's Error.
const MaxErrorLength = 1024

// Response answers a broadcast request: org ResponderOrg's node Peer gives
// Answer, read at LedgerVersion, or says in Error why it cannot answer.
type Response struct {
	// Network is the genesis network name.
	Network string
	// RequestID is the ID of the request answered.
	RequestID string
	// Answer is the kind's answer; empty when Error is set.
	Answer []byte
	// LedgerVersion is the ledger version the answer was read at.
	LedgerVersion uint64
	// ResponderOrg is the org of the signing node.
	ResponderOrg string
	// Peer is the signing node.
	Peer peer.ID
	// Chain is the signing node's DER certificate chain, leaf first.
	Chain [][]byte
	// Error, when set, says why the responder cannot answer.
	Error string
}

var _ record.Record = (*Response)(nil)

// Domain is the signed envelope domain of broadcast responses.
func (*Response) Domain() string { return ResponseDomain }

// Codec is the signed envelope payload type of broadcast responses.
func (*Response) Codec() []byte { return []byte(responsePayloadType) }

// MarshalRecord encodes the response as its protobuf message.
func (r *Response) MarshalRecord() ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(&pb.Response{
		Network:       r.Network,
		RequestId:     r.RequestID,
		Answer:        r.Answer,
		LedgerVersion: r.LedgerVersion,
		ResponderOrg:  r.ResponderOrg,
		Peer:          []byte(r.Peer),
		Chain:         r.Chain,
		Error:         r.Error,
	})
}

// UnmarshalRecord decodes the protobuf message; it checks only that the
// peer id parses. Validate checks the fields.
func (r *Response) UnmarshalRecord(data []byte) error {
	var m pb.Response
	if err := proto.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%w: broadcast response: %w", ErrMalformed, err)
	}
	p, err := parsePeer(m.Peer)
	if err != nil {
		return fmt.Errorf("%w: broadcast response: peer id: %w", ErrMalformed, err)
	}
	*r = Response{
		Network:       m.Network,
		RequestID:     m.RequestId,
		Answer:        m.Answer,
		LedgerVersion: m.LedgerVersion,
		ResponderOrg:  m.ResponderOrg,
		Peer:          p,
		Chain:         m.Chain,
		Error:         m.Error,
	}
	return nil
}

// Validate checks the response's fields, not its signer: network, a request
// id of IDSize hex bytes, no answer with an error, an error of at most
// MaxErrorLength bytes, the responder org, peer and chain. The error wraps
// ErrBadResponse and names the field.
func (r *Response) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadResponse, fmt.Sprintf(format, args...))
	}
	if r.Network == "" {
		return bad("missing network")
	}
	if err := checkRequestID("request id", r.RequestID); err != nil {
		return fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	if r.Error != "" && len(r.Answer) > 0 {
		return bad("both an answer and error %q", r.Error)
	}
	if len(r.Error) > MaxErrorLength {
		return bad("error is %d bytes long, at most %d", len(r.Error), MaxErrorLength)
	}
	if r.ResponderOrg == "" {
		return bad("missing responder org")
	}
	if err := governance.ValidateOrgID(r.ResponderOrg); err != nil {
		return fmt.Errorf("%w: responder org: %w", ErrBadResponse, err)
	}
	if r.Peer == "" {
		return bad("missing peer")
	}
	if len(r.Chain) == 0 {
		return bad("missing certificate chain")
	}
	return nil
}

// SealResponse signs r with the responding node's key and returns the
// signed envelope's bytes. It fills in r.Peer from the key where empty, and
// refuses an invalid response, a chain whose leaf is not key's certificate
// and a result over MaxResponseSize.
func SealResponse(r *Response, key crypto.PrivKey) ([]byte, error) {
	if r == nil {
		return nil, fmt.Errorf("seal broadcast response: %w: no response", ErrBadResponse)
	}
	if err := signerPeer(&r.Peer, key); err != nil {
		return nil, fmt.Errorf("seal broadcast response: %w", err)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("seal broadcast response: %w", err)
	}
	if err := checkLeafKey(r.Chain, key); err != nil {
		return nil, fmt.Errorf("seal broadcast response: %w", err)
	}
	return seal("broadcast response", r, key, MaxResponseSize)
}

// VerifiedResponse is a broadcast response that passed
// ResponseVerifier.Open.
type VerifiedResponse struct {
	// Response is the decoded response.
	Response *Response
	// Signer is what the signer's certificate chain proves.
	Signer governance.Member
}

// ResponseVerifier makes the checks the origin makes on a sealed response.
// Whether it answers the right request from a node in the scope is the
// Collector's to check.
type ResponseVerifier struct {
	// Network is this node's genesis network name.
	Network string
	// Trust verifies the signer's certificate chain, revocations included.
	Trust *governance.TrustStore
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

func (v *ResponseVerifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// Open checks a sealed broadcast response: size, envelope signature,
// payload type and encoding, network, that the signing key is the named
// peer's, the fields (Validate), that the signer's certificate chain
// verifies now and holds the signing key, and that it certifies the
// responder org. The error says which check failed.
func (v *ResponseVerifier) Open(sealed []byte) (*VerifiedResponse, error) {
	var r Response
	env, err := openEnvelope("broadcast response", sealed, MaxResponseSize, &r)
	if err != nil {
		return nil, err
	}
	if v.Network == "" || v.Trust == nil {
		return nil, errors.New("broadcast response verifier has no network or trust store")
	}
	if r.Network != v.Network {
		return nil, fmt.Errorf("%w: broadcast response for network %q, this node is on %q", ErrWrongNetwork, r.Network, v.Network)
	}
	signer, err := peer.IDFromPublicKey(env.PublicKey)
	if err != nil || signer != r.Peer {
		return nil, fmt.Errorf("%w: broadcast response names peer %s but is signed by %s", ErrForged, r.Peer, describeKey(env.PublicKey))
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	m, err := v.Trust.VerifySigner(r.Chain, env.PublicKey, v.now())
	if err != nil {
		return nil, signerError("broadcast response of "+r.Peer.String(), err)
	}
	if m.OrgID != r.ResponderOrg {
		return nil, fmt.Errorf("%w: broadcast response from org %q is signed by peer %s of org %q", ErrForged, r.ResponderOrg, m.PeerID, m.OrgID)
	}
	return &VerifiedResponse{Response: &r, Signer: m}, nil
}
