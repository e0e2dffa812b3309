// Package signedrecord holds what the FinP2P signed records (asset requests
// and receipts, broadcast requests and responses, ACLs) check alike: the
// libp2p signed envelope they travel in, the signer's key against its
// certificate chain, and times on the wire. Each package passes its own
// sentinel errors, so callers keep matching them with errors.Is.
package signedrecord

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
)

// Errors are the sentinels a package's records fail with.
type Errors struct {
	TooLarge, Malformed, Forged error
}

// Open checks what every sealed record must be before its fields are looked
// at: within max bytes, a libp2p signed envelope whose signature verifies
// under rec's domain, of rec's payload type, encoded the one way Seal
// encodes it (so the sealed bytes, and their hash, identify the signed
// content), signed by an Ed25519 key. It decodes rec.
func Open(what string, sealed []byte, max int, rec record.Record, e Errors) (*record.Envelope, error) {
	if len(sealed) > max {
		return nil, fmt.Errorf("%w: %s of %d bytes, at most %d", e.TooLarge, what, len(sealed), max)
	}
	env, err := record.ConsumeTypedEnvelope(sealed, rec)
	if err != nil {
		if errors.Is(err, e.Malformed) {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return nil, fmt.Errorf("%w: %s envelope: %w", e.Malformed, what, err)
	}
	if !bytes.Equal(env.PayloadType, rec.Codec()) {
		return nil, fmt.Errorf("%w: %s envelope of payload type %q, want %q", e.Malformed, what, env.PayloadType, rec.Codec())
	}
	canonical, err := env.Marshal()
	if err != nil || !bytes.Equal(canonical, sealed) {
		return nil, fmt.Errorf("%w: %s envelope is not in canonical encoding (extra, repeated or reordered fields)", e.Malformed, what)
	}
	if env.PublicKey.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("%w: %s signed by a %s key, FinP2P nodes sign with Ed25519", e.Forged, what, env.PublicKey.Type())
	}
	return env, nil
}

// Seal signs rec with key and checks the result's size.
func Seal(what string, rec record.Record, key crypto.PrivKey, max int, e Errors) ([]byte, error) {
	env, err := record.Seal(rec, key)
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", what, err)
	}
	data, err := env.Marshal()
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", what, err)
	}
	if len(data) > max {
		return nil, fmt.Errorf("%w: sealed %s is %d bytes, at most %d", e.TooLarge, what, len(data), max)
	}
	return data, nil
}

// SignerPeer fills *p with key's peer ID when empty, or checks it is key's.
func SignerPeer(p *peer.ID, key crypto.PrivKey, forged error) error {
	if key == nil {
		return fmt.Errorf("%w: no signing key", forged)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	if *p == "" {
		*p = id
		return nil
	}
	if *p != id {
		return fmt.Errorf("%w: names peer %s, the signing key is peer %s", forged, *p, id)
	}
	return nil
}

// CheckLeafKey makes sure the chain's leaf certifies key, so a node does not
// send a record every receiver would refuse.
func CheckLeafKey(chain [][]byte, key crypto.PrivKey, forged error) error {
	if len(chain) == 0 {
		return fmt.Errorf("%w: no certificate chain", forged)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return fmt.Errorf("%w: leaf certificate: %w", forged, err)
	}
	if key == nil || key.Type() != crypto.Ed25519 {
		return fmt.Errorf("%w: signing key is not Ed25519", forged)
	}
	raw, err := key.GetPublic().Raw()
	if err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	if pub, ok := leaf.PublicKey.(ed25519.PublicKey); !ok || !pub.Equal(ed25519.PublicKey(raw)) {
		return fmt.Errorf("%w: leaf certificate %q is not the signing key's", forged, leaf.Subject.String())
	}
	return nil
}

// UnixNanos is t on the wire: Unix nanoseconds, 0 for the zero time.
func UnixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// FromUnixNanos reads a time from the wire, in UTC.
func FromUnixNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// CheckTime checks that a time is set and travels as Unix nanoseconds
// unchanged (years 1970 to 2262).
func CheckTime(field string, t time.Time) error {
	if t.IsZero() {
		return fmt.Errorf("missing %s", field)
	}
	if n := t.UnixNano(); n <= 0 || !time.Unix(0, n).Equal(t) {
		return fmt.Errorf("%s %s is out of range", field, t.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// ParsePeer reads an optional binary peer ID.
func ParsePeer(b []byte) (peer.ID, error) {
	if len(b) == 0 {
		return "", nil
	}
	return peer.IDFromBytes(b)
}

// DescribeKey names the signer of an envelope for error messages.
func DescribeKey(key crypto.PubKey) string {
	id, err := peer.IDFromPublicKey(key)
	if err != nil {
		return "a malformed key"
	}
	return "peer " + id.String()
}
