package resource

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
)

// ACLCache holds the newest verified ACL of each resource and keeps the
// sealed lists in a datastore so they survive a restart. Every node caches
// the ACLs that concern it, so requests that would be refused are not sent
// and the owner's refusals stay cheap. It holds every list it is given: the
// caller puts only the lists that concern its node. It is safe for concurrent
// use.
type ACLCache struct {
	ds  datastore.Datastore
	v   *ACLVerifier
	log *slog.Logger

	// writeMu serialises Put and Load, so the store and memory change in
	// the same order; readers take only mu and never wait on the store.
	writeMu sync.Mutex
	mu      sync.RWMutex
	acls    map[ID]cachedACL
}

type cachedACL struct {
	acl    ACL
	sealed []byte
}

// NewACLCache returns an empty cache that persists to ds (which the caller
// namespaces and closes) and checks lists with v. It does no I/O; call Load
// to read what a previous run stored.
func NewACLCache(ds datastore.Datastore, v *ACLVerifier, log *slog.Logger) *ACLCache {
	if log == nil {
		log = slog.Default()
	}
	return &ACLCache{ds: ds, v: v, log: log, acls: make(map[ID]cachedACL)}
}

// aclKey is where a resource's sealed ACL is stored. A canonical id has no
// '/' and is never "." or "..", so it is one key component, stored as is.
func aclKey(id ID) datastore.Key { return datastore.NewKey(id.String()) }

// Load replaces the cache's content with the stored lists, verifying each
// again: lists whose signer has since expired or been revoked, or that no
// longer verify for another reason, are deleted from the store and logged.
// It returns how many lists it kept.
func (c *ACLCache) Load(ctx context.Context) (loaded int, err error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	res, err := c.ds.Query(ctx, query.Query{})
	if err != nil {
		return 0, fmt.Errorf("load ACLs: %w", err)
	}
	entries, err := res.Rest()
	if err != nil {
		return 0, fmt.Errorf("load ACLs: %w", err)
	}
	acls := make(map[ID]cachedACL, len(entries))
	for _, e := range entries {
		acl, _, err := c.v.Open(e.Value)
		if err == nil && aclKey(acl.Resource).String() != e.Key {
			err = fmt.Errorf("ACL of %s stored under %s", acl.Resource, e.Key)
		}
		if err != nil {
			c.log.Info("dropping stored ACL", "key", e.Key, "reason", err)
			if derr := c.ds.Delete(ctx, datastore.NewKey(e.Key)); derr != nil {
				return 0, fmt.Errorf("delete stored ACL %s: %w", e.Key, derr)
			}
			continue
		}
		acls[acl.Resource] = cachedACL{acl: acl, sealed: e.Value}
	}
	c.mu.Lock()
	c.acls = acls
	c.mu.Unlock()
	return len(acls), nil
}

// Put verifies a sealed ACL and stores it, on disk first, if its version is
// higher than the one held for its resource. It reports whether the cache
// changed: the same envelope again is no change and no error; an older
// version, or the same version with other content, is ErrStale. Whenever Put
// fails the previous list stays. A pub/sub validator can use Put itself as
// its check: ErrStale and no change mean Ignore, other errors Reject.
func (c *ACLCache) Put(ctx context.Context, sealed []byte) (changed bool, err error) {
	acl, _, err := c.v.Open(sealed)
	if err != nil {
		return false, err
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.mu.RLock()
	old, ok := c.acls[acl.Resource]
	c.mu.RUnlock()
	if ok {
		if bytes.Equal(old.sealed, sealed) {
			return false, nil
		}
		if acl.Version <= old.acl.Version {
			return false, fmt.Errorf("%w: ACL of %s has version %d, version %d is held", ErrStale, acl.Resource, acl.Version, old.acl.Version)
		}
	}
	sealed = slices.Clone(sealed)
	key := aclKey(acl.Resource)
	if err := c.ds.Put(ctx, key, sealed); err != nil {
		return false, fmt.Errorf("store ACL of %s: %w", acl.Resource, err)
	}
	if err := c.ds.Sync(ctx, key); err != nil {
		return false, fmt.Errorf("store ACL of %s: sync: %w", acl.Resource, err)
	}
	c.mu.Lock()
	c.acls[acl.Resource] = cachedACL{acl: acl, sealed: sealed}
	c.mu.Unlock()
	return true, nil
}

// Get returns a copy of the ACL held for id.
func (c *ACLCache) Get(id ID) (ACL, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.acls[id]
	if !ok {
		return ACL{}, false
	}
	return e.acl.Clone(), true
}

// Sealed returns the signed envelope of the ACL held for id, to pass on to
// another node.
func (c *ACLCache) Sealed(id ID) ([]byte, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.acls[id]
	if !ok {
		return nil, false
	}
	return slices.Clone(e.sealed), true
}

// Allows reports whether the ACL held for id lets org use right r (see
// ACL.Allows), and whether an ACL for id is known at all: with none, the
// caller cannot tell and should let the owner decide.
func (c *ACLCache) Allows(id ID, org string, r Right) (allowed, known bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.acls[id]
	if !ok {
		return false, false
	}
	return e.acl.Allows(org, r), true
}

// Len returns the number of ACLs held.
func (c *ACLCache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.acls)
}
