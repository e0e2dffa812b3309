package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/finp2p/go-finp2p/api"
	"github.com/finp2p/go-finp2p/internal/testnet"
	"github.com/finp2p/go-finp2p/ledger"
	"github.com/finp2p/go-finp2p/node"
)

// TestAssetTransactionsOnNetwork: through the members' APIs, member-2
// creates an asset, issues it to a member-1 user and grants member-1
// transact; member-1 transfers between its users and gets the owner's
// signed receipt, which it reads back and verifies, and a tampered copy
// does not verify; the owner's balances show the move; a retry with the
// same key returns the same receipt; member-3, outside the ACL, is refused.
func TestAssetTransactionsOnNetwork(t *testing.T) {
	net := testnet.New(t, testnet.Options{Members: 3, Join: true})
	nodes := net.Nodes()
	m1, m2, m3 := nodes[2], nodes[3], nodes[4]
	srv1, c1 := serveAPI(t, m1)
	srv2, c2 := serveAPI(t, m2)
	srv3, c3 := serveAPI(t, m3)
	ctx := context.Background()

	// The owner hands its ACL to member-1; member-1 and member-3 send their
	// requests to the owner's node.
	testnet.Eventually(t, 30*time.Second, "member-2 to resolve member-1", func() bool { return resolvesOrg(m2, "member-1", m1) })
	for _, nd := range []*node.Node{m1, m3} {
		testnet.Eventually(t, 30*time.Second, nd.Self().OrgID+" to resolve member-2", func() bool { return resolvesOrg(nd, "member-2", m2) })
	}

	local := uuid.NewString()
	bond := "member-2:102:" + local
	// Accounts are not resource ids: the ledger takes any account name.
	const alice, bob = "alice@member-1", "bob@member-1"
	balances := func(t *testing.T) (string, string) {
		t.Helper()
		a, err := c2.Balance(ctx, bond, alice)
		if err != nil {
			t.Fatal(err)
		}
		b, err := c2.Balance(ctx, bond, bob)
		if err != nil {
			t.Fatal(err)
		}
		return a.Current, b.Current
	}

	t.Run("owner creates and issues", func(t *testing.T) {
		tx, err := c2.CreateAsset(ctx, api.CreateAssetRequest{Asset: bond, Decimals: 2, IdempotencyKey: "create-1"})
		if err != nil {
			t.Fatal(err)
		}
		if tx.Operation != ledger.OpCreateAsset || tx.Asset != bond || tx.Decimals != 2 || tx.ID == "" || tx.Hash == "" {
			t.Fatalf("create: %+v", tx)
		}
		again, err := c2.CreateAsset(ctx, api.CreateAssetRequest{Asset: "finp2p://member-2/102/" + local, Decimals: 2, IdempotencyKey: "create-1"})
		if err != nil || again.ID != tx.ID {
			t.Fatalf("create retried with its key: %+v, %v; want transaction %s again", again, err, tx.ID)
		}
		_, err = c2.CreateAsset(ctx, api.CreateAssetRequest{Asset: bond, Decimals: 2, IdempotencyKey: "create-2"})
		wantProblem(t, "create again with another key", err, http.StatusConflict, "asset-exists", bond)
		_, err = c1.CreateAsset(ctx, api.CreateAssetRequest{Asset: bond, Decimals: 2, IdempotencyKey: "create-1"})
		wantProblem(t, "member-1 creating member-2's asset", err, http.StatusForbidden, "not-owner", `"member-2"`)

		issued, err := c2.IssueAsset(ctx, bond, api.IssueRequest{To: alice, Quantity: "100", IdempotencyKey: "issue-1"})
		if err != nil {
			t.Fatal(err)
		}
		if issued.Operation != ledger.OpIssue || issued.To != alice || issued.Quantity != "100" || issued.Version != tx.Version+1 {
			t.Fatalf("issue: %+v, want 100 to %s at version %d", issued, alice, tx.Version+1)
		}
		_, err = c2.IssueAsset(ctx, bond, api.IssueRequest{To: alice, Quantity: "1.001", IdempotencyKey: "issue-2"})
		wantProblem(t, "issue with three decimals", err, http.StatusBadRequest, "bad-quantity", "1.001")
		_, err = c2.IssueAsset(ctx, "member-2:102:"+uuid.NewString(), api.IssueRequest{To: alice, Quantity: "1", IdempotencyKey: "issue-3"})
		wantProblem(t, "issue of an asset never created", err, http.StatusNotFound, "unknown-asset")
		if a, b := balances(t); a != "100" || b != "0" {
			t.Fatalf("balances after issue: alice %s bob %s, want 100 and 0", a, b)
		}

		acl, err := c2.SetACL(ctx, bond, api.ACLRequest{Grants: map[string]string{"member-1": "transact"}})
		if err != nil || acl.Warning != "" {
			t.Fatalf("grant member-1 transact: %+v, %v", acl, err)
		}
	})

	transfer := api.TransactionRequest{Operation: ledger.OpTransfer, Asset: bond, From: alice, To: bob, Quantity: "40", IdempotencyKey: "transfer-1"}
	var first api.ReceiptResponse
	t.Run("transfer with a signed receipt", func(t *testing.T) {
		var err error
		first, err = c1.Execute(ctx, transfer)
		if err != nil {
			t.Fatal(err)
		}
		tx := first.Transaction
		if tx.Operation != ledger.OpTransfer || tx.Asset != bond || tx.From != alice || tx.To != bob || tx.Quantity != "40" ||
			tx.IdempotencyKey != "member-1/transfer-1" || tx.Hash == "" {
			t.Fatalf("receipt's transaction: %+v", tx)
		}
		if first.SignerOrg != "member-2" || first.SignerPeer != m2.ID().String() || first.RequesterOrg != "member-1" ||
			len(first.RequestHash) != 64 || len(first.Receipt) == 0 || time.Since(first.SignedAt) > time.Minute {
			t.Fatalf("receipt: %+v", first)
		}
		if a, b := balances(t); a != "60" || b != "40" {
			t.Fatalf("balances after the transfer: alice %s bob %s, want 60 and 40", a, b)
		}
		_, err = c1.Balance(ctx, bond, alice)
		wantProblem(t, "member-1 reading the owner's ledger", err, http.StatusForbidden, "not-owner")

		// The answer on the wire: 201, the receipt's location, base64.
		body, _ := json.Marshal(transfer)
		resp, data := call(t, srv1, http.MethodPost, "/v1/transactions", token, string(body))
		var raw map[string]any
		if err := json.Unmarshal(data, &raw); resp.StatusCode != http.StatusCreated || err != nil {
			t.Fatalf("POST /v1/transactions: %d %s", resp.StatusCode, data)
		}
		if loc := resp.Header.Get("Location"); loc != "/v1/receipts/"+first.Transaction.ID {
			t.Errorf("Location %q, want /v1/receipts/%s", loc, first.Transaction.ID)
		}
		if raw["receipt"] != base64.StdEncoding.EncodeToString(first.Receipt) || raw["signer_org"] != "member-2" || raw["request_hash"] != first.RequestHash {
			t.Errorf("POST /v1/transactions answered %s", data)
		}
	})

	t.Run("idempotent retry", func(t *testing.T) {
		again, err := c1.Execute(ctx, transfer)
		if err != nil {
			t.Fatal(err)
		}
		if again.Transaction.ID != first.Transaction.ID || !bytes.Equal(again.Receipt, first.Receipt) {
			t.Fatalf("retry got transaction %s, the first %s", again.Transaction.ID, first.Transaction.ID)
		}
		if a, b := balances(t); a != "60" || b != "40" {
			t.Fatalf("balances after the retry: alice %s bob %s, want 60 and 40", a, b)
		}
		other := transfer
		other.Quantity = "1"
		_, err = c1.Execute(ctx, other)
		wantProblem(t, "the key reused for another quantity", err, http.StatusConflict, "idempotency-conflict", "transfer-1")
	})

	t.Run("receipt read back and verified", func(t *testing.T) {
		got, err := c1.Receipt(ctx, first.Transaction.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Receipt, first.Receipt) || got.Transaction != first.Transaction || got.SignerOrg != "member-2" {
			t.Fatalf("GET receipt: %+v, want the one the transfer returned", got)
		}
		v, err := c1.VerifyReceipt(ctx, got.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		if !v.Valid || v.Transaction != first.Transaction || v.SignerOrg != "member-2" || v.RequestHash != first.RequestHash {
			t.Fatalf("verify: %+v", v)
		}
		// Any member verifies it, here member-3 with the JSON body.
		body, _ := json.Marshal(api.VerifyReceiptRequest{Receipt: got.Receipt})
		resp, data := call(t, srv3, http.MethodPost, "/v1/receipts/verify", token, string(body))
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(data), `"valid": true`) || !strings.Contains(string(data), first.Transaction.ID) {
			t.Fatalf("member-3 verifying the JSON body: %d %s", resp.StatusCode, data)
		}

		_, err = c1.Receipt(ctx, "0123456789abcdef0123456789abcdef")
		wantProblem(t, "an unknown transaction", err, http.StatusNotFound, "receipt-not-found")
		_, err = c3.Receipt(ctx, first.Transaction.ID)
		wantProblem(t, "member-3, which did not ask for it", err, http.StatusNotFound, "receipt-not-found")
	})

	t.Run("tampered receipt", func(t *testing.T) {
		for _, i := range []int{0, len(first.Receipt) / 3, len(first.Receipt) / 2, len(first.Receipt) - 1} {
			tampered := bytes.Clone(first.Receipt)
			tampered[i] ^= 0x01
			_, err := c1.VerifyReceipt(ctx, tampered)
			wantProblem(t, "receipt with a byte changed", err, http.StatusUnprocessableEntity, "receipt-invalid")
		}
		_, err := c1.VerifyReceipt(ctx, []byte("not a receipt"))
		wantProblem(t, "not a receipt", err, http.StatusUnprocessableEntity, "receipt-invalid", "malformed")
	})

	t.Run("refusals", func(t *testing.T) {
		version, err := m2.Ledger().Version(ctx)
		if err != nil {
			t.Fatal(err)
		}
		much := transfer
		much.Quantity, much.IdempotencyKey = "1000", "transfer-2"
		_, err = c1.Execute(ctx, much)
		wantProblem(t, "more than alice holds", err, http.StatusUnprocessableEntity, "insufficient-balance", alice)

		outside := transfer
		outside.IdempotencyKey = "outside-1"
		_, err = c3.Execute(ctx, outside)
		wantProblem(t, "member-3, outside the ACL", err, http.StatusForbidden, "access-denied", "member-3")

		bad := transfer
		bad.Quantity, bad.IdempotencyKey = "0.001", "transfer-3"
		_, err = c1.Execute(ctx, bad)
		wantProblem(t, "three decimals", err, http.StatusBadRequest, "bad-quantity")

		release := api.TransactionRequest{Operation: ledger.OpRelease, Asset: bond, HoldID: "no-such-hold", To: alice, IdempotencyKey: "release-0"}
		_, err = c1.Execute(ctx, release)
		wantProblem(t, "release of an unknown hold", err, http.StatusNotFound, "unknown-hold", "no-such-hold")

		if after, _ := m2.Ledger().Version(ctx); after != version {
			t.Fatalf("ledger version moved from %d to %d on refused requests", version, after)
		}
	})

	t.Run("hold and release", func(t *testing.T) {
		hold, err := c1.Execute(ctx, api.TransactionRequest{Operation: ledger.OpHold, Asset: bond, From: bob, Quantity: "10", IdempotencyKey: "hold-1"})
		if err != nil {
			t.Fatal(err)
		}
		bal, err := c2.Balance(ctx, bond, bob)
		if err != nil || bal.Current != "40" || bal.Available != "30" || bal.Held != "10" {
			t.Fatalf("bob's balance with 10 held: %+v, %v", bal, err)
		}
		released, err := c1.Execute(ctx, api.TransactionRequest{Operation: ledger.OpRelease, Asset: bond, HoldID: hold.Transaction.ID, To: alice, IdempotencyKey: "release-1"})
		if err != nil {
			t.Fatal(err)
		}
		if released.Transaction.HoldID != hold.Transaction.ID || released.Transaction.Operation != ledger.OpRelease {
			t.Fatalf("release: %+v", released.Transaction)
		}
		if a, b := balances(t); a != "70" || b != "30" {
			t.Fatalf("balances after the release: alice %s bob %s, want 70 and 30", a, b)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		enc := func(v any) string { b, _ := json.Marshal(v); return string(b) }
		cases := []struct {
			name, method, path, contentType, body string
			status                                int
			kind, says                            string
		}{
			{"issue is not a transaction", "POST", "/v1/transactions", "", enc(api.TransactionRequest{Operation: ledger.OpIssue, Asset: bond, To: alice, Quantity: "1", IdempotencyKey: "k"}), 400, "bad-request", "POST /v1/assets"},
			{"unknown operation", "POST", "/v1/transactions", "", `{"operation":"steal","asset":"` + bond + `","idempotency_key":"k"}`, 400, "bad-request", `"steal"`},
			{"bad asset id", "POST", "/v1/transactions", "", enc(api.TransactionRequest{Operation: ledger.OpTransfer, Asset: "member-2:1:x", IdempotencyKey: "k"}), 400, "bad-resource-id", `type part "1"`},
			{"no idempotency key", "POST", "/v1/transactions", "", enc(api.TransactionRequest{Operation: ledger.OpTransfer, Asset: bond, From: alice, To: bob, Quantity: "1"}), 400, "bad-request", "idempotency key"},
			{"unknown field", "POST", "/v1/transactions", "", `{"operation":"transfer","amount":"1"}`, 400, "bad-json", `"amount"`},
			{"create with a bad id", "POST", "/v1/assets", "", enc(api.CreateAssetRequest{Asset: "member-2", IdempotencyKey: "k"}), 400, "bad-resource-id", "asset"},
			{"too many decimals", "POST", "/v1/assets", "", enc(api.CreateAssetRequest{Asset: "member-2:102:" + uuid.NewString(), Decimals: 40, IdempotencyKey: "k"}), 400, "bad-request", "decimals 40"},
			{"issue to nobody", "POST", "/v1/assets/" + bond + "/issue", "", enc(api.IssueRequest{Quantity: "1", IdempotencyKey: "k"}), 400, "bad-request", "to"},
			{"verify as text", "POST", "/v1/receipts/verify", "text/plain", "x", 415, "unsupported-media-type", "octet-stream"},
			{"verify nothing", "POST", "/v1/receipts/verify", "application/octet-stream", "", 400, "bad-request", "no receipt"},
			{"verify bad base64", "POST", "/v1/receipts/verify", "application/json", `{"receipt":"%%%"}`, 400, "bad-json", "base64"},
			{"balance query parameter", "GET", "/v1/assets/" + bond + "/balances/" + alice + "?x=1", "", "", 400, "bad-query", `"x"`},
			{"receipt query parameter", "GET", "/v1/receipts/" + first.Transaction.ID + "?x=1", "", "", 400, "bad-query", `"x"`},
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
		// The URI form, unescaped or escaped, names the asset in a path.
		for _, path := range []string{
			"/v1/assets/finp2p://member-2/102/" + local + "/balances/" + alice,
			"/v1/assets/finp2p:%2F%2Fmember-2%2F102%2F" + local + "/balances/" + alice,
		} {
			resp, body := call(t, srv2, http.MethodGet, path, token, "")
			var bal ledger.Balance
			if err := json.Unmarshal(body, &bal); resp.StatusCode != http.StatusOK || err != nil || bal.Asset != bond || bal.Account != alice || bal.Current != "70" {
				t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
			}
		}
	})

	t.Run("unauthenticated", func(t *testing.T) {
		version, err := m2.Ledger().Version(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ method, path, body string }{
			{http.MethodPost, "/v1/assets", mustJSON(t, api.CreateAssetRequest{Asset: "member-2:102:" + uuid.NewString(), IdempotencyKey: "k"})},
			{http.MethodPost, "/v1/assets/" + bond + "/issue", mustJSON(t, api.IssueRequest{To: alice, Quantity: "1", IdempotencyKey: "k"})},
			{http.MethodGet, "/v1/assets/" + bond + "/balances/" + alice, ""},
			{http.MethodPost, "/v1/transactions", mustJSON(t, api.TransactionRequest{Operation: ledger.OpTransfer, Asset: bond, From: alice, To: bob, Quantity: "1", IdempotencyKey: "k"})},
			{http.MethodGet, "/v1/receipts/" + first.Transaction.ID, ""},
			{http.MethodPost, "/v1/receipts/verify", mustJSON(t, api.VerifyReceiptRequest{Receipt: first.Receipt})},
		} {
			for _, tok := range []string{"", "wrong-token-wrong-token"} {
				for _, srv := range []*api.Server{srv1, srv2} {
					resp, data := call(t, srv, c.method, c.path, tok, c.body)
					var p api.Problem
					if err := json.Unmarshal(data, &p); resp.StatusCode != http.StatusUnauthorized || err != nil || p.Kind() != "unauthorized" {
						t.Fatalf("%s %s with token %q: %d %s, want a 401 unauthorized problem", c.method, c.path, tok, resp.StatusCode, data)
					}
				}
			}
		}
		if after, _ := m2.Ledger().Version(ctx); after != version {
			t.Fatalf("ledger version moved from %d to %d on unauthenticated calls", version, after)
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
