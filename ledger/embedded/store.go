package embedded

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strconv"
	"strings"

	"github.com/ipfs/go-datastore"

	"github.com/finp2p/go-finp2p/ledger"
)

// Datastore layout. Ids supplied by callers are escaped (see keyPart) so
// that no id can reach into another record's key.
var (
	headKey = datastore.NewKey("/head")

	journalPrefix = datastore.NewKey("/journal")
	txPrefix      = datastore.NewKey("/tx")
	balancePrefix = datastore.NewKey("/balance")
	holdPrefix    = datastore.NewKey("/hold")
	assetPrefix   = datastore.NewKey("/asset")
	idemPrefix    = datastore.NewKey("/idem")
)

// genesisHash is the PrevHash of the transaction at version 1.
var genesisHash = strings.Repeat("0", 2*sha256.Size)

func journalKey(version uint64) datastore.Key {
	return journalPrefix.ChildString(fmt.Sprintf("%020d", version))
}

func txKey(id string) datastore.Key       { return txPrefix.ChildString(keyPart(id)) }
func holdKey(id string) datastore.Key     { return holdPrefix.ChildString(keyPart(id)) }
func assetKey(asset string) datastore.Key { return assetPrefix.ChildString(keyPart(asset)) }
func idemKey(key string) datastore.Key    { return idemPrefix.ChildString(keyPart(key)) }

func balanceKey(asset, account string) datastore.Key {
	return balancePrefix.ChildString(keyPart(asset)).ChildString(keyPart(account))
}

// keyPart escapes an id into one key component: '/' and '%' are
// percent-encoded (url.PathEscape), and so is a leading '.', which key
// cleaning would otherwise treat as "." or "..".
func keyPart(id string) string {
	s := url.PathEscape(id)
	if strings.HasPrefix(s, ".") {
		s = "%2E" + s[1:]
	}
	return s
}

// unkeyPart reverses keyPart.
func unkeyPart(s string) (string, error) {
	return url.PathUnescape(s)
}

// headRecord is the ledger's last version and its hash, under /head.
type headRecord struct {
	Version uint64 `json:"version"`
	Hash    string `json:"hash"`
}

// assetRecord is an asset, under /asset/<asset>. Supply is in base units.
type assetRecord struct {
	Decimals int    `json:"decimals"`
	Supply   string `json:"supply"`
}

// balanceRecord is an account's balance of an asset in base units, under
// /balance/<asset>/<account>. Its presence makes the account known.
type balanceRecord struct {
	Available string `json:"available"`
	Held      string `json:"held"`
}

// holdRecord is a hold, under /hold/<id>. Quantity is in base units; Closed
// is the operation that closed it and ClosedBy that transaction's id.
type holdRecord struct {
	Asset    string           `json:"asset"`
	From     string           `json:"from"`
	Quantity string           `json:"quantity"`
	Closed   ledger.Operation `json:"closed,omitempty"`
	ClosedBy string           `json:"closed_by,omitempty"`
}

// request is what makes two calls with one idempotency key the same call:
// the operation and its parameters, quantities in canonical form.
type request struct {
	Operation ledger.Operation `json:"operation"`
	Asset     string           `json:"asset,omitempty"`
	From      string           `json:"from,omitempty"`
	To        string           `json:"to,omitempty"`
	Quantity  string           `json:"quantity,omitempty"`
	HoldID    string           `json:"hold_id,omitempty"`
	Decimals  int              `json:"decimals,omitempty"`
}

// differences names the parameters in which r and o differ.
func (r request) differences(o request) []string {
	if r.Operation != o.Operation {
		return []string{fmt.Sprintf("operation %s, not %s", o.Operation, r.Operation)}
	}
	var d []string
	add := func(name, a, b string) {
		if a != b {
			d = append(d, fmt.Sprintf("%s %q, not %q", name, b, a))
		}
	}
	add("asset", r.Asset, o.Asset)
	add("from", r.From, o.From)
	add("to", r.To, o.To)
	add("quantity", r.Quantity, o.Quantity)
	add("hold_id", r.HoldID, o.HoldID)
	add("decimals", strconv.Itoa(r.Decimals), strconv.Itoa(o.Decimals))
	return d
}

// idemRecord records a committed call, under /idem/<key>.
type idemRecord struct {
	Request request `json:"request"`
	Version uint64  `json:"version"`
}

// units is a record's quantity in base units.
type units = *big.Int

func parseUnits(s string) (units, error) {
	v, ok := new(big.Int).SetString(s, 10)
	if !ok || v.Sign() < 0 {
		return nil, fmt.Errorf("%w: bad base-unit quantity %q", ErrCorrupt, s)
	}
	return v, nil
}

// getJSON reads key into v; a missing key returns datastore.ErrNotFound.
func getJSON(ctx context.Context, ds datastore.Read, key datastore.Key, v any) error {
	b, err := ds.Get(ctx, key)
	if err != nil {
		if errors.Is(err, datastore.ErrNotFound) {
			return err
		}
		return fmt.Errorf("read %s: %w", key, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, key, err)
	}
	return nil
}

// TransactionHash returns the hex SHA-256 that chains tx to its PrevHash:
// sha256(PrevHash as 32 bytes || canonical encoding of every other field
// except Hash). Anyone holding a Transaction, such as a receipt, can
// recompute it.
func TransactionHash(tx ledger.Transaction) (string, error) {
	prev, err := hex.DecodeString(tx.PrevHash)
	if err != nil || len(prev) != sha256.Size {
		return "", fmt.Errorf("%w: prev_hash %q is not a hex SHA-256", ledger.ErrBadRequest, tx.PrevHash)
	}
	h := sha256.New()
	h.Write(prev)
	h.Write(encodeTransaction(tx))
	return hex.EncodeToString(h.Sum(nil)), nil
}

// encodeTransaction is the canonical encoding of tx's fields except Hash and
// PrevHash: a domain tag, then each field in a fixed order, strings prefixed
// by their 4-byte big-endian length, integers as 8 bytes big-endian, the
// timestamp as Unix seconds and nanoseconds.
func encodeTransaction(tx ledger.Transaction) []byte {
	b := make([]byte, 0, 256)
	str := func(s string) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	str("finp2p/ledger/transaction/v1")
	str(tx.ID)
	str(tx.LedgerID)
	str(string(tx.Operation))
	str(tx.Asset)
	str(tx.From)
	str(tx.To)
	str(tx.Quantity)
	str(tx.HoldID)
	b = binary.BigEndian.AppendUint64(b, uint64(int64(tx.Decimals)))
	str(tx.IdempotencyKey)
	b = binary.BigEndian.AppendUint64(b, tx.Version)
	b = binary.BigEndian.AppendUint64(b, uint64(tx.Timestamp.Unix()))
	b = binary.BigEndian.AppendUint32(b, uint32(tx.Timestamp.Nanosecond()))
	return b
}
