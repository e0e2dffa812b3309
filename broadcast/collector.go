package broadcast

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	recordpb "github.com/libp2p/go-libp2p/core/record/pb"
	"google.golang.org/protobuf/proto"

	"github.com/finp2p/go-finp2p/broadcast/pb"
	"github.com/finp2p/go-finp2p/governance"
)

// Responder is one node's valid response as a Result reports it.
type Responder struct {
	// Peer is the responding node.
	Peer peer.ID
	// Org is its org.
	Org string
	// Answer is its answer; empty when Error is set.
	Answer []byte
	// LedgerVersion is the ledger version it read the answer at.
	LedgerVersion uint64
	// Rendezvous says it is a rendezvous node.
	Rendezvous bool
	// Error is why it could not answer, if it could not.
	Error string
	// Reason says, for a responder in Result.Disagreed, why its answer
	// lost, e.g. "stale ledger version 3 < 5".
	Reason string
}

// Dropped is a response the Collector did not count, and why.
type Dropped struct {
	// Peer is the peer the response came from or, for a response whose
	// signature does not verify, the peer it claims to come from (empty if
	// it names none).
	Peer peer.ID
	// Reason is the refusal, Err's message.
	Reason string
	// Err is the refusal; it wraps ErrUnknownRequest, ErrOutOfScope,
	// ErrDuplicate or a verification error (ErrForged, ErrMalformed, ...).
	Err error
}

// Result is what a broadcast came to: the agreed answer, who agreed, who
// disagreed and with what, who failed to answer, which responses were
// dropped, and how inconsistencies were resolved.
type Result struct {
	// Agreed is the resolved answer; nil if there is none.
	Agreed []byte
	// AgreedBy are the responders that gave the agreed answer.
	AgreedBy []Responder
	// Disagreed are the responders whose answer lost, each with its
	// Reason.
	Disagreed []Responder
	// Unanswered are the responders that said they cannot answer.
	Unanswered []Responder
	// Failed are the expected peers without a valid response when the
	// result was made short of the quorum: timed out, stopped, or dropped.
	Failed []peer.ID
	// NotAwaited are the expected peers without a response yet when the
	// quorum was reached: the result did not wait for them, which says
	// nothing against them.
	NotAwaited []peer.ID
	// Dropped are the responses not counted, in arrival order.
	Dropped []Dropped
	// Resolution explains how the answer was decided, or why none was.
	Resolution string
	// OK says the quorum of valid answers was reached and they resolved to
	// an answer under the request's consistency.
	OK bool
}

// Collector gathers the responses to one broadcast request at its origin:
// it verifies each, drops the ones it must not count, and resolves the
// rest into a Result. It does no networking and is safe for concurrent use.
type Collector struct {
	req        *Request
	inScope    func(governance.Member) bool
	quorum     int
	rendezvous func(peer.ID) bool

	mu       sync.Mutex
	accepted []Responder
	seen     map[peer.ID]bool
	dropped  []Dropped
	answers  int
}

// NewCollector returns a collector for the responses to req. inScope says
// whether a verified responder is in the request's scope (nil: everyone
// is); quorum is the number of valid answers to wait for (req.Quorum if
// below 1); rendezvous says whether a peer is a rendezvous node, whose
// answer breaks ties (nil: none is).
func NewCollector(req *Request, inScope func(governance.Member) bool, quorum int, rendezvous func(peer.ID) bool) *Collector {
	if quorum < 1 {
		quorum = req.Quorum
	}
	if inScope == nil {
		inScope = func(governance.Member) bool { return true }
	}
	if rendezvous == nil {
		rendezvous = func(peer.ID) bool { return false }
	}
	return &Collector{req: req, inScope: inScope, quorum: quorum, rendezvous: rendezvous, seen: map[peer.ID]bool{}}
}

// Add verifies a sealed response with v and counts it, or drops it: a
// response that does not verify (forged, malformed, another network), that
// answers another request, that comes from outside the scope, or that
// repeats a responder's earlier one. A dropped response is kept with its
// reason for the Result, and its error returned.
func (c *Collector) Add(sealed []byte, v *ResponseVerifier) error {
	vr, err := v.Open(sealed)
	if err != nil {
		return c.drop(claimedPeer(sealed), err)
	}
	r, m := vr.Response, vr.Signer
	if r.RequestID != c.req.ID {
		return c.drop(r.Peer, fmt.Errorf("%w: response of %s names request %s, collecting for %s", ErrUnknownRequest, r.Peer, r.RequestID, c.req.ID))
	}
	if !c.inScope(m) {
		return c.drop(r.Peer, fmt.Errorf("%w: response of %s (org %s, %s) is outside scope %s", ErrOutOfScope, r.Peer, m.OrgID, m.Role, c.req.Scope))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen[r.Peer] {
		return c.dropLocked(r.Peer, fmt.Errorf("%w: second response of %s to request %s", ErrDuplicate, r.Peer, r.RequestID))
	}
	c.seen[r.Peer] = true
	c.accepted = append(c.accepted, Responder{
		Peer:          r.Peer,
		Org:           r.ResponderOrg,
		Answer:        r.Answer,
		LedgerVersion: r.LedgerVersion,
		Rendezvous:    c.rendezvous(r.Peer),
		Error:         r.Error,
	})
	if r.Error == "" {
		c.answers++
	}
	return nil
}

func (c *Collector) drop(p peer.ID, err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropLocked(p, err)
}

func (c *Collector) dropLocked(p peer.ID, err error) error {
	c.dropped = append(c.dropped, Dropped{Peer: p, Reason: err.Error(), Err: err})
	return err
}

// claimedPeer is the peer a response that failed verification claims to
// come from, read without trusting it; empty if it names none.
func claimedPeer(sealed []byte) peer.ID {
	m := claimed(sealed)
	if m == nil {
		return ""
	}
	p, err := parsePeer(m.Peer)
	if err != nil {
		return ""
	}
	return p
}

// ClaimedRequestID is the request id a sealed response names, read without
// verifying anything, so the origin can find the Collector that verifies
// it; empty if it names none.
func ClaimedRequestID(sealed []byte) string {
	if m := claimed(sealed); m != nil {
		return m.RequestId
	}
	return ""
}

func claimed(sealed []byte) *pb.Response {
	if len(sealed) > MaxResponseSize {
		return nil
	}
	var env recordpb.Envelope
	if proto.Unmarshal(sealed, &env) != nil {
		return nil
	}
	var m pb.Response
	if proto.Unmarshal(env.Payload, &m) != nil {
		return nil
	}
	return &m
}

// Responded is the number of responses counted so far, answers and
// "cannot answer" alike.
func (c *Collector) Responded() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.accepted)
}

// Done says whether the quorum of valid answers has been reached. Answers
// that say "cannot answer" do not count.
func (c *Collector) Done() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.answers >= c.quorum
}

// Result resolves the responses collected so far under the request's
// consistency. expected are the peers asked; those without a valid
// response are reported as failed when the quorum was not reached, and as
// not awaited when it was.
func (c *Collector) Result(expected []peer.ID) Result {
	c.mu.Lock()
	accepted := slices.Clone(c.accepted)
	dropped := slices.Clone(c.dropped)
	c.mu.Unlock()

	var res Result
	res.Dropped = dropped
	var answers []Responder
	for _, r := range accepted {
		if r.Error != "" {
			res.Unanswered = append(res.Unanswered, r)
		} else {
			answers = append(answers, r)
		}
	}
	missing := &res.Failed
	if len(answers) >= c.quorum {
		missing = &res.NotAwaited
	}
	for _, p := range expected {
		if !slices.ContainsFunc(accepted, func(r Responder) bool { return r.Peer == p }) && !slices.Contains(*missing, p) {
			*missing = append(*missing, p)
		}
	}
	if len(answers) == 0 {
		res.Resolution = fmt.Sprintf("%s: no valid answers (quorum %d)", c.req.Consistency, c.quorum)
		return res
	}
	var resolved bool
	switch c.req.Consistency {
	case Majority:
		resolved = resolveMajority(&res, answers)
	case NewestVersion:
		resolved = resolveNewest(&res, answers)
	default:
		resolved = resolveStrict(&res, answers)
	}
	res.OK = resolved && len(answers) >= c.quorum
	if len(answers) < c.quorum {
		res.Resolution += fmt.Sprintf("; quorum not reached: %d of %d valid answers", len(answers), c.quorum)
	}
	return res
}

// group is the responders that gave one answer.
type group struct {
	answer     []byte
	members    []Responder
	maxVersion uint64
	rendezvous peer.ID // one rendezvous node among members, if any
}

// groupAnswers groups rs by answer, in order of first appearance.
func groupAnswers(rs []Responder) []*group {
	var gs []*group
	for _, r := range rs {
		i := slices.IndexFunc(gs, func(g *group) bool { return bytes.Equal(g.answer, r.Answer) })
		if i < 0 {
			gs = append(gs, &group{answer: r.Answer})
			i = len(gs) - 1
		}
		g := gs[i]
		g.members = append(g.members, r)
		g.maxVersion = max(g.maxVersion, r.LedgerVersion)
		if r.Rendezvous && g.rendezvous == "" {
			g.rendezvous = r.Peer
		}
	}
	return gs
}

// disagree lists rs in res.Disagreed with reason.
func disagree(res *Result, reason string, rs ...Responder) {
	for _, r := range rs {
		r.Reason = reason
		res.Disagreed = append(res.Disagreed, r)
	}
}

func resolveStrict(res *Result, answers []Responder) bool {
	gs := groupAnswers(answers)
	if len(gs) == 1 {
		res.Agreed, res.AgreedBy = gs[0].answer, gs[0].members
		res.Resolution = fmt.Sprintf("strict: all %d answers agree", len(answers))
		return true
	}
	disagree(res, "answers differ under strict consistency", answers...)
	res.Resolution = fmt.Sprintf("strict: %d different answers among %d responders, no agreed answer", len(gs), len(answers))
	return false
}

func resolveMajority(res *Result, answers []Responder) bool {
	gs := groupAnswers(answers)
	slices.SortStableFunc(gs, func(a, b *group) int {
		if c := cmp.Compare(len(b.members), len(a.members)); c != 0 {
			return c
		}
		if c := cmp.Compare(b.maxVersion, a.maxVersion); c != 0 {
			return c
		}
		return cmp.Compare(hasRendezvous(b), hasRendezvous(a))
	})
	w := gs[0]
	if len(gs) == 1 {
		res.Agreed, res.AgreedBy = w.answer, w.members
		res.Resolution = fmt.Sprintf("majority: all %d answers agree", len(answers))
		return true
	}
	s := gs[1]
	switch {
	case len(w.members) > len(s.members):
		res.Resolution = fmt.Sprintf("majority: answer of %d of %d responders", len(w.members), len(answers))
	case w.maxVersion > s.maxVersion:
		res.Resolution = fmt.Sprintf("majority: tie of %d answers each, broken by ledger version %d > %d", len(w.members), w.maxVersion, s.maxVersion)
	case w.rendezvous != "" && s.rendezvous == "":
		res.Resolution = fmt.Sprintf("majority: tie of %d answers each at ledger version %d, broken by rendezvous node %s's answer", len(w.members), w.maxVersion, w.rendezvous)
	default:
		for _, g := range gs {
			disagree(res, fmt.Sprintf("unresolved tie of %d answers each", len(w.members)), g.members...)
		}
		res.Resolution = fmt.Sprintf("majority: unresolved tie of %d answers each at ledger version %d, no rendezvous node breaks it", len(w.members), w.maxVersion)
		return false
	}
	res.Agreed, res.AgreedBy = w.answer, w.members
	for _, g := range gs[1:] {
		var reason string
		switch {
		case len(g.members) < len(w.members):
			reason = fmt.Sprintf("outvoted: answer given by %d, the agreed one by %d", len(g.members), len(w.members))
		case g.maxVersion < w.maxVersion:
			reason = fmt.Sprintf("tie lost on ledger version %d < %d", g.maxVersion, w.maxVersion)
		default:
			reason = fmt.Sprintf("tie lost to rendezvous node %s's answer", w.rendezvous)
		}
		disagree(res, reason, g.members...)
	}
	return true
}

func resolveNewest(res *Result, answers []Responder) bool {
	var top uint64
	for _, r := range answers {
		top = max(top, r.LedgerVersion)
	}
	gs := groupAnswers(slices.DeleteFunc(slices.Clone(answers), func(r Responder) bool { return r.LedgerVersion != top }))
	slices.SortStableFunc(gs, func(a, b *group) int {
		if c := cmp.Compare(len(b.members), len(a.members)); c != 0 {
			return c
		}
		return cmp.Compare(hasRendezvous(b), hasRendezvous(a))
	})
	w := gs[0]
	var how string
	switch {
	case len(gs) == 1:
		how = fmt.Sprintf("newest-version: answer at ledger version %d", top)
	case len(w.members) > len(gs[1].members):
		how = fmt.Sprintf("newest-version: %d different answers at ledger version %d, the one of %d responders wins", len(gs), top, len(w.members))
	case w.rendezvous != "" && gs[1].rendezvous == "":
		how = fmt.Sprintf("newest-version: tie at ledger version %d broken by rendezvous node %s's answer", top, w.rendezvous)
	default:
		disagree(res, fmt.Sprintf("unresolved tie at ledger version %d", top), answers...)
		res.Resolution = fmt.Sprintf("newest-version: unresolved tie of %d answers each at ledger version %d", len(w.members), top)
		return false
	}
	res.Agreed = w.answer
	var stale []string
	for _, r := range answers {
		switch {
		case bytes.Equal(r.Answer, w.answer):
			// An older version that reads the same value agrees with it.
			res.AgreedBy = append(res.AgreedBy, r)
		case r.LedgerVersion < top:
			disagree(res, fmt.Sprintf("stale ledger version %d < %d", r.LedgerVersion, top), r)
			stale = append(stale, fmt.Sprintf("%s at version %d", r.Peer, r.LedgerVersion))
		case len(gs) > 1 && len(w.members) > len(gs[1].members):
			disagree(res, fmt.Sprintf("outvoted at ledger version %d", top), r)
		default:
			disagree(res, fmt.Sprintf("tie at ledger version %d lost to rendezvous node %s's answer", top, w.rendezvous), r)
		}
	}
	if len(stale) > 0 {
		how += "; stale: " + strings.Join(stale, ", ")
	}
	res.Resolution = how
	return true
}

// hasRendezvous is 1 if a rendezvous node gave g's answer, else 0.
func hasRendezvous(g *group) int {
	if g.rendezvous != "" {
		return 1
	}
	return 0
}
