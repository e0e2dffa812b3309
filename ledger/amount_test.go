package ledger

import (
	"errors"
	"math/big"
	"strings"
	"testing"
)

func TestParseAmount(t *testing.T) {
	long := strings.Repeat("9", MaxIntegerDigits)
	tests := []struct {
		in       string
		decimals int
		units    string // base units when valid
		canon    string // String(decimals) when valid
		problem  string // part of the error when invalid
	}{
		{in: "0", decimals: 2, units: "0", canon: "0"},
		{in: "0.00", decimals: 2, units: "0", canon: "0"},
		{in: "1", decimals: 0, units: "1", canon: "1"},
		{in: "12", decimals: 2, units: "1200", canon: "12"},
		{in: "0.5", decimals: 2, units: "50", canon: "0.5"},
		{in: "1.25", decimals: 2, units: "125", canon: "1.25"},
		{in: "1.50", decimals: 2, units: "150", canon: "1.5"},
		{in: "10.0", decimals: 1, units: "100", canon: "10"},
		{in: "0.000000000000000001", decimals: 18, units: "1", canon: "0.000000000000000001"},
		{in: long, decimals: 0, units: long, canon: long},
		{in: long + ".5", decimals: 1, units: long + "5", canon: long + ".5"},

		{in: "", decimals: 2, problem: "empty"},
		{in: "-1", decimals: 2, problem: "negative"},
		{in: "-0", decimals: 2, problem: "negative"},
		{in: "+1", decimals: 2, problem: "leading '+'"},
		{in: "1e3", decimals: 2, problem: "exponent"},
		{in: "1E3", decimals: 2, problem: "exponent"},
		{in: "1.234", decimals: 2, problem: "too many decimal places: 3, asset has 2"},
		{in: "1.0", decimals: 0, problem: "too many decimal places: 1, asset has 0"},
		{in: "01", decimals: 2, problem: "leading zeros"},
		{in: "00.5", decimals: 2, problem: "leading zeros"},
		{in: ".5", decimals: 2, problem: "missing integer part"},
		{in: "5.", decimals: 2, problem: "missing fraction digits"},
		{in: ".", decimals: 2, problem: "missing integer part"},
		{in: "1.2.3", decimals: 2, problem: "more than one decimal point"},
		{in: " 1", decimals: 2, problem: "whitespace"},
		{in: "1 ", decimals: 2, problem: "whitespace"},
		{in: "1,000", decimals: 2, problem: "separator"},
		{in: "1_000", decimals: 2, problem: "separator"},
		{in: "1-2", decimals: 2, problem: "sign inside"},
		{in: "0x10", decimals: 2, problem: "invalid character 'x'"},
		{in: "NaN", decimals: 2, problem: "invalid character 'N'"},
		{in: "１", decimals: 2, problem: "invalid character '１' at offset 0"},
		{in: long + "9", decimals: 0, problem: "too many integer digits: 79"},
		{in: "1", decimals: -1, problem: "decimals -1 out of range"},
		{in: "1", decimals: 19, problem: "decimals 19 out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			a, err := ParseAmount(tt.in, tt.decimals)
			if tt.problem != "" {
				if !errors.Is(err, ErrBadQuantity) {
					t.Fatalf("ParseAmount(%q, %d) error = %v, want ErrBadQuantity", tt.in, tt.decimals, err)
				}
				if !strings.Contains(err.Error(), tt.problem) {
					t.Fatalf("ParseAmount(%q, %d) error %q does not name %q", tt.in, tt.decimals, err, tt.problem)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseAmount(%q, %d): %v", tt.in, tt.decimals, err)
			}
			if got := a.BaseUnits().String(); got != tt.units {
				t.Errorf("ParseAmount(%q, %d) = %s base units, want %s", tt.in, tt.decimals, got, tt.units)
			}
			if got := a.String(tt.decimals); got != tt.canon {
				t.Errorf("String(%d) = %q, want %q", tt.decimals, got, tt.canon)
			}
			// The canonical form parses back to the same amount.
			b, err := ParseAmount(a.String(tt.decimals), tt.decimals)
			if err != nil || b.Cmp(a) != 0 {
				t.Errorf("round trip of %q: %v, %v", a.String(tt.decimals), b.String(tt.decimals), err)
			}
		})
	}
}

func TestAmountString(t *testing.T) {
	tests := []struct {
		units    int64
		decimals int
		want     string
	}{
		{0, 0, "0"},
		{0, 18, "0"},
		{5, 0, "5"},
		{5, 2, "0.05"},
		{500, 2, "5"},
		{510, 2, "5.1"},
		{-510, 2, "-5.1"},
		{-5, 3, "-0.005"},
		{123456789, 4, "12345.6789"},
	}
	for _, tt := range tests {
		if got := NewAmount(big.NewInt(tt.units)).String(tt.decimals); got != tt.want {
			t.Errorf("NewAmount(%d).String(%d) = %q, want %q", tt.units, tt.decimals, got, tt.want)
		}
	}
	if got := (Amount{}).String(2); got != "0" {
		t.Errorf("zero Amount String = %q, want 0", got)
	}
}

func TestAmountArithmetic(t *testing.T) {
	p := func(s string) Amount {
		t.Helper()
		a, err := ParseAmount(s, 2)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	tests := []struct {
		a, b     string
		sum      string
		diff     string
		cmp      int
		diffSign int
	}{
		{"1", "1", "2", "0", 0, 0},
		{"1.5", "0.25", "1.75", "1.25", 1, 1},
		{"0.25", "1.5", "1.75", "-1.25", -1, -1},
		{"0", "0.01", "0.01", "-0.01", -1, -1},
		{"99999999999999999999", "0.01", "99999999999999999999.01", "99999999999999999998.99", 1, 1},
	}
	for _, tt := range tests {
		a, b := p(tt.a), p(tt.b)
		if got := a.Add(b).String(2); got != tt.sum {
			t.Errorf("%s + %s = %s, want %s", tt.a, tt.b, got, tt.sum)
		}
		d := a.Sub(b)
		if got := d.String(2); got != tt.diff {
			t.Errorf("%s - %s = %s, want %s", tt.a, tt.b, got, tt.diff)
		}
		if d.Sign() != tt.diffSign || d.IsZero() != (tt.diffSign == 0) {
			t.Errorf("%s - %s: Sign %d IsZero %v, want sign %d", tt.a, tt.b, d.Sign(), d.IsZero(), tt.diffSign)
		}
		if got := a.Cmp(b); got != tt.cmp {
			t.Errorf("Cmp(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.cmp)
		}
		if got := b.Cmp(a); got != -tt.cmp {
			t.Errorf("Cmp(%s, %s) = %d, want %d", tt.b, tt.a, got, -tt.cmp)
		}
		// Operands are not modified.
		if a.String(2) != p(tt.a).String(2) || b.String(2) != p(tt.b).String(2) {
			t.Errorf("operands changed: %s, %s", a.String(2), b.String(2))
		}
	}
	var zero Amount
	if !zero.IsZero() || zero.Sign() != 0 || zero.Cmp(p("0")) != 0 || zero.Add(p("1")).String(2) != "1" {
		t.Error("zero Amount does not behave as zero")
	}
	units := big.NewInt(7)
	a := NewAmount(units)
	units.SetInt64(9)
	if a.BaseUnits().Int64() != 7 {
		t.Error("NewAmount does not copy its argument")
	}
	a.BaseUnits().SetInt64(11)
	if a.BaseUnits().Int64() != 7 {
		t.Error("BaseUnits does not return a copy")
	}
}

// FuzzParseAmount checks that ParseAmount never panics, that what it
// accepts is plain decimal text, and that the canonical form of an accepted
// quantity parses back to the same amount.
func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"0", "1.25", "01", "-1", "1e3", ".5", "5.", "1.2.3", "99999999999999999999.999999999999999999"} {
		f.Add(s, 2)
	}
	f.Fuzz(func(t *testing.T, s string, decimals int) {
		a, err := ParseAmount(s, decimals)
		if err != nil {
			if !errors.Is(err, ErrBadQuantity) {
				t.Fatalf("ParseAmount(%q, %d) error %v does not wrap ErrBadQuantity", s, decimals, err)
			}
			return
		}
		if strings.Trim(s, "0123456789.") != "" || a.Sign() < 0 {
			t.Fatalf("ParseAmount(%q, %d) accepted %s", s, decimals, a.String(decimals))
		}
		canon := a.String(decimals)
		b, err := ParseAmount(canon, decimals)
		if err != nil || b.Cmp(a) != 0 || b.String(decimals) != canon {
			t.Fatalf("canonical %q of %q does not round-trip: %v", canon, s, err)
		}
	})
}
