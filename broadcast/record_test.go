package broadcast_test

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/finp2p/go-finp2p/broadcast"
)

func TestScopeValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		scope broadcast.Scope
		says  string // empty: valid
	}{
		{"all", broadcast.Scope{Kind: broadcast.ScopeAll}, ""},
		{"orgs", broadcast.Scope{Kind: broadcast.ScopeOrgs, Orgs: []string{"bank-a", "bank-b"}}, ""},
		{"ledger", broadcast.Scope{Kind: broadcast.ScopeLedger, Ledger: "bank-x:ledger"}, ""},
		{"closest", broadcast.Scope{Kind: broadcast.ScopeClosest}, ""},
		{"rendezvous", broadcast.Scope{Kind: broadcast.ScopeRendezvous}, ""},
		{"no kind", broadcast.Scope{}, "missing kind"},
		{"unknown kind", broadcast.Scope{Kind: "everyone"}, `unknown kind "everyone"`},
		{"orgs without orgs", broadcast.Scope{Kind: broadcast.ScopeOrgs}, "names no orgs"},
		{"bad org", broadcast.Scope{Kind: broadcast.ScopeOrgs, Orgs: []string{"Bank A"}}, `org "Bank A"`},
		{"org twice", broadcast.Scope{Kind: broadcast.ScopeOrgs, Orgs: []string{"bank-a", "bank-a"}}, `"bank-a" named twice`},
		{"orgs on all", broadcast.Scope{Kind: broadcast.ScopeAll, Orgs: []string{"bank-a"}}, "all scope takes no orgs"},
		{"ledger without ledger", broadcast.Scope{Kind: broadcast.ScopeLedger}, "missing ledger"},
		{"ledger with space", broadcast.Scope{Kind: broadcast.ScopeLedger, Ledger: "a b"}, "space"},
		{"ledger on rendezvous", broadcast.Scope{Kind: broadcast.ScopeRendezvous, Ledger: "l"}, "rendezvous scope takes no ledger"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.scope.Validate()
			if tc.says == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			checkErr(t, err, broadcast.ErrBadScope, tc.says)
		})
	}
}

func TestRequestRoundTrip(t *testing.T) {
	f := newFixture(t)
	r := f.request(func(r *broadcast.Request) { r.ID, r.Peer, r.Encrypted = "", "", true })
	sealed, err := broadcast.SealRequest(r, f.origin.key)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.ID) != 2*broadcast.IDSize || r.Peer != f.origin.id {
		t.Fatalf("SealRequest filled id %q peer %s", r.ID, r.Peer)
	}
	vr, err := f.reqV.Open(sealed)
	if err != nil {
		t.Fatal(err)
	}
	got := *vr.Request
	if !got.Deadline.Equal(r.Deadline) {
		t.Fatalf("deadline %v, want %v", got.Deadline, r.Deadline)
	}
	got.Deadline = r.Deadline
	if !reflect.DeepEqual(&got, r) {
		t.Fatalf("opened %+v\nwant %+v", got, *r)
	}
	if vr.Signer.OrgID != "bank-a" || !bytes.Equal(vr.Sealed, sealed) {
		t.Fatalf("signer %+v", vr.Signer)
	}
	if broadcast.NewRequestID() == broadcast.NewRequestID() {
		t.Fatal("request ids repeat")
	}
}

func TestRequestRefused(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		// sealed builds the request; nil seals f.request(edit) raw.
		edit func(*broadcast.Request)
		now  time.Time // the verifier's clock, f.now if zero
		want error
		says string
	}{
		{name: "wrong network", edit: func(r *broadcast.Request) { r.Network = "other" }, want: broadcast.ErrWrongNetwork, says: `network "other"`},
		{name: "bad id", edit: func(r *broadcast.Request) { r.ID = "xyz" }, want: broadcast.ErrBadRequest, says: `id "xyz"`},
		{name: "no kind", edit: func(r *broadcast.Request) { r.Kind = "" }, want: broadcast.ErrBadRequest, says: "missing kind"},
		{name: "bad scope", edit: func(r *broadcast.Request) { r.Scope = broadcast.Scope{Kind: "nobody"} }, want: broadcast.ErrBadScope, says: "scope"},
		{name: "quorum 0", edit: func(r *broadcast.Request) { r.Quorum = 0 }, want: broadcast.ErrBadRequest, says: "quorum 0"},
		{name: "no deadline", edit: func(r *broadcast.Request) { r.Deadline = time.Time{} }, want: broadcast.ErrBadRequest, says: "missing deadline"},
		{name: "deadline passed", now: f.now.Add(time.Hour), want: broadcast.ErrExpired, says: "deadline"},
		{name: "deadline now", now: f.now.Add(time.Minute), want: broadcast.ErrExpired, says: "deadline"},
		{name: "unknown consistency", edit: func(r *broadcast.Request) { r.Consistency = "loose" }, want: broadcast.ErrBadRequest, says: `consistency "loose"`},
		{name: "other origin org", edit: func(r *broadcast.Request) { r.OriginOrg = "bank-b" }, want: broadcast.ErrForged, says: `org "bank-a"`},
		{name: "other peer", edit: func(r *broadcast.Request) { r.Peer = f.nodes[0].id }, want: broadcast.ErrForged, says: "names peer"},
		{name: "other chain", edit: func(r *broadcast.Request) { r.Chain = f.nodes[0].chain }, want: broadcast.ErrForged, says: "signer's certificate"},
		{name: "no chain", edit: func(r *broadcast.Request) { r.Chain = nil }, want: broadcast.ErrBadRequest, says: "missing certificate chain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sealed := rawSeal(t, f.request(tc.edit), f.origin.key)
			v := *f.reqV
			if !tc.now.IsZero() {
				v.Now = func() time.Time { return tc.now }
			}
			_, err := v.Open(sealed)
			checkErr(t, err, tc.want, tc.says)
			t.Log(err)
		})
	}
	t.Run("bad signature", func(t *testing.T) {
		sealed := rawSeal(t, f.request(nil), f.origin.key)
		sealed[len(sealed)-1] ^= 1
		_, err := f.reqV.Open(sealed)
		checkErr(t, err, broadcast.ErrMalformed, "envelope")
	})
	t.Run("too large", func(t *testing.T) {
		_, err := f.reqV.Open(make([]byte, broadcast.MaxRequestSize+1))
		checkErr(t, err, broadcast.ErrTooLarge)
	})
	t.Run("seal refuses", func(t *testing.T) {
		_, err := broadcast.SealRequest(f.request(func(r *broadcast.Request) { r.Quorum = -1 }), f.origin.key)
		checkErr(t, err, broadcast.ErrBadRequest, "quorum -1")
		_, err = broadcast.SealRequest(f.request(func(r *broadcast.Request) { r.Peer, r.Chain = "", f.nodes[0].chain }), f.origin.key)
		checkErr(t, err, broadcast.ErrForged, "not the signing key's")
	})
}

func TestResponseRoundTrip(t *testing.T) {
	f := newFixture(t)
	for _, r := range []*broadcast.Response{
		f.response(f.nodes[0], "100.50", 7, nil),
		f.response(f.nodes[1], "", 0, func(r *broadcast.Response) { r.Answer, r.Error = nil, "cannot answer: ledger not followed" }),
	} {
		key := f.nodes[0].key
		if r.Peer == f.nodes[1].id {
			key = f.nodes[1].key
		}
		want := *r
		r.Peer = "" // SealResponse fills it in
		sealed, err := broadcast.SealResponse(r, key)
		if err != nil {
			t.Fatal(err)
		}
		vr, err := f.respV.Open(sealed)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*vr.Response, want) || vr.Signer.OrgID != want.ResponderOrg {
			t.Fatalf("opened response of %s with answer %q error %q, want answer %q error %q", vr.Response.Peer, vr.Response.Answer, vr.Response.Error, want.Answer, want.Error)
		}
	}
	_, err := broadcast.SealResponse(f.response(f.nodes[0], "1", 1, nil), f.nodes[1].key)
	checkErr(t, err, broadcast.ErrForged, "names peer")
}

func TestResponseRefused(t *testing.T) {
	f := newFixture(t)
	b := f.nodes[0]
	for _, tc := range []struct {
		name string
		edit func(*broadcast.Response)
		want error
		says string
	}{
		{"wrong network", func(r *broadcast.Response) { r.Network = "other" }, broadcast.ErrWrongNetwork, `network "other"`},
		{"bad request id", func(r *broadcast.Response) { r.RequestID = strings.Repeat("AB", 16) }, broadcast.ErrBadResponse, "request id"},
		{"answer and error", func(r *broadcast.Response) { r.Error = "cannot answer" }, broadcast.ErrBadResponse, "both an answer and error"},
		{"long error", func(r *broadcast.Response) { r.Answer, r.Error = nil, strings.Repeat("x", 2000) }, broadcast.ErrBadResponse, "error is 2000 bytes"},
		{"no org", func(r *broadcast.Response) { r.ResponderOrg = "" }, broadcast.ErrBadResponse, "missing responder org"},
		{"other org", func(r *broadcast.Response) { r.ResponderOrg = "bank-c" }, broadcast.ErrForged, `org "bank-b"`},
		{"other peer", func(r *broadcast.Response) { r.Peer = f.origin.id }, broadcast.ErrForged, "names peer"},
		{"other chain", func(r *broadcast.Response) { r.Chain = f.origin.chain }, broadcast.ErrForged, "signer's certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.respV.Open(rawSeal(t, f.response(b, "1", 1, tc.edit), b.key))
			checkErr(t, err, tc.want, tc.says)
			t.Log(err)
		})
	}
	t.Run("request record", func(t *testing.T) {
		// A request's signature is no response's: the domain differs.
		sealed := rawSeal(t, f.request(nil), f.origin.key)
		_, err := f.respV.Open(sealed)
		checkErr(t, err, broadcast.ErrMalformed)
	})
}
