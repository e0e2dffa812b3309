// Command bench measures a FinP2P network on one machine, each figure side
// by side with a baseline in the same run, and writes the results into the
// generated section of BENCHMARKS.md. Run it from this directory:
//
//	go run . [-only transfer,crypto,join,broadcast,gossip,memory] [-quick] [-cpuprofile PREFIX]
//
// Progress goes to stderr, the results table to stdout. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sections in the order they run.
var sections = []string{"transfer", "crypto", "join", "broadcast", "gossip", "memory"}

type config struct {
	only        map[string]bool
	quick       bool
	rounds      int
	transferDur time.Duration
	sizes       []int
	joinSamples int
	subscribers int
	growBudget  time.Duration
	messages    int
	rate        int
	resources   int
	cpuprofile  string
	log         *slog.Logger
}

func (c *config) runs(section string) bool { return c.only[section] }

var started = time.Now()

// progress prints a progress line to stderr.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == memberCommand {
		if err := memberMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench member:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	only := fs.String("only", strings.Join(sections, ","), "comma-separated sections to run: "+strings.Join(sections, ", "))
	quick := fs.Bool("quick", false, "shorter runs and smaller networks (10 and 30 nodes, 30 subscribers), for a smoke test; figures are rougher")
	out := fs.String("out", "../BENCHMARKS.md", "the markdown file whose generated section is replaced")
	write := fs.Bool("write", true, "write the results into -out (a run with -only or -quick writes only when -write is given explicitly)")
	sizes := fs.String("sizes", "10,50,100", "network sizes the join and broadcast sections measure")
	subs := fs.Int("subscribers", 100, "subscribers of the gossip section's topic")
	growBudget := fs.Duration("grow-budget", 4*time.Minute, "time the join and gossip network may spend growing; the sections measure at the size it reached")
	cpuprofile := fs.String("cpuprofile", "", "write CPU profiles of the measured intervals to PREFIX-<what>.pprof")
	verbose := fs.Bool("v", false, "show the nodes' logs (warnings and up)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })

	cfg := &config{
		only:        map[string]bool{},
		quick:       *quick,
		rounds:      3,
		transferDur: 6 * time.Second,
		joinSamples: 3,
		subscribers: *subs,
		growBudget:  *growBudget,
		messages:    200,
		rate:        20,
		resources:   1000,
		cpuprofile:  *cpuprofile,
		log:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if *verbose {
		cfg.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	for _, s := range strings.Split(*only, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(sections, s) {
			return fmt.Errorf("-only: unknown section %q (want %s)", s, strings.Join(sections, ", "))
		}
		cfg.only[s] = true
	}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 10 {
			return fmt.Errorf("-sizes: %q is not a network size of at least 10", s)
		}
		cfg.sizes = append(cfg.sizes, n)
	}
	slices.Sort(cfg.sizes)
	if cfg.quick {
		cfg.transferDur = 1500 * time.Millisecond
		cfg.joinSamples = 2
		cfg.messages = 40
		if !explicit["sizes"] {
			cfg.sizes = []int{10, 30}
		}
		if !explicit["subscribers"] {
			cfg.subscribers = 30
		}
		if !explicit["grow-budget"] {
			cfg.growBudget = time.Minute
		}
	}
	doWrite := *write && (explicit["write"] || (!explicit["only"] && !cfg.quick))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "finp2p-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	command := "cd bench && go run ."
	if len(args) > 0 {
		command += " " + strings.Join(args, " ")
	}
	progress("bench: %s; machine: %s; sections: %s", command, machine(), *only)
	rep := &report{}
	if err := runSections(ctx, cfg, rep, dir); err != nil {
		return err
	}
	took := time.Since(started)
	md := rep.markdown(command, started, took)
	fmt.Print(md)
	progress("done in %s", took.Round(time.Second))
	if doWrite {
		if err := writeSection(*out, md); err != nil {
			return err
		}
		progress("wrote the generated section of %s", *out)
	}
	return nil
}

func runSections(ctx context.Context, cfg *config, rep *report, dir string) error {
	var rig *transferRig
	defer func() {
		if rig != nil {
			rig.close()
		}
	}()
	if cfg.runs("transfer") || cfg.runs("crypto") {
		progress("transfer: setting up two members on pebble and the gRPC+mTLS baseline")
		var err error
		if rig, err = newTransferRig(ctx, dir, cfg); err != nil {
			return fmt.Errorf("transfer: %w", err)
		}
	}
	var at64 load
	if cfg.runs("transfer") {
		var err error
		if at64, err = transferSection(ctx, cfg, rep, rig); err != nil {
			return fmt.Errorf("transfer: %w", err)
		}
	}
	if cfg.runs("crypto") {
		if err := cryptoSection(ctx, cfg, rep, rig, at64); err != nil {
			return fmt.Errorf("crypto: %w", err)
		}
	}
	if rig != nil {
		rig.close()
		rig = nil
	}
	var big *bigNetwork
	defer func() {
		if big != nil {
			big.close()
		}
	}()
	if cfg.runs("join") || cfg.runs("broadcast") || cfg.runs("gossip") {
		var err error
		if big, err = newBigNetwork(ctx, dir, cfg); err != nil {
			return err
		}
	}
	if cfg.runs("join") || cfg.runs("broadcast") {
		if err := sizedSections(ctx, cfg, rep, big); err != nil {
			return err
		}
	}
	if cfg.runs("gossip") {
		if err := gossipSection(ctx, cfg, rep, big); err != nil {
			return fmt.Errorf("gossip: %w", err)
		}
	}
	if big != nil {
		big.close()
		big = nil
	}
	if cfg.runs("memory") {
		if err := memorySection(ctx, cfg, rep, dir); err != nil {
			return fmt.Errorf("memory: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return errors.New("interrupted")
	}
	return nil
}
