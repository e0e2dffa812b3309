package resource_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/finp2p/go-finp2p/resource"
)

// aclLogs collects what a cache logs.
type aclLogs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *aclLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *aclLogs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// failingStore fails every Put once failPut is set.
type failingStore struct {
	datastore.Datastore
	failPut bool
}

func (s *failingStore) Put(ctx context.Context, k datastore.Key, v []byte) error {
	if s.failPut {
		return errors.New("disk full")
	}
	return s.Datastore.Put(ctx, k, v)
}

func newACLStore() datastore.Datastore { return dssync.MutexWrap(datastore.NewMapDatastore()) }

// storedKeys lists the keys in ds.
func storedKeys(t testing.TB, ds datastore.Datastore) []string {
	t.Helper()
	res, err := ds.Query(context.Background(), query.Query{KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := res.Rest()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range entries {
		keys = append(keys, e.Key)
	}
	return keys
}

func TestACLCachePut(t *testing.T) {
	ctx := context.Background()
	f := newACLFixture(t)
	ds := newACLStore()
	c := resource.NewACLCache(ds, f.verifier(), nil)
	v1 := testACL(f.bankX, 1)
	id := v1.Resource

	if _, ok := c.Get(id); ok {
		t.Fatal("empty cache has an ACL")
	}
	if allowed, known := c.Allows(id, "bank-z", resource.RightRead); allowed || known {
		t.Errorf("empty cache: Allows = %v, %v; want false, false", allowed, known)
	}

	sealed1 := f.seal(t, v1, f.bankX)
	if changed, err := c.Put(ctx, sealed1); err != nil || !changed {
		t.Fatalf("Put v1 = %v, %v", changed, err)
	}
	if got, ok := c.Get(id); !ok || !reflect.DeepEqual(got, v1) {
		t.Errorf("Get = %+v, %v; want %+v", got, ok, v1)
	}
	if allowed, known := c.Allows(id, "bank-z", resource.RightQuery); !allowed || !known {
		t.Errorf("Allows(bank-z, query) = %v, %v; want true, true", allowed, known)
	}
	if allowed, known := c.Allows(id, "bank-y", resource.RightRead); allowed || !known {
		t.Errorf("Allows(bank-y, read) = %v, %v; want false, true", allowed, known)
	}
	if got, ok := c.Sealed(id); !ok || !bytes.Equal(got, sealed1) {
		t.Error("Sealed does not return the stored envelope")
	}
	if changed, err := c.Put(ctx, sealed1); err != nil || changed {
		t.Errorf("Put of the same envelope = %v, %v; want false, nil", changed, err)
	}

	// A newer version from another node of the owner replaces it.
	v2 := testACL(f.bankX, 2)
	v2.Grants = map[string]resource.Right{"bank-y": resource.RightRead}
	sealed2 := f.seal(t, v2, f.bankX2)
	if changed, err := c.Put(ctx, sealed2); err != nil || !changed {
		t.Fatalf("Put v2 = %v, %v", changed, err)
	}
	if allowed, _ := c.Allows(id, "bank-z", resource.RightQuery); allowed {
		t.Error("bank-z keeps a right v2 took away")
	}
	if allowed, _ := c.Allows(id, "bank-y", resource.RightRead); !allowed {
		t.Error("bank-y lacks the right v2 gave")
	}

	// Older, or the same version with other content, is stale; v2 stays.
	other2 := v2.Clone()
	other2.Public = true
	for name, sealed := range map[string][]byte{"older": sealed1, "same version, other content": f.seal(t, other2, f.bankX)} {
		changed, err := c.Put(ctx, sealed)
		if changed {
			t.Errorf("%s: changed", name)
		}
		wantACLErr(t, err, []error{resource.ErrStale}, id.String(), "version 2 is held")
	}
	if got, _ := c.Get(id); !reflect.DeepEqual(got, v2) {
		t.Errorf("after stale puts Get = %+v, want %+v", got, v2)
	}
	if got, _ := c.Sealed(id); !bytes.Equal(got, sealed2) {
		t.Error("after stale puts the envelope changed")
	}
	stored, err := ds.Get(ctx, datastore.NewKey(id.String()))
	if err != nil || !bytes.Equal(stored, sealed2) {
		t.Errorf("stored envelope is not v2: %v", err)
	}
	if c.Len() != 1 {
		t.Errorf("Len = %d, want 1", c.Len())
	}
}

func TestACLCachePutRefusesUnverified(t *testing.T) {
	ctx := context.Background()
	f := newACLFixture(t)
	ds := newACLStore()
	c := resource.NewACLCache(ds, f.verifier(), nil)
	forged := sealRaw(t, &resource.SignedACL{ACL: testACL(f.bankX, 1), Chain: f.bankY.chain}, f.bankY.key)
	changed, err := c.Put(ctx, forged)
	wantACLErr(t, err, []error{resource.ErrForged})
	if changed || c.Len() != 0 || len(storedKeys(t, ds)) != 0 {
		t.Errorf("a forged ACL was kept: changed %v, %d held, stored %v", changed, c.Len(), storedKeys(t, ds))
	}
}

func TestACLCacheGetReturnsCopy(t *testing.T) {
	f := newACLFixture(t)
	c := resource.NewACLCache(newACLStore(), f.verifier(), nil)
	acl := testACL(f.bankX, 1)
	if _, err := c.Put(context.Background(), f.seal(t, acl, f.bankX)); err != nil {
		t.Fatal(err)
	}
	got, _ := c.Get(acl.Resource)
	got.Grants["bank-w"] = resource.AllRights
	if allowed, _ := c.Allows(acl.Resource, "bank-w", resource.RightRead); allowed {
		t.Error("changing a Get result changed the cache")
	}
	sealed, _ := c.Sealed(acl.Resource)
	sealed[0] ^= 0xff
	if again, _ := c.Sealed(acl.Resource); bytes.Equal(again, sealed) {
		t.Error("changing a Sealed result changed the cache")
	}
}

func TestACLCacheStoreFailure(t *testing.T) {
	ctx := context.Background()
	f := newACLFixture(t)
	ds := &failingStore{Datastore: newACLStore()}
	c := resource.NewACLCache(ds, f.verifier(), nil)
	v1 := testACL(f.bankX, 1)
	if _, err := c.Put(ctx, f.seal(t, v1, f.bankX)); err != nil {
		t.Fatal(err)
	}
	ds.failPut = true
	changed, err := c.Put(ctx, f.seal(t, testACL(f.bankX, 2), f.bankX))
	if err == nil || changed || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), v1.Resource.String()) {
		t.Fatalf("Put with a failing store = %v, %v", changed, err)
	}
	if got, _ := c.Get(v1.Resource); got.Version != 1 {
		t.Errorf("after a failed Put the cache holds version %d, want 1", got.Version)
	}
}

func TestACLCacheLoad(t *testing.T) {
	ctx := context.Background()
	f := newACLFixture(t)
	ds := newACLStore()
	c := resource.NewACLCache(ds, f.verifier(), nil)
	aclX := testACL(f.bankX, 4)
	aclY := testACL(f.bankY, 1)
	aclX2 := resource.ACL{Resource: resource.MustParseID("bank-x:105:intent-1"), Owner: "bank-x", Version: 9, Public: true}
	for _, sealed := range [][]byte{f.seal(t, aclX, f.bankX), f.seal(t, aclY, f.bankY), f.seal(t, aclX2, f.bankX2)} {
		if _, err := c.Put(ctx, sealed); err != nil {
			t.Fatal(err)
		}
	}

	// What a restart finds.
	restarted := resource.NewACLCache(ds, f.verifier(), nil)
	if n, err := restarted.Load(ctx); err != nil || n != 3 {
		t.Fatalf("Load = %d, %v; want 3", n, err)
	}
	for _, want := range []resource.ACL{aclX, aclY, aclX2} {
		if got, ok := restarted.Get(want.Resource); !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("after Load Get(%s) = %+v, %v", want.Resource, got, ok)
		}
	}

	// Entries that no longer verify are dropped from memory and store:
	// junk, an ACL under another resource's key, and (with a trust store
	// that knows bank-y's node is revoked) bank-y's ACL.
	if err := ds.Put(ctx, datastore.NewKey("bank-x:102:junk"), []byte("junk")); err != nil {
		t.Fatal(err)
	}
	if err := ds.Put(ctx, datastore.NewKey("bank-x:102:moved"), f.seal(t, testACL(f.bankX, 1), f.bankX)); err != nil {
		t.Fatal(err)
	}
	logs := &aclLogs{}
	v := &resource.ACLVerifier{Trust: f.revokedTrust(t, f.bankY), Now: f.clock.Now}
	pruned := resource.NewACLCache(ds, v, slog.New(slog.NewTextHandler(logs, nil)))
	if n, err := pruned.Load(ctx); err != nil || n != 2 {
		t.Fatalf("Load = %d, %v; want 2", n, err)
	}
	if _, ok := pruned.Get(aclY.Resource); ok {
		t.Error("the revoked signer's ACL was loaded")
	}
	keys := storedKeys(t, ds)
	if want := []string{"/" + aclX2.Resource.String(), "/" + aclX.Resource.String()}; !reflect.DeepEqual(sortedStrings(keys), sortedStrings(want)) {
		t.Errorf("stored keys after Load = %v, want %v", keys, want)
	}
	out := logs.String()
	for _, want := range []string{"dropping stored ACL", "bank-x:102:junk", "stored under /bank-x:102:moved", "revoked"} {
		if !strings.Contains(out, want) {
			t.Errorf("log does not mention %q:\n%s", want, out)
		}
	}

	// Load replaces what a cache held: c still had bank-y's ACL in memory.
	if n, err := c.Load(ctx); err != nil || n != 2 || c.Len() != 2 {
		t.Fatalf("Load of the first cache = %d, %v, Len %d; want 2", n, err, c.Len())
	}
	if _, ok := c.Get(aclY.Resource); ok {
		t.Error("Load kept an ACL that is no longer stored")
	}
}

func sortedStrings(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// TestACLCacheConcurrent puts versions of one ACL from many goroutines while
// others read; the highest version wins, and the race detector watches.
func TestACLCacheConcurrent(t *testing.T) {
	ctx := context.Background()
	f := newACLFixture(t)
	ds := newACLStore()
	c := resource.NewACLCache(ds, f.verifier(), nil)
	const versions = 20
	sealed := make([][]byte, versions)
	for i := range sealed {
		sealed[i] = f.seal(t, testACL(f.bankX, uint64(i+1)), f.bankX)
	}
	id := testACL(f.bankX, 1).Resource
	var wg sync.WaitGroup
	for i := range sealed {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := c.Put(ctx, sealed[i]); err != nil && !errors.Is(err, resource.ErrStale) {
				t.Errorf("Put version %d: %v", i+1, err)
			}
		}()
		go func() {
			defer wg.Done()
			c.Get(id)
			c.Allows(id, "bank-z", resource.RightRead)
			c.Sealed(id)
		}()
	}
	wg.Wait()
	if got, _ := c.Get(id); got.Version != versions {
		t.Errorf("held version %d, want %d", got.Version, versions)
	}
	stored, err := ds.Get(ctx, datastore.NewKey(id.String()))
	if err != nil || !bytes.Equal(stored, sealed[versions-1]) {
		t.Errorf("stored envelope is not the highest version: %v", err)
	}
}
