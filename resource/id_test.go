package resource_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/finp2p/go-finp2p/resource"
)

const testUUID = "9929ccaf-8967-4ba3-9198-a4b8e3128388"

// validIDs are canonical ids with their parts; each is also tested in URI
// form.
var validIDs = []struct {
	canonical, org, typ, local string
}{
	{"bank-x:102:" + testUUID, "bank-x", "102", testUUID},
	{"bank-x:101:02a1633cafcc01ebfb6d78e39f687a1f0995c62fc95f51ead10a02ee0be551b5dc", "bank-x", "101", "02a1633cafcc01ebfb6d78e39f687a1f0995c62fc95f51ead10a02ee0be551b5dc"},
	{"org.example:105:a", "org.example", "105", "a"},
	{"0rg:106:plan-1", "0rg", "106", "plan-1"},
	{"b:100:~", "b", "100", "~"},
	{"b:999:A.b_c~d-E", "b", "999", "A.b_c~d-E"},
	{"finp2p:102:x", "finp2p", "102", "x"},
	{"bank-x:acme.loan:L-1", "bank-x", "acme.loan", "L-1"},
	{"bank-x:acme-corp.loan.v2:x", "bank-x", "acme-corp.loan.v2", "x"},
	{"bank-x:a.b:...", "bank-x", "a.b", "..."},
	{"bank-x:" + strings.Repeat("a", 32) + ".b:x", "bank-x", strings.Repeat("a", 32) + ".b", "x"},
	{strings.Repeat("o", 63) + ":102:" + strings.Repeat("z", 128), strings.Repeat("o", 63), "102", strings.Repeat("z", 128)},
}

func TestParseIDValid(t *testing.T) {
	for _, tc := range validIDs {
		t.Run(tc.canonical, func(t *testing.T) {
			uri := "finp2p://" + tc.org + "/" + tc.typ + "/" + tc.local
			for _, s := range []string{tc.canonical, uri} {
				id, err := resource.ParseID(s)
				if err != nil {
					t.Fatalf("ParseID(%q): %v", s, err)
				}
				if id.Org() != tc.org || id.Type() != tc.typ || id.Local() != tc.local {
					t.Errorf("ParseID(%q) = (%q, %q, %q), want (%q, %q, %q)", s, id.Org(), id.Type(), id.Local(), tc.org, tc.typ, tc.local)
				}
				if id.String() != tc.canonical || id.URI() != uri {
					t.Errorf("ParseID(%q): String %q, URI %q; want %q, %q", s, id.String(), id.URI(), tc.canonical, uri)
				}
				if id.IsZero() {
					t.Errorf("ParseID(%q) is zero", s)
				}
				for _, again := range []string{id.String(), id.URI()} {
					if back, err := resource.ParseID(again); err != nil || back != id {
						t.Errorf("ParseID(%q) = %v, %v; want %v", again, back, err, id)
					}
				}
				if n, err := resource.NewID(tc.org, tc.typ, tc.local); err != nil || n != id {
					t.Errorf("NewID = %v, %v; want %v", n, err, id)
				}
			}
		})
	}
}

func TestParseIDInvalid(t *testing.T) {
	long := strings.Repeat("z", 129)
	for _, tc := range []struct {
		in    string
		parts []string // what the error must mention
	}{
		{"", []string{"empty"}},
		{"bank-x", []string{"missing type and id"}},
		{"bank-x:102", []string{"missing id part", "org:type:id"}},
		{":102:x", []string{"org part"}},
		{"Bank-X:102:x", []string{"org part"}},
		{" bank-x:102:x", []string{"org part"}},
		{"-bank:102:x", []string{"org part"}},
		{strings.Repeat("o", 64) + ":102:x", []string{"org part"}},
		{"bank-x::x", []string{"type part", "empty"}},
		{"bank-x:loan:x", []string{"type part", "vendor.name"}},
		{"bank-x:0102:x", []string{"type part", "leading zeros"}},
		{"bank-x:099:x", []string{"type part", "leading zeros"}},
		{"bank-x:99:x", []string{"type part", "100-999"}},
		{"bank-x:1000:x", []string{"type part", "100-999"}},
		{"bank-x:+102:x", []string{"type part"}},
		{"bank-x:102a:x", []string{"type part", "100-999"}},
		{"bank-x:Acme.Loan:x", []string{"type part", "lowercase"}},
		{"bank-x:acme..loan:x", []string{"type part", "empty"}},
		{"bank-x:acme.:x", []string{"type part", "empty"}},
		{"bank-x:.acme.loan:x", []string{"type part", "empty"}},
		{"bank-x:1acme.loan:x", []string{"type part", "100-999"}},
		{"bank-x:acme.1loan:x", []string{"type part", `"1loan"`, "letter"}},
		{"bank-x:acme.loan_x:x", []string{"type part", `'_'`}},
		{"bank-x:acme." + strings.Repeat("l", 33) + ":x", []string{"type part", "at most 32"}},
		{"bank-x:" + strings.Repeat("a.", 64) + "b:x", []string{"type part", "at most 128"}},
		{"bank-x:102:", []string{"id part", "empty"}},
		{"bank-x:102:a:b", []string{"id part", "':'"}},
		{"bank-x:102:a/b", []string{"id part", "'/'"}},
		{"bank-x:102:a b", []string{"id part", "' '"}},
		{"bank-x:102:x ", []string{"id part", "' '"}},
		{"bank-x:102:x\n", []string{"id part", `'\n'`}},
		{"bank-x:102:a%20b", []string{"id part", "'%'"}},
		{"bank-x:102:caf\u00e9", []string{"id part", "non-ASCII"}},
		{"bank-x:102:" + long, []string{"id part", "at most 128"}},
		{"bank-x:102:.", []string{"id part", "dot segments"}},
		{"bank-x:102:..", []string{"id part", "dot segments"}},
		{"bank-x/102/x", []string{"missing type and id"}},
		{"finp2p://bank-x", []string{"missing type and id", "finp2p://org/type/id"}},
		{"finp2p://bank-x/102", []string{"missing id part", "finp2p://org/type/id"}},
		{"finp2p://bank-x/102/x/y", []string{"id part", "'/'"}},
		{"finp2p://bank-x/102/x/", []string{"id part", "'/'"}},
		{"finp2p:///102/x", []string{"org part"}},
		{"finp2p://user@bank-x/102/x", []string{"org part"}},
		{"finp2p://bank-x:4001/102/x", []string{"org part"}},
		{"finp2p://bank-x//x", []string{"type part", "empty"}},
		{"finp2p://bank-x/102/a%2Fb", []string{"id part", "'%'"}},
		{"finp2p://bank-x/102/x?v=1", []string{"query or fragment"}},
		{"finp2p://bank-x/102/x#f", []string{"query or fragment"}},
		{"finp2p://bank-x:102:x", []string{"missing type and id"}},
		{"FINP2P://bank-x/102/x", []string{"scheme", `"FINP2P"`}},
		{"https://bank-x/102/x", []string{"scheme", `"https"`}},
		{" finp2p://bank-x/102/x", []string{"scheme"}},
		{"finp2p:/bank-x/102/x", []string{"finp2p://"}},
		{"Finp2p:/bank-x/102/x", []string{"finp2p://"}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			id, err := resource.ParseID(tc.in)
			if err == nil {
				t.Fatalf("ParseID(%q) = %v, want an error", tc.in, id)
			}
			if !errors.Is(err, resource.ErrBadID) {
				t.Errorf("error %q does not wrap ErrBadID", err)
			}
			if !id.IsZero() {
				t.Errorf("ParseID(%q) returned %v with its error", tc.in, id)
			}
			for _, p := range tc.parts {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("error %q does not mention %q", err, p)
				}
			}
		})
	}
}

func TestNewIDInvalid(t *testing.T) {
	for _, tc := range []struct{ org, typ, local, part string }{
		{"", "102", "x", "org part"},
		{"bank-x", "loan", "x", "type part"},
		{"bank-x", "102", "", "id part"},
		{"bank-x", "102", "a:b", "id part"},
	} {
		_, err := resource.NewID(tc.org, tc.typ, tc.local)
		if !errors.Is(err, resource.ErrBadID) || !strings.Contains(err.Error(), tc.part) {
			t.Errorf("NewID(%q, %q, %q) = %v, want ErrBadID naming %s", tc.org, tc.typ, tc.local, err, tc.part)
		}
	}
}

func TestMustParseID(t *testing.T) {
	if id := resource.MustParseID("bank-x:102:a"); id.Local() != "a" {
		t.Errorf("MustParseID = %v", id)
	}
	defer func() {
		if recover() == nil {
			t.Error("MustParseID of a bad id did not panic")
		}
	}()
	resource.MustParseID("bank-x:loan:a")
}

func TestZeroID(t *testing.T) {
	var id resource.ID
	if !id.IsZero() || id.String() != "" || id.URI() != "" {
		t.Errorf("zero ID: IsZero %v, String %q, URI %q", id.IsZero(), id.String(), id.URI())
	}
	if _, err := id.MarshalText(); !errors.Is(err, resource.ErrBadID) {
		t.Errorf("zero ID MarshalText error = %v, want ErrBadID", err)
	}
	if _, err := json.Marshal(struct{ R resource.ID }{}); err == nil {
		t.Error("JSON of a zero ID succeeded")
	}
	out, err := json.Marshal(struct {
		R resource.ID `json:"r,omitzero"`
	}{})
	if err != nil || string(out) != "{}" {
		t.Errorf("omitzero: %s, %v", out, err)
	}
}

func TestIDJSON(t *testing.T) {
	type doc struct {
		R resource.ID         `json:"r"`
		M map[resource.ID]int `json:"m"`
	}
	id := resource.MustParseID("bank-x:102:" + testUUID)
	out, err := json.Marshal(doc{R: id, M: map[resource.ID]int{id: 1}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"r":"bank-x:102:` + testUUID + `","m":{"bank-x:102:` + testUUID + `":1}}`
	if string(out) != want {
		t.Errorf("JSON %s, want %s", out, want)
	}
	var back doc
	if err := json.Unmarshal(out, &back); err != nil || back.R != id || back.M[id] != 1 {
		t.Errorf("JSON round trip: %+v, %v", back, err)
	}
	// Either form is read; the canonical form is written.
	if err := json.Unmarshal([]byte(`{"r":"finp2p://bank-x/102/`+testUUID+`"}`), &back); err != nil || back.R != id {
		t.Errorf("URI form in JSON: %v, %v", back.R, err)
	}
	err = json.Unmarshal([]byte(`{"r":"bank-x:loan:1"}`), &back)
	if !errors.Is(err, resource.ErrBadID) {
		t.Errorf("bad id in JSON: %v, want ErrBadID", err)
	}
	if err := json.Unmarshal([]byte(`{"r":""}`), &back); !errors.Is(err, resource.ErrBadID) {
		t.Errorf("empty id in JSON: %v, want ErrBadID", err)
	}
}

func TestTypeName(t *testing.T) {
	for typ, want := range map[string]string{
		resource.TypeOwner:         "owner",
		resource.TypeAsset:         "asset",
		resource.TypeIntent:        "intent",
		resource.TypeExecutionPlan: "execution plan",
		"103":                      "",
		"acme.loan":                "acme.loan",
		"loan":                     "",
		"0102":                     "",
		"":                         "",
	} {
		if got := resource.TypeName(typ); got != want {
			t.Errorf("TypeName(%q) = %q, want %q", typ, got, want)
		}
	}
}

// TestIDComparable checks that both forms give one map key.
func TestIDComparable(t *testing.T) {
	m := map[resource.ID]bool{resource.MustParseID("bank-x:102:a"): true}
	if !m[resource.MustParseID("finp2p://bank-x/102/a")] {
		t.Error("URI form is another map key than the canonical form")
	}
}
