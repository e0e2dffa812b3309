package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/protocols/pb"
	"github.com/finp2p/go-finp2p/resource"
)

// MaxResourceState bounds a resource's state served by resource/get.
const MaxResourceState = 1 << 20

// access holds the ACLs this node knows (its own org's and those handed to
// it by owners), serves resource/get under them and drops the requests of
// orgs whose requests keep being refused.
type access struct {
	r       *resources
	aclv    *resource.ACLVerifier
	acls    *resource.ACLCache
	states  datastore.Datastore
	limiter *resource.RefusalLimiter

	// Counters of get requests by outcome, for tests and metrics.
	served, refused, dropped atomic.Int64
}

func newAccess(r *resources) *access {
	n := r.n
	v := &resource.ACLVerifier{Trust: n.trust, Now: n.cfg.now}
	return &access{
		r:       r,
		aclv:    v,
		acls:    resource.NewACLCache(namespace.Wrap(n.ds, datastore.NewKey("/resources/acls")), v, n.log),
		states:  namespace.Wrap(n.ds, datastore.NewKey("/resources/state")),
		limiter: resource.NewRefusalLimiter(n.cfg.refusals.perSecond, n.cfg.refusals.burst, n.cfg.now),
	}
}

func (a *access) open(ctx context.Context) error {
	_, err := a.acls.Load(ctx)
	return err
}

func (a *access) start() {
	h := a.r.n.host
	h.SetStreamHandler(protocols.ResourceACL, a.handleACL)
	h.SetStreamHandler(protocols.ResourceGet, a.handleGet)
}

func (a *access) close() error {
	h := a.r.n.host
	h.RemoveStreamHandler(protocols.ResourceACL)
	h.RemoveStreamHandler(protocols.ResourceGet)
	return nil
}

// handleACL takes a signed ACL from a node of the resource's owner org.
func (a *access) handleACL(s network.Stream) {
	var req pb.ACLUpdate
	reply := &pb.ACLUpdateResponse{}
	a.serve(s, &req, resource.MaxACLSize+1024, func(org string) proto.Message {
		if err := a.receiveACL(org, req.Acl); err != nil {
			a.r.log.Warn("ACL refused", "peer", s.Conn().RemotePeer(), "org", org, "reason", err)
			reply.Error = err.Error()
		}
		return reply
	})
}

func (a *access) receiveACL(from string, sealed []byte) error {
	acl, _, err := a.aclv.Open(sealed)
	if err != nil {
		return err
	}
	if from != acl.Owner {
		return fmt.Errorf("%w: ACL of %s handed on by org %q, not its owner", resource.ErrForged, acl.Resource, from)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.acls.Put(ctx, sealed); err != nil && !errors.Is(err, resource.ErrStale) {
		return err
	}
	return nil
}

// handleGet serves a resource's state to an org its ACL allows to read.
// An org whose refused requests exceed its budget is dropped before any
// work is done for it.
func (a *access) handleGet(s network.Stream) {
	var req pb.GetRequest
	a.serve(s, &req, 1024, func(org string) proto.Message {
		if !a.limiter.Allow(org) {
			a.dropped.Add(1)
			return &pb.GetResponse{Code: "rate-limited", Error: "org " + org + " has too many refused requests"}
		}
		data, code, err := a.get(org, req.Resource)
		if err != nil {
			if code == "denied" {
				a.limiter.Refused(org)
				a.refused.Add(1)
			}
			return &pb.GetResponse{Code: code, Error: err.Error()}
		}
		a.served.Add(1)
		return &pb.GetResponse{Data: data}
	})
}

func (a *access) get(org, rid string) ([]byte, string, error) {
	n := a.r.n
	id, err := resource.ParseID(rid)
	if err != nil {
		return nil, "bad-request", err
	}
	if id.Org() != n.self.OrgID {
		return nil, "not-found", fmt.Errorf("%s is not a resource of org %s", id, n.self.OrgID)
	}
	if !a.allows(id, org, resource.RightRead) {
		// An unknown resource is refused alike, so refusals do not tell
		// which resources exist.
		return nil, "denied", fmt.Errorf("org %s may not read %s", org, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	data, err := a.states.Get(ctx, datastore.NewKey(id.String()))
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, "not-found", fmt.Errorf("%s has no state", id)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read state of %s: %w", id, err)
	}
	return data, "", nil
}

// allows applies the owner's ACL; with none, a publicly advertised
// resource may be read and subscribed to, and nothing else is allowed.
func (a *access) allows(id resource.ID, org string, r resource.Right) bool {
	if allowed, known := a.acls.Allows(id, org, r); known {
		return allowed
	}
	if org == a.r.n.self.OrgID {
		return true
	}
	sa, ok := a.r.store.Get(id)
	return ok && !sa.Ad.Restricted && !sa.Ad.Withdrawn && (r == resource.RightRead || r == resource.RightSubscribe)
}

// serve reads one request from a verified member, answers with what answer
// returns for the member's org, and closes the stream.
func (a *access) serve(s network.Stream, req proto.Message, max int, answer func(org string) proto.Message) {
	remote := s.Conn().RemotePeer()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	m, ok := a.r.n.members.Verified(remote)
	if !ok {
		_ = s.Reset()
		return
	}
	if err := protocols.ReadMsg(s, req, max); err != nil {
		a.r.log.Info("resource request unreadable", "peer", remote, "org", m.OrgID, "error", err)
		_ = s.Reset()
		return
	}
	if err := protocols.WriteMsg(s, answer(m.OrgID)); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// SetResourceState stores the state this org's node serves for one of its
// resources on resource/get.
func (n *Node) SetResourceState(ctx context.Context, id resource.ID, data []byte) error {
	if n.acc == nil {
		return errors.New("set resource state: the node is not started")
	}
	if id.Org() != n.self.OrgID {
		return fmt.Errorf("set state of %s: %w: it belongs to org %q", id, resource.ErrNotOwner, id.Org())
	}
	if len(data) > MaxResourceState {
		return fmt.Errorf("set state of %s: %w: %d bytes, at most %d", id, resource.ErrTooLarge, len(data), MaxResourceState)
	}
	if err := n.acc.states.Put(ctx, datastore.NewKey(id.String()), data); err != nil {
		return fmt.Errorf("set state of %s: %w", id, err)
	}
	return nil
}

// SetACL replaces the ACL of one of this org's resources. The owner checks
// it from then on; the signed list goes to every org it grants rights to
// and every org the previous list did, so their caches follow. The version
// is chosen here, above the previous one.
func (n *Node) SetACL(ctx context.Context, acl resource.ACL) error {
	if n.acc == nil {
		return errors.New("set ACL: the node is not started")
	}
	if acl.Resource.Org() != n.self.OrgID {
		return fmt.Errorf("set ACL of %s: %w: it belongs to org %q", acl.Resource, resource.ErrNotOwner, acl.Resource.Org())
	}
	acl = acl.Clone()
	acl.Owner = n.self.OrgID
	old, had := n.acc.acls.Get(acl.Resource)
	acl.Version = uint64(n.cfg.now().UnixMicro())
	if had && acl.Version <= old.Version {
		acl.Version = old.Version + 1
	}
	sealed, err := resource.SealACL(acl, n.disc.chain, n.disc.priv)
	if err != nil {
		return err
	}
	concerned := maps.Clone(acl.Grants)
	lost := false
	if had {
		for org, r := range old.Grants {
			concerned[org] |= r
			if old.Allows(org, resource.RightSubscribe) && !acl.Allows(org, resource.RightSubscribe) {
				lost = true
			}
		}
		lost = lost || (old.Public && !acl.Public)
	}
	if lost {
		// Before the list is in force: new updates get a key the orgs that
		// lost access never receive.
		if err := n.upd.rotate(ctx, acl.Resource); err != nil {
			return fmt.Errorf("set ACL of %s: rotate topic key: %w", acl.Resource, err)
		}
	}
	if _, err := n.acc.acls.Put(ctx, sealed); err != nil {
		return fmt.Errorf("set ACL of %s: %w", acl.Resource, err)
	}
	hand := func(ctx context.Context, p peer.ID) error {
		var reply pb.ACLUpdateResponse
		if err := n.request(ctx, p, protocols.ResourceACL, &pb.ACLUpdate{Acl: sealed}, &reply, 64<<10); err != nil {
			return err
		}
		if reply.Error != "" {
			return fmt.Errorf("refused: %s", reply.Error)
		}
		return nil
	}
	var failed []string
	for _, org := range slices.Sorted(maps.Keys(concerned)) {
		if err := n.sendToOrg(ctx, org, hand); err != nil {
			failed = append(failed, err.Error())
		}
	}
	// The org's other nodes (a cluster) keep it too, so a standby that is
	// promoted decides with the same lists.
	n.toOwnCluster(ctx, "ACL of "+acl.Resource.String(), hand)
	if len(failed) > 0 {
		return fmt.Errorf("set ACL of %s: stored, but not delivered: %s", acl.Resource, strings.Join(failed, "; "))
	}
	return nil
}

// ACL returns the ACL this node holds for a resource: its own org's, or one
// an owner handed to it.
func (n *Node) ACL(id resource.ID) (resource.ACL, bool) {
	if n.acc == nil {
		return resource.ACL{}, false
	}
	return n.acc.acls.Get(id)
}

// GetResource fetches a resource's current state from its owner's node.
// When the ACL this node holds for it refuses read, the request is not sent.
func (n *Node) GetResource(ctx context.Context, id resource.ID) ([]byte, error) {
	if n.acc == nil {
		return nil, errors.New("get resource: the node is not started")
	}
	if id.Org() == n.self.OrgID {
		data, code, err := n.acc.get(n.self.OrgID, id.String())
		if code == "not-found" {
			return nil, fmt.Errorf("get %s: %w: %v", id, resource.ErrResourceNotFound, err)
		}
		if err != nil {
			return nil, fmt.Errorf("get %s: %w", id, err)
		}
		return data, nil
	}
	if allowed, known := n.acc.acls.Allows(id, n.self.OrgID, resource.RightRead); known && !allowed {
		return nil, fmt.Errorf("get %s: %w: the ACL this node holds gives org %s no read right; not sent", id, resource.ErrAccessDenied, n.self.OrgID)
	}
	var out []byte
	err := n.sendToOrg(ctx, id.Org(), func(ctx context.Context, p peer.ID) error {
		var reply pb.GetResponse
		if err := n.request(ctx, p, protocols.ResourceGet, &pb.GetRequest{Resource: id.String()}, &reply, MaxResourceState+1024); err != nil {
			return err
		}
		switch reply.Code {
		case "":
			out = reply.Data
			return nil
		case "denied":
			return fmt.Errorf("%w: %s", resource.ErrAccessDenied, reply.Error)
		case "rate-limited":
			return fmt.Errorf("%w: %s", resource.ErrRateLimited, reply.Error)
		case "not-found":
			return fmt.Errorf("%w: %s", resource.ErrResourceNotFound, reply.Error)
		default:
			return fmt.Errorf("refused (%s): %s", reply.Code, reply.Error)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", id, err)
	}
	return out, nil
}

// sendToOrg resolves org and runs do against its nodes in turn until one
// succeeds; a refusal (a typed error) ends the attempt, an unreachable node
// moves on to the next.
func (n *Node) sendToOrg(ctx context.Context, org string, do func(context.Context, peer.ID) error) error {
	res, err := n.Resolve(ctx, org)
	if err != nil {
		return fmt.Errorf("to %s: %w", org, err)
	}
	var errs []string
	for _, nd := range primaryFirst(res.Nodes) {
		if nd.Peer == n.host.ID() {
			// A node of a cluster asking its own org: the others answer.
			continue
		}
		err := n.onNode(ctx, nd, do)
		if err == nil {
			return nil
		}
		var refused refusal
		if errors.As(err, &refused) {
			// The node answered: another node of the org would answer the
			// same.
			return fmt.Errorf("to %s: %w", org, err)
		}
		for _, typed := range []error{resource.ErrAccessDenied, resource.ErrRateLimited, resource.ErrResourceNotFound} {
			if errors.Is(err, typed) {
				return err
			}
		}
		errs = append(errs, fmt.Sprintf("node %s: %v", nd.Peer, err))
	}
	if len(errs) == 0 {
		return fmt.Errorf("to %s: no other node of the org is known", org)
	}
	return fmt.Errorf("to %s: %s", org, strings.Join(errs, "; "))
}

// toOwnCluster calls do with each other node of this node's org that it
// finds, connected first. A node it cannot reach is logged, not an error:
// what was handed on is in force on this node whatever the others hold.
func (n *Node) toOwnCluster(ctx context.Context, what string, do func(context.Context, peer.ID) error) {
	res, err := n.Resolve(ctx, n.self.OrgID)
	if err != nil {
		return
	}
	for _, nd := range res.Nodes {
		if nd.Peer == n.host.ID() {
			continue
		}
		if err := n.onNode(ctx, nd, do); err != nil {
			n.log.Warn("not handed to a node of this org", "what", what, "peer", nd.Peer, "org", n.self.OrgID, "error", err)
		}
	}
}

// onNode connects to nd and calls do with it, both within 10 s.
func (n *Node) onNode(ctx context.Context, nd discovery.NodeInfo, do func(context.Context, peer.ID) error) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := n.Connect(ctx, addrInfo(nd.Peer, nd.Addrs)); err != nil {
		return err
	}
	return do(ctx, nd.Peer)
}

// primaryFirst orders an org's nodes with those that execute a ledger
// first: in a cluster, the primary node holds the org's ledger and serves
// its requests; a standby node is asked only when the primary fails.
func primaryFirst(nodes []discovery.NodeInfo) []discovery.NodeInfo {
	out := slices.Clone(nodes)
	slices.SortStableFunc(out, func(a, b discovery.NodeInfo) int {
		return cmp.Compare(boolRank(a.Executes == ""), boolRank(b.Executes == ""))
	})
	return out
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// refusal is a node's answer that refuses a request, as opposed to a
// failure to reach it.
type refusal struct{ error }

func (r refusal) Unwrap() error { return r.error }

// addrInfo is how to dial p at the advertised addresses (the unparsable
// ones left out).
func addrInfo(p peer.ID, addrs []string) peer.AddrInfo {
	ai := peer.AddrInfo{ID: p}
	for _, s := range addrs {
		if a, err := ma.NewMultiaddr(s); err == nil {
			ai.Addrs = append(ai.Addrs, a)
		}
	}
	return ai
}

// request writes req on a new stream of proto to p and reads the reply.
func (n *Node) request(ctx context.Context, p peer.ID, pid protocol.ID, req, reply proto.Message, max int) error {
	s, err := n.host.NewStream(ctx, p, pid)
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if err := protocols.WriteMsg(s, req); err != nil {
		_ = s.Reset()
		return err
	}
	_ = s.CloseWrite()
	if err := protocols.ReadMsg(s, reply, max); err != nil {
		_ = s.Reset()
		return err
	}
	_ = s.Close()
	return nil
}

// AccessCounts are the resource/get requests this node has answered, by
// outcome.
type AccessCounts struct {
	Served, Refused, Dropped int64
}

// AccessCounts returns the resource/get counters.
func (n *Node) AccessCounts() AccessCounts {
	if n.acc == nil {
		return AccessCounts{}
	}
	return AccessCounts{Served: n.acc.served.Load(), Refused: n.acc.refused.Load(), Dropped: n.acc.dropped.Load()}
}
