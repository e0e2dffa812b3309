package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/node"
)

// Client calls a node's API; the finp2p subcommands use it.
type Client struct {
	// Base is the API's base URL, such as http://127.0.0.1:5001.
	Base string
	// Token is the bearer token from the node's repo.
	Token string
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

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		p := &Problem{}
		if json.Unmarshal(data, p) != nil || p.Status == 0 {
			return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
		}
		return fmt.Errorf("%s %s: %w", method, path, p)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode response: %w", method, path, err)
		}
	}
	return nil
}
