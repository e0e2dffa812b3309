package api_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/finp2p/go-finp2p/api"
	"github.com/finp2p/go-finp2p/internal/testnet"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/resource"
)

// TestUsersAndPrivateDataOnNetwork: through the members' APIs, member-1
// creates a user and grants member-2 query on it; member-2 gets the user's
// details from member-1's node, and the new ones once member-1 replaces
// them, while member-3, outside the ACL, is refused and member-2 may not set
// them; every call needs the token.
func TestUsersAndPrivateDataOnNetwork(t *testing.T) {
	net := testnet.New(t, testnet.Options{Members: 3, Join: true})
	nodes := net.Nodes()
	m1, m2, m3 := nodes[2], nodes[3], nodes[4]
	srv1, c1 := serveAPI(t, m1)
	_, c2 := serveAPI(t, m2)
	_, c3 := serveAPI(t, m3)
	ctx := context.Background()

	// The owner hands its ACL to member-2; member-2 and member-3 send their
	// queries to the owner's node.
	testnet.Eventually(t, 30*time.Second, "member-1 to resolve member-2", func() bool { return resolvesOrg(m1, "member-2", m2) })
	for _, nd := range []*node.Node{m2, m3} {
		testnet.Eventually(t, 30*time.Second, nd.Self().OrgID+" to resolve member-1", func() bool { return resolvesOrg(nd, "member-1", m1) })
	}

	details := []byte(`{"name": "Alice", "country": "FR"}`)
	var user node.User
	t.Run("create a user", func(t *testing.T) {
		var err error
		user, err = c1.CreateUser(ctx, details)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := hex.DecodeString(user.FinID)
		if err != nil || len(user.FinID) != 66 || (raw[0] != 2 && raw[0] != 3) {
			t.Fatalf("FinID %q, want 66 hex characters of a compressed public key, starting 02 or 03", user.FinID)
		}
		want, _ := resource.NewID("member-1", resource.TypeOwner, user.FinID)
		if user.Resource != want {
			t.Fatalf("user resource %s, want %s", user.Resource, want)
		}
		if got, err := c1.QueryPrivateData(ctx, user.Resource.String()); err != nil || !bytes.Equal(got, details) {
			t.Fatalf("the owner reading the details: %q, %v; want %q", got, err, details)
		}

		// On the wire: JSON details are taken as bytes; 201 with the
		// location of the user's private data.
		resp, data := call(t, srv1, http.MethodPost, "/v1/users", token, string(details))
		var other node.User
		if err := json.Unmarshal(data, &other); resp.StatusCode != http.StatusCreated || err != nil || other.FinID == user.FinID {
			t.Fatalf("POST /v1/users: %d %s, want 201 and another user", resp.StatusCode, data)
		}
		if loc, want := resp.Header.Get("Location"), "/v1/resources/"+url.PathEscape(other.Resource.String())+"/private"; loc != want {
			t.Errorf("Location %q, want %q", loc, want)
		}
		_, err = c1.CreateUser(ctx, make([]byte, node.MaxPrivateData+1))
		wantProblem(t, "create with details over the limit", err, http.StatusRequestEntityTooLarge, "too-large")
	})

	t.Run("query under the owner's ACL", func(t *testing.T) {
		id := user.Resource.String()
		acl, err := c1.SetACL(ctx, id, api.ACLRequest{Grants: map[string]string{"member-2": "query"}})
		if err != nil || acl.Warning != "" {
			t.Fatalf("grant member-2 query: %+v, %v", acl, err)
		}
		if got, err := c2.QueryPrivateData(ctx, id); err != nil || !bytes.Equal(got, details) {
			t.Fatalf("member-2 querying: %q, %v; want %q", got, err, details)
		}
		_, err = c3.QueryPrivateData(ctx, id)
		wantProblem(t, "member-3 querying", err, http.StatusForbidden, "access-denied", "member-3")

		err = c2.SetPrivateData(ctx, id, []byte("forged"))
		wantProblem(t, "member-2 setting member-1's user", err, http.StatusForbidden, "not-owner")
		err = c1.SetPrivateData(ctx, id, make([]byte, node.MaxPrivateData+1))
		wantProblem(t, "details over the limit", err, http.StatusRequestEntityTooLarge, "too-large")

		updated := []byte(`{"name": "Alice", "country": "DE"}`)
		if err := c1.SetPrivateData(ctx, id, updated); err != nil {
			t.Fatal(err)
		}
		if got, err := c2.QueryPrivateData(ctx, "finp2p://member-1/101/"+user.FinID); err != nil || !bytes.Equal(got, updated) {
			t.Fatalf("member-2 querying after the update: %q, %v; want %q", got, err, updated)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		_, err := c1.QueryPrivateData(ctx, "member-1:101:nobody")
		wantProblem(t, "an unknown user", err, http.StatusNotFound, "resource-not-found")
		resp, data := call(t, srv1, http.MethodGet, "/v1/resources/member-1:1:x/private", token, "")
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(data), "bad-resource-id") {
			t.Errorf("GET with a malformed id: %d %s, want 400 bad-resource-id", resp.StatusCode, data)
		}
		req, _ := http.NewRequest(http.MethodPost, "http://"+srv1.Addr()+"/v1/users", strings.NewReader("name: Alice"))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "text/plain")
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("POST /v1/users as text/plain: %v %v, want 415", resp, err)
		} else {
			resp.Body.Close()
		}
	})

	t.Run("every call needs the token", func(t *testing.T) {
		path := "/v1/resources/" + user.Resource.String() + "/private"
		for _, c := range []struct{ method, path, body string }{
			{http.MethodPost, "/v1/users", "{}"},
			{http.MethodGet, path, ""},
			{http.MethodPut, path, "x"},
		} {
			resp, _ := call(t, srv1, c.method, c.path, "", c.body)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s without a token: %d, want 401", c.method, c.path, resp.StatusCode)
			}
		}
	})
}
