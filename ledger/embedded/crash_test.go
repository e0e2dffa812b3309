package embedded

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	pebbleds "github.com/ipfs/go-ds-pebble"

	"github.com/finp2p/go-finp2p/internal/crashtest"
	"github.com/finp2p/go-finp2p/ledger"
)

// crashDirEnv tells TestCrashHelper, run as a child process, which
// directory holds its pebble datastore.
const crashDirEnv = "FINP2P_LEDGER_CRASH_DIR"

var (
	crashAccounts = []string{"acct-1", "acct-2", "acct-3", "acct-4", "acct-5"}
	crashIssue    = "1000.00" // to each account
	crashSupply   = "5000"
)

// crashVersions is how many acknowledged versions the parent waits for
// before it kills the child.
const crashVersions = 200

// TestCrash kills a process that is writing to the ledger with SIGKILL and
// checks that the reopened ledger verifies, conserves the supply, and kept
// every transaction the process had acknowledged.
func TestCrash(t *testing.T) {
	dir := t.TempDir()
	// Every version the child acknowledged counts, including those printed
	// between the kill decision and the kill.
	var acked uint64
	crashtest.Run(t, "TestCrashHelper", []string{crashDirEnv + "=" + dir}, func(line string) bool {
		v, ok := strings.CutPrefix(line, "version ")
		if !ok {
			return false
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("child printed %q", line)
		}
		if n != acked+1 {
			t.Errorf("child acknowledged version %d after %d", n, acked)
		}
		acked = n
		return acked >= crashVersions
	})
	t.Logf("child killed after acknowledging version %d", acked)

	ctx := context.Background()
	l := openTest(t, pebbleStore(t, dir))
	head := mustVersion(t)(l.Version(ctx))
	t.Logf("head after reopen: %d", head)
	if head < acked {
		t.Fatalf("head version %d after the crash, but the child acknowledged %d", head, acked)
	}
	if err := l.Verify(ctx); err != nil {
		t.Fatalf("Verify after the crash: %v", err)
	}
	var total ledger.Amount
	for _, a := range crashAccounts {
		b := mustBalance(t, l, "usd", a)
		cur, err := ledger.ParseAmount(b.Current, 2)
		if err != nil {
			t.Fatal(err)
		}
		total = total.Add(cur)
	}
	if got := total.String(2); got != crashSupply {
		t.Errorf("balances total %s, want the issued %s", got, crashSupply)
	}
	wantSupply(t, l, "usd", crashSupply)
	// The ledger keeps working after the crash.
	tx := mustTx(t)(l.Issue(ctx, ledger.Issue{IdempotencyKey: "after-crash", Asset: "usd", To: "acct-1", Quantity: "1"}))
	if tx.Version != head+1 {
		t.Errorf("first version after the crash %d, want %d", tx.Version, head+1)
	}
}

// TestCrashHelper is the child process of TestCrash: it writes to a ledger
// until it is killed, printing each acknowledged version.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child process of TestCrash")
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	ds, err := pebbleds.NewDatastore(dir)
	if err != nil {
		fail(err)
	}
	l, err := Open(ctx, ds, testLedgerID)
	if err != nil {
		fail(err)
	}
	// os.Stdout is unbuffered: a printed version has reached the pipe.
	ack := func(tx ledger.Transaction) { fmt.Printf("version %d\n", tx.Version) }
	tx, err := l.CreateAsset(ctx, ledger.CreateAsset{IdempotencyKey: "create", Asset: "usd", Decimals: 2})
	if err != nil {
		fail(err)
	}
	ack(tx)
	for _, a := range crashAccounts {
		tx, err := l.Issue(ctx, ledger.Issue{IdempotencyKey: "issue-" + a, Asset: "usd", To: a, Quantity: crashIssue})
		if err != nil {
			fail(err)
		}
		ack(tx)
	}
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(time.Now().UnixNano())))
	var holds []ledger.Transaction // open, oldest first
	for i := 0; ; i++ {
		key := fmt.Sprintf("op-%d", i)
		from, to := crashAccounts[rng.IntN(len(crashAccounts))], crashAccounts[rng.IntN(len(crashAccounts))]
		q := fmt.Sprintf("%d.%02d", rng.IntN(300), rng.IntN(100))
		var tx ledger.Transaction
		var err error
		switch r := rng.IntN(10); {
		case r < 2 && len(holds) > 0:
			h := holds[0]
			holds = holds[1:]
			if r == 0 && h.From != to {
				tx, err = l.Release(ctx, ledger.Release{IdempotencyKey: key, HoldID: h.ID, To: to})
			} else {
				tx, err = l.Rollback(ctx, ledger.Rollback{IdempotencyKey: key, HoldID: h.ID})
			}
		case r < 4:
			tx, err = l.Hold(ctx, ledger.Hold{IdempotencyKey: key, Asset: "usd", From: from, Quantity: q})
			if err == nil {
				holds = append(holds, tx)
			}
		default:
			if from == to {
				continue
			}
			tx, err = l.Transfer(ctx, ledger.Transfer{IdempotencyKey: key, Asset: "usd", From: from, To: to, Quantity: q})
		}
		switch {
		case err == nil:
			ack(tx)
		case errors.Is(err, ledger.ErrInsufficientBalance), errors.Is(err, ledger.ErrBadQuantity): // zero
		default:
			fail(err)
		}
	}
}
