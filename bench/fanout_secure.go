package main

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	lp2pnet "github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/finp2p/go-finp2p/broadcast"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/protocols/pb"
)

// secureFanoutProtocol is the broadcast's second baseline: direct unicast
// fan-out with the broadcast's own protection, the point-to-point design a
// user would build for the same guarantees. The origin seals the question
// to each recipient's X25519 key (broadcast.EncryptPayload) and signs it;
// each recipient checks the signature, opens its seal and signs its
// answer, which the origin checks. What it leaves out of the node's
// broadcast is only the certificate chains (which the node checks from a
// cache), the scope and quorum bookkeeping, and gossip.
const secureFanoutProtocol = protocol.ID("/finp2p-bench/fanout-sealed/1.0.0")

// secureFanout holds the baseline's keys: the origin's signing key and
// each recipient's signing and encryption keys.
type secureFanout struct {
	origin     ed25519.PrivateKey
	signers    map[peer.ID]ed25519.PrivateKey
	decrypters map[peer.ID]*ecdh.PrivateKey
	recipients []broadcast.Recipient
	reply      []byte
}

func newSecureFanout(on []*member, reply []byte) (*secureFanout, error) {
	_, origin, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	f := &secureFanout{origin: origin, signers: map[peer.ID]ed25519.PrivateKey{}, decrypters: map[peer.ID]*ecdh.PrivateKey{}, reply: reply}
	for _, m := range on {
		p := m.Node().ID()
		_, sk, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		ek, err := broadcast.GenerateEncryptionKey()
		if err != nil {
			return nil, err
		}
		f.signers[p], f.decrypters[p] = sk, ek
		f.recipients = append(f.recipients, broadcast.Recipient{Peer: p, Key: ek.PublicKey().Bytes()})
		m.Node().Host().SetStreamHandler(secureFanoutProtocol, f.answer)
	}
	return f, nil
}

// seal is the question as it leaves the origin: signature, request id,
// then the encrypted payload.
func (f *secureFanout) seal(origin peer.ID, plain []byte) ([]byte, error) {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	r := &broadcast.Request{ID: hex.EncodeToString(id), Peer: origin}
	if err := broadcast.EncryptPayload(r, plain, f.recipients); err != nil {
		return nil, err
	}
	body := append(id, r.Payload...)
	return append(ed25519.Sign(f.origin, body), body...), nil
}

// answer is the recipient's side: check, open, answer signed.
func (f *secureFanout) answer(s lp2pnet.Stream) {
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	self := s.Conn().LocalPeer()
	var req pb.AssetTxRequest
	if err := protocols.ReadMsg(s, &req, 64<<10); err != nil || len(req.Request) < ed25519.SignatureSize+16 {
		_ = s.Reset()
		return
	}
	sig, body := req.Request[:ed25519.SignatureSize], req.Request[ed25519.SignatureSize:]
	if !ed25519.Verify(f.origin.Public().(ed25519.PublicKey), body, sig) {
		_ = s.Reset()
		return
	}
	r := &broadcast.Request{ID: hex.EncodeToString(body[:16]), Peer: s.Conn().RemotePeer(), Payload: body[16:], Encrypted: true}
	if _, err := broadcast.DecryptPayload(r, self, f.decrypters[self]); err != nil {
		_ = s.Reset()
		return
	}
	answer := append(ed25519.Sign(f.signers[self], f.reply), f.reply...)
	if err := protocols.WriteMsg(s, &pb.AssetTxResponse{Receipt: answer}); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// fanout seals one question, sends it to every recipient at once and
// returns when three signed answers have checked out; like the plain
// fan-out it waits for the other two before returning.
func (f *secureFanout) fanout(ctx context.Context, o *node.Node, plain []byte) (time.Duration, error) {
	t0 := time.Now()
	sealed, err := f.seal(o.ID(), plain)
	if err != nil {
		return 0, err
	}
	var peers []peer.ID
	for _, rc := range f.recipients {
		peers = append(peers, rc.Peer)
	}
	return thirdAnswer(t0, "sealed fan-out", peers, func(p peer.ID) error { return f.ask(ctx, o, p, sealed) })
}

func (f *secureFanout) ask(ctx context.Context, o *node.Node, p peer.ID, sealed []byte) error {
	answer, err := askOnce(ctx, o, p, secureFanoutProtocol, sealed)
	if err != nil {
		return err
	}
	if len(answer) < ed25519.SignatureSize {
		return errors.New("sealed fan-out: short answer")
	}
	sig, body := answer[:ed25519.SignatureSize], answer[ed25519.SignatureSize:]
	if !ed25519.Verify(f.signers[p].Public().(ed25519.PublicKey), body, sig) {
		return fmt.Errorf("sealed fan-out: answer of %s does not verify", p)
	}
	return nil
}
