package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/finp2p/go-finp2p/broadcast"
	"github.com/finp2p/go-finp2p/ledger"
	"github.com/finp2p/go-finp2p/resource"
)

// The broadcast kinds every node answers for the ledgers it reads.
const (
	// KindBalance asks the nodes of an asset's ledger for a user's balance.
	KindBalance = "balance"
	// KindReceiptValidation asks the nodes of a ledger whether a receipt's
	// ledger transaction exists with the same details.
	KindReceiptValidation = "receipt-validation"
)

// balanceQuestion is the payload of a balance request.
type balanceQuestion struct {
	Ledger  string `json:"ledger"`
	Asset   string `json:"asset"`
	Account string `json:"account"`
}

// Validation is the answer to a receipt-validation request.
type Validation struct {
	// Valid says the ledger holds the transaction with the same details.
	Valid bool `json:"valid"`
	// Reason says why it is not valid: no such transaction, or which
	// fields differ (never the ledger's values of them).
	Reason string `json:"reason,omitempty"`
}

// BalanceResult is a balance read by broadcast.
type BalanceResult struct {
	// Balance is the agreed balance; nil when the broadcast reached none.
	Balance *ledger.Balance
	// LedgerVersion is the highest ledger version among the agreeing
	// responders.
	LedgerVersion uint64
	// Broadcast is the whole result: responders, failures, drops and how
	// disagreement was resolved.
	Broadcast *BroadcastResult
}

// ValidationResult is a receipt validated by broadcast.
type ValidationResult struct {
	// Validation is the agreed answer; nil when the broadcast reached none.
	Validation *Validation
	// LedgerVersion is the highest ledger version among the agreeing
	// responders.
	LedgerVersion uint64
	Broadcast     *BroadcastResult
}

// registerKinds installs the built-in broadcast kinds.
func (b *broadcasts) registerKinds() {
	b.kinds[KindBalance] = b.answerBalance
	b.kinds[KindReceiptValidation] = b.answerValidation
}

// accountOrg is the org an account belongs to: the org of an owner
// resource id (org:101:user), or the part after the last "@" (alice@org).
func accountOrg(account string) string {
	if id, err := resource.ParseID(account); err == nil {
		return id.Org()
	}
	if i := strings.LastIndexByte(account, '@'); i >= 0 {
		return account[i+1:]
	}
	return ""
}

// readVersioned reads from l at one ledger version: the version before and
// after the read must agree, else the read is retried.
func readVersioned[T any](ctx context.Context, l ledger.Ledger, read func() (T, error)) (T, uint64, error) {
	var zero T
	for range 8 {
		before, err := l.Version(ctx)
		if err != nil {
			return zero, 0, err
		}
		v, err := read()
		if err != nil {
			return zero, 0, err
		}
		after, err := l.Version(ctx)
		if err != nil {
			return zero, 0, err
		}
		if before == after {
			return v, after, nil
		}
	}
	return zero, 0, errors.New("the ledger kept changing during the read")
}

// answerBalance answers a balance request from a ledger this node reads,
// to the account's own org, the asset's org, or an org the asset's ACL
// lets read it.
func (b *broadcasts) answerBalance(ctx context.Context, vr *broadcast.VerifiedRequest, payload []byte) ([]byte, uint64, error) {
	var q balanceQuestion
	if err := json.Unmarshal(payload, &q); err != nil {
		return nil, 0, fmt.Errorf("malformed balance question: %w", err)
	}
	if q.Ledger != vr.Request.Scope.Ledger {
		return nil, 0, fmt.Errorf("balance question names ledger %q, the request is for ledger %q", q.Ledger, vr.Request.Scope.Ledger)
	}
	l, ok := b.n.repl.reader(q.Ledger)
	if !ok {
		return nil, 0, fmt.Errorf("this node does not read ledger %q", q.Ledger)
	}
	org := vr.Signer.OrgID
	id, idErr := resource.ParseID(q.Asset)
	allowed := accountOrg(q.Account) == org || (idErr == nil && id.Org() == org)
	if !allowed && idErr == nil {
		allowed = b.n.acc.allows(id, org, resource.RightRead)
	}
	if !allowed {
		return nil, 0, fmt.Errorf("%w: org %s may not read the balance of %q in %s", resource.ErrAccessDenied, org, q.Account, q.Asset)
	}
	bal, version, err := readVersioned(ctx, l, func() (ledger.Balance, error) { return l.Balance(ctx, q.Asset, q.Account) })
	if err != nil {
		return nil, 0, err
	}
	answer, err := json.Marshal(bal)
	return answer, version, err
}

// answerValidation checks a receipt's ledger transaction against a ledger
// this node reads.
func (b *broadcasts) answerValidation(ctx context.Context, vr *broadcast.VerifiedRequest, payload []byte) ([]byte, uint64, error) {
	var tx ledger.Transaction
	if err := json.Unmarshal(payload, &tx); err != nil {
		return nil, 0, fmt.Errorf("malformed receipt transaction: %w", err)
	}
	if tx.LedgerID != vr.Request.Scope.Ledger {
		return nil, 0, fmt.Errorf("transaction of ledger %q, the request is for ledger %q", tx.LedgerID, vr.Request.Scope.Ledger)
	}
	if tx.ID == "" {
		return nil, 0, errors.New("transaction without an id")
	}
	l, ok := b.n.repl.reader(tx.LedgerID)
	if !ok {
		return nil, 0, fmt.Errorf("this node does not read ledger %q", tx.LedgerID)
	}
	v, version, err := readVersioned(ctx, l, func() (Validation, error) {
		stored, err := l.Transaction(ctx, tx.ID)
		if errors.Is(err, ledger.ErrUnknownTransaction) {
			return Validation{Reason: "no transaction " + tx.ID + " on ledger " + tx.LedgerID}, nil
		}
		if err != nil {
			return Validation{}, err
		}
		if d := ledger.Differences(stored, tx); len(d) > 0 {
			names := make([]string, len(d))
			for i, f := range d {
				names[i] = f.Field // never the ledger's values
			}
			return Validation{Reason: "the ledger's transaction differs in " + strings.Join(names, ", ")}, nil
		}
		return Validation{Valid: true}, nil
	})
	if err != nil {
		return nil, 0, err
	}
	answer, err := json.Marshal(v)
	return answer, version, err
}

// ledgerQuorum is a majority of n nodes, at least 1.
func ledgerQuorum(n int) int { return max(n/2+1, 1) }

// ledgerBroadcast sends a question to the nodes of one ledger, encrypted
// for them, with a majority quorum unless opts says otherwise.
func (n *Node) ledgerBroadcast(ctx context.Context, kind, ledgerID string, question any, opts BroadcastOptions) (*BroadcastResult, error) {
	payload, err := json.Marshal(question)
	if err != nil {
		return nil, err
	}
	scope := broadcast.Scope{Kind: broadcast.ScopeLedger, Ledger: ledgerID}
	opts.Encrypt = true
	if n.bc == nil {
		return nil, fmt.Errorf("%s broadcast: the node is not started", kind)
	}
	return n.bc.send(ctx, BroadcastRequest{Kind: kind, Scope: scope, Payload: payload, BroadcastOptions: opts}, ledgerQuorum)
}

// agreedVersion is the highest ledger version among the agreeing
// responders.
func agreedVersion(r *BroadcastResult) uint64 {
	var v uint64
	for _, a := range r.AgreedBy {
		v = max(v, a.LedgerVersion)
	}
	return v
}

// BalanceOf reads an account's balance of an asset by broadcast to the
// nodes of the asset's ledger (primary and followers), signed by this
// node and encrypted for them. By default it waits for a majority of them
// and the newest ledger version wins.
func (n *Node) BalanceOf(ctx context.Context, asset resource.ID, account string, opts BroadcastOptions) (*BalanceResult, error) {
	if n.bc == nil {
		return nil, errors.New("balance: the node is not started")
	}
	if err := ledger.CheckID("account", account); err != nil {
		return nil, fmt.Errorf("balance: %w", err)
	}
	id := opts.Ledger
	if id == "" {
		var err error
		if id, err = n.assetLedger(ctx, asset); err != nil {
			return nil, fmt.Errorf("balance of %s: %w", asset, err)
		}
	}
	res, err := n.ledgerBroadcast(ctx, KindBalance, id, balanceQuestion{Ledger: id, Asset: asset.String(), Account: account}, opts)
	if err != nil {
		return nil, err
	}
	out := &BalanceResult{Broadcast: res, LedgerVersion: agreedVersion(res)}
	if res.Agreed != nil {
		var b ledger.Balance
		if err := json.Unmarshal(res.Agreed, &b); err != nil {
			return nil, fmt.Errorf("balance of %s: agreed answer: %w", asset, err)
		}
		out.Balance = &b
	}
	return out, nil
}

// ValidateReceipt asks the nodes of a receipt's ledger whether its
// transaction exists there with the same details.
func (n *Node) ValidateReceipt(ctx context.Context, tx ledger.Transaction, opts BroadcastOptions) (*ValidationResult, error) {
	if n.bc == nil {
		return nil, errors.New("validate receipt: the node is not started")
	}
	if err := ledger.CheckID("ledger id", tx.LedgerID); err != nil {
		return nil, fmt.Errorf("validate receipt: %w", err)
	}
	if tx.ID == "" {
		return nil, fmt.Errorf("validate receipt: %w: transaction without an id", ledger.ErrBadRequest)
	}
	res, err := n.ledgerBroadcast(ctx, KindReceiptValidation, tx.LedgerID, tx, opts)
	if err != nil {
		return nil, err
	}
	out := &ValidationResult{Broadcast: res, LedgerVersion: agreedVersion(res)}
	if res.Agreed != nil {
		var v Validation
		if err := json.Unmarshal(res.Agreed, &v); err != nil {
			return nil, fmt.Errorf("validate receipt %s: agreed answer: %w", tx.ID, err)
		}
		out.Validation = &v
	}
	return out, nil
}

// assetLedger is the ledger an asset is on: the one its org's nodes
// advertise they execute.
func (n *Node) assetLedger(ctx context.Context, asset resource.ID) (string, error) {
	if asset.Org() == n.self.OrgID {
		if n.ledger != nil {
			return n.ledger.ID(), nil
		}
		if n.standbyOf != "" {
			return n.standbyOf, nil
		}
	}
	res, err := n.Resolve(ctx, asset.Org())
	if err != nil {
		return "", err
	}
	for _, nd := range res.Nodes {
		if nd.Executes != "" {
			return nd.Executes, nil
		}
	}
	return "", fmt.Errorf("no node of org %s advertises a ledger it executes", asset.Org())
}
