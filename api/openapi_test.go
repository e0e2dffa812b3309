package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/finp2p/go-finp2p/api"
	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/ledger"
	"github.com/finp2p/go-finp2p/node"
)

// openAPI is the part of an OpenAPI 3 document the tests read.
type openAPI struct {
	OpenAPI    string                          `json:"openapi"`
	Security   []map[string][]string           `json:"security"`
	Paths      map[string]map[string]operation `json:"paths"`
	Components struct {
		Schemas         map[string]schema          `json:"schemas"`
		Responses       map[string]response        `json:"responses"`
		SecuritySchemes map[string]json.RawMessage `json:"securitySchemes"`
	} `json:"components"`
}

type operation struct {
	OperationID string                 `json:"operationId"`
	Security    *[]map[string][]string `json:"security"`
	Parameters  []struct {
		Name     string          `json:"name"`
		In       string          `json:"in"`
		Required bool            `json:"required"`
		Example  json.RawMessage `json:"example"`
	} `json:"parameters"`
	RequestBody *struct {
		Required bool                 `json:"required"`
		Content  map[string]mediaType `json:"content"`
	} `json:"requestBody"`
	Responses map[string]response `json:"responses"`
}

type mediaType struct {
	Schema schema `json:"schema"`
}

type response struct {
	Ref          string               `json:"$ref"`
	Description  string               `json:"description"`
	Content      map[string]mediaType `json:"content"`
	ProblemTypes []string             `json:"x-problem-types"`
}

type schema struct {
	Ref        string            `json:"$ref"`
	Type       string            `json:"type"`
	Format     string            `json:"format"`
	MaxLength  int               `json:"maxLength"`
	Properties map[string]schema `json:"properties"`
	Required   []string          `json:"required"`
	Items      *schema           `json:"items"`
	AllOf      []schema          `json:"allOf"`
}

// fetchOpenAPI gets the document the server serves, without a token.
func fetchOpenAPI(t *testing.T, srv *api.Server) openAPI {
	t.Helper()
	resp, body := call(t, srv, http.MethodGet, "/openapi.json", "", "")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /openapi.json: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var doc openAPI
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("GET /openapi.json is not a JSON document: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q, want 3.x", doc.OpenAPI)
	}
	return doc
}

// response resolves a response reference of the document.
func (d openAPI) response(t *testing.T, r response) response {
	t.Helper()
	if r.Ref == "" {
		return r
	}
	name, ok := strings.CutPrefix(r.Ref, "#/components/responses/")
	got, found := d.Components.Responses[name]
	if !ok || !found {
		t.Fatalf("response reference %q resolves to nothing", r.Ref)
	}
	return got
}

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// TestOpenAPIDocumentsEveryRoute: the document the server serves at
// /openapi.json lists exactly the routes the server registers, each with its
// path parameters, its token requirement and problem+json error responses.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	srv, _ := startAPI(t)
	doc := fetchOpenAPI(t, srv)

	served := map[string]api.Route{}
	for _, rt := range api.Routes() {
		served[strings.ToLower(rt.Method)+" "+rt.Path] = rt
	}
	documented := map[string]operation{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			documented[method+" "+path] = op
		}
	}
	for _, key := range slices.Sorted(maps.Keys(served)) {
		if _, ok := documented[key]; !ok {
			t.Errorf("route %s is served but not in openapi.json", key)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(documented)) {
		if _, ok := served[key]; !ok {
			t.Errorf("openapi.json documents %s, which the server does not serve", key)
		}
	}
	if _, ok := doc.Components.SecuritySchemes["bearer"]; !ok || len(doc.Security) != 1 || doc.Security[0]["bearer"] == nil {
		t.Errorf("openapi.json does not require the bearer scheme by default: %v", doc.Security)
	}

	ids := map[string]string{}
	for key, rt := range served {
		op, ok := documented[key]
		if !ok {
			continue
		}
		if other, dup := ids[op.OperationID]; dup || op.OperationID == "" {
			t.Errorf("%s: operationId %q is empty or also %s's", key, op.OperationID, other)
		}
		ids[op.OperationID] = key
		if open := op.Security != nil && len(*op.Security) == 0; open != rt.Open {
			t.Errorf("%s: the document says open %v, the server %v", key, open, rt.Open)
		}
		var want, got []string
		for _, m := range pathParam.FindAllStringSubmatch(rt.Path, -1) {
			want = append(want, m[1])
		}
		for _, p := range op.Parameters {
			if p.In == "path" {
				got = append(got, p.Name)
				if !p.Required || len(p.Example) == 0 {
					t.Errorf("%s: path parameter %s must be required and have an example", key, p.Name)
				}
			}
		}
		if !slices.Equal(want, got) {
			t.Errorf("%s: path parameters %v documented, the path has %v", key, got, want)
		}
		problems := 0
		for code, r := range op.Responses {
			r = doc.response(t, r)
			status, err := strconv.Atoi(code)
			if err != nil {
				t.Errorf("%s: response %q is not a status code", key, code)
				continue
			}
			if status < 400 {
				continue
			}
			problems++
			if _, ok := r.Content["application/problem+json"]; !ok || len(r.ProblemTypes) == 0 {
				t.Errorf("%s: error response %s is not a problem+json with its x-problem-types", key, code)
			}
		}
		if _, ok := op.Responses["500"]; !ok || problems == 0 {
			t.Errorf("%s: no problem+json error responses", key)
		}
		if _, ok := op.Responses["401"]; ok == rt.Open {
			t.Errorf("%s: a 401 response must be documented exactly when a token is needed", key)
		}
		for ct, m := range bodyContent(op) {
			if m.Schema.Ref != "" {
				if _, ok := doc.Components.Schemas[strings.TrimPrefix(m.Schema.Ref, "#/components/schemas/")]; !ok {
					t.Errorf("%s: request body %s refers to a missing schema %s", key, ct, m.Schema.Ref)
				}
			}
		}
	}
}

func bodyContent(op operation) map[string]mediaType {
	if op.RequestBody == nil {
		return nil
	}
	return op.RequestBody.Content
}

// TestOpenAPISchemasMatchTypes: each schema of the document has exactly the
// JSON fields of the Go type the API encodes or decodes, so the document
// cannot drift from the code.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	types := map[string]any{
		"Problem":               api.Problem{},
		"Health":                api.HealthResponse{},
		"Ready":                 api.ReadyResponse{},
		"NodeInfo":              discovery.NodeInfo{},
		"Resolution":            discovery.Resolution{},
		"Orgs":                  api.OrgsResponse{},
		"MemberInfo":            node.MemberInfo{},
		"Status":                node.Status{},
		"RevocationRequest":     api.RevocationRequest{},
		"RevocationResponse":    api.RevocationResponse{},
		"AdvertiseRequest":      api.AdvertiseRequest{},
		"ResourceInfo":          node.ResourceInfo{},
		"ACLRequest":            api.ACLRequest{},
		"ACL":                   api.ACLResponse{},
		"PublishResponse":       api.PublishResponse{},
		"Update":                node.Update{},
		"User":                  node.User{},
		"CreateAssetRequest":    api.CreateAssetRequest{},
		"IssueRequest":          api.IssueRequest{},
		"Transaction":           ledger.Transaction{},
		"Balance":               ledger.Balance{},
		"TransactionRequest":    api.TransactionRequest{},
		"Receipt":               api.ReceiptResponse{},
		"VerifyReceiptRequest":  api.VerifyReceiptRequest{},
		"VerifyReceiptResponse": api.VerifyReceiptResponse{},

		"BroadcastRequest":        api.BroadcastRequest{},
		"BroadcastResult":         api.BroadcastResult{},
		"BalanceRequest":          api.BalanceRequest{},
		"BalanceResponse":         api.BalanceResponse{},
		"ValidateReceiptRequest":  api.ValidateReceiptRequest{},
		"ValidateReceiptResponse": api.ValidateReceiptResponse{},
		"LedgerInfo":              node.LedgerInfo{},
	}
	srv, _ := startAPI(t)
	doc := fetchOpenAPI(t, srv)
	if got, want := slices.Sorted(maps.Keys(doc.Components.Schemas)), slices.Sorted(maps.Keys(types)); !slices.Equal(got, want) {
		t.Fatalf("openapi.json has schemas %v; the test knows the Go types of %v", got, want)
	}
	for name, v := range types {
		s := doc.Components.Schemas[name]
		got := slices.Sorted(maps.Keys(s.Properties))
		want := jsonNames(reflect.TypeOf(v))
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("schema %s has properties %v; %T encodes %v", name, got, v, want)
		}
		for _, r := range s.Required {
			if _, ok := s.Properties[r]; !ok {
				t.Errorf("schema %s requires %q, which it does not define", name, r)
			}
		}
	}
}

// jsonNames lists the JSON field names encoding/json gives a struct type,
// embedded structs' fields included.
func jsonNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			names = append(names, jsonNames(f.Type)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
	}
	return names
}

// TestProblemsOnEveryErrorPath walks every error path of every route the
// server registers: a missing and a wrong token, a malformed, mistyped and
// unknown-field JSON body for each route that decodes JSON, an over-size
// body and a wrong content type for each route that takes a body, a wrong
// method on each path, and an unknown path. Each answer is an
// application/problem+json with the right status and a stable type, and
// the type is one the document lists for that response.
func TestProblemsOnEveryErrorPath(t *testing.T) {
	_, tn := startAPI(t)
	const tokenFile = "/srv/finp2p/bank-a/api.token"
	srv, err := api.New(api.Config{Addr: "127.0.0.1:0", Token: token, Node: tn.Nodes()[1], TokenFile: tokenFile})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	doc := fetchOpenAPI(t, srv)

	// check sends one request and checks its problem; documented says
	// whether the operation's responses must list the type.
	check := func(t *testing.T, op *operation, method, path, tok, contentType string, body []byte, status int, kind string, says ...string) http.Header {
		t.Helper()
		what := fmt.Sprintf("%s %s (token %q, %s body of %d bytes)", method, path, tok, contentType, len(body))
		req, err := http.NewRequest(method, "http://"+srv.Addr()+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if tok != "" {
			req.Header.Set("Authorization", tok)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s: %d with content type %q, want application/problem+json: %s", what, resp.StatusCode, ct, data)
			return resp.Header
		}
		var p api.Problem
		if err := json.Unmarshal(data, &p); err != nil {
			t.Errorf("%s: not a problem: %v: %s", what, err, data)
			return resp.Header
		}
		if resp.StatusCode != status || p.Status != status || p.Kind() != kind || p.Type != api.ProblemTypeBase+kind || p.Title == "" {
			t.Errorf("%s: %d %+v, want %d %s", what, resp.StatusCode, p, status, kind)
		}
		for _, s := range says {
			if !strings.Contains(p.Detail, s) {
				t.Errorf("%s: detail %q does not say %q", what, p.Detail, s)
			}
		}
		if op != nil {
			r, ok := op.Responses[strconv.Itoa(status)]
			if !ok || !slices.Contains(doc.response(t, r).ProblemTypes, kind) {
				t.Errorf("%s: openapi.json does not list problem type %s for status %d", what, kind, status)
			}
		}
		return resp.Header
	}

	methods := map[string][]string{}
	for _, rt := range api.Routes() {
		methods[rt.Path] = append(methods[rt.Path], rt.Method)
	}
	for _, rt := range api.Routes() {
		op, ok := doc.Paths[rt.Path][strings.ToLower(rt.Method)]
		if !ok {
			t.Errorf("%s %s is not documented", rt.Method, rt.Path)
			continue
		}
		// Fill the path parameters with the document's examples.
		path := pathParam.ReplaceAllStringFunc(rt.Path, func(m string) string {
			for _, p := range op.Parameters {
				if "{"+p.Name+"}" == m {
					var v string
					_ = json.Unmarshal(p.Example, &v)
					return v
				}
			}
			t.Fatalf("%s %s: no example for %s", rt.Method, rt.Path, m)
			return ""
		})
		t.Run(rt.Method+" "+rt.Path, func(t *testing.T) {
			bearer := "Bearer " + token
			if !rt.Open {
				check(t, &op, rt.Method, path, "", "", nil, 401, "unauthorized", "no bearer token", "Authorization: Bearer <token>", tokenFile)
				check(t, &op, rt.Method, path, "Bearer wrong-token-wrong-token", "", nil, 401, "unauthorized", "wrong bearer token", tokenFile)
				check(t, &op, rt.Method, path, "Basic "+token, "", nil, 401, "unauthorized", "not a bearer token", tokenFile)
			}
			content := bodyContent(op)
			for _, ct := range slices.Sorted(maps.Keys(content)) {
				// A JSON body is bounded by MaxRequestBody (body-too-large),
				// raw content by its own limit (too-large), which the
				// document gives as its maxLength.
				ref := content[ct].Schema.Ref
				if ct != "application/json" || ref == "" {
					limit := content[ct].Schema.MaxLength
					if limit == 0 { // JSON kept as raw bytes
						limit = content["application/octet-stream"].Schema.MaxLength
					}
					check(t, &op, rt.Method, path, bearer, ct, bytes.Repeat([]byte("a"), limit+1), 413, "too-large", strconv.Itoa(limit))
					continue
				}
				check(t, &op, rt.Method, path, bearer, ct, bytes.Repeat([]byte("a"), api.MaxRequestBody+1), 413, "body-too-large", strconv.Itoa(api.MaxRequestBody))
				// The body is decoded as JSON into this schema.
				s := doc.Components.Schemas[strings.TrimPrefix(ref, "#/components/schemas/")]
				check(t, &op, rt.Method, path, bearer, ct, []byte(`{"a":`), 400, "bad-json", "ends early")
				check(t, &op, rt.Method, path, bearer, ct, []byte(`{"a" 1}`), 400, "bad-json", "byte offset 5")
				check(t, &op, rt.Method, path, bearer, ct, []byte(`{"no_such_field": 1}`), 400, "bad-json", `unknown field "no_such_field"`, "this endpoint takes")
				check(t, &op, rt.Method, path, bearer, ct, []byte(`{} {}`), 400, "bad-json", "more than one JSON value")
				check(t, &op, rt.Method, path, bearer, ct, nil, 400, "bad-json", "empty")
				field, wrong := mistyped(s)
				check(t, &op, rt.Method, path, bearer, ct, []byte(`{"`+field+`": `+wrong+`}`), 400, "bad-json", `field "`+field+`"`)
			}
			if len(content) > 0 {
				check(t, &op, rt.Method, path, bearer, "text/plain", []byte("x"), 415, "unsupported-media-type")
			}
			// A method the path is not served with.
			for _, m := range []string{"PATCH", "DELETE", "PUT", "POST"} {
				if slices.Contains(methods[rt.Path], m) {
					continue
				}
				h := check(t, nil, m, path, bearer, "", nil, 405, "method-not-allowed", m)
				for _, want := range methods[rt.Path] {
					if !strings.Contains(h.Get("Allow"), want) {
						t.Errorf("%s %s: Allow %q lacks %s", m, path, h.Get("Allow"), want)
					}
				}
				break
			}
		})
	}
	t.Run("unknown route", func(t *testing.T) {
		check(t, nil, "GET", "/v1/nothing-here", "Bearer "+token, "", nil, 404, "not-found", "/v1/nothing-here", "/openapi.json")
		check(t, nil, "GET", "/v1/nothing-here", "", "", nil, 404, "not-found")
		check(t, nil, "POST", "/", "", "", nil, 404, "not-found")
	})
}

// mistyped picks a property of s and a JSON value of the wrong type for it.
func mistyped(s schema) (field, value string) {
	for _, name := range slices.Sorted(maps.Keys(s.Properties)) {
		switch s.Properties[name].Type {
		case "string", "array", "object":
			return name, "12"
		case "boolean", "integer", "number":
			return name, `"x"`
		}
	}
	return "", ""
}

// problemKind finds the problem kinds the API's code writes: literal kinds
// after a status (writeProblem calls and the asset error table) and the
// fallback kinds of assetProblem and resourceProblem.
var problemKind = regexp.MustCompile(`http\.Status\w+, "([a-z-]+)"|Problem\(w, [^\n]*, "([a-z-]+)"\)`)

// TestOpenAPIListsEveryProblemType: every problem type the code can write
// is listed in openapi.json, so a client learns every stable type there.
func TestOpenAPIListsEveryProblemType(t *testing.T) {
	data, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc openAPI
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, ops := range doc.Paths {
		for _, op := range ops {
			for _, r := range op.Responses {
				for _, k := range doc.response(t, r).ProblemTypes {
					listed[k] = true
				}
			}
		}
	}
	var info struct {
		Info struct {
			Description string `json:"description"`
		} `json:"info"`
	}
	_ = json.Unmarshal(data, &info)
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range problemKind.FindAllStringSubmatch(string(src), -1) {
			kind := m[1] + m[2]
			found++
			// 404 not-found and 405 method-not-allowed concern no one
			// operation: the document's description names them.
			if !listed[kind] && !strings.Contains(info.Info.Description, "`"+kind+"`") {
				t.Errorf("%s writes problem type %q, which openapi.json lists nowhere", f, kind)
			}
		}
	}
	if found < 50 {
		t.Fatalf("found only %d problem types in the code: the pattern no longer matches how problems are written", found)
	}
}
