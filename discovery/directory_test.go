package discovery_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/governance"
)

func newDatastore() datastore.Batching {
	return dssync.MutexWrap(datastore.NewMapDatastore())
}

// logBuffer collects a directory's log so a test can check what it said.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// quiet is the logger of directories whose log no test reads.
var quiet = slog.New(slog.DiscardHandler)

func seqs(recs []*discovery.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Ad.Seq
	}
	return out
}

func peers(recs []*discovery.Record) []peer.ID {
	out := make([]peer.ID, len(recs))
	for i, r := range recs {
		out[i] = r.Ad.Peer
	}
	return out
}

func equalPeers(got []*discovery.Record, want ...peer.ID) bool {
	return slices.Equal(peers(got), want)
}

// sortedPeers returns the members' peer IDs in the order a Directory lists
// one org's records.
func sortedPeers(ms ...member) []peer.ID {
	out := make([]peer.ID, len(ms))
	for i, m := range ms {
		out[i] = m.id
	}
	slices.Sort(out)
	return out
}

func put(t *testing.T, d *discovery.Directory, sealed []byte) *discovery.Record {
	t.Helper()
	rec, changed, err := d.Put(context.Background(), sealed)
	if err != nil {
		t.Fatal(err)
	}
	if !changed {
		t.Fatal("Put of a new advertisement did not change the directory")
	}
	return rec
}

func TestDirectoryPut(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ds := newDatastore()
	d := discovery.NewDirectory(ds, f.verifier(false), quiet)

	seq := func(n uint64) func(*discovery.Advertisement) {
		return func(a *discovery.Advertisement) { a.Seq = n }
	}
	first := f.sealed(t, f.bankX, seq(1))
	put(t, d, first)

	t.Run("same envelope again", func(t *testing.T) {
		rec, changed, err := d.Put(ctx, first)
		if err != nil || changed {
			t.Fatalf("Put = changed %v, %v; want no change and no error", changed, err)
		}
		if rec == nil || !d.Holds(rec) {
			t.Error("Put of the held envelope does not return it")
		}
	})

	second := f.sealed(t, f.bankX, seq(2))
	newer := put(t, d, second)
	if got := d.Org("bank-x"); len(got) != 1 || !bytes.Equal(got[0].Sealed, second) {
		t.Fatalf("Org(bank-x) = seqs %v, want the newer record only", seqs(got))
	}

	stale := []struct {
		name   string
		sealed []byte
		parts  []string
	}{
		{"older envelope", first, []string{"sequence 1", "2 is held", f.bankX.id.String(), "bank-x"}},
		{"lower sequence", f.sealed(t, f.bankX, func(a *discovery.Advertisement) { a.Seq = 1; a.Version = "older" }), []string{"sequence 1, 2 is held"}},
		{"equal sequence, other content", f.sealed(t, f.bankX, func(a *discovery.Advertisement) { a.Seq = 2; a.Services = []string{"payments"} }), []string{"sequence 2, 2 is held"}},
	}
	for _, tc := range stale {
		t.Run(tc.name, func(t *testing.T) {
			_, changed, err := d.Put(ctx, tc.sealed)
			if changed {
				t.Error("stale Put changed the directory")
			}
			wantErr(t, err, discovery.ErrStale, tc.parts...)
			if got := d.Org("bank-x"); len(got) != 1 || !bytes.Equal(got[0].Sealed, second) {
				t.Errorf("after a stale Put, Org(bank-x) = seqs %v, want the previous record", seqs(got))
			}
			if !d.Holds(newer) {
				t.Error("the previous record is no longer held")
			}
			stored, err := ds.Get(ctx, datastore.NewKey("bank-x").ChildString(f.bankX.id.String()))
			if err != nil || !bytes.Equal(stored, second) {
				t.Errorf("stored record changed (err %v)", err)
			}
		})
	}

	t.Run("invalid", func(t *testing.T) {
		forged := f.sealed(t, f.bankX, func(a *discovery.Advertisement) { a.Seq = 9; a.Org = "bank-y" })
		rec, changed, err := d.Put(ctx, forged)
		if rec != nil || changed {
			t.Error("a forged advertisement was taken")
		}
		wantErr(t, err, discovery.ErrForged)
		if len(d.Org("bank-y")) != 0 || len(d.List(discovery.Filter{})) != 1 {
			t.Error("a forged advertisement is listed")
		}
	})

	t.Run("Add", func(t *testing.T) {
		rec, err := f.verifier(false).Open(f.sealed(t, f.bankX, seq(3)))
		if err != nil {
			t.Fatal(err)
		}
		if !d.Newer(rec) {
			t.Error("Newer(seq 3) = false with seq 2 held")
		}
		if changed, err := d.Add(ctx, rec); err != nil || !changed {
			t.Fatalf("Add = %v, %v", changed, err)
		}
		if !d.Holds(rec) || d.Holds(newer) || d.Newer(rec) || d.Newer(newer) {
			t.Error("after Add: Holds/Newer disagree with the directory's contents")
		}
		if changed, err := d.Add(ctx, rec); err != nil || changed {
			t.Errorf("Add of the held record again = %v, %v; want no change", changed, err)
		}
		_, err = d.Add(ctx, newer)
		wantErr(t, err, discovery.ErrStale)
	})
}

func TestDirectoryQueries(t *testing.T) {
	f := newFixture(t)
	d := discovery.NewDirectory(newDatastore(), f.verifier(false), quiet)
	const assetTx = "/finp2p/asset/tx/1.0.0"
	x := put(t, d, f.sealed(t, f.bankX, nil)) // custody, ethereum
	x2 := put(t, d, f.sealed(t, f.bankX2, func(a *discovery.Advertisement) {
		a.Services, a.Ledgers = []string{"payments"}, []string{"canton"}
		a.Addrs = []ma.Multiaddr{ma.StringCast("/dns4/x2.bank-x.example/tcp/4001")}
	}))
	y := put(t, d, f.sealed(t, f.bankY, func(a *discovery.Advertisement) {
		a.Protocols = append(a.Protocols, assetTx)
	}))
	xs := sortedPeers(f.bankX, f.bankX2)
	all := append(xs, f.bankY.id)

	if got := d.Org("bank-x"); !equalPeers(got, xs...) {
		t.Errorf("Org(bank-x) = %v, want %v", peers(got), xs)
	}
	if got := d.Org("bank-y"); !equalPeers(got, f.bankY.id) {
		t.Errorf("Org(bank-y) = %v", peers(got))
	}
	if got := d.Org("bank-z"); len(got) != 0 {
		t.Errorf("Org(bank-z) = %v, want none", peers(got))
	}

	filters := []struct {
		f    discovery.Filter
		want []peer.ID
	}{
		{discovery.Filter{}, all},
		{discovery.Filter{Service: "custody"}, []peer.ID{f.bankX.id, f.bankY.id}},
		{discovery.Filter{Service: "payments"}, []peer.ID{f.bankX2.id}},
		{discovery.Filter{Service: "lending"}, nil},
		{discovery.Filter{Protocol: assetTx}, []peer.ID{f.bankY.id}},
		{discovery.Filter{Protocol: string(mandatory()[0])}, all},
		{discovery.Filter{Ledger: "canton"}, []peer.ID{f.bankX2.id}},
		{discovery.Filter{Ledger: "ethereum"}, []peer.ID{f.bankX.id, f.bankY.id}},
		{discovery.Filter{Service: "custody", Ledger: "canton"}, nil},
		{discovery.Filter{Service: "custody", Protocol: assetTx, Ledger: "ethereum"}, []peer.ID{f.bankY.id}},
	}
	for _, tc := range filters {
		if got := d.List(tc.f); !equalPeers(got, tc.want...) {
			t.Errorf("List(%+v) = %v, want %v", tc.f, peers(got), tc.want)
		}
	}
	// Listing is by org first: bank-x's nodes before bank-y's, whatever the
	// peer IDs.
	if got := d.List(discovery.Filter{}); got[0].Ad.Org != "bank-x" || got[2].Ad.Org != "bank-y" {
		t.Errorf("List is not ordered by org: %s, %s, %s", got[0].Ad.Org, got[1].Ad.Org, got[2].Ad.Org)
	}

	for _, rec := range []*discovery.Record{x, x2, y} {
		got, ok := d.Get(rec.Ad.Peer)
		if !ok || got != rec {
			t.Errorf("Get(%s) = %v, %v", rec.Ad.Peer, got, ok)
		}
		if !d.Holds(rec) {
			t.Errorf("Holds(%s) = false", rec.Ad.Peer)
		}
	}
	if _, ok := d.Get(peer.ID("unknown")); ok {
		t.Error("Get of an unknown peer found a record")
	}

	other, err := f.verifier(false).Open(f.sealed(t, f.bankX, func(a *discovery.Advertisement) { a.Seq = 5 }))
	if err != nil {
		t.Fatal(err)
	}
	if d.Holds(other) {
		t.Error("Holds of a record never put")
	}
	if !d.Newer(other) || d.Newer(x) {
		t.Error("Newer: want true for seq 5, false for the held record")
	}

	got := d.Peers()
	if len(got) != len(all) {
		t.Fatalf("Peers = %v", got)
	}
	for i, ai := range got {
		if ai.ID != all[i] {
			t.Errorf("Peers[%d] = %s, want %s", i, ai.ID, all[i])
		}
	}
	for _, ai := range got {
		if ai.ID == f.bankX2.id && (len(ai.Addrs) != 1 || ai.Addrs[0].String() != "/dns4/x2.bank-x.example/tcp/4001") {
			t.Errorf("Peers: addresses of bank-x's second node %v", ai.Addrs)
		}
		if ai.ID == f.bankX.id && len(ai.Addrs) != 2 {
			t.Errorf("Peers: addresses of bank-x's first node %v", ai.Addrs)
		}
	}
}

func TestDirectoryLoad(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ds := newDatastore()
	v := f.verifier(false)
	d := discovery.NewDirectory(ds, v, quiet)
	x := put(t, d, f.sealed(t, f.bankX, nil))
	y := put(t, d, f.sealed(t, f.bankY, nil))
	// bank-x's second node expires before the directory is loaded again.
	shortLived := put(t, d, f.sealed(t, f.bankX2, func(a *discovery.Advertisement) { a.Expires = f.clock.Now().Add(10 * time.Minute) }))
	// A valid advertisement of bank-y stored under bank-x.
	wrongKey := datastore.NewKey("bank-x").ChildString(f.bankY.id.String())
	if err := ds.Put(ctx, wrongKey, y.Sealed); err != nil {
		t.Fatal(err)
	}
	junkKey := datastore.NewKey("bank-z").ChildString("junk")
	if err := ds.Put(ctx, junkKey, []byte("junk")); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(20 * time.Minute)

	var log logBuffer
	fresh := discovery.NewDirectory(ds, v, log.logger())
	loaded, err := fresh.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if loaded != 2 {
		t.Errorf("Load loaded %d records, want 2", loaded)
	}
	if got := fresh.List(discovery.Filter{}); !equalPeers(got, f.bankX.id, f.bankY.id) {
		t.Errorf("after Load, List = %v, want bank-x's first node and bank-y's", peers(got))
	}
	if !fresh.Holds(x) || !fresh.Holds(y) || fresh.Holds(shortLived) {
		t.Error("after Load, Holds disagrees with what was stored")
	}
	for _, key := range []datastore.Key{wrongKey, junkKey, datastore.NewKey("bank-x").ChildString(f.bankX2.id.String())} {
		if has, err := ds.Has(ctx, key); err != nil || has {
			t.Errorf("Load kept %s in the datastore (err %v)", key, err)
		}
	}
	for _, key := range []datastore.Key{datastore.NewKey("bank-x").ChildString(f.bankX.id.String()), datastore.NewKey("bank-y").ChildString(f.bankY.id.String())} {
		if has, err := ds.Has(ctx, key); err != nil || !has {
			t.Errorf("Load deleted %s from the datastore (err %v)", key, err)
		}
	}
	logged := log.String()
	for _, want := range []string{"expired", "stored under " + wrongKey.String(), junkKey.String()} {
		if !strings.Contains(logged, want) {
			t.Errorf("Load's log does not say %q:\n%s", want, logged)
		}
	}

	// Loading again finds only what the first Load kept.
	again := discovery.NewDirectory(ds, v, quiet)
	if loaded, err := again.Load(ctx); err != nil || loaded != 2 {
		t.Errorf("second Load = %d, %v; want 2", loaded, err)
	}
}

func TestDirectoryPrune(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ds := newDatastore()
	d := discovery.NewDirectory(ds, f.verifier(false), quiet)
	x := put(t, d, f.sealed(t, f.bankX, nil))
	x2 := put(t, d, f.sealed(t, f.bankX2, func(a *discovery.Advertisement) { a.Expires = f.clock.Now().Add(10 * time.Minute) }))
	y := put(t, d, f.sealed(t, f.bankY, func(a *discovery.Advertisement) { a.Expires = f.clock.Now().Add(10 * time.Minute) }))
	keyOf := func(r *discovery.Record) datastore.Key {
		return datastore.NewKey(r.Ad.Org).ChildString(r.Ad.Peer.String())
	}

	f.clock.Add(20 * time.Minute)
	// Expired records are not served even before they are pruned.
	if got := d.List(discovery.Filter{}); !equalPeers(got, f.bankX.id) {
		t.Errorf("List with two records expired = %v", peers(got))
	}
	if _, ok := d.Get(f.bankX2.id); ok {
		t.Error("Get returns an expired record")
	}
	if len(d.Org("bank-y")) != 0 {
		t.Error("Org returns an expired record")
	}
	if err := d.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if d.Holds(x2) || d.Holds(y) || !d.Holds(x) {
		t.Error("Prune kept an expired record or dropped a current one")
	}
	for r, want := range map[*discovery.Record]bool{x: true, x2: false, y: false} {
		if has, err := ds.Has(ctx, keyOf(r)); err != nil || has != want {
			t.Errorf("after Prune, datastore has %s = %v (err %v), want %v", keyOf(r), has, err, want)
		}
	}
	// A pruned node may advertise again, even with a lower sequence number.
	if _, changed, err := d.Put(ctx, f.sealed(t, f.bankY, nil)); err != nil || !changed {
		t.Errorf("Put after Prune = %v, %v", changed, err)
	}

	f.clock.Add(2 * time.Hour)
	if err := d.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if d.Holds(x) || len(d.List(discovery.Filter{})) != 0 {
		t.Error("Prune kept expired records")
	}
	if !d.Newer(x) {
		t.Error("Newer is false for a node whose record was pruned")
	}
}

func TestDirectoryRevoked(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ds := newDatastore()
	trust := f.newTrust(t)
	v := f.verifierWith(trust, false)
	d := discovery.NewDirectory(ds, v, quiet)
	x := put(t, d, f.sealed(t, f.bankX, nil))
	x2 := put(t, d, f.sealed(t, f.bankX2, nil))
	put(t, d, f.sealed(t, f.bankY, nil))

	f.revoke(t, trust, f.bankX2)
	if got := d.Org("bank-x"); !equalPeers(got, f.bankX.id) {
		t.Errorf("Org(bank-x) after revoking its second node = %v", peers(got))
	}
	if got := d.List(discovery.Filter{Service: "custody"}); len(got) != 2 || got[0] != x {
		t.Errorf("List after revoking = %v", peers(got))
	}
	if _, ok := d.Get(f.bankX2.id); ok {
		t.Error("Get returns the revoked node's record")
	}
	for _, ai := range d.Peers() {
		if ai.ID == f.bankX2.id {
			t.Error("Peers lists the revoked node")
		}
	}
	_, _, err := d.Put(ctx, f.sealed(t, f.bankX2, func(a *discovery.Advertisement) { a.Seq = 2 }))
	wantErr(t, err, governance.ErrRevoked)

	if err := d.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if d.Holds(x2) || !d.Holds(x) {
		t.Error("Prune kept the revoked record or dropped a current one")
	}
	if has, _ := ds.Has(ctx, datastore.NewKey("bank-x").ChildString(f.bankX2.id.String())); has {
		t.Error("Prune left the revoked record in the datastore")
	}

	// Revoking the governance CA revokes every member it certified.
	now := f.clock.Now()
	if err := f.net.Founding.Revoke(f.net.Governance.Certificate().SerialNumber, 1, now.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	crl, err := f.net.Founding.CRL(now.Add(-time.Second), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := trust.AddCRL(crl, [][]byte{f.net.Founding.Certificate().Raw}, now); err != nil || !ok {
		t.Fatalf("AddCRL of the founding root's list = %v, %v", ok, err)
	}
	if got := d.List(discovery.Filter{}); len(got) != 0 {
		t.Errorf("List after revoking the governance CA = %v, want none", peers(got))
	}
	if got := d.Peers(); len(got) != 0 {
		t.Errorf("Peers after revoking the governance CA = %v, want none", got)
	}
	_, _, err = d.Put(ctx, f.sealed(t, f.bankY, func(a *discovery.Advertisement) { a.Seq = 2 }))
	wantErr(t, err, governance.ErrRevoked, "governance CA")
}

// TestDirectoryLoadRevoked checks that a record whose signer was revoked
// while the node was down is dropped on Load.
func TestDirectoryLoadRevoked(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ds := newDatastore()
	put(t, discovery.NewDirectory(ds, f.verifier(false), quiet), f.sealed(t, f.bankX, nil))
	put(t, discovery.NewDirectory(ds, f.verifier(false), quiet), f.sealed(t, f.bankY, nil))

	d := discovery.NewDirectory(ds, f.verifierWith(f.revokedTrust(t, f.bankX), false), quiet)
	if loaded, err := d.Load(ctx); err != nil || loaded != 1 {
		t.Fatalf("Load = %d, %v; want 1", loaded, err)
	}
	if got := d.List(discovery.Filter{}); !equalPeers(got, f.bankY.id) {
		t.Errorf("List = %v, want bank-y's node only", peers(got))
	}
}

// TestDirectoryConcurrent puts, reads and prunes from several goroutines;
// run with -race. The newest advertisement of each node must win.
func TestDirectoryConcurrent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	d := discovery.NewDirectory(newDatastore(), f.verifier(false), quiet)
	const n = 12
	var sealed [][]byte
	for i := uint64(1); i <= n; i++ {
		for _, m := range []member{f.bankX, f.bankX2, f.bankY} {
			sealed = append(sealed, f.sealed(t, m, func(a *discovery.Advertisement) { a.Seq = i }))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(sealed))
	for i := range 4 {
		wg.Go(func() {
			for j := i; j < len(sealed); j += 4 {
				if _, _, err := d.Put(ctx, sealed[j]); err != nil && !errors.Is(err, discovery.ErrStale) {
					errs <- err
				}
			}
		})
		wg.Go(func() {
			for range n {
				d.List(discovery.Filter{Service: "custody"})
				d.Org("bank-x")
				d.Peers()
				d.Get(f.bankY.id)
				if err := d.Prune(ctx); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// A stale Put never replaces a newer record, whatever the interleaving.
	for _, r := range d.List(discovery.Filter{}) {
		if r.Ad.Seq != n {
			t.Errorf("%s holds seq %d, want %d", r.Ad.Peer, r.Ad.Seq, n)
		}
	}
}
