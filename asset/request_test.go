package asset_test

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/finp2p/go-finp2p/asset"
	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/ledger"
	"github.com/finp2p/go-finp2p/resource"
)

func TestRequestRoundTrip(t *testing.T) {
	f := newFixture(t)
	for _, edit := range []func(*asset.Request){
		nil,
		func(r *asset.Request) { r.Operation, r.From = ledger.OpIssue, "" },
		func(r *asset.Request) { r.Operation, r.To = ledger.OpRedeem, "" },
		func(r *asset.Request) { r.Operation, r.To = ledger.OpHold, "" },
		func(r *asset.Request) { r.Operation, r.From, r.Quantity, r.HoldID = ledger.OpRelease, "", "", "hold-1" },
		func(r *asset.Request) {
			r.Operation, r.From, r.To, r.Quantity, r.HoldID = ledger.OpRollback, "", "", "", "hold-1"
		},
	} {
		want := f.request(edit)
		sealed, err := asset.SealRequest(f.request(edit), f.bankA.key)
		if err != nil {
			t.Fatal(err)
		}
		vr, err := f.reqV.Open(sealed)
		if err != nil {
			t.Fatalf("%s: %v", want.Operation, err)
		}
		got := *vr.Request
		if !got.Timestamp.Equal(want.Timestamp) {
			t.Fatalf("%s: timestamp %v, want %v", want.Operation, got.Timestamp, want.Timestamp)
		}
		got.Timestamp = want.Timestamp
		if !reflect.DeepEqual(&got, want) {
			t.Fatalf("%s: opened\n%+v\nwant\n%+v", want.Operation, got, *want)
		}
		if vr.Hash != asset.RequestHash(sealed) || len(vr.Hash) != 64 || !bytes.Equal(vr.Sealed, sealed) {
			t.Fatalf("hash %q, sealed equal %v", vr.Hash, bytes.Equal(vr.Sealed, sealed))
		}
		if vr.Signer.OrgID != "bank-a" || vr.Signer.PeerID != f.bankA.id || vr.AssetID != resource.MustParseID(testAsset) {
			t.Fatalf("signer %+v, asset %v", vr.Signer, vr.AssetID)
		}
	}
}

func TestSealRequestFillsIn(t *testing.T) {
	f := newFixture(t)
	r := f.request(func(r *asset.Request) { r.Nonce, r.Timestamp, r.Peer = nil, time.Time{}, "" })
	before := time.Now()
	sealed, err := asset.SealRequest(r, f.bankA.key)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Nonce) != asset.NonceSize || r.Peer != f.bankA.id || r.Timestamp.Before(before) || r.Timestamp.After(time.Now()) {
		t.Fatalf("filled in nonce %x, peer %s, timestamp %v", r.Nonce, r.Peer, r.Timestamp)
	}
	f.now = r.Timestamp
	if _, err := f.reqV.Open(sealed); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(asset.NewNonce(), asset.NewNonce()) {
		t.Fatal("two nonces are equal")
	}
	// Two seals of the same request differ only by nonce, so they hash apart.
	a := f.sealRequest(t, func(r *asset.Request) { r.Nonce = nil })
	b := f.sealRequest(t, func(r *asset.Request) { r.Nonce = nil })
	if asset.RequestHash(a) == asset.RequestHash(b) {
		t.Fatal("two seals with fresh nonces hash the same")
	}
}

func TestSealRequestRefuses(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name string
		r    *asset.Request
		want error
		says string
	}{
		{"missing field", f.request(func(r *asset.Request) { r.To = "" }), asset.ErrBadRequest, "missing to"},
		{"peer of another key", f.request(func(r *asset.Request) { r.Peer = f.bankY.id }), asset.ErrForged, "signing key"},
		{"chain of another node", f.request(func(r *asset.Request) { r.Chain = f.bankY.chain }), asset.ErrForged, "leaf certificate"},
		{"oversized", f.request(func(r *asset.Request) { r.Chain = append(r.Chain, make([]byte, 70<<10)) }), asset.ErrTooLarge, "bytes"},
		{"nil", nil, asset.ErrBadRequest, "no request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := asset.SealRequest(c.r, f.bankA.key)
			checkErr(t, err, errs(c.want), c.says)
		})
	}
}

func TestRequestVerifierRefuses(t *testing.T) {
	f := newFixture(t)
	revoked := f.signer(t, "bank-a")
	f.revoke(t, map[*signer]time.Time{&revoked: f.now.Add(-time.Hour)})
	expired := f.recertify(t, f.signer(t, "bank-a"), f.now.Add(-3*time.Hour), time.Hour)

	raw := func(edit func(*asset.Request)) []byte { return rawSeal(t, f.request(edit), f.bankA.key) }
	valid := f.sealRequest(t, nil)
	tampered := bytes.Clone(valid)
	tampered[len(tampered)-1] ^= 1
	// A second payload type field, which protobuf decoding lets win: the
	// signature still verifies, but the bytes are not the sealed ones.
	padded := append(bytes.Clone(valid), 0x12, byte(len("/finp2p/asset-request/1")))
	padded = append(padded, "/finp2p/asset-request/1"...)
	receipt := f.sealReceipt(t, f.bankX, nil)

	type tc struct {
		name   string
		sealed []byte
		want   []error
		says   string
	}
	cases := []tc{
		{"another node's chain", rawSeal(t, f.request(func(r *asset.Request) { r.Peer, r.RequesterOrg = f.bankY.id, "bank-y" }), f.bankY.key), errs(asset.ErrForged, governance.ErrKeyMismatch), "certificate key is not the peer's"},
		{"signer of another org", rawSeal(t, f.request(func(r *asset.Request) { r.Peer, r.Chain = f.bankY.id, f.bankY.chain }), f.bankY.key), errs(asset.ErrForged), `from org "bank-a" is signed by peer ` + f.bankY.id.String() + ` of org "bank-y"`},
		{"peer is not the signing key", rawSeal(t, f.request(nil), f.bankY.key), errs(asset.ErrForged), "names peer " + f.bankA.id.String() + " but is signed by peer " + f.bankY.id.String()},
		{"wrong network", raw(func(r *asset.Request) { r.Network = "other-net" }), errs(asset.ErrWrongNetwork), `"other-net"`},
		{"stale", raw(func(r *asset.Request) { r.Timestamp = f.now.Add(-2*time.Minute - time.Second) }), errs(asset.ErrStaleRequest), "2m1s ago"},
		{"future", raw(func(r *asset.Request) { r.Timestamp = f.now.Add(2*time.Minute + time.Second) }), errs(asset.ErrStaleRequest), "2m1s in the future"},
		{"missing timestamp", raw(func(r *asset.Request) { r.Timestamp = time.Time{} }), errs(asset.ErrBadRequest), "missing timestamp"},
		{"missing operation", raw(func(r *asset.Request) { r.Operation = "" }), errs(asset.ErrBadRequest), "missing operation"},
		{"unknown operation", raw(func(r *asset.Request) { r.Operation = "mint" }), errs(asset.ErrBadRequest), `unknown operation "mint"`},
		{"create-asset", raw(func(r *asset.Request) { r.Operation, r.From, r.To, r.Quantity = ledger.OpCreateAsset, "", "", "" }), errs(asset.ErrBadRequest), "create-asset"},
		{"missing asset", raw(func(r *asset.Request) { r.Asset = "" }), errs(asset.ErrBadRequest), "missing asset"},
		{"bad asset id", raw(func(r *asset.Request) { r.Asset = "bank-x:bond" }), errs(asset.ErrBadRequest, resource.ErrBadID), "asset"},
		{"asset in URI form", raw(func(r *asset.Request) { r.Asset = "finp2p://bank-x/102/bond-1" }), errs(asset.ErrBadRequest), "canonical form"},
		{"negative quantity", raw(func(r *asset.Request) { r.Quantity = "-1" }), errs(asset.ErrBadRequest, ledger.ErrBadQuantity), "negative"},
		{"quantity with exponent", raw(func(r *asset.Request) { r.Quantity = "1e6" }), errs(asset.ErrBadRequest, ledger.ErrBadQuantity), "exponent"},
		{"account with space", raw(func(r *asset.Request) { r.From = "al ice" }), errs(asset.ErrBadRequest, ledger.ErrBadRequest), "from"},
		{"transfer to itself", raw(func(r *asset.Request) { r.To = r.From }), errs(asset.ErrBadRequest), "to itself"},
		{"missing idempotency key", raw(func(r *asset.Request) { r.IdempotencyKey = "" }), errs(asset.ErrBadRequest), "idempotency key"},
		{"short nonce", raw(func(r *asset.Request) { r.Nonce = r.Nonce[:8] }), errs(asset.ErrBadRequest), "nonce of 8 bytes"},
		{"missing requester org", raw(func(r *asset.Request) { r.RequesterOrg = "" }), errs(asset.ErrBadRequest), "requester org"},
		{"missing chain", raw(func(r *asset.Request) { r.Chain = nil }), errs(asset.ErrBadRequest), "certificate chain"},
		{"revoked signer", rawSeal(t, f.request(func(r *asset.Request) { r.Peer, r.Chain = revoked.id, revoked.chain }), revoked.key), errs(asset.ErrRevoked, governance.ErrRevoked), "revoked"},
		{"expired certificate", rawSeal(t, f.request(func(r *asset.Request) { r.Peer, r.Chain = expired.id, expired.chain }), expired.key), errs(governance.ErrExpired), "expired"},
		{"oversized", raw(func(r *asset.Request) { r.Chain = append(r.Chain, make([]byte, 70<<10)) }), errs(asset.ErrTooLarge), "at most 65536"},
		{"tampered byte", tampered, errs(asset.ErrMalformed), "envelope"},
		{"extra field in the envelope", padded, errs(asset.ErrMalformed), "canonical"},
		{"other payload type", rawSeal(t, otherCodec{f.request(nil)}, f.bankA.key), errs(asset.ErrMalformed), "payload type"},
		{"a receipt", receipt, errs(asset.ErrMalformed), "envelope"},
		{"garbage", []byte("not an envelope"), errs(asset.ErrMalformed), "envelope"},
		{"empty", nil, errs(asset.ErrMalformed), "envelope"},
	}
	// Each operation refuses a request missing a field it takes or holding
	// one it does not.
	takes := map[ledger.Operation][]string{
		ledger.OpIssue:    {"to", "quantity"},
		ledger.OpTransfer: {"from", "to", "quantity"},
		ledger.OpRedeem:   {"from", "quantity"},
		ledger.OpHold:     {"from", "quantity"},
		ledger.OpRelease:  {"to", "hold_id"},
		ledger.OpRollback: {"hold_id"},
	}
	field := func(r *asset.Request, name string) *string {
		return map[string]*string{"from": &r.From, "to": &r.To, "quantity": &r.Quantity, "hold_id": &r.HoldID}[name]
	}
	for op, fields := range takes {
		base := func(r *asset.Request) {
			r.Operation = op
			for _, name := range []string{"from", "to", "quantity", "hold_id"} {
				*field(r, name) = ""
			}
			for _, name := range fields {
				*field(r, name) = map[string]string{"from": "alice", "to": "bob", "quantity": "1", "hold_id": "hold-1"}[name]
			}
		}
		if _, err := f.reqV.Open(raw(base)); err != nil {
			t.Fatalf("valid %s: %v", op, err)
		}
		for _, name := range []string{"from", "to", "quantity", "hold_id"} {
			taken := strings.Contains(strings.Join(fields, ","), name)
			c := tc{name: string(op) + " missing " + name, want: errs(asset.ErrBadRequest), says: string(op) + ": missing " + name}
			if !taken {
				c.name, c.says = string(op)+" with "+name, string(op)+" takes no "+name
			}
			c.sealed = raw(func(r *asset.Request) {
				base(r)
				if taken {
					*field(r, name) = ""
				} else {
					*field(r, name) = "x1"
				}
			})
			cases = append(cases, c)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vr, err := f.reqV.Open(c.sealed)
			if vr != nil {
				t.Fatalf("opened %+v", vr.Request)
			}
			checkErr(t, err, c.want, c.says)
		})
	}
}

func TestRequestVerifierWindow(t *testing.T) {
	f := newFixture(t)
	f.reqV.Window = 10 * time.Second
	sealed := f.sealRequest(t, nil)
	for _, d := range []time.Duration{-10 * time.Second, 0, 10 * time.Second} {
		f.now = f.now.Add(d)
		if _, err := f.reqV.Open(sealed); err != nil {
			t.Fatalf("at %s: %v", d, err)
		}
		f.now = f.now.Add(-d)
	}
	f.now = f.now.Add(11 * time.Second)
	_, err := f.reqV.Open(sealed)
	checkErr(t, err, errs(asset.ErrStaleRequest), "11s ago, more than the 10s window")
}
