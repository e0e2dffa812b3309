package broadcast

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/finp2p/go-finp2p/broadcast/pb"
)

// The HPKE suite payload keys are sealed with: DHKEM(X25519, HKDF-SHA256),
// HKDF-SHA256, AES-256-GCM (RFC 9180).
var (
	payloadKEM  = hpke.DHKEM(ecdh.X25519())
	payloadKDF  = hpke.HKDFSHA256()
	payloadAEAD = hpke.AES256GCM()
)

const (
	// MaxRecipients bounds the recipients one payload is sealed to.
	MaxRecipients  = 512
	payloadKeySize = 32
)

var (
	// ErrNotRecipient: an encrypted payload that is not sealed to this node.
	ErrNotRecipient = errors.New("broadcast payload is not encrypted for this node")
	// ErrDecrypt: an encrypted payload this node is a recipient of but
	// cannot open: the wrong key, or bytes changed on the way.
	ErrDecrypt = errors.New("broadcast payload does not decrypt")
)

// Recipient is a node a payload is sealed to, with its advertised X25519
// public key.
type Recipient struct {
	Peer peer.ID
	Key  []byte
}

// GenerateEncryptionKey returns a new X25519 private key for broadcast
// payloads; its PublicKey().Bytes() is what a node advertises.
func GenerateEncryptionKey() (*ecdh.PrivateKey, error) {
	return ecdh.X25519().GenerateKey(rand.Reader)
}

// payloadAAD binds an encrypted payload to the request carrying it: the
// same ciphertext placed in another request (another id or origin) does
// not open, so a member cannot re-sign someone else's encrypted question
// as its own to have the answer sent to itself.
func payloadAAD(requestID string, origin peer.ID) []byte {
	return fmt.Appendf(nil, "finp2p broadcast payload\x00%s\x00%s", requestID, []byte(origin))
}

func keyInfo(requestID string, recipient peer.ID) []byte {
	return fmt.Appendf(nil, "finp2p broadcast payload key\x00%s\x00%s", requestID, []byte(recipient))
}

// EncryptPayload encrypts the payload of request r (its ID and Peer must be
// set) for recipients and sets r.Payload to the result and r.Encrypted. Only
// the recipients can read it, and only inside this request.
func EncryptPayload(r *Request, plain []byte, recipients []Recipient) error {
	if r.ID == "" || r.Peer == "" {
		return fmt.Errorf("%w: encrypt payload: the request needs its id and peer first", ErrBadRequest)
	}
	if len(recipients) == 0 {
		return fmt.Errorf("%w: encrypt payload: no recipients", ErrBadRequest)
	}
	if len(recipients) > MaxRecipients {
		return fmt.Errorf("%w: encrypt payload: %d recipients, at most %d", ErrBadRequest, len(recipients), MaxRecipients)
	}
	key := make([]byte, payloadKeySize)
	rand.Read(key) // never fails (crypto/rand)
	gcm, err := newGCM(key)
	if err != nil {
		return err
	}
	nonce := make([]byte, gcm.NonceSize())
	rand.Read(nonce)
	m := &pb.EncryptedPayload{
		Nonce:      nonce,
		Ciphertext: gcm.Seal(nil, nonce, plain, payloadAAD(r.ID, r.Peer)),
	}
	seen := make(map[peer.ID]bool, len(recipients))
	for _, rc := range recipients {
		if seen[rc.Peer] {
			continue
		}
		seen[rc.Peer] = true
		pk, err := payloadKEM.NewPublicKey(rc.Key)
		if err != nil {
			return fmt.Errorf("encrypt payload: recipient %s: %d-byte key is not an X25519 public key: %w", rc.Peer, len(rc.Key), err)
		}
		sealed, err := hpke.Seal(pk, payloadKDF, payloadAEAD, keyInfo(r.ID, rc.Peer), key)
		if err != nil {
			return fmt.Errorf("encrypt payload: seal key to %s: %w", rc.Peer, err)
		}
		m.Keys = append(m.Keys, &pb.SealedKey{Peer: []byte(rc.Peer), Sealed: sealed})
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("encrypt payload: %w", err)
	}
	r.Payload, r.Encrypted = b, true
	return nil
}

// DecryptPayload returns the plain payload of request r for node self with
// its X25519 key: r.Payload itself when it is not encrypted. It fails with
// ErrNotRecipient when the payload is not sealed to self, and ErrDecrypt
// when it is but does not open.
func DecryptPayload(r *Request, self peer.ID, priv *ecdh.PrivateKey) ([]byte, error) {
	if !r.Encrypted {
		return r.Payload, nil
	}
	var m pb.EncryptedPayload
	if err := proto.Unmarshal(r.Payload, &m); err != nil {
		return nil, fmt.Errorf("%w: encrypted payload: %w", ErrMalformed, err)
	}
	if len(m.Keys) > MaxRecipients {
		return nil, fmt.Errorf("%w: encrypted payload has %d recipients, at most %d", ErrMalformed, len(m.Keys), MaxRecipients)
	}
	var sealed []byte
	for _, k := range m.Keys {
		if peer.ID(k.Peer) == self {
			sealed = k.Sealed
			break
		}
	}
	if sealed == nil {
		return nil, fmt.Errorf("%w: request %s is sealed to %d other nodes", ErrNotRecipient, r.ID, len(m.Keys))
	}
	if priv == nil {
		return nil, fmt.Errorf("%w: this node has no encryption key", ErrDecrypt)
	}
	hk, err := hpke.NewDHKEMPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecrypt, err)
	}
	key, err := hpke.Open(hk, payloadKDF, payloadAEAD, keyInfo(r.ID, self), sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: payload key of request %s: %w", ErrDecrypt, r.ID, err)
	}
	gcm, err := newGCM(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecrypt, err)
	}
	if len(m.Nonce) != gcm.NonceSize() {
		return nil, fmt.Errorf("%w: nonce of %d bytes", ErrDecrypt, len(m.Nonce))
	}
	plain, err := gcm.Open(nil, m.Nonce, m.Ciphertext, payloadAAD(r.ID, r.Peer))
	if err != nil {
		return nil, fmt.Errorf("%w: payload of request %s: %w", ErrDecrypt, r.ID, err)
	}
	return plain, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("payload cipher: %w", err)
	}
	return cipher.NewGCM(block)
}
