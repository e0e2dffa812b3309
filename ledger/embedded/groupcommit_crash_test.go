package embedded

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	pebbleds "github.com/ipfs/go-ds-pebble"

	"github.com/finp2p/go-finp2p/internal/crashtest"
	"github.com/finp2p/go-finp2p/ledger"
)

// groupCrashDirEnv tells TestGroupCommitCrashHelper, run as a child
// process, which directory holds its pebble datastore.
const groupCrashDirEnv = "FINP2P_LEDGER_GROUP_CRASH_DIR"

const groupCrashWorkers = 16

// TestGroupCommitCrash kills with SIGKILL a process in which many
// goroutines write to the ledger at once, so that they share syncs, and
// checks that the reopened ledger verifies and holds every transaction the
// process acknowledged, at the version it was acknowledged with.
func TestGroupCommitCrash(t *testing.T) {
	dir := t.TempDir()
	acked := map[uint64]string{} // version → transaction id
	crashtest.Run(t, "TestGroupCommitCrashHelper", []string{groupCrashDirEnv + "=" + dir}, func(line string) bool {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "ack" {
			return false
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			t.Fatalf("child printed %q", line)
		}
		acked[v] = f[2]
		return len(acked) >= crashVersions
	})

	ctx := context.Background()
	l := openTest(t, pebbleStore(t, dir))
	head := mustVersion(t)(l.Version(ctx))
	t.Logf("child killed after %d acknowledgements; head after reopen: %d", len(acked), head)
	if err := l.Verify(ctx); err != nil {
		t.Fatalf("Verify after the crash: %v", err)
	}
	for v, id := range acked {
		if v > head {
			t.Errorf("version %d was acknowledged, the head after the crash is %d", v, head)
			continue
		}
		tx, err := l.Transaction(ctx, id)
		if err != nil {
			t.Errorf("acknowledged transaction %s: %v", id, err)
			continue
		}
		if tx.Version != v {
			t.Errorf("transaction %s acknowledged at version %d is at version %d", id, v, tx.Version)
		}
	}
}

// TestGroupCommitCrashHelper is the child process of TestGroupCommitCrash:
// its goroutines transfer between their own accounts until it is killed,
// printing each acknowledged transaction.
func TestGroupCommitCrashHelper(t *testing.T) {
	dir := os.Getenv(groupCrashDirEnv)
	if dir == "" {
		t.Skip("child process of TestGroupCommitCrash")
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
	var out sync.Mutex
	ack := func(tx ledger.Transaction) {
		out.Lock()
		defer out.Unlock()
		// os.Stdout is unbuffered: a printed line has reached the pipe.
		fmt.Printf("ack %d %s\n", tx.Version, tx.ID)
	}
	tx, err := l.CreateAsset(ctx, ledger.CreateAsset{IdempotencyKey: "create", Asset: "usd", Decimals: 2})
	if err != nil {
		fail(err)
	}
	ack(tx)
	var wg sync.WaitGroup
	for w := range groupCrashWorkers {
		wg.Go(func() {
			a, b := fmt.Sprintf("w%da", w), fmt.Sprintf("w%db", w)
			tx, err := l.Issue(ctx, ledger.Issue{IdempotencyKey: "issue-" + a, Asset: "usd", To: a, Quantity: "1000000"})
			if err != nil {
				fail(err)
			}
			ack(tx)
			for i := 0; ; i++ {
				from, to := a, b
				if i%2 == 1 {
					from, to = b, a
				}
				tx, err := l.Transfer(ctx, ledger.Transfer{IdempotencyKey: fmt.Sprintf("pay-%d-%d", w, i), Asset: "usd", From: from, To: to, Quantity: "1"})
				if err != nil {
					fail(err)
				}
				ack(tx)
			}
		})
	}
	wg.Wait()
}
