// Package ledger defines the Ledger a primary node executes asset transactions
// on, mirroring the operations of Ownera's DLT adapters: create asset, issue,
// transfer, redeem, hold, release, rollback, balance, transaction by id and
// operation status. Every mutating call carries an idempotency key, so a
// caller that lost an answer can retry without a second effect. Quantities
// are decimal strings, never floats; see Amount.
//
// ledger/embedded implements the interface on a datastore.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
)

// Errors of ledger operations. Implementations wrap them with detail, so a
// caller tests with errors.Is and shows the message.
var (
	// ErrBadQuantity: a quantity is malformed, zero where it must not be, or
	// has more decimal places than its asset.
	ErrBadQuantity = errors.New("bad quantity")
	// ErrUnknownAsset: no asset with that id was created.
	ErrUnknownAsset = errors.New("unknown asset")
	// ErrAssetExists: CreateAsset of an id that already exists.
	ErrAssetExists = errors.New("asset already exists")
	// ErrUnknownAccount: an account with no balance record of the asset was
	// debited.
	ErrUnknownAccount = errors.New("unknown account")
	// ErrInsufficientBalance: the account's available balance (current minus
	// held) is less than the quantity wanted.
	ErrInsufficientBalance = errors.New("insufficient balance")
	// ErrUnknownHold: no hold with that id.
	ErrUnknownHold = errors.New("unknown hold")
	// ErrHoldClosed: the hold was already released or rolled back.
	ErrHoldClosed = errors.New("hold already closed")
	// ErrUnknownTransaction: no transaction with that id.
	ErrUnknownTransaction = errors.New("unknown transaction")
	// ErrIdempotencyConflict: an idempotency key was reused with different
	// parameters.
	ErrIdempotencyConflict = errors.New("idempotency key reused with different parameters")
	// ErrBadRequest: a request misses its idempotency key or a field, or a
	// field is malformed.
	ErrBadRequest = errors.New("bad ledger request")
)

// Limits on request fields.
const (
	// MaxIdempotencyKeyLength is the longest idempotency key, in characters.
	MaxIdempotencyKeyLength = 128
	// MaxIDLength is the longest asset or account id, in bytes.
	MaxIDLength = 256
)

// Operation names what a Transaction did.
type Operation string

// Operations of a Ledger.
const (
	OpCreateAsset Operation = "create-asset"
	OpIssue       Operation = "issue"
	OpTransfer    Operation = "transfer"
	OpRedeem      Operation = "redeem"
	OpHold        Operation = "hold"
	OpRelease     Operation = "release"
	OpRollback    Operation = "rollback"
)

// Transaction is one entry of a ledger's journal: what an operation did, at
// which ledger version, chained to the previous entry by hash. It is the
// ledger part of an asset transaction receipt.
type Transaction struct {
	// ID identifies the transaction; for a hold it is also the hold id.
	ID string `json:"id"`
	// LedgerID is the ledger that executed it.
	LedgerID  string    `json:"ledger_id"`
	Operation Operation `json:"operation"`
	Asset     string    `json:"asset"`
	// From is the debited account (transfer, redeem, hold) or the holder
	// (release, rollback).
	From string `json:"from,omitempty"`
	// To is the credited account (issue, transfer, release).
	To string `json:"to,omitempty"`
	// Quantity is the canonical decimal quantity; empty for create-asset.
	Quantity string `json:"quantity,omitempty"`
	// HoldID is the hold a release or rollback closed.
	HoldID string `json:"hold_id,omitempty"`
	// Decimals is the asset's number of decimals, set by create-asset.
	Decimals       int    `json:"decimals,omitempty"`
	IdempotencyKey string `json:"idempotency_key"`
	// Version is the ledger version this transaction produced; versions
	// start at 1 and grow by one per transaction.
	Version uint64 `json:"version"`
	// Hash is the hex SHA-256 of the transaction chained to PrevHash, the
	// Hash of the transaction at Version-1.
	Hash      string    `json:"hash"`
	PrevHash  string    `json:"prev_hash"`
	Timestamp time.Time `json:"timestamp"`
}

// Balance is an account's balance of an asset, as canonical decimal strings.
// Current = Available + Held.
type Balance struct {
	Asset     string `json:"asset"`
	Account   string `json:"account"`
	Current   string `json:"current"`
	Available string `json:"available"`
	Held      string `json:"held"`
}

// OperationStatus tells whether a mutating call with an idempotency key was
// executed, and with which transaction.
type OperationStatus struct {
	IdempotencyKey string `json:"idempotency_key"`
	// Done is true when an operation with the key committed.
	Done bool `json:"done"`
	// Transaction is the committed transaction when Done.
	Transaction *Transaction `json:"transaction,omitempty"`
}

// CreateAsset asks to create an asset with a number of decimals.
type CreateAsset struct {
	IdempotencyKey string `json:"idempotency_key"`
	Asset          string `json:"asset"`
	// Decimals is the number of fraction digits of the asset's quantities,
	// 0..MaxDecimals.
	Decimals int `json:"decimals"`
}

// Issue asks to create Quantity of Asset in account To.
type Issue struct {
	IdempotencyKey string `json:"idempotency_key"`
	Asset          string `json:"asset"`
	To             string `json:"to"`
	Quantity       string `json:"quantity"`
}

// Transfer asks to move Quantity of Asset from From's available balance to To.
type Transfer struct {
	IdempotencyKey string `json:"idempotency_key"`
	Asset          string `json:"asset"`
	From           string `json:"from"`
	To             string `json:"to"`
	Quantity       string `json:"quantity"`
}

// Redeem asks to destroy Quantity of Asset from From's available balance.
type Redeem struct {
	IdempotencyKey string `json:"idempotency_key"`
	Asset          string `json:"asset"`
	From           string `json:"from"`
	Quantity       string `json:"quantity"`
}

// Hold asks to set aside Quantity of From's available balance, for a later
// Release (settlement) or Rollback. The hold id is the resulting
// transaction's ID.
type Hold struct {
	IdempotencyKey string `json:"idempotency_key"`
	Asset          string `json:"asset"`
	From           string `json:"from"`
	Quantity       string `json:"quantity"`
}

// Release asks to settle an open hold: its quantity leaves the holder's held
// balance and is credited to To.
type Release struct {
	IdempotencyKey string `json:"idempotency_key"`
	HoldID         string `json:"hold_id"`
	To             string `json:"to"`
}

// Rollback asks to cancel an open hold: its quantity returns to the holder's
// available balance.
type Rollback struct {
	IdempotencyKey string `json:"idempotency_key"`
	HoldID         string `json:"hold_id"`
}

// Ledger executes asset transactions. Every mutating call needs an
// idempotency key: a call whose key was already used with the same
// parameters returns the original Transaction without a second effect; with
// different parameters it fails with ErrIdempotencyConflict. Implementations
// are safe for concurrent use.
type Ledger interface {
	// ID identifies the ledger; it is every Transaction's LedgerID.
	ID() string
	// CreateAsset creates an asset with no supply.
	CreateAsset(ctx context.Context, req CreateAsset) (Transaction, error)
	// Issue creates supply in an account.
	Issue(ctx context.Context, req Issue) (Transaction, error)
	// Transfer moves available balance between two accounts.
	Transfer(ctx context.Context, req Transfer) (Transaction, error)
	// Redeem destroys available balance.
	Redeem(ctx context.Context, req Redeem) (Transaction, error)
	// Hold sets available balance aside; the transaction's ID is the hold id.
	Hold(ctx context.Context, req Hold) (Transaction, error)
	// Release settles an open hold to an account.
	Release(ctx context.Context, req Release) (Transaction, error)
	// Rollback returns an open hold to the holder's available balance.
	Rollback(ctx context.Context, req Rollback) (Transaction, error)
	// Balance returns an account's balance of an asset; an account the
	// ledger never credited has a zero balance.
	Balance(ctx context.Context, asset, account string) (Balance, error)
	// Transaction returns the transaction with that id.
	Transaction(ctx context.Context, id string) (Transaction, error)
	// Status tells whether an operation with that idempotency key committed.
	Status(ctx context.Context, idempotencyKey string) (OperationStatus, error)
	// Version returns the ledger's version: the Version of its last
	// transaction, 0 when it has none.
	Version(ctx context.Context) (uint64, error)
}

// Validate checks the request's fields, not the ledger's state.
func (r CreateAsset) Validate() error {
	if err := CheckIdempotencyKey(r.IdempotencyKey); err != nil {
		return err
	}
	if err := CheckID("asset", r.Asset); err != nil {
		return err
	}
	if r.Decimals < 0 || r.Decimals > MaxDecimals {
		return fmt.Errorf("%w: decimals %d out of range 0..%d", ErrBadRequest, r.Decimals, MaxDecimals)
	}
	return nil
}

// Validate checks the request's fields, not the ledger's state. The quantity
// is checked against the asset's decimals by ParseAmount.
func (r Issue) Validate() error {
	return firstError(
		CheckIdempotencyKey(r.IdempotencyKey),
		CheckID("asset", r.Asset),
		CheckID("to", r.To),
	)
}

// Validate checks the request's fields, not the ledger's state. The quantity
// is checked against the asset's decimals by ParseAmount.
func (r Transfer) Validate() error {
	if err := firstError(
		CheckIdempotencyKey(r.IdempotencyKey),
		CheckID("asset", r.Asset),
		CheckID("from", r.From),
		CheckID("to", r.To),
	); err != nil {
		return err
	}
	if r.From == r.To {
		return fmt.Errorf("%w: transfer from %q to itself", ErrBadRequest, r.From)
	}
	return nil
}

// Validate checks the request's fields, not the ledger's state. The quantity
// is checked against the asset's decimals by ParseAmount.
func (r Redeem) Validate() error {
	return firstError(
		CheckIdempotencyKey(r.IdempotencyKey),
		CheckID("asset", r.Asset),
		CheckID("from", r.From),
	)
}

// Validate checks the request's fields, not the ledger's state. The quantity
// is checked against the asset's decimals by ParseAmount.
func (r Hold) Validate() error {
	return firstError(
		CheckIdempotencyKey(r.IdempotencyKey),
		CheckID("asset", r.Asset),
		CheckID("from", r.From),
	)
}

// Validate checks the request's fields, not the ledger's state.
func (r Release) Validate() error {
	return firstError(
		CheckIdempotencyKey(r.IdempotencyKey),
		CheckID("hold_id", r.HoldID),
		CheckID("to", r.To),
	)
}

// Validate checks the request's fields, not the ledger's state.
func (r Rollback) Validate() error {
	return firstError(
		CheckIdempotencyKey(r.IdempotencyKey),
		CheckID("hold_id", r.HoldID),
	)
}

// CheckIdempotencyKey checks that key is present, valid UTF-8 without control
// characters, and at most MaxIdempotencyKeyLength characters. The error wraps
// ErrBadRequest.
func CheckIdempotencyKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: missing idempotency key", ErrBadRequest)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w: idempotency key is not valid UTF-8", ErrBadRequest)
	}
	if n := utf8.RuneCountInString(key); n > MaxIdempotencyKeyLength {
		return fmt.Errorf("%w: idempotency key has %d characters, at most %d", ErrBadRequest, n, MaxIdempotencyKeyLength)
	}
	for _, r := range key {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: idempotency key contains control character %U", ErrBadRequest, r)
		}
	}
	return nil
}

// CheckID checks an asset, account or hold id named field: present, at most
// MaxIDLength bytes of valid UTF-8, without spaces or control characters.
// The error wraps ErrBadRequest.
func CheckID(field, id string) error {
	if id == "" {
		return fmt.Errorf("%w: missing %s", ErrBadRequest, field)
	}
	if len(id) > MaxIDLength {
		return fmt.Errorf("%w: %s is %d bytes long, at most %d", ErrBadRequest, field, len(id), MaxIDLength)
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("%w: %s %q is not valid UTF-8", ErrBadRequest, field, id)
	}
	for _, r := range id {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("%w: %s %q contains space or control character %U", ErrBadRequest, field, id, r)
		}
	}
	return nil
}

func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
