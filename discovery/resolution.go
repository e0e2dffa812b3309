package discovery

import (
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Where a resolution came from.
const (
	SourceCache     = "cache"
	SourceRegistrar = "registrar"
	SourceDHT       = "dht"
)

// NodeInfo is one node of an org as its advertisement describes it.
type NodeInfo struct {
	Peer      peer.ID   `json:"peer_id"`
	Role      string    `json:"role"`
	Addrs     []string  `json:"addresses"`
	Protocols []string  `json:"protocols"`
	Services  []string  `json:"services"`
	Ledgers   []string  `json:"ledgers"`
	Version   string    `json:"version"`
	Seq       uint64    `json:"seq"`
	Expires   time.Time `json:"expires"`
	// EncryptionKey is the node's X25519 key for encrypted broadcasts.
	EncryptionKey []byte `json:"encryption_key,omitempty"`
	// Executes is the ledger the node executes its org's asset
	// transactions on; empty for a standby node.
	Executes string `json:"executes,omitempty"`
}

// Resolution is what is known of an org: its FinID and its nodes.
type Resolution struct {
	Org    string     `json:"org"`
	FinID  string     `json:"fin_id"`
	Nodes  []NodeInfo `json:"nodes"`
	Source string     `json:"source,omitempty"`
}

// Info describes the node a record advertises.
func Info(r *Record) NodeInfo {
	addrs := make([]string, len(r.Ad.Addrs))
	for i, a := range r.Ad.Addrs {
		addrs[i] = a.String()
	}
	return NodeInfo{
		Peer:      r.Ad.Peer,
		Role:      string(r.Member.Role),
		Addrs:     addrs,
		Protocols: r.Ad.Protocols,
		Services:  r.Ad.Services,
		Ledgers:   r.Ad.Ledgers,
		Version:   r.Ad.Version,
		Seq:       r.Ad.Seq,
		Expires:   r.Ad.Expires,

		EncryptionKey: r.Ad.EncryptionKey,
		Executes:      r.Ad.Executes,
	}
}

// Group turns records, ordered by org as a Directory returns them, into one
// resolution per org.
func Group(recs []*Record, source string) []Resolution {
	var out []Resolution
	for _, r := range recs {
		if len(out) == 0 || out[len(out)-1].Org != r.Ad.Org {
			out = append(out, Resolution{Org: r.Ad.Org, FinID: r.Ad.FinID, Source: source})
		}
		last := &out[len(out)-1]
		last.Nodes = append(last.Nodes, Info(r))
	}
	return out
}
