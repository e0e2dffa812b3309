package broadcast

import (
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/signedrecord"
)

// The record checks shared with the other signed records, failing with
// this package's sentinels.
var recordErrors = signedrecord.Errors{TooLarge: ErrTooLarge, Malformed: ErrMalformed, Forged: ErrForged}

func openEnvelope(what string, sealed []byte, max int, rec record.Record) (*record.Envelope, error) {
	return signedrecord.Open(what, sealed, max, rec, recordErrors)
}

func seal(what string, rec record.Record, key crypto.PrivKey, max int) ([]byte, error) {
	return signedrecord.Seal(what, rec, key, max, recordErrors)
}

func signerPeer(p *peer.ID, key crypto.PrivKey) error {
	return signedrecord.SignerPeer(p, key, ErrForged)
}

func checkLeafKey(chain [][]byte, key crypto.PrivKey) error {
	return signedrecord.CheckLeafKey(chain, key, ErrForged)
}

var (
	unixNanos     = signedrecord.UnixNanos
	fromUnixNanos = signedrecord.FromUnixNanos
	parsePeer     = signedrecord.ParsePeer
	describeKey   = signedrecord.DescribeKey
)

func checkTime(field string, t time.Time) error { return signedrecord.CheckTime(field, t) }

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
