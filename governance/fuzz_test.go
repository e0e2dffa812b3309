package governance

import (
	"errors"
	"testing"
)

func FuzzParseGenesis(f *testing.F) {
	n := newTestNet(f)
	valid, err := testGenesis(f, n).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"network":"x","roots":["-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----"],"rendezvous":["/ip4/1.2.3.4"],"created":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"network":"x","roots":[],"unknown":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ParseGenesis(data)
		if err != nil {
			if !errors.Is(err, ErrBadGenesis) {
				t.Fatalf("error does not wrap ErrBadGenesis: %v", err)
			}
			return
		}
		// Whatever parses must survive a round trip and yield usable roots.
		out, err := g.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseGenesis(out); err != nil {
			t.Fatalf("re-parsing a marshalled genesis: %v", err)
		}
		roots, err := g.RootCertificates()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := NewTrustStore(roots); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzParseCSR(f *testing.F) {
	key, err := GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	node, err := CreateNodeCSR(key, "bank-x", RoleMember)
	if err != nil {
		f.Fatal(err)
	}
	ca, err := CreateGovernanceCACSR(key, "gov-a")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(node)
	f.Add(EncodeCSRPEM(node))
	f.Add(ca)
	f.Add(tamper(node))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	n := newTestNet(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := ParseCSR(data)
		if err != nil {
			if !errors.Is(err, ErrBadCSR) {
				t.Fatalf("error does not wrap ErrBadCSR: %v", err)
			}
			return
		}
		// A CSR that parses is either certified or refused with a
		// sentinel error, never anything else.
		if _, _, err := n.gov.CertifyNode(csr, t0, year); err != nil &&
			!errors.Is(err, ErrBadCSR) && !errors.Is(err, ErrKeyMismatch) && !errors.Is(err, ErrRoleNotAllowed) {
			t.Fatalf("CertifyNode error wraps no sentinel: %v", err)
		}
	})
}
