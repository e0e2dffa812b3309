package resource

import "errors"

// Errors of requests about a resource, so a caller can tell a refusal by
// the owner's ACL from a missing resource or an overloaded owner.
var (
	// ErrAccessDenied: the resource's ACL does not give the org that right.
	ErrAccessDenied = errors.New("access denied by the resource's ACL")
	// ErrRateLimited: the owner drops the org's requests for now, because
	// too many of them were refused.
	ErrRateLimited = errors.New("requests rate-limited by the resource's owner")
)
