package governance

import (
	"crypto/ed25519"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finp2p/go-finp2p/internal/atomicfile"
)

// openssl runs openssl with args in dir and returns its combined output.
func openssl(t *testing.T, dir string, wantOK bool, args ...string) string {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if wantOK && err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if !wantOK && err == nil {
		t.Fatalf("openssl %s succeeded, want failure:\n%s", strings.Join(args, " "), out)
	}
	return string(out)
}

func needOpenSSL(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not found in PATH; skipping the openssl interoperability test")
	}
}

func writeFile(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := atomicfile.Write(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOpenSSLVerifiesChains(t *testing.T) {
	needOpenSSL(t)
	n := newTestNet(t)
	dir := t.TempDir()
	_, govChain, _ := certify(t, n.gov, "bank-x", RoleMember)
	_, rootChain, rootMember := certify(t, n.root, "bank-y", RoleMember)
	writeFile(t, dir, "root.pem", EncodeCertificatesPEM(n.root.Certificate()))
	writeFile(t, dir, "governance.pem", EncodeCertificatesPEM(n.gov.Certificate()))
	writeFile(t, dir, "member.pem", EncodeCertificatesPEM(govChain[0]))
	writeFile(t, dir, "direct.pem", EncodeCertificatesPEM(rootChain[0]))

	// openssl checks validity against the wall clock; the test certificates
	// start at t0, so use -attime when the clock is earlier.
	at := []string{"-attime", "1775000000"} // 2026-04-01, within every test certificate
	if !time.Unix(1775000000, 0).After(t0) {
		t.Fatal("attime is before t0")
	}
	out := openssl(t, dir, true, append(append([]string{"verify"}, at...), "-CAfile", "root.pem", "-untrusted", "governance.pem", "member.pem")...)
	if !strings.Contains(out, "member.pem: OK") {
		t.Fatalf("openssl verify: %s", out)
	}
	out = openssl(t, dir, true, append(append([]string{"verify"}, at...), "-CAfile", "root.pem", "direct.pem")...)
	if !strings.Contains(out, "direct.pem: OK") {
		t.Fatalf("openssl verify: %s", out)
	}
	// Without the governance CA the member does not verify.
	openssl(t, dir, false, append(append([]string{"verify"}, at...), "-CAfile", "root.pem", "member.pem")...)

	// openssl reads the founding root's CRL and applies it.
	if err := n.root.Revoke(rootMember.Serial, 1, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	crl, err := n.root.CRL(t0.Add(time.Hour), 90*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "root.crl", EncodeCRLPEM(crl))
	out = openssl(t, dir, true, "crl", "-in", "root.crl", "-CAfile", "root.pem", "-noout")
	if !strings.Contains(strings.ToLower(out), "verify ok") {
		t.Fatalf("openssl crl: %s", out)
	}
	out = openssl(t, dir, false, append(append([]string{"verify"}, at...), "-crl_check", "-CAfile", "root.pem", "-CRLfile", "root.crl", "direct.pem")...)
	if !strings.Contains(out, "revoked") {
		t.Fatalf("openssl verify of a revoked member: %s", out)
	}
}

func TestOpenSSLReadsCSRAndKeys(t *testing.T) {
	needOpenSSL(t)
	dir := t.TempDir()
	key := mustKey(t)
	der, err := CreateNodeCSR(key, "bank-x", RoleMember)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "node.csr", EncodeCSRPEM(der))
	out := openssl(t, dir, true, "req", "-verify", "-in", "node.csr", "-noout")
	if !strings.Contains(strings.ToLower(out), "verify ok") {
		t.Fatalf("openssl req -verify: %s", out)
	}
	if err := WriteKeyFile(filepath.Join(dir, "node.key"), key); err != nil {
		t.Fatal(err)
	}
	openssl(t, dir, true, "pkey", "-in", "node.key", "-noout")

	// A key made by openssl is read back, and a CSR made by openssl from it
	// with the FinP2P SANs is accepted.
	openssl(t, dir, true, "genpkey", "-algorithm", "ed25519", "-out", "ossl.key")
	if err := os.Chmod(filepath.Join(dir, "ossl.key"), 0o600); err != nil {
		t.Fatal(err)
	}
	osslKey, err := ReadKeyFile(filepath.Join(dir, "ossl.key"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := PeerIDFromKey(osslKey.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	openssl(t, dir, true, "req", "-new", "-key", "ossl.key", "-out", "ossl.csr",
		"-subj", "/O=bank-x/CN="+id.String(),
		"-addext", "subjectAltName=URI:finp2p:org:bank-x,URI:finp2p:peer:"+id.String()+",URI:finp2p:role:member")
	data, err := os.ReadFile(filepath.Join(dir, "ossl.csr"))
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ParseCSR(data)
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNet(t)
	if _, m, err := n.gov.CertifyNode(csr, t0, year); err != nil || m.PeerID != id {
		t.Fatalf("certifying an openssl CSR: %v (peer %s, want %s)", err, m.PeerID, id)
	}
}
