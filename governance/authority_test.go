package governance

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finp2p/go-finp2p/internal/atomicfile"
)

func TestParseCSR(t *testing.T) {
	key := mustKey(t)
	der, err := CreateNodeCSR(key, "bank-x", RoleMember)
	if err != nil {
		t.Fatal(err)
	}
	tampered := append([]byte(nil), der...)
	tampered[len(tampered)-1] ^= 0x01 // last byte of the Ed25519 signature
	rsaLike := append([]byte(nil), der...)
	rsaLike[10] ^= 0xff

	tests := []struct {
		name  string
		input []byte
		want  error
		text  string
	}{
		{"DER", der, nil, ""},
		{"PEM", EncodeCSRPEM(der), nil, ""},
		{"tampered signature", tampered, ErrBadCSR, "CSR signature does not verify"},
		{"tampered PEM", EncodeCSRPEM(tampered), ErrBadCSR, "CSR signature does not verify"},
		{"corrupt DER", rsaLike, ErrBadCSR, ""},
		{"empty", nil, ErrBadCSR, "empty"},
		{"certificate PEM instead of CSR", EncodeCertificatesPEM(newTestNet(t).root.Certificate()), ErrBadCSR, `"CERTIFICATE"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			csr, err := ParseCSR(tc.input)
			checkErr(t, err, tc.want, tc.text)
			if tc.want == nil && !csr.PublicKey.(ed25519.PublicKey).Equal(key.Public()) {
				t.Fatal("parsed CSR holds another key")
			}
		})
	}
}

func TestCreateNodeCSRValidatesOrg(t *testing.T) {
	for _, org := range []string{"", "Bank-X", "-bank", "bank_x", "bank:x", string(make([]byte, 64))} {
		if _, err := CreateNodeCSR(mustKey(t), org, RoleMember); err == nil {
			t.Errorf("org %q accepted", org)
		}
	}
	if _, err := CreateNodeCSR(mustKey(t), "bank-x", Role("admin")); err == nil {
		t.Error("role admin accepted")
	}
}

func TestCertifyNodeChecksRequest(t *testing.T) {
	n := newTestNet(t)
	handMade := func(t *testing.T, key ed25519.PrivateKey, uris ...string) *x509.CertificateRequest {
		t.Helper()
		tmpl := &x509.CertificateRequest{Subject: pkix.Name{Organization: []string{"bank-x"}}}
		for _, s := range uris {
			u, err := url.Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			tmpl.URIs = append(tmpl.URIs, u)
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
		if err != nil {
			t.Fatal(err)
		}
		csr, err := ParseCSR(der)
		if err != nil {
			t.Fatal(err)
		}
		return csr
	}
	key := mustKey(t)
	self, _ := PeerIDFromKey(key.Public().(ed25519.PublicKey))
	other, _ := PeerIDFromKey(mustKey(t).Public().(ed25519.PublicKey))

	tests := []struct {
		name string
		auth *Authority
		csr  func(t *testing.T) *x509.CertificateRequest
		want error
		text string
	}{
		{"peer SAN of another key", n.gov, func(t *testing.T) *x509.CertificateRequest {
			return handMade(t, key, "finp2p:org:bank-x", "finp2p:peer:"+other.String(), "finp2p:role:member")
		}, ErrKeyMismatch, other.String()},
		{"no role SAN", n.gov, func(t *testing.T) *x509.CertificateRequest {
			return handMade(t, key, "finp2p:org:bank-x", "finp2p:peer:"+self.String())
		}, ErrBadCSR, "finp2p:role"},
		{"FinID chosen by the requester", n.gov, func(t *testing.T) *x509.CertificateRequest {
			return handMade(t, key, "finp2p:org:bank-x", "finp2p:peer:"+self.String(), "finp2p:role:member", "finp2p:finid:8f14e45f-ceea-467f-a8f0-3d1f4a0b6c2d")
		}, ErrBadCSR, "finid"},
		{"subject O differs from org SAN", n.gov, func(t *testing.T) *x509.CertificateRequest {
			return handMade(t, key, "finp2p:org:bank-y", "finp2p:peer:"+self.String(), "finp2p:role:member")
		}, ErrBadCSR, "bank-y"},
		{"governance CA request", n.root, func(t *testing.T) *x509.CertificateRequest {
			der, err := CreateGovernanceCACSR(key, "bank-x")
			if err != nil {
				t.Fatal(err)
			}
			csr, err := ParseCSR(der)
			if err != nil {
				t.Fatal(err)
			}
			return csr
		}, ErrBadCSR, "finp2p:peer"},
		{"founding role from a governance CA", n.gov, func(t *testing.T) *x509.CertificateRequest {
			return mustCSR(t, key, "gov-a", RoleFounding)
		}, ErrRoleNotAllowed, "founding"},
		{"founding role for another org", n.root, func(t *testing.T) *x509.CertificateRequest {
			return mustCSR(t, key, "bank-x", RoleFounding)
		}, ErrRoleNotAllowed, "founder"},
		{"governance role for another org from a governance CA", n.gov, func(t *testing.T) *x509.CertificateRequest {
			return mustCSR(t, key, "bank-x", RoleGovernance)
		}, ErrRoleNotAllowed, "gov-a"},
		{"governance role from a founding authority", n.root, func(t *testing.T) *x509.CertificateRequest {
			return mustCSR(t, mustKey(t), "gov-z", RoleGovernance)
		}, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := tc.auth.CertifyNode(tc.csr(t), t0, year)
			checkErr(t, err, tc.want, tc.text)
		})
	}
}

func TestCertifyGovernanceCAOnlyByFounding(t *testing.T) {
	n := newTestNet(t)
	der, err := CreateGovernanceCACSR(mustKey(t), "gov-b")
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ParseCSR(der)
	if err != nil {
		t.Fatal(err)
	}
	_, err = n.gov.CertifyGovernanceCA(csr, t0, year)
	checkErr(t, err, ErrRoleNotAllowed)

	_, err = n.root.CertifyGovernanceCA(mustCSR(t, mustKey(t), "gov-b", RoleGovernance), t0, year)
	checkErr(t, err, ErrBadCSR, "node request")

	cert, err := n.root.CertifyGovernanceCA(csr, t0, year)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.IsCA || cert.MaxPathLen != 0 || !cert.MaxPathLenZero || len(cert.SubjectKeyId) == 0 || len(cert.AuthorityKeyId) == 0 {
		t.Fatalf("governance CA profile: IsCA %v MaxPathLen %d zero %v", cert.IsCA, cert.MaxPathLen, cert.MaxPathLenZero)
	}
	if cert.SerialNumber.BitLen() < 64 {
		t.Fatalf("serial %s is not random-looking", cert.SerialNumber)
	}
}

func TestFinIDPerOrg(t *testing.T) {
	n := newTestNet(t)
	_, _, a1 := certify(t, n.gov, "bank-x", RoleMember)
	_, _, a2 := certify(t, n.gov, "bank-x", RoleMember)
	_, _, b := certify(t, n.gov, "bank-y", RoleMember)
	if a1.FinID != a2.FinID {
		t.Fatalf("two nodes of bank-x got FinIDs %s and %s", a1.FinID, a2.FinID)
	}
	if a1.PeerID == a2.PeerID || a1.Serial.Cmp(a2.Serial) == 0 {
		t.Fatal("two nodes of bank-x share a peer ID or serial")
	}
	if b.FinID == a1.FinID {
		t.Fatal("bank-x and bank-y share a FinID")
	}
	if got, ok := n.gov.FinID("bank-x"); !ok || got != a1.FinID {
		t.Fatalf("FinID(bank-x) = %q, %v", got, ok)
	}
	if _, ok := n.gov.FinID("bank-z"); ok {
		t.Fatal("FinID of an org never certified")
	}
}

func TestCertifyNodeRefusesPeerOfAnotherOrg(t *testing.T) {
	n := newTestNet(t)
	key := mustKey(t)
	if _, _, err := n.gov.CertifyNode(mustCSR(t, key, "bank-x", RoleMember), t0, year); err != nil {
		t.Fatal(err)
	}
	// Renewal for the same org is fine.
	if _, _, err := n.gov.CertifyNode(mustCSR(t, key, "bank-x", RoleMember), t0.Add(time.Hour), year); err != nil {
		t.Fatal(err)
	}
	_, _, err := n.gov.CertifyNode(mustCSR(t, key, "bank-y", RoleMember), t0, year)
	checkErr(t, err, ErrKeyMismatch, "bank-x")
}

func TestLeafNeverOutlivesCA(t *testing.T) {
	n := newTestNet(t)
	cert, m, err := n.gov.CertifyNode(mustCSR(t, mustKey(t), "bank-x", RoleMember), t0, 100*year)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.NotAfter.Equal(n.gov.Certificate().NotAfter) || !m.NotAfter.Equal(cert.NotAfter) {
		t.Fatalf("leaf NotAfter %v, CA NotAfter %v", cert.NotAfter, n.gov.Certificate().NotAfter)
	}
	_, _, err = n.gov.CertifyNode(mustCSR(t, mustKey(t), "bank-x", RoleMember), n.gov.Certificate().NotAfter.Add(time.Second), year)
	checkErr(t, err, ErrExpired, "gov-a governance CA")
}

func TestLeafProfile(t *testing.T) {
	n := newTestNet(t)
	_, chain, m := certify(t, n.gov, "bank-x", RoleMember)
	leaf := chain[0]
	if leaf.IsCA || leaf.KeyUsage != x509.KeyUsageDigitalSignature || len(leaf.ExtKeyUsage) != 2 {
		t.Fatalf("leaf IsCA %v KeyUsage %v ExtKeyUsage %v", leaf.IsCA, leaf.KeyUsage, leaf.ExtKeyUsage)
	}
	want := []string{"finp2p:org:bank-x", "finp2p:finid:" + m.FinID, "finp2p:peer:" + m.PeerID.String(), "finp2p:role:member"}
	if len(leaf.URIs) != len(want) {
		t.Fatalf("URIs %v, want %v", leaf.URIs, want)
	}
	for i, u := range leaf.URIs {
		if u.String() != want[i] {
			t.Fatalf("URI %d = %s, want %s", i, u, want[i])
		}
	}
	if leaf.Subject.CommonName != m.PeerID.String() || leaf.Subject.Organization[0] != "bank-x" {
		t.Fatalf("subject %s", leaf.Subject)
	}
}

func TestAuthorityStateSurvivesReopen(t *testing.T) {
	n := newTestNet(t)
	_, _, x1 := certify(t, n.gov, "bank-x", RoleMember)
	_, _, x2 := certify(t, n.gov, "bank-x", RoleMember)
	_, _, y := certify(t, n.gov, "bank-y", RoleMember)
	if err := n.gov.Revoke(x2.Serial, 4, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := n.gov.Revoke(x2.Serial, 1, t0.Add(2*time.Minute)); err != nil {
		t.Fatalf("revoking twice: %v", err)
	}
	crl1, err := n.gov.CRL(t0.Add(time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	gov, err := OpenAuthority(n.gov.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if gov.IsFounding() || len(gov.Chain()) != 1 || !gov.Certificate().Equal(n.gov.Certificate()) || gov.Org() != "gov-a" {
		t.Fatal("reopened governance authority differs")
	}
	if id, _ := gov.FinID("bank-x"); id != x1.FinID {
		t.Fatalf("FinID of bank-x after reopen = %q, want %q", id, x1.FinID)
	}
	if id, _ := gov.FinID("bank-y"); id != y.FinID {
		t.Fatalf("FinID of bank-y after reopen = %q, want %q", id, y.FinID)
	}
	issued := gov.Issued()
	if len(issued) != 3 {
		t.Fatalf("%d issued after reopen, want 3", len(issued))
	}
	for _, ic := range issued {
		revoked := ic.Serial.Cmp(x2.Serial) == 0
		if ic.Revoked != revoked {
			t.Fatalf("serial %s revoked = %v, want %v", serialString(ic.Serial), ic.Revoked, revoked)
		}
		if revoked && (ic.RevocationReason != 4 || !ic.RevokedAt.Equal(t0.Add(time.Minute))) {
			t.Fatalf("revocation kept reason %d at %v, want the first one", ic.RevocationReason, ic.RevokedAt)
		}
		if ic.Kind != KindNode || ic.Role != RoleMember || ic.PeerID == "" || len(ic.DER) == 0 {
			t.Fatalf("issued record %+v", ic)
		}
	}
	// A third node of bank-x after reopen keeps the FinID.
	_, _, x3 := certify(t, gov, "bank-x", RoleMember)
	if x3.FinID != x1.FinID {
		t.Fatal("FinID changed after reopen")
	}
	crl2, err := gov.CRL(t0.Add(2*time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	l1, err := ParseCRL(crl1)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := ParseCRL(EncodeCRLPEM(crl2))
	if err != nil {
		t.Fatal(err)
	}
	if l2.Number.Cmp(l1.Number) <= 0 {
		t.Fatalf("CRL number after reopen %s, before %s", l2.Number, l1.Number)
	}
	if len(l2.RevokedCertificateEntries) != 1 || l2.RevokedCertificateEntries[0].SerialNumber.Cmp(x2.Serial) != 0 || l2.RevokedCertificateEntries[0].ReasonCode != 4 {
		t.Fatalf("CRL entries %+v", l2.RevokedCertificateEntries)
	}

	root, err := OpenAuthority(n.root.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if !root.IsFounding() || len(root.Chain()) != 0 || len(root.Issued()) != 1 || root.Issued()[0].Kind != KindGovernanceCA {
		t.Fatalf("reopened founding authority: founding %v chain %d issued %d", root.IsFounding(), len(root.Chain()), len(root.Issued()))
	}
}

func TestRevokeUnknownSerial(t *testing.T) {
	n := newTestNet(t)
	err := n.gov.Revoke(big.NewInt(0xbeef), 0, t0)
	if err == nil || !containsAll(err.Error(), "0xbeef", "not a certificate issued") {
		t.Fatalf("error = %v", err)
	}
	_, _, m := certify(t, n.gov, "bank-x", RoleMember)
	if err := n.gov.Revoke(m.Serial, 7, t0); err == nil {
		t.Fatal("reason code 7 accepted")
	}
	// A root cannot revoke what its governance CA issued.
	if err := n.root.Revoke(m.Serial, 0, t0); err == nil {
		t.Fatal("founding authority revoked a serial it did not issue")
	}
}

func TestInitRefusesExistingCA(t *testing.T) {
	n := newTestNet(t)
	_, err := InitFoundingAuthority(n.root.Dir(), testNetID, "founder", t0, year)
	if !errors.Is(err, atomicfile.ErrExists) {
		t.Fatalf("re-init founding = %v, want ErrExists", err)
	}
	_, err = InitGovernanceAuthority(n.gov.Dir(), n.govKey, n.gov.Certificate(), n.gov.Chain())
	if !errors.Is(err, atomicfile.ErrExists) {
		t.Fatalf("re-init governance = %v, want ErrExists", err)
	}
	// A governance certificate with the wrong key, or a non-CA, is refused.
	_, err = InitGovernanceAuthority(filepath.Join(t.TempDir(), "g"), mustKey(t), n.gov.Certificate(), n.gov.Chain())
	checkErr(t, err, ErrKeyMismatch)
	k, chain, _ := certify(t, n.gov, "bank-x", RoleMember)
	_, err = InitGovernanceAuthority(filepath.Join(t.TempDir(), "g"), k, chain[0], n.gov.Chain())
	checkErr(t, err, ErrUntrustedChain, "not a governance CA")
}

func TestOpenAuthorityRejectsDamage(t *testing.T) {
	n := newTestNet(t)
	dir := n.gov.Dir()
	if err := os.Chmod(filepath.Join(dir, authorityKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := OpenAuthority(dir)
	checkErr(t, err, ErrBadKeyFile, "0644")
	if err := os.Chmod(filepath.Join(dir, authorityKeyFile), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Write(filepath.Join(dir, authorityStateFile), []byte(`{"version":1,"bogus":true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = OpenAuthority(dir)
	if err == nil || !containsAll(err.Error(), authorityStateFile, "bogus") {
		t.Fatalf("error = %v", err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
