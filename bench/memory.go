package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/resource"
)

// memberCommand is the hidden subcommand the memory section re-executes
// the bench with, so that a node's memory is measured in a process of its
// own.
const memberCommand = "internal-member"

// rssKB is the process's resident set size, from /proc/self/status.
func rssKB() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS in /proc/self/status")
}

// memberMain is the child: "-mode node" starts the node of -repo (state in
// pebble in the repo, as config.json says), waits until it has joined,
// idles, reports its RSS, then advertises -resources public resources
// -steps times, reporting its RSS after each step; "-mode bare" starts a
// bare libp2p host and reports its idle RSS. Reports are "key value" lines
// on stdout.
func memberMain(args []string) error {
	fs := flag.NewFlagSet(memberCommand, flag.ContinueOnError)
	mode := fs.String("mode", "node", "node or bare")
	repo := fs.String("repo", "", "node repo")
	resources := fs.Int("resources", 1000, "resources advertised per step")
	steps := fs.Int("steps", 2, "advertising steps")
	settle := fs.Duration("settle", 3*time.Second, "idle time before each reading")
	if err := fs.Parse(args); err != nil {
		return err
	}
	report := func(key string, v int64) {
		fmt.Printf("%s %d\n", key, v)
	}
	readRSS := func(key string) error {
		time.Sleep(*settle)
		kb, err := rssKB()
		if err != nil {
			return err
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		report(key, kb)
		report(key+"_heap", int64(ms.HeapInuse/1024))
		return nil
	}
	ctx := context.Background()
	if *mode == "bare" {
		h, err := bareHost()
		if err != nil {
			return err
		}
		defer h.Close()
		return readRSS("idle")
	}
	n, err := node.Open(*repo,
		node.WithListenAddrs("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"),
		node.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		return err
	}
	if err := n.Start(ctx); err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = n.Close(cctx)
	}()
	if err := waitJoined(ctx, n, 30*time.Second); err != nil {
		return err
	}
	if err := poll(ctx, 30*time.Second, 10*time.Millisecond, func() bool { return n.DHT().RoutingTable().Size() > 0 }, "DHT has peers"); err != nil {
		return err
	}
	if err := readRSS("idle"); err != nil {
		return err
	}
	org := n.Self().OrgID
	for step := range *steps {
		t0 := time.Now()
		ids := make([]int, *resources)
		for i := range ids {
			ids[i] = i
		}
		if err := forEach(ctx, ids, 8, func(i int) error {
			id, err := resource.ParseID(fmt.Sprintf("%s:102:res-%d-%d", org, step, i))
			if err != nil {
				return err
			}
			_, err = n.Advertise(ctx, id, node.AdvertiseOptions{Topic: id.String()})
			return err
		}); err != nil {
			return err
		}
		report(fmt.Sprintf("advertise_ms_%d", step+1), time.Since(t0).Milliseconds())
		if err := readRSS(fmt.Sprintf("step_%d", step+1)); err != nil {
			return err
		}
	}
	return nil
}

// runChild runs the bench as a member child and returns its reports.
func runChild(ctx context.Context, args ...string) (map[string]int64, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, append([]string{memberCommand}, args...)...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = childAttr()
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("child %v: %w", args, err)
	}
	got := map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			got[k] = n
		}
	}
	return got, nil
}

// memorySection measures, each in a process of its own, an idle member's
// RSS against a bare libp2p host's, and what 1,000 advertised resources
// add to the advertising member.
func memorySection(ctx context.Context, cfg *config, rep *report, dir string) error {
	nw, err := newNetwork(filepath.Join(dir, "memory"), cfg.log)
	if err != nil {
		return err
	}
	defer nw.close()
	if err := nw.bootstrap(ctx); err != nil {
		return err
	}
	if _, err := nw.grow(ctx, 4, 2, "member", time.Time{}, nil); err != nil {
		return err
	}
	repo, err := nw.newRepo("memory-org", governance.RoleMember, nw.governance)
	if err != nil {
		return err
	}
	settle, steps := "3s", 2
	if cfg.quick {
		settle, steps = "1s", 1
	}
	progress("memory: a bare libp2p host in a process of its own")
	bare, err := runChild(ctx, "-mode", "bare", "-settle", settle)
	if err != nil {
		return err
	}
	progress("memory: a member in a process of its own, joined to a network of 4, then advertising %d resources %d times", cfg.resources, steps)
	got, err := runChild(ctx, "-mode", "node", "-repo", repo, "-resources", strconv.Itoa(cfg.resources), "-steps", strconv.Itoa(steps), "-settle", settle)
	if err != nil {
		return err
	}
	mib := func(kb int64) string { return fmt.Sprintf("%.1f MiB", float64(kb)/1024) }
	rep.add(row{
		section:  "memory",
		what:     "RSS of an idle member (own process, pebble, joined to 4 nodes) (Go heap in use)",
		value:    fmt.Sprintf("%s (%s)", mib(got["idle"]), mib(got["idle_heap"])),
		baseline: fmt.Sprintf("bare libp2p host %s (%s)", mib(bare["idle"]), mib(bare["idle_heap"])),
		ratio:    ratio(float64(got["idle"]), float64(bare["idle"])),
	})
	last := got[fmt.Sprintf("step_%d", steps)]
	per := float64(last-got["idle"]) / float64(steps)
	heapPer := float64(got[fmt.Sprintf("step_%d_heap", steps)]-got["idle_heap"]) / float64(steps)
	var times []string
	for s := 1; s <= steps; s++ {
		times = append(times, fmt.Sprintf("%d ms", got[fmt.Sprintf("advertise_ms_%d", s)]))
	}
	rep.add(row{
		section:  "memory",
		what:     fmt.Sprintf("RSS per 1,000 public resources advertised by the member (%d × %d) (Go heap)", steps, cfg.resources),
		value:    fmt.Sprintf("%s (%s)", mib(int64(per*1000/float64(cfg.resources))), mib(int64(heapPer*1000/float64(cfg.resources)))),
		baseline: "advertising took " + strings.Join(times, ", "),
	})
	return nil
}
