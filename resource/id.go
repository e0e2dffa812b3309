package resource

import (
	"errors"
	"fmt"
	"strings"

	"github.com/finp2p/go-finp2p/governance"
)

// ErrBadID is wrapped by every error about a malformed resource id.
var ErrBadID = errors.New("bad resource id")

// Standard FinP2P resource types. Every vendor implements these; custom
// types are namespaced (vendor.name) so they never collide with them.
const (
	// TypeOwner is an owner (user) profile.
	TypeOwner = "101"
	// TypeAsset is an asset managed by the owner org.
	TypeAsset = "102"
	// TypeIntent is an intent (an offer to buy, sell, issue or redeem).
	TypeIntent = "105"
	// TypeExecutionPlan is the plan that executes an intent.
	TypeExecutionPlan = "106"
)

var typeNames = map[string]string{
	TypeOwner:         "owner",
	TypeAsset:         "asset",
	TypeIntent:        "intent",
	TypeExecutionPlan: "execution plan",
}

// Limits of the parts of a resource id.
const (
	// MaxLocalLen bounds the type-specific id part.
	MaxLocalLen = 128
	// MaxTypeLen bounds a custom (namespaced) type.
	MaxTypeLen = 128
	// maxLabelLen bounds one label of a custom type.
	maxLabelLen = 32
)

// uriScheme is the prefix of the URI form of a resource id.
const uriScheme = "finp2p://"

// ID identifies a resource: the owner org, the resource type and the id the
// type's domain gives it. It is written org:type:id (canonical, see String)
// or finp2p://org/type/id (see URI); both parse to the same comparable value.
// The zero ID is invalid.
type ID struct {
	org, typ, local string
}

// ParseID parses the canonical form org:type:id or the URI form
// finp2p://org/type/id. Parsing is strict: each resource has exactly one
// string in each form, and anything else is an error wrapping ErrBadID that
// names the part that is wrong and why.
func ParseID(s string) (ID, error) {
	id, err := parseID(s)
	if err != nil {
		return ID{}, fmt.Errorf("%w %s: %w", ErrBadID, quote(s), err)
	}
	return id, nil
}

func parseID(s string) (ID, error) {
	if s == "" {
		return ID{}, errors.New("empty; want org:type:id or finp2p://org/type/id")
	}
	sep, form := ":", "org:type:id"
	rest := s
	switch {
	case strings.HasPrefix(s, uriScheme):
		sep, form = "/", "finp2p://org/type/id"
		rest = s[len(uriScheme):]
		if i := strings.IndexAny(rest, "?#"); i >= 0 {
			return ID{}, fmt.Errorf("%q starts a query or fragment, which a resource id does not have", rest[i])
		}
	case strings.Contains(s, "://"):
		scheme, _, _ := strings.Cut(s, "://")
		return ID{}, fmt.Errorf("scheme %s is not %q (lowercase)", quote(scheme), strings.TrimSuffix(uriScheme, "://"))
	case len(s) > len("finp2p:/") && strings.EqualFold(s[:len("finp2p:/")], "finp2p:/"):
		return ID{}, fmt.Errorf("the URI form starts with %q", uriScheme)
	}
	parts := strings.SplitN(rest, sep, 3)
	switch len(parts) {
	case 1:
		return ID{}, fmt.Errorf("missing type and id parts; want %s", form)
	case 2:
		return ID{}, fmt.Errorf("missing id part; want %s", form)
	}
	if err := checkParts(parts[0], parts[1], parts[2]); err != nil {
		return ID{}, err
	}
	return ID{org: parts[0], typ: parts[1], local: parts[2]}, nil
}

// NewID builds an ID from its parts, checked with the same rules as ParseID.
func NewID(org, typ, local string) (ID, error) {
	if err := checkParts(org, typ, local); err != nil {
		return ID{}, fmt.Errorf("%w: %w", ErrBadID, err)
	}
	return ID{org: org, typ: typ, local: local}, nil
}

// checkParts returns an error that names the first bad part.
func checkParts(org, typ, local string) error {
	if err := governance.ValidateOrgID(org); err != nil {
		return fmt.Errorf("org part: %w", err)
	}
	if err := validateType(typ); err != nil {
		return fmt.Errorf("type part %s: %w", quote(typ), err)
	}
	if err := validateLocal(local); err != nil {
		return fmt.Errorf("id part %s: %w", quote(local), err)
	}
	return nil
}

// MustParseID is ParseID for constants in tests and examples; it panics on
// a bad id.
func MustParseID(s string) ID {
	id, err := ParseID(s)
	if err != nil {
		panic(err)
	}
	return id
}

// validateType accepts a standard type, a number 100–999 without leading
// zeros, or a custom type vendor.name: at least two dot-separated labels of
// 1–32 lowercase letters, digits and '-', each starting with a letter.
func validateType(t string) error {
	if t == "" {
		return errors.New("empty")
	}
	if isDigit(t[0]) {
		for i := 0; i < len(t); i++ {
			if !isDigit(t[i]) {
				return errors.New("a standard type is a number 100-999; a custom type is vendor.name starting with a letter")
			}
		}
		if len(t) != 3 || t[0] == '0' {
			return errors.New("a standard type is a number 100-999 written without leading zeros")
		}
		return nil
	}
	if len(t) > MaxTypeLen {
		return fmt.Errorf("%d characters, at most %d", len(t), MaxTypeLen)
	}
	labels := strings.Split(t, ".")
	if len(labels) < 2 {
		return errors.New("a custom type must be namespaced as vendor.name (for example acme.loan)")
	}
	for _, l := range labels {
		if err := validateLabel(l); err != nil {
			return fmt.Errorf("label %s: %w", quote(l), err)
		}
	}
	return nil
}

func validateLabel(l string) error {
	switch {
	case l == "":
		return errors.New("empty (labels are separated by single dots)")
	case len(l) > maxLabelLen:
		return fmt.Errorf("%d characters, at most %d", len(l), maxLabelLen)
	case !isLower(l[0]):
		return errors.New("must start with a lowercase letter")
	}
	for i := 0; i < len(l); i++ {
		if c := l[i]; !isLower(c) && !isDigit(c) && c != '-' {
			return fmt.Errorf("character %q is not allowed: want lowercase letters, digits and '-'", rune(c))
		}
	}
	return nil
}

// validateLocal accepts 1–128 unreserved URI characters, so the id reads the
// same in both forms and needs no escaping. "." and ".." are refused: URI
// tools would resolve them as path segments.
func validateLocal(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > MaxLocalLen:
		return fmt.Errorf("%d characters, at most %d", len(s), MaxLocalLen)
	case s == "." || s == "..":
		return errors.New("dot segments are not ids")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isLower(c) || isDigit(c) || ('A' <= c && c <= 'Z') || c == '.' || c == '_' || c == '~' || c == '-' {
			continue
		}
		switch c {
		case ':', '/':
			return fmt.Errorf("character %q is not allowed: a resource id has exactly three parts", rune(c))
		case '%':
			return errors.New("'%' is not allowed: ids are not escaped, only A-Z a-z 0-9 . _ ~ - are allowed")
		}
		if c >= 0x80 {
			return fmt.Errorf("non-ASCII byte 0x%02x at %d: only A-Z a-z 0-9 . _ ~ - are allowed", c, i)
		}
		return fmt.Errorf("character %q is not allowed: only A-Z a-z 0-9 . _ ~ - are allowed", rune(c))
	}
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isLower(c byte) bool { return 'a' <= c && c <= 'z' }

// quote quotes s for an error message, shortened if long: the input may be
// anything a peer sent.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		return fmt.Sprintf("%q...(%d bytes)", s[:max], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// TypeName returns the name of a standard type ("owner", "asset", "intent",
// "execution plan"), the custom type itself for a valid namespaced type, and
// "" for an unknown standard number or an invalid type.
func TypeName(t string) string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	if t != "" && !isDigit(t[0]) && validateType(t) == nil {
		return t
	}
	return ""
}

// String returns the canonical form org:type:id, or "" for the zero ID.
func (id ID) String() string {
	if id.IsZero() {
		return ""
	}
	return id.org + ":" + id.typ + ":" + id.local
}

// URI returns the URI form finp2p://org/type/id, or "" for the zero ID.
func (id ID) URI() string {
	if id.IsZero() {
		return ""
	}
	return uriScheme + id.org + "/" + id.typ + "/" + id.local
}

// Org returns the id of the organisation that owns the resource.
func (id ID) Org() string { return id.org }

// Type returns the resource type: a standard number such as "102" or a
// custom namespaced type such as "acme.loan".
func (id ID) Type() string { return id.typ }

// Local returns the type-specific id of the resource.
func (id ID) Local() string { return id.local }

// IsZero reports whether id is the zero (invalid) ID.
func (id ID) IsZero() bool { return id == ID{} }

// MarshalText returns the canonical form; the zero ID is an error, so an
// absent id is never written as a valid-looking empty string (use omitzero).
func (id ID) MarshalText() ([]byte, error) {
	if id.IsZero() {
		return nil, fmt.Errorf("%w: the zero ID has no text form", ErrBadID)
	}
	return []byte(id.String()), nil
}

// UnmarshalText parses either form with ParseID.
func (id *ID) UnmarshalText(text []byte) error {
	parsed, err := ParseID(string(text))
	if err != nil {
		return err
	}
	*id = parsed
	return nil
}
