package resource_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/testnet"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/resource"
)

// advertSigner is a certified node that signs resource advertisements.
type advertSigner struct {
	key   crypto.PrivKey
	id    peer.ID
	chain [][]byte
}

type advertFixture struct {
	verifier *resource.AdvertisementVerifier
	now      time.Time
	bankX    advertSigner
	bankY    advertSigner
}

func newAdvertFixture(t *testing.T) *advertFixture {
	t.Helper()
	net := testnet.NewEmpty(t)
	g, err := governance.LoadGenesis(net.GenesisFile)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := g.RootCertificates()
	if err != nil {
		t.Fatal(err)
	}
	trust, err := governance.NewTrustStore(roots)
	if err != nil {
		t.Fatal(err)
	}
	f := &advertFixture{now: time.Now().Truncate(time.Second)}
	f.verifier = &resource.AdvertisementVerifier{Network: testnet.NetworkName, Trust: trust, Now: func() time.Time { return f.now }}
	signer := func(org string) advertSigner {
		repo := net.Repo(org, governance.RoleMember, net.Governance)
		ed, err := governance.ReadKeyFile(filepath.Join(repo, node.KeyFileName))
		if err != nil {
			t.Fatal(err)
		}
		key, err := crypto.UnmarshalEd25519PrivateKey(ed)
		if err != nil {
			t.Fatal(err)
		}
		certs, err := governance.LoadCertificatesPEM(filepath.Join(repo, node.CertFileName))
		if err != nil {
			t.Fatal(err)
		}
		s := advertSigner{key: key}
		s.id, _ = peer.IDFromPrivateKey(key)
		for _, c := range certs {
			s.chain = append(s.chain, c.Raw)
		}
		return s
	}
	f.bankX, f.bankY = signer("bank-x"), signer("bank-y")
	return f
}

func (f *advertFixture) seal(t *testing.T, s advertSigner, id string, edit func(*resource.Advertisement)) []byte {
	t.Helper()
	ad := &resource.Advertisement{
		Network: testnet.NetworkName, Resource: resource.MustParseID(id), Topic: "updates",
		Peer: s.id, Seq: 1, Expires: f.now.Add(time.Hour), Chain: s.chain,
	}
	if edit != nil {
		edit(ad)
	}
	sealed, err := resource.SealAdvertisement(ad, s.key)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

func TestAdvertisementVerifier(t *testing.T) {
	f := newAdvertFixture(t)
	const asset = "bank-x:102:asset-1"
	sa, err := f.verifier.Open(f.seal(t, f.bankX, asset, nil))
	if err != nil {
		t.Fatal(err)
	}
	if sa.Signer.OrgID != "bank-x" || sa.Ad.Resource.String() != asset || sa.Ad.Topic != "updates" {
		t.Fatalf("opened %+v signed by %+v", sa.Ad, sa.Signer)
	}
	cases := []struct {
		name   string
		sealed []byte
		want   error
		says   string
	}{
		{"another org's resource", f.seal(t, f.bankY, asset, nil), resource.ErrNotOwner, `belongs to org "bank-x", signed by a node of org "bank-y"`},
		{"peer not the signer", f.seal(t, f.bankY, asset, func(a *resource.Advertisement) { a.Peer = f.bankX.id }), resource.ErrNotOwner, "signed by another key"},
		{"another node's chain", f.seal(t, f.bankY, "bank-y:102:a", func(a *resource.Advertisement) { a.Chain = f.bankX.chain }), governance.ErrKeyMismatch, ""},
		{"expired", f.seal(t, f.bankX, asset, func(a *resource.Advertisement) { a.Expires = f.now.Add(-time.Second) }), resource.ErrAdvertExpired, "expired"},
		{"too far ahead", f.seal(t, f.bankX, asset, func(a *resource.Advertisement) { a.Expires = f.now.Add(30 * 24 * time.Hour) }), resource.ErrBadAdvertisement, "ahead"},
		{"seq 0", f.seal(t, f.bankX, asset, func(a *resource.Advertisement) { a.Seq = 0 }), resource.ErrBadAdvertisement, "sequence"},
		{"other network", f.seal(t, f.bankX, asset, func(a *resource.Advertisement) { a.Network = "other" }), resource.ErrWrongNetwork, `"other"`},
		{"topic too long", f.seal(t, f.bankX, asset, func(a *resource.Advertisement) { a.Topic = strings.Repeat("t", resource.MaxTopicLen+1) }), resource.ErrBadAdvertisement, "topic"},
		{"oversized", f.seal(t, f.bankX, asset, func(a *resource.Advertisement) { a.Chain = append(a.Chain, make([]byte, 70<<10)) }), resource.ErrTooLarge, "bytes"},
		{"garbage", []byte("not an envelope"), resource.ErrBadAdvertisement, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.verifier.Open(c.sealed)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("err = %v, want %v saying %q", err, c.want, c.says)
			}
		})
	}
}

func TestResourceDHTValidator(t *testing.T) {
	f := newAdvertFixture(t)
	v := resource.DHTValidator{V: f.verifier}
	id := resource.MustParseID("bank-x:102:asset-1")
	key := resource.DHTKey(id)
	older := f.seal(t, f.bankX, id.String(), nil)
	newer := f.seal(t, f.bankX, id.String(), func(a *resource.Advertisement) { a.Seq = 2 })
	if err := v.Validate(key, newer); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		key   string
		value []byte
	}{
		"under another resource's key": {resource.DHTKey(resource.MustParseID("bank-x:102:asset-2")), newer},
		"outside the namespace":        {"/finp2p-org/bank-x", newer},
		"bad id in the key":            {"/finp2p-res/bank-x:1:asset-1", newer},
		"restricted":                   {key, f.seal(t, f.bankX, id.String(), func(a *resource.Advertisement) { a.Restricted = true })},
		"signed by another org":        {key, f.seal(t, f.bankY, id.String(), func(a *resource.Advertisement) { a.Seq = 9 })},
	} {
		if err := v.Validate(c.key, c.value); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	forged := f.seal(t, f.bankY, id.String(), func(a *resource.Advertisement) { a.Seq = 9 })
	if i, err := v.Select(key, [][]byte{older, forged, newer}); err != nil || i != 2 {
		t.Fatalf("Select = %d, %v; want the newer valid record (2)", i, err)
	}
	if _, err := v.Select(key, [][]byte{forged}); err == nil {
		t.Fatal("Select of only a forged record succeeded")
	}
}

func TestAdvertisementStore(t *testing.T) {
	f := newAdvertFixture(t)
	ds := dssync.MutexWrap(datastore.NewMapDatastore())
	ctx := context.Background()
	store := resource.NewAdvertisementStore(ds, f.verifier, nil)
	id := resource.MustParseID("bank-x:102:asset-1")
	first := f.seal(t, f.bankX, id.String(), func(a *resource.Advertisement) { a.Seq = 5 })
	if _, changed, err := store.Put(ctx, first); err != nil || !changed {
		t.Fatalf("first put: changed=%v err=%v", changed, err)
	}
	if _, changed, err := store.Put(ctx, first); err != nil || changed {
		t.Fatalf("same envelope again: changed=%v err=%v", changed, err)
	}
	stale := f.seal(t, f.bankX, id.String(), func(a *resource.Advertisement) { a.Seq = 4; a.Topic = "other" })
	if _, _, err := store.Put(ctx, stale); !errors.Is(err, resource.ErrStale) {
		t.Fatalf("stale put: %v", err)
	}
	if _, _, err := store.Put(ctx, f.seal(t, f.bankY, id.String(), func(a *resource.Advertisement) { a.Seq = 9 })); !errors.Is(err, resource.ErrNotOwner) {
		t.Fatalf("forged put: %v", err)
	}
	if sa, ok := store.Get(id); !ok || sa.Ad.Seq != 5 || sa.Ad.Topic != "updates" {
		t.Fatalf("held after refusals: %+v", sa)
	}

	// A new store over the same datastore holds the same; an expired record
	// is dropped when loading.
	again := resource.NewAdvertisementStore(ds, f.verifier, nil)
	if n, err := again.Load(ctx); err != nil || n != 1 {
		t.Fatalf("load: %d, %v", n, err)
	}
	if got := again.Owned("bank-x"); len(got) != 1 || got[0].Ad.Resource != id {
		t.Fatalf("owned after load: %v", got)
	}
	f.now = f.now.Add(2 * time.Hour)
	if n, err := resource.NewAdvertisementStore(ds, f.verifier, nil).Load(ctx); err != nil || n != 0 {
		t.Fatalf("load after expiry: %d, %v", n, err)
	}
	if has, _ := ds.Has(ctx, datastore.NewKey(id.String())); has {
		t.Fatal("expired record not deleted")
	}
}
