package broadcast

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

	"github.com/finp2p/go-finp2p/governance"
)

// openEnvelope checks what every sealed request and response must be before
// its fields are looked at: within max bytes, a libp2p signed envelope whose
// signature verifies under rec's domain, of rec's payload type, encoded the
// one way Seal encodes it, signed by an Ed25519 key. It decodes rec.
func openEnvelope(what string, sealed []byte, max int, rec record.Record) (*record.Envelope, error) {
	if len(sealed) > max {
		return nil, fmt.Errorf("%w: %s of %d bytes, at most %d", ErrTooLarge, what, len(sealed), max)
	}
	env, err := record.ConsumeTypedEnvelope(sealed, rec)
	if err != nil {
		if errors.Is(err, ErrMalformed) {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return nil, fmt.Errorf("%w: %s envelope: %w", ErrMalformed, what, err)
	}
	if !bytes.Equal(env.PayloadType, rec.Codec()) {
		return nil, fmt.Errorf("%w: %s envelope of payload type %q, want %q", ErrMalformed, what, env.PayloadType, rec.Codec())
	}
	canonical, err := env.Marshal()
	if err != nil || !bytes.Equal(canonical, sealed) {
		return nil, fmt.Errorf("%w: %s envelope is not in canonical encoding (extra, repeated or reordered fields)", ErrMalformed, what)
	}
	if env.PublicKey.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("%w: %s signed by a %s key, FinP2P nodes sign with Ed25519", ErrForged, what, env.PublicKey.Type())
	}
	return env, nil
}

// seal signs rec with key and checks the result's size.
func seal(what string, rec record.Record, key crypto.PrivKey, max int) ([]byte, error) {
	env, err := record.Seal(rec, key)
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", what, err)
	}
	data, err := env.Marshal()
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", what, err)
	}
	if len(data) > max {
		return nil, fmt.Errorf("%w: sealed %s is %d bytes, at most %d", ErrTooLarge, what, len(data), max)
	}
	return data, nil
}

// signerPeer fills *p with key's peer ID when empty, or checks it is key's.
func signerPeer(p *peer.ID, key crypto.PrivKey) error {
	if key == nil {
		return fmt.Errorf("%w: no signing key", ErrForged)
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
		return fmt.Errorf("%w: names peer %s, the signing key is peer %s", ErrForged, *p, id)
	}
	return nil
}

// checkLeafKey makes sure the chain's leaf certifies key, so a node does not
// send a record every receiver would refuse.
func checkLeafKey(chain [][]byte, key crypto.PrivKey) error {
	if len(chain) == 0 {
		return fmt.Errorf("%w: no certificate chain", ErrForged)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return fmt.Errorf("%w: leaf certificate: %w", ErrForged, err)
	}
	if key.Type() != crypto.Ed25519 {
		return fmt.Errorf("%w: signing key is %s, not Ed25519", ErrForged, key.Type())
	}
	raw, err := key.GetPublic().Raw()
	if err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	if pub, ok := leaf.PublicKey.(ed25519.PublicKey); !ok || !pub.Equal(ed25519.PublicKey(raw)) {
		return fmt.Errorf("%w: leaf certificate %q is not the signing key's", ErrForged, leaf.Subject.String())
	}
	return nil
}

// signerError classifies a governance error about a signer's certificate:
// a chain that is not the signing key's is ErrForged, a revoked one
// ErrRevoked; others (expired, untrusted) keep only the governance error.
func signerError(what string, err error) error {
	switch {
	case errors.Is(err, governance.ErrKeyMismatch):
		return fmt.Errorf("%w: %s: signer's certificate: %w", ErrForged, what, err)
	case errors.Is(err, governance.ErrRevoked):
		return fmt.Errorf("%w: %s: signer's certificate: %w", ErrRevoked, what, err)
	}
	return fmt.Errorf("%s: signer's certificate: %w", what, err)
}

// unixNanos is t on the wire: Unix nanoseconds, 0 for the zero time.
func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromUnixNanos reads a time from the wire, in UTC.
func fromUnixNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// checkTime checks that a time is set and travels as Unix nanoseconds
// unchanged (years 1970 to 2262).
func checkTime(field string, t time.Time) error {
	if t.IsZero() {
		return fmt.Errorf("missing %s", field)
	}
	if n := t.UnixNano(); n <= 0 || !time.Unix(0, n).Equal(t) {
		return fmt.Errorf("%s %s is out of range", field, t.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

func parsePeer(b []byte) (peer.ID, error) {
	if len(b) == 0 {
		return "", nil
	}
	return peer.IDFromBytes(b)
}

// describeKey names the signer of an envelope for error messages.
func describeKey(key crypto.PubKey) string {
	id, err := peer.IDFromPublicKey(key)
	if err != nil {
		return "a malformed key"
	}
	return "peer " + id.String()
}
