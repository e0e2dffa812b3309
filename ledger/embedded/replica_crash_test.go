package embedded

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ipfs/go-datastore"
	pebbleds "github.com/ipfs/go-ds-pebble"

	"github.com/finp2p/go-finp2p/internal/crashtest"
)

// replicaCrashDirEnv tells TestReplicaCrashHelper, run as a child process,
// which directory holds its primary's and its replica's datastores.
const replicaCrashDirEnv = "FINP2P_LEDGER_REPLICA_CRASH_DIR"

// replicaCrashVersions is how many applied versions the parent waits for
// before it kills the child; the primary has about 350.
const replicaCrashVersions = 100

// TestReplicaCrash kills a process that is applying a primary's journal to
// a replica with SIGKILL, and checks that the reopened replica verifies,
// kept every entry the process had applied, and follows the primary to its
// head from there.
func TestReplicaCrash(t *testing.T) {
	dir := t.TempDir()
	// The child waits on its stdin after the last entry, so the kill always
	// finds it running.
	var applied uint64
	finished := false
	crashtest.Run(t, "TestReplicaCrashHelper", []string{replicaCrashDirEnv + "=" + dir}, func(line string) bool {
		if line == "done" {
			finished = true
			return false
		}
		v, ok := strings.CutPrefix(line, "version ")
		if !ok {
			return false
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("child printed %q", line)
		}
		applied = n
		return applied >= replicaCrashVersions
	})
	t.Logf("child killed after applying version %d (finished applying: %v)", applied, finished)

	ctx := context.Background()
	primary := openTest(t, pebbleStore(t, filepath.Join(dir, "primary")))
	follower, err := Open(ctx, pebbleStore(t, filepath.Join(dir, "replica")), testLedgerID, WithReadOnly())
	if err != nil {
		t.Fatalf("reopen the replica: %v", err)
	}
	head, _ := follower.Head()
	t.Logf("replica head after reopen: %d", head)
	if head < applied {
		t.Fatalf("replica at version %d after the crash, but the child had applied %d", head, applied)
	}
	if err := follower.Verify(ctx); err != nil {
		t.Fatalf("Verify after the crash: %v", err)
	}
	replicate(t, primary, follower)
	wantSameLedger(t, primary, follower)
}

// TestReplicaCrashHelper is the child process of TestReplicaCrash: it
// writes a primary, then applies its journal to a replica, printing each
// applied version, and waits to be killed.
func TestReplicaCrashHelper(t *testing.T) {
	dir := os.Getenv(replicaCrashDirEnv)
	if dir == "" {
		t.Skip("child process of TestReplicaCrash")
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	pds, err := pebbleds.NewDatastore(filepath.Join(dir, "primary"))
	if err != nil {
		fail(err)
	}
	primary, err := Open(ctx, pds, testLedgerID, WithClock(testClock()), WithSync(false))
	if err != nil {
		fail(err)
	}
	runPrimary(t, primary, 5, 400)
	if err := pds.Sync(ctx, datastore.NewKey("/")); err != nil {
		fail(err)
	}
	rds, err := pebbleds.NewDatastore(filepath.Join(dir, "replica"))
	if err != nil {
		fail(err)
	}
	replica, err := Open(ctx, rds, testLedgerID, WithReadOnly())
	if err != nil {
		fail(err)
	}
	head, _ := primary.Head()
	journal, err := primary.Journal(ctx, 1, int(head))
	if err != nil {
		fail(err)
	}
	for _, tx := range journal {
		if err := replica.Apply(ctx, tx); err != nil {
			fail(err)
		}
		// os.Stdout is unbuffered: a printed version has reached the pipe.
		fmt.Printf("version %d\n", tx.Version)
	}
	fmt.Println("done")
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}
