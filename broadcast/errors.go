package broadcast

import "errors"

// Errors of broadcast requests and responses, wrapped with the detail, so a
// caller tests with errors.Is and shows the message. Errors about a signer's
// certificate also wrap the governance error (governance.ErrExpired,
// governance.ErrUntrustedChain, ...).
var (
	// ErrTooLarge: a sealed request or response over its size limit.
	ErrTooLarge = errors.New("broadcast record too large")
	// ErrMalformed: bytes that are not a well-formed, correctly signed
	// request or response envelope.
	ErrMalformed = errors.New("malformed broadcast record")
	// ErrBadScope: a scope of unknown kind, or without the orgs or ledger
	// its kind takes, or with ones it does not take.
	ErrBadScope = errors.New("bad broadcast scope")
	// ErrBadRequest: a broadcast request with a field missing or malformed.
	ErrBadRequest = errors.New("bad broadcast request")
	// ErrBadResponse: a broadcast response with a field missing or
	// malformed.
	ErrBadResponse = errors.New("bad broadcast response")
	// ErrWrongNetwork: a request or response for another FinP2P network.
	ErrWrongNetwork = errors.New("broadcast record is for another network")
	// ErrForged: a signer that is not who the record says: its key is not
	// the named peer's or its certificate's, or it is certified for another
	// org than the one the record speaks for.
	ErrForged = errors.New("broadcast record signer is not who it claims")
	// ErrRevoked: a signer whose certificate, or its CA's, was revoked. It
	// comes with governance.ErrRevoked.
	ErrRevoked = errors.New("broadcast record signer revoked")
	// ErrExpired: a request whose deadline has passed.
	ErrExpired = errors.New("broadcast request deadline passed")
	// ErrUnknownRequest: a response naming another request than the one
	// collected for.
	ErrUnknownRequest = errors.New("response to an unknown broadcast request")
	// ErrOutOfScope: a response from a node outside the request's scope.
	ErrOutOfScope = errors.New("broadcast response from outside the scope")
	// ErrDuplicate: a second response from the same node.
	ErrDuplicate = errors.New("duplicate broadcast response")
	// ErrQuorumTooLarge: a request asking for more responses than its
	// scope has nodes.
	ErrQuorumTooLarge = errors.New("broadcast quorum larger than the scope")
	// ErrEmptyScope: a scope in which the origin knows no node to ask.
	ErrEmptyScope = errors.New("no node in the broadcast scope")
)
