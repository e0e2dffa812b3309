package resource

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
)

// AdvertisementStore keeps the newest verified advertisement of each
// resource a node knows of: its own, and the restricted ones sent to it.
// It persists them in a datastore (namespaced and closed by the caller).
type AdvertisementStore struct {
	ds  datastore.Datastore
	v   *AdvertisementVerifier
	log *slog.Logger

	mu   sync.RWMutex
	byID map[ID]*SignedAdvertisement
}

// NewAdvertisementStore returns an empty store over ds.
func NewAdvertisementStore(ds datastore.Datastore, v *AdvertisementVerifier, log *slog.Logger) *AdvertisementStore {
	if log == nil {
		log = slog.Default()
	}
	return &AdvertisementStore{ds: ds, v: v, log: log, byID: make(map[ID]*SignedAdvertisement)}
}

func storeKey(id ID) datastore.Key { return datastore.NewKey(id.String()) }

// Load reads the stored advertisements back, verifying each again; expired
// or invalid ones are deleted and logged.
func (s *AdvertisementStore) Load(ctx context.Context) (int, error) {
	res, err := s.ds.Query(ctx, query.Query{})
	if err != nil {
		return 0, fmt.Errorf("load resource advertisements: %w", err)
	}
	entries, err := res.Rest()
	if err != nil {
		return 0, fmt.Errorf("load resource advertisements: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range entries {
		sa, err := s.v.Open(e.Value)
		if err == nil && storeKey(sa.Ad.Resource).String() != e.Key {
			err = fmt.Errorf("stored under %s", e.Key)
		}
		if err != nil {
			s.log.Info("dropping stored resource advertisement", "key", e.Key, "reason", err)
			if derr := s.ds.Delete(ctx, datastore.NewKey(e.Key)); derr != nil {
				return n, fmt.Errorf("delete stored resource advertisement %s: %w", e.Key, derr)
			}
			continue
		}
		s.byID[sa.Ad.Resource] = sa
		n++
	}
	return n, nil
}

// Put verifies a sealed advertisement and keeps it if it is newer than the
// one held for its resource; an older or equal one with other content is
// ErrStale and the held one stays. It reports whether the store changed.
func (s *AdvertisementStore) Put(ctx context.Context, sealed []byte) (*SignedAdvertisement, bool, error) {
	sa, err := s.v.Open(sealed)
	if err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.byID[sa.Ad.Resource]; old != nil {
		if bytes.Equal(old.Sealed, sealed) {
			return old, false, nil
		}
		if sa.Ad.Seq <= old.Ad.Seq {
			return nil, false, fmt.Errorf("%w: advertisement of %s has sequence %d, %d is held", ErrStale, sa.Ad.Resource, sa.Ad.Seq, old.Ad.Seq)
		}
	}
	if err := s.ds.Put(ctx, storeKey(sa.Ad.Resource), sealed); err != nil {
		return nil, false, fmt.Errorf("store resource advertisement %s: %w", sa.Ad.Resource, err)
	}
	s.byID[sa.Ad.Resource] = sa
	return sa, true, nil
}

// Get returns the advertisement held for id, if it has not expired.
func (s *AdvertisementStore) Get(id ID) (*SignedAdvertisement, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	sa := s.byID[id]
	if sa == nil || !sa.Ad.Expires.After(s.v.now()) {
		return nil, false
	}
	return sa, true
}

// Owned returns the unexpired advertisements signed by org, ordered by id.
func (s *AdvertisementStore) Owned(org string) []*SignedAdvertisement {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*SignedAdvertisement
	now := s.v.now()
	for id, sa := range s.byID {
		if id.Org() == org && sa.Ad.Expires.After(now) {
			out = append(out, sa)
		}
	}
	slices.SortFunc(out, func(a, b *SignedAdvertisement) int {
		return strings.Compare(a.Ad.Resource.String(), b.Ad.Resource.String())
	})
	return out
}
