package governance

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// t0 is the fixed "now" of the tests.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	year      = 365 * 24 * time.Hour
	testNetID = "finp2p-test"
)

// testNet is a small certified network: a founding authority (org
// "founder"), a governance authority under it (org "gov-a") and a trust store
// with the founding root.
type testNet struct {
	root   *Authority
	gov    *Authority
	govKey ed25519.PrivateKey
	store  *TrustStore
}

func newTestNet(t testing.TB) *testNet {
	t.Helper()
	root, err := InitFoundingAuthority(filepath.Join(t.TempDir(), "root"), testNetID, "founder", t0, 10*year)
	if err != nil {
		t.Fatal(err)
	}
	govKey := mustKey(t)
	gov := newGovernance(t, root, govKey, "gov-a")
	store, err := NewTrustStore([]*x509.Certificate{root.Certificate()})
	if err != nil {
		t.Fatal(err)
	}
	return &testNet{root: root, gov: gov, govKey: govKey, store: store}
}

// newGovernance certifies a governance CA for org under root and installs it.
func newGovernance(t testing.TB, root *Authority, key ed25519.PrivateKey, org string) *Authority {
	t.Helper()
	der, err := CreateGovernanceCACSR(key, org)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ParseCSR(der)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := root.CertifyGovernanceCA(csr, t0, 5*year)
	if err != nil {
		t.Fatal(err)
	}
	gov, err := InitGovernanceAuthority(filepath.Join(t.TempDir(), "gov-"+org), key, cert, []*x509.Certificate{root.Certificate()})
	if err != nil {
		t.Fatal(err)
	}
	return gov
}

func mustKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustCSR(t testing.TB, key ed25519.PrivateKey, org string, role Role) *x509.CertificateRequest {
	t.Helper()
	der, err := CreateNodeCSR(key, org, role)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ParseCSR(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

// certify issues a node certificate from a for a new key and returns the
// key, the chain the node would present (leaf first) and the member.
func certify(t testing.TB, a *Authority, org string, role Role) (ed25519.PrivateKey, []*x509.Certificate, Member) {
	t.Helper()
	key := mustKey(t)
	cert, m, err := a.CertifyNode(mustCSR(t, key, org, role), t0, year)
	if err != nil {
		t.Fatal(err)
	}
	return key, append([]*x509.Certificate{cert}, nodeChainAbove(a)...), m
}

func nodeChainAbove(a *Authority) []*x509.Certificate {
	if a.IsFounding() {
		return nil
	}
	return []*x509.Certificate{a.Certificate()}
}

// signByHand signs tmpl with parentKey outside any Authority, to build
// certificates the API would refuse to issue.
func signByHand(t testing.TB, tmpl, parent *x509.Certificate, pub ed25519.PublicKey, parentKey ed25519.PrivateKey) *x509.Certificate {
	t.Helper()
	if tmpl.SerialNumber == nil {
		s, err := randomSerial()
		if err != nil {
			t.Fatal(err)
		}
		tmpl.SerialNumber = s
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore, tmpl.NotAfter = t0, t0.Add(year)
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// leafTemplate is a node certificate template as an authority would fill it.
func leafTemplate(t testing.TB, pub ed25519.PublicKey, org string, role Role) *x509.Certificate {
	t.Helper()
	id, err := PeerIDFromKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{Organization: []string{org}, CommonName: id.String()},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs: append([]*url.URL{},
			sanURI(sanOrg, org),
			sanURI(sanFinID, "8f14e45f-ceea-467f-a8f0-3d1f4a0b6c2d"),
			sanURI(sanPeer, id.String()),
			sanURI(sanRole, string(role))),
	}
}

func derChain(certs []*x509.Certificate) [][]byte {
	out := make([][]byte, len(certs))
	for i, c := range certs {
		out[i] = c.Raw
	}
	return out
}

// checkErr fails unless err wraps want (nil: no error) and mentions every
// text.
func checkErr(t testing.TB, err, want error, texts ...string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want one wrapping %q", err, want)
	}
	for _, s := range texts {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not mention %q", err, s)
		}
	}
}
