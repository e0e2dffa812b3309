package governance

import (
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"
)

func TestAddCRL(t *testing.T) {
	n := newTestNet(t)
	_, chain, m := certify(t, n.gov, "bank-x", RoleMember)
	if err := n.gov.Revoke(m.Serial, 1, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	govChain := derChain([]*x509.Certificate{n.gov.Certificate(), n.root.Certificate()})
	older, err := n.gov.CRL(t0.Add(time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	newer, err := n.gov.CRL(t0.Add(2*time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	// An impostor founding root with the same name as the real one.
	impostor, err := InitFoundingAuthority(filepath.Join(t.TempDir(), "impostor"), testNetID, "founder", t0, 10*year)
	if err != nil {
		t.Fatal(err)
	}
	impostorCRL, err := impostor.CRL(t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// A governance CA of a foreign network.
	foreign := newTestNet(t)
	foreignCRL, err := foreign.gov.CRL(t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rootCRL, err := n.root.CRL(t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		crl     []byte
		chain   [][]byte
		want    error
		stored  bool
		revoked bool // whether the leaf is revoked afterwards
	}{
		{"newer CRL of the governance CA", newer, govChain, nil, true, true},
		{"older CRL number not applied", older, govChain, nil, false, true},
		{"same CRL again", newer, govChain, nil, false, true},
		{"CRL of the founding root", rootCRL, derChain([]*x509.Certificate{n.root.Certificate()}), nil, true, true},
		{"CRL signed by a foreign key under the root's name", impostorCRL, derChain([]*x509.Certificate{n.root.Certificate()}), ErrBadCRL, false, true},
		{"issuer is not a CA", newer, derChain([]*x509.Certificate{chain[0], n.gov.Certificate(), n.root.Certificate()}), ErrUntrustedChain, false, true},
		{"CRL of an unknown governance CA", foreignCRL, derChain([]*x509.Certificate{foreign.gov.Certificate(), foreign.root.Certificate()}), ErrUntrustedChain, false, true},
		{"issuer chain that does not match the CRL", rootCRL, govChain, ErrBadCRL, false, true},
		{"tampered signature", tamper(newer), govChain, ErrBadCRL, false, true},
		{"garbage", []byte("not a CRL"), govChain, ErrBadCRL, false, true},
		{"no issuer chain", newer, nil, ErrUntrustedChain, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stored, err := n.store.AddCRL(tc.crl, tc.chain, t0.Add(3*time.Hour))
			if err != nil {
				t.Log(err)
			}
			checkErr(t, err, tc.want)
			if stored != tc.stored {
				t.Fatalf("stored = %v, want %v", stored, tc.stored)
			}
			revoked, at := n.store.IsRevoked(chain[0])
			if revoked != tc.revoked {
				t.Fatalf("IsRevoked = %v, want %v", revoked, tc.revoked)
			}
			if revoked && !at.Equal(t0.Add(time.Minute)) {
				t.Fatalf("revoked at %v, want %v", at, t0.Add(time.Minute))
			}
		})
	}

	// The stored CRLs are the newest per issuer and can seed another store.
	crls := n.store.CRLs()
	if len(crls) != 2 {
		t.Fatalf("%d stored CRLs, want 2 (governance CA and root)", len(crls))
	}
	fresh, err := NewTrustStore([]*x509.Certificate{n.root.Certificate()})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range crls {
		if ok, err := fresh.AddCRL(c.DER, c.IssuerChain, t0.Add(3*time.Hour)); err != nil || !ok {
			t.Fatalf("re-adding CRL %s: %v, %v", c.Number, ok, err)
		}
	}
	if _, err := fresh.Verify(chain, t0.Add(3*time.Hour)); err == nil {
		t.Fatal("revoked leaf verified in a store seeded from CRLs()")
	}
}

func TestAddCRLFromExpiredGovernanceCA(t *testing.T) {
	n := newTestNet(t)
	crl, err := n.gov.CRL(t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, err = n.store.AddCRL(crl, derChain([]*x509.Certificate{n.gov.Certificate(), n.root.Certificate()}), n.gov.Certificate().NotAfter.Add(time.Hour))
	checkErr(t, err, ErrExpired, "gov-a governance CA")
}

// tamper flips a bit of the last byte, which for Ed25519 is in the signature.
func tamper(der []byte) []byte {
	out := append([]byte(nil), der...)
	out[len(out)-1] ^= 0x01
	return out
}
