package node

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	gossip "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/protocols/pb"
	"github.com/finp2p/go-finp2p/pubsub"
	"github.com/finp2p/go-finp2p/resource"
)

// MaxUpdateSize bounds one resource update's data.
const MaxUpdateSize = 256 << 10

// Subscription tunables.
const (
	// maxUpdatesPerFetch bounds the updates one gap-fill answer carries.
	maxUpdatesPerFetch = 1024
	// subscriptionBuffer is how many updates a subscription may hold
	// unread before it is ended.
	subscriptionBuffer = 4096
	// catchUpInterval is how often a subscriber compares what it received
	// with each publisher's head.
	catchUpInterval = 2 * time.Second
)

// The HPKE suite topic keys are sealed with.
var (
	topicKEM  = hpke.DHKEM(ecdh.X25519())
	topicKDF  = hpke.HKDFSHA256()
	topicAEAD = hpke.AES256GCM()
)

// Update is one update of a resource, as a subscriber receives it.
type Update struct {
	Resource  string  `json:"resource"`
	Publisher peer.ID `json:"publisher"`
	Seq       uint64  `json:"seq"`
	Data      []byte  `json:"data"`
}

// updates runs resource update topics: the owner publishes numbered (and,
// for restricted resources, encrypted) updates and keeps them so that a
// subscriber that missed some on gossip fetches them; subscribers deliver
// every update in order per publisher.
type updates struct {
	n    *Node
	log  datastore.Datastore // own publications: <id>/<seq>
	meta datastore.Datastore // own sequence numbers and topic keys

	mu      sync.Mutex
	seqs    map[resource.ID]uint64
	keys    map[resource.ID]*topicKeys // owner side: every epoch's key
	got     map[resource.ID]map[uint32][]byte
	topics  map[resource.ID]*updateTopic
	counter atomic.Int64 // updates that could not be decrypted

	// dropHook, set by tests, drops an incoming update before it is
	// processed, as a lossy network would.
	dropHook func(Update) bool
	// failHeads, set by tests, makes that many head requests fail.
	failHeads atomic.Int32
}

type topicKeys struct {
	Epoch uint32            `json:"epoch"`
	Keys  map[uint32][]byte `json:"keys"`
}

type updateTopic struct {
	id    resource.ID
	topic *pubsub.Topic
	// dmu serialises deliveries, from gossip and from gap fills, so each
	// update is delivered once and in order.
	dmu sync.Mutex

	mu      sync.Mutex
	subs    map[chan Update]struct{}
	last    map[peer.ID]uint64
	pending map[peer.ID]map[uint64]*pb.ResourceUpdate
	filling map[peer.ID]bool
}

func newUpdates(n *Node) *updates {
	return &updates{
		n:      n,
		log:    namespace.Wrap(n.ds, datastore.NewKey("/resources/updates")),
		meta:   namespace.Wrap(n.ds, datastore.NewKey("/resources/update-meta")),
		seqs:   make(map[resource.ID]uint64),
		keys:   make(map[resource.ID]*topicKeys),
		got:    make(map[resource.ID]map[uint32][]byte),
		topics: make(map[resource.ID]*updateTopic),
	}
}

func (u *updates) start() {
	u.n.host.SetStreamHandler(protocols.ResourceUpdates, u.handleFetch)
	u.n.host.SetStreamHandler(protocols.ResourceTopicKey, u.handleKey)
}

func (u *updates) close() error {
	u.n.host.RemoveStreamHandler(protocols.ResourceUpdates)
	u.n.host.RemoveStreamHandler(protocols.ResourceTopicKey)
	u.mu.Lock()
	topics := slices.Collect(maps.Values(u.topics))
	u.topics = map[resource.ID]*updateTopic{}
	u.mu.Unlock()
	var errs []error
	for _, t := range topics {
		errs = append(errs, t.topic.Close())
		t.mu.Lock()
		for ch := range t.subs {
			close(ch)
		}
		t.subs = nil
		t.mu.Unlock()
	}
	return errors.Join(errs...)
}

func topicName(id resource.ID) string { return protocols.TopicResourcePrefix + id.String() }

func updateKey(id resource.ID, seq uint64) datastore.Key {
	return datastore.NewKey(id.String()).ChildString(fmt.Sprintf("%020d", seq))
}

// join joins a resource's topic once, with its validator.
func (u *updates) join(id resource.ID) (*updateTopic, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if t := u.topics[id]; t != nil {
		return t, nil
	}
	t := &updateTopic{
		id:      id,
		subs:    make(map[chan Update]struct{}),
		last:    make(map[peer.ID]uint64),
		pending: make(map[peer.ID]map[uint64]*pb.ResourceUpdate),
		filling: make(map[peer.ID]bool),
	}
	topic, err := u.n.ps.Join(topicName(id), u.validator(id), func(m *gossip.Message) {
		if upd, ok := m.ValidatorData.(*pb.ResourceUpdate); ok {
			u.receive(t, m.GetFrom(), upd)
		}
	})
	if err != nil {
		return nil, err
	}
	t.topic = topic
	u.topics[id] = t
	return t, nil
}

// validator accepts an update only from a certified node of the resource's
// owner org: anyone else publishing on the topic is rejected, which lowers
// its gossipsub score.
func (u *updates) validator(id resource.ID) gossip.ValidatorEx {
	return func(_ context.Context, from peer.ID, m *gossip.Message) gossip.ValidationResult {
		var upd pb.ResourceUpdate
		if err := proto.Unmarshal(m.Data, &upd); err != nil || upd.Resource != id.String() || upd.Seq == 0 {
			u.n.log.Warn("rejected a malformed resource update", "topic", topicName(id), "peer", from, "org", u.n.peerOrg(from))
			return gossip.ValidationReject
		}
		publisher := m.GetFrom()
		org, known := u.n.orgOf(publisher)
		switch {
		case !known:
			return gossip.ValidationIgnore
		case org != id.Org():
			u.n.log.Warn("rejected a resource update from a node that does not own the resource", "resource", id, "peer", publisher, "org", org)
			return gossip.ValidationReject
		}
		m.ValidatorData = &upd
		return gossip.ValidationAccept
	}
}

// orgOf returns the org a peer is certified for: from its connection if it
// is connected, else from its verified advertisement.
func (n *Node) orgOf(p peer.ID) (string, bool) {
	if p == n.host.ID() {
		return n.self.OrgID, true
	}
	if m, ok := n.members.Verified(p); ok {
		return m.OrgID, true
	}
	if rec, ok := n.disc.cache.Get(p); ok {
		return rec.Member.OrgID, true
	}
	return "", false
}

// receive handles one update from publisher: delivered if it is the next
// one, held if updates before it are missing (which are then fetched from
// the publisher), dropped if already delivered.
func (u *updates) receive(t *updateTopic, publisher peer.ID, upd *pb.ResourceUpdate) {
	if h := u.dropHook; h != nil && h(Update{Resource: upd.Resource, Publisher: publisher, Seq: upd.Seq}) {
		return
	}
	t.mu.Lock()
	last, known := t.last[publisher]
	if !known {
		// The first update seen from this publisher since subscribing:
		// the start, unless the head learned at subscription says more.
		last = upd.Seq - 1
		t.last[publisher] = last
	}
	switch {
	case upd.Seq <= last:
		t.mu.Unlock()
		return
	case upd.Seq > last+1:
		if t.pending[publisher] == nil {
			t.pending[publisher] = make(map[uint64]*pb.ResourceUpdate)
		}
		t.pending[publisher][upd.Seq] = upd
		fill := !t.filling[publisher]
		t.filling[publisher] = true
		t.mu.Unlock()
		if fill {
			go u.fill(t, publisher, last+1, upd.Seq-1)
		}
		return
	}
	t.mu.Unlock()
	u.deliverFrom(t, publisher, upd)
}

// deliverFrom delivers upd, if it is the next one, and then every held
// update that follows it.
func (u *updates) deliverFrom(t *updateTopic, publisher peer.ID, upd *pb.ResourceUpdate) {
	t.dmu.Lock()
	defer t.dmu.Unlock()
	for upd != nil {
		t.mu.Lock()
		if upd.Seq != t.last[publisher]+1 {
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
		u.deliver(t, publisher, upd)
		t.mu.Lock()
		t.last[publisher] = upd.Seq
		next := t.pending[publisher][upd.Seq+1]
		delete(t.pending[publisher], upd.Seq+1)
		t.mu.Unlock()
		upd = next
	}
}

// fill fetches the missing updates from..to from the publisher, delivers
// them with what was held after them, and goes on while held updates show
// another gap.
func (u *updates) fill(t *updateTopic, publisher peer.ID, from, to uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	backoff := fillRetryMin
	for {
		if !u.fetchRange(ctx, t, publisher, from, to) {
			// The publisher did not answer: wait before asking again
			// rather than asking as fast as it fails.
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			backoff = min(2*backoff, fillRetryMax)
		} else {
			backoff = fillRetryMin
		}
		t.mu.Lock()
		last := t.last[publisher]
		next := t.pending[publisher][last+1]
		delete(t.pending[publisher], last+1)
		t.mu.Unlock()
		if next != nil {
			u.deliverFrom(t, publisher, next)
		}
		t.mu.Lock()
		last = t.last[publisher]
		lowest := uint64(0)
		for seq := range t.pending[publisher] {
			if seq <= last {
				delete(t.pending[publisher], seq)
			} else if lowest == 0 || seq < lowest {
				lowest = seq
			}
		}
		if lowest == 0 || ctx.Err() != nil {
			t.filling[publisher] = false
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
		from, to = last+1, lowest-1
	}
}

// Retry bounds of fill when the publisher does not answer.
const (
	fillRetryMin = 100 * time.Millisecond
	fillRetryMax = 5 * time.Second
)

// fetchRange fetches updates from..to from the publisher and delivers each
// that is next. It reports whether the publisher answered.
func (u *updates) fetchRange(ctx context.Context, t *updateTopic, publisher peer.ID, from, to uint64) bool {
	for from <= to {
		var reply pb.UpdatesResponse
		req := &pb.UpdatesRequest{Resource: t.id.String(), From: from, To: to}
		if err := u.n.request(ctx, publisher, protocols.ResourceUpdates, req, &reply, maxUpdatesPerFetch*(MaxUpdateSize+64)); err != nil || reply.Code != "" {
			u.n.log.Warn("missing resource updates not fetched", "resource", t.id, "peer", publisher, "org", u.n.peerOrg(publisher), "from", from, "to", to, "error", err, "refused", reply.Error)
			return false
		}
		if len(reply.Updates) == 0 {
			return true
		}
		for _, upd := range reply.Updates {
			if upd.Seq != from || upd.Resource != t.id.String() {
				u.n.log.Warn("publisher answered with other updates than asked", "resource", t.id, "peer", publisher, "org", u.n.peerOrg(publisher), "want", from, "got", upd.Seq)
				return false
			}
			u.deliverFrom(t, publisher, upd)
			from++
		}
	}
	return true
}

// deliver decrypts an update if needed and hands it to every subscription.
func (u *updates) deliver(t *updateTopic, publisher peer.ID, upd *pb.ResourceUpdate) {
	data := upd.Data
	if upd.Encrypted {
		var err error
		if data, err = u.decrypt(t.id, publisher, upd); err != nil {
			u.counter.Add(1)
			u.n.log.Warn("resource update not readable", "resource", t.id, "seq", upd.Seq, "epoch", upd.Epoch, "error", err)
			return
		}
	}
	out := Update{Resource: upd.Resource, Publisher: publisher, Seq: upd.Seq, Data: data}
	t.mu.Lock()
	subs := slices.Collect(maps.Keys(t.subs))
	t.mu.Unlock()
	for _, ch := range subs {
		u.send(t, ch, out)
	}
}

// send hands out to one subscription. A subscriber that has let
// subscriptionBuffer updates pile up loses its subscription (the channel
// closes) rather than stall every other subscriber of the topic.
func (u *updates) send(t *updateTopic, ch chan Update, out Update) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.subs[ch]; !ok {
		return // ended meanwhile
	}
	select {
	case ch <- out:
	default:
		delete(t.subs, ch)
		close(ch)
		u.n.log.Warn("subscription ended: its reader fell behind", "resource", t.id, "buffered", subscriptionBuffer)
	}
}

// Subscribe delivers every update of a resource published from now on, in
// order per publishing node, until ctx ends. Updates lost on gossip are
// fetched from their publisher. A restricted resource's updates are
// decrypted with the topic key its owner hands to allowed orgs.
func (n *Node) Subscribe(ctx context.Context, id resource.ID) (<-chan Update, error) {
	if n.upd == nil {
		return nil, errors.New("subscribe: the node is not started")
	}
	if allowed, known := n.acc.acls.Allows(id, n.self.OrgID, resource.RightSubscribe); known && !allowed {
		return nil, fmt.Errorf("subscribe to %s: %w: the ACL this node holds gives org %s no subscribe right", id, resource.ErrAccessDenied, n.self.OrgID)
	}
	t, err := n.upd.join(id)
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", id, err)
	}
	n.upd.baseline(ctx, t)
	ch := make(chan Update, subscriptionBuffer)
	t.mu.Lock()
	t.subs[ch] = struct{}{}
	t.mu.Unlock()
	if id.Org() != n.self.OrgID {
		go n.upd.catchUp(ctx, t)
	}
	go func() {
		<-ctx.Done()
		t.mu.Lock()
		if _, ok := t.subs[ch]; ok {
			delete(t.subs, ch)
			close(ch)
		}
		t.mu.Unlock()
	}()
	return ch, nil
}

// baseline learns each owner node's head, so that an update lost right
// after subscribing is noticed and fetched.
func (u *updates) baseline(ctx context.Context, t *updateTopic) {
	if t.id.Org() == u.n.self.OrgID {
		return
	}
	res, err := u.n.Resolve(ctx, t.id.Org())
	if err != nil {
		return
	}
	for _, nd := range res.Nodes {
		head, ok := u.head(ctx, t, nd.Peer, nd.Addrs)
		if !ok {
			// Until the head is known, an update lost before the first
			// one received would go unnoticed: keep asking in the
			// background, with backoff, while the subscription lasts.
			go u.retryHead(ctx, t, nd.Peer, nd.Addrs)
			continue
		}
		u.setStart(t, nd.Peer, head)
	}
}

// setStart makes head the last update of p delivered, unless an update of
// p was received first.
func (u *updates) setStart(t *updateTopic, p peer.ID, head uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, known := t.last[p]; !known {
		t.last[p] = head
	}
}

// retryHead asks p for its head until it answers, an update of p arrives,
// or ctx ends.
func (u *updates) retryHead(ctx context.Context, t *updateTopic, p peer.ID, addrs []string) {
	wait := fillRetryMin
	for {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		t.mu.Lock()
		_, known := t.last[p]
		t.mu.Unlock()
		if known {
			return
		}
		if head, ok := u.head(ctx, t, p, addrs); ok {
			u.setStart(t, p, head)
			return
		}
		wait = min(2*wait, fillRetryMax)
	}
}

// head asks a publisher for its last sequence number of t's resource.
func (u *updates) head(ctx context.Context, t *updateTopic, p peer.ID, addrs []string) (uint64, bool) {
	if u.failHeads.Load() > 0 && u.failHeads.Add(-1) >= 0 {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := u.n.Connect(ctx, addrInfo(p, addrs)); err != nil {
		return 0, false
	}
	var reply pb.UpdatesResponse
	if err := u.n.request(ctx, p, protocols.ResourceUpdates, &pb.UpdatesRequest{Resource: t.id.String()}, &reply, 64<<10); err != nil || reply.Code != "" {
		return 0, false
	}
	return reply.Head, true
}

// catchUp runs while a topic has subscribers: every catchUpInterval it
// asks each known publisher for its head and fetches what gossip did not
// bring, so even the last updates of a burst are never missed.
func (u *updates) catchUp(ctx context.Context, t *updateTopic) {
	tick := time.NewTicker(catchUpInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t.mu.Lock()
		publishers := maps.Clone(t.last)
		t.mu.Unlock()
		delete(publishers, u.n.host.ID())
		for p, last := range publishers {
			head, ok := u.head(ctx, t, p, nil)
			if !ok || head <= last {
				continue
			}
			t.mu.Lock()
			fill := !t.filling[p]
			t.filling[p] = true
			t.mu.Unlock()
			if fill {
				u.fill(t, p, last+1, head)
			}
		}
	}
}

// Publish publishes an update of one of this org's resources on its topic.
// Updates of a restricted resource are encrypted under the current topic
// key. The update is stored first, so a subscriber that misses it on
// gossip can fetch it. It returns the update's sequence number.
func (n *Node) Publish(ctx context.Context, id resource.ID, data []byte) (uint64, error) {
	if n.upd == nil {
		return 0, errors.New("publish: the node is not started")
	}
	if id.Org() != n.self.OrgID {
		return 0, fmt.Errorf("publish on %s: %w: only org %q may publish on its topic", id, resource.ErrNotOwner, id.Org())
	}
	if len(data) > MaxUpdateSize {
		return 0, fmt.Errorf("publish on %s: %w: %d bytes, at most %d", id, resource.ErrTooLarge, len(data), MaxUpdateSize)
	}
	u := n.upd
	t, err := u.join(id)
	if err != nil {
		return 0, fmt.Errorf("publish on %s: %w", id, err)
	}
	u.mu.Lock()
	seq := u.seqs[id]
	if seq == 0 {
		if b, err := u.meta.Get(ctx, datastore.NewKey("seq").ChildString(id.String())); err == nil && len(b) == 8 {
			seq = binary.BigEndian.Uint64(b)
		}
	}
	seq++
	upd := &pb.ResourceUpdate{Resource: id.String(), Seq: seq, Data: data}
	if n.upd.private(id) {
		keys, err := u.ownKeys(ctx, id)
		if err != nil {
			u.mu.Unlock()
			return 0, err
		}
		upd.Encrypted, upd.Epoch = true, keys.Epoch
		if upd.Data, err = seal(keys.Keys[keys.Epoch], id, n.host.ID(), seq, data); err != nil {
			u.mu.Unlock()
			return 0, err
		}
	}
	encoded, err := proto.Marshal(upd)
	if err != nil {
		u.mu.Unlock()
		return 0, err
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	batch, err := n.ds.Batch(ctx)
	if err == nil {
		_ = batch.Put(ctx, datastore.NewKey("/resources/updates").Child(updateKey(id, seq)), encoded)
		_ = batch.Put(ctx, datastore.NewKey("/resources/update-meta/seq").ChildString(id.String()), b[:])
		err = batch.Commit(ctx)
	}
	if err != nil {
		u.mu.Unlock()
		return 0, fmt.Errorf("publish on %s: store update %d: %w", id, seq, err)
	}
	u.seqs[id] = seq
	u.mu.Unlock()
	// This node's own subscribers get it directly: gossipsub does not hand
	// a node its own messages.
	t.dmu.Lock()
	t.mu.Lock()
	if _, known := t.last[n.host.ID()]; !known {
		t.last[n.host.ID()] = seq - 1
	}
	t.mu.Unlock()
	t.dmu.Unlock()
	u.deliverFrom(t, n.host.ID(), upd)
	if err := t.topic.Publish(ctx, encoded); err != nil {
		// Stored: subscribers that notice the gap fetch it.
		return seq, fmt.Errorf("publish on %s: update %d stored but not sent: %w", id, seq, err)
	}
	return seq, nil
}

// private reports whether id's updates must be encrypted: unless its ACL
// is public, or, with no ACL, it is advertised publicly.
func (u *updates) private(id resource.ID) bool {
	if acl, ok := u.n.acc.acls.Get(id); ok {
		return !acl.Public
	}
	sa, ok := u.n.res.store.Get(id)
	return !ok || sa.Ad.Restricted || sa.Ad.Withdrawn
}

// ownKeys returns the owner's topic keys of id, creating the first. u.mu held.
func (u *updates) ownKeys(ctx context.Context, id resource.ID) (*topicKeys, error) {
	if k := u.keys[id]; k != nil {
		return k, nil
	}
	k := &topicKeys{Keys: map[uint32][]byte{}}
	if b, err := u.meta.Get(ctx, datastore.NewKey("keys").ChildString(id.String())); err == nil {
		if err := json.Unmarshal(b, k); err != nil {
			return nil, fmt.Errorf("topic keys of %s: %w", id, err)
		}
	}
	if len(k.Keys) == 0 {
		if err := u.rotateLocked(ctx, id, k); err != nil {
			return nil, err
		}
	}
	u.keys[id] = k
	return k, nil
}

// rotateLocked starts a new epoch with a fresh key. u.mu held.
func (u *updates) rotateLocked(ctx context.Context, id resource.ID, k *topicKeys) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	k.Epoch++
	k.Keys[k.Epoch] = key
	b, err := json.Marshal(k)
	if err != nil {
		return err
	}
	if err := u.meta.Put(ctx, datastore.NewKey("keys").ChildString(id.String()), b); err != nil {
		return fmt.Errorf("store topic key of %s: %w", id, err)
	}
	return nil
}

// rotate starts a new key epoch for id, after an org lost the right to
// subscribe, so new updates are unreadable to it.
func (u *updates) rotate(ctx context.Context, id resource.ID) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	k, err := u.ownKeys(ctx, id)
	if err != nil {
		return err
	}
	return u.rotateLocked(ctx, id, k)
}

func aad(id resource.ID, publisher peer.ID, seq uint64) []byte {
	return fmt.Appendf(nil, "%s\x00%s\x00%d", id, publisher, seq)
}

func seal(key []byte, id resource.ID, publisher peer.ID, seq uint64, data []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return gcm.Seal(nonce, nonce, data, aad(id, publisher, seq)), nil
}

func (u *updates) decrypt(id resource.ID, publisher peer.ID, upd *pb.ResourceUpdate) ([]byte, error) {
	key, err := u.topicKey(id, upd.Epoch)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if len(upd.Data) < gcm.NonceSize() {
		return nil, errors.New("ciphertext too short")
	}
	return gcm.Open(nil, upd.Data[:gcm.NonceSize()], upd.Data[gcm.NonceSize():], aad(id, publisher, upd.Seq))
}

// topicKey returns the key of an epoch: the owner's own, one fetched
// before, or one fetched now from the owner, sealed to a fresh X25519 key.
func (u *updates) topicKey(id resource.ID, epoch uint32) ([]byte, error) {
	n := u.n
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	u.mu.Lock()
	if id.Org() == n.self.OrgID {
		k, err := u.ownKeys(ctx, id)
		u.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if key := k.Keys[epoch]; key != nil {
			return key, nil
		}
		return nil, fmt.Errorf("no topic key of epoch %d", epoch)
	}
	if key := u.got[id][epoch]; key != nil {
		u.mu.Unlock()
		return key, nil
	}
	u.mu.Unlock()
	if allowed, known := n.acc.acls.Allows(id, n.self.OrgID, resource.RightSubscribe); known && !allowed {
		return nil, fmt.Errorf("%w: no subscribe right on %s; topic key not asked for", resource.ErrAccessDenied, id)
	}
	priv, err := topicKEM.GenerateKey()
	if err != nil {
		return nil, err
	}
	var key []byte
	err = n.sendToOrg(ctx, id.Org(), func(ctx context.Context, p peer.ID) error {
		var reply pb.TopicKeyResponse
		req := &pb.TopicKeyRequest{Resource: id.String(), Epoch: epoch, Recipient: priv.PublicKey().Bytes()}
		if err := n.request(ctx, p, protocols.ResourceTopicKey, req, &reply, 4096); err != nil {
			return err
		}
		if reply.Code != "" {
			if reply.Code == "denied" {
				return fmt.Errorf("%w: %s", resource.ErrAccessDenied, reply.Error)
			}
			return fmt.Errorf("refused (%s): %s", reply.Code, reply.Error)
		}
		k, err := hpke.Open(priv, topicKDF, topicAEAD, hpkeInfo(id, epoch), reply.SealedKey)
		if err != nil {
			return fmt.Errorf("open topic key: %w", err)
		}
		key = k
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("topic key of %s epoch %d: %w", id, epoch, err)
	}
	u.mu.Lock()
	if u.got[id] == nil {
		u.got[id] = map[uint32][]byte{}
	}
	u.got[id][epoch] = key
	u.mu.Unlock()
	return key, nil
}

func hpkeInfo(id resource.ID, epoch uint32) []byte {
	return fmt.Appendf(nil, "finp2p topic key\x00%s\x00%d", id, epoch)
}

// handleKey hands a topic key, sealed with HPKE to the requester's X25519
// key, to an org the ACL lets subscribe.
func (u *updates) handleKey(s network.Stream) {
	var req pb.TopicKeyRequest
	u.n.acc.serve(s, &req, 4096, func(org string) proto.Message {
		if !u.n.acc.limiter.Allow(org) {
			return &pb.TopicKeyResponse{Code: "rate-limited", Error: "org " + org + " has too many refused requests"}
		}
		id, err := resource.ParseID(req.Resource)
		if err != nil || id.Org() != u.n.self.OrgID {
			return &pb.TopicKeyResponse{Code: "bad-request", Error: fmt.Sprintf("%q is not a resource of org %s", req.Resource, u.n.self.OrgID)}
		}
		if !u.n.acc.allows(id, org, resource.RightSubscribe) {
			u.n.acc.limiter.Refused(org)
			return &pb.TopicKeyResponse{Code: "denied", Error: fmt.Sprintf("org %s may not subscribe to %s", org, id)}
		}
		pk, err := topicKEM.NewPublicKey(req.Recipient)
		if err != nil {
			return &pb.TopicKeyResponse{Code: "bad-request", Error: "recipient is not an X25519 public key"}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		u.mu.Lock()
		k, err := u.ownKeys(ctx, id)
		var key []byte
		if err == nil {
			key = k.Keys[req.Epoch]
		}
		u.mu.Unlock()
		if key == nil {
			return &pb.TopicKeyResponse{Code: "not-found", Error: fmt.Sprintf("no topic key of epoch %d", req.Epoch)}
		}
		sealed, err := hpke.Seal(pk, topicKDF, topicAEAD, hpkeInfo(id, req.Epoch), key)
		if err != nil {
			return &pb.TopicKeyResponse{Code: "bad-request", Error: err.Error()}
		}
		return &pb.TopicKeyResponse{Epoch: req.Epoch, SealedKey: sealed}
	})
}

// handleFetch serves this node's past updates of a resource to an org the
// ACL lets subscribe, or its head when from is 0.
func (u *updates) handleFetch(s network.Stream) {
	var req pb.UpdatesRequest
	u.n.acc.serve(s, &req, 1024, func(org string) proto.Message {
		if !u.n.acc.limiter.Allow(org) {
			return &pb.UpdatesResponse{Code: "rate-limited", Error: "org " + org + " has too many refused requests"}
		}
		id, err := resource.ParseID(req.Resource)
		if err != nil || id.Org() != u.n.self.OrgID {
			return &pb.UpdatesResponse{Code: "bad-request", Error: fmt.Sprintf("%q is not a resource of org %s", req.Resource, u.n.self.OrgID)}
		}
		if !u.n.acc.allows(id, org, resource.RightSubscribe) {
			u.n.acc.limiter.Refused(org)
			return &pb.UpdatesResponse{Code: "denied", Error: fmt.Sprintf("org %s may not subscribe to %s", org, id)}
		}
		u.mu.Lock()
		head := u.seqs[id]
		u.mu.Unlock()
		reply := &pb.UpdatesResponse{Head: head}
		if req.From == 0 {
			return reply
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for seq := req.From; seq <= min(req.To, head) && len(reply.Updates) < maxUpdatesPerFetch; seq++ {
			b, err := u.log.Get(ctx, updateKey(id, seq))
			if err != nil {
				break
			}
			var upd pb.ResourceUpdate
			if proto.Unmarshal(b, &upd) != nil {
				break
			}
			reply.Updates = append(reply.Updates, &upd)
		}
		return reply
	})
}

// UnreadableUpdates counts updates this node received but could not
// decrypt (no right to the topic key).
func (n *Node) UnreadableUpdates() int64 {
	if n.upd == nil {
		return 0
	}
	return n.upd.counter.Load()
}
