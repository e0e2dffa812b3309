package embedded

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ipfs/go-datastore"

	"github.com/finp2p/go-finp2p/ledger"
)

// Errors of replicas. Apply and the mutations wrap them with detail.
var (
	// ErrReadOnly: a mutating call on a replica, which changes only by
	// Apply.
	ErrReadOnly = errors.New("ledger is a read-only replica")
	// ErrVersionGap: Apply got an entry beyond the next version; the
	// entries in between must be applied first.
	ErrVersionGap = errors.New("journal entry beyond the next version")
	// ErrDiverged: a journal entry does not continue this copy of the
	// ledger: it differs from the entry applied at its version, does not
	// link to the head, has a wrong hash, or re-executing it here fails or
	// gives a different transaction.
	ErrDiverged = errors.New("ledger copy diverged from its primary")
)

// Head returns the committed head: the version of the last transaction and
// its hash, or version 0 and the genesis hash (64 zeros, the PrevHash of
// version 1) when there is none. With sync, it is the head of the last
// synced transaction.
func (l *Ledger) Head() (version uint64, hash string) {
	h := l.durableHead()
	return h.Version, h.Hash
}

// Apply appends tx, an entry of the journal of this ledger's primary, to
// this copy. An entry already applied is accepted again without effect; an
// entry beyond the next version is an ErrVersionGap and one that does not
// continue the copy an ErrDiverged, and neither writes anything.
//
// Apply re-executes the entry's operation against this copy's state, with
// the entry's transaction id, idempotency key and timestamp, and commits it
// only if that gives exactly tx. It thereby checks that tx is a possible
// next entry, not that the primary produced it: anyone can compute a
// Transaction's hash, so the caller authenticates entries (the primary's
// signature) before applying them. Apply works on replicas and on ordinary
// ledgers alike.
func (l *Ledger) Apply(ctx context.Context, tx ledger.Transaction) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ledger apply version %d: %w", tx.Version, err)
	}
	if tx.LedgerID != l.id {
		return fmt.Errorf("ledger %q apply version %d: %w: the entry is of ledger %q",
			l.id, tx.Version, ledger.ErrBadRequest, tx.LedgerID)
	}
	if tx.Version == 0 {
		return fmt.Errorf("ledger %q apply: %w: entry of version 0; versions start at 1", l.id, ledger.ErrBadRequest)
	}
	l.mu.Lock()
	err := l.apply(ctx, tx)
	ticket := l.lastCommit()
	l.mu.Unlock()
	if err == nil {
		if err = l.awaitDurable(ticket); err != nil {
			err = fmt.Errorf("sync: %w", err)
		}
	}
	if err != nil {
		return fmt.Errorf("ledger %q apply version %d: %w", l.id, tx.Version, err)
	}
	return nil
}

// apply is Apply under the write lock.
func (l *Ledger) apply(ctx context.Context, tx ledger.Transaction) error {
	head := l.head
	switch {
	case tx.Version <= head.Version:
		return l.reapply(ctx, tx)
	case tx.Version > head.Version+1:
		missing := fmt.Sprintf("version %d is", head.Version+1)
		if tx.Version > head.Version+2 {
			missing = fmt.Sprintf("versions %d..%d are", head.Version+1, tx.Version-1)
		}
		return fmt.Errorf("%w: the replica is at version %d and got version %d; %s missing",
			ErrVersionGap, head.Version, tx.Version, missing)
	case tx.PrevHash != head.Hash:
		return fmt.Errorf("%w: prev_hash %s does not link to hash %s of version %d",
			ErrDiverged, tx.PrevHash, head.Hash, head.Version)
	}
	// PrevHash is the head's hash, so TransactionHash cannot fail.
	if hash, _ := TransactionHash(tx); hash != tx.Hash {
		return fmt.Errorf("%w: hash mismatch: the entry says %s, its fields hash to %s", ErrDiverged, tx.Hash, hash)
	}
	if err := l.checkNewEntry(ctx, tx); err != nil {
		return err
	}

	l.applying = &tx
	defer func() { l.applying = nil }()
	err := l.execute(ctx, tx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrDiverged):
		return fmt.Errorf("%s %s: %w", tx.Operation, tx.ID, err)
	case rejected(err):
		return fmt.Errorf("%w: %s %s fails here: %v", ErrDiverged, tx.Operation, tx.ID, err)
	default: // this copy's store or ctx failed, not the entry
		return fmt.Errorf("%s %s: %w", tx.Operation, tx.ID, err)
	}
}

// reapply accepts an entry at an applied version when it is the applied
// entry.
func (l *Ledger) reapply(ctx context.Context, tx ledger.Transaction) error {
	stored, err := l.journalEntry(ctx, tx.Version)
	if err != nil {
		return err
	}
	if stored.Hash != tx.Hash {
		return fmt.Errorf("%w: version %d here has hash %s, the entry has hash %s",
			ErrDiverged, tx.Version, stored.Hash, tx.Hash)
	}
	// The same hash over different fields is a forged entry, not the
	// applied one delivered again.
	if d := transactionDifferences(tx, stored); len(d) > 0 {
		return fmt.Errorf("%w: the entry has the hash of version %d here, but that version has %s",
			ErrDiverged, tx.Version, strings.Join(d, ", "))
	}
	return nil
}

// checkNewEntry checks what the operations take from the entry rather than
// compute: a well-formed id no transaction here has (a reused one would
// overwrite the transaction index and, for a hold, the hold record) and a
// timestamp that can be stored.
func (l *Ledger) checkNewEntry(ctx context.Context, tx ledger.Transaction) error {
	if err := ledger.CheckID("id", tx.ID); err != nil {
		return fmt.Errorf("%w: %v", ErrDiverged, err)
	}
	switch b, err := l.ds.Get(ctx, txKey(tx.ID)); {
	case err == nil:
		return fmt.Errorf("%w: transaction id %s is already version %s", ErrDiverged, tx.ID, b)
	case !errors.Is(err, datastore.ErrNotFound):
		return fmt.Errorf("read %s: %w", txKey(tx.ID), err)
	}
	if y := tx.Timestamp.Year(); y < 1 || y > 9999 {
		return fmt.Errorf("%w: timestamp %v outside years 1..9999", ErrDiverged, tx.Timestamp)
	}
	return nil
}

// execute runs the operation of tx, the entry being applied, as the
// primary did: the request is rebuilt from the entry's fields and goes
// through the same validation and operation code as a call. The caller
// holds l.mu and has set l.applying.
func (l *Ledger) execute(ctx context.Context, tx ledger.Transaction) error {
	var err error
	switch tx.Operation {
	case ledger.OpCreateAsset:
		req := ledger.CreateAsset{IdempotencyKey: tx.IdempotencyKey, Asset: tx.Asset, Decimals: tx.Decimals}
		if err = req.Validate(); err == nil {
			_, err = l.createAsset(ctx, req)
		}
	case ledger.OpIssue:
		req := ledger.Issue{IdempotencyKey: tx.IdempotencyKey, Asset: tx.Asset, To: tx.To, Quantity: tx.Quantity}
		if err = req.Validate(); err == nil {
			_, err = l.issue(ctx, req)
		}
	case ledger.OpTransfer:
		req := ledger.Transfer{IdempotencyKey: tx.IdempotencyKey, Asset: tx.Asset, From: tx.From, To: tx.To, Quantity: tx.Quantity}
		if err = req.Validate(); err == nil {
			_, err = l.transfer(ctx, req)
		}
	case ledger.OpRedeem:
		req := ledger.Redeem{IdempotencyKey: tx.IdempotencyKey, Asset: tx.Asset, From: tx.From, Quantity: tx.Quantity}
		if err = req.Validate(); err == nil {
			_, err = l.redeem(ctx, req)
		}
	case ledger.OpHold:
		req := ledger.Hold{IdempotencyKey: tx.IdempotencyKey, Asset: tx.Asset, From: tx.From, Quantity: tx.Quantity}
		if err = req.Validate(); err == nil {
			_, err = l.hold(ctx, req)
		}
	case ledger.OpRelease:
		req := ledger.Release{IdempotencyKey: tx.IdempotencyKey, HoldID: tx.HoldID, To: tx.To}
		if err = req.Validate(); err == nil {
			_, err = l.closeHold(ctx, ledger.OpRelease, req.IdempotencyKey, req.HoldID, req.To)
		}
	case ledger.OpRollback:
		req := ledger.Rollback{IdempotencyKey: tx.IdempotencyKey, HoldID: tx.HoldID}
		if err = req.Validate(); err == nil {
			_, err = l.closeHold(ctx, ledger.OpRollback, req.IdempotencyKey, req.HoldID, "")
		}
	default:
		err = fmt.Errorf("%w: unknown operation %q", ErrDiverged, tx.Operation)
	}
	return err
}

// rejections are the errors by which an operation refuses a request. When
// an applied entry meets one, this copy's state is not the one the primary
// executed the entry on.
var rejections = []error{
	ledger.ErrBadQuantity,
	ledger.ErrUnknownAsset,
	ledger.ErrAssetExists,
	ledger.ErrUnknownAccount,
	ledger.ErrInsufficientBalance,
	ledger.ErrUnknownHold,
	ledger.ErrHoldClosed,
	ledger.ErrIdempotencyConflict,
	ledger.ErrBadRequest,
}

func rejected(err error) bool {
	for _, r := range rejections {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}

// transactionDifferences names the fields in which got differs from entry,
// as "field got-value, not entry-value".
func transactionDifferences(entry, got ledger.Transaction) []string {
	var out []string
	for _, d := range ledger.Differences(entry, got) {
		out = append(out, d.String())
	}
	return out
}
