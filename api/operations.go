package api

import (
	"context"
	_ "embed"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/finp2p/go-finp2p/discovery"
)

// openapiDocument is the OpenAPI 3 description of every route, served at
// GET /openapi.json.
//
//go:embed openapi.json
var openapiDocument []byte

// readyTimeout bounds the look at the node's own directory that tells
// whether it is the network's only node.
const readyTimeout = 2 * time.Second

// HealthResponse is the answer of GET /healthz: the process is up.
type HealthResponse struct {
	Status string `json:"status"`
}

// ReadyResponse is the answer of GET /readyz when the node is ready; when it
// is not, the answer is a 503 problem saying what is missing.
type ReadyResponse struct {
	// Status is "ready".
	Status string `json:"status"`
	// Members is the number of verified members connected.
	Members int `json:"members"`
	// OnlyNode says the node is ready with no member connected because it
	// is the network's only node: the genesis names it as the only
	// rendezvous node and it knows of no other node.
	OnlyNode bool `json:"only_node,omitempty"`
}

func (s *Server) openapi(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openapiDocument)
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	s.metricsHandler.ServeHTTP(w, r)
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, HealthResponse{Status: "ok"})
}

// readyz answers 200 when the node is started and either has a verified
// member connection or is the network's only node; else 503 naming what is
// missing.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	n := s.cfg.Node
	select {
	case <-s.stopping:
		writeProblem(w, http.StatusServiceUnavailable, "node-stopping", "the node is shutting down")
		return
	default:
	}
	if !n.Started() {
		writeProblem(w, http.StatusServiceUnavailable, "node-not-started", "the node is not started")
		return
	}
	if members := len(n.Members()); members > 0 {
		writeJSON(w, http.StatusOK, ReadyResponse{Status: "ready", Members: members})
		return
	}
	self := n.ID()
	var others []string
	for _, addr := range n.Genesis().Rendezvous {
		if ai, err := peer.AddrInfoFromString(addr); err != nil || ai.ID != self {
			others = append(others, addr)
		}
	}
	if len(others) > 0 {
		writeProblem(w, http.StatusServiceUnavailable, "no-member-connection",
			fmt.Sprintf("no verified member connection yet: the node joins through the genesis rendezvous nodes %s and retries every 15s; check that one of them runs and is reachable from here",
				strings.Join(others, ", ")))
		return
	}
	if len(n.Genesis().Rendezvous) == 0 {
		writeProblem(w, http.StatusServiceUnavailable, "no-member-connection",
			"no verified member connection, and the genesis names no rendezvous node to join through")
		return
	}
	// The node is the network's only rendezvous node: it is the whole
	// network unless it knows of other nodes, none of which is connected.
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	orgs, err := n.Orgs(ctx, discovery.Filter{})
	if err != nil {
		writeProblem(w, http.StatusServiceUnavailable, "no-member-connection",
			fmt.Sprintf("no verified member connection, and the node's list of other nodes is unreadable: %v", err))
		return
	}
	known := 0
	for _, o := range orgs {
		for _, nd := range o.Nodes {
			if nd.Peer != self {
				known++
			}
		}
	}
	if known > 0 {
		writeProblem(w, http.StatusServiceUnavailable, "no-member-connection",
			fmt.Sprintf("no verified member connection: this node is the network's rendezvous node and knows %d other node(s), none of them connected", known))
		return
	}
	writeJSON(w, http.StatusOK, ReadyResponse{Status: "ready", OnlyNode: true})
}
