// Package api serves a running node's local HTTP JSON API. It binds to
// loopback by default and authenticates every call with the bearer token that
// `finp2p init` writes into the repo directory.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/node"
)

// MaxRequestBody bounds every request body.
const MaxRequestBody = 1 << 20

// DiscoveryTimeout bounds one resolution or member listing, so the API
// answers with a problem before a client's own timeout (30s) gives up.
const DiscoveryTimeout = 20 * time.Second

// Config is what a Server needs.
type Config struct {
	// Addr is host:port to listen on; default 127.0.0.1:5001.
	Addr string
	// Token is the bearer token every request must carry. Required.
	Token string
	// Node is the running node the API serves. Required.
	Node *node.Node
	// Gatherer provides /metrics; default an empty registry.
	Gatherer prometheus.Gatherer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// TokenFile, if set, is where the operator finds the token; a 401
	// problem names it.
	TokenFile string
	// Listener, if set, is served instead of listening on Addr, so a
	// caller can claim the port before starting the node.
	Listener net.Listener
}

// Server is the HTTP API of one node.
type Server struct {
	cfg Config
	log *slog.Logger
	srv *http.Server
	ln  net.Listener

	metricsHandler http.Handler

	// stopping is closed by Close, which ends the event streams: Shutdown
	// waits for requests in flight and would wait for them forever.
	stopping chan struct{}
	stopOnce sync.Once
}

// New checks cfg and returns a server that is not listening yet.
func New(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:5001"
	}
	if len(cfg.Token) < 16 {
		return nil, errors.New("api: bearer token is missing or shorter than 16 characters")
	}
	if cfg.Node == nil {
		return nil, errors.New("api: node is required")
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.NewRegistry()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "api"), stopping: make(chan struct{})}
	s.metricsHandler = promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Start listens (on Config.Listener if set) and serves in the background.
func (s *Server) Start() error {
	ln := s.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.cfg.Addr); err != nil {
			return fmt.Errorf("api: listen on %s: %w", s.cfg.Addr, err)
		}
	}
	s.ln = ln
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("api server stopped", "error", err)
		}
	}()
	s.log.Info("api listening", "addr", ln.Addr().String())
	return nil
}

// Addr is the address the server listens on, once started.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close ends the update streams, stops accepting requests and waits for
// those in flight, within ctx.
func (s *Server) Close(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.stopping) })
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("api: shut down: %w", err)
	}
	return nil
}

// authenticate lets a request through only with the bearer token; the
// problem says how to send it and where the token is.
func (s *Server) authenticate(next http.Handler) http.Handler {
	want := []byte(s.cfg.Token)
	where := "the api.token file of the node's repo"
	if s.cfg.TokenFile != "" {
		where = s.cfg.TokenFile
	}
	how := "send 'Authorization: Bearer <token>' with the token from " + where
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		header := r.Header.Get("Authorization")
		// The scheme is case-insensitive (RFC 9110, section 11.1).
		scheme, token, _ := strings.Cut(header, " ")
		bearer := strings.EqualFold(scheme, "Bearer")
		if bearer && subtle.ConstantTimeCompare([]byte(token), want) == 1 {
			next.ServeHTTP(w, r)
			return
		}
		var detail string
		switch {
		case header == "":
			detail = "no bearer token: " + how
		case !bearer:
			detail = "the Authorization header is not a bearer token: " + how
		default:
			detail = "wrong bearer token: " + how
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="finp2p"`)
		writeProblem(w, http.StatusUnauthorized, "unauthorized", detail)
	})
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.cfg.Node.Status())
}

// RevocationRequest carries a CRL and the chain of the CA that signed it.
type RevocationRequest struct {
	// CRL is the PEM (or base64 DER) revocation list.
	CRL string `json:"crl"`
	// IssuerChain is the PEM certificates of the issuing CA, itself first.
	IssuerChain string `json:"issuer_chain"`
}

// RevocationResponse says whether the list was new to the node.
type RevocationResponse struct {
	Applied bool `json:"applied"`
}

func (s *Server) revocations(w http.ResponseWriter, r *http.Request) {
	var req RevocationRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	crl, err := governance.ParseCRL([]byte(req.CRL))
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "bad-crl", fmt.Sprintf("crl: %v", err))
		return
	}
	chain, err := governance.ParseCertificatesPEM([]byte(req.IssuerChain))
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "bad-issuer-chain", fmt.Sprintf("issuer_chain: %v", err))
		return
	}
	der := make([][]byte, len(chain))
	for i, c := range chain {
		der[i] = c.Raw
	}
	applied, err := s.cfg.Node.ApplyRevocationList(r.Context(), crl.Raw, der)
	if err != nil {
		writeProblem(w, http.StatusUnprocessableEntity, "crl-refused", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, RevocationResponse{Applied: applied})
}

// OrgsResponse is the answer of GET /v1/orgs: one resolution per member
// organisation that matches the filter, never null.
type OrgsResponse struct {
	Orgs []discovery.Resolution `json:"orgs"`
}

// filterParams are the query parameters GET /v1/orgs takes.
var filterParams = []string{"service", "protocol", "ledger"}

func (s *Server) orgs(w http.ResponseWriter, r *http.Request) {
	q, ok := query(w, r, filterParams...)
	if !ok {
		return
	}
	f := discovery.Filter{Service: q.Get("service"), Protocol: q.Get("protocol"), Ledger: q.Get("ledger")}
	ctx, cancel := context.WithTimeout(r.Context(), DiscoveryTimeout)
	defer cancel()
	list, err := s.cfg.Node.Orgs(ctx, f)
	if err != nil {
		s.log.Warn("list orgs failed", "filter", f, "error", err)
		writeProblem(w, http.StatusBadGateway, "discovery-failed", fmt.Sprintf("list orgs: %v", err))
		return
	}
	out := OrgsResponse{Orgs: make([]discovery.Resolution, 0, len(list))}
	for _, res := range list {
		out.Orgs = append(out.Orgs, normalise(res))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) resolve(w http.ResponseWriter, r *http.Request) {
	org := r.PathValue("org")
	if err := governance.ValidateOrgID(org); err != nil {
		writeProblem(w, http.StatusBadRequest, "bad-org", err.Error())
		return
	}
	if _, ok := query(w, r); !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), DiscoveryTimeout)
	defer cancel()
	res, err := s.cfg.Node.Resolve(ctx, org)
	switch {
	case errors.Is(err, discovery.ErrOrgNotFound):
		writeProblem(w, http.StatusNotFound, "org-not-found", err.Error())
		return
	case err != nil:
		s.log.Warn("resolve failed", "org", org, "error", err)
		writeProblem(w, http.StatusBadGateway, "discovery-failed", fmt.Sprintf("resolve %s: %v", org, err))
		return
	}
	writeJSON(w, http.StatusOK, normalise(res))
}

// query parses the query string and refuses parameters other than allowed,
// and any given twice; on failure it has already written the problem.
func query(w http.ResponseWriter, r *http.Request, allowed ...string) (url.Values, bool) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "bad-query", fmt.Sprintf("query string: %v", err))
		return nil, false
	}
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	slices.Sort(names) // report the same parameter every time
	for _, name := range names {
		if !slices.Contains(allowed, name) {
			detail := fmt.Sprintf("unknown query parameter %q", name)
			if len(allowed) > 0 {
				detail += "; this endpoint takes " + strings.Join(allowed, ", ")
			} else {
				detail += "; this endpoint takes none"
			}
			writeProblem(w, http.StatusBadRequest, "bad-query", detail)
			return nil, false
		}
		if len(q[name]) > 1 {
			writeProblem(w, http.StatusBadRequest, "bad-query", fmt.Sprintf("query parameter %q is given %d times, at most once", name, len(q[name])))
			return nil, false
		}
		if v := q.Get(name); len(v) > discovery.MaxNameLen {
			writeProblem(w, http.StatusBadRequest, "bad-query", fmt.Sprintf("query parameter %q is %d bytes long, at most %d", name, len(v), discovery.MaxNameLen))
			return nil, false
		}
	}
	return q, true
}

// normalise returns a resolution with every list non-nil, so clients always
// get JSON arrays; it fills in a copy of Nodes, never the node's own slice.
func normalise(res discovery.Resolution) discovery.Resolution {
	nodes := make([]discovery.NodeInfo, len(res.Nodes))
	for i, n := range res.Nodes {
		n.Addrs = nonNil(n.Addrs)
		n.Protocols = nonNil(n.Protocols)
		n.Services = nonNil(n.Services)
		n.Ledgers = nonNil(n.Ledgers)
		nodes[i] = n
	}
	res.Nodes = nodes
	return res
}

func nonNil(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

// decodeJSON reads a size-limited JSON body strictly; on failure it has
// already written the problem, which names the JSON error, where it is in
// the body and the field when there is one.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeProblem(w, http.StatusUnsupportedMediaType, "unsupported-media-type", "send the request body as application/json")
		return false
	}
	if r.ContentLength > MaxRequestBody {
		writeProblem(w, http.StatusRequestEntityTooLarge, "body-too-large",
			fmt.Sprintf("request body of %d bytes is over the limit of %d bytes", r.ContentLength, MaxRequestBody))
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeProblem(w, http.StatusRequestEntityTooLarge, "body-too-large", fmt.Sprintf("request body is over the limit of %d bytes", MaxRequestBody))
			return false
		}
		writeProblem(w, http.StatusBadRequest, "bad-json", "request body: "+jsonProblem(err, dec.InputOffset(), v))
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeProblem(w, http.StatusBadRequest, "bad-json", fmt.Sprintf("request body holds more than one JSON value (the second starts after byte offset %d)", dec.InputOffset()))
		return false
	}
	return true
}

// jsonProblem says what is wrong with a JSON body that failed to decode
// into v at offset: the syntax error, the field of the wrong type or the
// unknown field (with the fields v takes).
func jsonProblem(err error, offset int64, v any) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return "empty: send a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends early: it is cut short or a bracket is not closed"
	case errors.As(err, &syntax):
		// Offset counts the bytes read, the bad one included.
		return fmt.Sprintf("not valid JSON at byte offset %d: %v", syntax.Offset-1, syntax)
	case errors.As(err, &typ) && typ.Field != "":
		return fmt.Sprintf("field %q is a JSON %s, want %s (the value ends at byte offset %d)", typ.Field, typ.Value, jsonKind(typ.Type), typ.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("the body is a JSON %s, want %s", typ.Value, jsonKind(typ.Type))
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Sprintf("unknown field %s (before byte offset %d); this endpoint takes %s", name, offset, strings.Join(jsonFields(v), ", "))
	}
	// An error of a field's own decoder, such as bad base64.
	return fmt.Sprintf("%v (before byte offset %d)", err, offset)
}

// jsonKind names the JSON a Go type decodes from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "a base64 string"
		}
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return t.String()
}

// jsonFields lists the JSON names of the fields of the struct v points to.
func jsonFields(v any) []string {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var names []string
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		names = append(names, name)
	}
	return names
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
