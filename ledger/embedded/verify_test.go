package embedded

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ipfs/go-datastore"

	"github.com/finp2p/go-finp2p/ledger"
)

// rewrite replaces the stored value under key with edit's result.
func rewrite(t *testing.T, ds datastore.Batching, key datastore.Key, edit func([]byte) []byte) {
	t.Helper()
	ctx := context.Background()
	b, err := ds.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	nb := edit(b)
	if bytes.Equal(nb, b) {
		t.Fatalf("edit of %s changed nothing", key)
	}
	if err := ds.Put(ctx, key, nb); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func replace(old, new string) func([]byte) []byte {
	return func(b []byte) []byte { return bytes.Replace(b, []byte(old), []byte(new), 1) }
}

// editTx decodes a stored transaction, edits it and encodes it again.
func editTx(t *testing.T, edit func(*ledger.Transaction)) func([]byte) []byte {
	return func(b []byte) []byte {
		var tx ledger.Transaction
		if err := json.Unmarshal(b, &tx); err != nil {
			t.Fatal(err)
		}
		edit(&tx)
		nb, err := json.Marshal(tx)
		if err != nil {
			t.Fatal(err)
		}
		return nb
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	tests := []struct {
		name     string
		tamper   func(t *testing.T, f fixture)
		problems []string // "$rolledBack" stands for that hold's id
	}{
		{
			name: "journal quantity rewritten",
			tamper: func(t *testing.T, f fixture) {
				// Version 3 issued 50 to bob.
				rewrite(t, f.ds, journalKey(3), replace(`"quantity":"50"`, `"quantity":"500"`))
			},
			problems: []string{"journal version 3", "hash mismatch"},
		},
		{
			name: "journal entry re-hashed",
			tamper: func(t *testing.T, f fixture) {
				rewrite(t, f.ds, journalKey(3), editTx(t, func(tx *ledger.Transaction) {
					tx.Quantity = "500"
					tx.Hash, _ = TransactionHash(*tx)
				}))
			},
			problems: []string{"journal version 4", "does not link to hash"},
		},
		{
			name: "journal entry deleted",
			tamper: func(t *testing.T, f fixture) {
				if err := f.ds.Delete(context.Background(), journalKey(5)); err != nil {
					t.Fatal(err)
				}
			},
			problems: []string{"journal version 5 missing"},
		},
		{
			name: "journal entries swapped",
			tamper: func(t *testing.T, f fixture) {
				ctx := context.Background()
				a, _ := f.ds.Get(ctx, journalKey(2))
				b, _ := f.ds.Get(ctx, journalKey(3))
				_ = f.ds.Put(ctx, journalKey(2), b)
				_ = f.ds.Put(ctx, journalKey(3), a)
			},
			problems: []string{"journal version 2", "entry says version 3"},
		},
		{
			name: "balance rewritten",
			tamper: func(t *testing.T, f fixture) {
				rewrite(t, f.ds, balanceKey("usd", "bob"), replace(`"available":"4000"`, `"available":"4001"`))
			},
			problems: []string{"/balance/usd/bob", "available 4001"},
		},
		{
			name: "balance added",
			tamper: func(t *testing.T, f fixture) {
				_ = f.ds.Put(context.Background(), balanceKey("usd", "mallory"), []byte(`{"available":"1","held":"0"}`))
			},
			problems: []string{"/balance/usd/mallory", "no journal transaction"},
		},
		{
			name: "hold reopened",
			tamper: func(t *testing.T, f fixture) {
				rewrite(t, f.ds, holdKey(f.rolledBack), replace(`"closed":"rollback"`, `"closed":""`))
			},
			problems: []string{"/hold/$rolledBack", "journal gives"},
		},
		{
			name: "supply rewritten",
			tamper: func(t *testing.T, f fixture) {
				rewrite(t, f.ds, assetKey("usd"), replace(`"supply":"15000"`, `"supply":"16000"`))
			},
			problems: []string{"/asset/usd", "supply 16000"},
		},
		{
			name: "transaction index removed",
			tamper: func(t *testing.T, f fixture) {
				_ = f.ds.Delete(context.Background(), txKey(f.openTx.ID))
			},
			problems: []string{"journal version 4", "transaction index"},
		},
		{
			name: "idempotency record pointed elsewhere",
			tamper: func(t *testing.T, f fixture) {
				rewrite(t, f.ds, idemKey(f.openTx.IdempotencyKey), replace(`"version":4`, `"version":5`))
			},
			problems: []string{"journal version 4", "maps to version 5"},
		},
		{
			name: "stray idempotency record",
			tamper: func(t *testing.T, f fixture) {
				_ = f.ds.Put(context.Background(), idemKey("stray"), []byte(`{"version":1}`))
			},
			problems: []string{"records under /idem"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if err := f.l.Verify(context.Background()); err != nil {
				t.Fatalf("Verify before tampering: %v", err)
			}
			tt.tamper(t, f)
			var problems []string
			for _, p := range tt.problems {
				problems = append(problems, strings.ReplaceAll(p, "$rolledBack", f.rolledBack))
			}
			err := f.l.Verify(context.Background())
			t.Log(err)
			wantError(t, err, ErrCorrupt, problems...)
		})
	}
}

func TestOpenDetectsHeadMismatch(t *testing.T) {
	tests := []struct {
		name     string
		tamper   func(t *testing.T, f fixture)
		problems []string
	}{
		{
			name: "head behind the journal",
			tamper: func(t *testing.T, f fixture) {
				rewrite(t, f.ds, headKey, replace(`"version":8`, `"version":7`))
			},
			problems: []string{"head hash", "journal version 7"},
		},
		{
			name: "head hash changed",
			tamper: func(t *testing.T, f fixture) {
				rewrite(t, f.ds, headKey, editJSON(t, func(h *headRecord) { h.Hash = genesisHash }))
			},
			problems: []string{"journal version 8"},
		},
		{
			name: "entry beyond head",
			tamper: func(t *testing.T, f fixture) {
				last, _ := f.ds.Get(context.Background(), journalKey(8))
				_ = f.ds.Put(context.Background(), journalKey(9), last)
			},
			problems: []string{"version 9 beyond head version 8"},
		},
		{
			name: "last entry missing",
			tamper: func(t *testing.T, f fixture) {
				_ = f.ds.Delete(context.Background(), journalKey(8))
			},
			problems: []string{"head is version 8", "journal version 8 missing"},
		},
		{
			name: "head missing",
			tamper: func(t *testing.T, f fixture) {
				_ = f.ds.Delete(context.Background(), headKey)
			},
			problems: []string{"version 1 beyond head version 0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tt.tamper(t, f)
			_, err := Open(context.Background(), f.ds, testLedgerID)
			t.Log(err)
			wantError(t, err, ErrCorrupt, tt.problems...)
		})
	}
}

func editJSON[T any](t *testing.T, edit func(*T)) func([]byte) []byte {
	return func(b []byte) []byte {
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		edit(&v)
		nb, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return nb
	}
}
