package governance

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/finp2p/go-finp2p/internal/limitedfile"
)

const (
	pemCertificate = "CERTIFICATE"
	pemCSR         = "CERTIFICATE REQUEST"
	pemCSROld      = "NEW CERTIFICATE REQUEST"
	pemCRL         = "X509 CRL"

	// maxPEMFile bounds the certificate files this package reads.
	maxPEMFile = 1 << 20
)

// EncodeCertificatesPEM encodes certificates as consecutive "CERTIFICATE" PEM
// blocks, in the order given.
func EncodeCertificatesPEM(certs ...*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		// Encoding to a bytes.Buffer cannot fail.
		_ = pem.Encode(&buf, &pem.Block{Type: pemCertificate, Bytes: c.Raw})
	}
	return buf.Bytes()
}

// ParseCertificatesPEM parses one or more "CERTIFICATE" PEM blocks. Text before
// the first block (as "openssl x509 -text" writes) is ignored; any other block
// type or trailing non-PEM data is an error, as is input without certificates.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		block, r := pem.Decode(rest)
		if block == nil {
			break
		}
		rest = r
		if block.Type != pemCertificate {
			return nil, fmt.Errorf("PEM block %d is %q, want %q", len(certs)+1, block.Type, pemCertificate)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM-encoded certificate found")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("unexpected data after certificate %d", len(certs))
	}
	return certs, nil
}

// LoadCertificatesPEM reads a file of PEM-encoded certificates.
func LoadCertificatesPEM(path string) ([]*x509.Certificate, error) {
	data, err := limitedfile.Read(path, maxPEMFile)
	if err != nil {
		return nil, err
	}
	certs, err := ParseCertificatesPEM(data)
	if err != nil {
		return nil, fmt.Errorf("load certificates from %s: %w", path, err)
	}
	return certs, nil
}

// EncodeCSRPEM encodes a DER certificate signing request as a
// "CERTIFICATE REQUEST" PEM block.
func EncodeCSRPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCSR, Bytes: der})
}

// ParseCSR parses a certificate signing request in PEM or DER form, checks
// the request's own signature and requires an Ed25519 key. Errors wrap
// ErrBadCSR.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	der, err := pemOrDER(data, pemCSR, pemCSROld)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCSR, err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCSR, err)
	}
	if err := checkCSR(csr); err != nil {
		return nil, err
	}
	return csr, nil
}

// checkCSR verifies what ParseCSR verifies, for requests built in memory.
func checkCSR(csr *x509.CertificateRequest) error {
	if csr == nil {
		return fmt.Errorf("%w: no request", ErrBadCSR)
	}
	if _, ok := ed25519Key(csr.PublicKey); !ok {
		return fmt.Errorf("%w: CSR %q holds a %v key, want Ed25519", ErrBadCSR, csr.Subject.String(), csr.PublicKeyAlgorithm)
	}
	if err := csr.CheckSignature(); err != nil {
		return fmt.Errorf("%w: CSR signature does not verify: %w", ErrBadCSR, err)
	}
	return nil
}

// EncodeCRLPEM encodes a DER certificate revocation list as an "X509 CRL"
// PEM block.
func EncodeCRLPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCRL, Bytes: der})
}

// ParseCRL parses a certificate revocation list in PEM or DER form. It does
// not check the signature: TrustStore.AddCRL does, against the issuer.
func ParseCRL(data []byte) (*x509.RevocationList, error) {
	der, err := pemOrDER(data, pemCRL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCRL, err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCRL, err)
	}
	return crl, nil
}

// pemOrDER returns the DER bytes of data: the single PEM block of one of the
// given types if data is PEM, else data itself.
func pemOrDER(data []byte, types ...string) ([]byte, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, errors.New("empty input")
	}
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN ")) {
		return data, nil
	}
	block, rest := pem.Decode(trimmed)
	if block == nil {
		return nil, errors.New("malformed PEM")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("unexpected data after the %q PEM block", block.Type)
	}
	for _, t := range types {
		if block.Type == t {
			return block.Bytes, nil
		}
	}
	return nil, fmt.Errorf("PEM block is %q, want %q", block.Type, types[0])
}
