package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

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
