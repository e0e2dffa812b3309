package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/finp2p/go-finp2p/api"
	"github.com/finp2p/go-finp2p/internal/testnet"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/resource"
)

// resolvesOrg reports whether from resolves org to the node p.
func resolvesOrg(from *node.Node, org string, p *node.Node) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := from.Resolve(ctx, org)
	if err != nil {
		return false
	}
	for _, nd := range res.Nodes {
		if nd.Peer == p.ID() {
			return true
		}
	}
	return false
}

// collectUpdates reads n updates from ch, or fails at the deadline.
func collectUpdates(t *testing.T, who string, ch <-chan node.Update, n int) []node.Update {
	t.Helper()
	var got []node.Update
	deadline := time.After(20 * time.Second)
	for len(got) < n {
		select {
		case u, ok := <-ch:
			if !ok {
				t.Fatalf("%s: subscription closed after %d updates", who, len(got))
			}
			got = append(got, u)
		case <-deadline:
			t.Fatalf("%s: %d of %d updates within 20s", who, len(got), n)
		}
	}
	return got
}

// TestResourceUpdatesOnNetwork: through the members' APIs, member-2 sets the
// ACL of an asset granting member-1 read and subscribe and puts its state;
// member-1 gets the state and member-3 is refused; member-1 subscribes over
// server-sent events and receives member-2's updates in order; nobody but
// the owner sets the ACL, the state or publishes.
func TestResourceUpdatesOnNetwork(t *testing.T) {
	net := testnet.New(t, testnet.Options{Members: 3, Join: true})
	nodes := net.Nodes()
	m1, m2, m3 := nodes[2], nodes[3], nodes[4]
	_, c1 := serveAPI(t, m1)
	srv2, c2 := serveAPI(t, m2)
	_, c3 := serveAPI(t, m3)
	ctx := context.Background()

	// The owner hands its ACL to member-1; member-1 and member-3 ask the
	// owner's node for the state and the updates.
	testnet.Eventually(t, 30*time.Second, "member-2 to resolve member-1", func() bool { return resolvesOrg(m2, "member-1", m1) })
	for _, nd := range []*node.Node{m1, m3} {
		testnet.Eventually(t, 30*time.Second, nd.Self().OrgID+" to resolve member-2", func() bool { return resolvesOrg(nd, "member-2", m2) })
	}

	local := uuid.NewString()
	asset := "member-2:102:" + local
	readSubscribe := resource.RightRead | resource.RightSubscribe
	t.Run("owner sets the ACL", func(t *testing.T) {
		acl, err := c2.SetACL(ctx, asset, api.ACLRequest{Grants: map[string]string{"member-1": "read, subscribe"}})
		if err != nil {
			t.Fatal(err)
		}
		if acl.Resource != asset || acl.Owner != "member-2" || acl.Version == 0 || acl.Public ||
			len(acl.Grants) != 1 || acl.Grants["member-1"] != readSubscribe || acl.Warning != "" {
			t.Fatalf("set ACL %+v, want %s owned by member-2, versioned, not public, member-1 read,subscribe, no warning", acl, asset)
		}
		held, err := c2.GetACL(ctx, "finp2p://member-2/102/"+local)
		if err != nil {
			t.Fatal(err)
		}
		if held.Version != acl.Version || held.Grants["member-1"] != readSubscribe {
			t.Fatalf("member-2 holds %+v, want what it set, %+v", held, acl)
		}
		// Delivered to member-1 before the call returned.
		got, err := c1.GetACL(ctx, asset)
		if err != nil {
			t.Fatalf("member-1, granted rights: %v", err)
		}
		if got.Version != acl.Version || got.Owner != "member-2" {
			t.Fatalf("member-1 holds %+v, want version %d", got, acl.Version)
		}
		_, err = c3.GetACL(ctx, asset)
		wantProblem(t, "member-3, not concerned", err, http.StatusNotFound, "acl-not-found", asset)

		// The JSON names the rights as ParseRights reads them.
		resp, body := call(t, srv2, http.MethodGet, "/v1/resources/"+asset+"/acl", token, "")
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"member-1": "read,subscribe"`) {
			t.Fatalf("GET acl: %d %s, want the grant as \"read,subscribe\"", resp.StatusCode, body)
		}
		again, err := c2.SetACL(ctx, asset, api.ACLRequest{Grants: map[string]string{"member-1": "read,subscribe"}})
		if err != nil || again.Version <= acl.Version {
			t.Fatalf("set again: %+v, %v; want a version above %d", again, err, acl.Version)
		}
	})

	state := []byte("nav 101.5\x00\xff")
	t.Run("state read under the ACL", func(t *testing.T) {
		if err := c2.PutState(ctx, asset, state); err != nil {
			t.Fatal(err)
		}
		got, err := c1.GetState(ctx, asset)
		if err != nil {
			t.Fatalf("member-1, granted read: %v", err)
		}
		if !bytes.Equal(got, state) {
			t.Fatalf("member-1 got state %q, want %q", got, state)
		}
		_, err = c3.GetState(ctx, asset)
		wantProblem(t, "member-3, not granted read", err, http.StatusForbidden, "access-denied", "member-3")

		err = c1.PutState(ctx, asset, []byte("forged"))
		wantProblem(t, "member-1 setting member-2's state", err, http.StatusForbidden, "not-owner", `"member-2"`)
		err = c2.PutState(ctx, asset, make([]byte, node.MaxResourceState+1))
		wantProblem(t, "oversized state", err, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprint(node.MaxResourceState))
		// The state is unchanged by the refused calls.
		if got, err := c1.GetState(ctx, asset); err != nil || !bytes.Equal(got, state) {
			t.Fatalf("member-1 got state %q, %v after refused writes, want %q", got, err, state)
		}
	})

	t.Run("updates over server-sent events", func(t *testing.T) {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		sub, err := c1.Subscribe(sctx, asset)
		if err != nil {
			t.Fatal(err)
		}
		// A raw stream as well, to check the wire format.
		raw := rawStream(t, sctx, c1, asset)
		topic := protocols.TopicResourcePrefix + asset
		testnet.Eventually(t, 20*time.Second, "member-2 to see member-1 on the topic", func() bool {
			return len(m2.PubSub().Router().ListPeers(topic)) > 0
		})
		for i := 1; i <= 5; i++ {
			resp, err := c2.PublishUpdate(ctx, asset, fmt.Appendf(nil, "update-%d", i))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Seq != uint64(i) || resp.Warning != "" {
				t.Fatalf("publish %d: %+v, want seq %d and no warning", i, resp, i)
			}
		}
		for i, u := range collectUpdates(t, "member-1", sub, 5) {
			want := uint64(i + 1)
			if u.Seq != want || string(u.Data) != fmt.Sprintf("update-%d", want) || u.Resource != asset || u.Publisher != m2.ID() {
				t.Fatalf("member-1's update %d is %+v, want seq %d from %s", i, u, want, m2.ID())
			}
		}
		event := raw.next(t)
		var u node.Update
		if !strings.HasPrefix(event, "id: 1\nevent: update\ndata: {") || json.Unmarshal([]byte(strings.TrimPrefix(event, "id: 1\nevent: update\ndata: ")), &u) != nil || string(u.Data) != "update-1" {
			t.Fatalf("first event on the wire is %q, want id 1, event update and the update as JSON", event)
		}

		_, err = c1.PublishUpdate(ctx, asset, []byte("forged"))
		wantProblem(t, "member-1 publishing on member-2's asset", err, http.StatusForbidden, "not-owner", `"member-2"`)
		_, err = c2.PublishUpdate(ctx, asset, make([]byte, node.MaxUpdateSize+1))
		wantProblem(t, "oversized update", err, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprint(node.MaxUpdateSize))

		// The subscription ends with its context.
		cancel()
		for range sub {
		}
	})

	t.Run("subscription refused by the ACL held", func(t *testing.T) {
		// member-1 loses subscribe; the ACL it holds then refuses at once.
		if _, err := c2.SetACL(ctx, asset, api.ACLRequest{Grants: map[string]string{"member-1": "read"}}); err != nil {
			t.Fatal(err)
		}
		_, err := c1.Subscribe(ctx, asset)
		wantProblem(t, "member-1 without subscribe", err, http.StatusForbidden, "access-denied", "subscribe")
	})

	t.Run("bad requests", func(t *testing.T) {
		enc := func(v any) string { b, _ := json.Marshal(v); return string(b) }
		aclPath := "/v1/resources/" + asset + "/acl"
		cases := []struct {
			name, method, path, contentType, body string
			status                                int
			kind, says                            string
		}{
			{"unknown right", "PUT", aclPath, "", enc(api.ACLRequest{Grants: map[string]string{"member-1": "read,fly"}}), 400, "bad-acl", `"fly"`},
			{"no rights", "PUT", aclPath, "", enc(api.ACLRequest{Grants: map[string]string{"member-1": ""}}), 400, "bad-acl", "empty"},
			{"grant to the owner", "PUT", aclPath, "", enc(api.ACLRequest{Grants: map[string]string{"member-2": "read"}}), 400, "bad-acl", "owner"},
			{"grant to a bad org", "PUT", aclPath, "", enc(api.ACLRequest{Grants: map[string]string{"Member_1": "read"}}), 400, "bad-acl", "Member_1"},
			{"another org's ACL", "PUT", "/v1/resources/member-1:102:x/acl", "", enc(api.ACLRequest{Public: true}), 403, "not-owner", `"member-1"`},
			{"unknown ACL field", "PUT", aclPath, "", `{"public":true,"everyone":true}`, 400, "bad-json", `"everyone"`},
			{"state as JSON", "PUT", "/v1/resources/" + asset + "/state", "application/json", `{}`, 415, "unsupported-media-type", "octet-stream"},
			{"bad id", "GET", "/v1/resources/member-2:1:x/acl", "", "", 400, "bad-resource-id", `type part "1"`},
			{"query parameter", "GET", "/v1/resources/" + asset + "/state?x=1", "", "", 400, "bad-query", `"x"`},
			// An id's parts hold no slash: this is resource "acl", whose
			// ACL nobody set.
			{"URI form ending in a subpath name", "GET", "/v1/resources/finp2p://member-2/102/acl/acl", "", "", 404, "acl-not-found", "member-2:102:acl"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				req, err := http.NewRequest(c.method, "http://"+srv2.Addr()+c.path, strings.NewReader(c.body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", "Bearer "+token)
				if c.contentType != "" {
					req.Header.Set("Content-Type", c.contentType)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var p api.Problem
				if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
					t.Fatalf("%s %s: %d: not a problem: %v", c.method, c.path, resp.StatusCode, err)
				}
				if resp.StatusCode != c.status || p.Kind() != c.kind || !strings.Contains(p.Detail, c.says) {
					t.Fatalf("%s %s: status %d problem %+v, want %d %s saying %s", c.method, c.path, resp.StatusCode, p, c.status, c.kind, c.says)
				}
			})
		}
		// The URI form, unescaped, reaches the asset's ACL.
		resp, body := call(t, srv2, http.MethodGet, "/v1/resources/finp2p://member-2/102/"+local+"/acl", token, "")
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), asset) {
			t.Fatalf("GET the ACL by the URI form: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("unauthenticated", func(t *testing.T) {
		base := "/v1/resources/" + asset
		for _, c := range []struct{ method, path, body string }{
			{http.MethodPut, base + "/acl", `{"public":true}`},
			{http.MethodGet, base + "/acl", ""},
			{http.MethodPut, base + "/state", ""},
			{http.MethodGet, base + "/state", ""},
			{http.MethodPost, base + "/updates", ""},
			{http.MethodGet, base + "/updates", ""},
		} {
			for _, tok := range []string{"", "wrong-token-wrong-token"} {
				resp, data := call(t, srv2, c.method, c.path, tok, c.body)
				var p api.Problem
				if err := json.Unmarshal(data, &p); resp.StatusCode != http.StatusUnauthorized || err != nil || p.Kind() != "unauthorized" {
					t.Fatalf("%s %s with token %q: %d %s, want a 401 unauthorized problem", c.method, c.path, tok, resp.StatusCode, data)
				}
			}
		}
		// Nothing changed: the ACL is still the last one set, not public.
		if acl, err := c2.GetACL(ctx, asset); err != nil || acl.Public {
			t.Fatalf("ACL after unauthenticated calls: %+v, %v", acl, err)
		}
	})

	t.Run("closing the server ends its streams", func(t *testing.T) {
		// A second server on the owner's node, whose subscription to its own
		// asset needs nobody else.
		srv, c := serveAPI(t, m2)
		sub, err := c.Subscribe(ctx, asset)
		if err != nil {
			t.Fatal(err)
		}
		closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := srv.Close(closeCtx); err != nil {
			t.Fatalf("close with a stream open: %v", err)
		}
		select {
		case _, ok := <-sub:
			if ok {
				t.Fatal("an update arrived on a stream of a closed server")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the stream did not end when the server closed")
		}
	})
}

// eventStream is a raw text/event-stream response.
type eventStream struct {
	r *bufio.Reader
}

// rawStream opens GET /v1/resources/{id}/updates without the client, checks
// the head of the answer and reads up to the subscribed comment.
func rawStream(t *testing.T, ctx context.Context, c *api.Client, id string) *eventStream {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+"/v1/resources/"+id+"/updates", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET updates: %d %s, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &eventStream{r: bufio.NewReader(resp.Body)}
	if first := s.next(t); first != ": subscribed" {
		t.Fatalf("the stream starts with %q, want the subscribed comment", first)
	}
	return s
}

// next reads one block of the stream, up to its blank line.
func (s *eventStream) next(t *testing.T) string {
	t.Helper()
	var lines []string
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("read the stream after %q: %v", lines, err)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			return strings.Join(lines, "\n")
		}
		lines = append(lines, line)
	}
}
