package ledger

import (
	"errors"
	"strings"
	"testing"
)

func TestRequestValidate(t *testing.T) {
	key := "k1"
	tests := []struct {
		name    string
		req     interface{ Validate() error }
		problem string // empty when valid
	}{
		{"create ok", CreateAsset{IdempotencyKey: key, Asset: "bank-us:102:usd", Decimals: 2}, ""},
		{"create no key", CreateAsset{Asset: "a"}, "missing idempotency key"},
		{"create long key", CreateAsset{IdempotencyKey: strings.Repeat("k", 129), Asset: "a"}, "129 characters"},
		{"create 128-char key", CreateAsset{IdempotencyKey: strings.Repeat("é", 128), Asset: "a"}, ""},
		{"create control key", CreateAsset{IdempotencyKey: "a\nb", Asset: "a"}, "control character"},
		{"create no asset", CreateAsset{IdempotencyKey: key}, "missing asset"},
		{"create decimals", CreateAsset{IdempotencyKey: key, Asset: "a", Decimals: 19}, "decimals 19"},
		{"create negative decimals", CreateAsset{IdempotencyKey: key, Asset: "a", Decimals: -1}, "decimals -1"},
		{"issue ok", Issue{IdempotencyKey: key, Asset: "a", To: "orga:user:1", Quantity: "1"}, ""},
		{"issue no to", Issue{IdempotencyKey: key, Asset: "a", Quantity: "1"}, "missing to"},
		{"issue space in to", Issue{IdempotencyKey: key, Asset: "a", To: "x y", Quantity: "1"}, "space"},
		{"transfer ok", Transfer{IdempotencyKey: key, Asset: "a", From: "x", To: "y", Quantity: "1"}, ""},
		{"transfer to self", Transfer{IdempotencyKey: key, Asset: "a", From: "x", To: "x", Quantity: "1"}, "to itself"},
		{"transfer no from", Transfer{IdempotencyKey: key, Asset: "a", To: "x", Quantity: "1"}, "missing from"},
		{"redeem no asset", Redeem{IdempotencyKey: key, From: "x", Quantity: "1"}, "missing asset"},
		{"hold long asset", Hold{IdempotencyKey: key, Asset: strings.Repeat("a", 257), From: "x", Quantity: "1"}, "257 bytes"},
		{"release no hold", Release{IdempotencyKey: key, To: "y"}, "missing hold_id"},
		{"release no to", Release{IdempotencyKey: key, HoldID: "h"}, "missing to"},
		{"rollback ok", Rollback{IdempotencyKey: key, HoldID: "h"}, ""},
		{"rollback no key", Rollback{HoldID: "h"}, "missing idempotency key"},
		{"bad utf8", Redeem{IdempotencyKey: key, Asset: "a\xff", From: "x", Quantity: "1"}, "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.req.Validate()
			if tt.problem == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tt.problem) {
				t.Fatalf("Validate error = %v, want ErrBadRequest naming %q", err, tt.problem)
			}
		})
	}
}
