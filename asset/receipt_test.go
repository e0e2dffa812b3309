package asset_test

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/record"
	recordpb "github.com/libp2p/go-libp2p/core/record/pb"
	"google.golang.org/protobuf/proto"

	"github.com/finp2p/go-finp2p/asset"
	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/ledger"
)

// sameReceipt compares receipts, times by instant.
func sameReceipt(t *testing.T, got, want *asset.Receipt) {
	t.Helper()
	g, w := *got, *want
	if !g.SignedAt.Equal(w.SignedAt) || !g.Transaction.Timestamp.Equal(w.Transaction.Timestamp) {
		t.Fatalf("times %v, %v; want %v, %v", g.SignedAt, g.Transaction.Timestamp, w.SignedAt, w.Transaction.Timestamp)
	}
	g.SignedAt, g.Transaction.Timestamp = w.SignedAt, w.Transaction.Timestamp
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("receipt\n%+v\nwant\n%+v", g, w)
	}
}

func TestReceiptRoundTrip(t *testing.T) {
	f := newFixture(t)
	for _, edit := range []func(*asset.Receipt){
		nil,
		func(r *asset.Receipt) {
			r.Transaction.Operation, r.Transaction.From, r.Transaction.To, r.Transaction.Quantity = ledger.OpCreateAsset, "", "", ""
			r.Transaction.Decimals, r.Transaction.PrevHash, r.Transaction.Version = 2, "", 1
		},
		func(r *asset.Receipt) { r.Transaction.Operation, r.Transaction.HoldID = ledger.OpRelease, "hold-1" },
	} {
		want := f.receipt(edit)
		sealed := f.sealReceipt(t, f.bankX, edit)
		vr, err := f.rcptV.Verify(sealed)
		if err != nil {
			t.Fatal(err)
		}
		sameReceipt(t, vr.Receipt, want)
		if vr.Signer.OrgID != "bank-x" || vr.Signer.PeerID != f.bankX.id || !bytes.Equal(vr.Sealed, sealed) {
			t.Fatalf("signer %+v", vr.Signer)
		}
	}
}

func TestSealReceiptRefuses(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		name string
		edit func(*asset.Receipt)
		want error
		says string
	}{
		{"owner org is not the asset's", func(r *asset.Receipt) { r.OwnerOrg = "bank-y" }, asset.ErrForged, `an asset of org "bank-x", names owner org "bank-y"`},
		{"missing transaction id", func(r *asset.Receipt) { r.Transaction.ID = "" }, asset.ErrMalformed, "missing transaction id"},
		{"peer of another key", func(r *asset.Receipt) { r.Peer = f.bankY.id }, asset.ErrForged, "signing key"},
		{"chain of another node", func(r *asset.Receipt) { r.Chain = f.bankY.chain }, asset.ErrForged, "leaf certificate"},
		{"oversized", func(r *asset.Receipt) { r.Chain = append(r.Chain, make([]byte, 70<<10)) }, asset.ErrTooLarge, "bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := asset.SealReceipt(f.receipt(c.edit), f.bankX.key)
			checkErr(t, err, errs(c.want), c.says)
		})
	}
	r := f.receipt(func(r *asset.Receipt) { r.Peer, r.SignedAt = "", time.Time{} })
	if _, err := asset.SealReceipt(r, f.bankX.key); err != nil {
		t.Fatal(err)
	}
	if r.Peer != f.bankX.id || time.Since(r.SignedAt) > time.Minute {
		t.Fatalf("filled in peer %s, signed at %v", r.Peer, r.SignedAt)
	}
}

// TestReceiptTamperedFields swaps the payload of a sealed receipt for one
// with a single field changed, keeping the signature: every field is
// signed.
func TestReceiptTamperedFields(t *testing.T) {
	f := newFixture(t)
	sealed := f.sealReceipt(t, f.bankX, nil)
	var env recordpb.Envelope
	if err := proto.Unmarshal(sealed, &env); err != nil {
		t.Fatal(err)
	}
	edits := map[string]func(*asset.Receipt){
		"network":         func(r *asset.Receipt) { r.Network += "x" },
		"tx id":           func(r *asset.Receipt) { r.Transaction.ID += "x" },
		"ledger id":       func(r *asset.Receipt) { r.Transaction.LedgerID += "x" },
		"operation":       func(r *asset.Receipt) { r.Transaction.Operation = ledger.OpIssue },
		"asset":           func(r *asset.Receipt) { r.Transaction.Asset += "x" },
		"from":            func(r *asset.Receipt) { r.Transaction.From = "mallory" },
		"to":              func(r *asset.Receipt) { r.Transaction.To = "mallory" },
		"quantity":        func(r *asset.Receipt) { r.Transaction.Quantity = "125.0" },
		"hold id":         func(r *asset.Receipt) { r.Transaction.HoldID = "hold-9" },
		"idempotency key": func(r *asset.Receipt) { r.Transaction.IdempotencyKey += "x" },
		"version":         func(r *asset.Receipt) { r.Transaction.Version++ },
		"hash":            func(r *asset.Receipt) { r.Transaction.Hash = strings.Repeat("ee", 32) },
		"prev hash":       func(r *asset.Receipt) { r.Transaction.PrevHash = "" },
		"timestamp":       func(r *asset.Receipt) { r.Transaction.Timestamp = r.Transaction.Timestamp.Add(time.Nanosecond) },
		"decimals":        func(r *asset.Receipt) { r.Transaction.Decimals = 2 },
		"request hash":    func(r *asset.Receipt) { r.RequestHash = strings.Repeat("00", 32) },
		"requester org":   func(r *asset.Receipt) { r.RequesterOrg = "bank-y" },
		"owner org":       func(r *asset.Receipt) { r.OwnerOrg = "bank-y" },
		"peer":            func(r *asset.Receipt) { r.Peer = f.bankY.id },
		"signed at":       func(r *asset.Receipt) { r.SignedAt = r.SignedAt.Add(-time.Hour) },
		"chain":           func(r *asset.Receipt) { r.Chain = r.Chain[:1] },
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			var r asset.Receipt
			if err := r.UnmarshalRecord(env.Payload); err != nil {
				t.Fatal(err)
			}
			edit(&r)
			payload, err := r.MarshalRecord()
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(payload, env.Payload) {
				t.Fatal("the edit does not change the payload")
			}
			swapped := proto.Clone(&env).(*recordpb.Envelope)
			swapped.Payload = payload
			data, err := proto.Marshal(swapped)
			if err != nil {
				t.Fatal(err)
			}
			vr, err := f.rcptV.Verify(data)
			if vr != nil {
				t.Fatalf("verified %+v", vr.Receipt)
			}
			checkErr(t, err, errs(asset.ErrMalformed, record.ErrInvalidSignature))
		})
	}
}

// TestReceiptTamperedBytes flips the lowest and the highest bit of each
// byte of a sealed receipt in turn.
func TestReceiptTamperedBytes(t *testing.T) {
	f := newFixture(t)
	sealed := f.sealReceipt(t, f.bankX, nil)
	if _, err := f.rcptV.Verify(sealed); err != nil {
		t.Fatal(err)
	}
	for i := range sealed {
		for _, bit := range []byte{0x01, 0x80} {
			b := bytes.Clone(sealed)
			b[i] ^= bit
			if vr, err := f.rcptV.Verify(b); err == nil {
				t.Fatalf("byte %d xor %#x: verified %+v", i, bit, vr.Receipt)
			}
		}
	}
	// Bytes added to or cut from the end.
	for _, b := range [][]byte{append(bytes.Clone(sealed), 0), append(bytes.Clone(sealed), 0x2a, 0), sealed[:len(sealed)-1]} {
		if _, err := f.rcptV.Verify(b); err == nil {
			t.Fatalf("verified %d bytes of %d", len(b), len(sealed))
		}
	}
}

func TestReceiptVerifierRefuses(t *testing.T) {
	f := newFixture(t)
	early := f.recertify(t, f.signer(t, "bank-x"), f.now.Add(-3*time.Hour), time.Hour)
	raw := func(s signer, edit func(*asset.Receipt)) []byte {
		return rawSeal(t, f.receipt(func(r *asset.Receipt) {
			r.Peer, r.Chain = s.id, s.chain
			if edit != nil {
				edit(r)
			}
		}), s.key)
	}
	request := f.sealRequest(t, nil)
	for _, c := range []struct {
		name   string
		sealed []byte
		want   []error
		says   string
	}{
		{"signed by another org's node", raw(f.bankY, nil), errs(asset.ErrForged), `on asset ` + testAsset + ` of org "bank-x" is signed by peer ` + f.bankY.id.String() + ` of org "bank-y"`},
		{"owner org is not the asset's", raw(f.bankY, func(r *asset.Receipt) { r.OwnerOrg = "bank-y" }), errs(asset.ErrForged), `names owner org "bank-y"`},
		{"another org's asset", raw(f.bankX, func(r *asset.Receipt) { r.Transaction.Asset = "bank-y:102:bond-1" }), errs(asset.ErrForged), `an asset of org "bank-y", names owner org "bank-x"`},
		{"another node's chain", raw(f.bankX, func(r *asset.Receipt) { r.Chain = f.bankY.chain }), errs(asset.ErrForged, governance.ErrKeyMismatch), "certificate key"},
		{"peer is not the signing key", rawSeal(t, f.receipt(nil), f.bankY.key), errs(asset.ErrForged), "names peer " + f.bankX.id.String()},
		{"wrong network", raw(f.bankX, func(r *asset.Receipt) { r.Network = "other-net" }), errs(asset.ErrWrongNetwork), `"other-net"`},
		{"signed after the certificate expired", raw(early, nil), errs(governance.ErrExpired), "expired"},
		{"signed before the certificate was valid", raw(f.bankX, func(r *asset.Receipt) { r.SignedAt = f.now.Add(-time.Hour) }), errs(governance.ErrNotYetValid), "valid only from"},
		{"missing signing time", raw(f.bankX, func(r *asset.Receipt) { r.SignedAt = time.Time{} }), errs(asset.ErrMalformed), "missing signing time"},
		{"bad request hash", raw(f.bankX, func(r *asset.Receipt) { r.RequestHash = strings.ToUpper(r.RequestHash) }), errs(asset.ErrMalformed), "request hash"},
		{"version 0", raw(f.bankX, func(r *asset.Receipt) { r.Transaction.Version = 0 }), errs(asset.ErrMalformed), "version 0"},
		{"unknown operation", raw(f.bankX, func(r *asset.Receipt) { r.Transaction.Operation = "mint" }), errs(asset.ErrMalformed), `"mint"`},
		{"asset in URI form", raw(f.bankX, func(r *asset.Receipt) { r.Transaction.Asset = "finp2p://bank-x/102/bond-1" }), errs(asset.ErrMalformed), "canonical"},
		{"bad quantity", raw(f.bankX, func(r *asset.Receipt) { r.Transaction.Quantity = "1,5" }), errs(asset.ErrMalformed, ledger.ErrBadQuantity), "quantity"},
		{"missing hash", raw(f.bankX, func(r *asset.Receipt) { r.Transaction.Hash = "" }), errs(asset.ErrMalformed), "missing hash"},
		{"missing ledger timestamp", raw(f.bankX, func(r *asset.Receipt) { r.Transaction.Timestamp = time.Time{} }), errs(asset.ErrMalformed), "missing timestamp"},
		{"missing requester org", raw(f.bankX, func(r *asset.Receipt) { r.RequesterOrg = "" }), errs(asset.ErrMalformed), "requester org"},
		{"missing chain", raw(f.bankX, func(r *asset.Receipt) { r.Chain = nil }), errs(asset.ErrMalformed), "certificate chain"},
		{"oversized", raw(f.bankX, func(r *asset.Receipt) { r.Chain = append(r.Chain, make([]byte, 70<<10)) }), errs(asset.ErrTooLarge), "at most 65536"},
		{"a request", request, errs(asset.ErrMalformed, record.ErrInvalidSignature), "envelope"},
		{"garbage", []byte{0x0a, 0x02, 0x08}, errs(asset.ErrMalformed), "envelope"},
	} {
		t.Run(c.name, func(t *testing.T) {
			vr, err := f.rcptV.Verify(c.sealed)
			if vr != nil {
				t.Fatalf("verified %+v", vr.Receipt)
			}
			checkErr(t, err, c.want, c.says)
		})
	}
}

// TestReceiptCertificateAtSigningTime checks the signer's certificate at
// the receipt's signing time, not now.
func TestReceiptCertificateAtSigningTime(t *testing.T) {
	f := newFixture(t)
	// Valid from now-3h to now-2h: expired now.
	expired := f.recertify(t, f.signer(t, "bank-x"), f.now.Add(-3*time.Hour), time.Hour)
	sealed := f.sealReceipt(t, expired, func(r *asset.Receipt) { r.SignedAt = f.now.Add(-150 * time.Minute) })
	if _, err := f.rcptV.Verify(sealed); err != nil {
		t.Fatalf("receipt signed while the certificate was valid: %v", err)
	}
}

// TestReceiptRevocation: a receipt whose signer was revoked at or before
// it was signed is refused; one revoked later stays valid.
func TestReceiptRevocation(t *testing.T) {
	f := newFixture(t)
	signedAt := f.now.Add(-2 * time.Hour)
	node := func() signer { return f.recertify(t, f.signer(t, "bank-x"), f.now.Add(-3*time.Hour), 6*time.Hour) }
	before, exact, after, never := node(), node(), node(), node()
	f.revoke(t, map[*signer]time.Time{
		&before: signedAt.Add(-time.Minute),
		&exact:  signedAt,
		&after:  signedAt.Add(time.Minute),
	})
	seal := func(s signer) []byte {
		return f.sealReceipt(t, s, func(r *asset.Receipt) { r.SignedAt = signedAt })
	}
	for _, c := range []struct {
		name      string
		s         signer
		revokedAt time.Time // zero: valid
	}{
		{"revoked before signing", before, signedAt.Add(-time.Minute)},
		{"revoked when signing", exact, signedAt},
		{"revoked after signing", after, time.Time{}},
		{"not revoked", never, time.Time{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			vr, err := f.rcptV.Verify(seal(c.s))
			if !c.revokedAt.IsZero() {
				checkErr(t, err, errs(asset.ErrRevoked, governance.ErrRevoked), "revoked at "+c.revokedAt.UTC().Format(time.RFC3339))
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if vr.Signer.PeerID != c.s.id {
				t.Fatalf("signer %s, want %s", vr.Signer.PeerID, c.s.id)
			}
		})
	}
	// A request, checked now, is refused whatever the revocation time.
	sealed := rawSeal(t, f.request(func(r *asset.Request) { r.Peer, r.Chain, r.RequesterOrg = after.id, after.chain, "bank-x" }), after.key)
	_, err := f.reqV.Open(sealed)
	checkErr(t, err, errs(asset.ErrRevoked, governance.ErrRevoked))
}

// TestReceiptCARevocation: the same holds for the governance CA that
// certified the signer.
func TestReceiptCARevocation(t *testing.T) {
	signedAt := time.Now().Truncate(time.Second).Add(-2 * time.Hour)
	for _, c := range []struct {
		name      string
		revokedAt time.Time
		valid     bool
	}{{"CA revoked before signing", signedAt.Add(-time.Minute), false}, {"CA revoked after signing", signedAt.Add(time.Minute), true}} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			s := f.recertify(t, f.bankX, f.now.Add(-3*time.Hour), 6*time.Hour)
			sealed := f.sealReceipt(t, s, func(r *asset.Receipt) { r.SignedAt = signedAt })
			if err := f.net.Founding.Revoke(f.net.Governance.Certificate().SerialNumber, 1, c.revokedAt); err != nil {
				t.Fatal(err)
			}
			crl, err := f.net.Founding.CRL(f.now, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.trust.AddCRL(crl, [][]byte{f.net.Founding.Certificate().Raw}, f.now); err != nil {
				t.Fatal(err)
			}
			_, err = f.rcptV.Verify(sealed)
			if c.valid && err != nil {
				t.Fatal(err)
			}
			if !c.valid {
				checkErr(t, err, errs(asset.ErrRevoked, governance.ErrRevoked), "revoked at "+c.revokedAt.UTC().Format(time.RFC3339))
			}
		})
	}
}

func TestReceiptAnswers(t *testing.T) {
	f := newFixture(t)
	req := f.request(nil)
	sealed, err := asset.SealRequest(req, f.bankA.key)
	if err != nil {
		t.Fatal(err)
	}
	hash := asset.RequestHash(sealed)
	// The ledger writes the quantity with the asset's decimals.
	r := f.receipt(func(r *asset.Receipt) { r.RequestHash = hash })
	if err := r.Answers(req, hash); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*asset.Receipt){
		"request hash":    func(r *asset.Receipt) { r.RequestHash = strings.Repeat("00", 32) },
		"network":         func(r *asset.Receipt) { r.Network = "other" },
		"requester org":   func(r *asset.Receipt) { r.RequesterOrg = "bank-y" },
		"operation":       func(r *asset.Receipt) { r.Transaction.Operation = ledger.OpHold },
		"asset":           func(r *asset.Receipt) { r.Transaction.Asset = "bank-x:102:bond-2" },
		"idempotency key": func(r *asset.Receipt) { r.Transaction.IdempotencyKey = "other" },
		"from":            func(r *asset.Receipt) { r.Transaction.From = "carol" },
		"to":              func(r *asset.Receipt) { r.Transaction.To = "carol" },
		"quantity":        func(r *asset.Receipt) { r.Transaction.Quantity = "12.51" },
	} {
		r := f.receipt(func(r *asset.Receipt) { r.RequestHash = hash })
		edit(r)
		checkErr(t, r.Answers(req, hash), errs(asset.ErrMismatch), name)
	}
	// A release names no quantity or holder: the receipt's are the hold's.
	rel := f.request(func(r *asset.Request) { r.Operation, r.From, r.Quantity, r.HoldID = ledger.OpRelease, "", "", "hold-1" })
	rr := f.receipt(func(r *asset.Receipt) {
		r.RequestHash, r.Transaction.Operation, r.Transaction.HoldID = hash, ledger.OpRelease, "hold-1"
	})
	if err := rr.Answers(rel, hash); err != nil {
		t.Fatal(err)
	}
	rr.Transaction.HoldID = "hold-2"
	checkErr(t, rr.Answers(rel, hash), errs(asset.ErrMismatch), "hold id")
}
