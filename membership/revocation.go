package membership

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/protocols/pb"
)

// Datastore keys, under the namespace the caller gives.
var (
	crlPrefix     = datastore.NewKey("/crl")
	revokedPrefix = datastore.NewKey("/revoked")
)

// revokedRecord is how a revoked peer is kept in the datastore.
type revokedRecord struct {
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// ApplyCRL checks a revocation list signed by a CA of the network and, when
// it is newer than the one held for that CA, stores it and disconnects and
// blocks every connected member it revokes. It reports whether the list was
// new. A list this node already has is not an error.
func (s *Service) ApplyCRL(der []byte, issuerChain [][]byte) (bool, error) {
	applied, err := s.cfg.Trust.AddCRL(der, issuerChain, s.cfg.Now())
	if err != nil || !applied {
		return false, err
	}
	if s.cfg.Datastore != nil {
		rec, err := proto.Marshal(&pb.RevocationList{Der: der, IssuerChain: issuerChain})
		if err != nil {
			return true, fmt.Errorf("encode revocation list: %w", err)
		}
		sum := sha256.Sum256(issuerChain[0])
		key := crlPrefix.ChildString(hex.EncodeToString(sum[:]))
		if err := s.cfg.Datastore.Put(s.ctx, key, rec); err != nil {
			return true, fmt.Errorf("store revocation list: %w", err)
		}
	}
	s.log.Info("revocation list applied")
	s.recheck()
	return true, nil
}

// CRLs returns the revocation lists this node holds, to share with peers.
func (s *Service) CRLs() []*pb.RevocationList {
	stored := s.cfg.Trust.CRLs()
	if len(stored) > protocols.MaxCRLsPerHello {
		stored = stored[:protocols.MaxCRLsPerHello]
	}
	out := make([]*pb.RevocationList, 0, len(stored))
	for _, c := range stored {
		out = append(out, &pb.RevocationList{Der: c.DER, IssuerChain: c.IssuerChain})
	}
	return out
}

// recheck re-verifies every verified peer against the current revocation
// lists and clock, and drops those that no longer pass.
func (s *Service) recheck() {
	now := s.cfg.Now()
	type drop struct {
		p   peer.ID
		m   governance.Member
		err error
	}
	var drops []drop
	s.mu.Lock()
	for p, st := range s.peers {
		if !st.verified() {
			continue
		}
		if _, err := s.cfg.Trust.Verify(st.member.Chain, now); err != nil {
			drops = append(drops, drop{p, st.member, err})
			delete(s.peers, p)
		}
	}
	h := s.host
	s.mu.Unlock()

	for _, d := range drops {
		if errors.Is(d.err, governance.ErrRevoked) {
			s.blockForever(d.p, d.m.OrgID, d.err.Error())
			s.log.Warn("member revoked: disconnected and blocked", "peer", d.p, "org", d.m.OrgID, "reason", d.err)
		} else {
			s.mu.Lock()
			s.blocked[d.p] = block{reason: d.err.Error(), until: now.Add(s.cfg.BlockDuration)}
			s.mu.Unlock()
			s.log.Warn("member no longer valid: disconnected", "peer", d.p, "org", d.m.OrgID, "reason", d.err)
		}
		if h != nil {
			_ = h.Network().ClosePeer(d.p)
		}
	}
}

// blockForever blocks a revoked peer and remembers it across restarts.
func (s *Service) blockForever(p peer.ID, org, reason string) {
	s.mu.Lock()
	s.blocked[p] = block{reason: reason, permanent: true}
	s.mu.Unlock()
	if s.cfg.Datastore == nil {
		return
	}
	rec, _ := json.Marshal(revokedRecord{Reason: reason, Since: s.cfg.Now()})
	if err := s.cfg.Datastore.Put(s.ctx, revokedPrefix.ChildString(p.String()), rec); err != nil {
		s.log.Error("could not persist a revoked peer; it stays blocked until restart", "peer", p, "org", org, "error", err)
	}
}

// load restores revocation lists and revoked peers from the datastore.
func (s *Service) load(ctx context.Context) error {
	if s.cfg.Datastore == nil {
		return nil
	}
	res, err := s.cfg.Datastore.Query(ctx, query.Query{Prefix: crlPrefix.String()})
	if err != nil {
		return fmt.Errorf("load revocation lists: %w", err)
	}
	entries, err := res.Rest()
	if err != nil {
		return fmt.Errorf("load revocation lists: %w", err)
	}
	for _, e := range entries {
		var rl pb.RevocationList
		if err := proto.Unmarshal(e.Value, &rl); err != nil {
			return fmt.Errorf("load revocation list %s: %w", e.Key, err)
		}
		if _, err := s.cfg.Trust.AddCRL(rl.Der, rl.IssuerChain, s.cfg.Now()); err != nil {
			// A stored list that no longer verifies (an expired CA, say) is
			// reported, not fatal: the others still apply.
			s.log.Warn("stored revocation list no longer applies", "key", e.Key, "reason", err)
		}
	}

	res, err = s.cfg.Datastore.Query(ctx, query.Query{Prefix: revokedPrefix.String()})
	if err != nil {
		return fmt.Errorf("load revoked peers: %w", err)
	}
	entries, err = res.Rest()
	if err != nil {
		return fmt.Errorf("load revoked peers: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range entries {
		p, err := peer.Decode(datastore.NewKey(e.Key).BaseNamespace())
		if err != nil {
			return fmt.Errorf("load revoked peer %s: %w", e.Key, err)
		}
		var rec revokedRecord
		if err := json.Unmarshal(e.Value, &rec); err != nil {
			return fmt.Errorf("load revoked peer %s: %w", p, err)
		}
		s.blocked[p] = block{reason: rec.Reason, permanent: true}
	}
	return nil
}

// sweepLoop re-verifies connected members periodically, so that a certificate
// that expires while its node stays connected stops being honoured.
func (s *Service) sweepLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.recheck()
		}
	}
}
