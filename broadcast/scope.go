package broadcast

import (
	"fmt"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/ledger"
)

// ScopeKind names who a broadcast request is for.
type ScopeKind string

// The scopes of the spec's broadcast request.
const (
	// ScopeAll is every member of the network.
	ScopeAll ScopeKind = "all"
	// ScopeOrgs is a selected group of orgs (Scope.Orgs), reached over
	// direct streams.
	ScopeOrgs ScopeKind = "orgs"
	// ScopeLedger is the primary nodes connected to one ledger
	// (Scope.Ledger).
	ScopeLedger ScopeKind = "ledger"
	// ScopeClosest is the closest nodes (DHT), for propagation.
	ScopeClosest ScopeKind = "closest"
	// ScopeRendezvous is the rendezvous cluster, for further propagation.
	ScopeRendezvous ScopeKind = "rendezvous"
)

// Scope says which nodes a broadcast request is for: Orgs only for
// ScopeOrgs, Ledger only for ScopeLedger.
type Scope struct {
	// Kind is the kind of scope.
	Kind ScopeKind
	// Orgs are the selected orgs of a ScopeOrgs scope.
	Orgs []string
	// Ledger is the ledger of a ScopeLedger scope.
	Ledger string
}

// Validate checks the scope: a known kind, the orgs (valid, distinct) or
// ledger its kind takes and no others. The error wraps ErrBadScope.
func (s Scope) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadScope, fmt.Sprintf(format, args...))
	}
	switch s.Kind {
	case ScopeAll, ScopeOrgs, ScopeLedger, ScopeClosest, ScopeRendezvous:
	case "":
		return bad("missing kind")
	default:
		return bad("unknown kind %q; want all, orgs, ledger, closest or rendezvous", s.Kind)
	}
	if s.Kind == ScopeOrgs {
		if len(s.Orgs) == 0 {
			return bad("orgs scope names no orgs")
		}
		seen := make(map[string]bool, len(s.Orgs))
		for _, o := range s.Orgs {
			if err := governance.ValidateOrgID(o); err != nil {
				return fmt.Errorf("%w: org %q: %w", ErrBadScope, o, err)
			}
			if seen[o] {
				return bad("org %q named twice", o)
			}
			seen[o] = true
		}
	} else if len(s.Orgs) > 0 {
		return bad("%s scope takes no orgs (got %q)", s.Kind, s.Orgs)
	}
	if s.Kind == ScopeLedger {
		if err := ledger.CheckID("ledger", s.Ledger); err != nil {
			return fmt.Errorf("%w: %w", ErrBadScope, err)
		}
	} else if s.Ledger != "" {
		return bad("%s scope takes no ledger (got %q)", s.Kind, s.Ledger)
	}
	return nil
}

// String describes the scope for logs and errors.
func (s Scope) String() string {
	switch s.Kind {
	case ScopeOrgs:
		return fmt.Sprintf("orgs %v", s.Orgs)
	case ScopeLedger:
		return "ledger " + s.Ledger
	}
	return string(s.Kind)
}
