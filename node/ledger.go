package node

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"

	"github.com/finp2p/go-finp2p/ledger"
	"github.com/finp2p/go-finp2p/ledger/embedded"
	"github.com/finp2p/go-finp2p/resource"
)

// openLedger opens the ledger this node executes its org's asset
// transactions on: the one given with WithLedger, else the embedded ledger
// in the node's datastore.
//
// Every committed mutation wakes the replication streams of its followers.
//
// A node whose config follows its own org's embedded ledger is a standby
// node of a cluster: it executes no ledger, keeps a replica of the one its
// org's primary node executes, and leaves asset transactions to that node.
func (n *Node) openLedger(ctx context.Context) error {
	changed := newSignal()
	n.repl = newReplicas(n, changed)
	n.standbyOf = ""
	if n.cfg.ledger != nil {
		n.ledger = n.metrics.ledger(signalingLedger{Ledger: n.cfg.ledger, changed: changed})
		return nil
	}
	id := embeddedLedgerID(n.self.OrgID)
	if slices.Contains(n.cfg.FollowLedgers, id) {
		n.standbyOf = id
		n.log.Info("standby node: keeps a replica of its org's ledger and executes none", "ledger", id)
		return nil
	}
	l, err := embedded.Open(ctx, namespace.Wrap(n.ds, datastore.NewKey("/ledger")), id)
	if err != nil {
		return fmt.Errorf("embedded ledger: %w", err)
	}
	n.ledger = n.metrics.ledger(signalingLedger{Ledger: l, changed: changed})
	return nil
}

// embeddedLedgerID is the id of an org's embedded ledger.
func embeddedLedgerID(org string) string { return org + "/embedded" }

// ErrStandby is returned for what only the node executing a ledger does,
// asked of a standby node of the same org.
var ErrStandby = errors.New("standby node: its org's primary node executes the ledger")

// Ledger is the ledger this node executes its org's asset transactions on;
// nil for a standby node or a node not started.
func (n *Node) Ledger() ledger.Ledger { return n.ledger }

// Standby reports whether the node is a standby node of its org's cluster,
// and which ledger it keeps a replica of.
func (n *Node) Standby() (string, bool) { return n.standbyOf, n.standbyOf != "" }

// ownAsset checks that id is one of this org's assets.
func (n *Node) ownAsset(op string, id resource.ID) error {
	if n.standbyOf != "" {
		return fmt.Errorf("%s %s: %w; this node keeps a replica of %s, ask the node that executes it", op, id, ErrStandby, n.standbyOf)
	}
	if n.ledger == nil {
		return errors.New(op + ": the node is not started")
	}
	if id.Org() != n.self.OrgID {
		return fmt.Errorf("%s %s: %w: it belongs to org %q, this node is of org %q", op, id, resource.ErrNotOwner, id.Org(), n.self.OrgID)
	}
	return nil
}

// CreateAsset creates one of this org's assets on its ledger, with the
// number of decimals its quantities have.
func (n *Node) CreateAsset(ctx context.Context, id resource.ID, decimals int, idempotencyKey string) (ledger.Transaction, error) {
	if err := n.ownAsset("create asset", id); err != nil {
		return ledger.Transaction{}, err
	}
	return n.ledger.CreateAsset(ctx, ledger.CreateAsset{IdempotencyKey: idempotencyKey, Asset: id.String(), Decimals: decimals})
}

// Issue creates quantity of one of this org's assets in account to (an
// account of any org: the asset's ledger is this org's).
func (n *Node) Issue(ctx context.Context, id resource.ID, to, quantity, idempotencyKey string) (ledger.Transaction, error) {
	if err := n.ownAsset("issue", id); err != nil {
		return ledger.Transaction{}, err
	}
	return n.ledger.Issue(ctx, ledger.Issue{IdempotencyKey: idempotencyKey, Asset: id.String(), To: to, Quantity: quantity})
}

// Balance reads an account's balance of one of this org's assets.
func (n *Node) Balance(ctx context.Context, id resource.ID, account string) (ledger.Balance, error) {
	if err := n.ownAsset("balance", id); err != nil {
		return ledger.Balance{}, err
	}
	return n.ledger.Balance(ctx, id.String(), account)
}
