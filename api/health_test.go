package api_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/finp2p/go-finp2p/api"
	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/testnet"
	"github.com/finp2p/go-finp2p/node"
)

// repoPeer is the peer ID of the node of repo, before it is started.
func repoPeer(t *testing.T, repo string) peer.ID {
	t.Helper()
	key, err := governance.ReadKeyFile(filepath.Join(repo, node.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	id, err := governance.PeerIDFromKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// setRendezvous rewrites the genesis file of repo to name these peers as the
// rendezvous nodes, at a loopback port where nothing answers.
func setRendezvous(t *testing.T, repo string, peers ...peer.ID) {
	t.Helper()
	path := filepath.Join(repo, node.GenesisFileName)
	g, err := governance.LoadGenesis(path)
	if err != nil {
		t.Fatal(err)
	}
	g.Rendezvous = nil
	for _, p := range peers {
		g.Rendezvous = append(g.Rendezvous, "/ip4/127.0.0.1/tcp/1/p2p/"+p.String())
	}
	if err := g.Save(path); err != nil {
		t.Fatal(err)
	}
}

// wantReady fails unless GET /readyz answers 200 with what want says.
func wantReady(t *testing.T, srv *api.Server, want api.ReadyResponse) {
	t.Helper()
	resp, body := call(t, srv, http.MethodGet, "/readyz", "", "")
	var got api.ReadyResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &got) != nil || got != want {
		t.Fatalf("GET /readyz: %d %s, want 200 %+v", resp.StatusCode, body, want)
	}
}

// wantNotReady fails unless GET /readyz answers a 503 problem of kind whose
// detail says each of says.
func wantNotReady(t *testing.T, h http.Handler, kind string, says ...string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	var p api.Problem
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Content-Type") != "application/problem+json" ||
		json.Unmarshal(rec.Body.Bytes(), &p) != nil || p.Kind() != kind {
		t.Fatalf("GET /readyz: %d %s %s, want a 503 %s problem", rec.Code, rec.Header().Get("Content-Type"), rec.Body, kind)
	}
	for _, s := range says {
		if !strings.Contains(p.Detail, s) {
			t.Fatalf("GET /readyz: detail %q does not say %q", p.Detail, s)
		}
	}
}

// TestHealthAndReadiness: /healthz and /readyz need no token; /readyz is 200
// for a node with a member connection or alone as the network's only node,
// and 503 naming what is missing for a node not started, stopping, or
// without a member connection.
func TestHealthAndReadiness(t *testing.T) {
	srv, _ := startAPI(t)
	resp, body := call(t, srv, http.MethodGet, "/healthz", "", "")
	var health api.HealthResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &health) != nil || health.Status != "ok" {
		t.Fatalf("GET /healthz: %d %s", resp.StatusCode, body)
	}
	wantReady(t, srv, api.ReadyResponse{Status: "ready", Members: 1})

	tn := testnet.NewEmpty(t)
	// A founding node named as the only rendezvous node, knowing no other
	// node, is the whole network.
	founderRepo := tn.Repo("founding-org", governance.RoleFounding, tn.Founding)
	founderID := repoPeer(t, founderRepo)
	setRendezvous(t, founderRepo, founderID)
	founder := tn.StartNode(founderRepo)
	founderAPI, _ := serveAPI(t, founder)
	wantReady(t, founderAPI, api.ReadyResponse{Status: "ready", OnlyNode: true})

	// A member whose rendezvous node does not answer is not ready, and
	// says where it tries to join.
	memberRepo := tn.Repo("bank-a", governance.RoleMember, tn.Governance)
	setRendezvous(t, memberRepo, founderID)
	member := tn.StartNode(memberRepo)
	memberAPI, err := api.New(api.Config{Token: token, Node: member})
	if err != nil {
		t.Fatal(err)
	}
	wantNotReady(t, memberAPI.Handler(), "no-member-connection", "rendezvous", founderID.String())
	// Once connected to the founding node it is ready, and the founding
	// node, which now knows of another node, counts it.
	if _, err := member.Connect(context.Background(), testnet.AddrInfo(founder)); err != nil {
		t.Fatal(err)
	}
	wantNotReadyThenReady := api.ReadyResponse{Status: "ready", Members: 1}
	wantReady(t, founderAPI, wantNotReadyThenReady)
	if err := memberAPI.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantNotReady(t, memberAPI.Handler(), "node-stopping")

	// A node not started yet.
	idle, err := node.New(node.WithRepo(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	idleAPI, err := api.New(api.Config{Token: token, Node: idle})
	if err != nil {
		t.Fatal(err)
	}
	wantNotReady(t, idleAPI.Handler(), "node-not-started")
}
