package discovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Directory holds the newest verified advertisement of each node, by org,
// and keeps them in a datastore so they survive a restart. A registrar's
// store and a node's cache (which is also its backup list of peers for
// rejoining) are both Directories.
type Directory struct {
	ds  datastore.Datastore
	v   *Verifier
	log *slog.Logger

	mu   sync.RWMutex
	recs map[string]map[peer.ID]*Record
	// peers indexes recs by peer, for Get on every relayed message.
	peers map[peer.ID]*Record
}

// NewDirectory returns an empty directory that persists to ds (which the
// caller namespaces and closes) and checks records with v.
func NewDirectory(ds datastore.Datastore, v *Verifier, log *slog.Logger) *Directory {
	if log == nil {
		log = slog.Default()
	}
	return &Directory{ds: ds, v: v, log: log, recs: make(map[string]map[peer.ID]*Record), peers: make(map[peer.ID]*Record)}
}

func recordKey(org string, p peer.ID) datastore.Key {
	return datastore.NewKey(org).ChildString(p.String())
}

// Load reads the stored advertisements, verifies each again and drops (and
// deletes) the ones that no longer hold, logging why.
func (d *Directory) Load(ctx context.Context) (loaded int, err error) {
	res, err := d.ds.Query(ctx, query.Query{})
	if err != nil {
		return 0, fmt.Errorf("load advertisements: %w", err)
	}
	entries, err := res.Rest()
	if err != nil {
		return 0, fmt.Errorf("load advertisements: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range entries {
		rec, err := d.v.Open(e.Value)
		if err == nil && recordKey(rec.Ad.Org, rec.Ad.Peer).String() != e.Key {
			err = fmt.Errorf("stored under %s", e.Key)
		}
		if err != nil {
			d.log.Info("dropping stored advertisement", "key", e.Key, "reason", err)
			if derr := d.ds.Delete(ctx, datastore.NewKey(e.Key)); derr != nil {
				return loaded, fmt.Errorf("delete stored advertisement %s: %w", e.Key, derr)
			}
			continue
		}
		d.setLocked(rec)
		loaded++
	}
	return loaded, nil
}

// Put verifies a sealed advertisement and stores it if it is newer than the
// one held for its node. It reports whether the directory changed; the same
// envelope again is not a change, an older or equal sequence number is
// ErrStale. The previous record stays whenever Put fails.
func (d *Directory) Put(ctx context.Context, sealed []byte) (*Record, bool, error) {
	rec, err := d.v.Open(sealed)
	if err != nil {
		return nil, false, err
	}
	changed, err := d.Add(ctx, rec)
	return rec, changed, err
}

// Add stores a record that was verified already (by a topic validator, for
// instance), with the same newest-wins rule as Put.
func (d *Directory) Add(ctx context.Context, rec *Record) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if old := d.recs[rec.Ad.Org][rec.Ad.Peer]; old != nil {
		if bytes.Equal(old.Sealed, rec.Sealed) {
			return false, nil
		}
		if rec.Ad.Seq <= old.Ad.Seq {
			return false, fmt.Errorf("%w: %s of org %s has sequence %d, %d is held", ErrStale, rec.Ad.Peer, rec.Ad.Org, rec.Ad.Seq, old.Ad.Seq)
		}
	}
	// Persist first: nothing is served that a restart would lose.
	if err := d.ds.Put(ctx, recordKey(rec.Ad.Org, rec.Ad.Peer), rec.Sealed); err != nil {
		return false, fmt.Errorf("store advertisement of %s: %w", rec.Ad.Peer, err)
	}
	d.setLocked(rec)
	return true, nil
}

// Newer reports whether rec would replace what the directory holds.
func (d *Directory) Newer(rec *Record) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	old := d.recs[rec.Ad.Org][rec.Ad.Peer]
	return old == nil || rec.Ad.Seq > old.Ad.Seq
}

func (d *Directory) setLocked(rec *Record) {
	byPeer := d.recs[rec.Ad.Org]
	if byPeer == nil {
		byPeer = make(map[peer.ID]*Record)
		d.recs[rec.Ad.Org] = byPeer
	}
	if old := d.peers[rec.Ad.Peer]; old != nil && old.Ad.Org != rec.Ad.Org {
		// A node whose certificate now names another org.
		delete(d.recs[old.Ad.Org], rec.Ad.Peer)
	}
	byPeer[rec.Ad.Peer] = rec
	d.peers[rec.Ad.Peer] = rec
}

// Org returns the current records of org's nodes, ordered by peer ID.
func (d *Directory) Org(org string) []*Record {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.currentLocked(d.recs[org], Filter{})
}

// Get returns the current record of one node.
func (d *Directory) Get(p peer.ID) (*Record, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if rec := d.peers[p]; rec != nil && d.v.Current(rec) {
		return rec, true
	}
	return nil, false
}

// List returns the current records that match f, ordered by org then peer.
func (d *Directory) List(f Filter) []*Record {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []*Record
	for _, byPeer := range d.recs {
		out = append(out, d.currentLocked(byPeer, f)...)
	}
	SortRecords(out)
	return out
}

func (d *Directory) currentLocked(byPeer map[peer.ID]*Record, f Filter) []*Record {
	var out []*Record
	for _, rec := range byPeer {
		if d.v.Current(rec) && rec.Ad.Matches(f) {
			out = append(out, rec)
		}
	}
	SortRecords(out)
	return out
}

// SortRecords orders records by org, then peer ID.
func SortRecords(recs []*Record) {
	slices.SortFunc(recs, func(a, b *Record) int {
		if c := strings.Compare(a.Ad.Org, b.Ad.Org); c != 0 {
			return c
		}
		return strings.Compare(string(a.Ad.Peer), string(b.Ad.Peer))
	})
}

// Peers returns the addresses of every node with a current record: the
// backup list a node dials to rejoin when the rendezvous nodes are down.
func (d *Directory) Peers() []peer.AddrInfo {
	recs := d.List(Filter{})
	out := make([]peer.AddrInfo, 0, len(recs))
	for _, r := range recs {
		out = append(out, peer.AddrInfo{ID: r.Ad.Peer, Addrs: r.Ad.Addrs})
	}
	return out
}

// Prune deletes records that expired or whose signer was revoked.
func (d *Directory) Prune(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for org, byPeer := range d.recs {
		for p, rec := range byPeer {
			if d.v.Current(rec) {
				continue
			}
			if err := d.ds.Delete(ctx, recordKey(org, p)); err != nil {
				errs = append(errs, fmt.Errorf("delete advertisement of %s: %w", p, err))
				continue
			}
			delete(byPeer, p)
			if d.peers[p] == rec {
				delete(d.peers, p)
			}
			d.log.Debug("advertisement pruned", "org", org, "peer", p, "expires", rec.Ad.Expires.Format(time.RFC3339))
		}
		if len(byPeer) == 0 {
			delete(d.recs, org)
		}
	}
	return errors.Join(errs...)
}

// Holds reports whether the directory holds exactly this record.
func (d *Directory) Holds(rec *Record) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	old := d.recs[rec.Ad.Org][rec.Ad.Peer]
	return old != nil && bytes.Equal(old.Sealed, rec.Sealed)
}
