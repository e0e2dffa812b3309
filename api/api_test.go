package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/finp2p/go-finp2p/api"
	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/testnet"
	"github.com/finp2p/go-finp2p/node"
)

const token = "0123456789abcdef0123456789abcdef"

func startAPI(t *testing.T) (*api.Server, *testnet.Network) {
	t.Helper()
	reg := prometheus.NewRegistry()
	net := testnet.NewEmpty(t)
	founding := net.StartNode(net.Repo("founding-org", governance.RoleFounding, net.Founding))
	nd := net.StartNode(net.Repo("bank-a", governance.RoleMember, net.Governance), node.WithMetrics(reg))
	net.ConnectAll()
	_ = founding
	srv, err := api.New(api.Config{Addr: "127.0.0.1:0", Token: token, Node: nd, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	return srv, net
}

func call(t *testing.T, srv *api.Server, method, path, tok, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+srv.Addr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, data
}

func TestEveryCallNeedsTheToken(t *testing.T) {
	srv, _ := startAPI(t)
	for _, path := range []string{"/v1/status", "/metrics"} {
		for _, tok := range []string{"", "wrong-token-wrong-token"} {
			resp, body := call(t, srv, http.MethodGet, path, tok, "")
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("%s with token %q: status %d, want 401", path, tok, resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("%s: content type %q, want problem+json", path, ct)
			}
			var p api.Problem
			if err := json.Unmarshal(body, &p); err != nil || !strings.HasSuffix(p.Type, "/unauthorized") {
				t.Fatalf("%s: problem %s", path, body)
			}
		}
	}
}

func TestStatusAndMetrics(t *testing.T) {
	srv, net := startAPI(t)
	c := &api.Client{Base: "http://" + srv.Addr(), Token: token}
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	nd := net.Nodes()[1]
	if st.PeerID != nd.ID().String() || st.Org != "bank-a" || st.Role != "member" || st.Network != testnet.NetworkName {
		t.Fatalf("status = %+v", st)
	}
	if len(st.Addresses) == 0 || len(st.Members) != 1 || st.Members[0].Org != "founding-org" || st.Members[0].Role != "founding" {
		t.Fatalf("status addresses/members = %v / %+v", st.Addresses, st.Members)
	}
	if st.CertificateExpires.Before(time.Now()) || st.FinID == "" {
		t.Fatalf("status certificate expiry %v, FinID %q", st.CertificateExpires, st.FinID)
	}

	resp, body := call(t, srv, http.MethodGet, "/metrics", token, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %d", resp.StatusCode)
	}
	for _, m := range []string{"finp2p_members_connected 1", "finp2p_membership_handshakes_total", "libp2p_"} {
		if !strings.Contains(string(body), m) {
			t.Fatalf("metrics lack %q", m)
		}
	}
}

func TestRevocationsBadInput(t *testing.T) {
	srv, net := startAPI(t)
	chain := string(governance.EncodeCertificatesPEM(net.Governance.Certificate()))
	crl, err := net.Governance.CRL(time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	forged := append([]byte(nil), crl...)
	forged[len(forged)-1] ^= 1
	enc := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	cases := []struct {
		name, body string
		status     int
		kind       string
	}{
		{"not json", "{", 400, "bad-json"},
		{"unknown field", `{"crl":"x","extra":1}`, 400, "bad-json"},
		{"not a crl", enc(api.RevocationRequest{CRL: "hello", IssuerChain: chain}), 400, "bad-crl"},
		{"no issuer chain", enc(api.RevocationRequest{CRL: string(governance.EncodeCRLPEM(crl))}), 400, "bad-issuer-chain"},
		{"forged signature", enc(api.RevocationRequest{CRL: string(governance.EncodeCRLPEM(forged)), IssuerChain: chain}), 422, "crl-refused"},
		{"oversized", `{"crl":"` + strings.Repeat("A", api.MaxRequestBody) + `"}`, 413, "body-too-large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := call(t, srv, http.MethodPost, "/v1/revocations", token, c.body)
			var p api.Problem
			_ = json.Unmarshal(body, &p)
			if resp.StatusCode != c.status || !strings.HasSuffix(p.Type, "/"+c.kind) || p.Detail == "" {
				t.Fatalf("status %d problem %+v, want %d %s with a detail", resp.StatusCode, p, c.status, c.kind)
			}
		})
	}
	// The node still serves, and a good list is applied.
	resp, body := call(t, srv, http.MethodPost, "/v1/revocations", token, enc(api.RevocationRequest{CRL: string(governance.EncodeCRLPEM(crl)), IssuerChain: chain}))
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"applied": true`) {
		t.Fatalf("good CRL: %d %s", resp.StatusCode, body)
	}
}
