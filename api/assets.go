package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/finp2p/go-finp2p/asset"
	"github.com/finp2p/go-finp2p/ledger"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/resource"
)

// AssetTimeout bounds one asset call: a ledger operation on the node's own
// ledger, or a transaction sent to the asset owner's node (resolving its org,
// dialling it and waiting for its signed receipt).
const AssetTimeout = DiscoveryTimeout

// Paths of the asset endpoints.
const (
	assetsPath   = "/v1/assets/"
	receiptsPath = "/v1/receipts/"
)

// Operations POST /v1/transactions takes: those a requester asks the asset's
// owner to run. Create and issue are the owner's own, on /v1/assets.
var transactionOps = []ledger.Operation{ledger.OpTransfer, ledger.OpRedeem, ledger.OpHold, ledger.OpRelease, ledger.OpRollback}

// CreateAssetRequest is the body of POST /v1/assets.
type CreateAssetRequest struct {
	// Asset is the asset's resource id, org:type:id or finp2p://org/type/id;
	// the org must be the node's own.
	Asset string `json:"asset"`
	// Decimals is the number of fraction digits of the asset's quantities.
	Decimals int `json:"decimals"`
	// IdempotencyKey makes a retry return the first transaction.
	IdempotencyKey string `json:"idempotency_key"`
}

// IssueRequest is the body of POST /v1/assets/{id}/issue.
type IssueRequest struct {
	// To is the account credited, of any org.
	To string `json:"to"`
	// Quantity is a decimal string with at most the asset's decimals.
	Quantity string `json:"quantity"`
	// IdempotencyKey makes a retry return the first transaction.
	IdempotencyKey string `json:"idempotency_key"`
}

// TransactionRequest is the body of POST /v1/transactions: an operation the
// node asks the asset's owner to run on its ledger. Which of From, To,
// Quantity and HoldID are needed depends on the operation, as in
// node.AssetRequest.
type TransactionRequest struct {
	// Operation is transfer, redeem, hold, release or rollback.
	Operation ledger.Operation `json:"operation"`
	// Asset is the asset's resource id; its org is the owner asked.
	Asset    string `json:"asset"`
	From     string `json:"from,omitempty"`
	To       string `json:"to,omitempty"`
	Quantity string `json:"quantity,omitempty"`
	// HoldID is the hold a release or rollback closes: the transaction id
	// of the hold.
	HoldID string `json:"hold_id,omitempty"`
	// IdempotencyKey makes a retry return the first receipt; the owner
	// keeps it prefixed with the node's org, "<org>/<key>".
	IdempotencyKey string `json:"idempotency_key"`
}

// ReceiptResponse is a signed asset receipt as the API gives it: the answer
// of POST /v1/transactions and GET /v1/receipts/{txid}.
type ReceiptResponse struct {
	// Receipt is the sealed receipt (a signed envelope), base64 in JSON:
	// what POST /v1/receipts/verify, or any other member, checks.
	Receipt []byte `json:"receipt"`
	// Transaction is the ledger transaction the owner's node executed.
	Transaction ledger.Transaction `json:"transaction"`
	// SignerOrg and SignerPeer are the owner org and node that signed it,
	// as the signer's certificate proved at SignedAt.
	SignerOrg  string    `json:"signer_org"`
	SignerPeer string    `json:"signer_peer"`
	SignedAt   time.Time `json:"signed_at"`
	// RequesterOrg is the org whose request the receipt answers, and
	// RequestHash the hash of that signed request.
	RequesterOrg string `json:"requester_org"`
	RequestHash  string `json:"request_hash"`
}

// VerifyReceiptRequest is the JSON body POST /v1/receipts/verify takes; the
// raw sealed receipt as application/octet-stream is the other.
type VerifyReceiptRequest struct {
	// Receipt is the sealed receipt, base64 in JSON.
	Receipt []byte `json:"receipt"`
}

// VerifyReceiptResponse is the answer of POST /v1/receipts/verify for a
// valid receipt; an invalid one is a 422 receipt-invalid problem.
type VerifyReceiptResponse struct {
	Valid bool `json:"valid"`
	ReceiptResponse
}

func receiptResponse(vr *asset.VerifiedReceipt) ReceiptResponse {
	r := vr.Receipt
	return ReceiptResponse{
		Receipt:      vr.Sealed,
		Transaction:  r.Transaction,
		SignerOrg:    vr.Signer.OrgID,
		SignerPeer:   vr.Signer.PeerID.String(),
		SignedAt:     r.SignedAt,
		RequesterOrg: r.RequesterOrg,
		RequestHash:  r.RequestHash,
	}
}

func (s *Server) createAsset(w http.ResponseWriter, r *http.Request) {
	var req CreateAssetRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	id, err := resource.ParseID(req.Asset)
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "bad-resource-id", fmt.Sprintf("asset: %v", err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), AssetTimeout)
	defer cancel()
	tx, err := s.cfg.Node.CreateAsset(ctx, id, req.Decimals, req.IdempotencyKey)
	if err != nil {
		s.assetProblem(w, "create asset", id.String(), err, "create-asset-failed")
		return
	}
	writeJSON(w, http.StatusCreated, tx)
}

func (s *Server) issue(w http.ResponseWriter, r *http.Request) {
	id, ok := pathResourceID(w, r)
	if !ok {
		return
	}
	var req IssueRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), AssetTimeout)
	defer cancel()
	tx, err := s.cfg.Node.Issue(ctx, id, req.To, req.Quantity, req.IdempotencyKey)
	if err != nil {
		s.assetProblem(w, "issue", id.String(), err, "issue-failed")
		return
	}
	writeJSON(w, http.StatusCreated, tx)
}

func (s *Server) balance(w http.ResponseWriter, r *http.Request) {
	id, ok := pathResourceID(w, r)
	if !ok {
		return
	}
	account := r.PathValue("account")
	if err := ledger.CheckID("account", account); err != nil {
		writeProblem(w, http.StatusBadRequest, "bad-request", err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), AssetTimeout)
	defer cancel()
	bal, err := s.cfg.Node.Balance(ctx, id, account)
	if err != nil {
		s.assetProblem(w, "balance", id.String(), err, "balance-failed")
		return
	}
	writeJSON(w, http.StatusOK, bal)
}

func (s *Server) transaction(w http.ResponseWriter, r *http.Request) {
	var req TransactionRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	if !slices.Contains(transactionOps, req.Operation) {
		detail := fmt.Sprintf("operation %q: want one of %s", req.Operation, opList())
		if req.Operation == ledger.OpIssue || req.Operation == ledger.OpCreateAsset {
			detail += fmt.Sprintf("; the owner's node does %s itself, through POST /v1/assets", req.Operation)
		}
		writeProblem(w, http.StatusBadRequest, "bad-request", detail)
		return
	}
	id, err := resource.ParseID(req.Asset)
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "bad-resource-id", fmt.Sprintf("asset: %v", err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), AssetTimeout)
	defer cancel()
	vr, err := s.cfg.Node.Execute(ctx, req.Operation, node.AssetRequest{
		Asset: id, From: req.From, To: req.To, Quantity: req.Quantity, HoldID: req.HoldID, IdempotencyKey: req.IdempotencyKey,
	})
	if err != nil {
		s.assetProblem(w, string(req.Operation), id.String(), err, "transaction-failed")
		return
	}
	w.Header().Set("Location", receiptsPath+url.PathEscape(vr.Receipt.Transaction.ID))
	writeJSON(w, http.StatusCreated, receiptResponse(vr))
}

func (s *Server) receipt(w http.ResponseWriter, r *http.Request) {
	txID := r.PathValue("txid")
	if _, ok := query(w, r); !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), AssetTimeout)
	defer cancel()
	vr, err := s.cfg.Node.Receipt(ctx, txID)
	if err != nil {
		s.assetProblem(w, "get receipt", txID, err, "receipt-failed")
		return
	}
	writeJSON(w, http.StatusOK, receiptResponse(vr))
}

// verifyReceipt checks a sealed receipt offline, as any member can: the
// body is the receipt itself (application/octet-stream, or no type) or
// {"receipt": "<base64>"} (application/json).
func (s *Server) verifyReceipt(w http.ResponseWriter, r *http.Request) {
	var sealed []byte
	if ct := r.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/json") {
		var req VerifyReceiptRequest
		if !decodeJSON(w, r, &req) {
			return
		}
		sealed = req.Receipt
	} else {
		data, ok := readRaw(w, r, asset.MaxReceiptSize, "receipt")
		if !ok {
			return
		}
		sealed = data
	}
	if len(sealed) == 0 {
		writeProblem(w, http.StatusBadRequest, "bad-request", "no receipt: send the sealed receipt as the body, or as base64 in {\"receipt\": ...}")
		return
	}
	vr, err := s.cfg.Node.VerifyReceipt(sealed)
	if err != nil {
		// Whatever the check that failed, the receipt is what is wrong.
		writeProblem(w, http.StatusUnprocessableEntity, "receipt-invalid", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, VerifyReceiptResponse{Valid: true, ReceiptResponse: receiptResponse(vr)})
}

func opList() string {
	names := make([]string, len(transactionOps))
	for i, o := range transactionOps {
		names[i] = string(o)
	}
	return strings.Join(names, ", ")
}

// assetProblems maps the errors of asset calls to problems, first match
// first: a quantity error is also a bad request, and the requester side's
// errors wrap the owner's refusal.
var assetProblems = []struct {
	err    error
	status int
	kind   string
}{
	{resource.ErrBadID, http.StatusBadRequest, "bad-resource-id"},
	{ledger.ErrBadQuantity, http.StatusBadRequest, "bad-quantity"},
	{ledger.ErrBadRequest, http.StatusBadRequest, "bad-request"},
	{asset.ErrBadRequest, http.StatusBadRequest, "bad-request"},
	{resource.ErrNotOwner, http.StatusForbidden, "not-owner"},
	{resource.ErrAccessDenied, http.StatusForbidden, "access-denied"},
	{resource.ErrRateLimited, http.StatusTooManyRequests, "rate-limited"},
	{asset.ErrReplay, http.StatusConflict, "replay"},
	{asset.ErrStaleRequest, http.StatusConflict, "stale-request"},
	{ledger.ErrIdempotencyConflict, http.StatusConflict, "idempotency-conflict"},
	{ledger.ErrAssetExists, http.StatusConflict, "asset-exists"},
	{ledger.ErrInsufficientBalance, http.StatusUnprocessableEntity, "insufficient-balance"},
	// The owner's node could not have the details of a user the
	// transaction involves from the user's org (its ACL refuses query).
	{node.ErrUserData, http.StatusUnprocessableEntity, "user-data-unavailable"},
	{ledger.ErrUnknownAsset, http.StatusNotFound, "unknown-asset"},
	{ledger.ErrUnknownAccount, http.StatusNotFound, "unknown-account"},
	{ledger.ErrUnknownHold, http.StatusNotFound, "unknown-hold"},
	// The owner's node answers a closed hold as an unknown one; its own
	// ledger says which.
	{ledger.ErrHoldClosed, http.StatusNotFound, "unknown-hold"},
	{asset.ErrNotFound, http.StatusNotFound, "receipt-not-found"},
}

// assetProblem answers with the problem for a node error about an asset
// call on subject (an asset or a transaction id): a refusal, by this node,
// its ledger or the owner's node, is the client's; anything else (the
// network, the owner's node not reached, a receipt that does not check
// out) is a 502 of kind fallback.
func (s *Server) assetProblem(w http.ResponseWriter, what, subject string, err error, fallback string) {
	for _, p := range assetProblems {
		if errors.Is(err, p.err) {
			if p.status == http.StatusTooManyRequests {
				// The owner's refusal budget refills at several requests a second.
				w.Header().Set("Retry-After", "1")
			}
			writeProblem(w, p.status, p.kind, err.Error())
			return
		}
	}
	s.log.Warn(what+" failed", "subject", subject, "error", err)
	writeProblem(w, http.StatusBadGateway, fallback, err.Error())
}

// assetURIScheme starts the URI form of a resource id.
const assetURIScheme = "finp2p://"

// assetIDSegment lets the URI form of an asset id be written unescaped in
// the path, as in POST /v1/assets/finp2p://bank-x/102/abc/issue: the id is
// the scheme and the next three segments (an id's parts hold no slash), and
// they become one path segment. Everything else is left to the mux.
func assetIDSegment(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.EscapedPath(), assetsPath)
		if ok && strings.HasPrefix(rest, assetURIScheme) {
			parts := strings.SplitN(rest[len(assetURIScheme):], "/", 4)
			if len(parts) == 4 {
				rawID := assetURIScheme + strings.Join(parts[:3], "/")
				if id, err := url.PathUnescape(rawID); err == nil {
					raw := assetsPath + url.PathEscape(id) + "/" + parts[3]
					if path, err := url.PathUnescape(raw); err == nil {
						r = r.Clone(r.Context())
						r.URL.Path, r.URL.RawPath = path, raw
					}
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}
