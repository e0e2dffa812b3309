package broadcast_test

import (
	"bytes"
	"crypto/ecdh"
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/finp2p/go-finp2p/broadcast"
)

type encNode struct {
	id   peer.ID
	priv *ecdh.PrivateKey
}

func encNodes(t *testing.T, ids ...peer.ID) []encNode {
	t.Helper()
	var out []encNode
	for _, id := range ids {
		k, err := broadcast.GenerateEncryptionKey()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, encNode{id, k})
	}
	return out
}

func TestEncryptedPayloadOnlyRecipientsRead(t *testing.T) {
	f := newFixture(t)
	nodes := encNodes(t, f.nodes[0].id, f.nodes[1].id, f.outsider.id)
	recipients := []broadcast.Recipient{
		{Peer: nodes[0].id, Key: nodes[0].priv.PublicKey().Bytes()},
		{Peer: nodes[1].id, Key: nodes[1].priv.PublicKey().Bytes()},
	}
	plain := []byte(`{"asset":"bank-x:102:bond-1","account":"alice@bank-a"}`)
	r := f.request(func(r *broadcast.Request) { r.Payload = nil })
	if err := broadcast.EncryptPayload(r, plain, recipients); err != nil {
		t.Fatal(err)
	}
	if !r.Encrypted || bytes.Contains(r.Payload, []byte("alice")) {
		t.Fatalf("payload not encrypted: %q", r.Payload)
	}
	// Through the signed envelope and back, as a receiver gets it.
	sealed, err := broadcast.SealRequest(r, f.origin.key)
	if err != nil {
		t.Fatal(err)
	}
	vr, err := f.reqV.Open(sealed)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[:2] {
		got, err := broadcast.DecryptPayload(vr.Request, n.id, n.priv)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("recipient %s: %q, %v", n.id, got, err)
		}
	}
	// A relay that is not a recipient cannot read it, with its own key or
	// by claiming to be a recipient.
	if _, err := broadcast.DecryptPayload(vr.Request, nodes[2].id, nodes[2].priv); !errors.Is(err, broadcast.ErrNotRecipient) {
		t.Fatalf("outsider: %v, want ErrNotRecipient", err)
	}
	if _, err := broadcast.DecryptPayload(vr.Request, nodes[0].id, nodes[2].priv); !errors.Is(err, broadcast.ErrDecrypt) {
		t.Fatalf("outsider with a recipient's id: %v, want ErrDecrypt", err)
	}
	// The ciphertext moved into another request (another id or origin)
	// does not open: it cannot be re-signed as someone else's question.
	for name, edit := range map[string]func(*broadcast.Request){
		"other id":     func(c *broadcast.Request) { c.ID = broadcast.NewRequestID() },
		"other origin": func(c *broadcast.Request) { c.Peer = f.outsider.id },
	} {
		c := *vr.Request
		edit(&c)
		if _, err := broadcast.DecryptPayload(&c, nodes[0].id, nodes[0].priv); !errors.Is(err, broadcast.ErrDecrypt) {
			t.Fatalf("%s: %v, want ErrDecrypt", name, err)
		}
	}
	// A flipped ciphertext byte is caught.
	c := *vr.Request
	c.Payload = bytes.Clone(c.Payload)
	c.Payload[len(c.Payload)-1] ^= 1
	if _, err := broadcast.DecryptPayload(&c, nodes[0].id, nodes[0].priv); !errors.Is(err, broadcast.ErrDecrypt) {
		t.Fatalf("flipped byte: %v, want ErrDecrypt", err)
	}
	// A plain payload is returned as is.
	p := f.request(nil)
	if got, err := broadcast.DecryptPayload(p, nodes[2].id, nil); err != nil || !bytes.Equal(got, p.Payload) {
		t.Fatalf("plain payload: %q, %v", got, err)
	}
}

func TestEncryptPayloadRefusesBadRecipients(t *testing.T) {
	f := newFixture(t)
	r := f.request(nil)
	if err := broadcast.EncryptPayload(r, []byte("x"), nil); !errors.Is(err, broadcast.ErrBadRequest) {
		t.Fatalf("no recipients: %v", err)
	}
	if err := broadcast.EncryptPayload(r, []byte("x"), []broadcast.Recipient{{Peer: f.nodes[0].id, Key: []byte{1, 2, 3}}}); err == nil {
		t.Fatal("a 3-byte key was accepted")
	}
	if _, err := broadcast.DecryptPayload(&broadcast.Request{ID: r.ID, Encrypted: true, Payload: []byte{0xff, 0xff}}, f.nodes[0].id, nil); !errors.Is(err, broadcast.ErrMalformed) {
		t.Fatalf("garbage payload: %v", err)
	}
}

func FuzzDecryptPayload(f *testing.F) {
	k, _ := broadcast.GenerateEncryptionKey()
	self := peer.ID("self")
	r := &broadcast.Request{ID: broadcast.NewRequestID(), Peer: "origin"}
	_ = broadcast.EncryptPayload(r, []byte("hello"), []broadcast.Recipient{{Peer: self, Key: k.PublicKey().Bytes()}})
	f.Add(r.Payload)
	f.Fuzz(func(t *testing.T, payload []byte) {
		c := *r
		c.Payload, c.Encrypted = payload, true
		_, _ = broadcast.DecryptPayload(&c, self, k)
	})
}
