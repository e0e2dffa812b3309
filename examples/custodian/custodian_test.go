package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Deadlines: generous, for a busy 2-core CI machine under -race.
const (
	buildTimeout   = 5 * time.Minute
	devnetTimeout  = 3 * time.Minute
	commandTimeout = 2 * time.Minute
	stopTimeout    = time.Minute
)

// devnetInfo is the part of the devnet's devnet.json the test reads.
type devnetInfo struct {
	Genesis      string `json:"genesis"`
	GovernanceCA string `json:"governance_ca"`
	Asset        struct {
		ID        string            `json:"id"`
		Owner     string            `json:"owner"`
		OwnerRepo string            `json:"owner_repo"`
		Grants    map[string]string `json:"grants"`
	} `json:"asset"`
}

// syncBuffer is a bytes.Buffer a process writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// goBuild builds a main package of this module into dir.
func goBuild(t *testing.T, dir, name, pkg string, race bool) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out := filepath.Join(dir, name)
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, append(args, pkg)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s %s: %v\n%s", strings.Join(args, " "), pkg, err, b)
	}
	return out
}

// runCmd runs a program to completion and fails the test unless it exits 0.
func runCmd(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(bin), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// TestCustodianAgainstDevnet builds the finp2p binary and this program,
// runs `finp2p devnet --keep` in the background, prepares a certified repo
// for a new org with the finp2p CLI (init, certify by the devnet's
// governance CA, the asset owner's ACL grant and an issue to the org's
// account), runs the program against it and checks what it prints: the
// verified receipt and the balance read by broadcast. Then it stops the
// devnet with an interrupt, as Ctrl-C would.
func TestCustodianAgainstDevnet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a devnet of seven node processes; skipped with -short")
	}
	bin := t.TempDir()
	finp2p := goBuild(t, bin, "finp2p", "../node", false)
	custodian := goBuild(t, bin, "custodian", ".", raceEnabled)

	dir := filepath.Join(t.TempDir(), "devnet")
	devnet := exec.Command(finp2p, "devnet", "--keep", "--dir", dir, "--timeout", "2m")
	var out syncBuffer
	devnet.Stdout, devnet.Stderr = &out, &out
	if err := devnet.Start(); err != nil {
		t.Fatalf("start finp2p devnet: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- devnet.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = devnet.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("devnet did not end cleanly after an interrupt: %v\n%s", err, out.String())
			}
		case <-time.After(stopTimeout):
			_ = devnet.Process.Kill()
			<-exited
			t.Errorf("devnet did not stop within %s of an interrupt:\n%s", stopTimeout, out.String())
		}
	}
	t.Cleanup(stop)

	// devnet.json appears once every step passed, while the nodes run.
	infoFile := filepath.Join(dir, "devnet.json")
	deadline := time.Now().Add(devnetTimeout)
	var data []byte
	for {
		var err error
		if data, err = os.ReadFile(infoFile); err == nil {
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("devnet ended (%v) before writing %s:\n%s", err, infoFile, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s:\n%s", infoFile, devnetTimeout, out.String())
		}
	}
	var info devnetInfo
	if err := json.Unmarshal(data, &info); err != nil {
		t.Fatalf("%s: %v", infoFile, err)
	}
	if !strings.Contains(out.String(), "steps passed") {
		t.Fatalf("devnet wrote %s without passing every step:\n%s", infoFile, out.String())
	}

	// A custodian joins: its node's repo, certified by the governance CA.
	const org = "custodian-x"
	repo := filepath.Join(t.TempDir(), org)
	runCmd(t, finp2p, "init", "--repo", repo, "--org", org, "--genesis", info.Genesis,
		"--listen", "/ip4/127.0.0.1/tcp/0", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--api", "127.0.0.1:0")
	runCmd(t, finp2p, "certify", "--ca", info.GovernanceCA, "--csr", filepath.Join(repo, "node.csr"), "--out", filepath.Join(repo, "node.pem"))

	// The asset's owner lets the custodian's org transact (keeping the
	// grants devnet made: acl replaces the whole list) and issues it 50.
	aclArgs := []string{"acl", info.Asset.ID, "--repo", info.Asset.OwnerRepo, "--grant", org + "=transact"}
	for grantee, rights := range info.Asset.Grants {
		aclArgs = append(aclArgs, "--grant", grantee+"="+rights)
	}
	runCmd(t, finp2p, aclArgs...)
	treasury, client := "treasury@"+org, "client-1@"+org
	runCmd(t, finp2p, "issue", info.Asset.ID, "--to", treasury, "--quantity", "50", "--repo", info.Asset.OwnerRepo, "--key", "custodian-test-issue")

	got := runCmd(t, custodian, "--repo", repo, "--asset", info.Asset.ID, "--from", treasury, "--to", client,
		"--quantity", "20", "--key", "custodian-test-transfer", "--timeout", "90s")
	for _, want := range []string{
		"of org " + org + " started",
		"transfer 20 of " + info.Asset.ID + " from " + treasury + " to " + client,
		"transfer 20 from " + treasury + " to " + client,
		"receipt verified: signed by org " + info.Asset.Owner + " node ",
		"balance of " + treasury + ": current 30, available 30, held 0",
		"node stopped",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("custodian output lacks %q:\n%s", want, got)
		}
	}

	// The same idempotency key again: the same receipt, no second transfer.
	again := runCmd(t, custodian, "--repo", repo, "--asset", info.Asset.ID, "--from", treasury, "--to", client,
		"--quantity", "20", "--key", "custodian-test-transfer", "--timeout", "90s")
	if !strings.Contains(again, "balance of "+treasury+": current 30,") || receiptLine(got) != receiptLine(again) {
		t.Errorf("the same key ran again:\n%s\nwant the first receipt and balance 30, as in:\n%s", again, got)
	}

	stop()
	if _, err := os.Stat(infoFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there after devnet stopped (%v)", infoFile, err)
	}
	if s := out.String(); !strings.Contains(s, "stopping 7 nodes") || strings.Count(s, "exit status 0") != 7 {
		t.Errorf("devnet did not stop its 7 nodes cleanly:\n%s", s)
	}
}

// receiptLine is the "receipt: ..." line of the program's output.
func receiptLine(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "receipt: ") {
			return line
		}
	}
	return fmt.Sprintf("(no receipt line in %q)", out)
}
