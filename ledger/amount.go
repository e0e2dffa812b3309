package ledger

import (
	"fmt"
	"math/big"
	"strings"
)

// Limits on quantities.
const (
	// MaxDecimals is the largest number of fraction digits an asset may have.
	MaxDecimals = 18
	// MaxIntegerDigits is the largest number of integer digits a quantity may
	// have (enough for any uint256 token amount).
	MaxIntegerDigits = 78
)

// Amount is a non-floating quantity of an asset, held as an integer number of
// base units (1 unit = 10^decimals base units). The zero value is zero.
// Amounts are immutable: arithmetic returns a new Amount.
type Amount struct {
	v *big.Int // nil means zero; never mutated after construction
}

// NewAmount returns the Amount of units base units (a copy of units).
func NewAmount(units *big.Int) Amount {
	if units == nil {
		return Amount{}
	}
	return Amount{v: new(big.Int).Set(units)}
}

// ParseAmount parses a plain decimal quantity of an asset with the given number
// of decimals: digits with an optional fraction ("12", "0.5", "1.25"), no sign,
// exponent or '+', no leading zeros except a single "0" before the point, at
// most decimals fraction digits and MaxIntegerDigits integer digits. The
// error wraps ErrBadQuantity and names the problem.
func ParseAmount(s string, decimals int) (Amount, error) {
	bad := func(format string, args ...any) (Amount, error) {
		return Amount{}, fmt.Errorf("%w %q: %s", ErrBadQuantity, s, fmt.Sprintf(format, args...))
	}
	if decimals < 0 || decimals > MaxDecimals {
		return bad("asset decimals %d out of range 0..%d", decimals, MaxDecimals)
	}
	if s == "" {
		return bad("empty")
	}
	switch s[0] {
	case '-':
		return bad("negative")
	case '+':
		return bad("leading '+'")
	}
	intPart, frac, hasPoint := strings.Cut(s, ".")
	for i, c := range s {
		switch {
		case c >= '0' && c <= '9':
		case c == '.':
			if i != len(intPart) {
				return bad("more than one decimal point")
			}
		case c == 'e' || c == 'E':
			return bad("exponent not allowed")
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return bad("contains whitespace")
		case c == '-' || c == '+':
			return bad("sign inside the number")
		case c == ',' || c == '_':
			return bad("digit separator %q not allowed", c)
		default:
			return bad("invalid character %q at offset %d", c, i)
		}
	}
	if intPart == "" {
		return bad("missing integer part before '.'")
	}
	if hasPoint && frac == "" {
		return bad("missing fraction digits after '.'")
	}
	if len(intPart) > 1 && intPart[0] == '0' {
		return bad("leading zeros")
	}
	if len(intPart) > MaxIntegerDigits {
		return bad("too many integer digits: %d, at most %d", len(intPart), MaxIntegerDigits)
	}
	if len(frac) > decimals {
		return bad("too many decimal places: %d, asset has %d", len(frac), decimals)
	}
	digits := intPart + frac + strings.Repeat("0", decimals-len(frac))
	v, ok := new(big.Int).SetString(digits, 10)
	if !ok { // unreachable: digits holds only ASCII digits
		return bad("not a number")
	}
	return Amount{v: v}, nil
}

// String formats a in canonical form for an asset with the given decimals:
// no trailing fraction zeros, no point when the fraction is zero, "0" for
// zero and a leading '-' for a negative amount.
func (a Amount) String(decimals int) string {
	if a.v == nil || a.v.Sign() == 0 {
		return "0"
	}
	decimals = max(0, decimals)
	neg := a.v.Sign() < 0
	digits := new(big.Int).Abs(a.v).String()
	if len(digits) <= decimals {
		digits = strings.Repeat("0", decimals-len(digits)+1) + digits
	}
	intPart, frac := digits[:len(digits)-decimals], strings.TrimRight(digits[len(digits)-decimals:], "0")
	s := intPart
	if frac != "" {
		s += "." + frac
	}
	if neg {
		s = "-" + s
	}
	return s
}

// BaseUnits returns a copy of a as an integer number of base units.
func (a Amount) BaseUnits() *big.Int {
	if a.v == nil {
		return new(big.Int)
	}
	return new(big.Int).Set(a.v)
}

// Add returns a + b.
func (a Amount) Add(b Amount) Amount {
	return Amount{v: new(big.Int).Add(a.int(), b.int())}
}

// Sub returns a - b, which may be negative.
func (a Amount) Sub(b Amount) Amount {
	return Amount{v: new(big.Int).Sub(a.int(), b.int())}
}

// Cmp compares a and b and returns -1, 0 or +1.
func (a Amount) Cmp(b Amount) int {
	return a.int().Cmp(b.int())
}

// IsZero reports whether a is zero.
func (a Amount) IsZero() bool {
	return a.v == nil || a.v.Sign() == 0
}

// Sign returns -1, 0 or +1 as a is negative, zero or positive.
func (a Amount) Sign() int {
	if a.v == nil {
		return 0
	}
	return a.v.Sign()
}

var zeroInt = new(big.Int)

// int returns a's value for reading only.
func (a Amount) int() *big.Int {
	if a.v == nil {
		return zeroInt
	}
	return a.v
}
