// Package governance implements FinP2P's identity and governance: the genesis
// file every node starts from, the X.509 profile (founding root → governance
// CA → member node), certification of node and governance CA requests with
// org FinID issuance, revocation lists, and the trust store that turns a
// certificate chain into a verified Member.
//
// All keys are Ed25519, so a node's certificate key is its libp2p key and its
// peer ID, and every certificate, request and revocation list can be inspected
// and verified with openssl.
package governance

import (
	"errors"
	"fmt"
)

// Role is the part a certified node plays in the network.
type Role string

// The roles a node certificate can carry.
const (
	// RoleFounding is a founding node: its leaf is signed directly by its
	// founding root.
	RoleFounding Role = "founding"
	// RoleGovernance is a governance node: its leaf is signed by its own
	// governance CA, or by a founding root.
	RoleGovernance Role = "governance"
	// RoleMember is an ordinary member node.
	RoleMember Role = "member"
)

// ParseRole parses a role name as written in certificates and configuration.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleFounding, RoleGovernance, RoleMember:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (want %q, %q or %q)", s, RoleFounding, RoleGovernance, RoleMember)
}

// String returns the role name.
func (r Role) String() string { return string(r) }

// Sentinel errors. Errors returned by this package wrap one of them where it
// applies, so callers can test with errors.Is; the wrapping error says which
// certificate, file or field was at fault.
var (
	// ErrExpired: a certificate's NotAfter is before the verification time.
	ErrExpired = errors.New("certificate expired")
	// ErrNotYetValid: a certificate's NotBefore is after the verification time.
	ErrNotYetValid = errors.New("certificate not yet valid")
	// ErrUntrustedChain: a chain does not lead to a genesis founding root, or
	// breaks the FinP2P certificate profile.
	ErrUntrustedChain = errors.New("untrusted certificate chain")
	// ErrRevoked: a certificate of the chain is on its issuer's revocation list.
	ErrRevoked = errors.New("certificate revoked")
	// ErrKeyMismatch: a key does not match the certificate, request or peer
	// it should belong to.
	ErrKeyMismatch = errors.New("key mismatch")
	// ErrBadCSR: a certificate signing request is malformed, unsigned or
	// does not follow the FinP2P profile.
	ErrBadCSR = errors.New("bad certificate signing request")
	// ErrNoRoots: no founding root certificates were given.
	ErrNoRoots = errors.New("no founding root certificates")
	// ErrRoleNotAllowed: the authority or chain may not certify this role or
	// kind of certificate.
	ErrRoleNotAllowed = errors.New("role not allowed")
	// ErrBadGenesis: the genesis file is malformed or inconsistent.
	ErrBadGenesis = errors.New("bad genesis")
	// ErrBadCRL: a certificate revocation list is malformed or its signature
	// does not verify.
	ErrBadCRL = errors.New("bad certificate revocation list")
	// ErrBadKeyFile: a key file is malformed, holds the wrong kind of key or
	// has unsafe permissions.
	ErrBadKeyFile = errors.New("bad key file")
)
