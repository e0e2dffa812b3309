package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/finp2p/go-finp2p/api"
	"github.com/finp2p/go-finp2p/internal/testnet"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/resource"
)

// serveAPI starts an API server for nd, closed when the test ends, and
// returns it with a client for it.
func serveAPI(t *testing.T, nd *node.Node) (*api.Server, *api.Client) {
	t.Helper()
	srv, err := api.New(api.Config{Addr: "127.0.0.1:0", Token: token, Node: nd})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	return srv, &api.Client{Base: "http://" + srv.Addr(), Token: token}
}

// wantProblem fails unless err carries a problem of kind whose detail says
// each of says.
func wantProblem(t *testing.T, what string, err error, status int, kind string, says ...string) {
	t.Helper()
	var p *api.Problem
	if !errors.As(err, &p) || p.Status != status || p.Kind() != kind {
		t.Fatalf("%s: %v, want a %d %s problem", what, err, status, kind)
	}
	for _, s := range says {
		if !strings.Contains(p.Detail, s) {
			t.Fatalf("%s: problem detail %q does not say %q", what, p.Detail, s)
		}
	}
}

// TestResourcesOnNetwork: through the members' APIs, member-2 advertises a
// public asset that member-3 finds and a restricted one that only member-1
// (its audience) finds; nobody advertises another org's resource; a
// withdrawn resource is not found any more.
func TestResourcesOnNetwork(t *testing.T) {
	net := testnet.New(t, testnet.Options{Members: 3, Join: true})
	nodes := net.Nodes()
	m1, m2, m3 := nodes[2], nodes[3], nodes[4]
	_, c1 := serveAPI(t, m1)
	srv2, c2 := serveAPI(t, m2)
	srv3, c3 := serveAPI(t, m3)
	ctx := context.Background()

	// A restricted advertisement goes to the nodes member-2 resolves
	// member-1 to; public ones go into the DHT, and member-3 looks there.
	eventually(t, 30*time.Second, "member-2 to resolve member-1", func() error {
		_, err := m2.Resolve(ctx, "member-1")
		return err
	})
	for _, nd := range []*node.Node{m2, m3} {
		testnet.Eventually(t, 30*time.Second, nd.Self().OrgID+"'s DHT routing table to have peers", func() bool {
			return nd.DHT().RoutingTable().Size() > 0
		})
	}

	local := uuid.NewString()
	public := "member-2:102:" + local
	publicURI := "finp2p://member-2/102/" + local
	t.Run("public advertisement found by another member", func(t *testing.T) {
		info, err := c2.AdvertiseResource(ctx, public, "assets/"+local, nil)
		if err != nil {
			t.Fatal(err)
		}
		if info.Resource != public || info.Owner != "member-2" || info.Topic != "assets/"+local || info.Restricted ||
			info.Peer != m2.ID().String() || info.Seq == 0 || !info.Expires.After(time.Now()) {
			t.Fatalf("advertised %+v, want %s owned by member-2 from peer %s, public, with topic, sequence and future expiry", info, public, m2.ID())
		}
		var found node.ResourceInfo
		eventually(t, 20*time.Second, "member-3 to find member-2's public asset", func() (err error) {
			found, err = c3.FindResource(ctx, publicURI) // the URI form names the same resource
			return err
		})
		if found != info {
			t.Fatalf("member-3 found %+v, want what member-2 advertised, %+v", found, info)
		}
		// The path takes the canonical form, the URI form escaped and the URI
		// form as a person types it.
		for _, path := range []string{
			"/v1/resources/" + public,
			"/v1/resources/" + url.PathEscape(publicURI),
			"/v1/resources/" + publicURI,
		} {
			resp, body := call(t, srv3, http.MethodGet, path, token, "")
			var got node.ResourceInfo
			if err := json.Unmarshal(body, &got); resp.StatusCode != http.StatusOK || err != nil || got.Resource != public {
				t.Fatalf("GET %s: %d %s, want 200 and %s", path, resp.StatusCode, body, public)
			}
		}
	})

	restricted := "member-2:102:" + uuid.NewString()
	t.Run("restricted advertisement found only by its audience", func(t *testing.T) {
		info, err := c2.AdvertiseResource(ctx, restricted, "", []string{"member-1"})
		if err != nil {
			t.Fatal(err)
		}
		if !info.Restricted || info.Owner != "member-2" {
			t.Fatalf("advertised %+v, want a restricted resource of member-2", info)
		}
		found, err := c1.FindResource(ctx, restricted)
		if err != nil {
			t.Fatalf("member-1, in the audience: %v", err)
		}
		if found != info {
			t.Fatalf("member-1 found %+v, want %+v", found, info)
		}
		_, err = c3.FindResource(ctx, restricted)
		wantProblem(t, "member-3, not in the audience", err, http.StatusNotFound, "resource-not-found", restricted)
	})

	t.Run("another org's resource", func(t *testing.T) {
		_, err := c3.AdvertiseResource(ctx, public, "", nil)
		wantProblem(t, "member-3 advertising member-2's asset", err, http.StatusForbidden, "not-owner", `"member-2"`, `"member-3"`)
	})

	t.Run("bad requests", func(t *testing.T) {
		badRequests(t, srv2, "member-2")
	})

	t.Run("withdrawn", func(t *testing.T) {
		if err := c2.WithdrawResource(ctx, publicURI); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, "member-3 to stop finding the withdrawn asset", func() error {
			_, err := c3.FindResource(ctx, public)
			var p *api.Problem
			if errors.As(err, &p) && p.Kind() == "resource-not-found" && strings.Contains(p.Detail, "withdrawn") {
				return nil
			}
			return fmt.Errorf("find: %v", err)
		})
		resp, body := call(t, srv2, http.MethodDelete, "/v1/resources/"+restricted, token, "")
		if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
			t.Fatalf("DELETE the restricted asset: %d %q, want 204 and no body", resp.StatusCode, body)
		}
		_, err := c1.FindResource(ctx, restricted)
		wantProblem(t, "member-1 after the restricted withdrawal", err, http.StatusNotFound, "resource-not-found", "withdrawn")

		never := "member-2:102:" + uuid.NewString()
		err = c2.WithdrawResource(ctx, never)
		wantProblem(t, "withdrawing what was never advertised", err, http.StatusNotFound, "resource-not-found", never)
	})

	t.Run("unauthenticated", func(t *testing.T) {
		body := fmt.Sprintf(`{"resource":%q}`, "member-2:102:"+uuid.NewString())
		for _, c := range []struct{ method, path, body string }{
			{http.MethodPost, "/v1/resources", body},
			{http.MethodGet, "/v1/resources/" + public, ""},
			{http.MethodDelete, "/v1/resources/" + restricted, ""},
		} {
			for _, tok := range []string{"", "wrong-token-wrong-token"} {
				resp, data := call(t, srv2, c.method, c.path, tok, c.body)
				var p api.Problem
				if err := json.Unmarshal(data, &p); resp.StatusCode != http.StatusUnauthorized || err != nil || p.Kind() != "unauthorized" {
					t.Fatalf("%s %s with token %q: %d %s, want a 401 unauthorized problem", c.method, c.path, tok, resp.StatusCode, data)
				}
			}
		}
	})
}

// badRequests checks that malformed resource requests to a node of org are
// refused with the right problem, before the node is asked.
func badRequests(t *testing.T, srv *api.Server, org string) {
	t.Helper()
	enc := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	cases := []struct {
		name, method, path, body string
		status                   int
		kind, says               string
	}{
		{"type not a standard number", "POST", "/v1/resources", enc(api.AdvertiseRequest{Resource: org + ":1:x"}), 400, "bad-resource-id", "type part"},
		{"missing id part", "POST", "/v1/resources", enc(api.AdvertiseRequest{Resource: org + ":102"}), 400, "bad-resource-id", "missing id part"},
		{"no resource", "POST", "/v1/resources", `{"topic":"t"}`, 400, "bad-resource-id", "empty"},
		{"upper-case scheme", "POST", "/v1/resources", enc(api.AdvertiseRequest{Resource: "FINP2P://" + org + "/102/x"}), 400, "bad-resource-id", "FINP2P"},
		{"bad org in to", "POST", "/v1/resources", enc(api.AdvertiseRequest{Resource: org + ":102:x", To: []string{"member-1", "Bank_B"}}), 400, "bad-org", `to[1]`},
		{"topic too long", "POST", "/v1/resources", enc(api.AdvertiseRequest{Resource: org + ":102:x", Topic: strings.Repeat("t", resource.MaxTopicLen+1)}), 400, "bad-topic", "at most"},
		{"unknown field", "POST", "/v1/resources", `{"resource":"` + org + `:102:x","colour":"red"}`, 400, "bad-json", `"colour"`},
		{"not json", "POST", "/v1/resources", `{"resource":`, 400, "bad-json", "request body"},
		{"oversized", "POST", "/v1/resources", `{"resource":"` + strings.Repeat("a", api.MaxRequestBody) + `"}`, 413, "body-too-large", "bytes"},
		{"bad id in path", "GET", "/v1/resources/" + org + ":102:a%20b", "", 400, "bad-resource-id", `' '`},
		{"slashes in canonical form", "GET", "/v1/resources/" + org + "/102/x", "", 400, "bad-resource-id", "want org:type:id"},
		{"URI form with a query", "GET", "/v1/resources/finp2p:%2F%2F" + org + "%2F102%2Fx%3Fa=b", "", 400, "bad-resource-id", "query"},
		{"query parameter", "GET", "/v1/resources/" + org + ":102:x?colour=red", "", 400, "bad-query", `"colour"`},
		{"bad id to withdraw", "DELETE", "/v1/resources/" + org + ":0102:x", "", 400, "bad-resource-id", "leading zeros"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := call(t, srv, c.method, c.path, token, c.body)
			var p api.Problem
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatalf("%s %s: %d %s: not a problem: %v", c.method, c.path, resp.StatusCode, body, err)
			}
			if resp.StatusCode != c.status || p.Kind() != c.kind || !strings.Contains(p.Detail, c.says) {
				t.Fatalf("%s %s: status %d problem %+v, want %d %s saying %s", c.method, c.path, resp.StatusCode, p, c.status, c.kind, c.says)
			}
		})
	}
}
