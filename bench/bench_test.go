package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTransferRig keeps the bench compiling and its transfer section
// working: the two members on pebble, the echo and gRPC+mTLS baselines, a
// handful of operations each at 1 and 4 in flight.
func TestTransferRig(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four nodes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := &config{only: map[string]bool{"transfer": true}, rounds: 1, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	rig, err := newTransferRig(ctx, t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rig.close()
	ops := map[string]func(context.Context, int64) error{
		"node": func(ctx context.Context, seq int64) error { _, err := rig.nodeTransfer(ctx, seq); return err },
		"echo": rig.echoRoundTrip,
		"grpc": rig.grpcTransfer,
	}
	for name, op := range ops {
		for _, conc := range []int{1, 4} {
			rig.run.Add(1)
			l, err := runLoad(ctx, conc, 0, 8, 8, op)
			if err != nil {
				t.Fatalf("%s at %d in flight: %v", name, conc, err)
			}
			if l.ops != 8 || l.p(50) <= 0 || l.perSecond() <= 0 {
				t.Fatalf("%s at %d in flight: %d operations, p50 %s, %.0f/s", name, conc, l.ops, l.p(50), l.perSecond())
			}
		}
	}
	// A retried transfer keeps its key and gets the first receipt.
	rig.run.Add(1)
	first, err := rig.nodeTransferKey(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	again, err := rig.nodeTransferKey(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if first.Receipt.Transaction.ID != again.Receipt.Transaction.ID {
		t.Fatalf("a retry made transaction %s, the first was %s", again.Receipt.Transaction.ID, first.Receipt.Transaction.ID)
	}
	if err := rig.grpcTransfer(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := rig.grpcTransfer(ctx, 1); err != nil {
		t.Fatalf("grpc retry: %v", err)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {99, 99}, {100, 100}, {0, 1}, {1, 1}} {
		if got := percentile(d, c.p); got != c.want {
			t.Errorf("p%.0f = %d, want %d", c.p, got, c.want)
		}
	}
	if percentile(nil, 50) != 0 {
		t.Error("percentile of nothing is not 0")
	}
}

func TestWriteSection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "B.md")
	if err := os.WriteFile(path, []byte("# Benchmarks\n\nhand-written\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"first\n", "second\n"} {
		if err := writeSection(path, body); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := os.ReadFile(path)
	want := "# Benchmarks\n\nhand-written\n\n" + beginMarker + "\nsecond\n" + endMarker + "\n"
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if err := os.WriteFile(path, []byte("x\n"+beginMarker+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeSection(path, "y\n"); err == nil || !strings.Contains(err.Error(), "markers") {
		t.Fatalf("one marker: %v", err)
	}
}
