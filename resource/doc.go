// Package resource holds what FinP2P says about resources: the resource ID
// (org:type:id, or finp2p://org/type/id), signed resource advertisements, the
// ACL model with signed ACL changes (sealed in libp2p signed envelopes), the
// ACL cache every node keeps so that requests that would be refused are not
// sent, and the owner side's limiter for orgs whose requests keep being
// refused. It imports no libp2p networking code, so it is easy to test.
package resource

//go:generate protoc --go_out=. --go_opt=paths=source_relative pb/acl.proto pb/advertisement.proto
