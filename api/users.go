package api

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/finp2p/go-finp2p/node"
)

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	if _, ok := query(w, r); !ok {
		return
	}
	raw := r
	if ct := r.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/json") {
		// JSON details are kept as sent, like any other bytes: the node
		// never reads them, the orgs the ACL lets query do.
		raw = r.Clone(r.Context())
		raw.Header.Del("Content-Type")
	}
	details, ok := readRaw(w, raw, node.MaxPrivateData, "user details")
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), ResourceTimeout)
	defer cancel()
	user, err := s.cfg.Node.CreateUser(ctx, details)
	if err != nil {
		s.log.Warn("create user failed", "error", err)
		writeProblem(w, http.StatusBadGateway, "create-user-failed", err.Error())
		return
	}
	w.Header().Set("Location", resourcesPath+url.PathEscape(user.Resource.String())+"/private")
	writeJSON(w, http.StatusCreated, user)
}

func (s *Server) putPrivate(w http.ResponseWriter, r *http.Request) {
	id, ok := pathResourceID(w, r)
	if !ok {
		return
	}
	data, ok := readRaw(w, r, node.MaxPrivateData, "private data")
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), ResourceTimeout)
	defer cancel()
	if err := s.cfg.Node.SetPrivateData(ctx, id, data); err != nil {
		s.resourceProblem(w, "set private data", id, err, "set-private-failed")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getPrivate(w http.ResponseWriter, r *http.Request) {
	id, ok := pathResourceID(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), ResourceTimeout)
	defer cancel()
	data, err := s.cfg.Node.QueryPrivateData(ctx, id)
	if err != nil {
		s.resourceProblem(w, "query private data", id, err, "query-failed")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}
