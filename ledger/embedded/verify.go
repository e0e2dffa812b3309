package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"

	"github.com/finp2p/go-finp2p/ledger"
)

// Journal returns up to limit transactions in version order, starting at
// version from (1 when from is 0). With sync, it ends at the last synced
// transaction, so no copy of the journal holds one a crash could undo.
func (l *Ledger) Journal(ctx context.Context, from uint64, limit int) ([]ledger.Transaction, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("ledger journal: %w: limit %d, want > 0", ledger.ErrBadRequest, limit)
	}
	from = max(from, 1)
	last := l.durableHead().Version
	l.mu.RLock()
	defer l.mu.RUnlock()
	var txs []ledger.Transaction
	for v := from; v <= last && len(txs) < limit; v++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		tx, err := l.journalEntry(ctx, v)
		if err != nil {
			return nil, fmt.Errorf("ledger journal: %w", err)
		}
		txs = append(txs, tx)
	}
	return txs, nil
}

// Verify walks the journal from version 1 and checks every entry's hash and
// its link to the previous one, that the stored head is the last entry, and
// that the stored assets, balances, holds, transaction index and
// idempotency records are exactly what replaying the journal produces. An
// error wraps ErrCorrupt and names the version or record at fault.
// Mutations wait while it runs, so it sees one consistent state.
func (l *Ledger) Verify(ctx context.Context) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.verify(ctx); err != nil {
		return fmt.Errorf("ledger %q verify: %w", l.id, err)
	}
	return nil
}

func (l *Ledger) verify(ctx context.Context) error {
	head := headRecord{Hash: genesisHash}
	if err := getJSON(ctx, l.ds, headKey, &head); err != nil && !errors.Is(err, datastore.ErrNotFound) {
		return err
	}
	if head != l.head {
		return fmt.Errorf("%w: stored head (version %d) differs from the open ledger's (version %d)",
			ErrCorrupt, head.Version, l.head.Version)
	}
	st := newReplay()
	prev := genesisHash
	for v := uint64(1); v <= head.Version; v++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		tx, err := l.journalEntry(ctx, v)
		if err != nil {
			return err
		}
		if err := l.checkEntry(ctx, v, prev, tx); err != nil {
			return fmt.Errorf("%w: journal version %d: %v", ErrCorrupt, v, err)
		}
		if err := st.apply(tx); err != nil {
			return fmt.Errorf("%w: journal version %d (%s %s): %v", ErrCorrupt, v, tx.Operation, tx.ID, err)
		}
		prev = tx.Hash
	}
	if prev != head.Hash {
		return fmt.Errorf("%w: head hash %s differs from journal version %d hash %s", ErrCorrupt, head.Hash, head.Version, prev)
	}
	switch _, err := l.ds.Get(ctx, journalKey(head.Version+1)); {
	case err == nil:
		return fmt.Errorf("%w: journal has version %d beyond head version %d", ErrCorrupt, head.Version+1, head.Version)
	case !errors.Is(err, datastore.ErrNotFound):
		return fmt.Errorf("read %s: %w", journalKey(head.Version+1), err)
	}
	return l.compareState(ctx, head.Version, st)
}

// checkEntry checks one journal entry's place in the chain and its indexes.
func (l *Ledger) checkEntry(ctx context.Context, v uint64, prev string, tx ledger.Transaction) error {
	if tx.Version != v {
		return fmt.Errorf("entry says version %d", tx.Version)
	}
	if tx.LedgerID != l.id {
		return fmt.Errorf("entry is of ledger %q", tx.LedgerID)
	}
	if tx.PrevHash != prev {
		return fmt.Errorf("prev_hash %s does not link to hash %s of version %d", tx.PrevHash, prev, v-1)
	}
	hash, err := TransactionHash(tx)
	if err != nil {
		return err
	}
	if hash != tx.Hash {
		return fmt.Errorf("hash mismatch: stored %s, computed %s", tx.Hash, hash)
	}
	b, err := l.ds.Get(ctx, txKey(tx.ID))
	if err != nil {
		return fmt.Errorf("transaction index of %s: %v", tx.ID, err)
	}
	if string(b) != strconv.FormatUint(v, 10) {
		return fmt.Errorf("transaction index maps %s to version %s", tx.ID, b)
	}
	var rec idemRecord
	if err := getJSON(ctx, l.ds, idemKey(tx.IdempotencyKey), &rec); err != nil {
		return fmt.Errorf("idempotency record %q: %v", tx.IdempotencyKey, err)
	}
	if rec.Version != v {
		return fmt.Errorf("idempotency key %q maps to version %d", tx.IdempotencyKey, rec.Version)
	}
	if rec.Request.Operation != tx.Operation {
		return fmt.Errorf("idempotency key %q records operation %s", tx.IdempotencyKey, rec.Request.Operation)
	}
	return nil
}

// replayState is the state the journal produces, in base units.
type replayState struct {
	assets   map[string]*asset
	balances map[[2]string]*balance // by asset, account
	holds    map[string]*holdRecord
}

func newReplay() *replayState {
	return &replayState{
		assets:   make(map[string]*asset),
		balances: make(map[[2]string]*balance),
		holds:    make(map[string]*holdRecord),
	}
}

func (s *replayState) balance(assetID, account string) *balance {
	k := [2]string{assetID, account}
	b := s.balances[k]
	if b == nil {
		b = &balance{available: new(big.Int), held: new(big.Int), known: true}
		s.balances[k] = b
	}
	return b
}

// debit checks that q is available in an account that has a balance.
func (s *replayState) debit(assetID, account string, q units) (*balance, error) {
	b := s.balances[[2]string{assetID, account}]
	if b == nil {
		return nil, fmt.Errorf("debits %q, which has no balance", account)
	}
	if b.available.Cmp(q) < 0 {
		return nil, fmt.Errorf("debits %s base units from %q, which has %s available", q, account, b.available)
	}
	return b, nil
}

// apply replays one transaction, checking that it was possible.
func (s *replayState) apply(tx ledger.Transaction) error {
	if tx.Operation == ledger.OpCreateAsset {
		if s.assets[tx.Asset] != nil {
			return fmt.Errorf("asset %q created twice", tx.Asset)
		}
		if tx.Decimals < 0 || tx.Decimals > ledger.MaxDecimals {
			return fmt.Errorf("decimals %d out of range", tx.Decimals)
		}
		s.assets[tx.Asset] = &asset{decimals: tx.Decimals, supply: new(big.Int)}
		return nil
	}
	a := s.assets[tx.Asset]
	if a == nil {
		return fmt.Errorf("asset %q not created", tx.Asset)
	}
	amount, err := ledger.ParseAmount(tx.Quantity, a.decimals)
	if err != nil {
		return err
	}
	if amount.Sign() <= 0 || amount.String(a.decimals) != tx.Quantity {
		return fmt.Errorf("quantity %q is not a canonical positive quantity", tx.Quantity)
	}
	q := amount.BaseUnits()
	switch tx.Operation {
	case ledger.OpIssue:
		to := s.balance(tx.Asset, tx.To)
		to.available.Add(to.available, q)
		a.supply.Add(a.supply, q)
	case ledger.OpTransfer:
		from, err := s.debit(tx.Asset, tx.From, q)
		if err != nil {
			return err
		}
		from.available.Sub(from.available, q)
		to := s.balance(tx.Asset, tx.To)
		to.available.Add(to.available, q)
	case ledger.OpRedeem:
		from, err := s.debit(tx.Asset, tx.From, q)
		if err != nil {
			return err
		}
		from.available.Sub(from.available, q)
		a.supply.Sub(a.supply, q)
	case ledger.OpHold:
		from, err := s.debit(tx.Asset, tx.From, q)
		if err != nil {
			return err
		}
		from.available.Sub(from.available, q)
		from.held.Add(from.held, q)
		s.holds[tx.ID] = &holdRecord{Asset: tx.Asset, From: tx.From, Quantity: q.String()}
	case ledger.OpRelease, ledger.OpRollback:
		h := s.holds[tx.HoldID]
		switch {
		case h == nil:
			return fmt.Errorf("closes unknown hold %q", tx.HoldID)
		case h.Closed != "":
			return fmt.Errorf("closes hold %q, closed by %s", tx.HoldID, h.ClosedBy)
		case h.Asset != tx.Asset || h.From != tx.From || h.Quantity != q.String():
			return fmt.Errorf("does not match hold %q", tx.HoldID)
		}
		from := s.balance(tx.Asset, tx.From)
		if from.held.Cmp(q) < 0 {
			return fmt.Errorf("closes hold %q of %s base units but %q holds %s", tx.HoldID, q, tx.From, from.held)
		}
		from.held.Sub(from.held, q)
		if tx.Operation == ledger.OpRelease {
			to := s.balance(tx.Asset, tx.To)
			to.available.Add(to.available, q)
		} else {
			from.available.Add(from.available, q)
		}
		h.Closed, h.ClosedBy = tx.Operation, tx.ID
	default:
		return fmt.Errorf("unknown operation %q", tx.Operation)
	}
	return nil
}

// compareState checks the stored records against the replayed state.
func (l *Ledger) compareState(ctx context.Context, version uint64, st *replayState) error {
	seen := 0
	err := scan(ctx, l.ds, assetPrefix, func(parts []string, value []byte) error {
		var rec assetRecord
		if len(parts) != 1 || json.Unmarshal(value, &rec) != nil {
			return errors.New("malformed")
		}
		a := st.assets[parts[0]]
		if a == nil {
			return errors.New("no create-asset transaction in the journal")
		}
		if rec.Decimals != a.decimals || rec.Supply != a.supply.String() {
			return fmt.Errorf("decimals %d supply %s, journal gives decimals %d supply %s",
				rec.Decimals, rec.Supply, a.decimals, a.supply)
		}
		seen++
		return nil
	})
	if err == nil && seen != len(st.assets) {
		err = fmt.Errorf("%w: %d asset records, journal creates %d", ErrCorrupt, seen, len(st.assets))
	}
	if err != nil {
		return err
	}

	seen = 0
	err = scan(ctx, l.ds, balancePrefix, func(parts []string, value []byte) error {
		var rec balanceRecord
		if len(parts) != 2 || json.Unmarshal(value, &rec) != nil {
			return errors.New("malformed")
		}
		b := st.balances[[2]string{parts[0], parts[1]}]
		if b == nil {
			return errors.New("no journal transaction credits the account")
		}
		if rec.Available != b.available.String() || rec.Held != b.held.String() {
			return fmt.Errorf("available %s held %s, journal gives available %s held %s",
				rec.Available, rec.Held, b.available, b.held)
		}
		seen++
		return nil
	})
	if err == nil && seen != len(st.balances) {
		err = fmt.Errorf("%w: %d balance records, journal gives %d", ErrCorrupt, seen, len(st.balances))
	}
	if err != nil {
		return err
	}

	seen = 0
	err = scan(ctx, l.ds, holdPrefix, func(parts []string, value []byte) error {
		var rec holdRecord
		if len(parts) != 1 || json.Unmarshal(value, &rec) != nil {
			return errors.New("malformed")
		}
		h := st.holds[parts[0]]
		if h == nil {
			return errors.New("no hold transaction in the journal")
		}
		if rec != *h {
			return fmt.Errorf("record %+v, journal gives %+v", rec, *h)
		}
		seen++
		return nil
	})
	if err == nil && seen != len(st.holds) {
		err = fmt.Errorf("%w: %d hold records, journal gives %d", ErrCorrupt, seen, len(st.holds))
	}
	if err != nil {
		return err
	}

	// Every transaction and idempotency record was checked against its
	// journal entry; there must be no others.
	for _, prefix := range []datastore.Key{txPrefix, idemPrefix} {
		n, err := count(ctx, l.ds, prefix)
		if err != nil {
			return err
		}
		if uint64(n) != version {
			return fmt.Errorf("%w: %d records under %s, journal has %d transactions", ErrCorrupt, n, prefix, version)
		}
	}
	return nil
}

// scan calls fn with the unescaped key parts below prefix and the value of
// every record under prefix. An error from fn is reported as corruption of
// that record.
func scan(ctx context.Context, ds datastore.Read, prefix datastore.Key, fn func(parts []string, value []byte) error) error {
	res, err := ds.Query(ctx, query.Query{Prefix: prefix.String()})
	if err != nil {
		return fmt.Errorf("query %s: %w", prefix, err)
	}
	defer res.Close()
	for r := range res.Next() {
		if r.Error != nil {
			return fmt.Errorf("query %s: %w", prefix, r.Error)
		}
		rest := strings.TrimPrefix(r.Key, prefix.String()+"/")
		parts := strings.Split(rest, "/")
		for i, p := range parts {
			if parts[i], err = unkeyPart(p); err != nil {
				return fmt.Errorf("%w: record %s: bad key", ErrCorrupt, r.Key)
			}
		}
		if err := fn(parts, r.Value); err != nil {
			return fmt.Errorf("%w: record %s: %v", ErrCorrupt, r.Key, err)
		}
	}
	return nil
}

// count returns the number of records under prefix.
func count(ctx context.Context, ds datastore.Read, prefix datastore.Key) (int, error) {
	res, err := ds.Query(ctx, query.Query{Prefix: prefix.String(), KeysOnly: true})
	if err != nil {
		return 0, fmt.Errorf("query %s: %w", prefix, err)
	}
	defer res.Close()
	n := 0
	for r := range res.Next() {
		if r.Error != nil {
			return 0, fmt.Errorf("query %s: %w", prefix, r.Error)
		}
		n++
	}
	return n, nil
}
