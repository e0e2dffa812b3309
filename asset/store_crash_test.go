package asset_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	pebbleds "github.com/ipfs/go-ds-pebble"

	"github.com/finp2p/go-finp2p/asset"
	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/crashtest"
	"github.com/finp2p/go-finp2p/internal/testnet"
)

// storeCrashEnv tells TestReceiptStoreCrashHelper, run as a child process,
// the directory with its pebble datastore, the sealed receipts and the
// network's genesis.
const storeCrashEnv = "FINP2P_RECEIPT_STORE_CRASH_DIR"

// storeCrashAcks is how many acknowledged Puts the parent waits for before
// it kills the child.
const storeCrashAcks = 100

// TestReceiptStoreCrash kills with SIGKILL a process that puts receipts
// from many goroutines at once, so that its Puts share syncs, and checks
// that every receipt whose Put returned is in the reopened store.
func TestReceiptStoreCrash(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	var file bytes.Buffer
	for _, s := range receiptsFor(t, f, "tx", 2000) {
		file.Write(binary.AppendUvarint(nil, uint64(len(s))))
		file.Write(s)
	}
	if err := os.WriteFile(filepath.Join(dir, "receipts"), file.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	genesis, err := os.ReadFile(f.net.GenesisFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "genesis"), genesis, 0o600); err != nil {
		t.Fatal(err)
	}

	var acked []string
	crashtest.Run(t, "TestReceiptStoreCrashHelper", []string{storeCrashEnv + "=" + dir}, func(line string) bool {
		if id, ok := strings.CutPrefix(line, "ack "); ok {
			acked = append(acked, id)
		}
		return len(acked) >= storeCrashAcks || line == "done"
	})
	t.Logf("child killed after %d acknowledged Puts", len(acked))

	ds, err := pebbleds.NewDatastore(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ds.Close() })
	store := asset.NewReceiptStore(namespace.Wrap(ds, datastore.NewKey("/r")), f.rcptV)
	ctx := context.Background()
	for _, id := range acked {
		vr, err := store.Get(ctx, id)
		if err != nil {
			t.Errorf("acknowledged receipt %s: %v", id, err)
			continue
		}
		if _, err := store.ByRequest(ctx, vr.Receipt.RequestHash); err != nil {
			t.Errorf("acknowledged receipt %s by request: %v", id, err)
		}
	}
	if list, err := store.List(ctx, 0); err != nil || len(list) < len(acked) {
		t.Errorf("List: %d receipts, %v; %d were acknowledged", len(list), err, len(acked))
	}
}

// TestReceiptStoreCrashHelper is the child process of TestReceiptStoreCrash:
// sixteen goroutines put the receipts the parent sealed, printing each
// acknowledged one, until it is killed.
func TestReceiptStoreCrashHelper(t *testing.T) {
	dir := os.Getenv(storeCrashEnv)
	if dir == "" {
		t.Skip("child process of TestReceiptStoreCrash")
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	g, err := governance.LoadGenesis(filepath.Join(dir, "genesis"))
	if err != nil {
		fail(err)
	}
	roots, err := g.RootCertificates()
	if err != nil {
		fail(err)
	}
	trust, err := governance.NewTrustStore(roots)
	if err != nil {
		fail(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "receipts"))
	if err != nil {
		fail(err)
	}
	var sealed [][]byte
	for len(data) > 0 {
		n, k := binary.Uvarint(data)
		sealed = append(sealed, data[k:k+int(n)])
		data = data[k+int(n):]
	}
	ds, err := pebbleds.NewDatastore(filepath.Join(dir, "store"))
	if err != nil {
		fail(err)
	}
	store := asset.NewReceiptStore(namespace.Wrap(ds, datastore.NewKey("/r")), &asset.ReceiptVerifier{Network: testnet.NetworkName, Trust: trust})
	ctx := context.Background()
	var out sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(sealed)); i = next.Add(1) - 1 {
				vr, err := store.Put(ctx, sealed[i])
				if err != nil {
					fail(err)
				}
				out.Lock()
				// os.Stdout is unbuffered: a printed line has reached the pipe.
				fmt.Printf("ack %s\n", vr.Receipt.Transaction.ID)
				out.Unlock()
			}
		})
	}
	wg.Wait()
	fmt.Println("done")
	// Wait to be killed: the parent holds the other end of stdin.
	_, _ = io.Copy(io.Discard, os.Stdin)
}
