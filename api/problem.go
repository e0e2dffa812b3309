package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// ProblemTypeBase prefixes every problem type; the suffix is stable per error.
const ProblemTypeBase = "https://finp2p.org/problems/"

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// Error makes a Problem an error, for the client.
func (p *Problem) Error() string {
	return fmt.Sprintf("%s (%d %s): %s", p.Title, p.Status, p.Type, p.Detail)
}

// Kind is the stable suffix of the problem's type, such as "org-not-found".
func (p *Problem) Kind() string {
	return strings.TrimPrefix(p.Type, ProblemTypeBase)
}

func writeProblem(w http.ResponseWriter, code int, kind, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(Problem{
		Type:   ProblemTypeBase + kind,
		Title:  http.StatusText(code),
		Status: code,
		Detail: detail,
	})
}
