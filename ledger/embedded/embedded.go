// Package embedded is the default ledger.Ledger: a hash-chained journal and
// the balances, holds and assets it produced, kept in the node's datastore.
//
// Every transaction gets the next version and a hash chaining it to the
// previous one, and is written with all the state it changed in one
// datastore batch, so a crash leaves all of an operation or none of it (the
// datastore's batches must be atomic, as pebble's are). By
// default the datastore is synced before an operation returns, so nothing
// acknowledged is lost to a crash. Only one Ledger may use a datastore at a
// time.
//
// Operations run one at a time, but they do not hold the ledger while they
// sync: each commits its batch, releases the ledger to the next one and
// then waits for a sync that started after its commit, so operations that
// commit while a sync runs share the next one (group commit). Reads, too,
// answer only once what they read is durable, and the head, the version
// and the journal a Ledger shows end at the last durable transaction.
//
// A replica (WithReadOnly) keeps a copy of another node's ledger: it refuses
// every mutation, and Apply appends the primary's journal entries to it one
// by one, re-executing each against the copy's state and checking that it
// produces the very same transaction, so the copy's journal, state and hash
// chain are the primary's.
package embedded

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"

	"github.com/finp2p/go-finp2p/internal/groupsync"
	"github.com/finp2p/go-finp2p/ledger"
)

// ErrCorrupt: the stored journal or state is inconsistent: a broken hash
// link, a head that disagrees with the journal, or state the journal does
// not account for.
var ErrCorrupt = errors.New("ledger store corrupt")

// Option configures Open.
type Option func(*config) error

type config struct {
	clock    func() time.Time
	sync     bool
	readOnly bool
}

// WithClock sets the clock that timestamps transactions (default time.Now).
func WithClock(clock func() time.Time) Option {
	return func(c *config) error {
		if clock == nil {
			return errors.New("WithClock: nil clock")
		}
		c.clock = clock
		return nil
	}
}

// WithSync sets whether each operation syncs the datastore before it returns
// (default true). Turn it off only where losing the last acknowledged
// operations to a crash is acceptable, or where the datastore already
// syncs every write.
func WithSync(sync bool) Option {
	return func(c *config) error {
		c.sync = sync
		return nil
	}
}

// WithReadOnly opens the ledger as a replica of its primary: every mutating
// call fails with ErrReadOnly, and only Apply adds to it.
func WithReadOnly() Option {
	return func(c *config) error {
		c.readOnly = true
		return nil
	}
}

// Ledger is a ledger.Ledger over a datastore. It is safe for concurrent use;
// mutations are serialised.
type Ledger struct {
	ds       datastore.Batching
	id       string
	clock    func() time.Time
	sync     bool
	readOnly bool

	mu   sync.RWMutex // held for writing by mutations, for reading by reads
	head headRecord   // the committed head; guarded by mu
	// durable tracks which commits are synced and the head of the last
	// synced one; nil without sync. Commits record themselves in it under
	// mu, so in version order.
	durable *groupsync.Syncer[headRecord]
	// applying is the primary's journal entry Apply is re-executing, nil
	// otherwise; guarded by mu. While it is set, the operations take the
	// transaction id and timestamp from it, and commit compares what they
	// produce with it instead of accepting it.
	applying *ledger.Transaction
}

var _ ledger.Ledger = (*Ledger)(nil)

// Open opens the ledger id kept in ds, an empty datastore for a new ledger.
// It checks that the stored head and the last journal entry agree and
// repairs nothing: a mismatch is an error naming the version. The caller
// keeps ownership of ds and closes it after it is done with the Ledger.
func Open(ctx context.Context, ds datastore.Batching, id string, opts ...Option) (*Ledger, error) {
	if ds == nil {
		return nil, errors.New("embedded ledger: nil datastore")
	}
	if err := ledger.CheckID("ledger id", id); err != nil {
		return nil, fmt.Errorf("embedded ledger: %w", err)
	}
	cfg := config{clock: time.Now, sync: true}
	for _, opt := range opts {
		if err := opt(&cfg); err != nil {
			return nil, fmt.Errorf("embedded ledger: %w", err)
		}
	}
	l := &Ledger{ds: ds, id: id, clock: cfg.clock, sync: cfg.sync, readOnly: cfg.readOnly}
	head, err := l.loadHead(ctx)
	if err != nil {
		return nil, fmt.Errorf("embedded ledger %q: open: %w", id, err)
	}
	l.head = head
	if l.sync {
		l.durable = groupsync.New(func() error {
			return ds.Sync(context.Background(), datastore.NewKey("/"))
		}, head)
	}
	return l, nil
}

// loadHead reads the head and checks it against the journal: the entry at
// the head's version exists, has the head's hash and is of this ledger, and
// no entry follows it.
func (l *Ledger) loadHead(ctx context.Context) (headRecord, error) {
	var head headRecord
	err := getJSON(ctx, l.ds, headKey, &head)
	switch {
	case errors.Is(err, datastore.ErrNotFound):
		head = headRecord{Version: 0, Hash: genesisHash}
	case err != nil:
		return headRecord{}, err
	}
	if head.Version > 0 {
		tx, err := l.journalEntry(ctx, head.Version)
		if err != nil {
			return headRecord{}, fmt.Errorf("head is version %d: %w", head.Version, err)
		}
		if tx.Hash != head.Hash {
			return headRecord{}, fmt.Errorf("%w: head hash %s differs from journal version %d hash %s",
				ErrCorrupt, head.Hash, head.Version, tx.Hash)
		}
		if tx.LedgerID != l.id {
			return headRecord{}, fmt.Errorf("%w: the datastore holds ledger %q", ledger.ErrBadRequest, tx.LedgerID)
		}
	}
	switch _, err := l.ds.Get(ctx, journalKey(head.Version+1)); {
	case err == nil:
		return headRecord{}, fmt.Errorf("%w: journal has version %d beyond head version %d",
			ErrCorrupt, head.Version+1, head.Version)
	case !errors.Is(err, datastore.ErrNotFound):
		return headRecord{}, fmt.Errorf("read %s: %w", journalKey(head.Version+1), err)
	}
	return head, nil
}

// ID returns the ledger's id.
func (l *Ledger) ID() string { return l.id }

// CreateAsset creates an asset with no supply.
func (l *Ledger) CreateAsset(ctx context.Context, req ledger.CreateAsset) (ledger.Transaction, error) {
	return l.mutate(ctx, ledger.OpCreateAsset, req.Validate(), func() (ledger.Transaction, error) {
		return l.createAsset(ctx, req)
	})
}

func (l *Ledger) createAsset(ctx context.Context, req ledger.CreateAsset) (ledger.Transaction, error) {
	r := request{Operation: ledger.OpCreateAsset, Asset: req.Asset, Decimals: req.Decimals}
	if tx, done, err := l.replay(ctx, req.IdempotencyKey, r); done || err != nil {
		return tx, err
	}
	switch _, err := l.asset(ctx, req.Asset); {
	case err == nil:
		return ledger.Transaction{}, fmt.Errorf("%w: %q", ledger.ErrAssetExists, req.Asset)
	case !errors.Is(err, ledger.ErrUnknownAsset):
		return ledger.Transaction{}, err
	}
	w := writes{}
	w.put(assetKey(req.Asset), assetRecord{Decimals: req.Decimals, Supply: "0"})
	return l.commit(ctx, w, req.IdempotencyKey, r, ledger.Transaction{
		Operation: ledger.OpCreateAsset,
		Asset:     req.Asset,
		Decimals:  req.Decimals,
	})
}

// Issue creates supply in an account.
func (l *Ledger) Issue(ctx context.Context, req ledger.Issue) (ledger.Transaction, error) {
	return l.mutate(ctx, ledger.OpIssue, req.Validate(), func() (ledger.Transaction, error) {
		return l.issue(ctx, req)
	})
}

func (l *Ledger) issue(ctx context.Context, req ledger.Issue) (ledger.Transaction, error) {
	a, q, err := l.assetQuantity(ctx, req.Asset, req.Quantity)
	if err != nil {
		return ledger.Transaction{}, err
	}
	r := request{Operation: ledger.OpIssue, Asset: req.Asset, To: req.To, Quantity: a.format(q)}
	if tx, done, err := l.replay(ctx, req.IdempotencyKey, r); done || err != nil {
		return tx, err
	}
	supply := new(big.Int).Add(a.supply, q)
	if limit := maxUnits(a.decimals); supply.Cmp(limit) >= 0 {
		return ledger.Transaction{}, fmt.Errorf("%w: issuing %s would take the supply of %q past %d integer digits",
			ledger.ErrBadQuantity, r.Quantity, req.Asset, ledger.MaxIntegerDigits)
	}
	to, err := l.balance(ctx, req.Asset, req.To)
	if err != nil {
		return ledger.Transaction{}, err
	}
	to.available.Add(to.available, q)
	a.supply = supply
	w := writes{}
	w.putAsset(req.Asset, a)
	w.putBalance(req.Asset, req.To, to)
	return l.commit(ctx, w, req.IdempotencyKey, r, ledger.Transaction{
		Operation: ledger.OpIssue,
		Asset:     req.Asset,
		To:        req.To,
		Quantity:  r.Quantity,
	})
}

// Transfer moves available balance between two accounts.
func (l *Ledger) Transfer(ctx context.Context, req ledger.Transfer) (ledger.Transaction, error) {
	return l.mutate(ctx, ledger.OpTransfer, req.Validate(), func() (ledger.Transaction, error) {
		return l.transfer(ctx, req)
	})
}

func (l *Ledger) transfer(ctx context.Context, req ledger.Transfer) (ledger.Transaction, error) {
	a, q, err := l.assetQuantity(ctx, req.Asset, req.Quantity)
	if err != nil {
		return ledger.Transaction{}, err
	}
	r := request{Operation: ledger.OpTransfer, Asset: req.Asset, From: req.From, To: req.To, Quantity: a.format(q)}
	if tx, done, err := l.replay(ctx, req.IdempotencyKey, r); done || err != nil {
		return tx, err
	}
	from, err := l.debitable(ctx, a, req.Asset, req.From, q)
	if err != nil {
		return ledger.Transaction{}, err
	}
	to, err := l.balance(ctx, req.Asset, req.To)
	if err != nil {
		return ledger.Transaction{}, err
	}
	from.available.Sub(from.available, q)
	to.available.Add(to.available, q)
	w := writes{}
	w.putBalance(req.Asset, req.From, from)
	w.putBalance(req.Asset, req.To, to)
	return l.commit(ctx, w, req.IdempotencyKey, r, ledger.Transaction{
		Operation: ledger.OpTransfer,
		Asset:     req.Asset,
		From:      req.From,
		To:        req.To,
		Quantity:  r.Quantity,
	})
}

// Redeem destroys available balance, reducing the asset's supply.
func (l *Ledger) Redeem(ctx context.Context, req ledger.Redeem) (ledger.Transaction, error) {
	return l.mutate(ctx, ledger.OpRedeem, req.Validate(), func() (ledger.Transaction, error) {
		return l.redeem(ctx, req)
	})
}

func (l *Ledger) redeem(ctx context.Context, req ledger.Redeem) (ledger.Transaction, error) {
	a, q, err := l.assetQuantity(ctx, req.Asset, req.Quantity)
	if err != nil {
		return ledger.Transaction{}, err
	}
	r := request{Operation: ledger.OpRedeem, Asset: req.Asset, From: req.From, Quantity: a.format(q)}
	if tx, done, err := l.replay(ctx, req.IdempotencyKey, r); done || err != nil {
		return tx, err
	}
	from, err := l.debitable(ctx, a, req.Asset, req.From, q)
	if err != nil {
		return ledger.Transaction{}, err
	}
	from.available.Sub(from.available, q)
	a.supply = new(big.Int).Sub(a.supply, q)
	w := writes{}
	w.putAsset(req.Asset, a)
	w.putBalance(req.Asset, req.From, from)
	return l.commit(ctx, w, req.IdempotencyKey, r, ledger.Transaction{
		Operation: ledger.OpRedeem,
		Asset:     req.Asset,
		From:      req.From,
		Quantity:  r.Quantity,
	})
}

// Hold sets available balance aside; the transaction's ID is the hold id.
func (l *Ledger) Hold(ctx context.Context, req ledger.Hold) (ledger.Transaction, error) {
	return l.mutate(ctx, ledger.OpHold, req.Validate(), func() (ledger.Transaction, error) {
		return l.hold(ctx, req)
	})
}

func (l *Ledger) hold(ctx context.Context, req ledger.Hold) (ledger.Transaction, error) {
	a, q, err := l.assetQuantity(ctx, req.Asset, req.Quantity)
	if err != nil {
		return ledger.Transaction{}, err
	}
	r := request{Operation: ledger.OpHold, Asset: req.Asset, From: req.From, Quantity: a.format(q)}
	if tx, done, err := l.replay(ctx, req.IdempotencyKey, r); done || err != nil {
		return tx, err
	}
	from, err := l.debitable(ctx, a, req.Asset, req.From, q)
	if err != nil {
		return ledger.Transaction{}, err
	}
	from.available.Sub(from.available, q)
	from.held.Add(from.held, q)
	tx := ledger.Transaction{
		ID:        l.newTxID(),
		Operation: ledger.OpHold,
		Asset:     req.Asset,
		From:      req.From,
		Quantity:  r.Quantity,
	}
	w := writes{}
	w.putBalance(req.Asset, req.From, from)
	w.put(holdKey(tx.ID), holdRecord{Asset: req.Asset, From: req.From, Quantity: q.String()})
	return l.commit(ctx, w, req.IdempotencyKey, r, tx)
}

// Release settles an open hold: its quantity leaves the holder's held
// balance and is credited to the request's To, which must not be the holder.
func (l *Ledger) Release(ctx context.Context, req ledger.Release) (ledger.Transaction, error) {
	return l.mutate(ctx, ledger.OpRelease, req.Validate(), func() (ledger.Transaction, error) {
		return l.closeHold(ctx, ledger.OpRelease, req.IdempotencyKey, req.HoldID, req.To)
	})
}

// Rollback cancels an open hold: its quantity returns to the holder's
// available balance.
func (l *Ledger) Rollback(ctx context.Context, req ledger.Rollback) (ledger.Transaction, error) {
	return l.mutate(ctx, ledger.OpRollback, req.Validate(), func() (ledger.Transaction, error) {
		return l.closeHold(ctx, ledger.OpRollback, req.IdempotencyKey, req.HoldID, "")
	})
}

// closeHold releases (op OpRelease, to the account to) or rolls back a hold.
func (l *Ledger) closeHold(ctx context.Context, op ledger.Operation, key, holdID, to string) (ledger.Transaction, error) {
	r := request{Operation: op, HoldID: holdID, To: to}
	if tx, done, err := l.replay(ctx, key, r); done || err != nil {
		return tx, err
	}
	var h holdRecord
	switch err := getJSON(ctx, l.ds, holdKey(holdID), &h); {
	case errors.Is(err, datastore.ErrNotFound):
		return ledger.Transaction{}, fmt.Errorf("%w: %q", ledger.ErrUnknownHold, holdID)
	case err != nil:
		return ledger.Transaction{}, err
	}
	if h.Closed != "" {
		return ledger.Transaction{}, fmt.Errorf("%w: hold %q was closed by %s transaction %s",
			ledger.ErrHoldClosed, holdID, h.Closed, h.ClosedBy)
	}
	if op == ledger.OpRelease && to == h.From {
		return ledger.Transaction{}, fmt.Errorf("%w: release of hold %q to its holder %q; roll it back instead",
			ledger.ErrBadRequest, holdID, to)
	}
	a, err := l.asset(ctx, h.Asset)
	if err != nil {
		return ledger.Transaction{}, fmt.Errorf("hold %q: %w", holdID, err)
	}
	q, err := parseUnits(h.Quantity)
	if err != nil {
		return ledger.Transaction{}, fmt.Errorf("hold %q: %w", holdID, err)
	}
	from, err := l.balance(ctx, h.Asset, h.From)
	if err != nil {
		return ledger.Transaction{}, err
	}
	if from.held.Cmp(q) < 0 {
		return ledger.Transaction{}, fmt.Errorf("%w: hold %q of %s exceeds the %s held by %q",
			ErrCorrupt, holdID, a.format(q), a.format(from.held), h.From)
	}
	from.held.Sub(from.held, q)
	tx := ledger.Transaction{
		ID:        l.newTxID(),
		Operation: op,
		Asset:     h.Asset,
		From:      h.From,
		To:        to,
		Quantity:  a.format(q),
		HoldID:    holdID,
	}
	w := writes{}
	if op == ledger.OpRelease {
		recipient, err := l.balance(ctx, h.Asset, to)
		if err != nil {
			return ledger.Transaction{}, err
		}
		recipient.available.Add(recipient.available, q)
		w.putBalance(h.Asset, to, recipient)
	} else {
		from.available.Add(from.available, q)
	}
	w.putBalance(h.Asset, h.From, from)
	h.Closed, h.ClosedBy = op, tx.ID
	w.put(holdKey(holdID), h)
	return l.commit(ctx, w, key, r, tx)
}

// Balance returns an account's balance of an asset; an account the ledger
// never credited has a zero balance.
func (l *Ledger) Balance(ctx context.Context, asset, account string) (ledger.Balance, error) {
	if err := ledger.CheckID("asset", asset); err != nil {
		return ledger.Balance{}, fmt.Errorf("ledger balance: %w", err)
	}
	if err := ledger.CheckID("account", account); err != nil {
		return ledger.Balance{}, fmt.Errorf("ledger balance: %w", err)
	}
	l.mu.RLock()
	a, err := l.asset(ctx, asset)
	if err != nil {
		l.mu.RUnlock()
		return ledger.Balance{}, fmt.Errorf("ledger balance: %w", err)
	}
	b, err := l.balance(ctx, asset, account)
	ticket := l.lastCommit()
	l.mu.RUnlock()
	if err != nil {
		return ledger.Balance{}, fmt.Errorf("ledger balance: %w", err)
	}
	if err := l.awaitDurable(ticket); err != nil {
		return ledger.Balance{}, fmt.Errorf("ledger balance: sync: %w", err)
	}
	return ledger.Balance{
		Asset:     asset,
		Account:   account,
		Current:   a.format(new(big.Int).Add(b.available, b.held)),
		Available: a.format(b.available),
		Held:      a.format(b.held),
	}, nil
}

// Supply returns an asset's supply: issued minus redeemed.
func (l *Ledger) Supply(ctx context.Context, asset string) (string, error) {
	if err := ledger.CheckID("asset", asset); err != nil {
		return "", fmt.Errorf("ledger supply: %w", err)
	}
	l.mu.RLock()
	a, err := l.asset(ctx, asset)
	ticket := l.lastCommit()
	l.mu.RUnlock()
	if err != nil {
		return "", fmt.Errorf("ledger supply: %w", err)
	}
	if err := l.awaitDurable(ticket); err != nil {
		return "", fmt.Errorf("ledger supply: sync: %w", err)
	}
	return a.format(a.supply), nil
}

// Transaction returns the transaction with that id.
func (l *Ledger) Transaction(ctx context.Context, id string) (ledger.Transaction, error) {
	if id == "" {
		return ledger.Transaction{}, fmt.Errorf("ledger transaction: %w: missing id", ledger.ErrBadRequest)
	}
	l.mu.RLock()
	tx, err := l.transaction(ctx, id)
	ticket := l.lastCommit()
	l.mu.RUnlock()
	if err != nil {
		return ledger.Transaction{}, err
	}
	if err := l.awaitDurable(ticket); err != nil {
		return ledger.Transaction{}, fmt.Errorf("ledger transaction %q: sync: %w", id, err)
	}
	return tx, nil
}

// transaction is Transaction under the read lock.
func (l *Ledger) transaction(ctx context.Context, id string) (ledger.Transaction, error) {
	b, err := l.ds.Get(ctx, txKey(id))
	switch {
	case errors.Is(err, datastore.ErrNotFound):
		return ledger.Transaction{}, fmt.Errorf("ledger transaction: %w: %q", ledger.ErrUnknownTransaction, id)
	case err != nil:
		return ledger.Transaction{}, fmt.Errorf("ledger transaction %q: read: %w", id, err)
	}
	version, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return ledger.Transaction{}, fmt.Errorf("ledger transaction %q: %w: bad version %q", id, ErrCorrupt, b)
	}
	tx, err := l.journalEntry(ctx, version)
	if err != nil {
		return ledger.Transaction{}, fmt.Errorf("ledger transaction %q: %w", id, err)
	}
	return tx, nil
}

// Status tells whether an operation with that idempotency key committed; an
// unknown key is not an error but an operation not done.
func (l *Ledger) Status(ctx context.Context, idempotencyKey string) (ledger.OperationStatus, error) {
	if err := ledger.CheckIdempotencyKey(idempotencyKey); err != nil {
		return ledger.OperationStatus{}, fmt.Errorf("ledger status: %w", err)
	}
	l.mu.RLock()
	st, err := l.status(ctx, idempotencyKey)
	ticket := l.lastCommit()
	l.mu.RUnlock()
	if err != nil {
		return ledger.OperationStatus{}, err
	}
	if err := l.awaitDurable(ticket); err != nil {
		return ledger.OperationStatus{}, fmt.Errorf("ledger status: sync: %w", err)
	}
	return st, nil
}

// status is Status under the read lock.
func (l *Ledger) status(ctx context.Context, idempotencyKey string) (ledger.OperationStatus, error) {
	st := ledger.OperationStatus{IdempotencyKey: idempotencyKey}
	var rec idemRecord
	switch err := getJSON(ctx, l.ds, idemKey(idempotencyKey), &rec); {
	case errors.Is(err, datastore.ErrNotFound):
		return st, nil
	case err != nil:
		return ledger.OperationStatus{}, fmt.Errorf("ledger status: %w", err)
	}
	tx, err := l.journalEntry(ctx, rec.Version)
	if err != nil {
		return ledger.OperationStatus{}, fmt.Errorf("ledger status: %w", err)
	}
	st.Done, st.Transaction = true, &tx
	return st, nil
}

// Version returns the version of the last transaction, 0 when there is
// none; with sync, of the last synced one.
func (l *Ledger) Version(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return l.durableHead().Version, nil
}

// mutate runs the mutation fn of a request that passed validation (invalid
// is nil) under the write lock, then, with the lock released, waits until
// the transaction it returns is durable; it prefixes an error with the
// operation. A failed mutation returns the zero Transaction. A replica runs
// none.
func (l *Ledger) mutate(ctx context.Context, op ledger.Operation, invalid error, fn func() (ledger.Transaction, error)) (ledger.Transaction, error) {
	err := invalid
	if l.readOnly {
		err = fmt.Errorf("%w: %q changes only by applying its primary's journal", ErrReadOnly, l.id)
	}
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		var tx ledger.Transaction
		var ticket uint64
		l.mu.Lock()
		tx, err = fn()
		if err == nil && l.durable != nil {
			// The last commit: this transaction's, or for a replayed
			// idempotency key one at or after the transaction found.
			ticket = l.durable.Last()
		}
		l.mu.Unlock()
		if err == nil {
			if err = l.awaitDurable(ticket); err == nil {
				return tx, nil
			}
			// The batch is committed; a retry with the same key returns tx.
			err = fmt.Errorf("sync after committing version %d (transaction %s): %w", tx.Version, tx.ID, err)
		}
	}
	return ledger.Transaction{}, fmt.Errorf("ledger %s: %w", op, err)
}

// lastCommit returns the ticket of the last commit, for a reader to wait
// for with awaitDurable; 0 without sync. The caller holds l.mu.
func (l *Ledger) lastCommit() uint64 {
	if l.durable == nil {
		return 0
	}
	return l.durable.Last()
}

// awaitDurable returns once the commit with ticket t is synced. The caller does not hold l.mu, so that others commit meanwhile
// and share the sync.
func (l *Ledger) awaitDurable(t uint64) error {
	if l.durable == nil {
		return nil
	}
	return l.durable.Wait(t)
}

// durableHead returns the head of the last synced commit, or the committed
// head without sync.
func (l *Ledger) durableHead() headRecord {
	if l.durable != nil {
		return l.durable.Durable()
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.head
}

// asset is an asset record in memory.
type asset struct {
	decimals int
	supply   units
}

func (a asset) format(u units) string {
	return ledger.NewAmount(u).String(a.decimals)
}

// maxUnits is the first quantity, in base units, with more than
// MaxIntegerDigits integer digits.
func maxUnits(decimals int) units {
	return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(ledger.MaxIntegerDigits+decimals)), nil)
}

func (l *Ledger) asset(ctx context.Context, id string) (asset, error) {
	var rec assetRecord
	switch err := getJSON(ctx, l.ds, assetKey(id), &rec); {
	case errors.Is(err, datastore.ErrNotFound):
		return asset{}, fmt.Errorf("%w: %q", ledger.ErrUnknownAsset, id)
	case err != nil:
		return asset{}, err
	}
	supply, err := parseUnits(rec.Supply)
	if err != nil {
		return asset{}, fmt.Errorf("asset %q: %w", id, err)
	}
	return asset{decimals: rec.Decimals, supply: supply}, nil
}

// assetQuantity loads an asset and parses a non-zero quantity of it.
func (l *Ledger) assetQuantity(ctx context.Context, id, quantity string) (asset, units, error) {
	a, err := l.asset(ctx, id)
	if err != nil {
		return asset{}, nil, err
	}
	q, err := ledger.ParseAmount(quantity, a.decimals)
	if err != nil {
		return asset{}, nil, err
	}
	if q.IsZero() {
		return asset{}, nil, fmt.Errorf("%w %q: zero", ledger.ErrBadQuantity, quantity)
	}
	return a, q.BaseUnits(), nil
}

// balance is an account's balance record in memory.
type balance struct {
	known           bool // a record exists
	available, held units
}

func (l *Ledger) balance(ctx context.Context, assetID, account string) (balance, error) {
	b := balance{available: new(big.Int), held: new(big.Int)}
	var rec balanceRecord
	switch err := getJSON(ctx, l.ds, balanceKey(assetID, account), &rec); {
	case errors.Is(err, datastore.ErrNotFound):
		return b, nil
	case err != nil:
		return balance{}, err
	}
	var err error
	if b.available, err = parseUnits(rec.Available); err != nil {
		return balance{}, fmt.Errorf("balance of %q in %q: %w", account, assetID, err)
	}
	if b.held, err = parseUnits(rec.Held); err != nil {
		return balance{}, fmt.Errorf("balance of %q in %q: %w", account, assetID, err)
	}
	b.known = true
	return b, nil
}

// debitable loads an account's balance and checks that q of it is available.
func (l *Ledger) debitable(ctx context.Context, a asset, assetID, account string, q units) (balance, error) {
	b, err := l.balance(ctx, assetID, account)
	if err != nil {
		return balance{}, err
	}
	if !b.known {
		return balance{}, fmt.Errorf("%w: %q has no balance of %q", ledger.ErrUnknownAccount, account, assetID)
	}
	if b.available.Cmp(q) < 0 {
		return balance{}, fmt.Errorf("%w: %q has %s of %q available (%s held), wanted %s",
			ledger.ErrInsufficientBalance, account, a.format(b.available), assetID, a.format(b.held), a.format(q))
	}
	return b, nil
}

// journalEntry reads the transaction at version.
func (l *Ledger) journalEntry(ctx context.Context, version uint64) (ledger.Transaction, error) {
	var tx ledger.Transaction
	switch err := getJSON(ctx, l.ds, journalKey(version), &tx); {
	case errors.Is(err, datastore.ErrNotFound):
		return ledger.Transaction{}, fmt.Errorf("%w: journal version %d missing", ErrCorrupt, version)
	case err != nil:
		return ledger.Transaction{}, fmt.Errorf("journal version %d: %w", version, err)
	}
	return tx, nil
}

// replay looks up an idempotency key. done is true when the key committed
// the same request r, and tx is that transaction; a different request is
// an ErrIdempotencyConflict. While Apply runs, a committed key is
// ErrDiverged: a primary commits each key once, so its journal never
// repeats one.
func (l *Ledger) replay(ctx context.Context, key string, r request) (tx ledger.Transaction, done bool, err error) {
	var rec idemRecord
	switch err := getJSON(ctx, l.ds, idemKey(key), &rec); {
	case errors.Is(err, datastore.ErrNotFound):
		return ledger.Transaction{}, false, nil
	case err != nil:
		return ledger.Transaction{}, false, err
	}
	if l.applying != nil {
		return ledger.Transaction{}, false, fmt.Errorf("%w: idempotency key %q was already committed by version %d",
			ErrDiverged, key, rec.Version)
	}
	tx, err = l.journalEntry(ctx, rec.Version)
	if err != nil {
		return ledger.Transaction{}, false, fmt.Errorf("idempotency key %q: %w", key, err)
	}
	if d := rec.Request.differences(r); len(d) > 0 {
		return ledger.Transaction{}, false, fmt.Errorf("%w: key %q committed %s transaction %s; this request has %s",
			ledger.ErrIdempotencyConflict, key, rec.Request.Operation, tx.ID, strings.Join(d, ", "))
	}
	return tx, true, nil
}

// writes are the records an operation changes, committed in one batch.
type writes struct {
	keys   []datastore.Key
	values [][]byte
}

func (w *writes) put(key datastore.Key, v any) {
	b, err := json.Marshal(v)
	if err != nil { // records are plain structs of strings and numbers
		panic(fmt.Sprintf("embedded ledger: encode %s: %v", key, err))
	}
	w.putBytes(key, b)
}

func (w *writes) putBytes(key datastore.Key, b []byte) {
	w.keys = append(w.keys, key)
	w.values = append(w.values, b)
}

func (w *writes) putAsset(id string, a asset) {
	w.put(assetKey(id), assetRecord{Decimals: a.decimals, Supply: a.supply.String()})
}

func (w *writes) putBalance(assetID, account string, b balance) {
	w.put(balanceKey(assetID, account), balanceRecord{Available: b.available.String(), Held: b.held.String()})
}

// commit completes tx as the next journal entry and writes it, its
// idempotency record, the head and w in one batch, and records it for the
// sync the caller waits for after releasing l.mu. While Apply
// runs, the completed tx must equal the entry being applied, or commit
// writes nothing and fails with ErrDiverged. The caller holds l.mu.
func (l *Ledger) commit(ctx context.Context, w writes, key string, r request, tx ledger.Transaction) (ledger.Transaction, error) {
	if err := ctx.Err(); err != nil {
		return ledger.Transaction{}, err
	}
	if tx.ID == "" {
		tx.ID = l.newTxID()
	}
	tx.LedgerID = l.id
	tx.IdempotencyKey = key
	tx.Version = l.head.Version + 1
	tx.PrevHash = l.head.Hash
	if l.applying != nil {
		tx.Timestamp = l.applying.Timestamp.UTC()
	} else {
		tx.Timestamp = l.clock().UTC()
	}
	if y := tx.Timestamp.Year(); y < 1 || y > 9999 {
		return ledger.Transaction{}, fmt.Errorf("clock gave %v, outside years 1..9999", tx.Timestamp)
	}
	hash, err := TransactionHash(tx)
	if err != nil {
		return ledger.Transaction{}, fmt.Errorf("%w: head hash: %v", ErrCorrupt, err)
	}
	tx.Hash = hash
	if l.applying != nil {
		if d := transactionDifferences(*l.applying, tx); len(d) > 0 {
			return ledger.Transaction{}, fmt.Errorf("%w: re-executing it here gives %s", ErrDiverged, strings.Join(d, ", "))
		}
	}
	head := headRecord{Version: tx.Version, Hash: tx.Hash}

	w.put(journalKey(tx.Version), tx)
	w.putBytes(txKey(tx.ID), []byte(strconv.FormatUint(tx.Version, 10)))
	w.put(idemKey(key), idemRecord{Request: r, Version: tx.Version})
	w.put(headKey, head)

	b, err := l.ds.Batch(ctx)
	if err != nil {
		return ledger.Transaction{}, fmt.Errorf("start batch: %w", err)
	}
	for i, k := range w.keys {
		if err := b.Put(ctx, k, w.values[i]); err != nil {
			return ledger.Transaction{}, fmt.Errorf("write %s: %w", k, err)
		}
	}
	if err := b.Commit(ctx); err != nil {
		return ledger.Transaction{}, fmt.Errorf("commit version %d: %w", tx.Version, err)
	}
	l.head = head
	if l.durable != nil {
		l.durable.Committed(head)
	}
	return tx, nil
}

// newTxID returns the id of a new transaction: the applied entry's while
// Apply runs, else a random one. The caller holds l.mu.
func (l *Ledger) newTxID() string {
	if l.applying != nil {
		return l.applying.ID
	}
	return newID()
}

// newID returns a random 128-bit transaction id in hex.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
