package governance

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testGenesis returns a valid genesis for n's root and a rendezvous peer.
func testGenesis(t testing.TB, n *testNet) *Genesis {
	t.Helper()
	id, err := PeerIDFromKey(n.root.key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return &Genesis{
		Network:    testNetID,
		Roots:      []string{string(EncodeCertificatesPEM(n.root.Certificate()))},
		Rendezvous: []string{"/dns4/rendezvous.example.com/tcp/4001/p2p/" + id.String(), "/ip4/93.184.216.34/udp/4001/quic-v1/p2p/" + id.String()},
		Created:    t0,
	}
}

func TestGenesisValidate(t *testing.T) {
	n := newTestNet(t)
	peerID := strings.TrimPrefix(testGenesis(t, n).Rendezvous[0], "/dns4/rendezvous.example.com/tcp/4001/p2p/")
	tests := []struct {
		name   string
		mutate func(g *Genesis)
		want   error
		text   string
	}{
		{"valid", func(g *Genesis) {}, nil, ""},
		{"no rendezvous", func(g *Genesis) { g.Rendezvous = nil }, nil, ""},
		{"without roots", func(g *Genesis) { g.Roots = nil }, ErrNoRoots, "roots"},
		{"bad root PEM", func(g *Genesis) {
			g.Roots = append(g.Roots, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
		}, ErrBadGenesis, "roots[1]"},
		{"root that is not PEM", func(g *Genesis) { g.Roots[0] = "hello" }, ErrBadGenesis, "roots[0]"},
		{"governance CA as root", func(g *Genesis) { g.Roots[0] = string(EncodeCertificatesPEM(n.gov.Certificate())) }, ErrBadGenesis, "MaxPathLen"},
		{"two certificates in one entry", func(g *Genesis) { g.Roots[0] += g.Roots[0] }, ErrBadGenesis, "one per entry"},
		{"repeated root", func(g *Genesis) { g.Roots = append(g.Roots, g.Roots[0]) }, ErrBadGenesis, "repeats"},
		{"bad multiaddr", func(g *Genesis) { g.Rendezvous[1] = "/ip4/300.1.1.1/tcp/1/p2p/" + peerID }, ErrBadGenesis, "rendezvous[1]"},
		{"multiaddr without /p2p", func(g *Genesis) { g.Rendezvous[0] = "/dns4/rendezvous.example.com/tcp/4001" }, ErrBadGenesis, "/p2p"},
		{"multiaddr with only /p2p", func(g *Genesis) { g.Rendezvous[0] = "/p2p/" + peerID }, ErrBadGenesis, "rendezvous[0]"},
		{"loopback in a production network", func(g *Genesis) { g.Rendezvous[0] = "/ip4/127.0.0.1/tcp/4001/p2p/" + peerID }, ErrBadGenesis, "development"},
		{"loopback in a development network", func(g *Genesis) {
			g.Rendezvous[0] = "/ip4/127.0.0.1/tcp/4001/p2p/" + peerID
			g.Development = true
		}, nil, ""},
		{"empty network name", func(g *Genesis) { g.Network = "" }, ErrBadGenesis, "network"},
		{"network name with a slash", func(g *Genesis) { g.Network = "a/b" }, ErrBadGenesis, "network"},
		{"no creation time", func(g *Genesis) { g.Created = time.Time{} }, ErrBadGenesis, "created"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := testGenesis(t, n)
			tc.mutate(g)
			checkErr(t, g.Validate(), tc.want, tc.text)
			if tc.want != nil {
				return
			}
			data, err := g.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParseGenesis(data); err != nil {
				t.Fatalf("valid genesis does not parse back: %v", err)
			}
		})
	}
}

func TestParseGenesisStrict(t *testing.T) {
	n := newTestNet(t)
	data, err := testGenesis(t, n).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	fields["rendezvus"] = []string{} // misspelt field
	withUnknown, _ := json.Marshal(fields)

	tests := []struct {
		name string
		data []byte
		text string
	}{
		{"unknown field", withUnknown, "rendezvus"},
		{"trailing data", append(append([]byte(nil), data...), []byte("{}")...), "after the JSON object"},
		{"not JSON", []byte("network: x"), "decode JSON"},
		{"empty", nil, "decode JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseGenesis(tc.data)
			checkErr(t, err, ErrBadGenesis, tc.text)
		})
	}
}

func TestGenesisSaveLoad(t *testing.T) {
	n := newTestNet(t)
	g := testGenesis(t, n)
	path := filepath.Join(t.TempDir(), "genesis.json")
	if err := g.Save(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Fatalf("genesis mode %v, want 0644", st.Mode().Perm())
	}
	got, err := LoadGenesis(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Network != g.Network || !got.Created.Equal(g.Created) || len(got.Rendezvous) != 2 || got.Development {
		t.Fatalf("loaded %+v, saved %+v", got, g)
	}
	roots, err := got.RootCertificates()
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 1 || !roots[0].Equal(n.root.Certificate()) {
		t.Fatal("root certificate changed in the round trip")
	}
	if _, err := NewTrustStore(roots); err != nil {
		t.Fatal(err)
	}

	// An invalid genesis is not saved; a missing file is named.
	bad := *g
	bad.Roots = nil
	if err := bad.Save(filepath.Join(t.TempDir(), "bad.json")); !errors.Is(err, ErrNoRoots) {
		t.Fatalf("saving without roots: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "nope.json")
	_, err = LoadGenesis(missing)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("loading a missing genesis: %v", err)
	}
}
