package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/protocols/pb"
	"github.com/finp2p/go-finp2p/resource"
)

// MaxPrivateData bounds one resource's private data.
const MaxPrivateData = 256 << 10

// ErrUserData is why a transfer is refused when the asset's primary node
// cannot get the details of a user it involves.
var ErrUserData = errors.New("user details unavailable")

// PrivateDataProvider gives the private data of this org's resources, for
// instance a user's details. A custodian embedding the library implements
// it over its own systems; the default keeps data in the node's datastore.
type PrivateDataProvider interface {
	// PrivateData returns id's data, or an error wrapping
	// resource.ErrResourceNotFound when there is none.
	PrivateData(ctx context.Context, id resource.ID) ([]byte, error)
}

// datastoreProvider is the default PrivateDataProvider.
type datastoreProvider struct{ ds datastore.Datastore }

func (p datastoreProvider) PrivateData(ctx context.Context, id resource.ID) ([]byte, error) {
	data, err := p.ds.Get(ctx, datastore.NewKey(id.String()))
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, fmt.Errorf("%w: no private data of %s", resource.ErrResourceNotFound, id)
	}
	return data, err
}

// private serves and fetches private data, and caches the user details an
// asset's primary node gets during transfers.
type private struct {
	n        *Node
	store    datastore.Datastore // the default provider's data
	provider PrivateDataProvider
	users    datastore.Datastore // custodied user keys
	known    datastore.Datastore // other orgs' user details fetched for transfers
}

func newPrivate(n *Node) *private {
	p := &private{
		n:     n,
		store: namespace.Wrap(n.ds, datastore.NewKey("/private/data")),
		users: namespace.Wrap(n.ds, datastore.NewKey("/private/user-keys")),
		known: namespace.Wrap(n.ds, datastore.NewKey("/private/known")),
	}
	p.provider = n.cfg.provider
	if p.provider == nil {
		p.provider = datastoreProvider{p.store}
	}
	return p
}

func (p *private) start() { p.n.host.SetStreamHandler(protocols.PrivateData, p.handle) }

func (p *private) close() error {
	p.n.host.RemoveStreamHandler(protocols.PrivateData)
	return nil
}

// handle answers a private data query under the owner's ACL (query right).
func (p *private) handle(s network.Stream) {
	var req pb.PrivateDataRequest
	p.n.acc.serve(s, &req, 1024, func(org string) proto.Message {
		n := p.n
		if !n.acc.limiter.Allow(org) {
			return &pb.PrivateDataResponse{Code: "rate-limited", Error: "org " + org + " has too many refused requests"}
		}
		id, err := resource.ParseID(req.Resource)
		if err != nil {
			return &pb.PrivateDataResponse{Code: "bad-request", Error: err.Error()}
		}
		if id.Org() != n.self.OrgID || !n.acc.allows(id, org, resource.RightQuery) {
			n.acc.limiter.Refused(org)
			return &pb.PrivateDataResponse{Code: "denied", Error: fmt.Sprintf("org %s may not query %s", org, id)}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		data, err := p.provider.PrivateData(ctx, id)
		if errors.Is(err, resource.ErrResourceNotFound) {
			return &pb.PrivateDataResponse{Code: "not-found", Error: fmt.Sprintf("%s has no private data", id)}
		}
		if err != nil {
			n.log.Warn("private data provider failed", "resource", id, "error", err)
			return &pb.PrivateDataResponse{Code: "provider", Error: "the owner could not read the data"}
		}
		return &pb.PrivateDataResponse{Data: data}
	})
}

// SetPrivateData stores private data of one of this org's resources with
// the default provider.
func (n *Node) SetPrivateData(ctx context.Context, id resource.ID, data []byte) error {
	if n.priv == nil {
		return errors.New("set private data: the node is not started")
	}
	if id.Org() != n.self.OrgID {
		return fmt.Errorf("set private data of %s: %w: it belongs to org %q", id, resource.ErrNotOwner, id.Org())
	}
	if len(data) > MaxPrivateData {
		return fmt.Errorf("set private data of %s: %w: %d bytes, at most %d", id, resource.ErrTooLarge, len(data), MaxPrivateData)
	}
	return n.priv.store.Put(ctx, datastore.NewKey(id.String()), data)
}

// QueryPrivateData asks a resource's owner for its private data; the
// owner's ACL (query right) decides.
func (n *Node) QueryPrivateData(ctx context.Context, id resource.ID) ([]byte, error) {
	if n.priv == nil {
		return nil, errors.New("query private data: the node is not started")
	}
	if id.Org() == n.self.OrgID {
		return n.priv.provider.PrivateData(ctx, id)
	}
	if allowed, known := n.acc.acls.Allows(id, n.self.OrgID, resource.RightQuery); known && !allowed {
		return nil, fmt.Errorf("query %s: %w: the ACL this node holds gives org %s no query right; not sent", id, resource.ErrAccessDenied, n.self.OrgID)
	}
	var data []byte
	err := n.sendToOrg(ctx, id.Org(), func(ctx context.Context, p peer.ID) error {
		var reply pb.PrivateDataResponse
		if err := n.request(ctx, p, protocols.PrivateData, &pb.PrivateDataRequest{Resource: id.String()}, &reply, MaxPrivateData+1024); err != nil {
			return err
		}
		switch reply.Code {
		case "":
			data = reply.Data
			return nil
		case "not-found":
			return refusal{fmt.Errorf("%w: %s", resource.ErrResourceNotFound, reply.Error)}
		default:
			return codeError(reply.Code, reply.Error)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", id, err)
	}
	return data, nil
}

// User is a user profile this node created: its FinID is the hex of a
// compressed secp256k1 public key (the shape Ownera's adapter API uses),
// and it is the resource org:101:<FinID>.
type User struct {
	FinID    string      `json:"fin_id"`
	Resource resource.ID `json:"resource"`
}

// CreateUser creates a user profile of this org: a secp256k1 key whose
// compressed public key is the user's FinID, kept by this node (its primary
// node), and the user's details as the resource's private data.
func (n *Node) CreateUser(ctx context.Context, details []byte) (User, error) {
	if n.priv == nil {
		return User{}, errors.New("create user: the node is not started")
	}
	key, pub, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	raw, err := pub.Raw() // 33 bytes, compressed
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	finID := hex.EncodeToString(raw)
	id, err := resource.NewID(n.self.OrgID, resource.TypeOwner, finID)
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	keyBytes, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	if err := n.priv.users.Put(ctx, datastore.NewKey(finID), keyBytes); err != nil {
		return User{}, fmt.Errorf("create user: store key: %w", err)
	}
	if err := n.SetPrivateData(ctx, id, details); err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	return User{FinID: finID, Resource: id}, nil
}

// userDetails makes sure the asset's primary node has the details of a
// user account of another org (an account written as org:101:<id>),
// asking that org when it has none. Other accounts need nothing.
func (p *private) userDetails(ctx context.Context, account string) error {
	id, err := resource.ParseID(account)
	if err != nil || id.Type() != resource.TypeOwner || id.Org() == p.n.self.OrgID {
		return nil
	}
	key := datastore.NewKey(id.String())
	if ok, _ := p.known.Has(ctx, key); ok {
		return nil
	}
	data, err := p.n.QueryPrivateData(ctx, id)
	if err != nil {
		return fmt.Errorf("%w: the details of %s could not be had from org %s: %w", ErrUserData, id, id.Org(), err)
	}
	return p.known.Put(ctx, key, data)
}
