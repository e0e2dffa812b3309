package embedded

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"

	"github.com/finp2p/go-finp2p/ledger"
)

// The assets and accounts runPrimary transacts in.
var (
	primaryAssets = []struct {
		id       string
		decimals int
	}{{"usd", 2}, {"pts", 0}, {"gold", 6}}
	primaryAccounts = []string{"alice", "bob", "carol", "dave"}
)

// runPrimary creates primaryAssets, issues each to every primaryAccount,
// (again: a second run's creates and issues are idempotent retries), then
// runs n random operations of every kind on l (operations the state refuses
// are skipped), and creates one asset more half-way.
func runPrimary(t testing.TB, l *Ledger, seed uint64, n int) {
	t.Helper()
	ctx := context.Background()
	for _, a := range primaryAssets {
		mustTx(t)(l.CreateAsset(ctx, ledger.CreateAsset{IdempotencyKey: "create-" + a.id, Asset: a.id, Decimals: a.decimals}))
		for _, acct := range primaryAccounts {
			mustTx(t)(l.Issue(ctx, ledger.Issue{IdempotencyKey: "issue-" + a.id + "-" + acct, Asset: a.id, To: acct, Quantity: "100"}))
		}
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	var holds []ledger.Transaction // open, oldest first
	for i := range n {
		key := fmt.Sprintf("op-%d-%d", seed, i)
		if i == n/2 {
			mustTx(t)(l.CreateAsset(ctx, ledger.CreateAsset{IdempotencyKey: key, Asset: fmt.Sprintf("late-%d", seed), Decimals: 3}))
			continue
		}
		a := primaryAssets[rng.IntN(len(primaryAssets))]
		q := fmt.Sprint(1 + rng.IntN(30))
		if a.decimals > 0 {
			q += fmt.Sprintf(".%0*d", a.decimals, rng.IntN(100))
		}
		from := primaryAccounts[rng.IntN(len(primaryAccounts))]
		to := primaryAccounts[rng.IntN(len(primaryAccounts))]
		var tx ledger.Transaction
		var err error
		switch r := rng.IntN(12); {
		case r < 3 && len(holds) > 0:
			h := holds[0]
			holds = holds[1:]
			if r < 2 && h.From != to {
				tx, err = l.Release(ctx, ledger.Release{IdempotencyKey: key, HoldID: h.ID, To: to})
			} else {
				tx, err = l.Rollback(ctx, ledger.Rollback{IdempotencyKey: key, HoldID: h.ID})
			}
		case r < 5:
			tx, err = l.Hold(ctx, ledger.Hold{IdempotencyKey: key, Asset: a.id, From: from, Quantity: q})
			if err == nil {
				holds = append(holds, tx)
			}
		case r < 6:
			tx, err = l.Redeem(ctx, ledger.Redeem{IdempotencyKey: key, Asset: a.id, From: from, Quantity: q})
		case r < 7:
			tx, err = l.Issue(ctx, ledger.Issue{IdempotencyKey: key, Asset: a.id, To: to, Quantity: q})
		default:
			if from == to {
				continue
			}
			tx, err = l.Transfer(ctx, ledger.Transfer{IdempotencyKey: key, Asset: a.id, From: from, To: to, Quantity: q})
		}
		if err != nil && !errors.Is(err, ledger.ErrInsufficientBalance) {
			t.Fatalf("primary operation %d: %v", i, err)
		}
		_ = tx
	}
}

// replicate applies the primary's journal after the follower's head to the
// follower, entry by entry.
func replicate(t testing.TB, primary, follower *Ledger) {
	t.Helper()
	ctx := context.Background()
	for {
		head, _ := follower.Head()
		txs := mustJournal(t)(primary.Journal(ctx, head+1, 50))
		if len(txs) == 0 {
			return
		}
		for _, tx := range txs {
			if err := follower.Apply(ctx, tx); err != nil {
				t.Fatalf("Apply: %v", err)
			}
		}
	}
}

// wantSameLedger checks that follower holds what primary holds: head,
// journal, every transaction and idempotency record, every asset's supply
// and every account's balance, and that the follower verifies.
func wantSameLedger(t testing.TB, primary, follower *Ledger) {
	t.Helper()
	ctx := context.Background()
	pv, ph := primary.Head()
	fv, fh := follower.Head()
	if pv != fv || ph != fh {
		t.Fatalf("follower head version %d hash %s, primary version %d hash %s", fv, fh, pv, ph)
	}
	journal := mustJournal(t)(primary.Journal(ctx, 1, int(pv)+1))
	if got := mustJournal(t)(follower.Journal(ctx, 1, int(pv)+1)); !reflect.DeepEqual(got, journal) {
		t.Fatalf("follower journal differs from the primary's")
	}
	assets := map[string]bool{}
	for _, tx := range journal {
		assets[tx.Asset] = true
		if got := mustTx(t)(follower.Transaction(ctx, tx.ID)); !reflect.DeepEqual(got, tx) {
			t.Errorf("follower Transaction(%s) = %+v, want %+v", tx.ID, got, tx)
		}
		if got := mustStatus(t)(follower.Status(ctx, tx.IdempotencyKey)); !got.Done || !reflect.DeepEqual(*got.Transaction, tx) {
			t.Errorf("follower Status(%s) = %+v", tx.IdempotencyKey, got)
		}
	}
	for a := range assets {
		if got, want := mustString(t)(follower.Supply(ctx, a)), mustString(t)(primary.Supply(ctx, a)); got != want {
			t.Errorf("follower supply of %s %s, primary %s", a, got, want)
		}
		for _, acct := range primaryAccounts {
			if got, want := mustBalance(t, follower, a, acct), mustBalance(t, primary, a, acct); got != want {
				t.Errorf("follower balance %+v, primary %+v", got, want)
			}
		}
	}
	if err := follower.Verify(ctx); err != nil {
		t.Fatalf("follower Verify: %v", err)
	}
}

// dump returns every record of ds.
func dump(t testing.TB, ds datastore.Read) map[string]string {
	t.Helper()
	res, err := ds.Query(context.Background(), query.Query{})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	m := map[string]string{}
	for r := range res.Next() {
		if r.Error != nil {
			t.Fatal(r.Error)
		}
		m[r.Key] = string(r.Value)
	}
	return m
}

// rehash returns tx with its hash recomputed, as a forger would.
func rehash(t testing.TB, tx ledger.Transaction) ledger.Transaction {
	t.Helper()
	h, err := TransactionHash(tx)
	if err != nil {
		t.Fatal(err)
	}
	tx.Hash = h
	return tx
}

// TestReplicate replicates a primary running every kind of operation to a
// read-only follower on a pebble datastore, checks that the follower holds
// the same ledger, and again after reopening the follower, which then
// follows the primary further.
func TestReplicate(t *testing.T) {
	ctx := context.Background()
	primary := openTest(t, memStore())
	runPrimary(t, primary, 1, 60)
	ops := map[ledger.Operation]int{}
	for _, tx := range mustJournal(t)(primary.Journal(ctx, 1, 1000)) {
		ops[tx.Operation]++
	}
	for _, op := range []ledger.Operation{ledger.OpCreateAsset, ledger.OpIssue, ledger.OpTransfer, ledger.OpRedeem,
		ledger.OpHold, ledger.OpRelease, ledger.OpRollback} {
		if ops[op] == 0 {
			t.Fatalf("the primary ran no %s: %v", op, ops)
		}
	}
	t.Logf("primary journal: %v", ops)

	dir := t.TempDir()
	ds := pebbleStore(t, dir)
	follower, err := Open(ctx, ds, testLedgerID, WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	replicate(t, primary, follower)
	wantSameLedger(t, primary, follower)
	if err := ds.Close(); err != nil {
		t.Fatal(err)
	}

	follower, err = Open(ctx, pebbleStore(t, dir), testLedgerID, WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	wantSameLedger(t, primary, follower)
	runPrimary(t, primary, 2, 30)
	replicate(t, primary, follower)
	wantSameLedger(t, primary, follower)
}

// TestApplyRedeliveryAndGap re-delivers applied entries, which changes
// nothing, and delivers one past a gap, which fails with ErrVersionGap and
// writes nothing, then fills the gap. The follower is an ordinary ledger:
// Apply does not need a replica.
func TestApplyRedeliveryAndGap(t *testing.T) {
	ctx := context.Background()
	primary := openTest(t, memStore())
	runPrimary(t, primary, 3, 10)
	journal := mustJournal(t)(primary.Journal(ctx, 1, 1000))
	n := len(journal)

	ds := memStore()
	follower := openTest(t, ds)
	for _, tx := range journal[:n-3] {
		if err := follower.Apply(ctx, tx); err != nil {
			t.Fatal(err)
		}
	}
	before := dump(t, ds)
	for _, v := range []int{1, n / 2, n - 3} {
		if err := follower.Apply(ctx, journal[v-1]); err != nil {
			t.Errorf("re-delivering version %d: %v", v, err)
		}
	}
	// A copy that crossed the network in another time zone is the same entry.
	moved := journal[n-4]
	moved.Timestamp = moved.Timestamp.In(time.FixedZone("UTC+5", 5*3600))
	if err := follower.Apply(ctx, moved); err != nil {
		t.Errorf("re-delivering version %d in another time zone: %v", n-3, err)
	}

	err := follower.Apply(ctx, journal[n-1])
	wantError(t, err, ErrVersionGap, fmt.Sprintf("replica is at version %d and got version %d", n-3, n))
	if got := dump(t, ds); !maps.Equal(got, before) {
		t.Errorf("re-delivery or a gap changed the follower's records")
	}
	if v, h := follower.Head(); v != uint64(n-3) || h != journal[n-4].Hash {
		t.Errorf("Head = %d %s, want %d %s", v, h, n-3, journal[n-4].Hash)
	}

	for _, tx := range journal[n-3:] {
		if err := follower.Apply(ctx, tx); err != nil {
			t.Fatalf("filling the gap: %v", err)
		}
	}
	wantSameLedger(t, primary, follower)
	// The ordinary ledger goes on by itself after the primary's entries.
	tx := mustTx(t)(follower.Transfer(ctx, ledger.Transfer{IdempotencyKey: "own", Asset: "usd", From: "alice", To: "bob", Quantity: "1"}))
	if tx.PrevHash != journal[n-1].Hash {
		t.Errorf("own transaction links to %s, want %s", tx.PrevHash, journal[n-1].Hash)
	}
}

// applyFixture is a primary whose last entry, next (version 5), transfers
// 10 usd from alice to bob, and a read-only follower at version 4: alice
// has 100 (70 available, hold 30), bob 50.
type applyFixture struct {
	primary, follower *Ledger
	ds                datastore.Batching // the follower's
	journal           []ledger.Transaction
	hold, next        ledger.Transaction
}

func newApplyFixture(t *testing.T) applyFixture {
	t.Helper()
	ctx := context.Background()
	f := applyFixture{primary: openTest(t, memStore()), ds: memStore()}
	p := f.primary
	mustTx(t)(p.CreateAsset(ctx, ledger.CreateAsset{IdempotencyKey: "create", Asset: "usd", Decimals: 2}))
	mustTx(t)(p.Issue(ctx, ledger.Issue{IdempotencyKey: "issue-a", Asset: "usd", To: "alice", Quantity: "100"}))
	mustTx(t)(p.Issue(ctx, ledger.Issue{IdempotencyKey: "issue-b", Asset: "usd", To: "bob", Quantity: "50"}))
	f.hold = mustTx(t)(p.Hold(ctx, ledger.Hold{IdempotencyKey: "hold", Asset: "usd", From: "alice", Quantity: "30"}))
	f.next = mustTx(t)(p.Transfer(ctx, ledger.Transfer{IdempotencyKey: "pay", Asset: "usd", From: "alice", To: "bob", Quantity: "10"}))
	f.journal = mustJournal(t)(p.Journal(ctx, 1, 10))
	var err error
	if f.follower, err = Open(ctx, f.ds, testLedgerID, WithReadOnly()); err != nil {
		t.Fatal(err)
	}
	for _, tx := range f.journal[:4] {
		if err := f.follower.Apply(ctx, tx); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// TestApplyRefusesTampering offers the follower entries that are not the
// primary's: each is refused with the right error, and the follower's
// records stay as they were. The primary's entry applies after them all.
func TestApplyRefusesTampering(t *testing.T) {
	ctx := context.Background()
	f := newApplyFixture(t)
	changed := func(edit func(tx *ledger.Transaction)) func() ledger.Transaction {
		return func() ledger.Transaction {
			tx := f.next
			edit(&tx)
			return tx
		}
	}
	rehashed := func(edit func(tx *ledger.Transaction)) func() ledger.Transaction {
		return func() ledger.Transaction { return rehash(t, changed(edit)()) }
	}
	issueBob := f.journal[2] // version 3: issue 50 to bob
	forgedIssue := issueBob
	forgedIssue.Quantity = "60"
	tests := []struct {
		name     string
		entry    func() ledger.Transaction
		err      error
		problems []string
	}{
		{
			name:     "quantity changed, hash kept",
			entry:    changed(func(tx *ledger.Transaction) { tx.Quantity = "5" }),
			err:      ErrDiverged,
			problems: []string{"version 5", "hash mismatch", f.next.Hash},
		},
		{
			name:     "timestamp changed, hash kept",
			entry:    changed(func(tx *ledger.Transaction) { tx.Timestamp = tx.Timestamp.Add(time.Nanosecond) }),
			err:      ErrDiverged,
			problems: []string{"hash mismatch"},
		},
		{
			name:     "transfer over the available balance, hash recomputed",
			entry:    rehashed(func(tx *ledger.Transaction) { tx.Quantity = "80" }),
			err:      ErrDiverged,
			problems: []string{"version 5", "transfer", "fails here", "insufficient balance", "70 of \"usd\" available"},
		},
		{
			name:     "quantity not in canonical form, hash recomputed",
			entry:    rehashed(func(tx *ledger.Transaction) { tx.Quantity = "10.00" }),
			err:      ErrDiverged,
			problems: []string{"version 5", "transfer", `quantity "10", not "10.00"`},
		},
		{
			name:     "field a transfer does not set, hash recomputed",
			entry:    rehashed(func(tx *ledger.Transaction) { tx.HoldID = f.hold.ID }),
			err:      ErrDiverged,
			problems: []string{`hold_id "", not "` + f.hold.ID + `"`},
		},
		{
			name:     "transfer to itself, hash recomputed",
			entry:    rehashed(func(tx *ledger.Transaction) { tx.To = "alice" }),
			err:      ErrDiverged,
			problems: []string{"transfer from \"alice\" to itself"},
		},
		{
			name:     "unknown asset, hash recomputed",
			entry:    rehashed(func(tx *ledger.Transaction) { tx.Asset = "eur" }),
			err:      ErrDiverged,
			problems: []string{"unknown asset", `"eur"`},
		},
		{
			name:     "idempotency key already committed, hash recomputed",
			entry:    rehashed(func(tx *ledger.Transaction) { tx.IdempotencyKey = "issue-b" }),
			err:      ErrDiverged,
			problems: []string{`idempotency key "issue-b" was already committed by version 3`},
		},
		{
			name:     "transaction id already used, hash recomputed",
			entry:    rehashed(func(tx *ledger.Transaction) { tx.ID = f.hold.ID }),
			err:      ErrDiverged,
			problems: []string{"transaction id " + f.hold.ID + " is already version 4"},
		},
		{
			name:     "unknown operation, hash recomputed",
			entry:    rehashed(func(tx *ledger.Transaction) { tx.Operation = "mint" }),
			err:      ErrDiverged,
			problems: []string{`unknown operation "mint"`},
		},
		{
			name: "release of an unknown hold, hash recomputed",
			entry: rehashed(func(tx *ledger.Transaction) {
				tx.Operation, tx.HoldID = ledger.OpRelease, "no-such-hold"
			}),
			err:      ErrDiverged,
			problems: []string{"release", "unknown hold", "no-such-hold"},
		},
		{
			name: "release of less than the hold, hash recomputed",
			entry: rehashed(func(tx *ledger.Transaction) {
				tx.Operation, tx.HoldID, tx.Quantity = ledger.OpRelease, f.hold.ID, "20"
			}),
			err:      ErrDiverged,
			problems: []string{"release", `quantity "30", not "20"`},
		},
		{
			name:     "timestamp out of range, hash recomputed",
			entry:    rehashed(func(tx *ledger.Transaction) { tx.Timestamp = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }),
			err:      ErrDiverged,
			problems: []string{"outside years 1..9999"},
		},
		{
			name:     "wrong prev hash, hash recomputed",
			entry:    rehashed(func(tx *ledger.Transaction) { tx.PrevHash = f.journal[2].Hash }),
			err:      ErrDiverged,
			problems: []string{"prev_hash " + f.journal[2].Hash, "hash " + f.journal[3].Hash + " of version 4"},
		},
		{
			name:     "wrong ledger id",
			entry:    rehashed(func(tx *ledger.Transaction) { tx.LedgerID = "org-c:ledger" }),
			err:      ledger.ErrBadRequest,
			problems: []string{`"org-c:ledger"`},
		},
		{
			name:     "version 0",
			entry:    changed(func(tx *ledger.Transaction) { tx.Version = 0 }),
			err:      ledger.ErrBadRequest,
			problems: []string{"version 0"},
		},
		{
			name:     "different entry at an applied version",
			entry:    func() ledger.Transaction { return rehash(t, forgedIssue) },
			err:      ErrDiverged,
			problems: []string{"version 3 here has hash " + issueBob.Hash, rehash(t, forgedIssue).Hash},
		},
		{
			name:     "applied entry with a field changed, hash kept",
			entry:    func() ledger.Transaction { return forgedIssue },
			err:      ErrDiverged,
			problems: []string{"version 3", `quantity "50", not "60"`},
		},
		{
			name:     "entry past the next version",
			entry:    rehashed(func(tx *ledger.Transaction) { tx.Version = 6 }),
			err:      ErrVersionGap,
			problems: []string{"at version 4 and got version 6", "version 5 is missing"},
		},
	}
	before := dump(t, f.ds)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := f.follower.Apply(ctx, tt.entry())
			t.Log(err)
			wantError(t, err, tt.err, tt.problems...)
			if tt.err != ErrDiverged && errors.Is(err, ErrDiverged) {
				t.Errorf("error also wraps ErrDiverged")
			}
			if got := dump(t, f.ds); !maps.Equal(got, before) {
				t.Fatalf("the refused entry changed the follower's records")
			}
			if v, h := f.follower.Head(); v != 4 || h != f.journal[3].Hash {
				t.Errorf("Head = %d %s, want 4 %s", v, h, f.journal[3].Hash)
			}
			wantBalance(t, f.follower, "usd", "alice", "100", "70", "30")
			wantBalance(t, f.follower, "usd", "bob", "50", "50", "0")
		})
	}
	if err := f.follower.Apply(ctx, f.next); err != nil {
		t.Fatalf("the primary's entry after the refused ones: %v", err)
	}
	wantSameLedger(t, f.primary, f.follower)
}

// TestApplyDoesNotAuthenticate shows what Apply guarantees and what it
// leaves to its caller. A hash is no signature: an entry changed with its
// hash recomputed that is a possible next entry is applied. The copy has
// then left the primary's chain, so the primary's next entry, and its
// entry at the forged version, are refused as ErrDiverged: a forgery cannot
// go unnoticed once the primary's entries arrive.
func TestApplyDoesNotAuthenticate(t *testing.T) {
	ctx := context.Background()
	f := newApplyFixture(t)
	forged := f.next
	forged.Quantity = "5"
	forged = rehash(t, forged)
	if err := f.follower.Apply(ctx, forged); err != nil {
		t.Fatalf("Apply of a possible entry: %v", err)
	}
	wantBalance(t, f.follower, "usd", "alice", "95", "65", "30")
	if err := f.follower.Verify(ctx); err != nil {
		t.Errorf("Verify: %v", err)
	}

	after := mustTx(t)(f.primary.Rollback(ctx, ledger.Rollback{IdempotencyKey: "undo", HoldID: f.hold.ID}))
	wantError(t, f.follower.Apply(ctx, after), ErrDiverged, "prev_hash "+f.next.Hash)
	wantError(t, f.follower.Apply(ctx, f.next), ErrDiverged, "version 5 here has hash "+forged.Hash)
}

// TestReadOnly checks that a replica refuses every mutation, valid or not,
// with ErrReadOnly and without writing, and answers every read.
func TestReadOnly(t *testing.T) {
	ctx := context.Background()
	f := newApplyFixture(t)
	l := f.follower
	before := dump(t, f.ds)
	mutations := map[ledger.Operation]func() (ledger.Transaction, error){
		ledger.OpCreateAsset: func() (ledger.Transaction, error) {
			return l.CreateAsset(ctx, ledger.CreateAsset{IdempotencyKey: "k1", Asset: "eur", Decimals: 2})
		},
		ledger.OpIssue: func() (ledger.Transaction, error) {
			return l.Issue(ctx, ledger.Issue{IdempotencyKey: "k2", Asset: "usd", To: "bob", Quantity: "1"})
		},
		ledger.OpTransfer: func() (ledger.Transaction, error) {
			return l.Transfer(ctx, ledger.Transfer{IdempotencyKey: "k3", Asset: "usd", From: "alice", To: "bob", Quantity: "1"})
		},
		ledger.OpRedeem: func() (ledger.Transaction, error) {
			return l.Redeem(ctx, ledger.Redeem{IdempotencyKey: "k4", Asset: "usd", From: "alice", Quantity: "1"})
		},
		ledger.OpHold: func() (ledger.Transaction, error) {
			return l.Hold(ctx, ledger.Hold{IdempotencyKey: "k5", Asset: "usd", From: "alice", Quantity: "1"})
		},
		ledger.OpRelease: func() (ledger.Transaction, error) {
			return l.Release(ctx, ledger.Release{IdempotencyKey: "k6", HoldID: f.hold.ID, To: "bob"})
		},
		ledger.OpRollback: func() (ledger.Transaction, error) {
			return l.Rollback(ctx, ledger.Rollback{IdempotencyKey: "k7", HoldID: f.hold.ID})
		},
	}
	for op, call := range mutations {
		tx, err := call()
		wantError(t, err, ErrReadOnly, string(op), testLedgerID)
		if !reflect.DeepEqual(tx, ledger.Transaction{}) {
			t.Errorf("%s returned %+v with its error", op, tx)
		}
	}
	// Even an invalid request, or an idempotent retry of one of the
	// primary's, is refused as read-only.
	_, err := l.Transfer(ctx, ledger.Transfer{Asset: "usd", From: "alice", To: "alice", Quantity: "-1"})
	wantError(t, err, ErrReadOnly)
	_, err = l.Hold(ctx, ledger.Hold{IdempotencyKey: "hold", Asset: "usd", From: "alice", Quantity: "30"})
	wantError(t, err, ErrReadOnly)
	if got := dump(t, f.ds); !maps.Equal(got, before) {
		t.Errorf("refused mutations changed the replica's records")
	}

	wantBalance(t, l, "usd", "alice", "100", "70", "30")
	wantSupply(t, l, "usd", "150")
	if got := mustTx(t)(l.Transaction(ctx, f.hold.ID)); !reflect.DeepEqual(got, f.hold) {
		t.Errorf("Transaction = %+v, want %+v", got, f.hold)
	}
	if st := mustStatus(t)(l.Status(ctx, "hold")); !st.Done || st.Transaction.ID != f.hold.ID {
		t.Errorf("Status = %+v", st)
	}
	if v := mustVersion(t)(l.Version(ctx)); v != 4 {
		t.Errorf("Version = %d, want 4", v)
	}
	if got := mustJournal(t)(l.Journal(ctx, 1, 10)); !reflect.DeepEqual(got, f.journal[:4]) {
		t.Errorf("Journal differs from the primary's first 4 entries")
	}
	if err := l.Verify(ctx); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

// TestApplyWithConcurrentReads applies entries while other goroutines read;
// the race detector checks the locking.
func TestApplyWithConcurrentReads(t *testing.T) {
	ctx := context.Background()
	primary := openTest(t, memStore())
	runPrimary(t, primary, 4, 40)
	follower, err := Open(ctx, memStore(), testLedgerID, WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, acct := range primaryAccounts {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				v, _ := follower.Head()
				if _, err := follower.Journal(ctx, v, 1); err != nil {
					errs <- err
					return
				}
				if _, err := follower.Balance(ctx, "usd", acct); err != nil && !errors.Is(err, ledger.ErrUnknownAsset) {
					errs <- err
					return
				}
			}
		})
	}
	replicate(t, primary, follower)
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	wantSameLedger(t, primary, follower)
}

// TestApplyErrorsAreDistinct checks that the error classes a caller acts
// on do not overlap: a gap is not a divergence, a divergence is not a bad
// request, a cancelled context is neither.
func TestApplyErrorsAreDistinct(t *testing.T) {
	f := newApplyFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := f.follower.Apply(ctx, f.next)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrDiverged) || errors.Is(err, ErrVersionGap) {
		t.Errorf("Apply with a cancelled context: %v", err)
	}
	bad := f.next
	bad.Quantity = "80"
	err = f.follower.Apply(context.Background(), rehash(t, bad))
	if !errors.Is(err, ErrDiverged) || errors.Is(err, ledger.ErrInsufficientBalance) || errors.Is(err, ledger.ErrBadRequest) {
		t.Errorf("Apply of an impossible transfer: %v", err)
	}
	if !strings.Contains(err.Error(), testLedgerID) {
		t.Errorf("error %q does not name the ledger", err)
	}
}
