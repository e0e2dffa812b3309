package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/resource"
)

// notDelivered is how node.SetACL's error starts its detail when the list is
// stored and in force but did not reach every org it concerns.
const notDelivered = "stored, but not delivered"

// ACLRequest is the body of PUT /v1/resources/{id}/acl.
type ACLRequest struct {
	// Public lets every member read and subscribe.
	Public bool `json:"public"`
	// Grants maps an org to its rights, a comma-separated list of read,
	// subscribe, query and transact, such as "read,subscribe".
	Grants map[string]string `json:"grants,omitempty"`
}

// ACLResponse is a resource's ACL as the API gives it: the answer of PUT and
// GET /v1/resources/{id}/acl.
type ACLResponse struct {
	Resource string                    `json:"resource"`
	Owner    string                    `json:"owner"`
	Version  uint64                    `json:"version"`
	Public   bool                      `json:"public"`
	Grants   map[string]resource.Right `json:"grants"`
	// Warning says the ACL is stored and in force on the owner's node but
	// did not reach some of the orgs it concerns, which keep an older one
	// until it is set again.
	Warning string `json:"warning,omitempty"`
}

// PublishResponse is the answer of POST /v1/resources/{id}/updates.
type PublishResponse struct {
	// Seq is the update's sequence number from this node.
	Seq uint64 `json:"seq"`
	// Warning says the update is stored but was not sent on the topic:
	// subscribers fetch it when they see the next one.
	Warning string `json:"warning,omitempty"`
}

func aclResponse(acl resource.ACL) ACLResponse {
	grants := maps.Clone(acl.Grants)
	if grants == nil {
		grants = map[string]resource.Right{}
	}
	return ACLResponse{Resource: acl.Resource.String(), Owner: acl.Owner, Version: acl.Version, Public: acl.Public, Grants: grants}
}

func (s *Server) setACL(w http.ResponseWriter, r *http.Request) {
	id, ok := pathResourceID(w, r)
	if !ok {
		return
	}
	var req ACLRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	acl := resource.ACL{Resource: id, Public: req.Public, Grants: make(map[string]resource.Right, len(req.Grants))}
	for _, org := range slices.Sorted(maps.Keys(req.Grants)) {
		rights, err := resource.ParseRights(req.Grants[org])
		if err != nil {
			writeProblem(w, http.StatusBadRequest, "bad-acl", fmt.Sprintf("grants[%q]: %v", org, err))
			return
		}
		acl.Grants[org] = rights
	}
	ctx, cancel := context.WithTimeout(r.Context(), ResourceTimeout)
	defer cancel()
	err := s.cfg.Node.SetACL(ctx, acl)
	warning := ""
	if err != nil && strings.Contains(err.Error(), notDelivered) {
		s.log.Warn("ACL not delivered to every org", "resource", id, "error", err)
		warning, err = err.Error(), nil
	}
	if err != nil {
		s.resourceProblem(w, "set ACL", id, err, "set-acl-failed")
		return
	}
	// SetACL chooses the version; the answer is the list as stored.
	stored, ok := s.cfg.Node.ACL(id)
	if !ok {
		writeProblem(w, http.StatusBadGateway, "set-acl-failed", fmt.Sprintf("the ACL of %s was set but the node does not hold it", id))
		return
	}
	resp := aclResponse(stored)
	resp.Warning = warning
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) getACL(w http.ResponseWriter, r *http.Request) {
	id, ok := pathResourceID(w, r)
	if !ok {
		return
	}
	acl, ok := s.cfg.Node.ACL(id)
	if !ok {
		writeProblem(w, http.StatusNotFound, "acl-not-found",
			fmt.Sprintf("the node holds no ACL of %s: its owner has set none, or none that concerns org %s", id, s.cfg.Node.Self().OrgID))
		return
	}
	writeJSON(w, http.StatusOK, aclResponse(acl))
}

func (s *Server) putState(w http.ResponseWriter, r *http.Request) {
	id, ok := pathResourceID(w, r)
	if !ok {
		return
	}
	data, ok := readRaw(w, r, node.MaxResourceState, "state")
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), ResourceTimeout)
	defer cancel()
	if err := s.cfg.Node.SetResourceState(ctx, id, data); err != nil {
		s.resourceProblem(w, "set state", id, err, "set-state-failed")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getState(w http.ResponseWriter, r *http.Request) {
	id, ok := pathResourceID(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), ResourceTimeout)
	defer cancel()
	data, err := s.cfg.Node.GetResource(ctx, id)
	if err != nil {
		s.resourceProblem(w, "get state", id, err, "get-failed")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

func (s *Server) publish(w http.ResponseWriter, r *http.Request) {
	id, ok := pathResourceID(w, r)
	if !ok {
		return
	}
	data, ok := readRaw(w, r, node.MaxUpdateSize, "update")
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), ResourceTimeout)
	defer cancel()
	seq, err := s.cfg.Node.Publish(ctx, id, data)
	resp := PublishResponse{Seq: seq}
	if err != nil && seq != 0 {
		// Stored but not sent: subscribers that see a later update fetch it.
		s.log.Warn("resource update stored but not sent", "resource", id, "seq", seq, "error", err)
		resp.Warning, err = err.Error(), nil
	}
	if err != nil {
		s.resourceProblem(w, "publish", id, err, "publish-failed")
		return
	}
	writeJSON(w, http.StatusCreated, resp)
}

// subscribe streams a resource's updates as server-sent events for as long
// as the request lasts (or the server runs). A refused subscription is a
// problem, before any of the stream is written.
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request) {
	id, ok := pathResourceID(w, r)
	if !ok {
		return
	}
	rc := http.NewResponseController(w)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	updates, err := s.cfg.Node.Subscribe(ctx, id)
	if err != nil {
		s.resourceProblem(w, "subscribe", id, err, "subscribe-failed")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	// The comment tells the client the subscription is live, so what is
	// published from now on reaches it.
	if _, err := io.WriteString(w, ": subscribed\n\n"); err != nil {
		return
	}
	if err := rc.Flush(); err != nil {
		s.log.Warn("server-sent events not flushable", "error", err)
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.stopping:
			return
		case u, ok := <-updates:
			if !ok {
				return // the node stopped
			}
			data, err := json.Marshal(u)
			if err != nil {
				s.log.Error("encode resource update", "resource", id, "seq", u.Seq, "error", err)
				return
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: update\ndata: %s\n\n", u.Seq, data); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

// readRaw reads a raw (application/octet-stream) body of at most max bytes;
// on failure it has already written the problem.
func readRaw(w http.ResponseWriter, r *http.Request, max int, what string) ([]byte, bool) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/octet-stream") {
		writeProblem(w, http.StatusUnsupportedMediaType, "unsupported-media-type",
			fmt.Sprintf("send the %s as application/octet-stream, not %s", what, ct))
		return nil, false
	}
	if r.ContentLength > int64(max) {
		writeProblem(w, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("%s of %d bytes: over the limit of %d bytes", what, r.ContentLength, max))
		return nil, false
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(max)))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeProblem(w, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("%s: over the limit of %d bytes", what, max))
		return nil, false
	case err != nil:
		writeProblem(w, http.StatusBadRequest, "bad-body", fmt.Sprintf("read the %s: %v", what, err))
		return nil, false
	}
	return data, true
}

// resourceProblem answers with the problem for a node error about resource
// id: a refusal by the node or the owner's ACL is the client's, anything else
// (the network, the owner's node, the datastore) is a 502 of kind fallback.
func (s *Server) resourceProblem(w http.ResponseWriter, what string, id resource.ID, err error, fallback string) {
	switch {
	case errors.Is(err, resource.ErrBadID):
		writeProblem(w, http.StatusBadRequest, "bad-resource-id", err.Error())
	case errors.Is(err, resource.ErrBadACL), errors.Is(err, resource.ErrBadRight):
		writeProblem(w, http.StatusBadRequest, "bad-acl", err.Error())
	case errors.Is(err, resource.ErrNotOwner):
		writeProblem(w, http.StatusForbidden, "not-owner", err.Error())
	case errors.Is(err, resource.ErrAccessDenied):
		writeProblem(w, http.StatusForbidden, "access-denied", err.Error())
	case errors.Is(err, resource.ErrResourceNotFound):
		writeProblem(w, http.StatusNotFound, "resource-not-found", err.Error())
	case errors.Is(err, resource.ErrTooLarge):
		writeProblem(w, http.StatusRequestEntityTooLarge, "too-large", err.Error())
	case errors.Is(err, resource.ErrRateLimited):
		// The owner's refusal budget refills at several requests a second.
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusTooManyRequests, "rate-limited", err.Error())
	default:
		s.log.Warn(what+" failed", "resource", id, "error", err)
		writeProblem(w, http.StatusBadGateway, fallback, err.Error())
	}
}
