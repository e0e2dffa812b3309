package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-datastore"
	lp2pnet "github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/finp2p/go-finp2p/asset"
	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/ledger"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/protocols/pb"
	"github.com/finp2p/go-finp2p/resource"
)

// echoProtocol is the bare-stream baseline: registered on the owner's host
// by the bench only.
const echoProtocol = protocol.ID("/finp2p-bench/echo/1.0.0")

// transferRig is two members on 127.0.0.1, each with its state in pebble
// in its repo (the default; syncs as the node does), the owner with an
// asset on its embedded ledger and a grant of transact to the requester,
// plus the two baselines between the same identities.
type transferRig struct {
	nw        *network
	requester *member
	owner     *member
	asset     resource.ID
	grpc      *grpcRig
	dir       string

	echoReq  []byte // as many bytes as a sealed request
	echoRcpt []byte // as many bytes as a sealed receipt
	keys     atomic.Int64
	run      atomic.Int64 // numbers the load runs, for idempotency keys
	// nodeOps counts the transfers the requester sent, for the report's
	// note on the owner's replay guard.
	nodeOps atomic.Int64
}

func newTransferRig(ctx context.Context, dir string, cfg *config) (*transferRig, error) {
	nw, err := newNetwork(filepath.Join(dir, "net"), cfg.log)
	if err != nil {
		return nil, err
	}
	r := &transferRig{nw: nw, dir: dir, asset: resource.MustParseID("bank-b:102:bench-bond")}
	ok := false
	defer func() {
		if !ok {
			r.close()
		}
	}()
	if err := nw.bootstrap(ctx); err != nil {
		return nil, err
	}
	if r.requester, err = nw.add(ctx, "bank-a", governance.RoleMember, true); err != nil {
		return nil, err
	}
	if r.owner, err = nw.add(ctx, "bank-b", governance.RoleMember, true); err != nil {
		return nil, err
	}
	a, b := r.requester.Node(), r.owner.Node()
	if err := poll(ctx, 20*time.Second, 20*time.Millisecond, func() bool { return resolves(ctx, a, "bank-b", b.ID(), 2*time.Second) }, "bank-a resolves bank-b"); err != nil {
		return nil, err
	}
	if _, err := b.CreateAsset(ctx, r.asset, 0, "create"); err != nil {
		return nil, err
	}
	if _, err := b.Issue(ctx, r.asset, "alice@bank-a", "1000000000000", "issue"); err != nil {
		return nil, err
	}
	if err := b.SetACL(ctx, resource.ACL{Resource: r.asset, Grants: map[string]resource.Right{"bank-a": resource.RightTransact}}); err != nil {
		return nil, err
	}

	// The baselines: the same identities, the same message sizes.
	owner, err := loadIdentity(r.owner.repo, "bank-b")
	if err != nil {
		return nil, err
	}
	client, err := loadIdentity(r.requester.repo, "bank-a")
	if err != nil {
		return nil, err
	}
	if r.grpc, err = newGRPCRig(ctx, dir, nw.genesisFile, r.asset, owner, client); err != nil {
		return nil, fmt.Errorf("grpc baseline: %w", err)
	}
	vr, err := r.nodeTransfer(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("first transfer: %w", err)
	}
	sealedReq, err := asset.SealRequest(&asset.Request{
		Network: networkName, Operation: ledger.OpTransfer, Asset: r.asset.String(),
		From: "alice@bank-a", To: "bob@bank-a", Quantity: "1", IdempotencyKey: "bank-a/n-1000",
		RequesterOrg: "bank-a", Chain: client.chain,
	}, client.key)
	if err != nil {
		return nil, err
	}
	r.echoReq = randomBytes(len(sealedReq))
	r.echoRcpt = randomBytes(len(vr.Sealed))
	b.Host().SetStreamHandler(echoProtocol, r.echo)
	ok = true
	return r, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// nodeTransfer is the measured operation: node.Transfer of 1 unit from
// alice to bob, both users of the requester's org, with a new idempotency
// key.
func (r *transferRig) nodeTransfer(ctx context.Context, _ int64) (*asset.VerifiedReceipt, error) {
	return r.nodeTransferKey(ctx, -r.keys.Add(1))
}

// nodeTransferKey is nodeTransfer with the idempotency key of the run's
// operation seq, so that a retry sends the same request again.
func (r *transferRig) nodeTransferKey(ctx context.Context, seq int64) (*asset.VerifiedReceipt, error) {
	r.nodeOps.Add(1)
	return r.requester.Node().Transfer(ctx, node.AssetRequest{
		Asset: r.asset, From: "alice@bank-a", To: "bob@bank-a", Quantity: "1",
		IdempotencyKey: fmt.Sprintf("n-%d-%d", r.run.Load(), seq),
	})
}

// echo is the owner's side of the baseline: read one request-sized
// message, answer with a receipt-sized one, framed as the node frames its
// asset messages.
func (r *transferRig) echo(s lp2pnet.Stream) {
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	var req pb.AssetTxRequest
	if err := protocols.ReadMsg(s, &req, 128<<10); err != nil {
		_ = s.Reset()
		return
	}
	if err := protocols.WriteMsg(s, &pb.AssetTxResponse{Receipt: r.echoRcpt}); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// echoRoundTrip is the requester's side: a new stream per request, as the
// node's requests use.
func (r *transferRig) echoRoundTrip(ctx context.Context, _ int64) error {
	a, b := r.requester.Node(), r.owner.Node()
	s, err := a.Host().NewStream(ctx, b.ID(), echoProtocol)
	if err != nil {
		return err
	}
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	if err := protocols.WriteMsg(s, &pb.AssetTxRequest{Request: r.echoReq}); err != nil {
		_ = s.Reset()
		return err
	}
	_ = s.CloseWrite()
	var reply pb.AssetTxResponse
	if err := protocols.ReadMsg(s, &reply, 128<<10); err != nil {
		_ = s.Reset()
		return err
	}
	_ = s.Close()
	if len(reply.Receipt) != len(r.echoRcpt) {
		return fmt.Errorf("echo answered %d bytes, want %d", len(reply.Receipt), len(r.echoRcpt))
	}
	return nil
}

func (r *transferRig) grpcTransfer(ctx context.Context, seq int64) error {
	return r.grpc.transfer(ctx, fmt.Sprintf("g-%d-%d", r.run.Load(), seq))
}

// transport names the transport of the requester's connection to the
// owner.
func (r *transferRig) transport() string {
	a, b := r.requester.Node(), r.owner.Node()
	var out []string
	for _, c := range a.Host().Network().ConnsToPeer(b.ID()) {
		st := c.ConnState()
		sec, mux := string(st.Security), string(st.StreamMultiplexer)
		if sec == "" {
			sec, mux = "QUIC's TLS 1.3", "QUIC streams"
		}
		out = append(out, fmt.Sprintf("%s (%s, %s)", c.RemoteMultiaddr(), sec, mux))
	}
	return strings.Join(out, ", ")
}

func (r *transferRig) close() {
	if r.grpc != nil {
		r.grpc.close()
	}
	if r.nw != nil {
		r.nw.close()
	}
}

// transferVariant is one of the three ways a transfer-sized round trip is
// measured.
type transferVariant struct {
	name string
	op   func(context.Context, int64) error
	// retries counts operations sent again after an error (the same
	// idempotency key for a transfer, as a client is told to), and errs
	// the first few errors.
	retries atomic.Int64
	errs    sync.Map
}

// maxAttempts bounds the sends of one operation.
const maxAttempts = 5

// do runs the variant's operation, sending it again after an error.
func (v *transferVariant) do(ctx context.Context, seq int64) error {
	var err error
	for range maxAttempts {
		if err = v.op(ctx, seq); err == nil || ctx.Err() != nil {
			return err
		}
		v.retries.Add(1)
		v.errs.LoadOrStore(firstLine(err.Error()), true)
	}
	return fmt.Errorf("%d attempts: %w", maxAttempts, err)
}

func firstLine(s string) string {
	if len(s) > 240 {
		s = s[:240] + "…"
	}
	return s
}

// streamNumber is left out of errors so that the same error of two
// streams is listed once.
var streamNumber = regexp.MustCompile(`stream [0-9]+`)

// errorList lists the distinct errors that made the variant retry.
func (v *transferVariant) errorList() string {
	var out []string
	v.errs.Range(func(k, _ any) bool {
		e := streamNumber.ReplaceAllString(k.(string), "stream N")
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
		return len(out) < 3
	})
	return strings.Join(out, " | ")
}

// transferResults are the loads measured at one concurrency.
type transferResults struct {
	conc             int
	node, echo, grpc load
}

// runTransfer measures the three variants at 1, 16 and 64 requests in
// flight, in alternating rounds so that a change in the machine's load
// hits all three alike.
func runTransfer(ctx context.Context, cfg *config, rep *report, rig *transferRig) (map[int]transferResults, error) {
	// A retried transfer keeps its idempotency key.
	variants := []*transferVariant{
		{name: "node", op: func(ctx context.Context, seq int64) error { _, err := rig.nodeTransferKey(ctx, seq); return err }},
		{name: "echo", op: rig.echoRoundTrip},
		{name: "grpc", op: rig.grpcTransfer},
	}
	for _, v := range variants { // warm-up: connections, caches, pools
		rig.run.Add(1)
		if _, err := runLoad(ctx, 4, 0, 20, 20, v.do); err != nil {
			return nil, fmt.Errorf("warm-up %s: %w", v.name, err)
		}
	}
	// Measurements are bounded by time only: the owner's replay guard is
	// sized for asset.DefaultReplayRate requests/s per peer over its whole
	// window.
	out := map[int]transferResults{}
	for _, conc := range []int{1, 16, 64} {
		var got [3]load
		var retried [3]int64
		for i, v := range variants {
			retried[i] = v.retries.Load()
		}
		for round := range cfg.rounds {
			for k := range variants {
				i := (k + round) % len(variants)
				v := variants[i]
				maxOps := 0
				stop := func() {}
				if v.name != "echo" && (conc == 64 || conc == 1) && round == 0 {
					stop = cfg.profile(fmt.Sprintf("transfer-%s-%d", v.name, conc))
				}
				rig.run.Add(1)
				l, err := runLoad(ctx, conc, cfg.transferDur/time.Duration(cfg.rounds), conc, maxOps, v.do)
				stop()
				if err != nil {
					return nil, fmt.Errorf("%s at %d in flight: %w", v.name, conc, err)
				}
				got[i] = got[i].merge(l)
			}
		}
		res := transferResults{conc: conc, node: got[0], echo: got[1], grpc: got[2]}
		out[conc] = res
		for i, v := range variants {
			if n := v.retries.Load() - retried[i]; n > 0 {
				rep.note("transfer: %s at %d in flight: %d of %d operations were sent again after an error (%s)", v.name, conc, n, got[i].ops, v.errorList())
			}
		}
		progress("transfer: %d in flight: node %s, echo %s, grpc %s", conc, fmtRate(res.node.perSecond()), fmtRate(res.echo.perSecond()), fmtRate(res.grpc.perSecond()))
		tgt, status := "≥0.9× gRPC", target(res.node.perSecond() >= 0.9*res.grpc.perSecond())
		if conc == 64 {
			tgt = "≥5,000/s; ≥0.9× gRPC"
			status = target(res.node.perSecond() >= 5000) + "; " + status
		}
		rep.add(row{
			section:  "transfer",
			what:     fmt.Sprintf("node.Transfer, %d in flight: transfers/s (%d transfers)", conc, res.node.ops),
			value:    fmtRate(res.node.perSecond()),
			baseline: fmt.Sprintf("echo %s; gRPC+mTLS %s", fmtRate(res.echo.perSecond()), fmtRate(res.grpc.perSecond())),
			ratio:    fmt.Sprintf("%s echo; %s gRPC", ratio(res.node.perSecond(), res.echo.perSecond()), ratio(res.node.perSecond(), res.grpc.perSecond())),
			target:   tgt,
			status:   status,
		})
		latRow := row{
			section:  "transfer",
			what:     fmt.Sprintf("node.Transfer, %d in flight: latency p50 / p99", conc),
			value:    fmtDur(res.node.p(50)) + " / " + fmtDur(res.node.p(99)),
			baseline: fmt.Sprintf("echo %s / %s; gRPC %s / %s", fmtDur(res.echo.p(50)), fmtDur(res.echo.p(99)), fmtDur(res.grpc.p(50)), fmtDur(res.grpc.p(99))),
			ratio:    fmt.Sprintf("p50 %s echo; %s gRPC", ratio(float64(res.node.p(50)), float64(res.echo.p(50))), ratio(float64(res.node.p(50)), float64(res.grpc.p(50)))),
		}
		if conc == 1 {
			latRow.target, latRow.status = "p50 <1 ms", target(res.node.p(50) < time.Millisecond)
		}
		rep.add(latRow)
		rep.add(row{
			section:  "transfer",
			what:     fmt.Sprintf("node.Transfer, %d in flight: process CPU per transfer (both sides)", conc),
			value:    fmtDur(res.node.cpuPerOp()),
			baseline: fmt.Sprintf("echo %s; gRPC %s", fmtDur(res.echo.cpuPerOp()), fmtDur(res.grpc.cpuPerOp())),
			ratio:    ratio(float64(res.node.cpuPerOp()), float64(res.grpc.cpuPerOp())) + " gRPC",
		})
	}
	return out, nil
}

// syncFloor measures one synced pebble commit on the disk the nodes' repos
// are on: a small batch, then Sync, as the ledger commits. The embedded
// ledger holds its lock across it, so one ledger does at most 1/p50 of
// them a second.
func syncFloor(ctx context.Context, dir string, n int) (load, error) {
	ds, err := node.OpenPebble(filepath.Join(dir, "sync-floor"))
	if err != nil {
		return load{}, err
	}
	defer ds.Close()
	val := randomBytes(600)
	return runLoad(ctx, 1, 0, n, n, func(ctx context.Context, seq int64) error {
		b, err := ds.Batch(ctx)
		if err != nil {
			return err
		}
		for i := range 4 {
			if err := b.Put(ctx, datastore.NewKey(fmt.Sprintf("/k/%d/%d", seq, i)), val); err != nil {
				return err
			}
		}
		if err := b.Commit(ctx); err != nil {
			return err
		}
		return ds.Sync(ctx, datastore.NewKey("/"))
	})
}

// transferSection runs section 1 and keeps the rig and the 64-in-flight
// load for the crypto section.
func transferSection(ctx context.Context, cfg *config, rep *report, rig *transferRig) (load, error) {
	res, err := runTransfer(ctx, cfg, rep, rig)
	if err != nil {
		return load{}, err
	}
	floor, err := syncFloor(ctx, rig.dir, 200)
	if err != nil {
		return load{}, fmt.Errorf("sync floor: %w", err)
	}
	rep.add(row{
		section: "transfer",
		what:    "durability floor: one synced pebble commit (batch + Sync), p50 / p99",
		value:   fmtDur(floor.p(50)) + " / " + fmtDur(floor.p(99)),
		ratio:   fmt.Sprintf("%s with one sync per commit; concurrent commits share a sync (group commit)", fmtRate(1/floor.p(50).Seconds())),
	})
	rep.note("transfer: sealed request %d bytes, sealed receipt %d bytes (the echo baseline sends and answers as many, framed as the node frames them); node connection: %s; gRPC: one HTTP/2 connection, TLS 1.3 with Ed25519 certificates on both sides.",
		len(rig.echoReq), len(rig.echoRcpt), rig.transport())
	rep.note("transfer: the owner's replay guard keeps up to %d requests of one peer (asset.DefaultReplayMaxPerPeer, sized for %d requests/s over the 4 minutes it remembers a request), so the measurements run uncapped; the node sent %d transfers.",
		asset.DefaultReplayMaxPerPeer, asset.DefaultReplayRate, rig.nodeOps.Load())
	return res[64].node, nil
}

// stopProfile is returned by config.profile.
type stopProfile func()

// profile starts a CPU profile named name when -cpuprofile is set and
// returns what stops it.
func (c *config) profile(name string) stopProfile {
	if c.cpuprofile == "" {
		return func() {}
	}
	path := fmt.Sprintf("%s-%s.pprof", c.cpuprofile, name)
	f, err := os.Create(path)
	if err != nil {
		progress("cpu profile %s: %v", path, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		progress("cpu profile %s: %v", path, err)
		f.Close()
		return func() {}
	}
	progress("cpu profile: %s", path)
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
