package governance

import (
	"crypto/ed25519"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestVerifyChainRules(t *testing.T) {
	n := newTestNet(t)
	tests := []struct {
		name string
		// run returns the result of verifying the case's chain.
		run       func(t *testing.T) (Member, error)
		want      error
		wantTexts []string
		wantRole  Role
		wantOrg   string
	}{
		{
			name: "member signed by founding root",
			run: func(t *testing.T) (Member, error) {
				_, chain, _ := certify(t, n.root, "bank-x", RoleMember)
				return n.store.Verify(chain, t0.Add(time.Hour))
			},
			wantRole: RoleMember, wantOrg: "bank-x",
		},
		{
			name: "founding node signed by its founding root",
			run: func(t *testing.T) (Member, error) {
				_, chain, _ := certify(t, n.root, "founder", RoleFounding)
				return n.store.Verify(chain, t0.Add(time.Hour))
			},
			wantRole: RoleFounding, wantOrg: "founder",
		},
		{
			name: "member signed by governance CA",
			run: func(t *testing.T) (Member, error) {
				_, chain, _ := certify(t, n.gov, "bank-y", RoleMember)
				return n.store.Verify(chain, t0.Add(time.Hour))
			},
			wantRole: RoleMember, wantOrg: "bank-y",
		},
		{
			name: "governance node under its own governance CA",
			run: func(t *testing.T) (Member, error) {
				_, chain, _ := certify(t, n.gov, "gov-a", RoleGovernance)
				return n.store.Verify(chain, t0.Add(time.Hour))
			},
			wantRole: RoleGovernance, wantOrg: "gov-a",
		},
		{
			name: "chain that also carries the root",
			run: func(t *testing.T) (Member, error) {
				_, chain, _ := certify(t, n.gov, "bank-y", RoleMember)
				return n.store.Verify(append(chain, n.root.Certificate()), t0.Add(time.Hour))
			},
			wantRole: RoleMember, wantOrg: "bank-y",
		},
		{
			name: "founding-role leaf under governance CA",
			run: func(t *testing.T) (Member, error) {
				k := mustKey(t)
				leaf := signByHand(t, leafTemplate(t, k.Public().(ed25519.PublicKey), "gov-a", RoleFounding), n.gov.Certificate(), k.Public().(ed25519.PublicKey), n.govKey)
				return n.store.Verify([]*x509.Certificate{leaf, n.gov.Certificate()}, t0.Add(time.Hour))
			},
			want: ErrRoleNotAllowed, wantTexts: []string{"founding-role"},
		},
		{
			name: "governance-role leaf of another org under governance CA",
			run: func(t *testing.T) (Member, error) {
				k := mustKey(t)
				leaf := signByHand(t, leafTemplate(t, k.Public().(ed25519.PublicKey), "bank-z", RoleGovernance), n.gov.Certificate(), k.Public().(ed25519.PublicKey), n.govKey)
				return n.store.Verify([]*x509.Certificate{leaf, n.gov.Certificate()}, t0.Add(time.Hour))
			},
			want: ErrRoleNotAllowed, wantTexts: []string{"bank-z"},
		},
		{
			name: "founding-role leaf of another org under founding root",
			run: func(t *testing.T) (Member, error) {
				k := mustKey(t)
				other, err := InitFoundingAuthority(filepath.Join(t.TempDir(), "r2"), testNetID, "founder-2", t0, 10*year)
				if err != nil {
					t.Fatal(err)
				}
				store, err := NewTrustStore([]*x509.Certificate{n.root.Certificate(), other.Certificate()})
				if err != nil {
					t.Fatal(err)
				}
				leaf := signByHand(t, leafTemplate(t, k.Public().(ed25519.PublicKey), "founder", RoleFounding), other.Certificate(), k.Public().(ed25519.PublicKey), other.key)
				return store.Verify([]*x509.Certificate{leaf}, t0.Add(time.Hour))
			},
			want: ErrRoleNotAllowed, wantTexts: []string{"founder-2"},
		},
		{
			name: "member signed by a member",
			run: func(t *testing.T) (Member, error) {
				parentKey, parentChain, _ := certify(t, n.gov, "bank-x", RoleMember)
				k := mustKey(t)
				leaf := signByHand(t, leafTemplate(t, k.Public().(ed25519.PublicKey), "bank-x", RoleMember), parentChain[0], k.Public().(ed25519.PublicKey), parentKey)
				return n.store.Verify(append([]*x509.Certificate{leaf}, parentChain...), t0.Add(time.Hour))
			},
			want: ErrUntrustedChain,
		},
		{
			name: "governance CA signed by a governance CA",
			run: func(t *testing.T) (Member, error) {
				subKey := mustKey(t)
				subPub := subKey.Public().(ed25519.PublicKey)
				sub := signByHand(t, &x509.Certificate{
					Subject:               pkix.Name{Organization: []string{"gov-b"}, CommonName: "gov-b governance CA"},
					KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
					BasicConstraintsValid: true, IsCA: true, MaxPathLen: 0, MaxPathLenZero: true,
					SubjectKeyId: keyID(subPub),
					URIs:         []*url.URL{sanURI(sanOrg, "gov-b")},
				}, n.gov.Certificate(), subPub, n.govKey)
				k := mustKey(t)
				leaf := signByHand(t, leafTemplate(t, k.Public().(ed25519.PublicKey), "bank-x", RoleMember), sub, k.Public().(ed25519.PublicKey), subKey)
				return n.store.Verify([]*x509.Certificate{leaf, sub, n.gov.Certificate()}, t0.Add(time.Hour))
			},
			want: ErrUntrustedChain,
		},
		{
			name: "expired leaf",
			run: func(t *testing.T) (Member, error) {
				_, chain, m := certify(t, n.gov, "bank-x", RoleMember)
				return n.store.Verify(chain, m.NotAfter.Add(time.Second))
			},
			want: ErrExpired, wantTexts: []string{"expired at"},
		},
		{
			name: "leaf not yet valid",
			run: func(t *testing.T) (Member, error) {
				_, chain, _ := certify(t, n.gov, "bank-x", RoleMember)
				return n.store.Verify(chain, t0.Add(-time.Minute))
			},
			want: ErrNotYetValid, wantTexts: []string{"valid only from"},
		},
		{
			name: "expired governance CA",
			run: func(t *testing.T) (Member, error) {
				k := mustKey(t)
				pub := k.Public().(ed25519.PublicKey)
				tmpl := leafTemplate(t, pub, "bank-x", RoleMember)
				tmpl.NotBefore, tmpl.NotAfter = t0, t0.Add(20*year)
				leaf := signByHand(t, tmpl, n.gov.Certificate(), pub, n.govKey)
				return n.store.Verify([]*x509.Certificate{leaf, n.gov.Certificate()}, n.gov.Certificate().NotAfter.Add(time.Hour))
			},
			want: ErrExpired, wantTexts: []string{"gov-a governance CA"},
		},
		{
			name: "revoked leaf",
			run: func(t *testing.T) (Member, error) {
				store, err := NewTrustStore([]*x509.Certificate{n.root.Certificate()})
				if err != nil {
					t.Fatal(err)
				}
				_, chain, m := certify(t, n.gov, "bank-x", RoleMember)
				if err := n.gov.Revoke(m.Serial, 1, t0.Add(time.Minute)); err != nil {
					t.Fatal(err)
				}
				addCRL(t, store, n.gov, t0.Add(2*time.Minute))
				return store.Verify(chain, t0.Add(time.Hour))
			},
			want: ErrRevoked, wantTexts: []string{"was revoked by"},
		},
		{
			name: "revoked governance CA revokes its members",
			run: func(t *testing.T) (Member, error) {
				store, err := NewTrustStore([]*x509.Certificate{n.root.Certificate()})
				if err != nil {
					t.Fatal(err)
				}
				gov := newGovernance(t, n.root, mustKey(t), "gov-c")
				_, chain, _ := certify(t, gov, "bank-x", RoleMember)
				if _, err := store.Verify(chain, t0.Add(time.Hour)); err != nil {
					t.Fatalf("before revocation: %v", err)
				}
				if err := n.root.Revoke(gov.Certificate().SerialNumber, 5, t0.Add(time.Minute)); err != nil {
					t.Fatal(err)
				}
				addCRL(t, store, n.root, t0.Add(2*time.Minute))
				return store.Verify(chain, t0.Add(time.Hour))
			},
			want: ErrRevoked, wantTexts: []string{"gov-c governance CA"},
		},
		{
			name: "leaf whose peer SAN is not its key",
			run: func(t *testing.T) (Member, error) {
				k, other := mustKey(t), mustKey(t)
				tmpl := leafTemplate(t, other.Public().(ed25519.PublicKey), "bank-x", RoleMember)
				leaf := signByHand(t, tmpl, n.gov.Certificate(), k.Public().(ed25519.PublicKey), n.govKey)
				return n.store.Verify([]*x509.Certificate{leaf, n.gov.Certificate()}, t0.Add(time.Hour))
			},
			want: ErrKeyMismatch,
		},
		{
			name: "leaf without FinID",
			run: func(t *testing.T) (Member, error) {
				k := mustKey(t)
				pub := k.Public().(ed25519.PublicKey)
				tmpl := leafTemplate(t, pub, "bank-x", RoleMember)
				tmpl.URIs = append(tmpl.URIs[:1], tmpl.URIs[2:]...)
				leaf := signByHand(t, tmpl, n.gov.Certificate(), pub, n.govKey)
				return n.store.Verify([]*x509.Certificate{leaf, n.gov.Certificate()}, t0.Add(time.Hour))
			},
			want: ErrUntrustedChain, wantTexts: []string{"finp2p:finid"},
		},
		{
			name: "VerifyPeer with another peer's key",
			run: func(t *testing.T) (Member, error) {
				_, chain, _ := certify(t, n.gov, "bank-x", RoleMember)
				return n.store.VerifyPeer(derChain(chain), mustKey(t).Public().(ed25519.PublicKey), t0.Add(time.Hour))
			},
			want: ErrKeyMismatch, wantTexts: []string{"certificate key is not the peer's key"},
		},
		{
			name: "VerifyPeer with the peer's key",
			run: func(t *testing.T) (Member, error) {
				k, chain, _ := certify(t, n.gov, "bank-x", RoleMember)
				return n.store.VerifyPeer(derChain(chain), k.Public().(ed25519.PublicKey), t0.Add(time.Hour))
			},
			wantRole: RoleMember, wantOrg: "bank-x",
		},
		{
			name: "chain to a foreign root",
			run: func(t *testing.T) (Member, error) {
				foreign := newTestNet(t)
				_, chain, _ := certify(t, foreign.gov, "bank-x", RoleMember)
				return n.store.Verify(chain, t0.Add(time.Hour))
			},
			want: ErrUntrustedChain, wantTexts: []string{"unknown authority"},
		},
		{
			name: "leaf without its governance CA",
			run: func(t *testing.T) (Member, error) {
				_, chain, _ := certify(t, n.gov, "bank-x", RoleMember)
				return n.store.Verify(chain[:1], t0.Add(time.Hour))
			},
			want: ErrUntrustedChain,
		},
		{
			name: "empty chain",
			run: func(t *testing.T) (Member, error) {
				return n.store.VerifyDER(nil, t0)
			},
			want: ErrUntrustedChain,
		},
		{
			name: "garbage DER",
			run: func(t *testing.T) (Member, error) {
				return n.store.VerifyDER([][]byte{[]byte("not a certificate")}, t0)
			},
			want: ErrUntrustedChain, wantTexts: []string{"certificate 0"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tc.run(t)
			if err != nil {
				t.Log(err)
			}
			checkErr(t, err, tc.want, tc.wantTexts...)
			if tc.want != nil {
				return
			}
			if m.Role != tc.wantRole || m.OrgID != tc.wantOrg {
				t.Fatalf("member = %s of %s, want %s of %s", m.Role, m.OrgID, tc.wantRole, tc.wantOrg)
			}
			if err := validateFinID(m.FinID); err != nil {
				t.Fatal(err)
			}
			leafPub := m.Chain[0].PublicKey.(ed25519.PublicKey)
			if id, _ := PeerIDFromKey(leafPub); id != m.PeerID {
				t.Fatalf("member peer %s, leaf key is peer %s", m.PeerID, id)
			}
			for _, c := range m.Chain {
				if c.IsCA && c.MaxPathLen == 1 {
					t.Fatal("member chain includes the root")
				}
			}
		})
	}
}

func addCRL(t testing.TB, store *TrustStore, a *Authority, now time.Time) {
	t.Helper()
	der, err := a.CRL(now, 7*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issuer := append([]*x509.Certificate{a.Certificate()}, a.Chain()...)
	ok, err := store.AddCRL(der, derChain(issuer), now)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatal("AddCRL did not store a new CRL")
	}
}

func TestVerifyErrorNamesExpiredCertificate(t *testing.T) {
	n := newTestNet(t)
	_, chain, m := certify(t, n.gov, "bank-x", RoleMember)
	_, err := n.store.Verify(chain, m.NotAfter.Add(time.Hour))
	checkErr(t, err, ErrExpired, m.PeerID.String(), serialString(m.Serial))
}

func TestNewTrustStoreNeedsRoots(t *testing.T) {
	_, err := NewTrustStore(nil)
	checkErr(t, err, ErrNoRoots)
	n := newTestNet(t)
	_, err = NewTrustStore([]*x509.Certificate{n.gov.Certificate()})
	checkErr(t, err, ErrUntrustedChain, "MaxPathLen")
}

func TestTrustStoreConcurrentUse(t *testing.T) {
	n := newTestNet(t)
	_, chain, m := certify(t, n.gov, "bank-x", RoleMember)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				_, _ = n.store.Verify(chain, t0.Add(time.Hour))
				n.store.IsRevoked(chain[0])
				n.store.CRLs()
			}
		}()
	}
	if err := n.gov.Revoke(m.Serial, 0, t0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		addCRL(t, n.store, n.gov, t0.Add(time.Duration(i)*time.Minute))
	}
	wg.Wait()
	if revoked, _ := n.store.IsRevoked(chain[0]); !revoked {
		t.Fatal("leaf not revoked after the CRLs were added")
	}
}
