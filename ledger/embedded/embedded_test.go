package embedded

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/ipfs/go-datastore"

	"github.com/finp2p/go-finp2p/ledger"
)

// fixture is a ledger with asset "usd" (2 decimals, supply 150) where
// alice has 100 (70 available, 30 in open hold open), bob 40 and carol 10;
// holds rolledBack and released are closed.
type fixture struct {
	l                              *Ledger
	ds                             datastore.Batching
	open, rolledBack, released     string
	openTx, rolledBackTx, issuedTx ledger.Transaction
	keys                           *keys
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	ctx := context.Background()
	ds := memStore()
	f := fixture{l: openTest(t, ds), ds: ds, keys: &keys{}}
	l, k := f.l, f.keys
	mustTx(t)(l.CreateAsset(ctx, ledger.CreateAsset{IdempotencyKey: k.next(), Asset: "usd", Decimals: 2}))
	f.issuedTx = mustTx(t)(l.Issue(ctx, ledger.Issue{IdempotencyKey: k.next(), Asset: "usd", To: "alice", Quantity: "100"}))
	mustTx(t)(l.Issue(ctx, ledger.Issue{IdempotencyKey: k.next(), Asset: "usd", To: "bob", Quantity: "50"}))
	f.openTx = mustTx(t)(l.Hold(ctx, ledger.Hold{IdempotencyKey: k.next(), Asset: "usd", From: "alice", Quantity: "30"}))
	f.open = f.openTx.ID
	f.rolledBackTx = mustTx(t)(l.Hold(ctx, ledger.Hold{IdempotencyKey: k.next(), Asset: "usd", From: "alice", Quantity: "5"}))
	f.rolledBack = f.rolledBackTx.ID
	mustTx(t)(l.Rollback(ctx, ledger.Rollback{IdempotencyKey: k.next(), HoldID: f.rolledBack}))
	f.released = mustTx(t)(l.Hold(ctx, ledger.Hold{IdempotencyKey: k.next(), Asset: "usd", From: "bob", Quantity: "10"})).ID
	mustTx(t)(l.Release(ctx, ledger.Release{IdempotencyKey: k.next(), HoldID: f.released, To: "carol"}))
	wantBalance(t, l, "usd", "alice", "100", "70", "30")
	wantBalance(t, l, "usd", "bob", "40", "40", "0")
	wantBalance(t, l, "usd", "carol", "10", "10", "0")
	wantSupply(t, l, "usd", "150")
	return f
}

// TestOperations runs each operation, or a failing variant of it, on a fresh
// fixture and checks the transaction or the error, and the balances after.
func TestOperations(t *testing.T) {
	type account struct{ current, available, held string }
	unchanged := map[string]account{
		"alice": {"100", "70", "30"},
		"bob":   {"40", "40", "0"},
		"carol": {"10", "10", "0"},
	}
	with := func(changes map[string]account) map[string]account {
		m := make(map[string]account)
		for k, v := range unchanged {
			m[k] = v
		}
		for k, v := range changes {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name     string
		do       func(ctx context.Context, f fixture, key string) (ledger.Transaction, error)
		want     ledger.Transaction // fields checked when err is nil; ID and hashes ignored
		err      error
		problems []string
		balances map[string]account // of usd after the operation
		supply   string
	}{
		{
			name: "create asset",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.CreateAsset(ctx, ledger.CreateAsset{IdempotencyKey: key, Asset: "eur", Decimals: 0})
			},
			want: ledger.Transaction{Operation: ledger.OpCreateAsset, Asset: "eur"},
		},
		{
			name: "create existing asset",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.CreateAsset(ctx, ledger.CreateAsset{IdempotencyKey: key, Asset: "usd", Decimals: 2})
			},
			err: ledger.ErrAssetExists, problems: []string{"create-asset", `"usd"`},
		},
		{
			name: "create with too many decimals",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.CreateAsset(ctx, ledger.CreateAsset{IdempotencyKey: key, Asset: "x", Decimals: 19})
			},
			err: ledger.ErrBadRequest, problems: []string{"decimals 19"},
		},
		{
			name: "issue",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Issue(ctx, ledger.Issue{IdempotencyKey: key, Asset: "usd", To: "dave", Quantity: "12.50"})
			},
			want:     ledger.Transaction{Operation: ledger.OpIssue, Asset: "usd", To: "dave", Quantity: "12.5"},
			balances: with(map[string]account{"dave": {"12.5", "12.5", "0"}}),
			supply:   "162.5",
		},
		{
			name: "issue of unknown asset",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Issue(ctx, ledger.Issue{IdempotencyKey: key, Asset: "gbp", To: "dave", Quantity: "1"})
			},
			err: ledger.ErrUnknownAsset, problems: []string{`"gbp"`},
		},
		{
			name: "issue of zero",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Issue(ctx, ledger.Issue{IdempotencyKey: key, Asset: "usd", To: "dave", Quantity: "0.00"})
			},
			err: ledger.ErrBadQuantity, problems: []string{"zero"},
		},
		{
			name: "issue of negative quantity",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Issue(ctx, ledger.Issue{IdempotencyKey: key, Asset: "usd", To: "dave", Quantity: "-5"})
			},
			err: ledger.ErrBadQuantity, problems: []string{"negative"},
		},
		{
			name: "issue of malformed quantity",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Issue(ctx, ledger.Issue{IdempotencyKey: key, Asset: "usd", To: "dave", Quantity: "1e3"})
			},
			err: ledger.ErrBadQuantity, problems: []string{"exponent"},
		},
		{
			name: "issue with too many decimals",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Issue(ctx, ledger.Issue{IdempotencyKey: key, Asset: "usd", To: "dave", Quantity: "1.001"})
			},
			err: ledger.ErrBadQuantity, problems: []string{"too many decimal places: 3, asset has 2"},
		},
		{
			name: "issue of empty quantity",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Issue(ctx, ledger.Issue{IdempotencyKey: key, Asset: "usd", To: "dave"})
			},
			err: ledger.ErrBadQuantity, problems: []string{"empty"},
		},
		{
			name: "issue without idempotency key",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Issue(ctx, ledger.Issue{Asset: "usd", To: "dave", Quantity: "1"})
			},
			err: ledger.ErrBadRequest, problems: []string{"missing idempotency key"},
		},
		{
			name: "issue past the supply limit",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				q := "999999999999999999999999999999999999999999999999999999999999999999999999999999"
				return f.l.Issue(ctx, ledger.Issue{IdempotencyKey: key, Asset: "usd", To: "dave", Quantity: q})
			},
			err: ledger.ErrBadQuantity, problems: []string{"78 integer digits"},
		},
		{
			name: "transfer",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Transfer(ctx, ledger.Transfer{IdempotencyKey: key, Asset: "usd", From: "alice", To: "bob", Quantity: "20.05"})
			},
			want: ledger.Transaction{Operation: ledger.OpTransfer, Asset: "usd", From: "alice", To: "bob", Quantity: "20.05"},
			balances: with(map[string]account{
				"alice": {"79.95", "49.95", "30"},
				"bob":   {"60.05", "60.05", "0"},
			}),
		},
		{
			name: "transfer of all available to a new account",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Transfer(ctx, ledger.Transfer{IdempotencyKey: key, Asset: "usd", From: "alice", To: "dave", Quantity: "70"})
			},
			want: ledger.Transaction{Operation: ledger.OpTransfer, Asset: "usd", From: "alice", To: "dave", Quantity: "70"},
			balances: with(map[string]account{
				"alice": {"30", "0", "30"},
				"dave":  {"70", "70", "0"},
			}),
		},
		{
			name: "transfer to self",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Transfer(ctx, ledger.Transfer{IdempotencyKey: key, Asset: "usd", From: "bob", To: "bob", Quantity: "1"})
			},
			err: ledger.ErrBadRequest, problems: []string{"to itself"},
		},
		{
			name: "transfer from unknown account",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Transfer(ctx, ledger.Transfer{IdempotencyKey: key, Asset: "usd", From: "dave", To: "bob", Quantity: "1"})
			},
			err: ledger.ErrUnknownAccount, problems: []string{`"dave"`, `"usd"`},
		},
		{
			name: "transfer of unknown asset",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Transfer(ctx, ledger.Transfer{IdempotencyKey: key, Asset: "gbp", From: "alice", To: "bob", Quantity: "1"})
			},
			err: ledger.ErrUnknownAsset, problems: []string{`"gbp"`},
		},
		{
			name: "transfer beyond the balance",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Transfer(ctx, ledger.Transfer{IdempotencyKey: key, Asset: "usd", From: "bob", To: "alice", Quantity: "40.01"})
			},
			err: ledger.ErrInsufficientBalance, problems: []string{`"bob" has 40 of "usd" available (0 held), wanted 40.01`},
		},
		{
			name: "transfer of held funds",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Transfer(ctx, ledger.Transfer{IdempotencyKey: key, Asset: "usd", From: "alice", To: "bob", Quantity: "80"})
			},
			err: ledger.ErrInsufficientBalance, problems: []string{`"alice" has 70 of "usd" available (30 held), wanted 80`},
		},
		{
			name: "transfer of zero",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Transfer(ctx, ledger.Transfer{IdempotencyKey: key, Asset: "usd", From: "alice", To: "bob", Quantity: "0"})
			},
			err: ledger.ErrBadQuantity, problems: []string{"zero"},
		},
		{
			name: "transfer of malformed quantity",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Transfer(ctx, ledger.Transfer{IdempotencyKey: key, Asset: "usd", From: "alice", To: "bob", Quantity: "1,5"})
			},
			err: ledger.ErrBadQuantity, problems: []string{"separator"},
		},
		{
			name: "redeem",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Redeem(ctx, ledger.Redeem{IdempotencyKey: key, Asset: "usd", From: "bob", Quantity: "15.5"})
			},
			want:     ledger.Transaction{Operation: ledger.OpRedeem, Asset: "usd", From: "bob", Quantity: "15.5"},
			balances: with(map[string]account{"bob": {"24.5", "24.5", "0"}}),
			supply:   "134.5",
		},
		{
			name: "redeem of held funds",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Redeem(ctx, ledger.Redeem{IdempotencyKey: key, Asset: "usd", From: "alice", Quantity: "71"})
			},
			err: ledger.ErrInsufficientBalance, problems: []string{"70", "30 held", "wanted 71"},
		},
		{
			name: "redeem from unknown account",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Redeem(ctx, ledger.Redeem{IdempotencyKey: key, Asset: "usd", From: "dave", Quantity: "1"})
			},
			err: ledger.ErrUnknownAccount, problems: []string{`"dave"`},
		},
		{
			name: "redeem of negative quantity",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Redeem(ctx, ledger.Redeem{IdempotencyKey: key, Asset: "usd", From: "bob", Quantity: "-1"})
			},
			err: ledger.ErrBadQuantity, problems: []string{"negative"},
		},
		{
			name: "hold",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Hold(ctx, ledger.Hold{IdempotencyKey: key, Asset: "usd", From: "bob", Quantity: "40"})
			},
			want:     ledger.Transaction{Operation: ledger.OpHold, Asset: "usd", From: "bob", Quantity: "40"},
			balances: with(map[string]account{"bob": {"40", "0", "40"}}),
		},
		{
			name: "hold of held funds",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Hold(ctx, ledger.Hold{IdempotencyKey: key, Asset: "usd", From: "alice", Quantity: "70.01"})
			},
			err: ledger.ErrInsufficientBalance, problems: []string{"70", "30 held", "wanted 70.01"},
		},
		{
			name: "hold from unknown account",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Hold(ctx, ledger.Hold{IdempotencyKey: key, Asset: "usd", From: "dave", Quantity: "1"})
			},
			err: ledger.ErrUnknownAccount,
		},
		{
			name: "hold of unknown asset",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Hold(ctx, ledger.Hold{IdempotencyKey: key, Asset: "gbp", From: "alice", Quantity: "1"})
			},
			err: ledger.ErrUnknownAsset,
		},
		{
			name: "hold of zero",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Hold(ctx, ledger.Hold{IdempotencyKey: key, Asset: "usd", From: "alice", Quantity: "0.0"})
			},
			err: ledger.ErrBadQuantity, problems: []string{"zero"},
		},
		{
			name: "release",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Release(ctx, ledger.Release{IdempotencyKey: key, HoldID: f.open, To: "bob"})
			},
			want: ledger.Transaction{Operation: ledger.OpRelease, Asset: "usd", From: "alice", To: "bob", Quantity: "30"},
			balances: with(map[string]account{
				"alice": {"70", "70", "0"},
				"bob":   {"70", "70", "0"},
			}),
		},
		{
			name: "release to a new account",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Release(ctx, ledger.Release{IdempotencyKey: key, HoldID: f.open, To: "dave"})
			},
			want: ledger.Transaction{Operation: ledger.OpRelease, Asset: "usd", From: "alice", To: "dave", Quantity: "30"},
			balances: with(map[string]account{
				"alice": {"70", "70", "0"},
				"dave":  {"30", "30", "0"},
			}),
		},
		{
			name: "release of unknown hold",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Release(ctx, ledger.Release{IdempotencyKey: key, HoldID: "no-such-hold", To: "bob"})
			},
			err: ledger.ErrUnknownHold, problems: []string{`"no-such-hold"`},
		},
		{
			name: "release of rolled back hold",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Release(ctx, ledger.Release{IdempotencyKey: key, HoldID: f.rolledBack, To: "bob"})
			},
			err: ledger.ErrHoldClosed, problems: []string{"closed by rollback"},
		},
		{
			name: "release of released hold",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Release(ctx, ledger.Release{IdempotencyKey: key, HoldID: f.released, To: "carol"})
			},
			err: ledger.ErrHoldClosed, problems: []string{"closed by release"},
		},
		{
			name: "release to the holder",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Release(ctx, ledger.Release{IdempotencyKey: key, HoldID: f.open, To: "alice"})
			},
			err: ledger.ErrBadRequest, problems: []string{"to its holder"},
		},
		{
			name: "release without recipient",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Release(ctx, ledger.Release{IdempotencyKey: key, HoldID: f.open})
			},
			err: ledger.ErrBadRequest, problems: []string{"missing to"},
		},
		{
			name: "rollback",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Rollback(ctx, ledger.Rollback{IdempotencyKey: key, HoldID: f.open})
			},
			want:     ledger.Transaction{Operation: ledger.OpRollback, Asset: "usd", From: "alice", Quantity: "30"},
			balances: with(map[string]account{"alice": {"100", "100", "0"}}),
		},
		{
			name: "rollback of unknown hold",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Rollback(ctx, ledger.Rollback{IdempotencyKey: key, HoldID: "no-such-hold"})
			},
			err: ledger.ErrUnknownHold,
		},
		{
			name: "rollback of rolled back hold",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Rollback(ctx, ledger.Rollback{IdempotencyKey: key, HoldID: f.rolledBack})
			},
			err: ledger.ErrHoldClosed, problems: []string{"closed by rollback"},
		},
		{
			name: "rollback of released hold",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				return f.l.Rollback(ctx, ledger.Rollback{IdempotencyKey: key, HoldID: f.released})
			},
			err: ledger.ErrHoldClosed, problems: []string{"closed by release"},
		},
		{
			name: "cancelled context",
			do: func(ctx context.Context, f fixture, key string) (ledger.Transaction, error) {
				ctx, cancel := context.WithCancel(ctx)
				cancel()
				return f.l.Transfer(ctx, ledger.Transfer{IdempotencyKey: key, Asset: "usd", From: "alice", To: "bob", Quantity: "1"})
			},
			err: context.Canceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t)
			before := mustVersion(t)(f.l.Version(ctx))
			tx, err := tt.do(ctx, f, f.keys.next())
			after := mustVersion(t)(f.l.Version(ctx))
			if tt.err != nil {
				wantError(t, err, tt.err, tt.problems...)
				if after != before {
					t.Errorf("failed operation moved the version from %d to %d", before, after)
				}
				if !reflect.DeepEqual(tx, ledger.Transaction{}) {
					t.Errorf("failed operation returned transaction %+v", tx)
				}
			} else {
				if err != nil {
					t.Fatalf("operation: %v", err)
				}
				if after != before+1 || tx.Version != after {
					t.Errorf("version %d → %d, transaction version %d; want one step", before, after, tx.Version)
				}
				got := tx
				got.ID, got.LedgerID, got.IdempotencyKey, got.Version, got.Hash, got.PrevHash = "", "", "", 0, "", ""
				got.Timestamp, got.HoldID, got.Decimals = tt.want.Timestamp, tt.want.HoldID, tt.want.Decimals
				if got != tt.want {
					t.Errorf("transaction = %+v, want %+v", got, tt.want)
				}
				if tx.LedgerID != testLedgerID || len(tx.ID) != 32 || len(tx.Hash) != 64 {
					t.Errorf("transaction id %q ledger %q hash %q", tx.ID, tx.LedgerID, tx.Hash)
				}
				if stored := mustTx(t)(f.l.Transaction(ctx, tx.ID)); !reflect.DeepEqual(stored, tx) {
					t.Errorf("stored transaction %+v, returned %+v", stored, tx)
				}
			}
			balances := tt.balances
			if balances == nil {
				balances = unchanged
			}
			for name, b := range balances {
				wantBalance(t, f.l, "usd", name, b.current, b.available, b.held)
			}
			supply := tt.supply
			if supply == "" {
				supply = "150"
			}
			wantSupply(t, f.l, "usd", supply)
			if err := f.l.Verify(ctx); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestHoldRelease(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	hold := mustTx(t)(f.l.Hold(ctx, ledger.Hold{IdempotencyKey: "h", Asset: "usd", From: "bob", Quantity: "12.34"}))
	wantBalance(t, f.l, "usd", "bob", "40", "27.66", "12.34")
	rel := mustTx(t)(f.l.Release(ctx, ledger.Release{IdempotencyKey: "r", HoldID: hold.ID, To: "carol"}))
	want := ledger.Transaction{Operation: ledger.OpRelease, Asset: "usd", From: "bob", To: "carol", Quantity: "12.34", HoldID: hold.ID}
	if rel.Operation != want.Operation || rel.Asset != want.Asset || rel.From != want.From || rel.To != want.To ||
		rel.Quantity != want.Quantity || rel.HoldID != want.HoldID || rel.ID == hold.ID {
		t.Errorf("release = %+v, want %+v", rel, want)
	}
	wantBalance(t, f.l, "usd", "bob", "27.66", "27.66", "0")
	wantBalance(t, f.l, "usd", "carol", "22.34", "22.34", "0")
	wantSupply(t, f.l, "usd", "150")
	_, err := f.l.Rollback(ctx, ledger.Rollback{IdempotencyKey: "rb", HoldID: hold.ID})
	wantError(t, err, ledger.ErrHoldClosed, hold.ID, rel.ID)
}

func TestHoldRollback(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	hold := mustTx(t)(f.l.Hold(ctx, ledger.Hold{IdempotencyKey: "h", Asset: "usd", From: "bob", Quantity: "0.01"}))
	wantBalance(t, f.l, "usd", "bob", "40", "39.99", "0.01")
	rb := mustTx(t)(f.l.Rollback(ctx, ledger.Rollback{IdempotencyKey: "rb", HoldID: hold.ID}))
	if rb.Operation != ledger.OpRollback || rb.HoldID != hold.ID || rb.From != "bob" || rb.To != "" || rb.Quantity != "0.01" {
		t.Errorf("rollback = %+v", rb)
	}
	wantBalance(t, f.l, "usd", "bob", "40", "40", "0")
	_, err := f.l.Release(ctx, ledger.Release{IdempotencyKey: "r", HoldID: hold.ID, To: "carol"})
	wantError(t, err, ledger.ErrHoldClosed, hold.ID)
	wantBalance(t, f.l, "usd", "carol", "10", "10", "0")
}

func TestBalanceOfUnknown(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	wantBalance(t, f.l, "usd", "nobody", "0", "0", "0")
	_, err := f.l.Balance(ctx, "gbp", "alice")
	wantError(t, err, ledger.ErrUnknownAsset, `"gbp"`)
	_, err = f.l.Balance(ctx, "usd", "")
	wantError(t, err, ledger.ErrBadRequest, "missing account")
	_, err = f.l.Supply(ctx, "gbp")
	wantError(t, err, ledger.ErrUnknownAsset)
}

func TestIdempotency(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	l := f.l

	req := ledger.Transfer{IdempotencyKey: "pay-1", Asset: "usd", From: "alice", To: "bob", Quantity: "1.50"}
	first := mustTx(t)(l.Transfer(ctx, req))
	version := mustVersion(t)(l.Version(ctx))
	for _, q := range []string{"1.50", "1.5"} { // the same quantity in another form
		req.Quantity = q
		again, err := l.Transfer(ctx, req)
		if err != nil {
			t.Fatalf("retry with %s: %v", q, err)
		}
		if !reflect.DeepEqual(again, first) {
			t.Errorf("retry returned %+v, want the original %+v", again, first)
		}
	}
	if v := mustVersion(t)(l.Version(ctx)); v != version {
		t.Errorf("retries moved the version from %d to %d", version, v)
	}
	wantBalance(t, l, "usd", "alice", "98.5", "68.5", "30")
	wantBalance(t, l, "usd", "bob", "41.5", "41.5", "0")

	conflicts := []struct {
		name     string
		do       func() (ledger.Transaction, error)
		problems []string
	}{
		{"other quantity", func() (ledger.Transaction, error) {
			return l.Transfer(ctx, ledger.Transfer{IdempotencyKey: "pay-1", Asset: "usd", From: "alice", To: "bob", Quantity: "2"})
		}, []string{"quantity", first.ID}},
		{"other recipient", func() (ledger.Transaction, error) {
			return l.Transfer(ctx, ledger.Transfer{IdempotencyKey: "pay-1", Asset: "usd", From: "alice", To: "carol", Quantity: "1.5"})
		}, []string{"to"}},
		{"other operation", func() (ledger.Transaction, error) {
			return l.Redeem(ctx, ledger.Redeem{IdempotencyKey: "pay-1", Asset: "usd", From: "alice", Quantity: "1.5"})
		}, []string{"operation", "transfer"}},
		{"create asset", func() (ledger.Transaction, error) {
			return l.CreateAsset(ctx, ledger.CreateAsset{IdempotencyKey: "pay-1", Asset: "chf", Decimals: 2})
		}, []string{"operation"}},
		{"rollback", func() (ledger.Transaction, error) {
			return l.Rollback(ctx, ledger.Rollback{IdempotencyKey: "pay-1", HoldID: f.open})
		}, []string{"operation"}},
	}
	for _, c := range conflicts {
		_, err := c.do()
		if !errors.Is(err, ledger.ErrIdempotencyConflict) {
			t.Errorf("%s: error = %v, want ErrIdempotencyConflict", c.name, err)
			continue
		}
		wantError(t, err, ledger.ErrIdempotencyConflict, c.problems...)
	}
	if v := mustVersion(t)(l.Version(ctx)); v != version {
		t.Errorf("conflicts moved the version from %d to %d", version, v)
	}

	// A retried hold returns the same hold; a retried release returns the
	// original settlement although the hold is now closed; a retried create
	// returns the creation rather than ErrAssetExists.
	hreq := ledger.Hold{IdempotencyKey: "hold-1", Asset: "usd", From: "bob", Quantity: "1"}
	h1, h2 := mustTx(t)(l.Hold(ctx, hreq)), mustTx(t)(l.Hold(ctx, hreq))
	if h1.ID != h2.ID {
		t.Errorf("retried hold has id %s, want %s", h2.ID, h1.ID)
	}
	wantBalance(t, l, "usd", "bob", "41.5", "40.5", "1")
	rreq := ledger.Release{IdempotencyKey: "release-1", HoldID: h1.ID, To: "carol"}
	r1, r2 := mustTx(t)(l.Release(ctx, rreq)), mustTx(t)(l.Release(ctx, rreq))
	if !reflect.DeepEqual(r1, r2) {
		t.Errorf("retried release = %+v, want %+v", r2, r1)
	}
	wantBalance(t, l, "usd", "carol", "11", "11", "0")
	creq := ledger.CreateAsset{IdempotencyKey: "create-chf", Asset: "chf", Decimals: 2}
	c1, c2 := mustTx(t)(l.CreateAsset(ctx, creq)), mustTx(t)(l.CreateAsset(ctx, creq))
	if !reflect.DeepEqual(c1, c2) {
		t.Errorf("retried create = %+v, want %+v", c2, c1)
	}
	creq.Decimals = 3
	_, err := l.CreateAsset(ctx, creq)
	wantError(t, err, ledger.ErrIdempotencyConflict, "decimals")

	// A refused operation does not use up its key.
	big := ledger.Transfer{IdempotencyKey: "pay-2", Asset: "usd", From: "carol", To: "bob", Quantity: "20"}
	_, err = l.Transfer(ctx, big)
	wantError(t, err, ledger.ErrInsufficientBalance)
	if st := mustStatus(t)(l.Status(ctx, "pay-2")); st.Done {
		t.Errorf("status of a refused operation: %+v", st)
	}
	mustTx(t)(l.Issue(ctx, ledger.Issue{IdempotencyKey: "top-up", Asset: "usd", To: "carol", Quantity: "9"}))
	mustTx(t)(l.Transfer(ctx, big))
	wantBalance(t, l, "usd", "carol", "0", "0", "0")

	if err := l.Verify(ctx); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestStatusAndTransaction(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	l := f.l

	st := mustStatus(t)(l.Status(ctx, "never-used"))
	if st.Done || st.Transaction != nil || st.IdempotencyKey != "never-used" {
		t.Errorf("status of an unused key = %+v", st)
	}
	_, err := l.Status(ctx, "")
	wantError(t, err, ledger.ErrBadRequest, "missing idempotency key")

	tx := mustTx(t)(l.Redeem(ctx, ledger.Redeem{IdempotencyKey: "redeem-1", Asset: "usd", From: "carol", Quantity: "1"}))
	st = mustStatus(t)(l.Status(ctx, "redeem-1"))
	if !st.Done || st.Transaction == nil || !reflect.DeepEqual(*st.Transaction, tx) {
		t.Errorf("status = %+v, want done with %+v", st, tx)
	}

	// Every journal entry is found by id, and by its idempotency key.
	all := mustJournal(t)(l.Journal(ctx, 0, 1000))
	if len(all) != int(tx.Version) {
		t.Fatalf("journal has %d entries, want %d", len(all), tx.Version)
	}
	for _, want := range all {
		got := mustTx(t)(l.Transaction(ctx, want.ID))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Transaction(%s) = %+v, want %+v", want.ID, got, want)
		}
		st := mustStatus(t)(l.Status(ctx, want.IdempotencyKey))
		if !st.Done || st.Transaction.ID != want.ID {
			t.Errorf("Status(%s) = %+v, want %s", want.IdempotencyKey, st, want.ID)
		}
	}
	if got := mustTx(t)(l.Transaction(ctx, f.open)); got.ID != f.open || got.Operation != ledger.OpHold {
		t.Errorf("Transaction(hold id) = %+v", got)
	}
	for _, id := range []string{"0123456789abcdef0123456789abcdef", "../head", "/journal/00000000000000000001", "."} {
		_, err := l.Transaction(ctx, id)
		wantError(t, err, ledger.ErrUnknownTransaction)
	}
	_, err = l.Transaction(ctx, "")
	wantError(t, err, ledger.ErrBadRequest)
}

func TestJournalChain(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	l := f.l
	if v := mustVersion(t)(l.Version(ctx)); v != 8 {
		t.Fatalf("fixture version %d, want 8", v)
	}
	all := mustJournal(t)(l.Journal(ctx, 1, 100))
	prev := genesisHash
	var last ledger.Transaction
	for i, tx := range all {
		if tx.Version != uint64(i+1) {
			t.Errorf("entry %d has version %d", i, tx.Version)
		}
		if tx.PrevHash != prev {
			t.Errorf("version %d prev_hash %s, want %s", tx.Version, tx.PrevHash, prev)
		}
		if h := mustString(t)(TransactionHash(tx)); h != tx.Hash {
			t.Errorf("version %d hash %s, recomputed %s", tx.Version, tx.Hash, h)
		}
		if i > 0 && !tx.Timestamp.After(last.Timestamp) {
			t.Errorf("version %d timestamp %v not after %v", tx.Version, tx.Timestamp, last.Timestamp)
		}
		prev, last = tx.Hash, tx
	}
	if all[0].Operation != ledger.OpCreateAsset || all[0].Decimals != 2 {
		t.Errorf("version 1 = %+v, want create-asset with 2 decimals", all[0])
	}
	page := mustJournal(t)(l.Journal(ctx, 4, 3))
	if len(page) != 3 || page[0].Version != 4 || page[2].Version != 6 {
		t.Errorf("Journal(4, 3) gave %d entries from version %d", len(page), page[0].Version)
	}
	if tail := mustJournal(t)(l.Journal(ctx, 8, 10)); len(tail) != 1 {
		t.Errorf("Journal(8, 10) gave %d entries, want 1", len(tail))
	}
	if beyond := mustJournal(t)(l.Journal(ctx, 9, 10)); len(beyond) != 0 {
		t.Errorf("Journal(9, 10) gave %d entries, want 0", len(beyond))
	}
	_, err := l.Journal(ctx, 1, 0)
	wantError(t, err, ledger.ErrBadRequest, "limit")

	// Any change to a hashed field changes the hash.
	tx := all[3]
	for name, change := range map[string]func(*ledger.Transaction){
		"id":        func(tx *ledger.Transaction) { tx.ID += "0" },
		"ledger":    func(tx *ledger.Transaction) { tx.LedgerID = "other" },
		"operation": func(tx *ledger.Transaction) { tx.Operation = ledger.OpRedeem },
		"asset":     func(tx *ledger.Transaction) { tx.Asset = "eur" },
		"from":      func(tx *ledger.Transaction) { tx.From = "mallory" },
		"to":        func(tx *ledger.Transaction) { tx.To = "mallory" },
		"quantity":  func(tx *ledger.Transaction) { tx.Quantity = "300" },
		"hold":      func(tx *ledger.Transaction) { tx.HoldID = "x" },
		"decimals":  func(tx *ledger.Transaction) { tx.Decimals = 1 },
		"key":       func(tx *ledger.Transaction) { tx.IdempotencyKey = "k" },
		"version":   func(tx *ledger.Transaction) { tx.Version++ },
		"prev":      func(tx *ledger.Transaction) { tx.PrevHash = all[0].Hash },
		"time":      func(tx *ledger.Transaction) { tx.Timestamp = tx.Timestamp.Add(1) },
		// Length prefixes keep field boundaries: moving a character from
		// one field to the next changes the hash.
		"boundary": func(tx *ledger.Transaction) { tx.From, tx.To = tx.From+"x", "" },
	} {
		changed := tx
		change(&changed)
		if h := mustString(t)(TransactionHash(changed)); h == tx.Hash {
			t.Errorf("changing %s keeps the hash", name)
		}
	}
}

func TestKeyEscaping(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, memStore())
	for i, a := range []string{"a", "a/b", ".", "..", ".hidden", "%2F", "org:asset:1"} {
		mustTx(t)(l.CreateAsset(ctx, ledger.CreateAsset{IdempotencyKey: "c" + a, Asset: a, Decimals: 0}))
		q := string(rune('1' + i))
		mustTx(t)(l.Issue(ctx, ledger.Issue{IdempotencyKey: "i" + a, Asset: a, To: "b/c", Quantity: q}))
	}
	mustTx(t)(l.Issue(ctx, ledger.Issue{IdempotencyKey: "/idem/x", Asset: "a", To: "..", Quantity: "9"}))
	wantBalance(t, l, "a", "b/c", "1", "1", "0")
	wantBalance(t, l, "a/b", "c", "0", "0", "0")
	wantBalance(t, l, "a/b", "b/c", "2", "2", "0")
	wantBalance(t, l, ".", "b/c", "3", "3", "0")
	wantBalance(t, l, "..", "b/c", "4", "4", "0")
	wantBalance(t, l, "%2F", "b/c", "6", "6", "0")
	wantBalance(t, l, "a", "..", "9", "9", "0")
	wantBalance(t, l, "a", ".", "0", "0", "0")
	if st := mustStatus(t)(l.Status(ctx, "/idem/x")); !st.Done {
		t.Error("key with slashes not found")
	}
	if err := l.Verify(ctx); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	if _, err := Open(ctx, nil, testLedgerID); err == nil {
		t.Error("Open with nil datastore succeeded")
	}
	_, err := Open(ctx, memStore(), "")
	wantError(t, err, ledger.ErrBadRequest, "ledger id")
	if _, err := Open(ctx, memStore(), testLedgerID, WithClock(nil)); err == nil {
		t.Error("Open with nil clock succeeded")
	}

	ds := memStore()
	l := openTest(t, ds)
	if v := mustVersion(t)(l.Version(ctx)); v != 0 {
		t.Errorf("new ledger version %d", v)
	}
	if err := l.Verify(ctx); err != nil {
		t.Errorf("Verify of empty ledger: %v", err)
	}
	if l.ID() != testLedgerID {
		t.Errorf("ID = %q", l.ID())
	}
	mustTx(t)(l.CreateAsset(ctx, ledger.CreateAsset{IdempotencyKey: "c", Asset: "usd", Decimals: 2}))
	_, err = Open(ctx, ds, "org-c:ledger")
	wantError(t, err, ledger.ErrBadRequest, `holds ledger "org-b:ledger"`)
}
