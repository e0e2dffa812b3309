package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestPanicIsAProblem: a handler that panics answers a 500 internal-error
// problem instead of dropping the connection.
func TestPanicIsAProblem(t *testing.T) {
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	h := s.recoverPanics(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/status", nil))
	var p Problem
	if rec.Code != http.StatusInternalServerError || rec.Header().Get("Content-Type") != "application/problem+json" ||
		json.Unmarshal(rec.Body.Bytes(), &p) != nil || p.Kind() != "internal-error" {
		t.Fatalf("a panicking handler answered %d %s %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
}
