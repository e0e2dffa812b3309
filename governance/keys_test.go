package governance

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/finp2p/go-finp2p/internal/atomicfile"
)

func TestKeyFileRoundTrip(t *testing.T) {
	key := mustKey(t)
	path := filepath.Join(t.TempDir(), "node.key")
	if err := WriteKeyFile(path, key); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", st.Mode().Perm())
	}
	got, err := ReadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(key) {
		t.Fatal("key changed in the round trip")
	}
}

func TestWriteKeyFileNeverOverwrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	first := mustKey(t)
	if err := WriteKeyFile(path, first); err != nil {
		t.Fatal(err)
	}
	err := WriteKeyFile(path, mustKey(t))
	if !errors.Is(err, atomicfile.ErrExists) {
		t.Fatalf("second write: %v, want ErrExists", err)
	}
	got, err := ReadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(first) {
		t.Fatal("key file was overwritten")
	}
}

func TestReadKeyFileErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte, perm os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, perm); err != nil { // WriteFile's mode is masked by the umask
			t.Fatal(err)
		}
		return p
	}
	good, err := MarshalKeyPEM(mustKey(t))
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		want error
		text string
	}{
		{"missing file", filepath.Join(dir, "absent.key"), fs.ErrNotExist, "absent.key"},
		{"not PEM", write("garbage.key", []byte("hello"), 0o600), ErrBadKeyFile, "no PEM block"},
		{"wrong PEM type", write("rsa.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte{1}}), 0o600), ErrBadKeyFile, "RSA PRIVATE KEY"},
		{"not PKCS#8", write("junk.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), 0o600), ErrBadKeyFile, "PKCS#8"},
		{"not Ed25519", write("ec.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}), 0o600), ErrBadKeyFile, "Ed25519"},
		{"readable by others", write("open.key", good, 0o644), ErrBadKeyFile, "0644"},
		{"readable by group", write("group.key", good, 0o640), ErrBadKeyFile, "0640"},
		{"trailing data", write("trail.key", append(bytes.Clone(good), good...), 0o600), ErrBadKeyFile, "after"},
		{"a directory", dir, ErrBadKeyFile, "regular file"},
		{"good", write("good.key", good, 0o600), nil, ""},
		{"owner read-only", write("ro.key", good, 0o400), nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadKeyFile(tc.path)
			checkErr(t, err, tc.want, tc.text)
			if err != nil && !strings.Contains(err.Error(), tc.path) {
				t.Fatalf("error %q does not name the file", err)
			}
		})
	}
}

func TestPeerIDFromKey(t *testing.T) {
	key := mustKey(t)
	id, err := PeerIDFromKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(id.String(), "12D3KooW") {
		t.Fatalf("peer ID %s is not an Ed25519 identity peer ID", id)
	}
	if _, err := PeerIDFromKey([]byte{1, 2, 3}); err == nil {
		t.Fatal("short key accepted")
	}
}
