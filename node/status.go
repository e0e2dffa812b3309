package node

import (
	"github.com/finp2p/go-finp2p/discovery"

	"sort"
	"time"

	"github.com/finp2p/go-finp2p/governance"
)

// Status is a snapshot of a running node, as `finp2p status` shows it.
type Status struct {
	PeerID             string       `json:"peer_id"`
	Network            string       `json:"network"`
	Org                string       `json:"org"`
	FinID              string       `json:"fin_id"`
	Role               string       `json:"role"`
	Version            string       `json:"version"`
	CertificateExpires time.Time    `json:"certificate_expires"`
	Addresses          []string     `json:"addresses"`
	Members            []MemberInfo `json:"members"`
	// Advertisement is what the node currently advertises to the network;
	// absent until it has advertised.
	Advertisement *discovery.NodeInfo `json:"advertisement,omitempty"`
}

// MemberInfo describes a connected, verified member.
type MemberInfo struct {
	PeerID             string    `json:"peer_id"`
	Org                string    `json:"org"`
	FinID              string    `json:"fin_id"`
	Role               string    `json:"role"`
	CertificateExpires time.Time `json:"certificate_expires"`
	Addresses          []string  `json:"addresses"`
}

// Status reports who the node is, where it listens and which members it is
// connected to.
func (n *Node) Status() Status {
	st := Status{
		PeerID:             n.host.ID().String(),
		Network:            n.genesis.Network,
		Org:                n.self.OrgID,
		FinID:              n.self.FinID,
		Role:               string(n.self.Role),
		Version:            Version,
		CertificateExpires: n.self.NotAfter,
		Members:            []MemberInfo{},
	}
	if ad, ok := n.Advertisement(); ok {
		st.Advertisement = &ad
	}
	for _, a := range n.Addrs() {
		st.Addresses = append(st.Addresses, a.String())
	}
	for _, m := range n.members.Members() {
		st.Members = append(st.Members, n.memberInfo(m))
	}
	sort.Slice(st.Members, func(i, j int) bool {
		if st.Members[i].Org != st.Members[j].Org {
			return st.Members[i].Org < st.Members[j].Org
		}
		return st.Members[i].PeerID < st.Members[j].PeerID
	})
	return st
}

func (n *Node) memberInfo(m governance.Member) MemberInfo {
	info := MemberInfo{
		PeerID:             m.PeerID.String(),
		Org:                m.OrgID,
		FinID:              m.FinID,
		Role:               string(m.Role),
		CertificateExpires: m.NotAfter,
		Addresses:          []string{},
	}
	for _, c := range n.host.Network().ConnsToPeer(m.PeerID) {
		info.Addresses = append(info.Addresses, c.RemoteMultiaddr().String())
	}
	return info
}
