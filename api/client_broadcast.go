package api

import (
	"context"
	"net/http"

	"github.com/finp2p/go-finp2p/node"
)

// Broadcast sends a broadcast request (POST /v1/broadcasts).
func (c *Client) Broadcast(ctx context.Context, req BroadcastRequest) (BroadcastResult, error) {
	var out BroadcastResult
	err := c.do(ctx, http.MethodPost, "/v1/broadcasts", req, &out)
	return out, err
}

// BalanceOf reads a balance by broadcast to the asset's ledger nodes (POST
// /v1/balances).
func (c *Client) BalanceOf(ctx context.Context, req BalanceRequest) (BalanceResponse, error) {
	var out BalanceResponse
	err := c.do(ctx, http.MethodPost, "/v1/balances", req, &out)
	return out, err
}

// ValidateReceipt asks the receipt ledger's nodes whether its transaction
// exists with the same details (POST /v1/receipts/validate).
func (c *Client) ValidateReceipt(ctx context.Context, req ValidateReceiptRequest) (ValidateReceiptResponse, error) {
	var out ValidateReceiptResponse
	err := c.do(ctx, http.MethodPost, "/v1/receipts/validate", req, &out)
	return out, err
}

// Ledgers lists the ledgers the node reads (GET /v1/ledgers).
func (c *Client) Ledgers(ctx context.Context) ([]node.LedgerInfo, error) {
	var out []node.LedgerInfo
	err := c.do(ctx, http.MethodGet, "/v1/ledgers", nil, &out)
	return out, err
}
