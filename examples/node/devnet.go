package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/finp2p/go-finp2p/api"
	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/resource"
)

// The development network devnet builds.
const (
	devnetNetwork     = "finp2p-devnet"
	devnetFounderOrg  = "founder"
	devnetGovernorOrg = "governor"
	devnetGovCADir    = "governor-ca"
	devnetMinMembers  = 4
	devnetMaxMembers  = 16
	nodeLogFile       = "node.log"
	// standbySuffix names the second node of the cluster org, and its
	// directory: "<org>-standby".
	standbySuffix = "-standby"

	// pollInterval is how often devnet looks at a node's log or status.
	pollInterval = 100 * time.Millisecond
	// stopTimeout is how long a node gets to exit after SIGTERM before it
	// is killed; the node itself bounds its shutdown to shutdownTimeout.
	stopTimeout = shutdownTimeout + 5*time.Second
)

// memberOrgs names the member organisations devnet creates, in order. The
// first four each have a part in the flows (see the roles below); the
// others only join, are discovered and hear the broadcasts.
var memberOrgs = []string{"bank-a", "bank-b", "custodian-c", "asset-manager-d", "bank-e", "custodian-f", "asset-manager-g"}

// The parts of the first four member organisations, by index in memberOrgs.
const (
	// requesterIdx (bank-a) is Org A of the spec's flows: it advertises
	// resources, has users, asks for the asset transfer and sends the
	// balance and receipt-validation broadcasts.
	requesterIdx = 0
	// readerIdx (bank-b) is given access to bank-a's resources and is
	// revoked at the end.
	readerIdx = 1
	// followerIdx (custodian-c) follows the asset manager's ledger: it
	// keeps a replica and answers ledger broadcasts from it.
	followerIdx = 2
	// ownerIdx (asset-manager-d) is Org B: a two-node cluster (a primary
	// node executing its ledger and a standby node keeping a replica),
	// owner of the asset transferred.
	ownerIdx = 3
)

func memberOrg(i int) string {
	if i < len(memberOrgs) {
		return memberOrgs[i]
	}
	return fmt.Sprintf("member-%d", i+1)
}

// devnetLedgers are the ledgers devnet members advertise besides their
// embedded one, one each in turn.
var devnetLedgers = []string{"ethereum", "canton", "hyperledger-fabric"}

// embeddedLedger is the id of an org's embedded ledger, the one its
// primary node executes.
func embeddedLedger(org string) string { return org + "/embedded" }

// memberServices is what a devnet member advertises it offers, by the kind
// of organisation its name says it is.
func memberServices(org string) []string {
	switch {
	case strings.HasPrefix(org, "bank-"):
		return []string{"payments"}
	case strings.HasPrefix(org, "asset-manager-"):
		return []string{"fund-administration"}
	}
	return []string{"custody"}
}

// devnode is one node process of the development network.
type devnode struct {
	// name is the org, or "<org>-standby" for the second node of the
	// cluster; it names the node's directory too.
	name    string
	org     string
	role    governance.Role
	repo    string
	logPath string
	apiAddr string // 127.0.0.1:port, fixed in config.json
	listen  []string
	// services and ledgers are what the node advertises.
	services []string
	ledgers  []string
	// follows are the ledgers the node keeps a replica of (config.json's
	// follow_ledgers); a node following its own org's ledger is a standby.
	follows []string
	// followers are the other orgs allowed to replicate the node's ledger
	// (ledger_followers).
	followers []string
	standby   bool
	peer      peer.ID
	cert      string // the node's certificate serial, 0x-hex
	finID     string
	client    *api.Client

	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has exited
	waitMu sync.Mutex
	waited error // what cmd.Wait returned
}

func (n *devnode) waitErr() error {
	n.waitMu.Lock()
	defer n.waitMu.Unlock()
	return n.waited
}

// running returns nil while the node's process runs, else a step error
// saying how it ended, with its last log line and log file.
func (n *devnode) running() error {
	if exited, werr := n.hasExited(); exited {
		return &stepError{log: n.logPath, err: fmt.Errorf("node %s exited (%v): %s", n.name, describeExit(werr), lastLogLine(n.logPath))}
	}
	return nil
}

// hasExited reports whether the process ended, with its exit error.
func (n *devnode) hasExited() (bool, error) {
	if n.exited == nil {
		return false, nil
	}
	select {
	case <-n.exited:
		return true, n.waitErr()
	default:
		return false, nil
	}
}

// stepResult is one row of devnet's report.
type stepResult struct {
	name    string
	outcome string
	took    time.Duration
	err     error
	log     string // the log file to read when the step failed
}

// stepError is a failed step; its message names the step and the log file.
type stepError struct {
	step string
	log  string
	err  error
}

func (e *stepError) Error() string {
	msg := fmt.Sprintf("step %q failed: %v", e.step, e.err)
	if e.log != "" {
		msg += "; see " + e.log
	}
	return msg
}

func (e *stepError) Unwrap() error { return e.err }

// devnet runs a development network of real node processes.
type devnet struct {
	dir     string
	exe     string
	members int
	out     io.Writer

	founding  *devnode
	governor  *devnode
	memberNs  []*devnode // every member node, the standby after its primary
	steps     []stepResult
	crlFile   string
	startedAt time.Time

	// The nodes with a part in the flows (see requesterIdx and the others).
	requester, reader, follower, owner, standby *devnode
	// revoked is the member revoked at the end, once it is.
	revoked *devnode

	// asset is the public resource the resource step advertised; it stays
	// advertised, for --keep.
	asset string
	// users are the requester's users the transfer moves an asset between.
	users []devUser
	// ledgerAsset is the asset the transfer moved, on the owner's ledger;
	// ledgerNodes the nodes that read that ledger; receipt the requester's
	// receipt of the transfer. They stay, for --keep.
	ledgerAsset string
	ledgerNodes []*devnode
	receipt     api.ReceiptResponse
}

// devUser is a user of the requester's org.
type devUser struct {
	name     string // alice, bob
	resource string // org:101:<FinID>, the account on the ledger
	details  []byte // the private data the user was created with
}

func (d *devnet) nodes() []*devnode {
	return append([]*devnode{d.founding, d.governor}, d.memberNs...)
}

// startOrder is the order nodes start in: nodes that follow a ledger after
// the others, so they find its primary node at once.
func (d *devnet) startOrder() []*devnode {
	var first, later []*devnode
	for _, n := range d.nodes() {
		if len(n.follows) > 0 {
			later = append(later, n)
		} else {
			first = append(first, n)
		}
	}
	return append(first, later...)
}

// nodesOf lists the member nodes of org.
func (d *devnet) nodesOf(org string) []*devnode {
	var out []*devnode
	for _, m := range d.memberNs {
		if m.org == org {
			out = append(out, m)
		}
	}
	return out
}

// memberOrgNames lists the member orgs, in order.
func (d *devnet) memberOrgNames() []string {
	var out []string
	for _, m := range d.memberNs {
		if !slices.Contains(out, m.org) {
			out = append(out, m.org)
		}
	}
	return out
}

func runDevnet(ctx context.Context, args []string) error {
	fs := newFlagSet("devnet", "[--dir DIR] [--members N] [--keep] [--timeout 2m]",
		"Builds a FinP2P network on 127.0.0.1 from nothing and shows it working: a founding\n"+
			"authority and genesis, a founding node (the rendezvous node), a governance organisation\n"+
			"whose CA the founding authority certifies, N member organisations certified by that CA\n"+
			"(one of them a two-node cluster, one following another's ledger), every node started as\n"+
			"its own 'finp2p run' process; then, through each node's API: join through rendezvous,\n"+
			"discovery, resource advertisement, ACLs, state and update topics, users and a private\n"+
			"data query, an asset transfer routed to the owner's primary node with its signed receipt\n"+
			"verified, ledger replication, a balance broadcast with a quorum, a receipt-validation\n"+
			"broadcast, and one member revoked and the revocation checked on every node.\n"+
			"Ends with a report; exit status 0 means every step passed. With --keep the nodes keep\n"+
			"running until Ctrl-C, and DIR/devnet.json says how to reach each one.")
	var dir string
	var members int
	var keep bool
	var timeout time.Duration
	fs.StringVar(&dir, "dir", "", "directory for the network's files (default: a new temporary directory, removed after a successful run)")
	fs.IntVar(&members, "members", devnetMinMembers, fmt.Sprintf("number of member organisations, %d to %d: the first %d have a part in the flows, the others only join", devnetMinMembers, devnetMaxMembers, devnetMinMembers))
	fs.BoolVar(&keep, "keep", false, "leave the nodes running after the checks, until Ctrl-C")
	fs.DurationVar(&timeout, "timeout", 2*time.Minute, "time allowed for building and checking the network")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if members < devnetMinMembers || members > devnetMaxMembers {
		return usagef("--members %d: want %d to %d (the first %d organisations each have a part in the flows)", members, devnetMinMembers, devnetMaxMembers, devnetMinMembers)
	}
	if timeout <= 0 {
		return usagef("--timeout %s: want a positive duration", timeout)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this program to start nodes with: %w", err)
	}
	tempDir := dir == ""
	if tempDir {
		if dir, err = os.MkdirTemp("", "finp2p-devnet-"); err != nil {
			return fmt.Errorf("create devnet directory: %w", err)
		}
	} else if err := emptyDir(dir); err != nil {
		return err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return fmt.Errorf("devnet directory: %w", err)
	}

	d := &devnet{dir: dir, exe: exe, members: members, out: os.Stdout, startedAt: time.Now()}
	fmt.Fprintf(d.out, "devnet: network %s with 1 founding, 1 governance and %d member organisations (%d member nodes) in %s\n\n",
		devnetNetwork, members, members+1, dir)

	// Whatever happens, no node outlives devnet.
	defer d.stopAll()

	runCtx, cancel := context.WithTimeout(ctx, timeout)
	err = d.build(runCtx)
	cancel()
	if err == nil && !keep {
		err = d.step(ctx, "stop nodes", "", d.stopStep)
	}
	if ctx.Err() != nil && err != nil {
		err = fmt.Errorf("interrupted: %w", err)
	}
	d.report()
	if err != nil {
		return err
	}
	if keep {
		return d.keepRunning(ctx)
	}
	if tempDir {
		if rmErr := os.RemoveAll(dir); rmErr == nil {
			fmt.Fprintf(d.out, "removed %s (pass --dir to keep the files, --keep to keep the nodes running)\n", dir)
		}
	}
	return nil
}

// emptyDir refuses a directory that already holds files, so a devnet never
// mixes with an earlier one.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--dir %s: %w", dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("--dir %s is not empty; give a new or empty directory", dir)
	}
	return nil
}

// build runs every step up to the revocation check.
func (d *devnet) build(ctx context.Context) error {
	if err := d.step(ctx, "prepare ports and directories", "", d.prepare); err != nil {
		return err
	}
	if err := d.step(ctx, "init founder (founding)", "", func(context.Context) (string, error) { return d.initNode(d.founding, "") }); err != nil {
		return err
	}
	if err := d.step(ctx, "genesis", "", d.genesis); err != nil {
		return err
	}
	if err := d.step(ctx, "certify founder by founding root", "", func(context.Context) (string, error) {
		return d.certifyNode(d.founding, filepath.Join(d.dir, genesisCADir))
	}); err != nil {
		return err
	}
	if err := d.step(ctx, "init governor (governance)", "", func(context.Context) (string, error) {
		return d.initNode(d.governor, filepath.Join(d.dir, genesisFile))
	}); err != nil {
		return err
	}
	if err := d.step(ctx, "certify governance CA by founding root", "", d.certifyGovernanceCA); err != nil {
		return err
	}
	if err := d.step(ctx, "install governance CA", "", d.installGovernanceCA); err != nil {
		return err
	}
	govCA := filepath.Join(d.dir, devnetGovCADir)
	if err := d.step(ctx, "certify governor by governance CA", "", func(context.Context) (string, error) {
		return d.certifyNode(d.governor, govCA)
	}); err != nil {
		return err
	}
	for _, org := range d.memberOrgNames() {
		nodes := d.nodesOf(org)
		name := "init + certify " + org
		if len(nodes) > 1 {
			name += fmt.Sprintf(" (cluster of %d)", len(nodes))
		}
		if err := d.step(ctx, name, "", func(context.Context) (string, error) { return d.initMember(nodes, govCA) }); err != nil {
			return err
		}
	}
	for _, n := range d.startOrder() {
		if err := d.step(ctx, "start "+n.name, n.logPath, func(ctx context.Context) (string, error) { return d.start(ctx, n) }); err != nil {
			return err
		}
	}
	for _, s := range []struct {
		name string
		f    func(context.Context) (string, error)
	}{
		{"members connected via rendezvous", d.waitConnected},
		{"every member resolves every other org", d.waitResolved},
		{"GET /v1/orgs lists every org", d.listOrgs},
		{"resource advertisement", d.advertiseResources},
		{"resource updates", d.resourceUpdates},
		{"create users of " + d.requester.org, d.createUsers},
		{"transfer refused without user details", d.transferWithoutDetails},
		{"private data query", d.privateDataQuery},
		{"asset transfer to primary node", d.assetTransfer},
		{"ledger replicas caught up", d.replicasCaughtUp},
		{"balance broadcast", d.balanceBroadcast},
		{"receipt validation broadcast", d.receiptValidation},
	} {
		if err := d.step(ctx, s.name, "", s.f); err != nil {
			return err
		}
	}
	d.revoked = d.reader
	if err := d.step(ctx, "revoke "+d.revoked.org+" by governance CA", "", d.revoke); err != nil {
		return err
	}
	if err := d.step(ctx, "publish CRL to governor's API", d.governor.logPath, d.publish); err != nil {
		return err
	}
	return d.step(ctx, "revoked member dropped by every node", "", d.waitRevoked)
}

// step runs one step, prints its outcome as it ends and records it.
func (d *devnet) step(ctx context.Context, name, log string, f func(context.Context) (string, error)) error {
	fmt.Fprintf(d.out, "%-50s ", name+" ...")
	start := time.Now()
	outcome, err := f(ctx)
	took := time.Since(start)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	var se *stepError
	if errors.As(err, &se) && se.log != "" {
		log = se.log
		err = se.err
	}
	d.steps = append(d.steps, stepResult{name: name, outcome: outcome, took: took, err: err, log: log})
	if err != nil {
		fmt.Fprintf(d.out, "FAILED after %s\n    %s\n", roundTook(took), oneLine(err.Error()))
		if log != "" {
			fmt.Fprintf(d.out, "    log: %s\n", log)
		}
		return &stepError{step: name, log: log, err: err}
	}
	fmt.Fprintf(d.out, "ok  %-7s %s\n", roundTook(took), outcome)
	return nil
}

func roundTook(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

// report prints the table of steps.
func (d *devnet) report() {
	fmt.Fprintf(d.out, "\nreport\n")
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  STEP\tOUTCOME\tTIME\n")
	var failed *stepResult
	for i, s := range d.steps {
		outcome := "ok"
		if s.err != nil {
			outcome = "FAILED"
			failed = &d.steps[i]
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.name, outcome, roundTook(s.took))
	}
	_ = tw.Flush()
	total := time.Since(d.startedAt)
	if failed != nil {
		fmt.Fprintf(d.out, "devnet: FAILED at step %q after %s: %s\n", failed.name, roundTook(total), oneLine(failed.err.Error()))
		if failed.log != "" {
			fmt.Fprintf(d.out, "devnet: node log: %s\n", failed.log)
		}
		fmt.Fprintf(d.out, "devnet: files kept in %s\n", d.dir)
		return
	}
	fmt.Fprintf(d.out, "devnet: all %d steps passed in %s\n", len(d.steps), roundTook(total))
}

// prepare creates the directory, decides each node's ports, repo and part.
// Ports are taken while holding every listener, so they are distinct, and
// released just before the nodes bind them.
func (d *devnet) prepare(context.Context) (string, error) {
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", d.dir, err)
	}
	count := 2 + d.members + 1 // the cluster has two nodes
	ports, err := freeLoopbackPorts(count + 1)
	if err != nil {
		return "", err
	}
	next := 1
	mk := func(name, org string, role governance.Role) *devnode {
		repo := filepath.Join(d.dir, name)
		n := &devnode{
			name: name, org: org, role: role, repo: repo,
			logPath: filepath.Join(repo, nodeLogFile),
			apiAddr: net.JoinHostPort("127.0.0.1", fmt.Sprint(ports[next])),
			listen:  []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"},
		}
		next++
		return n
	}
	d.founding = mk(devnetFounderOrg, devnetFounderOrg, governance.RoleFounding)
	// The founding node is the rendezvous node: its TCP port is in the genesis.
	d.founding.listen[0] = fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", ports[0])
	d.governor = mk(devnetGovernorOrg, devnetGovernorOrg, governance.RoleGovernance)
	var byIdx []*devnode
	for i := range d.members {
		org := memberOrg(i)
		m := mk(org, org, governance.RoleMember)
		m.services = memberServices(org)
		m.ledgers = []string{devnetLedgers[i%len(devnetLedgers)]}
		d.memberNs = append(d.memberNs, m)
		byIdx = append(byIdx, m)
		if i == ownerIdx {
			// The cluster's second node: same org, its own key and
			// certificate, following the org's own ledger, which makes it
			// a standby of the primary node.
			s := mk(org+standbySuffix, org, governance.RoleMember)
			s.services, s.ledgers = m.services, m.ledgers
			s.follows = []string{embeddedLedger(org)}
			s.standby = true
			d.memberNs = append(d.memberNs, s)
			d.standby = s
		}
	}
	d.requester, d.reader, d.follower, d.owner = byIdx[requesterIdx], byIdx[readerIdx], byIdx[followerIdx], byIdx[ownerIdx]
	d.follower.follows = []string{embeddedLedger(d.owner.org)}
	// Its own org's nodes may always follow; other orgs must be listed.
	d.owner.followers = []string{d.follower.org}
	return fmt.Sprintf("rendezvous tcp/%d, %d API ports on 127.0.0.1; %s is a cluster of 2 nodes, %s follows %s",
		ports[0], count, d.owner.org, d.follower.org, embeddedLedger(d.owner.org)), nil
}

// freeLoopbackPorts returns n distinct TCP ports free on 127.0.0.1.
func freeLoopbackPorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port on 127.0.0.1: %w", err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// initNode creates a node's repo; genesisPath may be empty when the genesis
// does not exist yet (the founding node's peer ID goes into it). What the
// node follows goes into its config.json.
func (d *devnet) initNode(n *devnode, genesisPath string) (string, error) {
	res, err := initRepo(initOptions{
		Repo: n.repo, Org: n.org, Role: n.role, Genesis: genesisPath,
		Listen: n.listen, API: n.apiAddr, Services: n.services, Ledgers: n.ledgers,
	})
	if err != nil {
		return "", err
	}
	if len(n.follows) > 0 || len(n.followers) > 0 {
		if err := setReplication(n.repo, n.follows, n.followers); err != nil {
			return "", err
		}
	}
	n.peer = res.PeerID
	token, err := node.ReadToken(n.repo)
	if err != nil {
		return "", err
	}
	n.client = &api.Client{Base: "http://" + n.apiAddr, Token: token, HTTP: &http.Client{Timeout: 10 * time.Second}}
	return "peer " + res.PeerID.String(), nil
}

// setReplication writes a repo's follow_ledgers and ledger_followers, as
// an operator would edit config.json.
func setReplication(repo string, follows, followers []string) error {
	path := filepath.Join(repo, node.ConfigFileName)
	cfg, err := node.LoadConfigFile(path)
	if err != nil {
		return err
	}
	if err := node.WithFollowLedgers(follows...)(&cfg); err != nil {
		return fmt.Errorf("follow_ledgers: %w", err)
	}
	if err := node.WithLedgerFollowers(followers...)(&cfg); err != nil {
		return fmt.Errorf("ledger_followers: %w", err)
	}
	return node.WriteConfigFile(path, cfg)
}

// initMember creates and certifies the nodes of one member org: one node,
// or the two of the cluster, which share the org's FinID.
func (d *devnet) initMember(nodes []*devnode, caDir string) (string, error) {
	genesisPath := filepath.Join(d.dir, genesisFile)
	var outcome string
	for _, n := range nodes {
		if _, err := d.initNode(n, genesisPath); err != nil {
			return "", fmt.Errorf("%s: %w", n.name, err)
		}
		out, err := d.certifyNode(n, caDir)
		if err != nil {
			return "", fmt.Errorf("%s: %w", n.name, err)
		}
		outcome = out
	}
	first := nodes[0]
	if len(nodes) == 1 {
		if len(first.follows) > 0 {
			outcome += "; follows " + strings.Join(first.follows, ", ")
		}
		return outcome, nil
	}
	var serials []string
	for _, n := range nodes {
		if n.finID != first.finID {
			return "", fmt.Errorf("%s got FinID %s, %s got %s: the nodes of one org must share it", first.name, first.finID, n.name, n.finID)
		}
		serials = append(serials, n.cert)
	}
	return fmt.Sprintf("%d nodes, one FinID %s, serials %s; %s executes %s, %s is its standby",
		len(nodes), first.finID, strings.Join(serials, ", "), first.name, embeddedLedger(first.org), d.standby.name), nil
}

func (d *devnet) genesis(context.Context) (string, error) {
	rendezvous := fmt.Sprintf("%s/p2p/%s", d.founding.listen[0], d.founding.peer)
	res, err := createGenesis(genesisOptions{
		Dir: d.dir, Network: devnetNetwork, Org: devnetFounderOrg,
		Rendezvous: []string{rendezvous}, Development: true, Validity: 87600 * time.Hour,
	}, time.Now())
	if err != nil {
		return "", err
	}
	// The founding node's repo was made before the genesis existed.
	if err := res.Genesis.Save(filepath.Join(d.founding.repo, node.GenesisFileName)); err != nil {
		return "", err
	}
	return fmt.Sprintf("root SHA256 %s…, rendezvous %s", fingerprint(res.Root)[:23], rendezvous), nil
}

func (d *devnet) certifyNode(n *devnode, caDir string) (string, error) {
	res, err := certifyCSR(certifyOptions{
		CA: caDir, CSR: filepath.Join(n.repo, node.CSRFileName), Out: filepath.Join(n.repo, node.CertFileName),
	}, time.Now())
	if err != nil {
		return "", err
	}
	n.cert = serialHex(res.Cert)
	n.finID = res.Member.FinID
	return fmt.Sprintf("%s, FinID %s, serial %s", res.Member.Role, res.Member.FinID, n.cert), nil
}

func (d *devnet) certifyGovernanceCA(context.Context) (string, error) {
	res, err := certifyCSR(certifyOptions{
		CA: filepath.Join(d.dir, genesisCADir), CSR: filepath.Join(d.governor.repo, caRequestDir, caRequestCSR),
		Out: filepath.Join(d.governor.repo, caRequestDir, "ca.pem"), GovernanceCA: true,
	}, time.Now())
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%q, serial %s", res.Cert.Subject.String(), serialHex(res.Cert)), nil
}

func (d *devnet) installGovernanceCA(context.Context) (string, error) {
	a, err := installCA(caInstallOptions{
		Dir:     filepath.Join(d.dir, devnetGovCADir),
		Key:     filepath.Join(d.governor.repo, caRequestDir, caRequestKey),
		Cert:    filepath.Join(d.governor.repo, caRequestDir, "ca.pem"),
		Genesis: filepath.Join(d.dir, genesisFile),
	})
	if err != nil {
		return "", err
	}
	return "authority in " + a.Dir(), nil
}

// start launches a node process and waits for its "ready" line.
func (d *devnet) start(ctx context.Context, n *devnode) (string, error) {
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return "", fmt.Errorf("open node log: %w", err)
	}
	cmd := exec.Command(d.exe, "run", "--repo", n.repo, "--log-format", "text")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childProcAttr()
	err = cmd.Start()
	_ = logf.Close() // the child holds its own descriptor
	if err != nil {
		return "", fmt.Errorf("start %s run: %w", d.exe, err)
	}
	n.cmd = cmd
	n.exited = make(chan struct{})
	go func() {
		err := cmd.Wait()
		n.waitMu.Lock()
		n.waited = err
		n.waitMu.Unlock()
		close(n.exited)
	}()

	var seen runAnnouncement
	err = poll(ctx, "the node's 'ready' line", func() (bool, string, error) {
		if exited, werr := n.hasExited(); exited {
			return false, "", fmt.Errorf("node exited before it was ready (%v): %s", describeExit(werr), lastLogLine(n.logPath))
		}
		seen = readAnnouncement(n.logPath)
		return seen.ready, fmt.Sprintf("%d lines of log", seen.lines), nil
	})
	if err != nil {
		return "", err
	}
	if seen.peer != n.peer.String() {
		return "", fmt.Errorf("node announced peer %s, want %s from its repo", seen.peer, n.peer)
	}
	return fmt.Sprintf("pid %d, api %s, %d listen addresses", cmd.Process.Pid, seen.api, len(seen.listen)), nil
}

// runAnnouncement is what `finp2p run` printed on stdout so far.
type runAnnouncement struct {
	peer   string
	listen []string
	api    string
	ready  bool
	lines  int
}

func readAnnouncement(path string) runAnnouncement {
	var a runAnnouncement
	data, err := os.ReadFile(path)
	if err != nil {
		return a
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		a.lines++
		word, rest, _ := strings.Cut(sc.Text(), " ")
		switch word {
		case "peer":
			a.peer = rest
		case "listen":
			a.listen = append(a.listen, rest)
		case "api":
			a.api = rest
		case "ready":
			a.ready = true
		}
	}
	return a
}

// lastLogLine returns the last line a node wrote, which says why it stopped.
func lastLogLine(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "no log: " + err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return "last log line: " + strings.TrimSpace(lines[len(lines)-1])
}

func describeExit(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// poll calls check every pollInterval until it reports done, fails, or ctx
// ends; the error then says what was awaited and what was seen last.
func poll(ctx context.Context, what string, check func() (done bool, progress string, err error)) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	last := ""
	for {
		done, progress, err := check()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		last = progress
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up waiting for %s: %w; last seen: %s", what, ctx.Err(), last)
		case <-t.C:
		}
	}
}

// statuses asks every running node for its status.
func (d *devnet) statuses(ctx context.Context) (map[*devnode]node.Status, error) {
	out := map[*devnode]node.Status{}
	for _, n := range d.nodes() {
		if err := n.running(); err != nil {
			return nil, err
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := n.client.Status(cctx)
		cancel()
		if err != nil {
			continue // not fatal: the next round asks again
		}
		out[n] = st
	}
	return out, nil
}

// connectedPeers lists the peer IDs a status shows as connected members.
func connectedPeers(st node.Status) []string {
	ids := make([]string, 0, len(st.Members))
	for _, m := range st.Members {
		ids = append(ids, m.PeerID)
	}
	return ids
}

// waitConnected waits until the network has formed around its rendezvous
// node: the founding node lists every other node as a verified, connected
// member and every other node lists the founding node. Nodes first meet
// through the genesis rendezvous node; they find other organisations through
// the registrar (governance and founding nodes) and the DHT, which the next
// step checks, and connect to them when they have something to say, so
// direct member-to-member connections are counted and reported here but not
// required.
func (d *devnet) waitConnected(ctx context.Context) (string, error) {
	all := d.nodes()
	rv := d.founding
	var fatal error
	var direct, pairs int
	err := poll(ctx, "the founding node and every other node to list each other as connected members", func() (bool, string, error) {
		sts, err := d.statuses(ctx)
		if err != nil {
			fatal = err
			return false, "", err
		}
		var missing []string
		for _, n := range all {
			if _, ok := sts[n]; !ok {
				missing = append(missing, n.name+": API not answering")
			}
		}
		if len(missing) > 0 {
			return false, strings.Join(missing, ", "), nil
		}
		for _, n := range all {
			if n == rv {
				continue
			}
			if !slices.Contains(connectedPeers(sts[rv]), n.peer.String()) {
				missing = append(missing, rv.name+" does not list "+n.name)
			}
			if !slices.Contains(connectedPeers(sts[n]), rv.peer.String()) {
				missing = append(missing, n.name+" does not list "+rv.name)
			}
		}
		direct, pairs = 0, 0
		for i, a := range all {
			for _, b := range all[i+1:] {
				if a == rv || b == rv {
					continue
				}
				pairs++
				if slices.Contains(connectedPeers(sts[a]), b.peer.String()) && slices.Contains(connectedPeers(sts[b]), a.peer.String()) {
					direct++
				}
			}
		}
		return len(missing) == 0, strings.Join(missing, ", "), nil
	})
	if err != nil {
		if fatal != nil {
			return "", fatal
		}
		return "", err
	}
	return fmt.Sprintf("%s lists all %d other nodes and each lists %s; %d of %d other pairs directly connected",
		rv.name, len(all)-1, rv.name, direct, pairs), nil
}

// resolveTimeout bounds the discovery steps, so a network that does not
// converge fails there, naming what was missing, rather than at devnet's
// overall --timeout.
const resolveTimeout = 45 * time.Second

// waitResolved asks every member node's API to resolve every other member
// org (GET /v1/orgs/{org}) until each answer names all of the org's nodes
// (both nodes of the cluster), and reports how many pairs resolved, where
// the answers came from and how long it took.
func (d *devnet) waitResolved(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	type pair struct {
		from *devnode
		org  string
	}
	var pending []pair
	for _, a := range d.memberNs {
		for _, org := range d.memberOrgNames() {
			if a.org != org {
				pending = append(pending, pair{a, org})
			}
		}
	}
	total := len(pending)
	start := time.Now()
	sources := map[string]int{}
	var slowest time.Duration
	err := poll(ctx, fmt.Sprintf("all %d (member node, other org) pairs to resolve", total), func() (bool, string, error) {
		var still []pair
		var last string
		for _, p := range pending {
			if err := p.from.running(); err != nil {
				return false, "", err
			}
			res, err := p.from.client.Resolve(ctx, p.org)
			if err == nil {
				err = checkResolution(res, p.org, d.nodesOf(p.org))
			}
			if err != nil {
				still = append(still, p)
				last = fmt.Sprintf("%s resolving %s: %v", p.from.name, p.org, err)
				continue
			}
			sources[res.Source]++
			slowest = max(slowest, time.Since(start))
		}
		pending = still
		return len(pending) == 0, fmt.Sprintf("%d of %d pairs resolved; %s", total-len(pending), total, last), nil
	})
	if err != nil {
		return "", err
	}
	var from []string
	for _, src := range []string{discovery.SourceCache, discovery.SourceRegistrar, discovery.SourceDHT} {
		if sources[src] > 0 {
			from = append(from, fmt.Sprintf("%s %d", src, sources[src]))
		}
	}
	return fmt.Sprintf("%d of %d pairs resolved, %s to both its nodes, all within %s (answers from %s)",
		total, total, d.owner.org, roundTook(slowest), strings.Join(from, ", ")), nil
}

// checkResolution says what is wrong with a resolution of org, whose nodes
// are nodes, if anything.
func checkResolution(res discovery.Resolution, org string, nodes []*devnode) error {
	if res.Org != org {
		return fmt.Errorf("answer is for org %q", res.Org)
	}
	for _, n := range nodes {
		if err := checkListed(res, n); err != nil {
			return err
		}
	}
	return nil
}

// checkListed says whether a resolution lists node n with an address.
func checkListed(res discovery.Resolution, n *devnode) error {
	for _, info := range res.Nodes {
		if info.Peer == n.peer {
			if len(info.Addrs) == 0 {
				return fmt.Errorf("node %s (%s) has no address", n.name, n.peer)
			}
			return nil
		}
	}
	return fmt.Errorf("answer lists %d nodes, not %s (%s)", len(res.Nodes), n.name, n.peer)
}

// listOrgs asks one member's API for the member list (GET /v1/orgs) until
// it shows every member with what it advertises, and shows the list.
func (d *devnet) listOrgs(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	asker := d.requester
	var orgs []discovery.Resolution
	err := poll(ctx, asker.org+"'s /v1/orgs to list every member", func() (bool, string, error) {
		if err := asker.running(); err != nil {
			return false, "", err
		}
		var err error
		if orgs, err = asker.client.Orgs(ctx, discovery.Filter{}); err != nil {
			return false, err.Error(), nil
		}
		byOrg := map[string]discovery.Resolution{}
		for _, o := range orgs {
			byOrg[o.Org] = o
		}
		var missing []string
		for _, m := range d.memberNs {
			o, ok := byOrg[m.org]
			if !ok {
				missing = append(missing, m.org+" not listed")
				continue
			}
			if err := checkListed(o, m); err != nil {
				missing = append(missing, m.org+": "+err.Error())
				continue
			}
			if !advertises(o, m) {
				missing = append(missing, fmt.Sprintf("%s does not advertise services %v and ledgers %v", m.name, m.services, m.ledgers))
			}
		}
		return len(missing) == 0, strings.Join(missing, ", "), nil
	})
	if err != nil {
		return "", err
	}
	var shown []string
	for _, o := range orgs {
		s := o.Org
		var services, ledgers []string
		for _, n := range o.Nodes {
			services = append(services, n.Services...)
			ledgers = append(ledgers, n.Ledgers...)
		}
		slices.Sort(services)
		slices.Sort(ledgers)
		offers := append(slices.Compact(services), slices.Compact(ledgers)...)
		if len(o.Nodes) > 1 {
			offers = append([]string{fmt.Sprintf("%d nodes", len(o.Nodes))}, offers...)
		}
		if len(offers) > 0 {
			s += " (" + strings.Join(offers, ", ") + ")"
		}
		shown = append(shown, s)
	}
	return fmt.Sprintf("%s lists %d orgs: %s", asker.org, len(orgs), strings.Join(shown, ", ")), nil
}

// advertises reports whether one of the org's nodes advertises n's services
// and ledgers.
func advertises(res discovery.Resolution, n *devnode) bool {
	for _, info := range res.Nodes {
		if info.Peer != n.peer {
			continue
		}
		for _, s := range n.services {
			if !slices.Contains(info.Services, s) {
				return false
			}
		}
		for _, l := range n.ledgers {
			if !slices.Contains(info.Ledgers, l) {
				return false
			}
		}
		return true
	}
	return false
}

// advertiseResources has the requester (bank-a) advertise a public asset,
// which the reader (bank-b) finds through its API (GET /v1/resources/{id},
// from the DHT), then a restricted asset handed to the reader's org only:
// its node finds it and a third node (the follower's) gets 404.
func (d *devnet) advertiseResources(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	owner, allowed, refused := d.requester, d.reader, d.follower

	local := uuid.NewString()
	public := owner.org + ":" + resource.TypeAsset + ":" + local
	if _, err := d.advertise(ctx, owner, public, "assets/"+local, nil); err != nil {
		return "", err
	}
	if _, err := d.find(ctx, allowed, public, owner); err != nil {
		return "", err
	}
	d.asset = public

	restricted := owner.org + ":" + resource.TypeAsset + ":" + uuid.NewString()
	if _, err := d.advertise(ctx, owner, restricted, "", []string{allowed.org}); err != nil {
		return "", err
	}
	if _, err := d.find(ctx, allowed, restricted, owner); err != nil {
		return "", err
	}
	err := poll(ctx, refused.org+" to get 404 for the restricted asset", func() (bool, string, error) {
		if err := refused.running(); err != nil {
			return false, "", err
		}
		info, err := refused.client.FindResource(ctx, restricted)
		var p *api.Problem
		switch {
		case err == nil:
			return false, "", fmt.Errorf("%s, outside the audience, found the restricted asset %s: %+v", refused.org, restricted, info)
		case errors.As(err, &p) && p.Kind() == "resource-not-found":
			return true, "", nil
		}
		return false, err.Error(), nil
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s public, found by %s in the DHT; %s restricted to %s, found by %s, 404 for %s",
		shortResourceID(public), allowed.org, shortResourceID(restricted), allowed.org, allowed.org, refused.org), nil
}

// resourceUpdates has the requester (bank-a) set the ACL of its public
// asset, granting the reader (bank-b) read and subscribe, and put its state,
// which the reader gets through its API (GET /v1/resources/{id}/state) while
// the follower's node is refused with 403; then the reader subscribes over
// server-sent events, the owner publishes three updates and they arrive in
// order. The ACL, not the public advertisement, now decides who reads the
// asset.
func (d *devnet) resourceUpdates(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	owner, allowed, refused := d.requester, d.reader, d.follower
	id := d.asset

	// The ACL goes to the orgs it names; set it again until it reached them.
	err := d.retry(ctx, owner, owner.org+" to hand the ACL of "+id+" to "+allowed.org, func() (bool, string, error) {
		acl, err := owner.client.SetACL(ctx, id, api.ACLRequest{Grants: map[string]string{allowed.org: "read,subscribe"}})
		if err != nil {
			return false, "", err
		}
		return acl.Warning == "", acl.Warning, nil
	})
	if err != nil {
		return "", err
	}
	state := fmt.Appendf(nil, `{"asset": %q, "nav": "101.5"}`, id)
	if err := owner.client.PutState(ctx, id, state); err != nil {
		return "", &stepError{log: owner.logPath, err: err}
	}
	var got []byte
	err = d.retry(ctx, allowed, allowed.org+" to get the state of "+id, func() (bool, string, error) {
		var err error
		got, err = allowed.client.GetState(ctx, id)
		return err == nil, "", err
	})
	if err != nil {
		return "", err
	}
	if !bytes.Equal(got, state) {
		return "", fmt.Errorf("%s got state %q, want %q", allowed.org, got, state)
	}
	err = d.retry(ctx, refused, refused.org+" to be refused the state of "+id, func() (bool, string, error) {
		_, err := refused.client.GetState(ctx, id)
		var p *api.Problem
		switch {
		case err == nil:
			return false, "", &stepError{log: owner.logPath, err: fmt.Errorf("%s, granted nothing, got the state of %s", refused.org, id)}
		case errors.As(err, &p) && p.Status == http.StatusForbidden && p.Kind() == "access-denied":
			return true, "", nil
		}
		return false, "", err
	})
	if err != nil {
		return "", err
	}

	// Subscribe returns once the subscription is live.
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	updates, err := allowed.client.Subscribe(sctx, id)
	if err != nil {
		return "", &stepError{log: allowed.logPath, err: err}
	}
	const count = 3
	start := time.Now()
	var seqs []uint64
	for i := 1; i <= count; i++ {
		resp, err := owner.client.PublishUpdate(ctx, id, fmt.Appendf(nil, "update-%d", i))
		if err != nil {
			return "", &stepError{log: owner.logPath, err: err}
		}
		seqs = append(seqs, resp.Seq)
	}
	for i := range count {
		select {
		case u, ok := <-updates:
			if !ok {
				return "", &stepError{log: allowed.logPath, err: fmt.Errorf("%s's stream ended after %d of %d updates", allowed.org, i, count)}
			}
			if u.Seq != seqs[i] || string(u.Data) != fmt.Sprintf("update-%d", i+1) || u.Publisher != owner.peer {
				return "", fmt.Errorf("%s's update %d is seq %d %q from %s, want seq %d update-%d from %s",
					allowed.org, i+1, u.Seq, u.Data, u.Publisher, seqs[i], i+1, owner.peer)
			}
		case <-ctx.Done():
			return "", &stepError{log: allowed.logPath, err: fmt.Errorf("%s received %d of %d updates: %w", allowed.org, i, count, ctx.Err())}
		}
	}
	return fmt.Sprintf("%s ACL grants %s read,subscribe; %s got the state, 403 for %s; %s received seq %d..%d in order in %s",
		shortResourceID(id), allowed.org, allowed.org, refused.org, allowed.org, seqs[0], seqs[count-1], roundTook(time.Since(start))), nil
}

// retry calls f every pollInterval until it reports done, while n's node
// runs. Errors are taken as passing (the network, the owner's node not
// reached yet), except a *stepError and a problem other than a 502, which
// fail at once.
func (d *devnet) retry(ctx context.Context, n *devnode, what string, f func() (bool, string, error)) error {
	return poll(ctx, what, func() (bool, string, error) {
		if err := n.running(); err != nil {
			return false, "", err
		}
		done, progress, err := f()
		var p *api.Problem
		var se *stepError
		switch {
		case errors.As(err, &se):
			return false, "", err
		case errors.As(err, &p) && p.Status != http.StatusBadGateway:
			return false, "", &stepError{log: n.logPath, err: err}
		case err != nil:
			return false, err.Error(), nil
		}
		return done, progress, nil
	})
}

// advertise has owner's node advertise id until it succeeds: the first try
// may come before its DHT has peers or before it resolves the orgs in to.
// A refusal of the request itself fails at once.
func (d *devnet) advertise(ctx context.Context, owner *devnode, id, topic string, to []string) (node.ResourceInfo, error) {
	var info node.ResourceInfo
	err := poll(ctx, owner.org+" to advertise "+id, func() (bool, string, error) {
		if err := owner.running(); err != nil {
			return false, "", err
		}
		var err error
		info, err = owner.client.AdvertiseResource(ctx, id, topic, to)
		var p *api.Problem
		switch {
		case err == nil:
			return true, "", nil
		case errors.As(err, &p) && p.Kind() != "advertise-failed":
			return false, "", &stepError{log: owner.logPath, err: err}
		}
		return false, err.Error(), nil
	})
	return info, err
}

// find asks from's node for id until it answers with owner's advertisement.
func (d *devnet) find(ctx context.Context, from *devnode, id string, owner *devnode) (node.ResourceInfo, error) {
	var info node.ResourceInfo
	err := poll(ctx, from.org+" to find "+id, func() (bool, string, error) {
		if err := from.running(); err != nil {
			return false, "", err
		}
		var err error
		if info, err = from.client.FindResource(ctx, id); err != nil {
			return false, err.Error(), nil
		}
		if info.Owner != owner.org || info.Peer != owner.peer.String() {
			return false, fmt.Sprintf("found %+v", info), nil
		}
		return true, "", nil
	})
	return info, err
}

// shortResourceID shortens a devnet resource id for a step line: the org,
// the type and the first 8 characters of the UUID.
func shortResourceID(id string) string {
	if i := strings.LastIndexByte(id, ':'); i >= 0 && len(id)-i > 9 {
		return id[:i+9] + "…"
	}
	return id
}

func (d *devnet) revoke(context.Context) (string, error) {
	d.crlFile = filepath.Join(d.dir, "revocation-"+d.revoked.org+".pem")
	res, err := revokeCert(revokeOptions{
		CA: filepath.Join(d.dir, devnetGovCADir), Serial: d.revoked.cert,
		Reason: 5, Out: d.crlFile, CRLValidity: defaultCRLValidity,
	}, time.Now())
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("serial %s, CRL number %s in %s", d.revoked.cert, res.CRL.Number, d.crlFile), nil
}

func (d *devnet) publish(ctx context.Context) (string, error) {
	applied, err := publishCRL(ctx, d.governor.repo, d.governor.client.Base, d.crlFile)
	if err != nil {
		return "", err
	}
	if !applied {
		return "", errors.New("the governor's node did not take the new revocation list as new")
	}
	return "applied by governor, spread over gossipsub", nil
}

// waitRevoked waits until no other node lists the revoked member and the
// revoked member lists none of them.
func (d *devnet) waitRevoked(ctx context.Context) (string, error) {
	r := d.revoked
	var others []*devnode
	for _, n := range d.nodes() {
		if n != r {
			others = append(others, n)
		}
	}
	var fatal error
	err := poll(ctx, "every node to drop "+r.name, func() (bool, string, error) {
		sts, err := d.statuses(ctx)
		if err != nil {
			fatal = err
			return false, "", err
		}
		var still []string
		for _, n := range others {
			st, ok := sts[n]
			if !ok {
				still = append(still, n.name+": API not answering")
			} else if slices.Contains(connectedPeers(st), r.peer.String()) {
				still = append(still, n.name+" still lists "+r.name)
			}
		}
		st, ok := sts[r]
		if !ok {
			still = append(still, r.name+": API not answering")
		} else {
			for _, n := range others {
				if slices.Contains(connectedPeers(st), n.peer.String()) {
					still = append(still, r.name+" still connected to "+n.name)
				}
			}
		}
		return len(still) == 0, strings.Join(still, ", "), nil
	})
	if err != nil {
		if fatal != nil {
			return "", fatal
		}
		return "", err
	}
	return fmt.Sprintf("%d nodes dropped %s; it is connected to none of them", len(others), r.name), nil
}

// stopStep stops every node and checks each exited cleanly.
func (d *devnet) stopStep(context.Context) (string, error) {
	results := d.stopAll()
	var bad []string
	for _, n := range d.nodes() {
		if err, ok := results[n]; ok && err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v (%s)", n.name, err, n.logPath))
		}
	}
	if len(bad) > 0 {
		return "", errors.New("nodes did not stop cleanly: " + strings.Join(bad, "; "))
	}
	return fmt.Sprintf("%d nodes exited with status 0 after SIGTERM", len(results)), nil
}

// stopAll sends SIGTERM to every running node, kills those still running
// after stopTimeout, and returns each stopped node's exit error.
func (d *devnet) stopAll() map[*devnode]error {
	results := map[*devnode]error{}
	if d.founding == nil {
		return results
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range d.nodes() {
		if n.cmd == nil {
			continue
		}
		if exited, _ := n.hasExited(); exited {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := stopProcess(n)
			mu.Lock()
			results[n] = err
			mu.Unlock()
		}()
	}
	wg.Wait()
	return results
}

// stopProcess ends one node: SIGTERM, then SIGKILL to its process group.
func stopProcess(n *devnode) error {
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
		return n.waitErr()
	case <-time.After(stopTimeout):
	}
	killGroup(n.cmd.Process)
	<-n.exited
	return fmt.Errorf("did not exit within %s of SIGTERM and was killed", stopTimeout)
}
