package governance

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/finp2p/go-finp2p/internal/atomicfile"
)

const (
	pemPrivateKey = "PRIVATE KEY"
	maxKeyFile    = 64 << 10
)

// GenerateKey returns a new Ed25519 key from the system's secure random source.
func GenerateKey() (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate Ed25519 key: %w", err)
	}
	return key, nil
}

// MarshalKeyPEM encodes an Ed25519 key as a PKCS#8 "PRIVATE KEY" PEM block,
// the form openssl reads and writes.
func MarshalKeyPEM(key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("marshal Ed25519 key: key has %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal Ed25519 key as PKCS#8: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// WriteKeyFile writes key to a new file at path with mode 0600. It never
// replaces an existing file: the error then wraps atomicfile.ErrExists.
func WriteKeyFile(path string, key ed25519.PrivateKey) error {
	data, err := MarshalKeyPEM(key)
	if err != nil {
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := atomicfile.Create(path, data, 0o600); err != nil {
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	return nil
}

// ReadKeyFile reads an Ed25519 key written by WriteKeyFile or by
// "openssl genpkey -algorithm ed25519". It refuses a file that group or
// others may read or write, because the key is the node's identity.
func ReadKeyFile(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read key file %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read key file %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("read key file %s: %w: not a regular file (mode %v)", path, ErrBadKeyFile, st.Mode())
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("read key file %s: %w: mode %#o lets group or others access the key; run chmod 600 %s", path, ErrBadKeyFile, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read key file %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("read key file %s: %w: larger than %d bytes", path, ErrBadKeyFile, maxKeyFile)
	}
	key, err := parseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("read key file %s: %w", path, err)
	}
	return key, nil
}

func parseKeyPEM(data []byte) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block found", ErrBadKeyFile)
	}
	if block.Type != pemPrivateKey {
		return nil, fmt.Errorf("%w: PEM block is %q, want %q (PKCS#8)", ErrBadKeyFile, block.Type, pemPrivateKey)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: unexpected data after the %q PEM block", ErrBadKeyFile, pemPrivateKey)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: not a PKCS#8 private key: %w", ErrBadKeyFile, err)
	}
	key, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: key is %T, want Ed25519", ErrBadKeyFile, parsed)
	}
	return key, nil
}

// checkKeyPair reports whether cert's public key belongs to key.
func checkKeyPair(key ed25519.PrivateKey, cert *x509.Certificate) error {
	pub, ok := ed25519Key(cert.PublicKey)
	if !ok {
		return fmt.Errorf("%w: certificate %s does not hold an Ed25519 key", ErrKeyMismatch, describe(cert))
	}
	if len(key) != ed25519.PrivateKeySize {
		return errors.New("private key is not an Ed25519 key")
	}
	if !pub.Equal(key.Public()) {
		return fmt.Errorf("%w: certificate %s is for another key", ErrKeyMismatch, describe(cert))
	}
	return nil
}
