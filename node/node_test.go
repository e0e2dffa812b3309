package node_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	stdnet "net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/testnet"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/protocols"
)

func TestOptionsNameTheProblem(t *testing.T) {
	repo := node.WithRepo(t.TempDir())
	cases := []struct {
		name string
		opts []node.Option
		want string
	}{
		{"no repo", nil, "repo directory is not set"},
		{"udp without quic", []node.Option{repo, node.WithListenAddrs("/ip4/127.0.0.1/udp/4001")}, "neither TCP nor QUIC"},
		{"not a multiaddr", []node.Option{repo, node.WithListenAddrs("127.0.0.1:4001")}, "listen address"},
		{"zero handshake timeout", []node.Option{repo, node.WithHandshakeTimeout(0)}, "handshake timeout"},
		{"bad api address", []node.Option{repo, node.WithAPIAddr("localhost")}, "api address"},
		{"empty genesis path", []node.Option{repo, node.WithGenesisFile("")}, "genesis file path is empty"},
		{"nil logger", []node.Option{repo, node.WithLogger(nil)}, "logger is nil"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := node.New(c.opts...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one naming %q", err, c.want)
			}
		})
	}
	if _, err := node.New(repo, node.WithInMemoryDatastore()); err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
}

func TestConfigFileIsStrictAndNamesTheField(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, node.ConfigFileName)
	for _, c := range []struct{ body, want string }{
		{`{"listen": ["/ip4/0.0.0.0/tcp/4001"], "colour": "blue"}`, `unknown field "colour"`},
		{`{"handshake_timeout": "soon"}`, "soon"},
	} {
		if err := os.WriteFile(path, []byte(c.body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := node.LoadConfigFile(path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("config %s: err = %v, want one naming %q", c.body, err, c.want)
		}
	}
	if err := os.WriteFile(path, []byte(`{"datastore": "rocks"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := node.Open(dir); err == nil || !strings.Contains(err.Error(), "datastore") {
		t.Fatalf("datastore rocks: err = %v, want one naming the datastore field", err)
	}
}

func TestInitCreatesKeyOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	res, err := node.Init(dir, node.InitOptions{Org: "bank-x"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{node.KeyFileName, node.TokenFileName} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	key, err := governance.ReadKeyFile(res.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(res.KeyFile)
	if _, err := node.Init(dir, node.InitOptions{Org: "bank-x"}); err == nil || !strings.Contains(err.Error(), "already holds a node key") {
		t.Fatalf("second init: err = %v, want a refusal", err)
	}
	after, _ := os.ReadFile(res.KeyFile)
	if string(before) != string(after) {
		t.Fatal("second init changed the node key")
	}
	id, _ := governance.PeerIDFromKey(key.Public().(ed25519.PublicKey))
	if id != res.PeerID {
		t.Fatalf("peer ID %s does not match the key's %s", res.PeerID, id)
	}
	if _, err := node.Init(filepath.Join(t.TempDir(), "r"), node.InitOptions{Org: "Bad Org!"}); err == nil {
		t.Fatal("an invalid org id was accepted")
	}
}

func TestStartRefusesBadIdentity(t *testing.T) {
	net := testnet.NewEmpty(t)
	ctx := context.Background()

	t.Run("missing key file", func(t *testing.T) {
		repo := net.Repo("bank-a", governance.RoleMember, net.Governance)
		os.Remove(filepath.Join(repo, node.KeyFileName))
		_, err := net.TryStartNode(repo)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), node.KeyFileName) {
			t.Fatalf("err = %v, want a missing key file named", err)
		}
	})
	t.Run("certificate of another key", func(t *testing.T) {
		a := net.Repo("bank-b", governance.RoleMember, net.Governance)
		b := net.Repo("bank-c", governance.RoleMember, net.Governance)
		other, _ := os.ReadFile(filepath.Join(b, node.CertFileName))
		os.WriteFile(filepath.Join(a, node.CertFileName), other, 0o644)
		_, err := net.TryStartNode(a)
		if !errors.Is(err, governance.ErrKeyMismatch) {
			t.Fatalf("err = %v, want ErrKeyMismatch", err)
		}
	})
	t.Run("expired certificate", func(t *testing.T) {
		repo := net.Repo("bank-d", governance.RoleMember, net.Governance)
		net.Certify(repo, net.Governance, time.Now().Add(-3*time.Hour), time.Hour)
		_, err := net.TryStartNode(repo)
		if !errors.Is(err, governance.ErrExpired) {
			t.Fatalf("err = %v, want ErrExpired", err)
		}
	})
	t.Run("genesis without roots", func(t *testing.T) {
		repo := net.Repo("bank-e", governance.RoleMember, net.Governance)
		os.WriteFile(filepath.Join(repo, node.GenesisFileName), []byte(`{"network":"finp2p-test","roots":[],"created":"2026-01-01T00:00:00Z","development":true}`), 0o644)
		_, err := net.TryStartNode(repo)
		if !errors.Is(err, governance.ErrNoRoots) {
			t.Fatalf("err = %v, want ErrNoRoots", err)
		}
	})
	t.Run("key readable by others", func(t *testing.T) {
		repo := net.Repo("bank-f", governance.RoleMember, net.Governance)
		os.Chmod(filepath.Join(repo, node.KeyFileName), 0o644)
		_, err := net.TryStartNode(repo)
		if err == nil || !strings.Contains(err.Error(), "0644") {
			t.Fatalf("err = %v, want the key's mode named", err)
		}
	})
	_ = ctx
}

// A revoked peer stays blocked after a restart: the revocation list and the
// block live in the node's pebble datastore.
func TestRevocationSurvivesRestart(t *testing.T) {
	net := testnet.NewEmpty(t)
	repoA := net.Repo("bank-a", governance.RoleMember, net.Governance)
	repoB := net.Repo("bank-b", governance.RoleMember, net.Governance)
	pebble := func(o *node.Config) error { o.Datastore = node.DatastorePebble; return nil }

	a := net.StartNode(repoA, pebble)
	b := net.StartNode(repoB)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := a.Connect(ctx, testnet.AddrInfo(b)); err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, 10*time.Second, "a sees b on the revocations topic", func() bool {
		return len(a.PubSub().Router().ListPeers(protocols.TopicRevocations)) == 1
	})
	if err := net.Governance.Revoke(new(big.Int).Set(b.Self().Serial), 1, time.Now()); err != nil {
		t.Fatal(err)
	}
	crl, err := net.Governance.CRL(time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if applied, err := a.ApplyRevocationList(ctx, crl, [][]byte{net.Governance.Certificate().Raw}); err != nil || !applied {
		t.Fatalf("applied=%v err=%v", applied, err)
	}
	if _, blocked := a.Blocked(b.ID()); !blocked {
		t.Fatal("b not blocked after its revocation")
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}

	a2 := net.StartNode(repoA, pebble)
	if a2.ID() != a.ID() {
		t.Fatalf("peer ID changed across restart: %s then %s", a.ID(), a2.ID())
	}
	if reason, blocked := a2.Blocked(b.ID()); !blocked || !strings.Contains(reason, "revoked") {
		t.Fatalf("after restart: blocked=%v reason=%q, want still blocked as revoked", blocked, reason)
	}
	if _, err := b.Connect(ctx, testnet.AddrInfo(a2)); err == nil {
		t.Fatal("revoked peer connected after restart")
	}
}

func TestStartNamesAPortInUse(t *testing.T) {
	net := testnet.NewEmpty(t)
	repo := net.Repo("founding-org", governance.RoleFounding, net.Founding)
	held, err := stdnet.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	port := held.Addr().(*stdnet.TCPAddr).Port
	addr := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)
	nd, err := node.Open(repo, node.WithListenAddrs(addr), node.WithInMemoryDatastore())
	if err != nil {
		t.Fatal(err)
	}
	err = nd.Start(context.Background())
	if err == nil {
		_ = nd.Close(context.Background())
		t.Fatalf("started on %s, which another listener holds", addr)
	}
	ce, ok := errors.AsType[*node.ConfigError](err)
	if !ok || ce.Field != "listen" || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("err = %v, want a ConfigError on listen naming %s as already in use", err, addr)
	}
	if nd.Started() {
		t.Fatal("Started() after a failed Start")
	}

	// The same node starts once the port is free, and Started follows.
	held.Close()
	if err := nd.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !nd.Started() {
		t.Fatal("Started() false after Start")
	}
	if err := nd.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if nd.Started() {
		t.Fatal("Started() after Close")
	}
}

func TestValidateNamesTheField(t *testing.T) {
	cfg := node.DefaultConfig()
	cfg.RepoDir = t.TempDir()
	cfg.BlockDuration = 0
	ce, ok := errors.AsType[*node.ConfigError](cfg.Validate())
	if !ok || ce.Field != "block_duration" {
		t.Fatalf("Validate() = %v, want a ConfigError on block_duration", cfg.Validate())
	}
}
