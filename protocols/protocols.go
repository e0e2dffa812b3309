// Package protocols holds the FinP2P wire protocols: their identifiers, the
// varint-delimited protobuf framing every stream uses, and the generated
// message types in protocols/pb.
package protocols

//go:generate protoc --go_out=. --go_opt=paths=source_relative pb/membership.proto pb/discovery.proto pb/resource.proto pb/ledger.proto

import (
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Stream protocol identifiers. Each is versioned; a breaking change gets a new
// version rather than a changed meaning.
const (
	// Membership exchanges certificate chains; it is the only protocol an
	// unverified peer may speak.
	Membership protocol.ID = "/finp2p/membership/1.0.0"

	// DHTPrefix is the protocol prefix of the private FinP2P kad-dht, so it
	// never mixes with the public IPFS DHT.
	DHTPrefix protocol.ID = "/finp2p"
	// DHT is the kad-dht protocol ID that DHTPrefix yields.
	DHT protocol.ID = DHTPrefix + "/kad/1.0.0"

	// Discovery carries advertisements: every node accepts a peer's
	// advertisement on it; governance and founding nodes (registrars) also
	// answer lookups of an organisation and listings of members.
	Discovery protocol.ID = "/finp2p/discovery/1.0.0"

	// ResourceAdvert hands a restricted resource advertisement to an org
	// it is meant for.
	ResourceAdvert protocol.ID = "/finp2p/resource/advert/1.0.0"

	// ResourceACL hands a signed ACL from a resource's owner to an org it
	// concerns, so requests that would be refused are not sent.
	ResourceACL protocol.ID = "/finp2p/resource/acl/1.0.0"

	// ResourceGet fetches a resource's current state from its owner.
	ResourceGet protocol.ID = "/finp2p/resource/get/1.0.0"

	// ResourceUpdates serves a publisher's past updates of a resource, so a
	// subscriber that missed some on gossip gets them.
	ResourceUpdates protocol.ID = "/finp2p/resource/updates/1.0.0"

	// ResourceTopicKey hands a restricted topic's key, sealed with HPKE, to
	// an org the resource's ACL lets subscribe.
	ResourceTopicKey protocol.ID = "/finp2p/resource/topic-key/1.0.0"

	// AssetTx carries a signed asset transaction request to the asset
	// owner's primary node and its signed receipt back.
	AssetTx protocol.ID = "/finp2p/asset/tx/1.0.0"

	// PrivateData fetches a resource's private data from its owner, under
	// the owner's ACL (query right).
	PrivateData protocol.ID = "/finp2p/private-data/1.0.0"

	// BroadcastRequest carries a signed broadcast request of a selected-orgs
	// or closest-nodes scope directly to each node asked.
	BroadcastRequest protocol.ID = "/finp2p/broadcast/request/1.0.0"

	// BroadcastResponse carries a responder's signed answer to a broadcast
	// request straight back to the request's origin node.
	BroadcastResponse protocol.ID = "/finp2p/broadcast/response/1.0.0"

	// LedgerReplicate streams a ledger's signed journal entries from its
	// primary node to a follower, from the version the follower asks for.
	LedgerReplicate protocol.ID = "/finp2p/ledger/replicate/1.0.0"

	// GossipSub is the gossipsub version every member must speak.
	GossipSub protocol.ID = "/meshsub/1.1.0"
)

// Mandatory lists the protocols every member must serve and advertise. An
// advertisement without one of them is refused, naming it; this list is the
// one place that says what they are.
var Mandatory = []protocol.ID{Membership, Discovery, DHT, GossipSub}

// Gossipsub topic names.
const (
	// TopicRevocations carries certificate revocation lists.
	TopicRevocations = "/finp2p/revocations/1"
	// TopicResourcePrefix starts the name of every resource's update topic;
	// the canonical resource id follows.
	TopicResourcePrefix = "/finp2p/resource/"
	// TopicCapabilities carries signed org advertisements.
	TopicCapabilities = "/finp2p/capabilities/1"
	// TopicBroadcastAll carries broadcast requests to every member.
	TopicBroadcastAll = "/finp2p/broadcast/all/1"
	// TopicBroadcastRendezvous carries broadcast requests to the rendezvous
	// cluster (governance and founding nodes).
	TopicBroadcastRendezvous = "/finp2p/broadcast/rendezvous/1"
	// TopicBroadcastLedgerPrefix starts the topic of broadcast requests to
	// the nodes that read one ledger; the ledger id follows.
	TopicBroadcastLedgerPrefix = "/finp2p/broadcast/ledger/"
)

// TopicBroadcastLedger is the topic of broadcast requests to the nodes that
// read ledger id.
func TopicBroadcastLedger(id string) string { return TopicBroadcastLedgerPrefix + id }

// Message size limits, enforced on every read.
const (
	// MaxHelloSize bounds a membership Hello: a chain of two certificates is
	// under 2 KiB, the rest is room for revocation lists.
	MaxHelloSize = 1 << 20
	// MaxCRLsPerHello bounds the revocation lists one Hello may carry, so an
	// unverified peer cannot make a node check many signatures.
	MaxCRLsPerHello = 64
	// MaxGossipMessageSize is the gossipsub maximum message size.
	MaxGossipMessageSize = 1 << 20
	// MaxAdvertisementSize bounds one sealed advertisement: a chain of two
	// certificates, a few dozen addresses and protocols fit in 8 KiB.
	MaxAdvertisementSize = 64 << 10
	// MaxDiscoveryRequestSize bounds a discovery request (one advertisement).
	MaxDiscoveryRequestSize = MaxAdvertisementSize + 1<<10
	// MaxDiscoveryResponseSize bounds a registrar's answer.
	MaxDiscoveryResponseSize = 16 << 20
)
