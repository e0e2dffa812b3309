package asset

import "errors"

// Errors of asset requests and receipts, wrapped with the detail, so a caller
// tests with errors.Is and shows the message. Errors about a signer's
// certificate also wrap the governance error (governance.ErrExpired,
// governance.ErrUntrustedChain, ...).
var (
	// ErrTooLarge: a sealed request or receipt over its size limit.
	ErrTooLarge = errors.New("asset record too large")
	// ErrMalformed: bytes that are not a well-formed, correctly signed
	// request or receipt envelope, or a receipt with a missing or malformed
	// field.
	ErrMalformed = errors.New("malformed asset record")
	// ErrBadRequest: an asset request with an unknown operation, or a field
	// missing, malformed or not taken by its operation.
	ErrBadRequest = errors.New("bad asset request")
	// ErrWrongNetwork: a request or receipt for another FinP2P network.
	ErrWrongNetwork = errors.New("asset record is for another network")
	// ErrForged: a signer that is not who the record says: its key is not
	// the named peer's or its certificate's, or it is certified for another
	// org than the one the record speaks for.
	ErrForged = errors.New("asset record signer is not who it claims")
	// ErrStaleRequest: a request signed too long ago, or dated in the future,
	// for the replay window.
	ErrStaleRequest = errors.New("asset request outside the replay window")
	// ErrReplay: a request whose peer and nonce were already seen.
	ErrReplay = errors.New("replayed asset request")
	// ErrReplayGuardFull: the replay guard remembers as many requests as it
	// may, in total or for one peer; the request is refused until older ones
	// expire, so the requester should retry later.
	ErrReplayGuardFull = errors.New("too many recent asset requests")
	// ErrRevoked: a signer whose certificate, or its CA's, was revoked; for a
	// receipt, revoked at or before it was signed. It comes with
	// governance.ErrRevoked.
	ErrRevoked = errors.New("asset record signer revoked")
	// ErrConflict: a receipt that contradicts the one stored for its
	// transaction or request.
	ErrConflict = errors.New("conflicting asset receipt")
	// ErrMismatch: a receipt that does not answer the request it is checked
	// against.
	ErrMismatch = errors.New("asset receipt does not answer the request")
	// ErrNotFound: no receipt stored under that transaction id or request
	// hash. It comes with datastore.ErrNotFound.
	ErrNotFound = errors.New("asset receipt not found")
)
