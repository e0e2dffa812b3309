package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	"github.com/ipfs/go-datastore/query"

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
	if err := n.adoptReplica(ctx, id); err != nil {
		return fmt.Errorf("embedded ledger: %w", err)
	}
	l, err := embedded.Open(ctx, namespace.Wrap(n.ds, ledgerPrefix), id)
	if err != nil {
		return fmt.Errorf("embedded ledger: %w", err)
	}
	n.ledger = n.metrics.ledger(signalingLedger{Ledger: l, changed: changed})
	return nil
}

// ledgerPrefix is where the node keeps the embedded ledger it executes.
var ledgerPrefix = datastore.NewKey("/ledger")

// replicaPrefix is where the node keeps its replica of ledger id.
func replicaPrefix(id string) datastore.Key {
	return datastore.NewKey("/replicas/" + hex.EncodeToString([]byte(id)))
}

// adoptReplica promotes a standby node: started to execute its org's
// ledger id while it holds no ledger of its own but a replica of id (it was
// the cluster's standby), it moves the replica to where its own ledger is
// kept, in one batch, and goes on from the replica's version. The operator
// promotes a standby only once the old primary is gone for good (stopped
// and reconfigured as a standby, or its certificate revoked): two nodes
// executing one ledger would part ways.
func (n *Node) adoptReplica(ctx context.Context, id string) error {
	if has, err := hasKeys(ctx, n.ds, ledgerPrefix); err != nil || has {
		return err
	}
	from := replicaPrefix(id)
	res, err := n.ds.Query(ctx, query.Query{Prefix: from.String()})
	if err != nil {
		return fmt.Errorf("read the replica of %s: %w", id, err)
	}
	entries, err := res.Rest()
	if err != nil {
		return fmt.Errorf("read the replica of %s: %w", id, err)
	}
	if len(entries) == 0 {
		return nil
	}
	b, err := n.ds.Batch(ctx)
	if err != nil {
		return err
	}
	for _, e := range entries {
		k := datastore.NewKey(e.Key)
		rel := strings.TrimPrefix(k.String(), from.String())
		if err := b.Put(ctx, ledgerPrefix.Child(datastore.NewKey(rel)), e.Value); err != nil {
			return err
		}
		if err := b.Delete(ctx, k); err != nil {
			return err
		}
	}
	if err := b.Commit(ctx); err != nil {
		return fmt.Errorf("adopt the replica of %s: %w", id, err)
	}
	if err := n.ds.Sync(ctx, datastore.NewKey("/")); err != nil {
		return fmt.Errorf("adopt the replica of %s: %w", id, err)
	}
	n.log.Warn("promoted: this node now executes its org's ledger, from the replica it kept as a standby", "ledger", id, "keys", len(entries))
	return nil
}

// hasKeys reports whether ds holds any key under prefix.
func hasKeys(ctx context.Context, ds datastore.Datastore, prefix datastore.Key) (bool, error) {
	res, err := ds.Query(ctx, query.Query{Prefix: prefix.String(), KeysOnly: true, Limit: 1})
	if err != nil {
		return false, err
	}
	entries, err := res.Rest()
	return len(entries) > 0, err
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
