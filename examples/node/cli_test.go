package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/finp2p/go-finp2p/api"
	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/resource"
)

// finp2pBin is the binary TestMain builds; every test drives it as a user would.
var finp2pBin string

// Deadlines of the tests. They are generous because under -race on a busy
// CI machine a node process takes seconds to start.
const (
	commandTimeout = 2 * time.Minute
	readyTimeout   = 60 * time.Second
	networkTimeout = 60 * time.Second
	exitTimeout    = 30 * time.Second
)

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "finp2p-cli-test-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "create build directory: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	finp2pBin = filepath.Join(dir, "finp2p")
	args := []string{"build", "-o", finp2pBin}
	if raceEnabled {
		args = append(args, "-race")
		// A race-enabled program waits a second at exit for late reports;
		// the tests run the binary hundreds of times, so wait less.
		if os.Getenv("GORACE") == "" {
			os.Setenv("GORACE", "atexit_sleep_ms=100")
		}
	}
	cmd := exec.Command(goTool, append(args, ".")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "build the finp2p binary with %s %s: %v\n", goTool, strings.Join(args, " "), err)
		return 1
	}
	return m.Run()
}

// result is what one finp2p invocation did.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// finp2p runs the binary to completion.
func finp2p(t *testing.T, args ...string) result {
	t.Helper()
	return finp2pStdin(t, "", args...)
}

// finp2pStdin runs the binary to completion with stdin as its standard input.
func finp2pStdin(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, finp2pBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("finp2p %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("finp2p %s did not finish within %s", strings.Join(args, " "), commandTimeout)
	}
	return r
}

// mustFinp2p runs the binary and fails the test unless it exits 0.
func mustFinp2p(t *testing.T, args ...string) string {
	t.Helper()
	r := finp2p(t, args...)
	if r.code != 0 {
		t.Fatalf("finp2p %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// field returns the value of the "name  value" line of a command's output.
func field(t *testing.T, out, name string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == name {
			return strings.Join(f[1:], " ")
		}
	}
	t.Fatalf("no %q line in output:\n%s", name, out)
	return ""
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	if got := st.Mode().Perm(); got != want {
		t.Errorf("%s has mode %#o, want %#o", path, got, want)
	}
}

// testRepo is one node repo the CLI made.
type testRepo struct {
	org    string
	repo   string
	peer   string
	serial string
	finID  string
}

// testNet is a certified network made with the CLI: a founding authority and
// genesis, a founding node (the rendezvous, on a fixed port), a governance
// organisation with its installed CA and node, and member nodes certified by
// that governance CA.
type testNet struct {
	dir        string
	genesis    string
	root       string // the founding root certificate, PEM
	foundingCA string
	govCA      string
	govCACert  string
	founder    *testRepo
	governor   *testRepo
	members    map[string]*testRepo
}

func newTestNet(t *testing.T, members ...string) *testNet {
	t.Helper()
	dir := t.TempDir()
	tn := &testNet{dir: dir, members: map[string]*testRepo{}}
	netDir := filepath.Join(dir, "network")
	tn.genesis = filepath.Join(netDir, "genesis.json")
	tn.foundingCA = filepath.Join(netDir, "ca")
	tn.root = filepath.Join(tn.foundingCA, "ca.pem")
	tn.govCA = filepath.Join(dir, "governor-ca")

	// The founding node's peer ID goes into the genesis, so its repo comes first.
	port := freePort(t)
	tn.founder = &testRepo{org: "founder", repo: filepath.Join(dir, "founder")}
	out := mustFinp2p(t, "init", "--repo", tn.founder.repo, "--org", "founder", "--role", "founding",
		"--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port), "--api", "127.0.0.1:0")
	tn.founder.peer = field(t, out, "peer")
	rendezvous := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", port, tn.founder.peer)
	out = mustFinp2p(t, "genesis", "--dir", netDir, "--network", "cli-test", "--org", "founder",
		"--rendezvous", rendezvous, "--dev")
	if got := field(t, out, "genesis"); got != tn.genesis {
		t.Fatalf("genesis printed genesis file %q, want %q", got, tn.genesis)
	}
	if fp := field(t, out, "fingerprint"); !strings.HasPrefix(fp, "SHA256 ") || len(fp) != len("SHA256 ")+32*3-1 {
		t.Fatalf("genesis printed fingerprint %q, want SHA256 and 32 colon-separated bytes", fp)
	}
	data, err := os.ReadFile(tn.genesis)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tn.founder.repo, node.GenesisFileName), data, 0o644); err != nil {
		t.Fatal(err)
	}
	tn.certify(t, tn.founder, tn.foundingCA)

	// The governance organisation: its CA certified by the founding
	// authority and installed, then its node certified by that CA.
	tn.governor = &testRepo{org: "governor", repo: filepath.Join(dir, "governor")}
	out = mustFinp2p(t, "init", "--repo", tn.governor.repo, "--org", "governor", "--role", "governance",
		"--genesis", tn.genesis, "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0")
	tn.governor.peer = field(t, out, "peer")
	caCSR := field(t, out, "ca-csr")
	caKey := field(t, out, "ca-key")
	tn.govCACert = filepath.Join(tn.governor.repo, "ca-request", "ca.pem")
	out = mustFinp2p(t, "certify", "--governance-ca", "--ca", tn.foundingCA, "--csr", caCSR, "--out", tn.govCACert)
	if got := field(t, out, "org"); got != "governor" {
		t.Fatalf("certify --governance-ca printed org %q, want governor", got)
	}
	out = mustFinp2p(t, "ca", "install", "--dir", tn.govCA, "--key", caKey, "--cert", tn.govCACert, "--genesis", tn.genesis)
	if got := field(t, out, "org"); got != "governor" {
		t.Fatalf("ca install printed org %q, want governor", got)
	}
	tn.certify(t, tn.governor, tn.govCA)

	// Every member offers custody and reaches a ledger of its own, so a
	// filter on the ledger picks one member.
	for _, org := range members {
		r := &testRepo{org: org, repo: filepath.Join(dir, org)}
		out := mustFinp2p(t, "init", "--repo", r.repo, "--org", org, "--genesis", tn.genesis,
			"--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0",
			"--service", "custody", "--ledger", ledgerOf(org))
		r.peer = field(t, out, "peer")
		tn.certify(t, r, tn.govCA)
		tn.members[org] = r
	}
	return tn
}

// ledgerOf is the ledger newTestNet has a member advertise.
func ledgerOf(org string) string { return "ledger-" + org }

// advertisedLedgersOf is what a member of newTestNet advertises: the
// ledger it executes on first, then its configured one.
func advertisedLedgersOf(org string) string { return org + "/embedded," + ledgerOf(org) }

// certify has the authority in caDir certify the repo's node.
func (tn *testNet) certify(t *testing.T, r *testRepo, caDir string) {
	t.Helper()
	out := mustFinp2p(t, "certify", "--ca", caDir, "--csr", filepath.Join(r.repo, node.CSRFileName),
		"--out", filepath.Join(r.repo, node.CertFileName))
	if got := field(t, out, "peer"); got != r.peer {
		t.Fatalf("certify printed peer %s, want %s", got, r.peer)
	}
	if got := field(t, out, "org"); got != r.org {
		t.Fatalf("certify printed org %s, want %s", got, r.org)
	}
	r.serial = field(t, out, "serial")
	r.finID = field(t, out, "finid")
}

// testNode is a running `finp2p run` process.
type testNode struct {
	name    string
	repo    string
	cmd     *exec.Cmd
	logPath string

	ready chan struct{} // closed at the "ready" line
	done  chan struct{} // closed once the process exited

	mu     sync.Mutex
	stdout []string
	code   int

	peer string
	api  string
}

func (n *testNode) lines() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.stdout)
}

func (n *testNode) exitCode() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.code
}

// logTail is the end of the node's stderr, for failure messages.
func (n *testNode) logTail() string {
	data, _ := os.ReadFile(n.logPath)
	s := string(data)
	if len(s) > 4000 {
		s = "…" + s[len(s)-4000:]
	}
	return s
}

// startNode runs `finp2p run` for repo and waits for its "ready" line.
func startNode(t *testing.T, name, repo string, extra ...string) *testNode {
	t.Helper()
	n := &testNode{
		name: name, repo: repo,
		logPath: filepath.Join(t.TempDir(), name+".log"),
		ready:   make(chan struct{}), done: make(chan struct{}),
	}
	logf, err := os.Create(n.logPath)
	if err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(finp2pBin, append([]string{"run", "--repo", repo}, extra...)...)
	n.cmd.Stderr = logf
	stdout, err := n.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start finp2p run for %s: %v", name, err)
	}
	go func() {
		defer close(n.done)
		defer logf.Close()
		sc := bufio.NewScanner(stdout)
		readySeen := false
		for sc.Scan() {
			line := sc.Text()
			n.mu.Lock()
			n.stdout = append(n.stdout, line)
			n.mu.Unlock()
			if line == "ready" && !readySeen {
				readySeen = true
				close(n.ready)
			}
		}
		err := n.cmd.Wait()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
		}
		n.mu.Lock()
		n.code = code
		n.mu.Unlock()
	}()
	t.Cleanup(func() {
		select {
		case <-n.done:
		default:
			_ = n.cmd.Process.Kill()
			<-n.done
		}
	})

	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case <-n.ready:
	case <-n.done:
		t.Fatalf("node %s exited with status %d before it was ready; stdout %q; log:\n%s", name, n.exitCode(), n.lines(), n.logTail())
	case <-timer.C:
		t.Fatalf("node %s printed no 'ready' line within %s; stdout %q; log:\n%s", name, readyTimeout, n.lines(), n.logTail())
	}
	for _, line := range n.lines() {
		word, rest, _ := strings.Cut(line, " ")
		switch word {
		case "peer":
			n.peer = rest
		case "api":
			n.api = rest
		}
	}
	if n.peer == "" || !strings.HasPrefix(n.api, "http://127.0.0.1:") {
		t.Fatalf("node %s announced peer %q and api %q; stdout %q", name, n.peer, n.api, n.lines())
	}
	return n
}

// stop sends SIGINT and checks the node exits 0 within exitTimeout.
func (n *testNode) stop(t *testing.T) {
	t.Helper()
	if err := n.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatalf("interrupt node %s: %v", n.name, err)
	}
	timer := time.NewTimer(exitTimeout)
	defer timer.Stop()
	select {
	case <-n.done:
	case <-timer.C:
		t.Fatalf("node %s did not exit within %s of SIGINT; log:\n%s", n.name, exitTimeout, n.logTail())
	}
	if code := n.exitCode(); code != 0 {
		t.Fatalf("node %s exited with status %d after SIGINT, want 0; log:\n%s", n.name, code, n.logTail())
	}
	if !slices.Contains(n.lines(), "stopped") {
		t.Errorf("node %s did not print 'stopped'; stdout %q", n.name, n.lines())
	}
}

// status runs `finp2p status --json` against the node.
func (n *testNode) status(t *testing.T) (node.Status, error) {
	t.Helper()
	r := finp2p(t, "status", "--repo", n.repo, "--api", n.api, "--json")
	if r.code != 0 {
		return node.Status{}, fmt.Errorf("status of %s: %s", n.name, strings.TrimSpace(r.stderr))
	}
	var st node.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		return node.Status{}, fmt.Errorf("status of %s: decode %q: %w", n.name, r.stdout, err)
	}
	return st, nil
}

// lists reports whether a status shows peer as a connected member.
func lists(st node.Status, peer string) bool {
	for _, m := range st.Members {
		if m.PeerID == peer {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s; last seen: %s", timeout, what, last)
		}
		<-tick.C
	}
}

// listOrgs runs `finp2p orgs --json` against the node, with extra flags.
func listOrgs(t *testing.T, n *testNode, extra ...string) []discovery.Resolution {
	t.Helper()
	out := mustFinp2p(t, append([]string{"orgs", "--repo", n.repo, "--api", n.api, "--json"}, extra...)...)
	var resp api.OrgsResponse
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("orgs --json printed %q: %v", out, err)
	}
	if resp.Orgs == nil {
		t.Fatalf("orgs --json printed %q, want an orgs list (empty is [], not null)", out)
	}
	return resp.Orgs
}

func findOrg(orgs []discovery.Resolution, org string) *discovery.Resolution {
	for i := range orgs {
		if orgs[i].Org == org {
			return &orgs[i]
		}
	}
	return nil
}

func orgNames(orgs []discovery.Resolution) []string {
	names := []string{}
	for _, o := range orgs {
		names = append(names, o.Org)
	}
	return names
}

// hasNode reports whether a resolution lists peer id with an address.
func hasNode(res discovery.Resolution, id string) bool {
	for _, n := range res.Nodes {
		if n.Peer.String() == id && len(n.Addrs) > 0 {
			return true
		}
	}
	return false
}

// findResource polls `finp2p find --json` on n until it finds id.
func findResource(t *testing.T, n *testNode, id string) node.ResourceInfo {
	t.Helper()
	var info node.ResourceInfo
	waitFor(t, networkTimeout, n.name+" to find "+id, func() (bool, string) {
		r := finp2p(t, "find", id, "--repo", n.repo, "--api", n.api, "--json")
		if r.code != 0 {
			return false, strings.TrimSpace(r.stderr)
		}
		if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
			return false, fmt.Sprintf("decode %q: %v", r.stdout, err)
		}
		return info.Resource == id, r.stdout
	})
	return info
}

// pemBlocks lists the PEM block types of a file.
func pemBlocks(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		types = append(types, b.Type)
	}
	return types
}

// subscriber is a `finp2p subscribe` process running in the background.
type subscriber struct {
	args   []string
	cmd    *exec.Cmd
	stdout bytes.Buffer  // read only once done is closed
	live   chan struct{} // closed at the "subscribed" line on stderr
	done   chan struct{} // closed once the process exited

	mu     sync.Mutex
	stderr []string
	err    error
}

// startSubscriber runs finp2p with args and waits until it says on stderr
// that the subscription is live.
func startSubscriber(t *testing.T, args ...string) *subscriber {
	t.Helper()
	s := &subscriber{args: args, live: make(chan struct{}), done: make(chan struct{})}
	s.cmd = exec.Command(finp2pBin, args...)
	s.cmd.Stdout = &s.stdout
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start finp2p %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.mu.Lock()
			s.stderr = append(s.stderr, sc.Text())
			s.mu.Unlock()
			if strings.HasPrefix(sc.Text(), "subscribed to ") {
				close(s.live)
			}
		}
		err := s.cmd.Wait()
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
	timer := time.NewTimer(networkTimeout)
	defer timer.Stop()
	select {
	case <-s.live:
	case <-s.done:
		t.Fatalf("finp2p %s exited before subscribing: %v; stderr %q", strings.Join(args, " "), s.err, s.stderr)
	case <-timer.C:
		t.Fatalf("finp2p %s did not subscribe within %s; stderr %q", strings.Join(args, " "), networkTimeout, s.stderrLines())
	}
	return s
}

func (s *subscriber) stderrLines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.stderr)
}

// wait waits for the process to exit 0 and returns its stdout lines.
func (s *subscriber) wait(t *testing.T) []string {
	t.Helper()
	timer := time.NewTimer(networkTimeout)
	defer timer.Stop()
	select {
	case <-s.done:
	case <-timer.C:
		t.Fatalf("finp2p %s did not exit within %s; stderr %q", strings.Join(s.args, " "), networkTimeout, s.stderrLines())
	}
	if s.err != nil {
		t.Fatalf("finp2p %s: %v; stdout %q; stderr %q", strings.Join(s.args, " "), s.err, s.stdout.String(), s.stderr)
	}
	return strings.Split(strings.TrimSuffix(s.stdout.String(), "\n"), "\n")
}

// TestCLINetwork walks through making a network by hand, as the README
// describes: genesis, init, certify, ca install, run, status, revoke and
// publish-crl, then a clean stop.
func TestCLINetwork(t *testing.T) {
	t.Parallel()
	tn := newTestNet(t, "bank-a", "bank-b")
	bankA, bankB := tn.members["bank-a"], tn.members["bank-b"]

	// What init, certify and ca install wrote.
	for _, r := range []*testRepo{tn.founder, tn.governor, bankA, bankB} {
		checkMode(t, filepath.Join(r.repo, node.KeyFileName), 0o600)
		checkMode(t, filepath.Join(r.repo, node.TokenFileName), 0o600)
	}
	checkMode(t, filepath.Join(tn.governor.repo, "ca-request", "ca.key"), 0o600)
	checkMode(t, filepath.Join(tn.govCA, "ca.key"), 0o600)
	checkMode(t, filepath.Join(tn.foundingCA, "ca.key"), 0o600)
	if got := pemBlocks(t, filepath.Join(tn.founder.repo, node.CertFileName)); len(got) != 1 {
		t.Errorf("founding node's certificate file holds %d blocks, want its leaf only (the root is in the genesis)", len(got))
	}
	if got := pemBlocks(t, filepath.Join(bankA.repo, node.CertFileName)); len(got) != 2 {
		t.Errorf("member's certificate file holds %d blocks, want the leaf and the governance CA", len(got))
	}
	if bankA.finID == bankB.finID || bankA.finID == "" {
		t.Errorf("bank-a and bank-b got FinIDs %q and %q, want two distinct ones", bankA.finID, bankB.finID)
	}
	g, err := governance.LoadGenesis(tn.genesis)
	if err != nil {
		t.Fatalf("load the genesis the CLI wrote: %v", err)
	}
	if g.Network != "cli-test" || !g.Development || len(g.Roots) != 1 || len(g.Rendezvous) != 1 ||
		!strings.HasSuffix(g.Rendezvous[0], "/p2p/"+tn.founder.peer) {
		t.Errorf("genesis = %+v, want network cli-test, development, one root, the founding node as rendezvous", g)
	}

	t.Run("openssl verifies the chains", func(t *testing.T) {
		openssl, err := exec.LookPath("openssl")
		if err != nil {
			t.Skip("openssl is not installed, so the chains cannot be checked with it (.ci/run installs it)")
		}
		for _, c := range []struct{ name, untrusted, cert string }{
			{"member", tn.govCACert, filepath.Join(bankA.repo, node.CertFileName)},
			{"governance node", tn.govCACert, filepath.Join(tn.governor.repo, node.CertFileName)},
			{"founding node", "", filepath.Join(tn.founder.repo, node.CertFileName)},
		} {
			args := []string{"verify", "-CAfile", tn.root}
			if c.untrusted != "" {
				args = append(args, "-untrusted", c.untrusted)
			}
			out, err := exec.Command(openssl, append(args, c.cert)...).CombinedOutput()
			if err != nil || !strings.Contains(string(out), ": OK") {
				t.Errorf("openssl %s: %v\n%s", strings.Join(append(args, c.cert), " "), err, out)
			}
		}
	})

	founder := startNode(t, "founder", tn.founder.repo)
	nodeA := startNode(t, "bank-a", bankA.repo)
	nodeB := startNode(t, "bank-b", bankB.repo)
	if founder.peer != tn.founder.peer || nodeA.peer != bankA.peer || nodeB.peer != bankB.peer {
		t.Fatalf("nodes announced peers %s %s %s, want %s %s %s", founder.peer, nodeA.peer, nodeB.peer, tn.founder.peer, bankA.peer, bankB.peer)
	}

	// Members dial the rendezvous node from the genesis and prove
	// membership; the founding node then lists both members, and each
	// member lists the founding node.
	waitFor(t, networkTimeout, "the founding node and both members to list each other", func() (bool, string) {
		var missing []string
		sts := map[*testNode]node.Status{}
		for _, n := range []*testNode{founder, nodeA, nodeB} {
			st, err := n.status(t)
			if err != nil {
				return false, err.Error()
			}
			sts[n] = st
		}
		for _, m := range []*testNode{nodeA, nodeB} {
			if !lists(sts[founder], m.peer) {
				missing = append(missing, "founder does not list "+m.name)
			}
			if !lists(sts[m], founder.peer) {
				missing = append(missing, m.name+" does not list founder")
			}
		}
		return len(missing) == 0, strings.Join(missing, ", ")
	})
	st, err := nodeA.status(t)
	if err != nil {
		t.Fatal(err)
	}
	if st.Org != "bank-a" || st.Role != "member" || st.FinID != bankA.finID || st.Network != "cli-test" || st.PeerID != bankA.peer {
		t.Errorf("bank-a status = %+v, want org bank-a, role member, FinID %s, network cli-test", st, bankA.finID)
	}
	for _, m := range st.Members {
		if m.PeerID == founder.peer && (m.Org != "founder" || m.Role != "founding") {
			t.Errorf("bank-a lists the founding node as org %q role %q", m.Org, m.Role)
		}
	}
	human := mustFinp2p(t, "status", "--repo", bankA.repo, "--api", nodeA.api)
	for _, want := range []string{"peer", "network", "finid", "certificate", "members"} {
		field(t, human, want)
	}
	if !strings.Contains(human, "founder") {
		t.Errorf("status does not show the connected founding node:\n%s", human)
	}

	// Discovery: each member advertises itself, and finds the other
	// through its node's API.
	t.Run("status shows the advertisement", func(t *testing.T) {
		waitFor(t, networkTimeout, "bank-a's status to show its advertisement", func() (bool, string) {
			st, err := nodeA.status(t)
			if err != nil {
				return false, err.Error()
			}
			return st.Advertisement != nil, "no advertisement in status"
		})
		human := mustFinp2p(t, "status", "--repo", bankA.repo, "--api", nodeA.api)
		if !strings.Contains(human, "\nadvertisement\n") {
			t.Fatalf("status has no advertisement section:\n%s", human)
		}
		if got := field(t, human, "services"); got != "custody" {
			t.Errorf("status shows advertised services %q, want custody:\n%s", got, human)
		}
		// The first ledger is on the field's line, the next on the line below.
		if got := field(t, human, "ledgers"); got != "bank-a/embedded" || !strings.Contains(human, ledgerOf("bank-a")) {
			t.Errorf("status shows advertised ledgers %q, want bank-a/embedded then %s:\n%s", got, ledgerOf("bank-a"), human)
		}
		for _, name := range []string{"seq", "expires", "protocols"} {
			field(t, human, name)
		}
	})
	t.Run("resolve", func(t *testing.T) {
		var res discovery.Resolution
		waitFor(t, networkTimeout, "bank-a to resolve bank-b", func() (bool, string) {
			r := finp2p(t, "resolve", "bank-b", "--repo", bankA.repo, "--api", nodeA.api, "--json")
			if r.code != 0 {
				return false, strings.TrimSpace(r.stderr)
			}
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
				return false, fmt.Sprintf("decode %q: %v", r.stdout, err)
			}
			return hasNode(res, bankB.peer), fmt.Sprintf("%+v", res)
		})
		if res.Org != "bank-b" || res.FinID != bankB.finID || res.Source == "" {
			t.Errorf("bank-b resolves to %+v, want org bank-b, FinID %s and a source", res, bankB.finID)
		}
		// Flags before the org work as well as after it.
		human := mustFinp2p(t, "resolve", "--repo", bankA.repo, "--api", nodeA.api, "bank-b")
		if got := field(t, human, "org"); got != "bank-b" {
			t.Errorf("resolve printed org %q, want bank-b:\n%s", got, human)
		}
		if got := field(t, human, "finid"); got != bankB.finID {
			t.Errorf("resolve printed FinID %q, want %s:\n%s", got, bankB.finID, human)
		}
		if got := field(t, human, "node"); got != bankB.peer {
			t.Errorf("resolve printed node %q, want %s:\n%s", got, bankB.peer, human)
		}
		for _, name := range []string{"source", "role", "addresses", "protocols", "version", "seq", "expires"} {
			field(t, human, name)
		}

		r := finp2p(t, "resolve", "nosuch-org", "--repo", bankA.repo, "--api", nodeA.api)
		if r.code != 1 || !strings.Contains(r.stderr, "not found") || !strings.Contains(r.stderr, "nosuch-org") {
			t.Errorf("resolve nosuch-org: %s\nwant exit 1 and a message saying nosuch-org is not found", r)
		}
		if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("error is not one line:\n%s", r.stderr)
		}
		r = finp2p(t, "resolve", "Bank_B", "--repo", bankA.repo, "--api", nodeA.api)
		if r.code != 1 || !strings.Contains(r.stderr, `"Bank_B" is not valid`) {
			t.Errorf("resolve Bank_B: %s\nwant exit 1 saying the org id is not valid", r)
		}
	})
	t.Run("orgs", func(t *testing.T) {
		var orgs []discovery.Resolution
		waitFor(t, networkTimeout, "bank-a's node to list bank-a and bank-b", func() (bool, string) {
			orgs = listOrgs(t, nodeA)
			a, b := findOrg(orgs, "bank-a"), findOrg(orgs, "bank-b")
			return a != nil && b != nil && hasNode(*a, bankA.peer) && hasNode(*b, bankB.peer), fmt.Sprintf("%+v", orgs)
		})
		for _, m := range []*testRepo{bankA, bankB} {
			if o := findOrg(orgs, m.org); o.FinID != m.finID {
				t.Errorf("orgs lists %s with FinID %q, want %s", m.org, o.FinID, m.finID)
			}
		}
		if got := orgNames(listOrgs(t, nodeA, "--ledger", ledgerOf("bank-b"))); !slices.Equal(got, []string{"bank-b"}) {
			t.Errorf("orgs --ledger %s lists %v, want [bank-b]", ledgerOf("bank-b"), got)
		}
		if got := orgNames(listOrgs(t, nodeA, "--service", "custody")); !slices.Contains(got, "bank-a") || !slices.Contains(got, "bank-b") {
			t.Errorf("orgs --service custody lists %v, want bank-a and bank-b", got)
		}

		human := mustFinp2p(t, "orgs", "--repo", bankA.repo, "--api", nodeA.api)
		rows := map[string][]string{}
		for _, line := range strings.Split(human, "\n") {
			if f := strings.Fields(line); len(f) == 7 {
				rows[f[0]] = f
			}
		}
		if h := rows["ORG"]; !slices.Equal(h, []string{"ORG", "FINID", "PEER", "ROLE", "ADDRESSES", "SERVICES", "LEDGERS"}) {
			t.Errorf("orgs table header is %q:\n%s", h, human)
		}
		for _, m := range []*testRepo{bankA, bankB} {
			row := rows[m.org]
			if len(row) != 7 || row[1] != m.finID || row[2] != m.peer || row[3] != "member" ||
				!strings.Contains(row[4], "/ip4/127.0.0.1/") || row[5] != "custody" || row[6] != advertisedLedgersOf(m.org) {
				t.Errorf("orgs row of %s is %q, want FinID %s, peer %s, member, its addresses, custody, %s:\n%s",
					m.org, row, m.finID, m.peer, advertisedLedgersOf(m.org), human)
			}
		}
		out := mustFinp2p(t, "orgs", "--repo", bankA.repo, "--api", nodeA.api, "--service", "nosuch-service")
		if !strings.Contains(out, "no organisation matches") {
			t.Errorf("orgs with a service nobody offers printed:\n%s", out)
		}
	})

	// Resources: bank-a advertises its assets through its node's API, and
	// the other nodes find them, or not, through theirs.
	publicAsset := "bank-a:102:" + uuid.NewString()
	t.Run("advertise a public resource and find it from another member", func(t *testing.T) {
		// The first advertisement may come before bank-a's DHT has peers.
		var adv node.ResourceInfo
		waitFor(t, networkTimeout, "bank-a to advertise "+publicAsset, func() (bool, string) {
			r := finp2p(t, "advertise", publicAsset, "--repo", bankA.repo, "--api", nodeA.api, "--topic", "assets/public", "--json")
			if r.code != 0 {
				return false, strings.TrimSpace(r.stderr)
			}
			return json.Unmarshal([]byte(r.stdout), &adv) == nil, r.stdout
		})
		if adv.Resource != publicAsset || adv.Owner != "bank-a" || adv.Peer != bankA.peer || adv.Restricted || adv.Seq == 0 {
			t.Errorf("advertise printed %+v, want %s owned by bank-a from peer %s, public, with a sequence number", adv, publicAsset, bankA.peer)
		}
		got := findResource(t, nodeB, publicAsset)
		if got.Owner != "bank-a" || got.Peer != bankA.peer || got.Restricted || got.Topic != "assets/public" || got.Seq < adv.Seq {
			t.Errorf("bank-b found %+v, want bank-a's public advertisement from peer %s with topic assets/public", got, bankA.peer)
		}
		// The URI form names the same resource; flags may follow it.
		uri := "finp2p://bank-a/102/" + strings.TrimPrefix(publicAsset, "bank-a:102:")
		human := mustFinp2p(t, "find", uri, "--repo", bankB.repo, "--api", nodeB.api)
		for name, want := range map[string]string{
			"resource": publicAsset, "owner": "bank-a", "visibility": "public", "topic": "assets/public", "peer": bankA.peer,
		} {
			if got := field(t, human, name); got != want {
				t.Errorf("find printed %s %q, want %q:\n%s", name, got, want, human)
			}
		}
		field(t, human, "seq")
		field(t, human, "expires")
	})
	restrictedAsset := "bank-a:102:" + uuid.NewString()
	t.Run("a restricted resource is found only by the org it went to", func(t *testing.T) {
		var out string
		waitFor(t, networkTimeout, "bank-a to advertise "+restrictedAsset+" to bank-b", func() (bool, string) {
			r := finp2p(t, "advertise", "--repo", bankA.repo, "--api", nodeA.api, "--to", "bank-b", restrictedAsset)
			out = r.stdout
			return r.code == 0, strings.TrimSpace(r.stderr)
		})
		if got := field(t, out, "visibility"); got != "restricted to bank-b" {
			t.Errorf("advertise printed visibility %q, want restricted to bank-b:\n%s", got, out)
		}
		if got := findResource(t, nodeB, restrictedAsset); !got.Restricted || got.Owner != "bank-a" || got.Peer != bankA.peer {
			t.Errorf("bank-b found %+v, want bank-a's restricted advertisement", got)
		}
		r := finp2p(t, "find", restrictedAsset, "--repo", tn.founder.repo, "--api", founder.api)
		if r.code != 1 || !strings.Contains(r.stderr, "not found") || !strings.Contains(r.stderr, restrictedAsset) {
			t.Errorf("the founder, not in the audience, finding %s: %s\nwant exit 1 saying it is not found", restrictedAsset, r)
		}
	})
	t.Run("find an unknown resource", func(t *testing.T) {
		unknown := "bank-b:102:" + uuid.NewString()
		r := finp2p(t, "find", unknown, "--repo", bankA.repo, "--api", nodeA.api)
		if r.code != 1 || !strings.Contains(r.stderr, "not found") || !strings.Contains(r.stderr, unknown) {
			t.Errorf("find %s: %s\nwant exit 1 saying it is not found", unknown, r)
		}
		if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("error is not one line:\n%s", r.stderr)
		}
	})
	t.Run("advertise refuses a malformed id and another org's resource", func(t *testing.T) {
		for _, c := range []struct{ id, want string }{
			{"bank-a:1:x", `type part "1"`},
			{"bank-a:102", "missing id part"},
			{"Bank_A:102:x", "org part"},
			{"finp2p://bank-a/102/x?y", "query"},
		} {
			r := finp2p(t, "advertise", c.id, "--repo", bankA.repo, "--api", nodeA.api)
			if r.code != 1 || !strings.Contains(r.stderr, "bad resource id") || !strings.Contains(r.stderr, c.want) {
				t.Errorf("advertise %s: %s\nwant exit 1 saying it is a bad resource id, %s", c.id, r, c.want)
			}
		}
		theirs := "bank-b:102:" + uuid.NewString()
		r := finp2p(t, "advertise", theirs, "--repo", bankA.repo, "--api", nodeA.api)
		if r.code != 1 || !strings.Contains(r.stderr, "not the node's org's") || !strings.Contains(r.stderr, `"bank-b"`) {
			t.Errorf("bank-a advertising %s: %s\nwant exit 1 saying it belongs to bank-b", theirs, r)
		}
	})
	t.Run("withdraw", func(t *testing.T) {
		out := mustFinp2p(t, "withdraw", publicAsset, "--repo", bankA.repo, "--api", nodeA.api)
		if got := field(t, out, "withdrawn"); got != publicAsset {
			t.Errorf("withdraw printed %q, want %s", got, publicAsset)
		}
		waitFor(t, networkTimeout, "bank-b to stop finding "+publicAsset, func() (bool, string) {
			r := finp2p(t, "find", publicAsset, "--repo", bankB.repo, "--api", nodeB.api)
			return r.code == 1 && strings.Contains(r.stderr, "withdrawn"), r.String()
		})
		r := finp2p(t, "withdraw", "bank-a:102:"+uuid.NewString(), "--repo", bankA.repo, "--api", nodeA.api)
		if r.code != 1 || !strings.Contains(r.stderr, "was not advertised") {
			t.Errorf("withdrawing what was never advertised: %s\nwant exit 1 saying it was not advertised", r)
		}
	})

	// ACLs, state and updates: bank-a lets bank-b read and subscribe to an
	// asset; bank-b gets its state and follows its updates, the founding
	// node (granted nothing) is refused, and only bank-a writes.
	t.Run("acl, state and updates", func(t *testing.T) {
		asset := "bank-a:102:" + uuid.NewString()
		var out string
		waitFor(t, networkTimeout, "bank-a to hand the ACL of "+asset+" to bank-b", func() (bool, string) {
			r := finp2p(t, "acl", asset, "--repo", bankA.repo, "--api", nodeA.api, "--grant", "bank-b=subscribe,read")
			out = r.stdout
			return r.code == 0 && r.stderr == "", r.String()
		})
		for name, want := range map[string]string{"resource": asset, "owner": "bank-a", "public": "no", "grants": "bank-b=read,subscribe"} {
			if got := field(t, out, name); got != want {
				t.Errorf("acl printed %s %q, want %q:\n%s", name, got, want, out)
			}
		}
		shown := mustFinp2p(t, "acl", asset, "--show", "--repo", bankB.repo, "--api", nodeB.api)
		if field(t, shown, "version") != field(t, out, "version") || field(t, shown, "grants") != "bank-b=read,subscribe" {
			t.Errorf("bank-b holds the ACL\n%s\nwant the one bank-a set:\n%s", shown, out)
		}
		r := finp2p(t, "acl", asset, "--show", "--repo", tn.founder.repo, "--api", founder.api)
		if r.code != 1 || !strings.Contains(r.stderr, "holds no ACL") {
			t.Errorf("the founder, not concerned, showing the ACL: %s\nwant exit 1 saying it holds none", r)
		}

		dir := t.TempDir()
		state := `{"nav": "101.5"}` + "\n"
		stateFile := filepath.Join(dir, "state.json")
		if err := os.WriteFile(stateFile, []byte(state), 0o644); err != nil {
			t.Fatal(err)
		}
		out = mustFinp2p(t, "put-state", asset, stateFile, "--repo", bankA.repo, "--api", nodeA.api)
		if got, want := field(t, out, "state"), fmt.Sprintf("%d bytes stored", len(state)); got != want {
			t.Errorf("put-state printed state %q, want %q", got, want)
		}
		if got := mustFinp2p(t, "get", asset, "--repo", bankB.repo, "--api", nodeB.api); got != state {
			t.Errorf("bank-b got state %q, want %q", got, state)
		}
		// From standard input, and into a file.
		if r := finp2pStdin(t, "nav 102", "put-state", asset, "-", "--repo", bankA.repo, "--api", nodeA.api); r.code != 0 {
			t.Fatalf("put-state from standard input: %s", r)
		}
		gotFile := filepath.Join(dir, "got")
		mustFinp2p(t, "get", "--out", gotFile, asset, "--repo", bankB.repo, "--api", nodeB.api)
		if data, err := os.ReadFile(gotFile); err != nil || string(data) != "nav 102" {
			t.Errorf("get --out wrote %q (%v), want %q", data, err, "nav 102")
		}
		checkMode(t, gotFile, 0o600)
		r = finp2p(t, "get", asset, "--repo", tn.founder.repo, "--api", founder.api)
		if r.code != 1 || !strings.Contains(r.stderr, "access denied") || !strings.Contains(r.stderr, "founder") || r.stdout != "" {
			t.Errorf("the founder, granted nothing, getting the state: %s\nwant exit 1 saying access is denied to org founder", r)
		}
		r = finp2p(t, "put-state", asset, stateFile, "--repo", bankB.repo, "--api", nodeB.api)
		if r.code != 1 || !strings.Contains(r.stderr, "not the node's org's") {
			t.Errorf("bank-b setting bank-a's state: %s\nwant exit 1 saying it is not its org's", r)
		}

		// Two subscribers on bank-b, one printing lines and one JSON; bank-a
		// publishes three updates, from --data, a file and standard input.
		plain := startSubscriber(t, "subscribe", asset, "--repo", bankB.repo, "--api", nodeB.api, "--count", "3")
		asJSON := startSubscriber(t, "subscribe", asset, "--repo", bankB.repo, "--api", nodeB.api, "--count", "3", "--json")
		updateFile := filepath.Join(dir, "update-2")
		if err := os.WriteFile(updateFile, []byte("update-2"), 0o644); err != nil {
			t.Fatal(err)
		}
		for i, how := range [][]string{{"--data", "update-1"}, {updateFile}, {"-"}} {
			r := finp2pStdin(t, "update-3\n", append([]string{"publish", asset, "--repo", bankA.repo, "--api", nodeA.api}, how...)...)
			if r.code != 0 || field(t, r.stdout, "seq") != fmt.Sprint(i+1) {
				t.Fatalf("publish %s: %s\nwant seq %d", how, r, i+1)
			}
		}
		want := []string{
			"1\t" + bankA.peer + "\tupdate-1",
			"2\t" + bankA.peer + "\tupdate-2",
			"3\t" + bankA.peer + "\t\"update-3\\n\"", // not one line of text: quoted
		}
		if got := plain.wait(t); !slices.Equal(got, want) {
			t.Errorf("subscribe printed %q, want %q", got, want)
		}
		for i, line := range asJSON.wait(t) {
			var u node.Update
			if err := json.Unmarshal([]byte(line), &u); err != nil || u.Seq != uint64(i+1) || u.Resource != asset || u.Publisher.String() != bankA.peer {
				t.Errorf("subscribe --json line %d is %q (%v), want update %d of %s from %s", i, line, err, i+1, asset, bankA.peer)
			}
		}
		r = finp2p(t, "publish", asset, "--data", "forged", "--repo", bankB.repo, "--api", nodeB.api)
		if r.code != 1 || !strings.Contains(r.stderr, "not the node's org's") {
			t.Errorf("bank-b publishing on bank-a's asset: %s\nwant exit 1 saying it is not its org's", r)
		}
	})

	// Users: bank-b creates a user and grants bank-a query on it; bank-a
	// reads the user's details, and the new ones once bank-b sets them; the
	// founding node, granted nothing, is refused.
	t.Run("create-user and private data", func(t *testing.T) {
		details := `{"name": "Alice"}`
		out := mustFinp2p(t, "create-user", "--data", details, "--repo", bankB.repo, "--api", nodeB.api)
		finID, user := field(t, out, "finid"), field(t, out, "resource")
		if len(finID) != 66 || (!strings.HasPrefix(finID, "02") && !strings.HasPrefix(finID, "03")) || user != "bank-b:101:"+finID {
			t.Fatalf("create-user printed finid %q and resource %q, want a compressed public key and bank-b:101:<finid>", finID, user)
		}
		waitFor(t, networkTimeout, "bank-b to hand the ACL of "+user+" to bank-a", func() (bool, string) {
			r := finp2p(t, "acl", user, "--repo", bankB.repo, "--api", nodeB.api, "--grant", "bank-a=query")
			return r.code == 0 && r.stderr == "", r.String()
		})
		if got := mustFinp2p(t, "private", user, "--repo", bankA.repo, "--api", nodeA.api); got != details {
			t.Errorf("bank-a got details %q, want %q", got, details)
		}
		r := finp2p(t, "private", user, "--repo", tn.founder.repo, "--api", founder.api)
		if r.code != 1 || !strings.Contains(r.stderr, "access denied") || r.stdout != "" {
			t.Errorf("the founder, granted nothing, querying the user: %s\nwant exit 1 saying access is denied", r)
		}

		// Set from standard input; query into a file; a user from a file, as JSON.
		if r := finp2pStdin(t, "name: Alice B.", "private", user, "--set", "-", "--repo", bankB.repo, "--api", nodeB.api); r.code != 0 ||
			field(t, r.stdout, "private") != "14 bytes stored" {
			t.Fatalf("private --set from standard input: %s", r)
		}
		r = finp2pStdin(t, "forged", "private", user, "--set", "-", "--repo", bankA.repo, "--api", nodeA.api)
		if r.code != 1 || !strings.Contains(r.stderr, "not the node's org's") {
			t.Errorf("bank-a setting bank-b's user: %s\nwant exit 1 saying it is not its org's", r)
		}
		gotFile := filepath.Join(t.TempDir(), "details")
		mustFinp2p(t, "private", user, "--out", gotFile, "--repo", bankA.repo, "--api", nodeA.api)
		if data, err := os.ReadFile(gotFile); err != nil || string(data) != "name: Alice B." {
			t.Errorf("private --out wrote %q (%v), want %q", data, err, "name: Alice B.")
		}
		checkMode(t, gotFile, 0o600)
		var created node.User
		out = mustFinp2p(t, "create-user", gotFile, "--json", "--repo", bankB.repo, "--api", nodeB.api)
		if err := json.Unmarshal([]byte(out), &created); err != nil || created.Resource.Org() != "bank-b" || created.FinID == finID {
			t.Errorf("create-user --json printed %q (%v), want another bank-b user", out, err)
		}
	})

	// Assets: bank-a creates an asset, issues it to a bank-b user and grants
	// bank-b transact; bank-b transfers between its users and keeps bank-a's
	// signed receipt, which verifies, while a tampered copy does not; the
	// founding node, outside the ACL, is refused.
	t.Run("asset transfer with a signed receipt", func(t *testing.T) {
		asset := "bank-a:102:" + uuid.NewString()
		// Accounts are not resource ids: the ledger takes any account name.
		const alice, bob = "alice@bank-b", "bob@bank-b"
		onA := []string{"--repo", bankA.repo, "--api", nodeA.api}
		onB := []string{"--repo", bankB.repo, "--api", nodeB.api}

		// Without --key the command makes one and shows it, to retry with.
		r := finp2p(t, append([]string{"create-asset", asset, "--decimals", "2"}, onA...)...)
		if r.code != 0 || field(t, r.stdout, "operation") != "create-asset" || field(t, r.stdout, "decimals") != "2" {
			t.Fatalf("create-asset: %s", r)
		}
		key := shownKey(t, r.stderr)
		again := mustFinp2p(t, append([]string{"create-asset", asset, "--decimals", "2", "--key", key}, onA...)...)
		if field(t, again, "transaction") != field(t, r.stdout, "transaction") {
			t.Errorf("create-asset retried with key %s made transaction %s, the first %s", key, field(t, again, "transaction"), field(t, r.stdout, "transaction"))
		}
		out := mustFinp2p(t, append([]string{"issue", asset, "--to", alice, "--quantity", "100", "--key", "issue-1"}, onA...)...)
		if field(t, out, "operation") != "issue" || field(t, out, "to") != alice || field(t, out, "quantity") != "100" {
			t.Errorf("issue printed:\n%s", out)
		}
		waitFor(t, networkTimeout, "bank-a to hand the ACL of "+asset+" to bank-b", func() (bool, string) {
			r := finp2p(t, append([]string{"acl", asset, "--grant", "bank-b=transact"}, onA...)...)
			return r.code == 0 && r.stderr == "", r.String()
		})

		// The same key on every try: the owner transfers at most once.
		transfer := append([]string{"transfer", asset, "--from", alice, "--to", bob, "--quantity", "40", "--key", "transfer-1"}, onB...)
		waitFor(t, networkTimeout, "bank-b to transfer on "+asset, func() (bool, string) {
			r := finp2p(t, transfer...)
			out = r.stdout
			return r.code == 0, r.String()
		})
		txID := field(t, out, "transaction")
		for name, want := range map[string]string{
			"operation": "transfer", "asset": asset, "from": alice, "to": bob, "quantity": "40",
			"key": "bank-b/transfer-1", "signer": "bank-a (peer " + bankA.peer + ")", "requester": "bank-b",
		} {
			if got := field(t, out, name); got != want {
				t.Errorf("transfer printed %s %q, want %q:\n%s", name, got, want, out)
			}
		}
		if got := field(t, mustFinp2p(t, transfer...), "transaction"); got != txID {
			t.Errorf("transfer retried with its key made transaction %s, the first %s", got, txID)
		}
		for account, want := range map[string]string{alice: "60", bob: "40"} {
			out := mustFinp2p(t, append([]string{"balance", asset, account}, onA...)...)
			if got := field(t, out, "current"); got != want || field(t, out, "available") != want || field(t, out, "held") != "0" {
				t.Errorf("balance of %s:\n%s\nwant %s current and available, 0 held", account, out, want)
			}
		}
		r = finp2p(t, append([]string{"balance", asset, alice}, onB...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "not the org's") {
			t.Errorf("bank-b reading bank-a's ledger: %s\nwant exit 1 saying the asset is not its org's", r)
		}

		// bank-b saves the receipt; any member's node verifies it.
		dir := t.TempDir()
		file := filepath.Join(dir, "receipt")
		out = mustFinp2p(t, append([]string{"receipt", txID, "--out", file}, onB...)...)
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := field(t, out, "receipt"), fmt.Sprintf("%d bytes written to %s", len(data), file); got != want || field(t, out, "transaction") != txID {
			t.Errorf("receipt --out printed receipt %q, want %q:\n%s", got, want, out)
		}
		checkMode(t, file, 0o600)
		for _, on := range [][]string{onB, {"--repo", tn.founder.repo, "--api", founder.api}} {
			out := mustFinp2p(t, append([]string{"verify-receipt", file}, on...)...)
			if field(t, out, "valid") != "yes" || field(t, out, "transaction") != txID || field(t, out, "signer") != "bank-a (peer "+bankA.peer+")" {
				t.Errorf("verify-receipt through %s printed:\n%s", on[1], out)
			}
		}
		tampered := filepath.Join(dir, "tampered")
		data[len(data)/2] ^= 0x01
		if err := os.WriteFile(tampered, data, 0o600); err != nil {
			t.Fatal(err)
		}
		r = finp2p(t, append([]string{"verify-receipt", tampered}, onB...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "is not valid") || r.stdout != "" {
			t.Errorf("verify-receipt of a tampered receipt: %s\nwant exit 1 saying it is not valid", r)
		}
		r = finp2p(t, append([]string{"receipt", "0123456789abcdef0123456789abcdef"}, onB...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "keeps no receipt") {
			t.Errorf("receipt of an unknown transaction: %s\nwant exit 1 saying the node keeps none", r)
		}

		r = finp2p(t, "transfer", asset, "--from", alice, "--to", bob, "--quantity", "1", "--key", "founder-1", "--repo", tn.founder.repo, "--api", founder.api)
		if r.code != 1 || !strings.Contains(r.stderr, "access-denied") || !strings.Contains(r.stderr, "founder") {
			t.Errorf("the founder, outside the ACL, transferring: %s\nwant exit 1 saying access is denied", r)
		}
		r = finp2p(t, append([]string{"transfer", asset, "--from", alice, "--to", bob, "--quantity", "1000"}, onB...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "insufficient balance") {
			t.Errorf("transferring more than alice holds: %s\nwant exit 1 saying the balance is insufficient", r)
		}
	})

	// Revoke bank-b with the governance CA that certified it and hand the
	// list to the founding node, which spreads it.
	crlFile := filepath.Join(tn.dir, "bank-b-revoked.pem")
	out := mustFinp2p(t, "revoke", "--ca", tn.govCA, "--serial", bankB.serial, "--reason", "4", "--out", crlFile)
	if got := field(t, out, "revoked"); got != bankB.serial {
		t.Errorf("revoke printed serial %s, want %s", got, bankB.serial)
	}
	if got := pemBlocks(t, crlFile); !slices.Equal(got, []string{"X509 CRL", "CERTIFICATE", "CERTIFICATE"}) {
		t.Errorf("revocation file holds %v, want the CRL, the governance CA and the founding root", got)
	}
	if openssl, err := exec.LookPath("openssl"); err == nil {
		out, err := exec.Command(openssl, "verify", "-crl_check", "-CRLfile", crlFile, "-CAfile", tn.root,
			"-untrusted", tn.govCACert, filepath.Join(bankB.repo, node.CertFileName)).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "revoked") {
			t.Errorf("openssl verify -crl_check does not see bank-b revoked: %v\n%s", err, out)
		}
	}
	out = mustFinp2p(t, "publish-crl", "--repo", tn.founder.repo, "--api", founder.api, crlFile)
	if !strings.Contains(out, "applied  yes") {
		t.Errorf("publish-crl printed %q, want it applied", out)
	}
	waitFor(t, networkTimeout, "the founding node and bank-a to drop bank-b", func() (bool, string) {
		var still []string
		for _, n := range []*testNode{founder, nodeA} {
			st, err := n.status(t)
			if err != nil {
				return false, err.Error()
			}
			if lists(st, nodeB.peer) {
				still = append(still, n.name+" lists bank-b")
			}
		}
		st, err := nodeB.status(t)
		if err != nil {
			return false, err.Error()
		}
		if len(st.Members) > 0 {
			still = append(still, fmt.Sprintf("bank-b still lists %d members", len(st.Members)))
		}
		return len(still) == 0, strings.Join(still, ", ")
	})
	out = mustFinp2p(t, "publish-crl", "--repo", tn.founder.repo, "--api", founder.api, crlFile)
	if !strings.Contains(out, "applied  no") {
		t.Errorf("publishing the same list again printed %q, want it not applied", out)
	}

	for _, n := range []*testNode{nodeB, nodeA, founder} {
		n.stop(t)
	}
}

// shownKey is the idempotency key an asset command made up and showed on
// standard error.
func shownKey(t *testing.T, stderr string) string {
	t.Helper()
	f := strings.Fields(stderr)
	for i := 0; i+2 < len(f); i++ {
		if f[i] == "idempotency" && f[i+1] == "key" {
			if _, err := uuid.Parse(f[i+2]); err == nil && strings.Contains(stderr, "--key "+f[i+2]) {
				return f[i+2]
			}
		}
	}
	t.Fatalf("no idempotency key, and how to retry with it, on standard error:\n%s", stderr)
	return ""
}

// TestCertifyTamperedCSR: a request whose signature does not verify is
// refused with a message that says so, and nothing is written.
func TestCertifyTamperedCSR(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mustFinp2p(t, "genesis", "--dir", filepath.Join(dir, "net"), "--network", "tamper", "--org", "founder", "--dev")
	repo := filepath.Join(dir, "bank-a")
	mustFinp2p(t, "init", "--repo", repo, "--org", "bank-a")
	data, err := os.ReadFile(filepath.Join(repo, node.CSRFileName))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("node.csr is not PEM:\n%s", data)
	}
	block.Bytes[len(block.Bytes)-1] ^= 0x01 // the last byte belongs to the signature
	tampered := filepath.Join(dir, "tampered.csr")
	if err := os.WriteFile(tampered, pem.EncodeToMemory(block), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "node.pem")
	r := finp2p(t, "certify", "--ca", filepath.Join(dir, "net", "ca"), "--csr", tampered, "--out", out)
	if r.code != 1 || !strings.Contains(r.stderr, "CSR signature") || !strings.Contains(r.stderr, tampered) {
		t.Errorf("certify with a tampered CSR: %s\nwant exit 1 and an error naming the CSR signature and file", r)
	}
	if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("error is not one line:\n%s", r.stderr)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("certify wrote %s although it failed (stat: %v)", out, err)
	}
}

// TestRunRefusesBadRepo: run names the missing file or the bad config field.
func TestRunRefusesBadRepo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	netDir := filepath.Join(dir, "net")
	mustFinp2p(t, "genesis", "--dir", netDir, "--network", "badrepo", "--org", "founder", "--dev")
	repo := filepath.Join(dir, "founder")
	mustFinp2p(t, "init", "--repo", repo, "--org", "founder", "--role", "founding", "--genesis", filepath.Join(netDir, "genesis.json"),
		"--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0")
	mustFinp2p(t, "certify", "--ca", filepath.Join(netDir, "ca"), "--csr", filepath.Join(repo, node.CSRFileName),
		"--out", filepath.Join(repo, node.CertFileName))
	cfgPath := filepath.Join(repo, node.ConfigFileName)
	keyPath := filepath.Join(repo, node.KeyFileName)
	origCfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	setConfig := func(key string, value any) func(*testing.T) {
		return func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(origCfg, &m); err != nil {
				t.Fatal(err)
			}
			m[key] = value
			data, _ := json.Marshal(m)
			if err := os.WriteFile(cfgPath, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name   string
		mutate func(*testing.T)
		want   []string
	}{
		{"missing key file", func(t *testing.T) {
			if err := os.Rename(keyPath, keyPath+".away"); err != nil {
				t.Fatal(err)
			}
		}, []string{"node key", keyPath}},
		{"key file readable by others", func(t *testing.T) {
			if err := os.Chmod(keyPath, 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{keyPath, "chmod 600"}},
		{"bad datastore", setConfig("datastore", "bogus"), []string{"datastore", "bogus"}},
		{"bad listen address", setConfig("listen", []string{"/ip4/127.0.0.1/udp/0"}), []string{"listen", "/ip4/127.0.0.1/udp/0"}},
		{"bad api address", setConfig("api", "no-port"), []string{"api", "no-port"}},
		{"bad handshake timeout", setConfig("handshake_timeout", "0s"), []string{"handshake_timeout"}},
		{"unknown field", setConfig("lisen", []string{}), []string{"lisen"}},
		{"missing certificate file", setConfig("certificate", "nowhere.pem"), []string{"certificate", "nowhere.pem"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Cleanup(func() {
				_ = os.WriteFile(cfgPath, origCfg, 0o644)
				if _, err := os.Stat(keyPath + ".away"); err == nil {
					_ = os.Rename(keyPath+".away", keyPath)
				}
				_ = os.Chmod(keyPath, 0o600)
			})
			c.mutate(t)
			r := finp2p(t, "run", "--repo", repo)
			if r.code != 1 {
				t.Fatalf("run: %s\nwant exit 1", r)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("run's error does not name %q:\n%s", w, r.stderr)
				}
			}
			if strings.Contains(r.stdout, "ready") {
				t.Errorf("run printed ready although it failed:\n%s", r.stdout)
			}
		})
	}
}

// TestInitAdvertisementFlags: init writes --announce, --no-announce,
// --service and --ledger (repeatable, comma-separated) into config.json, and
// refuses a bad value with the node's own message, writing nothing.
func TestInitAdvertisementFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	repo := filepath.Join(dir, "bank-a")
	out := mustFinp2p(t, "init", "--repo", repo, "--org", "bank-a",
		"--announce", "/ip4/1.2.3.4/tcp/4001", "--announce", "/ip4/1.2.3.4/udp/4001/quic-v1",
		"--no-announce", "/ip4/10.0.0.0/ipcidr/8", "--service", "custody",
		"--ledger", "ethereum,canton", "--ledger", "hyperledger-fabric")
	if got := field(t, out, "announce"); got != "/ip4/1.2.3.4/tcp/4001,/ip4/1.2.3.4/udp/4001/quic-v1" {
		t.Errorf("init printed announce %q", got)
	}
	cfg, err := node.LoadConfigFile(filepath.Join(repo, node.ConfigFileName))
	if err != nil {
		t.Fatalf("load the config init wrote: %v", err)
	}
	if !slices.Equal(cfg.Announce, []string{"/ip4/1.2.3.4/tcp/4001", "/ip4/1.2.3.4/udp/4001/quic-v1"}) ||
		!slices.Equal(cfg.NoAnnounce, []string{"/ip4/10.0.0.0/ipcidr/8"}) ||
		!slices.Equal(cfg.Services, []string{"custody"}) ||
		!slices.Equal(cfg.Ledgers, []string{"ethereum", "canton", "hyperledger-fabric"}) {
		t.Errorf("config.json has announce %q, no_announce %q, services %q, ledgers %q",
			cfg.Announce, cfg.NoAnnounce, cfg.Services, cfg.Ledgers)
	}
	// The file itself uses the documented field names.
	data, err := os.ReadFile(filepath.Join(repo, node.ConfigFileName))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"announce", "no_announce", "services", "ledgers"} {
		if _, ok := raw[key].([]any); !ok {
			t.Errorf("config.json has no %q list:\n%s", key, data)
		}
	}

	for _, c := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"announce not a multiaddr", []string{"--announce", "not-a-multiaddr"}, 1, []string{"--announce", "not-a-multiaddr"}},
		{"announce with a peer ID", []string{"--announce", "/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"}, 1, []string{"--announce", "peer ID"}},
		{"announce without transport", []string{"--announce", "/ip4/1.2.3.4"}, 1, []string{"--announce", "/ip4/1.2.3.4"}},
		{"no-announce not a multiaddr", []string{"--no-announce", "10.0.0.0/8"}, 1, []string{"--no-announce", "10.0.0.0/8"}},
		{"bad service name", []string{"--service", "cust ody"}, 1, []string{"--service", "cust ody"}},
		{"bad ledger name", []string{"--ledger", "-eth"}, 1, []string{"--ledger", "-eth"}},
		{"empty list item", []string{"--service", "custody,"}, 2, []string{"-service", "empty item"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			repo := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-"))
			r := finp2p(t, append([]string{"init", "--repo", repo, "--org", "bank-b"}, c.args...)...)
			if r.code != c.code {
				t.Fatalf("init %s: %s\nwant exit %d", strings.Join(c.args, " "), r, c.code)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("init %s: error does not name %q:\n%s", strings.Join(c.args, " "), w, r.stderr)
				}
			}
			if _, err := os.Stat(repo); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("init %s failed but created %s (stat: %v)", strings.Join(c.args, " "), repo, err)
			}
		})
	}
}

// TestInitTwice: a repo's key is made once; a second init refuses.
func TestInitTwice(t *testing.T) {
	t.Parallel()
	repo := filepath.Join(t.TempDir(), "bank-a")
	mustFinp2p(t, "init", "--repo", repo, "--org", "bank-a")
	key, err := os.ReadFile(filepath.Join(repo, node.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	r := finp2p(t, "init", "--repo", repo, "--org", "bank-a")
	if r.code != 1 || !strings.Contains(r.stderr, "already") || !strings.Contains(r.stderr, node.KeyFileName) {
		t.Errorf("second init: %s\nwant exit 1 naming the existing node key", r)
	}
	after, err := os.ReadFile(filepath.Join(repo, node.KeyFileName))
	if err != nil || !bytes.Equal(key, after) {
		t.Errorf("second init changed the node key (read error %v)", err)
	}
}

// TestUsage: help lists every command; mistakes exit 2 with usage.
func TestUsage(t *testing.T) {
	t.Parallel()
	r := finp2p(t, "help")
	if r.code != 0 {
		t.Fatalf("help: %s", r)
	}
	for _, c := range commands() {
		if !strings.Contains(r.stdout, "  "+c.name+" ") {
			t.Errorf("help does not list %s:\n%s", c.name, r.stdout)
		}
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Commands:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"certify"}, 2, "--ca is required"},
		{[]string{"certify", "--nope"}, 2, "flag provided but not defined"},
		{[]string{"init", "--repo", "x", "--org", "y", "--role", "king"}, 2, "unknown role"},
		{[]string{"revoke", "--ca", "x", "--out", "y"}, 2, "exactly one of --serial and --cert"},
		{[]string{"devnet", "--members", "0"}, 2, "--members 0"},
		{[]string{"devnet", "--members", "3"}, 2, "want 4 to 16"},
		{[]string{"ca", "uninstall"}, 2, "unknown subcommand"},
		{[]string{"genesis", "-h"}, 0, "--network"},
		{[]string{"status", "--repo", t.TempDir()}, 1, "api.token"},
		{[]string{"orgs", "--repo", t.TempDir()}, 1, "api.token"},
		{[]string{"orgs", "bank-a"}, 2, "unexpected argument"},
		{[]string{"resolve", "--repo", t.TempDir()}, 2, "exactly one ORG"},
		{[]string{"resolve", "bank-a", "bank-b", "--repo", t.TempDir()}, 2, "exactly one ORG"},
		{[]string{"resolve", "bank-a"}, 2, "--repo is required"},
		{[]string{"resolve", "bank-a", "--repo", t.TempDir()}, 1, "api.token"},
		{[]string{"find", "--repo", t.TempDir()}, 2, "exactly one ID"},
		{[]string{"advertise", "bank-a:102:x"}, 2, "--repo is required"},
		{[]string{"advertise", "bank-a:102:x", "--repo", t.TempDir(), "--to", "bank-b,"}, 2, "empty item"},
		{[]string{"advertise", "bank-a:102:x", "--repo", t.TempDir(), "--to", "Bank_B"}, 1, `--to: organisation id "Bank_B"`},
		{[]string{"find", "bank-a:1:x", "--repo", t.TempDir()}, 1, `type part "1"`},
		{[]string{"withdraw", "bank-a:102:x", "--repo", t.TempDir()}, 1, "api.token"},
		{[]string{"acl", "bank-a:102:x", "--repo", t.TempDir()}, 2, "say what to set"},
		{[]string{"acl", "bank-a:102:x", "--repo", t.TempDir(), "--show", "--public"}, 2, "--show prints"},
		{[]string{"acl", "bank-a:102:x", "--repo", t.TempDir(), "--private", "--grant", "bank-b=read"}, 2, "--private grants nobody"},
		{[]string{"acl", "bank-a:102:x", "--repo", t.TempDir(), "--grant", "bank-b"}, 2, "want ORG=RIGHTS"},
		{[]string{"acl", "bank-a:102:x", "--repo", t.TempDir(), "--grant", "bank-b=read", "--grant", "bank-b=query"}, 2, "granted twice"},
		{[]string{"acl", "bank-a:102:x", "--repo", t.TempDir(), "--grant", "bank-b=read,fly"}, 1, `"fly"`},
		{[]string{"acl", "bank-a:102:x", "--repo", t.TempDir(), "--grant", "Bank_B=read"}, 1, `--grant: organisation id "Bank_B"`},
		{[]string{"put-state", "bank-a:102:x", "--repo", t.TempDir()}, 2, "the resource ID and the FILE"},
		{[]string{"put-state", "bank-a:102:x", "nowhere.json", "--repo", t.TempDir()}, 1, "nowhere.json"},
		{[]string{"get", "bank-a:102:x"}, 2, "--repo is required"},
		{[]string{"publish", "bank-a:102:x", "--repo", t.TempDir()}, 2, "exactly one of --data and FILE"},
		{[]string{"publish", "bank-a:102:x", "file", "--data", "x", "--repo", t.TempDir()}, 2, "exactly one of --data and FILE"},
		{[]string{"publish", "bank-a:102:x", "--data", "", "--repo", t.TempDir()}, 1, "api.token"},
		{[]string{"subscribe", "bank-a:102:x", "--repo", t.TempDir(), "--count", "-1"}, 2, "--count -1"},
		{[]string{"subscribe", "bank-a:1:x", "--repo", t.TempDir()}, 1, `type part "1"`},
		{[]string{"create-user", "--repo", t.TempDir()}, 2, "exactly one of --data and FILE"},
		{[]string{"create-user", "--data", "x"}, 2, "--repo is required"},
		{[]string{"create-user", "nowhere.json", "--repo", t.TempDir()}, 1, "nowhere.json"},
		{[]string{"private", "--repo", t.TempDir()}, 2, "exactly one ID"},
		{[]string{"private", "bank-a:101:x", "--repo", t.TempDir(), "--set", "-", "--out", "f"}, 2, "give at most one"},
		{[]string{"private", "bank-a:101:x", "--repo", t.TempDir()}, 1, "api.token"},
		{[]string{"create-asset", "bank-a:102:x", "--repo", t.TempDir()}, 2, "--decimals is required"},
		{[]string{"create-asset", "bank-a:102:x", "--repo", t.TempDir(), "--decimals", "19"}, 2, "--decimals 19"},
		{[]string{"create-asset", "bank-a:102:x", "--decimals", "2"}, 2, "--repo is required"},
		{[]string{"issue", "bank-a:102:x", "--repo", t.TempDir(), "--to", "alice"}, 2, "--quantity is required"},
		{[]string{"balance", "bank-a:102:x", "--repo", t.TempDir()}, 2, "the asset ID and the ACCOUNT"},
		{[]string{"balance", "bank-a:1:x", "alice", "--repo", t.TempDir()}, 1, `type part "1"`},
		{[]string{"transfer", "bank-a:102:x", "--repo", t.TempDir(), "--from", "a", "--to", "b"}, 2, "--quantity is required"},
		{[]string{"transfer", "bank-a:102:x", "--repo", t.TempDir(), "--hold", "h"}, 2, "flag provided but not defined: -hold"},
		{[]string{"redeem", "bank-a:102:x", "--repo", t.TempDir(), "--quantity", "1"}, 2, "--from is required"},
		{[]string{"release", "bank-a:102:x", "--repo", t.TempDir(), "--hold", "h"}, 2, "--to is required"},
		{[]string{"rollback", "bank-a:102:x", "--repo", t.TempDir()}, 2, "--hold is required"},
		{[]string{"rollback", "bank-a:102:x", "--repo", t.TempDir(), "--hold", "h"}, 1, "api.token"},
		{[]string{"receipt", "--repo", t.TempDir()}, 2, "exactly one TXID"},
		{[]string{"verify-receipt", "--repo", t.TempDir()}, 2, "exactly one FILE"},
		{[]string{"verify-receipt", "nowhere.bin", "--repo", t.TempDir()}, 1, "nowhere.bin"},
	} {
		r := finp2p(t, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr+r.stdout, c.want) {
			t.Errorf("finp2p %s: %s\nwant exit %d and %q", strings.Join(c.args, " "), r, c.code, c.want)
		}
	}
}

// devnetSteps are the steps of a default devnet run, in order, as its
// report names them.
var devnetSteps = []string{
	"prepare ports and directories", "init founder (founding)", "genesis", "certify founder by founding root",
	"init governor (governance)", "certify governance CA by founding root", "install governance CA",
	"certify governor by governance CA", "init + certify bank-a", "init + certify bank-b",
	"init + certify custodian-c", "init + certify asset-manager-d (cluster of 2)",
	"start founder", "start governor", "start bank-a", "start bank-b", "start asset-manager-d",
	"start custodian-c", "start asset-manager-d-standby",
	"members connected via rendezvous", "every member resolves every other org", "GET /v1/orgs lists every org",
	"resource advertisement", "resource updates", "create users of bank-a", "transfer refused without user details",
	"private data query", "asset transfer to primary node", "ledger replicas caught up", "balance broadcast",
	"receipt validation broadcast", "revoke bank-b by governance CA", "publish CRL to governor's API",
	"revoked member dropped by every node", "stop nodes",
}

// TestDevnet runs the README's main job end to end, as a user would: the
// finp2p binary starts real node processes (four member orgs, one of them a
// two-node cluster, one following another's ledger). It checks each step's
// outcome in the progress lines and the final report.
func TestDevnet(t *testing.T) {
	if testing.Short() {
		t.Skip("devnet starts seven node processes; skipped with -short")
	}
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "devnet")
	r := finp2p(t, "devnet", "--dir", dir, "--timeout", "2m")
	if r.code != 0 {
		t.Fatalf("devnet: %s", r)
	}
	for _, want := range []string{
		"4 member organisations (5 member nodes)",
		"asset-manager-d is a cluster of 2 nodes, custodian-c follows asset-manager-d/embedded",
		"; follows asset-manager-d/embedded",
		"2 nodes, one FinID ", "asset-manager-d executes asset-manager-d/embedded, asset-manager-d-standby is its standby",
		"15 of 15 pairs resolved, asset-manager-d to both its nodes",
		"asset-manager-d (2 nodes, fund-administration, asset-manager-d/embedded, ethereum)",
		"bank-a (payments, bank-a/embedded, ethereum)", "bank-b (payments, bank-b/embedded, canton)",
		"custodian-c (custody, asset-manager-d/embedded, custodian-c/embedded, hyperledger-fabric)",
		"public, found by bank-b", "restricted to bank-b, found by bank-b, 404 for custodian-c",
		"ACL grants bank-b read,subscribe; bank-b got the state, 403 for custodian-c; bank-b received seq 1..3 in order",
		"alice bank-a:101:", "bob bank-a:101:",
		"100 issued to alice, transact granted to bank-a; for bank-a's request asset-manager-d asked bank-a for alice's details, bank-a's ACL refused, so did asset-manager-d: user details unavailable",
		"bank-a grants asset-manager-d query on alice and bob; asset-manager-d got alice's details from bank-a", "403 for bank-b",
		"bank-a moved 40 from alice to bob, round trip ",
		"asset-manager-d's primary node got both users' details from bank-a, executed it and signed the receipt (not the standby); receipt kept and verified by bank-a; balances at asset-manager-d 60/40",
		"asset-manager-d/embedded at version 3 on asset-manager-d (primary); asset-manager-d-standby (standby) at 3 from asset-manager-d, custodian-c (follower) at 3 from asset-manager-d",
		"bank-a finds its 3 nodes by ledger: asset-manager-d, asset-manager-d-standby, custodian-c",
		"bank-a asked the 3 nodes of asset-manager-d/embedded, quorum 3, encrypted: alice has 60 (60 available), agreed by asset-manager-d, asset-manager-d-standby, custodian-c at ledger version 3",
		" valid, agreed by ", "(quorum 2 of 3); with quantity 41 instead of 40 not valid (the ledger's transaction differs in quantity), agreed by ",
		"6 nodes dropped bank-b; it is connected to none of them", "7 nodes exited with status 0 after SIGTERM",
		fmt.Sprintf("devnet: all %d steps passed", len(devnetSteps)),
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("devnet output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "FAILED") {
		t.Errorf("devnet reported a failure:\n%s", r.stdout)
	}
	// The report: every step, in order, with outcome ok and a time.
	_, report, ok := strings.Cut(r.stdout, "\nreport\n")
	if !ok {
		t.Fatalf("devnet printed no report:\n%s", r.stdout)
	}
	rows := strings.Split(strings.TrimSpace(report), "\n")
	if len(rows) < len(devnetSteps)+1 {
		t.Fatalf("report has %d rows, want a header and %d steps:\n%s", len(rows), len(devnetSteps), report)
	}
	for i, step := range devnetSteps {
		fields := strings.Fields(strings.TrimPrefix(rows[i+1], "  "+step))
		if !strings.HasPrefix(rows[i+1], "  "+step+"  ") || len(fields) != 2 || fields[0] != "ok" {
			t.Errorf("report row %d is %q, want step %q, ok and its time", i+1, rows[i+1], step)
			continue
		}
		if _, err := time.ParseDuration(strings.Replace(fields[1], "µs", "us", 1)); err != nil {
			t.Errorf("report row %q: time %q: %v", rows[i+1], fields[1], err)
		}
	}
	for _, name := range []string{"founder", "governor", "bank-a", "bank-b", "custodian-c", "asset-manager-d", "asset-manager-d-standby"} {
		data, err := os.ReadFile(filepath.Join(dir, name, "node.log"))
		if err != nil {
			t.Errorf("node log of %s: %v", name, err)
			continue
		}
		if !strings.Contains(string(data), "\nstopped\n") {
			t.Errorf("%s's node did not stop cleanly; its log:\n%s", name, data)
		}
	}
	// devnet.json is only there while --keep keeps the nodes running.
	if _, err := os.Stat(filepath.Join(dir, "devnet.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("devnet.json after a run without --keep: %v", err)
	}

	// A devnet never reuses a directory.
	r = finp2p(t, "devnet", "--dir", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "not empty") {
		t.Errorf("devnet in a used directory: %s\nwant exit 1, directory not empty", r)
	}
}

// TestDevnetFailureNamesStepAndLog: a failed step is reported with its name
// and the log file of the node concerned, in the progress line, the report
// and the error devnet exits with.
func TestDevnetFailureNamesStepAndLog(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	d := &devnet{dir: "/tmp/devnet-x", out: &out, startedAt: time.Now()}
	ctx := context.Background()
	if err := d.step(ctx, "create users of bank-a", "", func(context.Context) (string, error) { return "alice, bob", nil }); err != nil {
		t.Fatal(err)
	}
	log := "/tmp/devnet-x/asset-manager-d/node.log"
	err := d.step(ctx, "asset transfer to primary node", "", func(context.Context) (string, error) {
		return "", &stepError{log: log, err: errors.New("node asset-manager-d exited (exit status 1)")}
	})
	if err == nil || !strings.Contains(err.Error(), `step "asset transfer to primary node" failed`) || !strings.Contains(err.Error(), log) {
		t.Errorf("step error %v: want it to name the step and %s", err, log)
	}
	d.report()
	for _, want := range []string{
		"FAILED after", "    log: " + log,
		"  create users of bank-a          ok",
		"  asset transfer to primary node  FAILED",
		`devnet: FAILED at step "asset transfer to primary node"`, "devnet: node log: " + log, "devnet: files kept in /tmp/devnet-x",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestPrintDiscovery: the human output of orgs, resolve and status's
// advertisement section, from fixed answers, so it does not need a network.
func TestPrintDiscovery(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	id, err := peer.Decode("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA")
	if err != nil {
		t.Fatal(err)
	}
	info := discovery.NodeInfo{
		Peer: id, Role: "member",
		Addrs:     []string{"/ip4/1.2.3.4/tcp/4001", "/ip4/1.2.3.4/udp/4001/quic-v1"},
		Protocols: []string{"/finp2p/membership/1.0.0", "/finp2p/kad/1.0.0"},
		Services:  []string{"custody"}, Ledgers: []string{"ethereum", "canton"},
		Version: "0.1.0", Seq: 7, Expires: now.Add(24 * time.Hour),
	}
	res := discovery.Resolution{Org: "custodian-c", FinID: "finid-c", Source: discovery.SourceRegistrar, Nodes: []discovery.NodeInfo{info}}

	var b strings.Builder
	printOrgs(&b, []discovery.Resolution{res, {Org: "bank-a", FinID: "finid-a", Nodes: []discovery.NodeInfo{{Peer: info.Peer, Role: "member"}}}})
	out := b.String()
	for _, want := range []string{
		"custodian-c  finid-c  12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA  member  /ip4/1.2.3.4/tcp/4001,/ip4/1.2.3.4/udp/4001/quic-v1  custody   ethereum,canton",
		"bank-a       finid-a  12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA  member  -",
		"2 organisations, 2 nodes",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("orgs table lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	printOrgs(&b, nil)
	if b.String() != "no organisation matches\n" {
		t.Errorf("empty orgs table = %q", b.String())
	}

	b.Reset()
	printResolution(&b, res, now)
	out = b.String()
	for name, want := range map[string]string{
		"org": "custodian-c", "finid": "finid-c", "source": "registrar", "nodes": "1", "node": id.String(),
		"role": "member", "version": "0.1.0", "seq": "7", "expires": "2026-01-03T03:04:05Z (in 24h0m0s)",
		"addresses": "/ip4/1.2.3.4/tcp/4001", "services": "custody", "ledgers": "ethereum", "protocols": "/finp2p/membership/1.0.0",
	} {
		if got := field(t, out, name); got != want {
			t.Errorf("resolve shows %s %q, want %q:\n%s", name, got, want, out)
		}
	}
	for _, more := range []string{"/ip4/1.2.3.4/udp/4001/quic-v1", "canton", "/finp2p/kad/1.0.0"} {
		if !strings.Contains(out, "\n             "+more+"\n") {
			t.Errorf("resolve does not list %q on a line of its own under the first value:\n%s", more, out)
		}
	}

	b.Reset()
	printStatus(&b, node.Status{PeerID: id.String(), Org: "custodian-c", Advertisement: &info}, now)
	out = b.String()
	if !strings.Contains(out, "\nadvertisement\n") || field(t, out, "seq") != "7" || field(t, out, "services") != "custody" {
		t.Errorf("status lacks the advertisement section:\n%s", out)
	}
	b.Reset()
	printStatus(&b, node.Status{PeerID: id.String(), Org: "custodian-c"}, now)
	if strings.Contains(b.String(), "advertisement") {
		t.Errorf("status without an advertisement shows one:\n%s", b.String())
	}
}

// TestRoundDuration: how far off an expiry is, including a zero time, whose
// distance saturates at the smallest duration.
func TestRoundDuration(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{90 * time.Second, "in 1m30s"},
		{72 * time.Hour, "in 3d"},
		{-2 * time.Hour, "expired 2h0m0s ago"},
		{-72 * time.Hour, "expired 3d ago"},
		{time.Time{}.Sub(time.Now()), "expired 106751d ago"},
	} {
		if got := roundDuration(c.d); got != c.want {
			t.Errorf("roundDuration(%s) = %q, want %q", c.d, got, c.want)
		}
	}
}

// TestPrintResource: the human output of advertise and find, from fixed
// answers.
func TestPrintResource(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	info := node.ResourceInfo{
		Resource: "bank-a:102:9929ccaf-8967-4ba3-9198-a4b8e3128388", Owner: "bank-a",
		Peer: "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA", Seq: 7, Expires: now.Add(24 * time.Hour),
	}
	var b strings.Builder
	printResource(&b, info, nil, now)
	want := "resource    bank-a:102:9929ccaf-8967-4ba3-9198-a4b8e3128388\n" +
		"owner       bank-a\n" +
		"visibility  public\n" +
		"topic       -\n" +
		"peer        12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA\n" +
		"seq         7\n" +
		"expires     2026-01-03T03:04:05Z (in 24h0m0s)\n"
	if b.String() != want {
		t.Errorf("public resource printed\n%s\nwant\n%s", b.String(), want)
	}
	info.Restricted, info.Topic = true, "assets/9929ccaf"
	for _, c := range []struct {
		to   []string
		want string
	}{
		{[]string{"bank-b", "custodian-c"}, "restricted to bank-b,custodian-c"},
		{nil, "restricted"}, // find does not know the audience
	} {
		b.Reset()
		printResource(&b, info, c.to, now)
		if got := field(t, b.String(), "visibility"); got != c.want {
			t.Errorf("visibility with audience %v = %q, want %q", c.to, got, c.want)
		}
		if got := field(t, b.String(), "topic"); got != "assets/9929ccaf" {
			t.Errorf("topic = %q:\n%s", got, b.String())
		}
	}
}

// TestPrintUpdates: how acl shows an ACL and subscribe shows an update's
// data, from fixed values.
func TestPrintUpdates(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ data, want string }{
		{"update-1", "update-1"},
		{"nav 101.5 €", "nav 101.5 €"},
		{"", ""},
		{"two\nlines", `"two\nlines"`},
		{"tab\there", `"tab\there"`},
		{`"quoted"`, `"\"quoted\""`},
		{"\xff\x00", `"\xff\x00"`},
	} {
		if got := showData([]byte(c.data)); got != c.want {
			t.Errorf("showData(%q) = %s, want %s", c.data, got, c.want)
		}
	}

	var b strings.Builder
	printACL(&b, api.ACLResponse{
		Resource: "bank-a:102:x", Owner: "bank-a", Version: 7,
		Grants: map[string]resource.Right{"custodian-c": resource.RightRead, "bank-b": resource.RightRead | resource.RightSubscribe},
	})
	want := "resource  bank-a:102:x\n" +
		"owner     bank-a\n" +
		"version   7\n" +
		"public    no\n" +
		"grants    bank-b=read,subscribe custodian-c=read\n"
	if b.String() != want {
		t.Errorf("ACL printed\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	printACL(&b, api.ACLResponse{Resource: "bank-a:102:x", Owner: "bank-a", Version: 8, Public: true})
	if got := field(t, b.String(), "grants"); got != "none" {
		t.Errorf("ACL without grants shows grants %q", got)
	}
	if got := field(t, b.String(), "public"); !strings.HasPrefix(got, "yes") {
		t.Errorf("public ACL shows public %q", got)
	}
}
