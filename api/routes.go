package api

import (
	"fmt"
	"net/http"
	"runtime/debug"
)

// access says whether a route needs the bearer token.
type access bool

const (
	tokenRequired access = false
	noToken       access = true
)

// route is one endpoint: its ServeMux pattern, "METHOD /path/{param}", and
// the Server method that serves it.
type route struct {
	pattern string
	handle  func(*Server, http.ResponseWriter, *http.Request)
	access  access
}

// routes is every endpoint the API serves, and the only list of them: the
// mux registers exactly these, and the tests check that openapi.json
// documents exactly these. To add an endpoint, add its line here and its
// operation to openapi.json.
var routes = []route{
	{"GET /openapi.json", (*Server).openapi, noToken},
	{"GET /healthz", (*Server).healthz, noToken},
	{"GET /readyz", (*Server).readyz, noToken},
	{"GET /metrics", (*Server).metrics, tokenRequired},

	{"GET /v1/status", (*Server).status, tokenRequired},
	{"POST /v1/revocations", (*Server).revocations, tokenRequired},
	{"GET /v1/orgs", (*Server).orgs, tokenRequired},
	{"GET /v1/orgs/{org}", (*Server).resolve, tokenRequired},

	{"POST /v1/resources", (*Server).advertise, tokenRequired},
	{"GET /v1/resources/{id}", (*Server).findResource, tokenRequired},
	{"DELETE /v1/resources/{id}", (*Server).withdraw, tokenRequired},
	{"PUT /v1/resources/{id}/acl", (*Server).setACL, tokenRequired},
	{"GET /v1/resources/{id}/acl", (*Server).getACL, tokenRequired},
	{"PUT /v1/resources/{id}/state", (*Server).putState, tokenRequired},
	{"GET /v1/resources/{id}/state", (*Server).getState, tokenRequired},
	{"POST /v1/resources/{id}/updates", (*Server).publish, tokenRequired},
	{"GET /v1/resources/{id}/updates", (*Server).subscribe, tokenRequired},
	{"PUT /v1/resources/{id}/private", (*Server).putPrivate, tokenRequired},
	{"GET /v1/resources/{id}/private", (*Server).getPrivate, tokenRequired},
	{"POST /v1/users", (*Server).createUser, tokenRequired},

	{"POST /v1/assets", (*Server).createAsset, tokenRequired},
	{"POST /v1/assets/{id}/issue", (*Server).issue, tokenRequired},
	{"GET /v1/assets/{id}/balances/{account}", (*Server).balance, tokenRequired},
	{"POST /v1/transactions", (*Server).transaction, tokenRequired},
	{"GET /v1/receipts/{txid}", (*Server).receipt, tokenRequired},
	{"POST /v1/receipts/verify", (*Server).verifyReceipt, tokenRequired},

	{"POST /v1/broadcasts", (*Server).broadcast, tokenRequired},
	{"POST /v1/balances", (*Server).balanceOf, tokenRequired},
	{"POST /v1/receipts/validate", (*Server).validateReceipt, tokenRequired},
	{"GET /v1/ledgers", (*Server).ledgers, tokenRequired},
}

// Handler is the API's router: every route, authenticated unless it is
// open, behind the rewriting of resource ids written unescaped in the path;
// an unknown path or method is a problem too.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range routes {
		var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rt.handle(s, w, r) })
		if rt.access == tokenRequired {
			h = s.authenticate(h)
		}
		mux.Handle(rt.pattern, h)
	}
	return s.recoverPanics(resourceIDSegment(assetIDSegment(unmatchedProblems(mux))))
}

// unmatchedProblems answers a request no route matches with a problem
// instead of the mux's plain text: 405 with Allow when the path is served
// with other methods, else 404. Which routes exist is no secret (GET
// /openapi.json lists them), so this comes before authentication.
func unmatchedProblems(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// The mux's own answer says which: run it aside and keep its
		// status and Allow header.
		rec := &discardWriter{header: http.Header{}}
		h.ServeHTTP(rec, r)
		switch rec.code {
		case http.StatusMethodNotAllowed:
			allow := rec.header.Get("Allow")
			w.Header().Set("Allow", allow)
			writeProblem(w, http.StatusMethodNotAllowed, "method-not-allowed",
				fmt.Sprintf("%s is not served for %s; it takes %s", r.Method, r.URL.Path, allow))
		case http.StatusNotFound:
			writeProblem(w, http.StatusNotFound, "not-found",
				fmt.Sprintf("no endpoint %s %s: GET /openapi.json lists the API", r.Method, r.URL.Path))
		default: // a redirect to the cleaned path
			mux.ServeHTTP(w, r)
		}
	})
}

// discardWriter keeps a response's status and header and drops its body.
type discardWriter struct {
	header http.Header
	code   int
}

func (d *discardWriter) Header() http.Header { return d.header }

func (d *discardWriter) WriteHeader(code int) {
	if d.code == 0 {
		d.code = code
	}
}

func (d *discardWriter) Write(p []byte) (int, error) {
	d.WriteHeader(http.StatusOK)
	return len(p), nil
}

// recoverPanics turns a handler's panic into a 500 problem and a log line
// with the stack, instead of a dropped connection. http.ErrAbortHandler is
// net/http's own way to abort a response and is left to it.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			// If the handler wrote its header already, this write is lost
			// and the client sees a truncated answer.
			writeProblem(w, http.StatusInternalServerError, "internal-error",
				fmt.Sprintf("%s %s failed inside the node: %v", r.Method, r.URL.Path, v))
		}()
		next.ServeHTTP(w, r)
	})
}
