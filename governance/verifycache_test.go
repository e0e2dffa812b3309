package governance

import (
	"crypto/ed25519"
	"crypto/x509"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// revokeLeaf revokes the leaf of chain at the governance CA of n and gives
// n's store the CA's new revocation list, numbered by the CRL's time.
func revokeLeaf(t testing.TB, n *testNet, chain []*x509.Certificate, at time.Time) {
	t.Helper()
	if err := n.gov.Revoke(chain[0].SerialNumber, 1, at); err != nil {
		t.Fatal(err)
	}
	crl, err := n.gov.CRL(at, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	govChain := derChain([]*x509.Certificate{n.gov.Certificate(), n.root.Certificate()})
	if stored, err := n.store.AddCRL(crl, govChain, at); err != nil || !stored {
		t.Fatalf("AddCRL = %v, %v", stored, err)
	}
}

// sameMember compares two members, their chains by DER.
func sameMember(a, b Member) bool {
	der := func(m Member) [][]byte { return derChain(m.Chain) }
	return a.OrgID == b.OrgID && a.FinID == b.FinID && a.PeerID == b.PeerID && a.Role == b.Role &&
		a.NotAfter.Equal(b.NotAfter) && a.Serial.Cmp(b.Serial) == 0 &&
		slices.EqualFunc(der(a), der(b), slices.Equal)
}

func TestVerifyCacheHit(t *testing.T) {
	n := newTestNet(t)
	_, chain, _ := certify(t, n.gov, "bank-x", RoleMember)
	der := derChain(chain)
	now := t0.Add(time.Hour)

	first, err := n.store.VerifyDER(der, now)
	if err != nil {
		t.Fatal(err)
	}
	uncached, err := n.store.Verify(chain, now)
	if err != nil {
		t.Fatal(err)
	}
	if !sameMember(first, uncached) {
		t.Fatalf("VerifyDER = %+v, Verify = %+v", first, uncached)
	}
	// A caller changing its Member does not change what the cache holds.
	first.Chain[0] = nil
	first.Serial.SetInt64(-1)
	first.OrgID = "changed"

	hits := n.store.cache.hits.Load()
	for _, at := range []time.Time{now, now.Add(time.Minute), chain[0].NotBefore, chain[0].NotAfter} {
		again, err := n.store.VerifyDER(der, at)
		if err != nil {
			t.Fatalf("at %s: %v", at, err)
		}
		if !sameMember(again, uncached) {
			t.Fatalf("cached VerifyDER at %s = %+v, want %+v", at, again, uncached)
		}
	}
	if got := n.store.cache.hits.Load() - hits; got != 4 {
		t.Errorf("%d cache hits, want 4", got)
	}

	// VerifySigner and VerifyPeer go through the cache and still check the
	// key: another peer's key is refused on a hit.
	otherKey := mustKey(t)
	if _, err := n.store.VerifyPeer(der, otherKey.Public().(ed25519.PublicKey), now); err == nil {
		t.Fatal("cached chain accepted for another key")
	}
}

func TestVerifyCacheRevocation(t *testing.T) {
	n := newTestNet(t)
	_, chain, _ := certify(t, n.gov, "bank-x", RoleMember)
	_, other, _ := certify(t, n.gov, "bank-y", RoleMember)
	now := t0.Add(time.Hour)
	for _, c := range [][]*x509.Certificate{chain, other} {
		for range 2 {
			if _, err := n.store.VerifyDER(derChain(c), now); err != nil {
				t.Fatal(err)
			}
		}
	}
	revokeLeaf(t, n, chain, now.Add(time.Minute))
	_, err := n.store.VerifyDER(derChain(chain), now.Add(2*time.Minute))
	checkErr(t, err, ErrRevoked, describe(chain[0]))
	// A chain the list does not name verifies again and is cached again.
	for range 2 {
		if _, err := n.store.VerifyDER(derChain(other), now.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestVerifyCacheValidity checks that a cached chain is refused at times
// when one of its certificates is not valid, the governance CA included
// when it expires before the leaf.
func TestVerifyCacheValidity(t *testing.T) {
	n := newTestNet(t)
	_, chain, _ := certify(t, n.gov, "bank-x", RoleMember)
	// A leaf that outlives its governance CA (5 years from t0).
	key := mustKey(t)
	tmpl := leafTemplate(t, key.Public().(ed25519.PublicKey), "bank-x", RoleMember)
	tmpl.NotBefore, tmpl.NotAfter = t0, t0.Add(7*year)
	long := []*x509.Certificate{signByHand(t, tmpl, n.gov.Certificate(), key.Public().(ed25519.PublicKey), n.govKey), n.gov.Certificate()}

	tests := []struct {
		name  string
		chain []*x509.Certificate
		at    time.Time
		want  error
	}{
		{"leaf expired", chain, chain[0].NotAfter.Add(time.Nanosecond), ErrExpired},
		{"leaf not yet valid", chain, chain[0].NotBefore.Add(-time.Nanosecond), ErrNotYetValid},
		{"CA expired before the leaf", long, n.gov.Certificate().NotAfter.Add(time.Second), ErrExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			der := derChain(tc.chain)
			if _, err := n.store.VerifyDER(der, t0.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			_, err := n.store.VerifyDER(der, tc.at)
			_, uncached := n.store.Verify(tc.chain, tc.at)
			checkErr(t, err, tc.want)
			if err.Error() != uncached.Error() {
				t.Errorf("error %q, uncached %q", err, uncached)
			}
			// And it is good again at a time it is valid.
			if _, err := n.store.VerifyDER(der, t0.Add(2*time.Hour)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestVerifyCacheBounded(t *testing.T) {
	n := newTestNet(t)
	store, err := NewTrustStore([]*x509.Certificate{n.root.Certificate()}, WithVerifyCache(4))
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Hour)
	var chains [][][]byte
	for i := range 10 {
		_, c, _ := certify(t, n.gov, fmt.Sprintf("bank-%d", i), RoleMember)
		chains = append(chains, derChain(c))
	}
	for round := range 3 {
		for i, der := range chains {
			m, err := store.VerifyDER(der, now)
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("bank-%d", i); m.OrgID != want {
				t.Fatalf("round %d: chain %d verified as org %q", round, i, m.OrgID)
			}
			if l := store.cache.len(); l > 4 {
				t.Fatalf("cache holds %d entries, bound 4", l)
			}
		}
	}
	// The two latest chains are still cached.
	hits := store.cache.hits.Load()
	for _, der := range chains[len(chains)-2:] {
		if _, err := store.VerifyDER(der, now); err != nil {
			t.Fatal(err)
		}
	}
	if got := store.cache.hits.Load() - hits; got != 2 {
		t.Errorf("%d hits for the two latest chains, want 2", got)
	}

	off, err := NewTrustStore([]*x509.Certificate{n.root.Certificate()}, WithVerifyCache(0))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := off.VerifyDER(chains[0], now); err != nil {
			t.Fatal(err)
		}
	}
	if off.cache != nil {
		t.Error("WithVerifyCache(0) made a cache")
	}
	if _, err := NewTrustStore([]*x509.Certificate{n.root.Certificate()}, WithVerifyCache(-1)); err == nil {
		t.Error("WithVerifyCache(-1) accepted")
	}
}

// TestVerifyCacheConcurrent verifies chains from many goroutines while
// revocation lists arrive: once AddCRL has returned, the revoked chain is
// refused by every goroutine.
func TestVerifyCacheConcurrent(t *testing.T) {
	n := newTestNet(t)
	store, err := NewTrustStore([]*x509.Certificate{n.root.Certificate()}, WithVerifyCache(16))
	if err != nil {
		t.Fatal(err)
	}
	n.store = store
	var chains [][]*x509.Certificate
	for i := range 5 {
		_, c, _ := certify(t, n.gov, fmt.Sprintf("bank-%d", i), RoleMember)
		chains = append(chains, c)
	}
	now := t0.Add(time.Hour)
	revokedAt := now.Add(time.Minute)
	var revoked sync.WaitGroup
	revoked.Add(1)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				j := (g + i) % len(chains)
				c := chains[j]
				m, err := store.VerifyDER(derChain(c), now.Add(2*time.Minute))
				switch {
				case err == nil && m.Serial.Cmp(c[0].SerialNumber) != 0:
					t.Errorf("chain of serial %s verified as serial %s", c[0].SerialNumber, m.Serial)
					return
				case err != nil && j != 0: // chain 0 may be revoked already
					t.Errorf("chain %d: %v", j, err)
					return
				}
			}
			revoked.Wait()
			if _, err := store.VerifyDER(derChain(chains[0]), now.Add(2*time.Minute)); err == nil {
				t.Error("revoked chain verified after AddCRL returned")
			}
		})
	}
	revokeLeaf(t, n, chains[0], revokedAt)
	revoked.Done()
	wg.Wait()
}
