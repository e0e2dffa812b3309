package asset

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	"google.golang.org/protobuf/proto"

	"github.com/finp2p/go-finp2p/asset/pb"
	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/ledger"
	"github.com/finp2p/go-finp2p/resource"
)

// Signed envelope domain and payload type of asset receipts.
const (
	ReceiptDomain      = "finp2p-asset-receipt"
	receiptPayloadType = "/finp2p/asset-receipt/1"

	// MaxReceiptSize bounds a sealed asset receipt.
	MaxReceiptSize = 64 << 10
)

// Receipt is the signed answer of the asset owner's primary node to an
// asset request: the ledger transaction it executed, bound to the request
// by RequestHash. The holder verifies it offline at any time later with a
// ReceiptVerifier.
type Receipt struct {
	// Network is the genesis network name.
	Network string
	// Transaction is the ledger transaction the request produced (or, for
	// a retry, produced the first time).
	Transaction ledger.Transaction
	// RequestHash is RequestHash of the sealed request answered.
	RequestHash string
	// RequesterOrg is the org that sent the request.
	RequesterOrg string
	// OwnerOrg is the asset's owner org, the signer's org.
	OwnerOrg string
	// Peer is the signing node.
	Peer peer.ID
	// SignedAt is when the receipt was signed; the signer's certificate is
	// checked at that time.
	SignedAt time.Time
	// Chain is the signing node's DER certificate chain, leaf first.
	Chain [][]byte
}

var _ record.Record = (*Receipt)(nil)

// Domain is the signed envelope domain of asset receipts.
func (*Receipt) Domain() string { return ReceiptDomain }

// Codec is the signed envelope payload type of asset receipts.
func (*Receipt) Codec() []byte { return []byte(receiptPayloadType) }

// MarshalRecord encodes the receipt as its protobuf message.
func (r *Receipt) MarshalRecord() ([]byte, error) {
	tx := r.Transaction
	if tx.Decimals < 0 || tx.Decimals > ledger.MaxDecimals {
		return nil, fmt.Errorf("%w: asset receipt: decimals %d out of range 0..%d", ErrMalformed, tx.Decimals, ledger.MaxDecimals)
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(&pb.Receipt{
		Network: r.Network,
		Transaction: &pb.Transaction{
			Id:             tx.ID,
			LedgerId:       tx.LedgerID,
			Operation:      string(tx.Operation),
			Asset:          tx.Asset,
			From:           tx.From,
			To:             tx.To,
			Quantity:       tx.Quantity,
			HoldId:         tx.HoldID,
			IdempotencyKey: tx.IdempotencyKey,
			Version:        tx.Version,
			Hash:           tx.Hash,
			PrevHash:       tx.PrevHash,
			Timestamp:      unixNanos(tx.Timestamp),
			Decimals:       uint32(tx.Decimals),
		},
		RequestHash:  r.RequestHash,
		RequesterOrg: r.RequesterOrg,
		OwnerOrg:     r.OwnerOrg,
		Peer:         []byte(r.Peer),
		SignedAt:     unixNanos(r.SignedAt),
		Chain:        r.Chain,
	})
}

// UnmarshalRecord decodes the protobuf message; it checks only that the
// peer id parses and the decimals fit. Validate checks the fields.
func (r *Receipt) UnmarshalRecord(data []byte) error {
	var m pb.Receipt
	if err := proto.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%w: asset receipt: %w", ErrMalformed, err)
	}
	p, err := parsePeer(m.Peer)
	if err != nil {
		return fmt.Errorf("%w: asset receipt: peer id: %w", ErrMalformed, err)
	}
	t := m.Transaction
	if t == nil {
		t = &pb.Transaction{}
	}
	if t.Decimals > ledger.MaxDecimals {
		return fmt.Errorf("%w: asset receipt: decimals %d out of range 0..%d", ErrMalformed, t.Decimals, ledger.MaxDecimals)
	}
	*r = Receipt{
		Network: m.Network,
		Transaction: ledger.Transaction{
			ID:             t.Id,
			LedgerID:       t.LedgerId,
			Operation:      ledger.Operation(t.Operation),
			Asset:          t.Asset,
			From:           t.From,
			To:             t.To,
			Quantity:       t.Quantity,
			HoldID:         t.HoldId,
			Decimals:       int(t.Decimals),
			IdempotencyKey: t.IdempotencyKey,
			Version:        t.Version,
			Hash:           t.Hash,
			PrevHash:       t.PrevHash,
			Timestamp:      fromUnixNanos(t.Timestamp),
		},
		RequestHash:  m.RequestHash,
		RequesterOrg: m.RequesterOrg,
		OwnerOrg:     m.OwnerOrg,
		Peer:         p,
		SignedAt:     fromUnixNanos(m.SignedAt),
		Chain:        m.Chain,
	}
	return nil
}

// Validate checks the receipt's fields, not its signer: the transaction's
// ids, known operation, canonical asset resource id, quantity shape,
// idempotency key, version, hash and timestamp; the request hash (hex
// SHA-256); the orgs; peer, signing time and chain. The error wraps
// ErrMalformed and names the field.
func (r *Receipt) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: asset receipt: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	wrap := func(field string, err error) error {
		return fmt.Errorf("%w: asset receipt: %s: %w", ErrMalformed, field, err)
	}
	if r.Network == "" {
		return bad("missing network")
	}
	tx := r.Transaction
	if err := ledger.CheckID("transaction id", tx.ID); err != nil {
		return wrap("transaction", err)
	}
	if err := ledger.CheckID("ledger id", tx.LedgerID); err != nil {
		return wrap("transaction "+tx.ID, err)
	}
	switch tx.Operation {
	case ledger.OpCreateAsset, ledger.OpIssue, ledger.OpTransfer, ledger.OpRedeem, ledger.OpHold, ledger.OpRelease, ledger.OpRollback:
	case "":
		return bad("transaction %s: missing operation", tx.ID)
	default:
		return bad("transaction %s: unknown operation %q", tx.ID, tx.Operation)
	}
	if tx.Asset == "" {
		return bad("transaction %s: missing asset", tx.ID)
	}
	id, err := resource.ParseID(tx.Asset)
	if err != nil {
		return wrap("transaction "+tx.ID+": asset", err)
	}
	if id.String() != tx.Asset {
		return bad("transaction %s: asset %q is not in canonical form %q", tx.ID, tx.Asset, id.String())
	}
	for _, f := range []struct{ name, value string }{{"from", tx.From}, {"to", tx.To}, {"hold_id", tx.HoldID}, {"prev_hash", tx.PrevHash}} {
		if f.value == "" {
			continue
		}
		if err := ledger.CheckID(f.name, f.value); err != nil {
			return wrap("transaction "+tx.ID, err)
		}
	}
	if tx.Quantity != "" {
		if _, err := ledger.ParseAmount(tx.Quantity, ledger.MaxDecimals); err != nil {
			return wrap("transaction "+tx.ID+": quantity", err)
		}
	}
	if err := ledger.CheckIdempotencyKey(tx.IdempotencyKey); err != nil {
		return wrap("transaction "+tx.ID, err)
	}
	if tx.Version == 0 {
		return bad("transaction %s: version 0; versions start at 1", tx.ID)
	}
	if err := ledger.CheckID("hash", tx.Hash); err != nil {
		return wrap("transaction "+tx.ID, err)
	}
	if err := checkTime("timestamp", tx.Timestamp); err != nil {
		return bad("transaction %s: %v", tx.ID, err)
	}
	if tx.Decimals < 0 || tx.Decimals > ledger.MaxDecimals {
		return bad("transaction %s: decimals %d out of range 0..%d", tx.ID, tx.Decimals, ledger.MaxDecimals)
	}
	if !isHexHash(r.RequestHash) {
		return bad("request hash %q is not a lowercase hex SHA-256", r.RequestHash)
	}
	for _, o := range []struct{ name, org string }{{"requester org", r.RequesterOrg}, {"owner org", r.OwnerOrg}} {
		if o.org == "" {
			return bad("missing %s", o.name)
		}
		if err := governance.ValidateOrgID(o.org); err != nil {
			return wrap(o.name, err)
		}
	}
	if r.Peer == "" {
		return bad("missing peer")
	}
	if err := checkTime("signing time", r.SignedAt); err != nil {
		return bad("%v", err)
	}
	if len(r.Chain) == 0 {
		return bad("missing certificate chain")
	}
	return nil
}

func isHexHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// checkOwner checks that the receipt's owner org is its asset's org.
func (r *Receipt) checkOwner() error {
	id := resource.MustParseID(r.Transaction.Asset) // Validate parsed it
	if id.Org() != r.OwnerOrg {
		return fmt.Errorf("%w: asset receipt of transaction %s on %s, an asset of org %q, names owner org %q", ErrForged, r.Transaction.ID, id, id.Org(), r.OwnerOrg)
	}
	return nil
}

// SealReceipt signs r with the key of one of the owner org's nodes and
// returns the signed envelope's bytes. It fills in r.Peer from the key and
// r.SignedAt with the current time where they are empty, and refuses an
// invalid receipt, an owner org that is not the asset's, a chain whose
// leaf is not key's certificate and a result over MaxReceiptSize.
func SealReceipt(r *Receipt, key crypto.PrivKey) ([]byte, error) {
	if r == nil {
		return nil, fmt.Errorf("seal asset receipt: %w: no receipt", ErrMalformed)
	}
	if err := signerPeer(&r.Peer, key); err != nil {
		return nil, fmt.Errorf("seal asset receipt: %w", err)
	}
	if r.SignedAt.IsZero() {
		r.SignedAt = time.Now()
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("seal asset receipt: %w", err)
	}
	if err := r.checkOwner(); err != nil {
		return nil, fmt.Errorf("seal asset receipt: %w", err)
	}
	if err := checkLeafKey(r.Chain, key); err != nil {
		return nil, fmt.Errorf("seal asset receipt of transaction %s: %w", r.Transaction.ID, err)
	}
	return seal("asset receipt of transaction "+r.Transaction.ID, r, key, MaxReceiptSize)
}

// Answers checks that the receipt answers req, whose sealed bytes hash to
// requestHash: same request hash, network and requester org, and a
// transaction of the request's operation, asset and idempotency key with
// the accounts, hold and quantity (compared as numbers) the request named.
// The requester checks it before taking the receipt as its answer. The
// error wraps ErrMismatch and names the field.
func (r *Receipt) Answers(req *Request, requestHash string) error {
	tx := r.Transaction
	for _, f := range []struct {
		name, got, want string
		named           bool
	}{
		{"request hash", r.RequestHash, requestHash, true},
		{"network", r.Network, req.Network, true},
		{"requester org", r.RequesterOrg, req.RequesterOrg, true},
		{"operation", string(tx.Operation), string(req.Operation), true},
		{"asset", tx.Asset, req.Asset, true},
		{"idempotency key", tx.IdempotencyKey, req.IdempotencyKey, true},
		{"from", tx.From, req.From, req.From != ""},
		{"to", tx.To, req.To, req.To != ""},
		{"hold id", tx.HoldID, req.HoldID, req.HoldID != ""},
	} {
		if f.named && f.got != f.want {
			return fmt.Errorf("%w: receipt of transaction %s has %s %q, the request %q", ErrMismatch, tx.ID, f.name, f.got, f.want)
		}
	}
	if req.Quantity != "" {
		want, err := ledger.ParseAmount(req.Quantity, ledger.MaxDecimals)
		if err != nil {
			return fmt.Errorf("%w: request quantity: %w", ErrMismatch, err)
		}
		got, err := ledger.ParseAmount(tx.Quantity, ledger.MaxDecimals)
		if err != nil || got.Cmp(want) != 0 {
			return fmt.Errorf("%w: receipt of transaction %s has quantity %q, the request %q", ErrMismatch, tx.ID, tx.Quantity, req.Quantity)
		}
	}
	return nil
}

// VerifiedReceipt is an asset receipt that passed ReceiptVerifier.Verify.
type VerifiedReceipt struct {
	// Receipt is the decoded receipt.
	Receipt *Receipt
	// Signer is what the signer's certificate chain proved at SignedAt.
	Signer governance.Member
	// Sealed is the signed envelope.
	Sealed []byte
}

// ReceiptVerifier checks asset receipts offline, at any time after they
// were signed: the signer's certificate is checked at the receipt's signing
// time, so a receipt stays valid after the certificate expires, or is
// revoked after the signing.
type ReceiptVerifier struct {
	// Network is this node's genesis network name.
	Network string
	// Trust verifies the signer's certificate chain against the founding
	// roots; its revocation lists say whether the signer was revoked when
	// it signed.
	Trust *governance.TrustStore
}

// Verify checks a sealed asset receipt: size, envelope signature, payload
// type and encoding, network, that the signing key is the named peer's,
// the fields (Validate), that the owner org is the asset's, that the
// signer's certificate chain verified at SignedAt and holds the signing
// key, that it certifies the owner org, and that neither it nor its CA was
// revoked at or before SignedAt. The error says which check failed.
//
// A node that accepts a receipt as a fresh answer should also check that
// SignedAt is recent: a signer whose key leaked could backdate it.
func (v *ReceiptVerifier) Verify(sealed []byte) (*VerifiedReceipt, error) {
	var r Receipt
	env, err := openEnvelope("asset receipt", sealed, MaxReceiptSize, &r)
	if err != nil {
		return nil, err
	}
	if v.Network == "" || v.Trust == nil {
		return nil, errors.New("asset receipt verifier has no network or trust store")
	}
	if r.Network != v.Network {
		return nil, fmt.Errorf("%w: asset receipt for network %q, this node is on %q", ErrWrongNetwork, r.Network, v.Network)
	}
	signer, err := peer.IDFromPublicKey(env.PublicKey)
	if err != nil || signer != r.Peer {
		return nil, fmt.Errorf("%w: asset receipt names peer %s but is signed by %s", ErrForged, r.Peer, describeKey(env.PublicKey))
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if err := r.checkOwner(); err != nil {
		return nil, err
	}
	what := "asset receipt of transaction " + r.Transaction.ID
	m, err := v.signer(what, r.Chain, env.PublicKey, r.SignedAt)
	if err != nil {
		return nil, err
	}
	if m.OrgID != r.OwnerOrg {
		return nil, fmt.Errorf("%w: %s on asset %s of org %q is signed by peer %s of org %q", ErrForged, what, r.Transaction.Asset, r.OwnerOrg, m.PeerID, m.OrgID)
	}
	return &VerifiedReceipt{Receipt: &r, Signer: m, Sealed: slices.Clone(sealed)}, nil
}

// signer verifies the signer's chain at the signing time at. The trust
// store refuses a revoked certificate whatever its revocation time, but a
// receipt signed before the revocation stays valid: then the chain is
// verified against the founding roots alone, and the revocation times of
// its certificates are compared with at.
func (v *ReceiptVerifier) signer(what string, chain [][]byte, key crypto.PubKey, at time.Time) (governance.Member, error) {
	m, err := v.Trust.VerifySigner(chain, key, at)
	if err == nil {
		return m, nil
	}
	if !errors.Is(err, governance.ErrRevoked) {
		return governance.Member{}, signerError(what, err)
	}
	roots, rerr := governance.NewTrustStore(v.Trust.Roots())
	if rerr != nil {
		return governance.Member{}, signerError(what, err)
	}
	m, rerr = roots.VerifySigner(chain, key, at)
	if rerr != nil {
		return governance.Member{}, signerError(what, rerr)
	}
	revokedLater := false
	for _, c := range m.Chain {
		revoked, since := v.Trust.IsRevoked(c)
		if !revoked {
			continue
		}
		if !since.After(at) {
			return governance.Member{}, fmt.Errorf("%w: %s signed at %s: certificate %q (serial %s) was revoked at %s: %w",
				ErrRevoked, what, at.UTC().Format(time.RFC3339Nano), c.Subject.String(), c.SerialNumber.Text(16), since.UTC().Format(time.RFC3339), governance.ErrRevoked)
		}
		revokedLater = true
	}
	if !revokedLater {
		// The trust store and its revocation lists disagree; refuse.
		return governance.Member{}, signerError(what, err)
	}
	return m, nil
}
