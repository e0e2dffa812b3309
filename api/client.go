package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/ledger"
	"github.com/finp2p/go-finp2p/node"
)

// Client calls a node's API; the finp2p subcommands use it.
type Client struct {
	// Base is the API's base URL, such as http://127.0.0.1:5001.
	Base string
	// Token is the bearer token from the node's repo.
	Token string
	// TokenFile, if set, is the file Token was read from; the error of a
	// refused token names it.
	TokenFile string
	// HTTP defaults to a client with a 30s timeout.
	HTTP *http.Client
}

// Status calls GET /v1/status.
func (c *Client) Status(ctx context.Context) (node.Status, error) {
	var st node.Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// PublishRevocationList calls POST /v1/revocations.
func (c *Client) PublishRevocationList(ctx context.Context, req RevocationRequest) (RevocationResponse, error) {
	var resp RevocationResponse
	err := c.do(ctx, http.MethodPost, "/v1/revocations", req, &resp)
	return resp, err
}

// Orgs calls GET /v1/orgs: the network's member organisations that match f.
func (c *Client) Orgs(ctx context.Context, f discovery.Filter) ([]discovery.Resolution, error) {
	q := url.Values{}
	for name, v := range map[string]string{"service": f.Service, "protocol": f.Protocol, "ledger": f.Ledger} {
		if v != "" {
			q.Set(name, v)
		}
	}
	path := "/v1/orgs"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var resp OrgsResponse
	if err := c.do(ctx, http.MethodGet, path, nil, &resp); err != nil {
		return nil, err
	}
	return resp.Orgs, nil
}

// Resolve calls GET /v1/orgs/{org}: the org's FinID and nodes. When the node
// knows no such org the error wraps a *Problem of kind "org-not-found".
func (c *Client) Resolve(ctx context.Context, org string) (discovery.Resolution, error) {
	var res discovery.Resolution
	err := c.do(ctx, http.MethodGet, "/v1/orgs/"+url.PathEscape(org), nil, &res)
	return res, err
}

// AdvertiseResource calls POST /v1/resources: it advertises one of the
// node's org's resources, publicly when to is empty, else only to those
// orgs. A refusal is a *Problem, such as "not-owner" or "bad-resource-id".
func (c *Client) AdvertiseResource(ctx context.Context, id, topic string, to []string) (node.ResourceInfo, error) {
	var info node.ResourceInfo
	err := c.do(ctx, http.MethodPost, "/v1/resources", AdvertiseRequest{Resource: id, Topic: topic, To: to}, &info)
	return info, err
}

// FindResource calls GET /v1/resources/{id}. When the node finds no
// advertisement (or only a withdrawal) the error wraps a *Problem of kind
// "resource-not-found".
func (c *Client) FindResource(ctx context.Context, id string) (node.ResourceInfo, error) {
	var info node.ResourceInfo
	err := c.do(ctx, http.MethodGet, resourcesPath+url.PathEscape(id), nil, &info)
	return info, err
}

// WithdrawResource calls DELETE /v1/resources/{id}: the node replaces its
// advertisement of the resource with a withdrawal wherever it went.
func (c *Client) WithdrawResource(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, resourcesPath+url.PathEscape(id), nil, nil)
}

// SetACL calls PUT /v1/resources/{id}/acl: the node replaces the ACL of one
// of its org's resources and hands it to the orgs it concerns. The answer is
// the ACL as stored, with a Warning when some org could not be reached (the
// ACL is in force anyway). A refusal is a *Problem, such as "not-owner" or
// "bad-acl".
func (c *Client) SetACL(ctx context.Context, id string, req ACLRequest) (ACLResponse, error) {
	var acl ACLResponse
	err := c.do(ctx, http.MethodPut, resourcesPath+url.PathEscape(id)+"/acl", req, &acl)
	return acl, err
}

// GetACL calls GET /v1/resources/{id}/acl: the ACL the node holds, its own
// org's or one an owner handed to it; else a *Problem of kind
// "acl-not-found".
func (c *Client) GetACL(ctx context.Context, id string) (ACLResponse, error) {
	var acl ACLResponse
	err := c.do(ctx, http.MethodGet, resourcesPath+url.PathEscape(id)+"/acl", nil, &acl)
	return acl, err
}

// PutState calls PUT /v1/resources/{id}/state: the node serves data as the
// state of one of its org's resources to the orgs its ACL lets read.
func (c *Client) PutState(ctx context.Context, id string, data []byte) error {
	_, err := c.send(ctx, http.MethodPut, resourcesPath+url.PathEscape(id)+"/state", "application/octet-stream", data)
	return err
}

// GetState calls GET /v1/resources/{id}/state: the node fetches the
// resource's state from its owner. A refusal is a *Problem of kind
// "access-denied", "rate-limited" or "resource-not-found".
func (c *Client) GetState(ctx context.Context, id string) ([]byte, error) {
	return c.send(ctx, http.MethodGet, resourcesPath+url.PathEscape(id)+"/state", "", nil)
}

// CreateUser calls POST /v1/users: the node creates a user profile of its
// org, keeping the user's key, with details as the user resource's private
// data, and answers with the user's FinID and resource id.
func (c *Client) CreateUser(ctx context.Context, details []byte) (node.User, error) {
	var user node.User
	body, err := c.send(ctx, http.MethodPost, "/v1/users", "application/octet-stream", details)
	if err == nil {
		if err = json.Unmarshal(body, &user); err != nil {
			err = fmt.Errorf("%s %s: decode response: %w", http.MethodPost, "/v1/users", err)
		}
	}
	return user, err
}

// SetPrivateData calls PUT /v1/resources/{id}/private: the node serves data
// as the private data of one of its org's resources to the orgs its ACL lets
// query. A refusal is a *Problem, such as "not-owner" or "too-large".
func (c *Client) SetPrivateData(ctx context.Context, id string, data []byte) error {
	_, err := c.send(ctx, http.MethodPut, resourcesPath+url.PathEscape(id)+"/private", "application/octet-stream", data)
	return err
}

// QueryPrivateData calls GET /v1/resources/{id}/private: the node asks the
// resource's owner for its private data. A refusal is a *Problem of kind
// "access-denied", "rate-limited" or "resource-not-found".
func (c *Client) QueryPrivateData(ctx context.Context, id string) ([]byte, error) {
	return c.send(ctx, http.MethodGet, resourcesPath+url.PathEscape(id)+"/private", "", nil)
}

// PublishUpdate calls POST /v1/resources/{id}/updates: the node publishes
// data on the resource's topic and answers with its sequence number.
func (c *Client) PublishUpdate(ctx context.Context, id string, data []byte) (PublishResponse, error) {
	var resp PublishResponse
	path := resourcesPath + url.PathEscape(id) + "/updates"
	body, err := c.send(ctx, http.MethodPost, path, "application/octet-stream", data)
	if err == nil {
		if err = json.Unmarshal(body, &resp); err != nil {
			err = fmt.Errorf("%s %s: decode response: %w", http.MethodPost, path, err)
		}
	}
	return resp, err
}

// Subscribe calls GET /v1/resources/{id}/updates and returns once the
// subscription is live: every update published from then on comes on the
// channel, which is closed when ctx ends or the stream does (the node
// stopped). A refusal is a *Problem, such as "access-denied". The stream is
// not bound by the HTTP client's Timeout.
func (c *Client) Subscribe(ctx context.Context, id string) (<-chan node.Update, error) {
	path := resourcesPath + url.PathEscape(id) + "/updates"
	fail := func(err error) error { return fmt.Errorf("%s %s: %w", http.MethodGet, path, err) }
	hc := &http.Client{}
	if c.HTTP != nil {
		copied := *c.HTTP
		hc = &copied
		hc.Timeout = 0
	}
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+path, nil)
	if err != nil {
		cancel()
		return nil, fail(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		return nil, fail(err)
	}
	if resp.StatusCode >= 300 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		cancel()
		return nil, fail(c.problemOf(resp, data))
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		resp.Body.Close()
		cancel()
		return nil, fail(fmt.Errorf("answer is %s, not an event stream", ct))
	}
	events := newEventReader(resp.Body)
	// The stream's first comment says the subscription is live.
	if ev, err := events.next(); err != nil || ev.comment != "subscribed" {
		resp.Body.Close()
		cancel()
		if err == nil {
			err = fmt.Errorf("stream starts with %+v, not the subscribed comment", ev)
		}
		return nil, fail(err)
	}
	ch := make(chan node.Update, 64)
	go func() {
		defer close(ch)
		defer cancel()
		defer resp.Body.Close()
		for {
			ev, err := events.next()
			if err != nil {
				return
			}
			if ev.event != "update" {
				continue
			}
			var u node.Update
			if err := json.Unmarshal([]byte(ev.data), &u); err != nil {
				return
			}
			select {
			case ch <- u:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

// CreateAsset calls POST /v1/assets: the node creates one of its org's
// assets on its ledger and answers with the ledger transaction. A refusal is
// a *Problem, such as "not-owner", "asset-exists" or "bad-request".
func (c *Client) CreateAsset(ctx context.Context, req CreateAssetRequest) (ledger.Transaction, error) {
	var tx ledger.Transaction
	err := c.do(ctx, http.MethodPost, "/v1/assets", req, &tx)
	return tx, err
}

// IssueAsset calls POST /v1/assets/{id}/issue: the node credits new supply of
// one of its org's assets to an account. A refusal is a *Problem, such as
// "not-owner", "unknown-asset" or "bad-quantity".
func (c *Client) IssueAsset(ctx context.Context, id string, req IssueRequest) (ledger.Transaction, error) {
	var tx ledger.Transaction
	err := c.do(ctx, http.MethodPost, assetsPath+url.PathEscape(id)+"/issue", req, &tx)
	return tx, err
}

// Balance calls GET /v1/assets/{id}/balances/{account}: an account's balance
// of one of the node's org's assets, from its ledger.
func (c *Client) Balance(ctx context.Context, id, account string) (ledger.Balance, error) {
	var bal ledger.Balance
	err := c.do(ctx, http.MethodGet, assetsPath+url.PathEscape(id)+"/balances/"+url.PathEscape(account), nil, &bal)
	return bal, err
}

// Execute calls POST /v1/transactions: the node asks the asset's owner to run
// the operation and answers with the owner's signed receipt, verified and
// kept. The same idempotency key returns the first receipt. A refusal is a
// *Problem, such as "access-denied", "insufficient-balance" or
// "idempotency-conflict"; a 502 is a failure to get an answer, which is safe
// to retry with the same key.
func (c *Client) Execute(ctx context.Context, req TransactionRequest) (ReceiptResponse, error) {
	var resp ReceiptResponse
	err := c.do(ctx, http.MethodPost, "/v1/transactions", req, &resp)
	return resp, err
}

// Receipt calls GET /v1/receipts/{txid}: a receipt the node keeps, of a
// transaction it asked for; else a *Problem of kind "receipt-not-found".
func (c *Client) Receipt(ctx context.Context, txID string) (ReceiptResponse, error) {
	var resp ReceiptResponse
	err := c.do(ctx, http.MethodGet, receiptsPath+url.PathEscape(txID), nil, &resp)
	return resp, err
}

// VerifyReceipt calls POST /v1/receipts/verify with a sealed receipt: the
// node checks its signature and the signer's certificate at signing time. An
// invalid receipt is a *Problem of kind "receipt-invalid" whose detail says
// why.
func (c *Client) VerifyReceipt(ctx context.Context, sealed []byte) (VerifyReceiptResponse, error) {
	var resp VerifyReceiptResponse
	path := receiptsPath + "verify"
	body, err := c.send(ctx, http.MethodPost, path, "application/octet-stream", sealed)
	if err == nil {
		if err = json.Unmarshal(body, &resp); err != nil {
			err = fmt.Errorf("%s %s: decode response: %w", http.MethodPost, path, err)
		}
	}
	return resp, err
}

// event is one server-sent event, or a comment line.
type event struct {
	id, event, data string
	comment         string
}

// eventReader reads a text/event-stream: events separated by blank lines,
// each of "field: value" lines; a line starting with ':' is a comment.
type eventReader struct {
	sc *bufio.Scanner
}

// maxEventLine bounds one line of an event stream: an update's data, base64
// in JSON, fits with room to spare.
const maxEventLine = 2 * node.MaxUpdateSize

func newEventReader(r io.Reader) *eventReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxEventLine)
	return &eventReader{sc: sc}
}

// next returns the next event, or a comment on its own; io.EOF at the end
// of the stream.
func (e *eventReader) next() (event, error) {
	var ev event
	var data []string
	seen := false
	for e.sc.Scan() {
		line := e.sc.Text()
		if line == "" {
			if !seen {
				continue
			}
			ev.data = strings.Join(data, "\n")
			if ev.event == "" {
				ev.event = "message"
			}
			return ev, nil
		}
		if c, ok := strings.CutPrefix(line, ":"); ok {
			if !seen {
				return event{comment: strings.TrimPrefix(c, " ")}, nil
			}
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		seen = true
		switch field {
		case "id":
			ev.id = value
		case "event":
			ev.event = value
		case "data":
			data = append(data, value)
		}
	}
	if err := e.sc.Err(); err != nil {
		return event{}, err
	}
	return event{}, io.EOF
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	contentType := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		body, contentType = b, "application/json"
	}
	data, err := c.send(ctx, method, path, contentType, body)
	if err != nil {
		return err
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode response: %w", method, path, err)
		}
	}
	return nil
}

// send makes one request with body of contentType (none if empty) and
// returns the response body; an error status is a *Problem when the node
// sent one.
func (c *Client) send(ctx context.Context, method, path, contentType string, body []byte) ([]byte, error) {
	var r io.Reader
	if contentType != "" {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, r)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s %s: %w", method, path, c.problemOf(resp, data))
	}
	return data, nil
}

// problemOf is the error of a response with an error status: its problem,
// or the status and body when it is not one. A refused token also says
// which token was sent, so the operator knows which file to check.
func (c *Client) problemOf(resp *http.Response, data []byte) error {
	var err error
	p := &Problem{}
	if json.Unmarshal(data, p) != nil || p.Status == 0 {
		err = fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(data))
	} else {
		err = p
	}
	switch {
	case resp.StatusCode != http.StatusUnauthorized:
	case c.TokenFile != "":
		err = fmt.Errorf("the node at %s refused the API token from %s (is that the repo of the node at this address?): %w", c.Base, c.TokenFile, err)
	default:
		err = fmt.Errorf("the node at %s refused the API token: %w", c.Base, err)
	}
	return err
}
