// Package broadcast holds FinP2P's broadcast requests and their responses:
// the signed Request an origin node sends to a Scope of nodes (all members,
// a group of orgs, the primary nodes of one ledger, the closest nodes or the
// rendezvous cluster), the signed Response each responder sends back, the
// checks on both (RequestVerifier, ResponseVerifier) and the Collector with
// which the origin gathers responses, drops the ones it must not count and
// resolves inconsistent answers into a Result.
//
// Requests and responses are sealed in libp2p signed envelopes carrying the
// signer's certificate chain, like asset requests and receipts. The package
// imports no libp2p networking code; the topics and streams that carry them
// live elsewhere.
package broadcast

//go:generate protoc --go_out=. --go_opt=paths=source_relative pb/broadcast.proto
