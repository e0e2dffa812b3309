package asset

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"

	"github.com/finp2p/go-finp2p/internal/groupsync"
)

// Keys of a ReceiptStore, under the caller's namespace. Transaction ids are
// hex-encoded, since a ledger's ids may hold '/' or "..".
var (
	txPrefix   = datastore.NewKey("/tx")
	reqPrefix  = datastore.NewKey("/req")
	timePrefix = datastore.NewKey("/time")
)

func txKey(id string) datastore.Key { return txPrefix.ChildString(hex.EncodeToString([]byte(id))) }

func reqKey(hash string) datastore.Key { return reqPrefix.ChildString(hash) }

// timeKey orders receipts by signing time; Validate keeps SignedAt after
// 1970, so the zero-padded nanoseconds sort as numbers.
func timeKey(at time.Time, id string) datastore.Key {
	return timePrefix.ChildString(fmt.Sprintf("%020d-%s", at.UnixNano(), hex.EncodeToString([]byte(id))))
}

// ReceiptStore keeps the asset receipts a requesting node received, durably,
// in a datastore the caller namespaces and closes: one receipt per ledger
// transaction, found by transaction id or by the hash of the request it
// answered. Every receipt is verified when put and again when read. It is
// safe for concurrent use; concurrent Puts share one sync.
type ReceiptStore struct {
	ds datastore.Datastore
	v  *ReceiptVerifier

	mu sync.Mutex // serialises Put's read-check-write, not its sync
	// durable tracks which of the writes made under mu are synced.
	durable *groupsync.Syncer[struct{}]
}

// NewReceiptStore returns a store over ds, which must be safe for
// concurrent use, that verifies receipts with v.
func NewReceiptStore(ds datastore.Datastore, v *ReceiptVerifier) *ReceiptStore {
	return &ReceiptStore{ds: ds, v: v, durable: groupsync.New(func() error {
		return ds.Sync(context.Background(), datastore.NewKey("/"))
	}, struct{}{})}
}

// Put verifies a sealed receipt and persists it, synced, before returning;
// the caller must not report the transaction done before Put returns
// without error. Putting a receipt again is a no-op, and so is putting one
// that says the same (same network, orgs and transaction) re-signed: the
// first stays the transaction's receipt, and a new request hash it answers
// is indexed to the receipt that binds it. A receipt that says otherwise for
// a stored transaction id, or answers a stored request hash with another
// transaction, is ErrConflict and nothing is written.
//
// Put holds the store only while it checks and writes; it syncs after
// releasing it, so that Puts that write meanwhile share the next sync.
func (s *ReceiptStore) Put(ctx context.Context, sealed []byte) (*VerifiedReceipt, error) {
	vr, err := s.v.Verify(sealed)
	if err != nil {
		return nil, err
	}
	id := vr.Receipt.Transaction.ID
	s.mu.Lock()
	err = s.write(ctx, vr)
	// What this Put wrote, or found that another Put wrote, is durable
	// once the last write is.
	ticket := s.durable.Last()
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := s.durable.Wait(ticket); err != nil {
		return nil, fmt.Errorf("put asset receipt of transaction %s: sync: %w", id, err)
	}
	return vr, nil
}

// write is Put's check and write, under s.mu.
func (s *ReceiptStore) write(ctx context.Context, vr *VerifiedReceipt) error {
	r := vr.Receipt
	id := r.Transaction.ID
	type write struct {
		key   datastore.Key
		value []byte
	}
	var writes []write

	kept := r // the receipt the store holds for the transaction
	switch old, err := s.decode(ctx, txKey(id)); {
	case errors.Is(err, datastore.ErrNotFound):
		writes = append(writes, write{txKey(id), vr.Sealed})
	case err != nil:
		return fmt.Errorf("put asset receipt of transaction %s: %w", id, err)
	default:
		if field := diffReceipt(old, r); field != "" {
			return fmt.Errorf("%w: transaction %s already has a receipt with another %s", ErrConflict, id, field)
		}
		kept = old
	}
	switch old, err := s.decode(ctx, reqKey(r.RequestHash)); {
	case errors.Is(err, datastore.ErrNotFound):
		writes = append(writes, write{reqKey(r.RequestHash), vr.Sealed})
	case err != nil:
		return fmt.Errorf("put asset receipt of transaction %s: %w", id, err)
	case old.Transaction.ID != id:
		return fmt.Errorf("%w: request %s was already answered by transaction %s, this receipt says transaction %s", ErrConflict, r.RequestHash, old.Transaction.ID, id)
	default:
		if field := diffReceipt(old, r); field != "" {
			return fmt.Errorf("%w: request %s already has a receipt with another %s", ErrConflict, r.RequestHash, field)
		}
	}
	// The time index follows the kept receipt; it is written again if an
	// earlier Put stopped before it.
	tk := timeKey(kept.SignedAt, id)
	switch has, err := s.ds.Has(ctx, tk); {
	case err != nil:
		return fmt.Errorf("put asset receipt of transaction %s: %w", id, err)
	case !has:
		writes = append(writes, write{tk, []byte(id)})
	}
	if len(writes) == 0 {
		return nil
	}

	if b, ok := s.ds.(datastore.Batching); ok {
		batch, err := b.Batch(ctx)
		if err != nil {
			return fmt.Errorf("put asset receipt of transaction %s: %w", id, err)
		}
		for _, w := range writes {
			if err := batch.Put(ctx, w.key, w.value); err != nil {
				return fmt.Errorf("put asset receipt of transaction %s: %w", id, err)
			}
		}
		if err := batch.Commit(ctx); err != nil {
			return fmt.Errorf("put asset receipt of transaction %s: %w", id, err)
		}
	} else {
		// The transaction's key last: until it is written, a retried Put
		// writes everything again.
		for i := len(writes) - 1; i >= 0; i-- {
			if err := s.ds.Put(ctx, writes[i].key, writes[i].value); err != nil {
				return fmt.Errorf("put asset receipt of transaction %s: %w", id, err)
			}
		}
	}
	s.durable.Committed(struct{}{})
	return nil
}

// decode reads a stored receipt and decodes it, checking its envelope
// signature but not its signer.
func (s *ReceiptStore) decode(ctx context.Context, key datastore.Key) (*Receipt, error) {
	data, err := s.ds.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	var r Receipt
	if _, err := openEnvelope("stored asset receipt "+key.String(), data, MaxReceiptSize, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// diffReceipt names the first field, of those that make two receipts say
// the same thing, in which a and b differ; "" if none does.
func diffReceipt(a, b *Receipt) string {
	ta, tb := a.Transaction, b.Transaction
	for _, f := range []struct {
		name string
		same bool
	}{
		{"network", a.Network == b.Network},
		{"requester org", a.RequesterOrg == b.RequesterOrg},
		{"owner org", a.OwnerOrg == b.OwnerOrg},
		{"transaction id", ta.ID == tb.ID},
		{"ledger id", ta.LedgerID == tb.LedgerID},
		{"operation", ta.Operation == tb.Operation},
		{"asset", ta.Asset == tb.Asset},
		{"from", ta.From == tb.From},
		{"to", ta.To == tb.To},
		{"quantity", ta.Quantity == tb.Quantity},
		{"hold id", ta.HoldID == tb.HoldID},
		{"decimals", ta.Decimals == tb.Decimals},
		{"idempotency key", ta.IdempotencyKey == tb.IdempotencyKey},
		{"version", ta.Version == tb.Version},
		{"hash", ta.Hash == tb.Hash},
		{"prev hash", ta.PrevHash == tb.PrevHash},
		{"timestamp", ta.Timestamp.Equal(tb.Timestamp)},
	} {
		if !f.same {
			return f.name
		}
	}
	return ""
}

// Get returns the receipt of the transaction with id, verified again. A
// missing one is ErrNotFound.
func (s *ReceiptStore) Get(ctx context.Context, txID string) (*VerifiedReceipt, error) {
	vr, err := s.read(ctx, txKey(txID), "transaction "+quote(txID))
	if err != nil {
		return nil, err
	}
	if vr.Receipt.Transaction.ID != txID {
		return nil, fmt.Errorf("%w: receipt of transaction %s stored as that of transaction %s", ErrMalformed, quote(vr.Receipt.Transaction.ID), quote(txID))
	}
	return vr, nil
}

// ByRequest returns the receipt that answers the request with hash
// requestHash (see RequestHash), verified again. A missing one is
// ErrNotFound.
func (s *ReceiptStore) ByRequest(ctx context.Context, requestHash string) (*VerifiedReceipt, error) {
	if !isHexHash(requestHash) {
		return nil, fmt.Errorf("%w: request hash %s (want a lowercase hex SHA-256)", ErrNotFound, quote(requestHash))
	}
	vr, err := s.read(ctx, reqKey(requestHash), "request "+requestHash)
	if err != nil {
		return nil, err
	}
	if vr.Receipt.RequestHash != requestHash {
		return nil, fmt.Errorf("%w: receipt of request %s stored as that of request %s", ErrMalformed, vr.Receipt.RequestHash, requestHash)
	}
	return vr, nil
}

func (s *ReceiptStore) read(ctx context.Context, key datastore.Key, what string) (*VerifiedReceipt, error) {
	data, err := s.ds.Get(ctx, key)
	// A receipt another Put wrote is returned once it is durable, as Put
	// returns it. That Put holds s.mu from its write until it records
	// it, so the last write recorded after the read covers the receipt.
	s.mu.Lock()
	ticket := s.durable.Last()
	s.mu.Unlock()
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, fmt.Errorf("%w: no receipt of %s: %w", ErrNotFound, what, err)
	}
	if err != nil {
		return nil, fmt.Errorf("read asset receipt of %s: %w", what, err)
	}
	vr, err := s.v.Verify(data)
	if err != nil {
		return nil, fmt.Errorf("stored asset receipt of %s: %w", what, err)
	}
	if err := s.durable.Wait(ticket); err != nil {
		return nil, fmt.Errorf("read asset receipt of %s: sync: %w", what, err)
	}
	return vr, nil
}

// List returns up to limit stored receipts, one per transaction, the most
// recently signed first; all of them if limit <= 0. Each is verified again,
// and the first that fails is the error.
func (s *ReceiptStore) List(ctx context.Context, limit int) ([]*VerifiedReceipt, error) {
	q := query.Query{Prefix: timePrefix.String(), Orders: []query.Order{query.OrderByKeyDescending{}}}
	if limit > 0 {
		q.Limit = limit
	}
	res, err := s.ds.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list asset receipts: %w", err)
	}
	entries, err := res.Rest()
	if err != nil {
		return nil, fmt.Errorf("list asset receipts: %w", err)
	}
	out := make([]*VerifiedReceipt, 0, len(entries))
	for _, e := range entries {
		vr, err := s.Get(ctx, string(e.Value))
		if err != nil {
			return nil, fmt.Errorf("list asset receipts: %w", err)
		}
		out = append(out, vr)
	}
	return out, nil
}

// quote quotes an id for an error message, bounded.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
