package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	lp2pnet "github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/protocols/pb"
	"github.com/finp2p/go-finp2p/resource"
)

// The broadcast section's ledger: ledger-org's embedded ledger, followed by
// three members and the governance node, so that five nodes read it; the
// origin of the requests is a member not on it.
const (
	ledgerOrg = "ledger-org"
	ledgerID  = ledgerOrg + "/embedded"
	originOrg = "origin-org"
)

// fanoutProtocol is the broadcast baseline: a plain request/response
// stream protocol registered by the bench only, on the ledger's nodes.
const fanoutProtocol = protocol.ID("/finp2p-bench/fanout/1.0.0")

// Sizes of the baseline's messages.
const (
	fanoutRequestSize = 1024
	fanoutReplySize   = 512
)

// ledgerNodes are the broadcast section's nodes in the big network.
type ledgerNodes struct {
	onLedger []*member // primary, three followers, governance
	origin   *member
	asset    resource.ID
	account  string
	reply    []byte
	sealed   *secureFanout // the second baseline
}

// addLedger adds the ledger's primary, its three member followers and the
// origin to the big network (whose governance node follows the ledger from
// the start), creates an asset and waits until the origin's balance
// broadcast is answered by all five.
func (b *bigNetwork) addLedger(ctx context.Context) error {
	nw := b.nw
	l := &ledgerNodes{asset: resource.MustParseID(ledgerOrg + ":102:bench"), account: "alice@" + originOrg, reply: randomBytes(fanoutReplySize)}
	primary, err := nw.add(ctx, ledgerOrg, governance.RoleMember, false, node.WithLedgerFollowers("*"))
	if err != nil {
		return err
	}
	l.onLedger = append(l.onLedger, primary)
	for i := 1; i <= 3; i++ {
		f, err := nw.add(ctx, fmt.Sprintf("follower-%d", i), governance.RoleMember, false, node.WithFollowLedgers(ledgerID))
		if err != nil {
			return err
		}
		l.onLedger = append(l.onLedger, f)
	}
	l.onLedger = append(l.onLedger, nw.members()[1]) // the governance node
	if l.origin, err = nw.add(ctx, originOrg, governance.RoleMember, false); err != nil {
		return err
	}
	for _, m := range append(slices.Clone(l.onLedger), l.origin) {
		if err := waitJoined(ctx, m.Node(), time.Minute); err != nil {
			return err
		}
	}
	p := primary.Node()
	if _, err := p.CreateAsset(ctx, l.asset, 0, "create"); err != nil {
		return err
	}
	if _, err := p.Issue(ctx, l.asset, l.account, "100", "issue"); err != nil {
		return err
	}
	o := l.origin.Node()
	if err := poll(ctx, 2*time.Minute, 50*time.Millisecond, func() bool {
		res, err := o.BalanceOf(ctx, l.asset, l.account, node.BroadcastOptions{Quorum: 5, Timeout: 5 * time.Second})
		return err == nil && res.Broadcast.OK && res.LedgerVersion == 2
	}, "the origin's balance broadcast is answered by the ledger's 5 nodes"); err != nil {
		return err
	}
	for _, m := range l.onLedger {
		m.Node().Host().SetStreamHandler(fanoutProtocol, l.answer)
	}
	if l.sealed, err = newSecureFanout(l.onLedger, l.reply); err != nil {
		return err
	}
	b.ledger = l
	return nil
}

// answer is the baseline's handler: read the request, send the reply.
func (l *ledgerNodes) answer(s lp2pnet.Stream) {
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	var req pb.AssetTxRequest
	if err := protocols.ReadMsg(s, &req, 64<<10); err != nil {
		_ = s.Reset()
		return
	}
	if err := protocols.WriteMsg(s, &pb.AssetTxResponse{Receipt: l.reply}); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// fanout sends the request to the five nodes at once over one stream each
// and returns when three have answered; it waits for the other two before
// it returns, so that one round does not overlap the next.
func (l *ledgerNodes) fanout(ctx context.Context, req []byte) (time.Duration, error) {
	o := l.origin.Node()
	var peers []peer.ID
	for _, m := range l.onLedger {
		peers = append(peers, m.Node().ID())
	}
	return thirdAnswer(time.Now(), "fan-out", peers, func(p peer.ID) error { return l.ask(ctx, o, p, req) })
}

// thirdAnswer asks every peer at once and returns the time from t0 until
// the third answered; it waits for the others before it returns, so that
// one round does not overlap the next.
func thirdAnswer(t0 time.Time, what string, peers []peer.ID, ask func(peer.ID) error) (time.Duration, error) {
	answered := make(chan error, len(peers))
	for _, p := range peers {
		go func() { answered <- ask(p) }()
	}
	var took time.Duration
	var errs []error
	ok := 0
	for range peers {
		if err := <-answered; err != nil {
			errs = append(errs, err)
			continue
		}
		if ok++; ok == 3 {
			took = time.Since(t0)
		}
	}
	if ok < 3 {
		return 0, fmt.Errorf("%s: %d of %d answered: %v", what, ok, len(peers), errs)
	}
	return took, nil
}

func (l *ledgerNodes) ask(ctx context.Context, o *node.Node, p peer.ID, req []byte) error {
	_, err := askOnce(ctx, o, p, fanoutProtocol, req)
	return err
}

// askOnce sends req to p on a new stream of proto and returns the answer:
// the request/response exchange of both fan-out baselines.
func askOnce(ctx context.Context, o *node.Node, p peer.ID, proto protocol.ID, req []byte) ([]byte, error) {
	s, err := o.Host().NewStream(ctx, p, proto)
	if err != nil {
		return nil, err
	}
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	if err := protocols.WriteMsg(s, &pb.AssetTxRequest{Request: req}); err != nil {
		_ = s.Reset()
		return nil, err
	}
	_ = s.CloseWrite()
	var reply pb.AssetTxResponse
	if err := protocols.ReadMsg(s, &reply, 64<<10); err != nil {
		_ = s.Reset()
		return nil, err
	}
	_ = s.Close()
	return reply.Receipt, nil
}

// balance is one measured broadcast: BalanceOf with quorum 3 of the 5.
func (l *ledgerNodes) balance(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	res, err := l.origin.Node().BalanceOf(ctx, l.asset, l.account, node.BroadcastOptions{Quorum: 3, Timeout: 5 * time.Second})
	took := time.Since(t0)
	if err != nil {
		return 0, err
	}
	if !res.Broadcast.OK || res.Balance == nil {
		return 0, fmt.Errorf("balance broadcast without quorum: %d agreed, %d failed, %d dropped", len(res.Broadcast.AgreedBy), len(res.Broadcast.Failed), len(res.Broadcast.Dropped))
	}
	return took, nil
}

// broadcastSection measures the balance broadcast and its baseline, in
// alternation, on the big network at its current size.
func broadcastSection(ctx context.Context, cfg *config, rep *report, b *bigNetwork, size int) error {
	l := b.ledger
	n := 100
	if cfg.quick {
		n = 30
	}
	req := randomBytes(fanoutRequestSize)
	question := fmt.Appendf(nil, `{"asset":%q,"account":%q}`, l.asset, l.account)
	sealed := func(ctx context.Context) (time.Duration, error) {
		return l.sealed.fanout(ctx, l.origin.Node(), question)
	}
	for range 5 { // warm-up
		if _, err := l.balance(ctx); err != nil {
			return err
		}
		if _, err := l.fanout(ctx, req); err != nil {
			return err
		}
		if _, err := sealed(ctx); err != nil {
			return err
		}
	}
	stop := func() {}
	if size == 50 || (size > 50 && !b.profiledBroadcast) {
		stop = cfg.profile(fmt.Sprintf("broadcast-%d", size))
		b.profiledBroadcast = true
	}
	// Alternating which goes first, so that neither always follows the
	// other's leftovers (the fan-out's two late answers, the broadcast's).
	var bc, fo, sf []time.Duration
	for i := range n {
		for k := range 3 {
			var d time.Duration
			var err error
			switch (i + k) % 3 {
			case 0:
				d, err = l.balance(ctx)
				bc = append(bc, d)
			case 1:
				d, err = l.fanout(ctx, req)
				fo = append(fo, d)
			default:
				d, err = sealed(ctx)
				sf = append(sf, d)
			}
			if err != nil {
				stop()
				return err
			}
		}
	}
	stop()
	slices.Sort(bc)
	slices.Sort(fo)
	slices.Sort(sf)
	progress("broadcast: %d nodes: quorum 3 of 5 p50 %s, fan-out p50 %s, sealed and signed fan-out p50 %s", size, fmtDur(percentile(bc, 50)), fmtDur(percentile(fo, 50)), fmtDur(percentile(sf, 50)))
	x := row{
		section: "broadcast",
		what:    fmt.Sprintf("%d nodes: BalanceOf, quorum 3 of the ledger's 5 nodes, p50 / p99 (%d requests)", size, n),
		value:   fmtDur(percentile(bc, 50)) + " / " + fmtDur(percentile(bc, 99)),
		baseline: fmt.Sprintf("unicast fan-out to the same 5, first 3 answers: plain %s / %s; sealed and signed as the broadcast is %s / %s",
			fmtDur(percentile(fo, 50)), fmtDur(percentile(fo, 99)), fmtDur(percentile(sf, 50)), fmtDur(percentile(sf, 99))),
		ratio: "p50 " + ratio(float64(percentile(bc, 50)), float64(percentile(fo, 50))) + " plain; " +
			ratio(float64(percentile(bc, 50)), float64(percentile(sf, 50))) + " sealed",
	}
	if size == 50 {
		x.target = "p50 <20 ms; ≤1.5× fan-out"
		x.status = target(percentile(bc, 50) < 20*time.Millisecond) + "; " + target(float64(percentile(bc, 50)) <= 1.5*float64(percentile(fo, 50)))
	}
	rep.add(x)
	return nil
}
