package ledger

import (
	"fmt"
	"strconv"
	"time"
)

// FieldDifference is one field in which two transactions differ, with both
// values formatted for a message (strings quoted).
type FieldDifference struct {
	// Field is the JSON name of the field.
	Field string
	// Want is the value in the transaction compared against, Got the other.
	Want, Got string
}

// String says "field got, not want".
func (d FieldDifference) String() string { return fmt.Sprintf("%s %s, not %s", d.Field, d.Got, d.Want) }

// Differences lists the fields in which got differs from want, in the
// order of Transaction's fields. Timestamps are compared as instants. The
// hash, which differs whenever another field does, is listed only when it
// is the one difference.
func Differences(want, got Transaction) []FieldDifference {
	var d []FieldDifference
	str := func(name, w, g string) {
		if w != g {
			d = append(d, FieldDifference{name, strconv.Quote(w), strconv.Quote(g)})
		}
	}
	num := func(name string, w, g int64) {
		if w != g {
			d = append(d, FieldDifference{name, strconv.FormatInt(w, 10), strconv.FormatInt(g, 10)})
		}
	}
	str("id", want.ID, got.ID)
	str("ledger_id", want.LedgerID, got.LedgerID)
	str("operation", string(want.Operation), string(got.Operation))
	str("asset", want.Asset, got.Asset)
	str("from", want.From, got.From)
	str("to", want.To, got.To)
	str("quantity", want.Quantity, got.Quantity)
	str("hold_id", want.HoldID, got.HoldID)
	num("decimals", int64(want.Decimals), int64(got.Decimals))
	str("idempotency_key", want.IdempotencyKey, got.IdempotencyKey)
	if want.Version != got.Version {
		d = append(d, FieldDifference{"version", strconv.FormatUint(want.Version, 10), strconv.FormatUint(got.Version, 10)})
	}
	str("prev_hash", want.PrevHash, got.PrevHash)
	if !want.Timestamp.Equal(got.Timestamp) {
		d = append(d, FieldDifference{"timestamp", want.Timestamp.Format(time.RFC3339Nano), got.Timestamp.Format(time.RFC3339Nano)})
	}
	if len(d) == 0 {
		str("hash", want.Hash, got.Hash)
	}
	return d
}
