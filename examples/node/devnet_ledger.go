package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/finp2p/go-finp2p/api"
	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/ledger"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/resource"
)

// The steps of the spec's ledger flows: users and their private data, the
// asset transfer routed to the owner's primary node, replication of the
// owner's ledger, and the balance and receipt-validation broadcasts. The
// requester (bank-a) is the spec's Org A, the owner (asset-manager-d, a
// two-node cluster) its Org B.

// transferQuantity is what the transfer moves from alice to bob, of the
// issuedQuantity alice starts with.
const (
	issuedQuantity   = "100"
	transferQuantity = "40"
	// tamperedQuantity replaces transferQuantity in the receipt the
	// validation broadcast must find invalid.
	tamperedQuantity = "41"
)

// createUsers has the requester create two users (POST /v1/users): each a
// secp256k1 key its node keeps, whose compressed public key is the user's
// FinID, with the user's details as the private data of the user resource
// org:101:<FinID>. These resource ids are the accounts the asset moves
// between.
func (d *devnet) createUsers(ctx context.Context) (string, error) {
	r := d.requester
	var shown []string
	for _, name := range []string{"alice", "bob"} {
		details := fmt.Appendf(nil, `{"name": %q, "customer_of": %q, "kyc": "verified", "country": "GB"}`, name, r.org)
		u, err := r.client.CreateUser(ctx, details)
		if err != nil {
			return "", &stepError{log: r.logPath, err: fmt.Errorf("create user %s: %w", name, err)}
		}
		if u.Resource.Org() != r.org || u.Resource.Type() != resource.TypeOwner || len(u.FinID) != 66 {
			return "", fmt.Errorf("user %s is %s with FinID %q, want %s:%s:<66 hex characters>", name, u.Resource, u.FinID, r.org, resource.TypeOwner)
		}
		d.users = append(d.users, devUser{name: name, resource: u.Resource.String(), details: details})
		shown = append(shown, name+" "+shortResourceID(u.Resource.String()))
	}
	return fmt.Sprintf("%s; FinIDs are secp256k1 keys %s keeps, the details its private data", strings.Join(shown, ", "), r.name), nil
}

// transferWithoutDetails sets up the spec's transfer: the owner creates an
// asset on the ledger its primary node executes, issues 100 to alice and
// grants the requester transact. The requester asks for a transfer of 40
// from alice to bob. The owner's primary node has no details of these users
// of another org, so it asks the requester's node for them (private data
// query); the requester's ACL grants it nothing yet, and the owner refuses
// the transfer.
func (d *devnet) transferWithoutDetails(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	owner, req := d.owner, d.requester
	alice, bob := d.users[0], d.users[1]
	id := owner.org + ":" + resource.TypeAsset + ":" + uuid.NewString()
	if _, err := owner.client.CreateAsset(ctx, api.CreateAssetRequest{Asset: id, Decimals: 2, IdempotencyKey: "create-" + id}); err != nil {
		return "", &stepError{log: owner.logPath, err: err}
	}
	if _, err := owner.client.IssueAsset(ctx, id, api.IssueRequest{To: alice.resource, Quantity: issuedQuantity, IdempotencyKey: "issue-" + id}); err != nil {
		return "", &stepError{log: owner.logPath, err: err}
	}
	d.ledgerAsset = id
	if err := d.grant(ctx, owner, id, req.org, "transact"); err != nil {
		return "", err
	}

	var refusal string
	err := poll(ctx, req.name+" to be refused the transfer for want of its users' details", func() (bool, string, error) {
		if err := req.running(); err != nil {
			return false, "", err
		}
		// A new key for every try: a request the owner refused is spent.
		_, err := req.client.Execute(ctx, api.TransactionRequest{
			Operation: ledger.OpTransfer, Asset: id, From: alice.resource, To: bob.resource,
			Quantity: transferQuantity, IdempotencyKey: "devnet-refused-" + uuid.NewString(),
		})
		var p *api.Problem
		switch {
		case err == nil:
			return false, "", &stepError{log: owner.logPath, err: fmt.Errorf("%s executed the transfer without the details of %s's users", owner.name, req.org)}
		case errors.As(err, &p) && p.Kind() == "user-data-unavailable":
			refusal = p.Detail
			return true, "", nil
		case errors.As(err, &p) && p.Status != http.StatusBadGateway:
			return false, "", &stepError{log: req.logPath, err: err}
		}
		return false, err.Error(), nil
	})
	if err != nil {
		return "", err
	}
	// The owner's node says whom it asked and what that org answered.
	if !strings.Contains(refusal, req.org) || !strings.Contains(refusal, resource.ErrAccessDenied.Error()) {
		return "", fmt.Errorf("the refusal does not say %s's ACL refused the details: %s", req.org, refusal)
	}
	return fmt.Sprintf("%s: %s issued to alice, transact granted to %s; for %s's request %s asked %s for alice's details, %s's ACL refused, so did %s: %s",
		shortResourceID(id), issuedQuantity, req.org, req.org, owner.name, req.org, req.org, owner.org, node.ErrUserData), nil
}

// privateDataQuery: the requester grants the owner's org the query right on
// both its users (PUT /v1/resources/{id}/acl); the owner's node then asks
// for alice's details (GET /v1/resources/{id}/private), which its node sends
// to the requester's node under that ACL; the reader's org, granted nothing,
// gets 403.
func (d *devnet) privateDataQuery(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	req, owner, other := d.requester, d.owner, d.reader
	for _, u := range d.users {
		if err := d.grant(ctx, req, u.resource, owner.org, "query"); err != nil {
			return "", err
		}
	}
	alice := d.users[0]
	var got []byte
	err := d.retry(ctx, owner, owner.name+" to get alice's details", func() (bool, string, error) {
		var err error
		got, err = owner.client.QueryPrivateData(ctx, alice.resource)
		return err == nil, "", err
	})
	if err != nil {
		return "", err
	}
	if !bytes.Equal(got, alice.details) {
		return "", fmt.Errorf("%s got alice's details %q, want %q", owner.name, got, alice.details)
	}
	err = d.retry(ctx, other, other.name+" to be refused alice's details", func() (bool, string, error) {
		_, err := other.client.QueryPrivateData(ctx, alice.resource)
		var p *api.Problem
		switch {
		case err == nil:
			return false, "", &stepError{log: req.logPath, err: fmt.Errorf("%s, granted nothing, got alice's details", other.org)}
		case errors.As(err, &p) && p.Status == http.StatusForbidden && p.Kind() == "access-denied":
			return true, "", nil
		}
		return false, "", err
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s grants %s query on alice and bob; %s got alice's details from %s (%d bytes, as created); 403 for %s",
		req.org, owner.org, owner.name, req.name, len(got), other.org), nil
}

// assetTransfer: with the grants in place the requester asks again, with a
// new idempotency key, for the transfer of 40 from alice to bob
// (POST /v1/transactions). The request goes to the owner's primary node,
// never its standby: the primary first gets alice's and bob's details from
// the requester's node (the spec's private data query during a transfer),
// then executes the transfer on its ledger and signs the receipt. The
// requester reads the receipt back (GET /v1/receipts/{txid}) and verifies it
// (POST /v1/receipts/verify); the primary's ledger shows 60 and 40.
func (d *devnet) assetTransfer(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	owner, req := d.owner, d.requester
	alice, bob := d.users[0], d.users[1]
	id := d.ledgerAsset

	// One idempotency key for every try: the owner transfers at most once.
	tr := api.TransactionRequest{Operation: ledger.OpTransfer, Asset: id, From: alice.resource, To: bob.resource,
		Quantity: transferQuantity, IdempotencyKey: "devnet-" + uuid.NewString()}
	var rc api.ReceiptResponse
	var roundTrip time.Duration
	err := d.retry(ctx, req, req.name+" to transfer "+transferQuantity+" of "+id, func() (bool, string, error) {
		start := time.Now()
		var err error
		rc, err = req.client.Execute(ctx, tr)
		roundTrip = time.Since(start)
		return err == nil, "", err
	})
	if err != nil {
		return "", err
	}
	tx := rc.Transaction
	if tx.Operation != ledger.OpTransfer || tx.From != alice.resource || tx.To != bob.resource || tx.Quantity != transferQuantity || tx.LedgerID != embeddedLedger(owner.org) {
		return "", fmt.Errorf("%s's receipt says %s of %s from %s to %s on %s, want transfer of %s from alice to bob on %s",
			req.name, tx.Operation, tx.Quantity, tx.From, tx.To, tx.LedgerID, transferQuantity, embeddedLedger(owner.org))
	}
	switch rc.SignerPeer {
	case owner.peer.String():
	case d.standby.peer.String():
		return "", &stepError{log: d.standby.logPath, err: fmt.Errorf("the receipt was signed by the standby node %s, not the primary node %s", d.standby.name, owner.name)}
	default:
		return "", fmt.Errorf("the receipt was signed by %s (peer %s), want %s's primary node %s", rc.SignerOrg, rc.SignerPeer, owner.org, owner.peer)
	}
	kept, err := req.client.Receipt(ctx, tx.ID)
	if err != nil {
		return "", &stepError{log: req.logPath, err: err}
	}
	if !bytes.Equal(kept.Receipt, rc.Receipt) {
		return "", &stepError{log: req.logPath, err: fmt.Errorf("%s keeps another receipt of %s than the transfer returned", req.name, tx.ID)}
	}
	v, err := req.client.VerifyReceipt(ctx, kept.Receipt)
	if err != nil {
		return "", &stepError{log: req.logPath, err: fmt.Errorf("verify the receipt of %s: %w", tx.ID, err)}
	}
	if !v.Valid || v.Transaction.ID != tx.ID {
		return "", fmt.Errorf("%s verified %+v, want the receipt of %s valid", req.name, v, tx.ID)
	}
	d.receipt = rc

	var got []string
	for _, u := range d.users {
		bal, err := owner.client.Balance(ctx, id, u.resource)
		if err != nil {
			return "", &stepError{log: owner.logPath, err: err}
		}
		got = append(got, bal.Current)
	}
	if got[0] != "60" || got[1] != "40" {
		return "", fmt.Errorf("%s's ledger has %s for alice and %s for bob, want 60 and 40", owner.name, got[0], got[1])
	}
	return fmt.Sprintf("%s moved %s from alice to bob, round trip %s: %s's primary node got both users' details from %s, executed it and signed the receipt (not the standby); receipt kept and verified by %s; balances at %s %s/%s",
		req.org, transferQuantity, roundTook(roundTrip), owner.org, req.org, req.org, owner.name, got[0], got[1]), nil
}

// replicasCaughtUp waits until the standby's and the follower's replicas of
// the owner's ledger (GET /v1/ledgers) reach the primary's version, and
// until the requester finds the three nodes that read that ledger by
// capability (GET /v1/orgs?ledger=...): the nodes a broadcast about it goes
// to.
func (d *devnet) replicasCaughtUp(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	lid := embeddedLedger(d.owner.org)
	primary, err := ledgerInfo(ctx, d.owner, lid)
	if err != nil {
		return "", err
	}
	if primary.Role != "primary" {
		return "", &stepError{log: d.owner.logPath, err: fmt.Errorf("%s has %s as %s, want primary", d.owner.name, lid, primary.Role)}
	}
	want := map[*devnode]string{d.standby: "standby", d.follower: "follower"}
	var shown []string
	for _, n := range []*devnode{d.standby, d.follower} {
		var info node.LedgerInfo
		err := d.retry(ctx, n, fmt.Sprintf("%s's replica of %s to reach version %d", n.name, lid, primary.Version), func() (bool, string, error) {
			var err error
			if info, err = ledgerInfo(ctx, n, lid); err != nil {
				return false, "", err
			}
			if info.Role != want[n] {
				return false, "", &stepError{log: n.logPath, err: fmt.Errorf("%s has %s as %s, want %s", n.name, lid, info.Role, want[n])}
			}
			return info.Version >= primary.Version, fmt.Sprintf("at version %d (primary at %d as last heard) %s", info.Version, info.PrimaryVersion, info.Error), nil
		})
		if err != nil {
			return "", err
		}
		from := d.nodeName(info.Primary.String())
		if from == "" {
			from = "no primary now"
		}
		shown = append(shown, fmt.Sprintf("%s (%s) at %d from %s", n.name, info.Role, info.Version, from))
	}

	// The nodes that read the ledger, found by capability.
	readers := []*devnode{d.owner, d.standby, d.follower}
	var found []string
	err = d.retry(ctx, d.requester, d.requester.name+" to find the nodes of "+lid, func() (bool, string, error) {
		orgs, err := d.requester.client.Orgs(ctx, discovery.Filter{Ledger: lid})
		if err != nil {
			return false, "", err
		}
		found = found[:0]
		for _, o := range orgs {
			for _, nd := range o.Nodes {
				if slices.Contains(nd.Ledgers, lid) {
					found = append(found, d.nodeName(nd.Peer.String()))
				}
			}
		}
		for _, n := range readers {
			if !slices.Contains(found, n.name) {
				return false, fmt.Sprintf("found %v", found), nil
			}
		}
		return len(found) == len(readers), fmt.Sprintf("found %v", found), nil
	})
	if err != nil {
		return "", err
	}
	d.ledgerNodes = readers
	slices.Sort(found)
	return fmt.Sprintf("%s at version %d on %s (primary); %s; %s finds its %d nodes by ledger: %s",
		lid, primary.Version, d.owner.name, strings.Join(shown, ", "), d.requester.org, len(found), strings.Join(found, ", ")), nil
}

// ledgerInfo is what n's API says of ledger id.
func ledgerInfo(ctx context.Context, n *devnode, id string) (node.LedgerInfo, error) {
	infos, err := n.client.Ledgers(ctx)
	if err != nil {
		return node.LedgerInfo{}, err
	}
	for _, l := range infos {
		if l.ID == id {
			return l, nil
		}
	}
	return node.LedgerInfo{}, &stepError{log: n.logPath, err: fmt.Errorf("%s does not read ledger %s", n.name, id)}
}

// balanceBroadcast has the requester read alice's balance by a broadcast
// request to the nodes of the owner's ledger (POST /v1/balances): signed by
// its node, encrypted for them, with a quorum of all of them, so the
// primary, the standby and the follower each answer, from the ledger or
// their replica.
func (d *devnet) balanceBroadcast(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	req, alice := d.requester, d.users[0]
	quorum := len(d.ledgerNodes)
	var res api.BalanceResponse
	err := d.broadcast(ctx, req, "alice's balance by broadcast", func() (api.BroadcastResult, error) {
		var err error
		res, err = req.client.BalanceOf(ctx, api.BalanceRequest{Asset: d.ledgerAsset, Account: alice.resource, Quorum: quorum})
		return res.Broadcast, err
	})
	if err != nil {
		return "", err
	}
	if res.Balance == nil || res.Balance.Current != "60" {
		return "", fmt.Errorf("the broadcast agreed on balance %+v, want alice's current balance 60", res.Balance)
	}
	agreed, err := d.agreedByAll(res.Broadcast)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s asked the %d nodes of %s, quorum %d, encrypted: alice has %s (%s available), agreed by %s at ledger version %d, in %.1f ms",
		req.org, len(res.Broadcast.Asked), embeddedLedger(d.owner.org), res.Broadcast.Quorum, res.Balance.Current, res.Balance.Available,
		agreed, res.LedgerVersion, res.Broadcast.TookMS), nil
}

// receiptValidation has the requester validate its receipt of the transfer
// by a broadcast to the nodes of the receipt's ledger (POST
// /v1/receipts/validate, with the default quorum, a majority): each checks
// that its copy of the ledger holds the transaction with the same details.
// Then the same transaction with the quantity changed, as a forger would
// present it, is found invalid.
func (d *devnet) receiptValidation(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	req := d.requester
	tx := d.receipt.Transaction
	var res api.ValidateReceiptResponse
	err := d.broadcast(ctx, req, "the receipt validated by broadcast", func() (api.BroadcastResult, error) {
		var err error
		res, err = req.client.ValidateReceipt(ctx, api.ValidateReceiptRequest{TransactionID: tx.ID})
		return res.Broadcast, err
	})
	if err != nil {
		return "", err
	}
	if res.Validation == nil || !res.Validation.Valid {
		return "", fmt.Errorf("the ledger's nodes found the receipt of %s not valid: %+v", tx.ID, res.Validation)
	}
	tampered := tx
	tampered.Quantity = tamperedQuantity
	var bad api.ValidateReceiptResponse
	err = d.broadcast(ctx, req, "the tampered receipt validated by broadcast", func() (api.BroadcastResult, error) {
		var err error
		bad, err = req.client.ValidateReceipt(ctx, api.ValidateReceiptRequest{Transaction: &tampered})
		return bad.Broadcast, err
	})
	if err != nil {
		return "", err
	}
	if bad.Validation == nil || bad.Validation.Valid || !strings.Contains(bad.Validation.Reason, "quantity") {
		return "", fmt.Errorf("the ledger's nodes answered %+v for the receipt with quantity %s, want not valid, differing in quantity", bad.Validation, tamperedQuantity)
	}
	return fmt.Sprintf("receipt %s valid, agreed by %s (quorum %d of %d); with quantity %s instead of %s not valid (%s), agreed by %s",
		shortTxID(tx.ID), d.responders(res.Broadcast.AgreedBy), res.Broadcast.Quorum, len(res.Broadcast.Asked),
		tamperedQuantity, transferQuantity, bad.Validation.Reason, d.responders(bad.Broadcast.AgreedBy)), nil
}

// broadcast sends one broadcast through n's API until it reaches its
// quorum: a node may not know every node of the scope yet right after
// they joined, and a replica may be a moment behind. A refusal of the
// request itself fails at once.
func (d *devnet) broadcast(ctx context.Context, n *devnode, what string, send func() (api.BroadcastResult, error)) error {
	return poll(ctx, what, func() (bool, string, error) {
		if err := n.running(); err != nil {
			return false, "", err
		}
		res, err := send()
		var p *api.Problem
		switch {
		case err == nil && res.OK:
			return true, "", nil
		case err == nil:
			return false, res.Resolution, nil
		case errors.As(err, &p) && p.Status != http.StatusBadGateway && p.Kind() != "quorum-too-large" && p.Kind() != "empty-scope":
			return false, "", &stepError{log: n.logPath, err: err}
		}
		return false, err.Error(), nil
	})
}

// agreedByAll checks that every node of the ledger agreed, and names them.
func (d *devnet) agreedByAll(r api.BroadcastResult) (string, error) {
	for _, n := range d.ledgerNodes {
		if !slices.ContainsFunc(r.AgreedBy, func(x api.ResponderJSON) bool { return x.Peer == n.peer.String() }) {
			return "", fmt.Errorf("%s is not among the nodes that agreed (%s); disagreed: %v, failed: %v, not awaited: %v", n.name, d.responders(r.AgreedBy), r.Disagreed, r.Failed, r.NotAwaited)
		}
	}
	return d.responders(r.AgreedBy), nil
}

// responders names the nodes of a broadcast result.
func (d *devnet) responders(rs []api.ResponderJSON) string {
	names := make([]string, 0, len(rs))
	for _, r := range rs {
		name := d.nodeName(r.Peer)
		if name == "" {
			name = r.Org + " " + r.Peer
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// nodeName is the devnet name of the node with peer ID p, or "".
func (d *devnet) nodeName(p string) string {
	for _, n := range d.nodes() {
		if n.peer.String() == p {
			return n.name
		}
	}
	return ""
}

// grant sets the ACL of one of owner's org's resources to give org rights,
// again until it reached every org it concerns.
func (d *devnet) grant(ctx context.Context, owner *devnode, id, org, rights string) error {
	return d.retry(ctx, owner, owner.name+" to hand the ACL of "+id+" to "+org, func() (bool, string, error) {
		acl, err := owner.client.SetACL(ctx, id, api.ACLRequest{Grants: map[string]string{org: rights}})
		if err != nil {
			return false, "", err
		}
		return acl.Warning == "", acl.Warning, nil
	})
}

// shortTxID shortens a ledger transaction id for a step line.
func shortTxID(id string) string {
	if len(id) > 12 {
		return id[:12] + "…"
	}
	return id
}
