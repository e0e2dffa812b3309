package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/finp2p/go-finp2p/api"
	"github.com/finp2p/go-finp2p/discovery"
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

// eventually polls check until it returns nil or within passes; the failure
// names what was awaited and the last error.
func eventually(t *testing.T, within time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s; last: %v", within, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestEveryCallNeedsTheToken(t *testing.T) {
	srv, _ := startAPI(t)
	for _, path := range []string{"/v1/status", "/metrics", "/v1/orgs", "/v1/orgs/founding-org"} {
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

// TestOrgsBadRequests: a bad org id or query parameter is refused before the
// node is asked, and an org nobody knows is a 404 problem naming it.
func TestOrgsBadRequests(t *testing.T) {
	srv, _ := startAPI(t)
	cases := []struct {
		name, path string
		status     int
		kind, want string
	}{
		{"upper-case org", "/v1/orgs/Bank-A", 400, "bad-org", "Bank-A"},
		{"underscore org", "/v1/orgs/bank_a", 400, "bad-org", "bank_a"},
		{"escaped slash in org", "/v1/orgs/bank%2Fa", 400, "bad-org", "bank/a"},
		{"over-long org", "/v1/orgs/" + strings.Repeat("a", 64), 400, "bad-org", "not valid"},
		{"unknown parameter on list", "/v1/orgs?colour=red", 400, "bad-query", `"colour"`},
		{"unknown parameter on resolve", "/v1/orgs/bank-a?service=custody", 400, "bad-query", `"service"`},
		{"parameter twice", "/v1/orgs?service=a&service=b", 400, "bad-query", `"service"`},
		{"over-long filter", "/v1/orgs?ledger=" + strings.Repeat("x", discovery.MaxNameLen+1), 400, "bad-query", `"ledger"`},
		{"malformed query", "/v1/orgs?service=%zz", 400, "bad-query", "query string"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := call(t, srv, http.MethodGet, c.path, token, "")
			var p api.Problem
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatalf("%s: %d %s: not a problem: %v", c.path, resp.StatusCode, body, err)
			}
			if resp.StatusCode != c.status || p.Kind() != c.kind || !strings.Contains(p.Detail, c.want) {
				t.Fatalf("%s: status %d problem %+v, want %d %s with a detail naming %s", c.path, resp.StatusCode, p, c.status, c.kind, c.want)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("%s: content type %q, want problem+json", c.path, ct)
			}
		})
	}

	// The client hands back the problem, detail and all.
	c := &api.Client{Base: "http://" + srv.Addr(), Token: token}
	_, err := c.Orgs(context.Background(), discovery.Filter{Service: strings.Repeat("s", discovery.MaxNameLen+1)})
	var p *api.Problem
	if !errors.As(err, &p) || p.Kind() != "bad-query" || !strings.Contains(err.Error(), `"service"`) {
		t.Fatalf("client Orgs with an over-long service: %v, want a bad-query problem", err)
	}
}

// TestResolveUnknownOrg: an org nobody knows is a 404 problem whose detail is
// the node's error, naming the org; the client hands it back as a Problem.
func TestResolveUnknownOrg(t *testing.T) {
	srv, _ := startAPI(t)
	resp, body := call(t, srv, http.MethodGet, "/v1/orgs/nosuch-org", token, "")
	var p *api.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("%d %s: not a problem: %v", resp.StatusCode, body, err)
	}
	if resp.StatusCode != http.StatusNotFound || p.Kind() != "org-not-found" ||
		!strings.Contains(p.Detail, "nosuch-org") || !strings.Contains(p.Detail, discovery.ErrOrgNotFound.Error()) {
		t.Fatalf("status %d problem %+v, want 404 org-not-found whose detail names nosuch-org and says %q", resp.StatusCode, p, discovery.ErrOrgNotFound)
	}
	c := &api.Client{Base: "http://" + srv.Addr(), Token: token}
	_, err := c.Resolve(context.Background(), "nosuch-org")
	if !errors.As(err, &p) || p.Kind() != "org-not-found" || !strings.Contains(err.Error(), discovery.ErrOrgNotFound.Error()) {
		t.Fatalf("client Resolve of an unknown org: %v, want an org-not-found problem", err)
	}
}

// TestOrgsResolveOnNetwork: on a certified network, a member resolves another
// member's org through its API, and GET /v1/orgs lists the members, filtered
// by what they advertise.
func TestOrgsResolveOnNetwork(t *testing.T) {
	net := testnet.NewEmpty(t)
	net.StartNode(net.Repo("founding-org", governance.RoleFounding, net.Founding))
	net.StartNode(net.Repo("governance-org", governance.RoleGovernance, net.Governance))
	bankA := net.StartNode(net.Repo("bank-a", governance.RoleMember, net.Governance))
	custodian := net.StartNode(net.Repo("custodian-b", governance.RoleMember, net.Governance),
		node.WithServices("custody"), node.WithLedgers("ethereum"))
	net.ConnectAll()
	srv, err := api.New(api.Config{Addr: "127.0.0.1:0", Token: token, Node: bankA})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	c := &api.Client{Base: "http://" + srv.Addr(), Token: token}
	ctx := context.Background()
	want := custodian.Status()

	var res discovery.Resolution
	eventually(t, 30*time.Second, "bank-a to resolve custodian-b through its API", func() (err error) {
		res, err = c.Resolve(ctx, "custodian-b")
		return err
	})
	if res.Org != "custodian-b" || res.FinID != want.FinID || res.Source == "" || len(res.Nodes) != 1 {
		t.Fatalf("resolution = %+v, want org custodian-b, FinID %s, a source and one node", res, want.FinID)
	}
	n := res.Nodes[0]
	if n.Peer != custodian.ID() || n.Role != "member" || len(n.Addrs) == 0 || n.Seq == 0 || !n.Expires.After(time.Now()) {
		t.Fatalf("custodian-b's node = %+v, want peer %s, role member, addresses, a sequence number and a future expiry", n, custodian.ID())
	}
	if !slices.Equal(n.Services, []string{"custody"}) || !slices.Equal(n.Ledgers, []string{"custodian-b/embedded", "ethereum"}) {
		t.Fatalf("custodian-b advertises services %v ledgers %v, want [custody] [custodian-b/embedded ethereum]", n.Services, n.Ledgers)
	}

	orgsOf := func(list []discovery.Resolution) []string {
		var orgs []string
		for _, r := range list {
			orgs = append(orgs, r.Org)
		}
		return orgs
	}
	var all []discovery.Resolution
	eventually(t, 30*time.Second, "GET /v1/orgs to list bank-a and custodian-b", func() (err error) {
		if all, err = c.Orgs(ctx, discovery.Filter{}); err != nil {
			return err
		}
		if orgs := orgsOf(all); !slices.Contains(orgs, "bank-a") || !slices.Contains(orgs, "custodian-b") {
			return fmt.Errorf("listed %v", orgs)
		}
		return nil
	})
	for _, r := range all {
		if r.Org == "custodian-b" && (r.FinID != want.FinID || len(r.Nodes) != 1 || r.Nodes[0].Peer != custodian.ID()) {
			t.Fatalf("/v1/orgs lists custodian-b as %+v, want FinID %s and its one node %s", r, want.FinID, custodian.ID())
		}
	}

	custody, err := c.Orgs(ctx, discovery.Filter{Service: "custody", Ledger: "ethereum"})
	if err != nil {
		t.Fatal(err)
	}
	if got := orgsOf(custody); !slices.Equal(got, []string{"custodian-b"}) {
		t.Fatalf("orgs offering custody on ethereum = %v, want [custodian-b]", got)
	}
	// Nothing matches: an empty JSON array, not null.
	resp, body := call(t, srv, http.MethodGet, "/v1/orgs?service=nosuch-service", token, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("orgs with an unmatched filter: %d %s", resp.StatusCode, body)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || string(raw["orgs"]) != "[]" {
		t.Fatalf("orgs with an unmatched filter = %s, want {\"orgs\": []}", body)
	}

	// The status shows what the node advertises.
	st, err := (&api.Client{Base: "http://" + srv.Addr(), Token: token}).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Advertisement == nil || st.Advertisement.Peer != bankA.ID() || st.Advertisement.Seq == 0 {
		t.Fatalf("bank-a's status advertisement = %+v, want its own, with a sequence number", st.Advertisement)
	}
}
