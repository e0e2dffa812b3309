package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/resource"
)

// ResourceTimeout bounds one advertisement, withdrawal or lookup of a
// resource: a DHT put or get, or handing a restricted advertisement to each
// org it names.
const ResourceTimeout = DiscoveryTimeout

// resourcesPath prefixes the path of one resource, /v1/resources/{id}.
const resourcesPath = "/v1/resources/"

// AdvertiseRequest is the body of POST /v1/resources.
type AdvertiseRequest struct {
	// Resource is the resource id, org:type:id or finp2p://org/type/id; the
	// org must be the node's own.
	Resource string `json:"resource"`
	// Topic is the pub/sub topic of the resource's updates, if any.
	Topic string `json:"topic,omitempty"`
	// To lists the orgs a restricted advertisement is handed to; empty
	// means public, into the DHT.
	To []string `json:"to,omitempty"`
}

func (s *Server) advertise(w http.ResponseWriter, r *http.Request) {
	var req AdvertiseRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	id, err := resource.ParseID(req.Resource)
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "bad-resource-id", fmt.Sprintf("resource: %v", err))
		return
	}
	if len(req.Topic) > resource.MaxTopicLen {
		writeProblem(w, http.StatusBadRequest, "bad-topic", fmt.Sprintf("topic of %d bytes, at most %d", len(req.Topic), resource.MaxTopicLen))
		return
	}
	// The orgs are checked here, before the node signs anything, so that a
	// typo is a client error and not a failed advertisement.
	to := make([]string, 0, len(req.To))
	for i, org := range req.To {
		if err := governance.ValidateOrgID(org); err != nil {
			writeProblem(w, http.StatusBadRequest, "bad-org", fmt.Sprintf("to[%d]: %v", i, err))
			return
		}
		if !slices.Contains(to, org) {
			to = append(to, org)
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), ResourceTimeout)
	defer cancel()
	info, err := s.cfg.Node.Advertise(ctx, id, node.AdvertiseOptions{Topic: req.Topic, To: to})
	switch {
	case errors.Is(err, resource.ErrNotOwner):
		writeProblem(w, http.StatusForbidden, "not-owner", err.Error())
		return
	case err != nil:
		s.log.Warn("advertise resource failed", "resource", id, "to", to, "error", err)
		writeProblem(w, http.StatusBadGateway, "advertise-failed", err.Error())
		return
	}
	w.Header().Set("Location", resourcesPath+url.PathEscape(info.Resource))
	writeJSON(w, http.StatusCreated, info)
}

func (s *Server) findResource(w http.ResponseWriter, r *http.Request) {
	id, ok := pathResourceID(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), ResourceTimeout)
	defer cancel()
	info, err := s.cfg.Node.FindResource(ctx, id)
	switch {
	case errors.Is(err, resource.ErrResourceNotFound):
		writeProblem(w, http.StatusNotFound, "resource-not-found", err.Error())
		return
	case err != nil:
		s.log.Warn("find resource failed", "resource", id, "error", err)
		writeProblem(w, http.StatusBadGateway, "discovery-failed", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) withdraw(w http.ResponseWriter, r *http.Request) {
	id, ok := pathResourceID(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), ResourceTimeout)
	defer cancel()
	err := s.cfg.Node.Withdraw(ctx, id)
	switch {
	case errors.Is(err, resource.ErrResourceNotFound):
		writeProblem(w, http.StatusNotFound, "resource-not-found", err.Error())
		return
	case errors.Is(err, resource.ErrNotOwner):
		writeProblem(w, http.StatusForbidden, "not-owner", err.Error())
		return
	case err != nil:
		s.log.Warn("withdraw resource failed", "resource", id, "error", err)
		writeProblem(w, http.StatusBadGateway, "advertise-failed", err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// pathResourceID parses the {id} of /v1/resources/{id} and refuses a query
// string; on failure it has already written the problem.
func pathResourceID(w http.ResponseWriter, r *http.Request) (resource.ID, bool) {
	id, err := resource.ParseID(r.PathValue("id"))
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "bad-resource-id", err.Error())
		return resource.ID{}, false
	}
	if _, ok := query(w, r); !ok {
		return resource.ID{}, false
	}
	return id, true
}

// resourceSubpaths are the parts of a resource that have their own
// endpoints, /v1/resources/{id}/acl and so on.
var resourceSubpaths = []string{"acl", "state", "updates", "private"}

// resourceIDSegment lets the URI form of a resource id be written unescaped
// in the path, as in GET /v1/resources/finp2p://bank-x/102/abc: the mux would
// otherwise split it at its slashes and redirect to a path without the "//".
// Everything after /v1/resources/ becomes one path segment, so ParseID sees
// it whole and reports what is wrong with it, except a last segment naming a
// part of the resource (/acl, /state, /updates, /private) after a valid id. An id's
// parts hold no slash, so finp2p://bank-x/102/acl is resource "acl", not the
// ACL of an id missing its last part.
func resourceIDSegment(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, resourcesPath)
		if ok && strings.Contains(rest, "/") {
			id, sub := rest, ""
			if i := strings.LastIndexByte(rest, '/'); slices.Contains(resourceSubpaths, rest[i+1:]) {
				if _, err := resource.ParseID(rest[:i]); err == nil {
					id, sub = rest[:i], rest[i:]
				}
			}
			r = r.Clone(r.Context())
			r.URL.Path = resourcesPath + id + sub
			r.URL.RawPath = resourcesPath + url.PathEscape(id) + sub
		}
		next.ServeHTTP(w, r)
	})
}
