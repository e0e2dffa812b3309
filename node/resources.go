package node

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/protocols/pb"
	"github.com/finp2p/go-finp2p/resource"
)

var (
	resourceSeqKey      = datastore.NewKey("/resources/seq")
	resourceAudienceKey = datastore.NewKey("/resources/audience")
)

// AdvertiseOptions shape a resource advertisement.
type AdvertiseOptions struct {
	// Topic is the pub/sub topic of the resource's updates, if any.
	Topic string
	// To lists the orgs a restricted resource is advertised to. Empty
	// means public: the advertisement goes into the DHT.
	To []string
}

// ResourceInfo is what a node knows of a resource from its advertisement.
type ResourceInfo struct {
	Resource   string    `json:"resource"`
	Owner      string    `json:"owner"`
	Topic      string    `json:"topic,omitempty"`
	Peer       string    `json:"peer_id"`
	Restricted bool      `json:"restricted"`
	Seq        uint64    `json:"seq"`
	Expires    time.Time `json:"expires"`
}

func resourceInfo(sa *resource.SignedAdvertisement) ResourceInfo {
	return ResourceInfo{
		Resource:   sa.Ad.Resource.String(),
		Owner:      sa.Ad.Resource.Org(),
		Topic:      sa.Ad.Topic,
		Peer:       sa.Ad.Peer.String(),
		Restricted: sa.Ad.Restricted,
		Seq:        sa.Ad.Seq,
		Expires:    sa.Ad.Expires,
	}
}

// resources advertises this org's resources and keeps the restricted
// advertisements other orgs send to it.
type resources struct {
	n        *Node
	log      *slog.Logger
	verifier *resource.AdvertisementVerifier
	store    *resource.AdvertisementStore

	mu       sync.Mutex
	seq      uint64
	audience map[string][]string // restricted resource id → orgs it was sent to
}

func newResources(n *Node) *resources {
	return &resources{
		n:   n,
		log: n.log,
		verifier: &resource.AdvertisementVerifier{
			Network: n.genesis.Network,
			Trust:   n.trust,
			Now:     n.cfg.now,
		},
		audience: make(map[string][]string),
	}
}

func (r *resources) open(ctx context.Context) error {
	r.store = resource.NewAdvertisementStore(namespace.Wrap(r.n.ds, datastore.NewKey("/resources/adverts")), r.verifier, r.log)
	if _, err := r.store.Load(ctx); err != nil {
		return err
	}
	if b, err := r.n.ds.Get(ctx, resourceSeqKey); err == nil && len(b) == 8 {
		r.seq = binary.BigEndian.Uint64(b)
	}
	if b, err := r.n.ds.Get(ctx, resourceAudienceKey); err == nil {
		if err := json.Unmarshal(b, &r.audience); err != nil {
			return fmt.Errorf("resource audiences: %w", err)
		}
	}
	return nil
}

func (r *resources) start() { r.n.host.SetStreamHandler(protocols.ResourceAdvert, r.handle) }

func (r *resources) close() error {
	r.n.host.RemoveStreamHandler(protocols.ResourceAdvert)
	return nil
}

// handle receives a restricted advertisement from a node of the resource's
// org; nobody else may hand one on.
func (r *resources) handle(s network.Stream) {
	remote := s.Conn().RemotePeer()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	var req pb.ResourceAdvertRequest
	if err := protocols.ReadMsg(s, &req, resource.MaxAdvertisementSize+1024); err != nil {
		r.log.Info("resource advertisement unreadable", "peer", remote, "org", r.n.peerOrg(remote), "error", err)
		_ = s.Reset()
		return
	}
	reply := &pb.ResourceAdvertResponse{}
	if err := r.receive(remote, req.Advertisement); err != nil {
		r.log.Warn("resource advertisement refused", "peer", remote, "org", r.n.peerOrg(remote), "reason", err)
		reply.Error = err.Error()
	}
	if err := protocols.WriteMsg(s, reply); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

func (r *resources) receive(remote peer.ID, sealed []byte) error {
	sa, err := r.verifier.Open(sealed)
	if err != nil {
		return err
	}
	if m, ok := r.n.members.Verified(remote); !ok || m.OrgID != sa.Ad.Resource.Org() {
		return fmt.Errorf("%w: %s was handed on by a node that is not of org %s", resource.ErrNotOwner, sa.Ad.Resource, sa.Ad.Resource.Org())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err = r.store.Put(ctx, sealed)
	return err
}

// sign makes and stores a new advertisement of one of this org's resources.
func (r *resources) sign(ctx context.Context, id resource.ID, topic string, restricted, withdrawn bool) (*resource.SignedAdvertisement, error) {
	r.mu.Lock()
	now := r.n.cfg.now()
	seq := max(r.seq+1, uint64(now.UnixMicro()))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	if err := r.n.ds.Put(ctx, resourceSeqKey, b[:]); err != nil {
		r.mu.Unlock()
		return nil, fmt.Errorf("store resource sequence: %w", err)
	}
	r.seq = seq
	r.mu.Unlock()
	expires := now.Add(time.Duration(r.n.cfg.AdvertisementTTL))
	if na := r.n.self.NotAfter; na.Before(expires) {
		expires = na
	}
	ad := &resource.Advertisement{
		Network:    r.n.genesis.Network,
		Resource:   id,
		Topic:      topic,
		Peer:       r.n.host.ID(),
		Restricted: restricted,
		Withdrawn:  withdrawn,
		Seq:        seq,
		Expires:    expires.Truncate(time.Second),
		Chain:      r.n.disc.chain,
	}
	sealed, err := resource.SealAdvertisement(ad, r.n.disc.priv)
	if err != nil {
		return nil, err
	}
	sa, _, err := r.store.Put(ctx, sealed)
	if err != nil {
		return nil, fmt.Errorf("own advertisement of %s: %w", id, err)
	}
	return sa, nil
}

// publish puts a public advertisement in the DHT, or hands a restricted one
// to every node of each org in to.
func (r *resources) publish(ctx context.Context, sa *resource.SignedAdvertisement, to []string) error {
	if !sa.Ad.Restricted {
		if err := r.n.dht.PutValue(ctx, resource.DHTKey(sa.Ad.Resource), sa.Sealed); err != nil {
			return fmt.Errorf("advertise %s in the DHT: %w", sa.Ad.Resource, err)
		}
		return nil
	}
	var failed []string
	for _, org := range to {
		if err := r.sendTo(ctx, org, sa.Sealed); err != nil {
			failed = append(failed, err.Error())
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("advertise %s: %s", sa.Ad.Resource, strings.Join(failed, "; "))
	}
	return nil
}

// sendTo hands a sealed advertisement to a node of org.
func (r *resources) sendTo(ctx context.Context, org string, sealed []byte) error {
	return r.n.sendToOrg(ctx, org, func(ctx context.Context, p peer.ID) error {
		var reply pb.ResourceAdvertResponse
		if err := r.n.request(ctx, p, protocols.ResourceAdvert, &pb.ResourceAdvertRequest{Advertisement: sealed}, &reply, 64<<10); err != nil {
			return err
		}
		if reply.Error != "" {
			return fmt.Errorf("refused: %s", reply.Error)
		}
		return nil
	})
}

func (r *resources) setAudience(ctx context.Context, id resource.ID, to []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(to) == 0 {
		delete(r.audience, id.String())
	} else {
		r.audience[id.String()] = slices.Clone(to)
	}
	b, err := json.Marshal(r.audience)
	if err != nil {
		return err
	}
	if err := r.n.ds.Put(ctx, resourceAudienceKey, b); err != nil {
		return fmt.Errorf("store resource audience: %w", err)
	}
	return nil
}

// republish refreshes this org's advertisements before they expire.
func (r *resources) republish(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, sa := range r.store.Owned(r.n.self.OrgID) {
		if sa.Ad.Peer != r.n.host.ID() || sa.Ad.Withdrawn {
			continue
		}
		r.mu.Lock()
		to := r.audience[sa.Ad.Resource.String()]
		r.mu.Unlock()
		fresh, err := r.sign(ctx, sa.Ad.Resource, sa.Ad.Topic, sa.Ad.Restricted, false)
		if err == nil {
			err = r.publish(ctx, fresh, to)
		}
		if err != nil {
			r.log.Warn("resource not re-advertised", "resource", sa.Ad.Resource, "error", err)
		}
	}
}

// Advertise announces one of this org's resources: publicly (into the DHT)
// when o.To is empty, else only to the orgs in o.To over a direct stream.
func (n *Node) Advertise(ctx context.Context, id resource.ID, o AdvertiseOptions) (ResourceInfo, error) {
	if n.res == nil {
		return ResourceInfo{}, errors.New("advertise: the node is not started")
	}
	if id.Org() != n.self.OrgID {
		return ResourceInfo{}, fmt.Errorf("advertise %s: %w: it belongs to org %q, this node is of org %q", id, resource.ErrNotOwner, id.Org(), n.self.OrgID)
	}
	if len(o.Topic) > resource.MaxTopicLen {
		return ResourceInfo{}, fmt.Errorf("advertise %s: topic of %d bytes, at most %d", id, len(o.Topic), resource.MaxTopicLen)
	}
	for _, org := range o.To {
		if err := governance.ValidateOrgID(org); err != nil {
			return ResourceInfo{}, fmt.Errorf("advertise %s: %w", id, err)
		}
	}
	to := slices.DeleteFunc(slices.Clone(o.To), func(org string) bool { return org == n.self.OrgID })
	slices.Sort(to)
	to = slices.Compact(to)
	restricted := len(o.To) > 0
	// Whoever could see the previous advertisement but not this one gets a
	// withdrawal first: the DHT when a public resource becomes restricted,
	// the orgs dropped from a restricted resource's audience.
	if err := n.res.retract(ctx, id, restricted, to); err != nil {
		return ResourceInfo{}, err
	}
	if err := n.res.setAudience(ctx, id, to); err != nil {
		return ResourceInfo{}, err
	}
	sa, err := n.res.sign(ctx, id, o.Topic, restricted, false)
	if err != nil {
		return ResourceInfo{}, err
	}
	return resourceInfo(sa), n.res.publish(ctx, sa, to)
}

// retract withdraws the previous advertisement of id from where the next
// one (restricted to to, or public) will not reach.
func (r *resources) retract(ctx context.Context, id resource.ID, restricted bool, to []string) error {
	prev, ok := r.store.Get(id)
	if !ok || prev.Ad.Withdrawn || prev.Ad.Peer != r.n.host.ID() {
		return nil
	}
	r.mu.Lock()
	var dropped []string
	for _, org := range r.audience[id.String()] {
		if !restricted || !slices.Contains(to, org) {
			dropped = append(dropped, org)
		}
	}
	r.mu.Unlock()
	switch {
	case !prev.Ad.Restricted && restricted:
		tomb, err := r.sign(ctx, id, prev.Ad.Topic, false, true)
		if err != nil {
			return err
		}
		if err := r.publish(ctx, tomb, nil); err != nil {
			return fmt.Errorf("advertise %s: withdraw the public advertisement first: %w", id, err)
		}
	case prev.Ad.Restricted && len(dropped) > 0:
		tomb, err := r.sign(ctx, id, prev.Ad.Topic, true, true)
		if err != nil {
			return err
		}
		if err := r.publish(ctx, tomb, dropped); err != nil {
			return fmt.Errorf("advertise %s: withdraw it from %v first: %w", id, dropped, err)
		}
	}
	return nil
}

// Withdraw stops sharing one of this org's resources: a newer advertisement
// marked withdrawn replaces the last one wherever it went.
func (n *Node) Withdraw(ctx context.Context, id resource.ID) error {
	if n.res == nil {
		return errors.New("withdraw: the node is not started")
	}
	old, ok := n.res.store.Get(id)
	if !ok || old.Ad.Resource.Org() != n.self.OrgID {
		return fmt.Errorf("withdraw %s: %w: this node has not advertised it", id, resource.ErrResourceNotFound)
	}
	n.res.mu.Lock()
	to := n.res.audience[id.String()]
	n.res.mu.Unlock()
	sa, err := n.res.sign(ctx, id, old.Ad.Topic, old.Ad.Restricted, true)
	if err != nil {
		return err
	}
	return n.res.publish(ctx, sa, to)
}

// FindResource returns a resource's advertisement: from what this node
// holds (its own and the restricted ones sent to it), else from the DHT.
// A withdrawn or unknown resource is ErrResourceNotFound.
func (n *Node) FindResource(ctx context.Context, id resource.ID) (ResourceInfo, error) {
	if n.res == nil {
		return ResourceInfo{}, errors.New("find resource: the node is not started")
	}
	sa, ok := n.res.store.Get(id)
	if !ok {
		val, err := n.dht.GetValue(ctx, resource.DHTKey(id))
		if errors.Is(err, routing.ErrNotFound) {
			return ResourceInfo{}, fmt.Errorf("find %s: %w: not held here, not in the DHT", id, resource.ErrResourceNotFound)
		}
		if err != nil {
			return ResourceInfo{}, fmt.Errorf("find %s: not held here; DHT lookup failed: %w", id, err)
		}
		if sa, err = n.res.verifier.Open(val); err != nil {
			return ResourceInfo{}, fmt.Errorf("find %s: %w", id, err)
		}
	}
	if sa.Ad.Withdrawn {
		return ResourceInfo{}, fmt.Errorf("find %s: %w: withdrawn by its owner", id, resource.ErrResourceNotFound)
	}
	return resourceInfo(sa), nil
}
