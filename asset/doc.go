// Package asset holds FinP2P's asset transaction requests and receipts: the
// signed Request a member org's node sends to the primary node of the
// asset's owner org, the checks that node makes before any work
// (RequestVerifier, ReplayGuard), the signed Receipt it answers with, which
// the requester verifies offline at any time later (ReceiptVerifier) and
// keeps durably (ReceiptStore).
//
// Requests and receipts are sealed in libp2p signed envelopes carrying the
// signer's certificate chain, like resource advertisements and ACLs. The
// package imports no libp2p networking code; the stream protocol that
// carries them lives elsewhere.
package asset

//go:generate protoc --go_out=. --go_opt=paths=source_relative pb/asset.proto
