package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/protocols/pb"
)

// StreamTimeout bounds one discovery exchange on either side.
const StreamTimeout = 10 * time.Second

// Registrar serves /finp2p/discovery/1.0.0 over a Directory. On a
// governance node it is the registrar proper: the directory of the members'
// advertisements, the network's trusted source of peers, answering lookups
// and listings. Every other node serves only registration, into its cache:
// a member hands its advertisement to each peer it meets, as identify hands
// over signed peer records, so a restarted node's new address reaches the
// peers it reconnects to at once.
type Registrar struct {
	dir     *Directory
	log     *slog.Logger
	queries bool
	// OnRegister, if set, is called with each record that changed the
	// directory (the node passes it on to its DHT and cache).
	OnRegister func(*Record)
	// PeerOrg, if set, names the org of a peer in the log lines about it;
	// without it they say governance.UnverifiedOrg.
	PeerOrg func(peer.ID) string
}

// NewRegistrar serves dir: registrations always, lookups and listings only
// if queries is set (on governance and founding nodes).
func NewRegistrar(dir *Directory, queries bool, log *slog.Logger) *Registrar {
	if log == nil {
		log = slog.Default()
	}
	return &Registrar{dir: dir, log: log, queries: queries}
}

// Directory is the registrar's store.
func (r *Registrar) Directory() *Directory { return r.dir }

// Attach registers the discovery protocol handler on h.
func (r *Registrar) Attach(h host.Host) { h.SetStreamHandler(protocols.Discovery, r.handle) }

// Detach removes the handler.
func (r *Registrar) Detach(h host.Host) { h.RemoveStreamHandler(protocols.Discovery) }

func (r *Registrar) handle(s network.Stream) {
	remote := s.Conn().RemotePeer()
	_ = s.SetDeadline(time.Now().Add(StreamTimeout))
	var req pb.DiscoveryRequest
	if err := protocols.ReadMsg(s, &req, protocols.MaxDiscoveryRequestSize); err != nil {
		r.log.Info("discovery request unreadable", "peer", remote, "org", r.peerOrg(remote), "error", err)
		_ = s.Reset()
		return
	}
	resp := r.answer(s.Conn().RemotePeer(), &req)
	if err := protocols.WriteMsg(s, resp); err != nil {
		r.log.Debug("discovery reply not sent", "peer", remote, "org", r.peerOrg(remote), "error", err)
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

func (r *Registrar) peerOrg(p peer.ID) string {
	if r.PeerOrg == nil {
		return governance.UnverifiedOrg
	}
	return r.PeerOrg(p)
}

func (r *Registrar) answer(remote peer.ID, req *pb.DiscoveryRequest) *pb.DiscoveryResponse {
	ctx, cancel := context.WithTimeout(context.Background(), StreamTimeout)
	defer cancel()
	switch k := req.Kind.(type) {
	case *pb.DiscoveryRequest_Register:
		rec, changed, err := r.dir.Put(ctx, k.Register)
		if err != nil {
			r.log.Warn("advertisement refused", "peer", remote, "org", r.peerOrg(remote), "reason", err)
			return &pb.DiscoveryResponse{Error: err.Error()}
		}
		if changed {
			r.log.Debug("advertisement registered", "org", rec.Ad.Org, "peer", rec.Ad.Peer, "seq", rec.Ad.Seq)
			if r.OnRegister != nil {
				r.OnRegister(rec)
			}
		}
		return &pb.DiscoveryResponse{}
	case *pb.DiscoveryRequest_Lookup:
		if !r.queries {
			return &pb.DiscoveryResponse{Error: ErrNotRegistrar.Error()}
		}
		return sealedOf(r.dir.Org(k.Lookup))
	case *pb.DiscoveryRequest_List:
		if !r.queries {
			return &pb.DiscoveryResponse{Error: ErrNotRegistrar.Error()}
		}
		f := Filter{Service: k.List.GetService(), Protocol: k.List.GetProtocol(), Ledger: k.List.GetLedger()}
		return sealedOf(r.dir.List(f))
	default:
		return &pb.DiscoveryResponse{Error: "unknown discovery request"}
	}
}

func sealedOf(recs []*Record) *pb.DiscoveryResponse {
	resp := &pb.DiscoveryResponse{}
	size := 0
	for _, rec := range recs {
		size += len(rec.Sealed) + 8
		if size > protocols.MaxDiscoveryResponseSize-1024 {
			break
		}
		resp.Advertisements = append(resp.Advertisements, rec.Sealed)
	}
	return resp
}

// ErrRefused wraps a registrar's refusal; the text after it is the
// registrar's reason.
var ErrRefused = errors.New("registrar refused")

// ErrNotRegistrar is what a member node answers to a lookup or listing.
var ErrNotRegistrar = errors.New("this node is not a registrar; ask a governance node")

// Register sends a sealed advertisement to the registrar p.
func Register(ctx context.Context, h host.Host, p peer.ID, sealed []byte) error {
	_, err := exchange(ctx, h, p, &pb.DiscoveryRequest{Kind: &pb.DiscoveryRequest_Register{Register: sealed}})
	return err
}

// Lookup asks the registrar p for org's advertisements. The caller verifies
// each with its own Verifier.
func Lookup(ctx context.Context, h host.Host, p peer.ID, org string) ([][]byte, error) {
	return exchange(ctx, h, p, &pb.DiscoveryRequest{Kind: &pb.DiscoveryRequest_Lookup{Lookup: org}})
}

// List asks the registrar p for the advertisements matching f.
func List(ctx context.Context, h host.Host, p peer.ID, f Filter) ([][]byte, error) {
	return exchange(ctx, h, p, &pb.DiscoveryRequest{Kind: &pb.DiscoveryRequest_List{
		List: &pb.ListFilter{Service: f.Service, Protocol: f.Protocol, Ledger: f.Ledger},
	}})
}

func exchange(ctx context.Context, h host.Host, p peer.ID, req *pb.DiscoveryRequest) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, StreamTimeout)
	defer cancel()
	s, err := h.NewStream(ctx, p, protocols.Discovery)
	if err != nil {
		return nil, fmt.Errorf("discovery with %s: %w", p, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if err := protocols.WriteMsg(s, req); err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("discovery with %s: send: %w", p, err)
	}
	_ = s.CloseWrite()
	var resp pb.DiscoveryResponse
	if err := protocols.ReadMsg(s, &resp, protocols.MaxDiscoveryResponseSize); err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("discovery with %s: read reply: %w", p, err)
	}
	_ = s.Close()
	if resp.Error != "" {
		return nil, fmt.Errorf("%w: %s: %s", ErrRefused, p, resp.Error)
	}
	return resp.Advertisements, nil
}
