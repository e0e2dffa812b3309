package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/finp2p/go-finp2p/broadcast"
	"github.com/finp2p/go-finp2p/ledger"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/resource"
)

// BroadcastOptions are the options every broadcast endpoint takes, as
// fields of its request: quorum (valid answers to wait for; 0 for the
// default: every node of the scope, a majority of a ledger's nodes),
// timeout (e.g. "5s"; default 5s, at most 2m) and consistency (strict,
// majority or newest-version, the default).
type BroadcastOptions struct {
	Quorum      int
	Timeout     string
	Consistency string
}

func (o BroadcastOptions) node() (node.BroadcastOptions, error) {
	out := node.BroadcastOptions{Quorum: o.Quorum, Consistency: broadcast.Consistency(o.Consistency)}
	if o.Quorum < 0 {
		return out, fmt.Errorf("quorum %d, want 0 (default) or more", o.Quorum)
	}
	switch out.Consistency {
	case "", broadcast.Strict, broadcast.Majority, broadcast.NewestVersion:
	default:
		return out, fmt.Errorf("consistency %q: want strict, majority or newest-version", o.Consistency)
	}
	if o.Timeout != "" {
		d, err := time.ParseDuration(o.Timeout)
		if err != nil || d <= 0 || d > node.MaxBroadcastTimeout {
			return out, fmt.Errorf("timeout %q: want a duration such as \"5s\", at most %s", o.Timeout, node.MaxBroadcastTimeout)
		}
		out.Timeout = d
	}
	return out, nil
}

// ScopeJSON is a broadcast scope in JSON.
type ScopeJSON struct {
	// Kind is all, orgs, ledger, closest or rendezvous.
	Kind   string   `json:"kind"`
	Orgs   []string `json:"orgs,omitempty"`
	Ledger string   `json:"ledger,omitempty"`
}

// BroadcastRequest is the body of POST /v1/broadcasts.
type BroadcastRequest struct {
	// Kind is what is asked: balance, receipt-validation, or a kind the
	// nodes were given a handler for.
	Kind  string    `json:"kind"`
	Scope ScopeJSON `json:"scope"`
	// Payload is the question, JSON.
	Payload json.RawMessage `json:"payload,omitempty"`
	// Encrypt seals the payload to the scope's nodes.
	Encrypt bool `json:"encrypt,omitempty"`
	// Quorum, Timeout and Consistency are the BroadcastOptions.
	Quorum      int    `json:"quorum,omitempty"`
	Timeout     string `json:"timeout,omitempty"`
	Consistency string `json:"consistency,omitempty"`
}

// ResponderJSON is one responder in a broadcast result.
type ResponderJSON struct {
	Peer string `json:"peer"`
	Org  string `json:"org"`
	// Answer is the responder's answer when it is JSON; AnswerBase64 when
	// it is not.
	Answer        json.RawMessage `json:"answer,omitempty"`
	AnswerBase64  []byte          `json:"answer_base64,omitempty"`
	LedgerVersion uint64          `json:"ledger_version"`
	Rendezvous    bool            `json:"rendezvous,omitempty"`
	Error         string          `json:"error,omitempty"`
	Reason        string          `json:"reason,omitempty"`
}

// DroppedJSON is a response the origin did not count, and why.
type DroppedJSON struct {
	Peer   string `json:"peer,omitempty"`
	Reason string `json:"reason"`
}

// BroadcastResult is what a broadcast came to, as the API gives it.
type BroadcastResult struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`
	Scope       ScopeJSON `json:"scope"`
	Quorum      int       `json:"quorum"`
	Consistency string    `json:"consistency"`
	Encrypted   bool      `json:"encrypted"`
	// OK says the quorum was reached and the answers resolved.
	OK bool `json:"ok"`
	// Agreed is the resolved answer (JSON, or base64 in AgreedBase64).
	Agreed       json.RawMessage `json:"agreed,omitempty"`
	AgreedBase64 []byte          `json:"agreed_base64,omitempty"`
	Resolution   string          `json:"resolution"`
	AgreedBy     []ResponderJSON `json:"agreed_by"`
	Disagreed    []ResponderJSON `json:"disagreed"`
	Unanswered   []ResponderJSON `json:"unanswered"`
	// Failed are the nodes asked that gave no valid response in time,
	// when the quorum was not reached.
	Failed []string `json:"failed"`
	// NotAwaited are the nodes asked that had not answered yet when the
	// quorum was reached.
	NotAwaited []string          `json:"not_awaited"`
	Dropped    []DroppedJSON     `json:"dropped"`
	Asked      []string          `json:"asked"`
	NotSent    map[string]string `json:"not_sent,omitempty"`
	TookMS     float64           `json:"took_ms"`
}

func answerJSON(b []byte) (json.RawMessage, []byte) {
	if len(b) == 0 {
		return nil, nil
	}
	if json.Valid(b) {
		return json.RawMessage(b), nil
	}
	return nil, b
}

func responders(rs []broadcast.Responder) []ResponderJSON {
	out := make([]ResponderJSON, 0, len(rs))
	for _, r := range rs {
		j, raw := answerJSON(r.Answer)
		out = append(out, ResponderJSON{Peer: r.Peer.String(), Org: r.Org, Answer: j, AnswerBase64: raw,
			LedgerVersion: r.LedgerVersion, Rendezvous: r.Rendezvous, Error: r.Error, Reason: r.Reason})
	}
	return out
}

func broadcastResult(r *node.BroadcastResult) BroadcastResult {
	agreed, raw := answerJSON(r.Agreed)
	out := BroadcastResult{
		ID: r.ID, Kind: r.Kind, Quorum: r.Quorum, Consistency: string(r.Consistency), Encrypted: r.Encrypted,
		Scope: ScopeJSON{Kind: string(r.Scope.Kind), Orgs: r.Scope.Orgs, Ledger: r.Scope.Ledger},
		OK:    r.OK, Agreed: agreed, AgreedBase64: raw, Resolution: r.Resolution,
		AgreedBy: responders(r.AgreedBy), Disagreed: responders(r.Disagreed), Unanswered: responders(r.Unanswered),
		Failed: []string{}, NotAwaited: []string{}, Dropped: []DroppedJSON{}, Asked: []string{},
		TookMS: float64(r.Took.Microseconds()) / 1000,
	}
	for _, p := range r.Failed {
		out.Failed = append(out.Failed, p.String())
	}
	for _, p := range r.NotAwaited {
		out.NotAwaited = append(out.NotAwaited, p.String())
	}
	for _, d := range r.Dropped {
		out.Dropped = append(out.Dropped, DroppedJSON{Peer: d.Peer.String(), Reason: d.Reason})
	}
	for _, p := range r.Asked {
		out.Asked = append(out.Asked, p.String())
	}
	if len(r.NotSent) > 0 {
		out.NotSent = map[string]string{}
		for p, why := range r.NotSent {
			out.NotSent[p.String()] = why
		}
	}
	return out
}

// BalanceRequest is the body of POST /v1/balances: read an account's
// balance of an asset from the nodes of the asset's ledger.
type BalanceRequest struct {
	Asset   string `json:"asset"`
	Account string `json:"account"`
	// Ledger is the ledger to ask; default the asset org's own.
	Ledger string `json:"ledger,omitempty"`
	// Quorum, Timeout and Consistency are the BroadcastOptions.
	Quorum      int    `json:"quorum,omitempty"`
	Timeout     string `json:"timeout,omitempty"`
	Consistency string `json:"consistency,omitempty"`
}

// BalanceResponse is the answer of POST /v1/balances.
type BalanceResponse struct {
	// Balance is the agreed balance; absent when none was agreed.
	Balance       *ledger.Balance `json:"balance,omitempty"`
	LedgerVersion uint64          `json:"ledger_version"`
	Broadcast     BroadcastResult `json:"broadcast"`
}

// ValidateReceiptRequest is the body of POST /v1/receipts/validate: the
// transaction id of a receipt this node holds, a sealed receipt, or the
// ledger transaction itself.
type ValidateReceiptRequest struct {
	TransactionID string              `json:"transaction_id,omitempty"`
	Receipt       []byte              `json:"receipt,omitempty"`
	Transaction   *ledger.Transaction `json:"transaction,omitempty"`
	// Quorum, Timeout and Consistency are the BroadcastOptions.
	Quorum      int    `json:"quorum,omitempty"`
	Timeout     string `json:"timeout,omitempty"`
	Consistency string `json:"consistency,omitempty"`
}

// ValidateReceiptResponse is the answer of POST /v1/receipts/validate.
type ValidateReceiptResponse struct {
	// Validation is the agreed answer; absent when none was agreed.
	Validation    *node.Validation   `json:"validation,omitempty"`
	Transaction   ledger.Transaction `json:"transaction"`
	LedgerVersion uint64             `json:"ledger_version"`
	Broadcast     BroadcastResult    `json:"broadcast"`
}

// broadcastProblem answers a broadcast that could not be sent.
func broadcastProblem(w http.ResponseWriter, what string, err error) {
	switch {
	case errors.Is(err, broadcast.ErrQuorumTooLarge):
		writeProblem(w, http.StatusBadRequest, "quorum-too-large", fmt.Sprintf("%s: %v", what, err))
	case errors.Is(err, broadcast.ErrBadScope), errors.Is(err, broadcast.ErrBadRequest), errors.Is(err, ledger.ErrBadRequest):
		writeProblem(w, http.StatusBadRequest, "bad-request", fmt.Sprintf("%s: %v", what, err))
	case errors.Is(err, broadcast.ErrEmptyScope):
		writeProblem(w, http.StatusNotFound, "empty-scope", fmt.Sprintf("%s: %v", what, err))
	case errors.Is(err, resource.ErrResourceNotFound):
		writeProblem(w, http.StatusNotFound, "resource-not-found", fmt.Sprintf("%s: %v", what, err))
	default:
		writeProblem(w, http.StatusBadGateway, "broadcast-failed", fmt.Sprintf("%s: %v", what, err))
	}
}

func (s *Server) broadcast(w http.ResponseWriter, r *http.Request) {
	var req BroadcastRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	opts, err := BroadcastOptions{req.Quorum, req.Timeout, req.Consistency}.node()
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "bad-request", err.Error())
		return
	}
	opts.Encrypt = req.Encrypt
	ctx, cancel := context.WithTimeout(r.Context(), broadcastTimeout(opts))
	defer cancel()
	res, err := s.cfg.Node.Broadcast(ctx, node.BroadcastRequest{
		Kind:             req.Kind,
		Scope:            broadcast.Scope{Kind: broadcast.ScopeKind(req.Scope.Kind), Orgs: req.Scope.Orgs, Ledger: req.Scope.Ledger},
		Payload:          req.Payload,
		BroadcastOptions: opts,
	})
	if err != nil {
		broadcastProblem(w, "broadcast", err)
		return
	}
	writeJSON(w, http.StatusOK, broadcastResult(res))
}

// broadcastTimeout bounds a broadcast call: its own timeout and the time
// to find the scope's nodes.
func broadcastTimeout(o node.BroadcastOptions) time.Duration {
	t := o.Timeout
	if t == 0 {
		t = node.DefaultBroadcastTimeout
	}
	return t + DiscoveryTimeout
}

func (s *Server) balanceOf(w http.ResponseWriter, r *http.Request) {
	var req BalanceRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	id, err := resource.ParseID(req.Asset)
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "bad-resource-id", fmt.Sprintf("asset: %v", err))
		return
	}
	opts, err := BroadcastOptions{req.Quorum, req.Timeout, req.Consistency}.node()
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "bad-request", err.Error())
		return
	}
	opts.Ledger = req.Ledger
	ctx, cancel := context.WithTimeout(r.Context(), broadcastTimeout(opts))
	defer cancel()
	res, err := s.cfg.Node.BalanceOf(ctx, id, req.Account, opts)
	if err != nil {
		broadcastProblem(w, "balance of "+id.String(), err)
		return
	}
	writeJSON(w, http.StatusOK, BalanceResponse{Balance: res.Balance, LedgerVersion: res.LedgerVersion, Broadcast: broadcastResult(res.Broadcast)})
}

func (s *Server) validateReceipt(w http.ResponseWriter, r *http.Request) {
	var req ValidateReceiptRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	opts, err := BroadcastOptions{req.Quorum, req.Timeout, req.Consistency}.node()
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "bad-request", err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), broadcastTimeout(opts))
	defer cancel()
	var tx ledger.Transaction
	switch given := btoi(req.TransactionID != "") + btoi(len(req.Receipt) > 0) + btoi(req.Transaction != nil); {
	case given != 1:
		writeProblem(w, http.StatusBadRequest, "bad-request", "give exactly one of transaction_id, receipt and transaction")
		return
	case req.TransactionID != "":
		vr, err := s.cfg.Node.Receipt(ctx, req.TransactionID)
		if err != nil {
			writeProblem(w, http.StatusNotFound, "receipt-not-found", fmt.Sprintf("receipt of transaction %q: %v", req.TransactionID, err))
			return
		}
		tx = vr.Receipt.Transaction
	case len(req.Receipt) > 0:
		vr, err := s.cfg.Node.VerifyReceipt(req.Receipt)
		if err != nil {
			writeProblem(w, http.StatusUnprocessableEntity, "receipt-invalid", err.Error())
			return
		}
		tx = vr.Receipt.Transaction
	default:
		tx = *req.Transaction
	}
	res, err := s.cfg.Node.ValidateReceipt(ctx, tx, opts)
	if err != nil {
		broadcastProblem(w, "validate receipt", err)
		return
	}
	writeJSON(w, http.StatusOK, ValidateReceiptResponse{Validation: res.Validation, Transaction: tx, LedgerVersion: res.LedgerVersion, Broadcast: broadcastResult(res.Broadcast)})
}

func (s *Server) ledgers(w http.ResponseWriter, r *http.Request) {
	infos, err := s.cfg.Node.Ledgers(r.Context())
	if err != nil {
		writeProblem(w, http.StatusServiceUnavailable, "not-ready", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, infos)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
