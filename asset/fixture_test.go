package asset_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"

	"github.com/finp2p/go-finp2p/asset"
	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/testnet"
	"github.com/finp2p/go-finp2p/ledger"
	"github.com/finp2p/go-finp2p/node"
)

// testAsset is an asset of bank-x, the owner org in these tests; bank-a
// requests transactions on it and bank-y is a third org.
const testAsset = "bank-x:102:bond-1"

// signer is a certified node that signs requests or receipts.
type signer struct {
	org   string
	key   crypto.PrivKey
	id    peer.ID
	chain [][]byte
	leaf  *x509.Certificate
	repo  string
}

type fixture struct {
	net   *testnet.Network
	trust *governance.TrustStore
	// now is the clock of the request verifier; receipts are signed at now.
	now   time.Time
	reqV  *asset.RequestVerifier
	rcptV *asset.ReceiptVerifier
	bankA signer // the requester
	bankX signer // the asset owner's primary node
	bankY signer // another org
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	net := testnet.NewEmpty(t)
	g, err := governance.LoadGenesis(net.GenesisFile)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := g.RootCertificates()
	if err != nil {
		t.Fatal(err)
	}
	trust, err := governance.NewTrustStore(roots)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{net: net, trust: trust, now: time.Now().Truncate(time.Second)}
	f.reqV = &asset.RequestVerifier{Network: testnet.NetworkName, Trust: trust, Now: func() time.Time { return f.now }}
	f.rcptV = &asset.ReceiptVerifier{Network: testnet.NetworkName, Trust: trust}
	f.bankA, f.bankX, f.bankY = f.signer(t, "bank-a"), f.signer(t, "bank-x"), f.signer(t, "bank-y")
	return f
}

// signer creates and certifies a member node of org.
func (f *fixture) signer(t testing.TB, org string) signer {
	t.Helper()
	return loadSigner(t, org, f.net.Repo(org, governance.RoleMember, f.net.Governance))
}

// recertify has the governance CA certify s's key again, valid from
// notBefore for validity, and returns s with the new chain.
func (f *fixture) recertify(t testing.TB, s signer, notBefore time.Time, validity time.Duration) signer {
	t.Helper()
	f.net.Certify(s.repo, f.net.Governance, notBefore, validity)
	return loadSigner(t, s.org, s.repo)
}

func loadSigner(t testing.TB, org, repo string) signer {
	t.Helper()
	ed, err := governance.ReadKeyFile(filepath.Join(repo, node.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	key, err := crypto.UnmarshalEd25519PrivateKey(ed)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := governance.LoadCertificatesPEM(filepath.Join(repo, node.CertFileName))
	if err != nil {
		t.Fatal(err)
	}
	s := signer{org: org, key: key, leaf: certs[0], repo: repo}
	s.id, _ = peer.IDFromPrivateKey(key)
	for _, c := range certs {
		s.chain = append(s.chain, c.Raw)
	}
	return s
}

// revoke revokes the leaf of each signer at its time, and gives the trust
// store the governance CA's new revocation list.
func (f *fixture) revoke(t testing.TB, at map[*signer]time.Time) {
	t.Helper()
	for s, when := range at {
		if err := f.net.Governance.Revoke(s.leaf.SerialNumber, 1, when); err != nil {
			t.Fatal(err)
		}
	}
	crl, err := f.net.Governance.CRL(f.now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.trust.AddCRL(crl, [][]byte{f.net.Governance.Certificate().Raw}, f.now); err != nil {
		t.Fatal(err)
	}
}

// request returns a valid transfer request of bank-a, edited by edit.
func (f *fixture) request(edit func(*asset.Request)) *asset.Request {
	r := &asset.Request{
		Network:        testnet.NetworkName,
		Operation:      ledger.OpTransfer,
		Asset:          testAsset,
		From:           "alice",
		To:             "bob",
		Quantity:       "12.5",
		IdempotencyKey: "transfer-1",
		Nonce:          bytes.Repeat([]byte{7}, asset.NonceSize),
		Timestamp:      f.now,
		RequesterOrg:   "bank-a",
		Peer:           f.bankA.id,
		Chain:          f.bankA.chain,
	}
	if edit != nil {
		edit(r)
	}
	return r
}

// sealRequest seals a valid request of bank-a with SealRequest.
func (f *fixture) sealRequest(t testing.TB, edit func(*asset.Request)) []byte {
	t.Helper()
	sealed, err := asset.SealRequest(f.request(edit), f.bankA.key)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

// receipt returns a valid receipt of bank-x for a transfer, edited by edit.
func (f *fixture) receipt(edit func(*asset.Receipt)) *asset.Receipt {
	r := &asset.Receipt{
		Network: testnet.NetworkName,
		Transaction: ledger.Transaction{
			ID:             "tx-1",
			LedgerID:       "bank-x:ledger",
			Operation:      ledger.OpTransfer,
			Asset:          testAsset,
			From:           "alice",
			To:             "bob",
			Quantity:       "12.50",
			IdempotencyKey: "transfer-1",
			Version:        7,
			Hash:           strings.Repeat("ab", 32),
			PrevHash:       strings.Repeat("cd", 32),
			Timestamp:      f.now.Add(-time.Second),
		},
		RequestHash:  strings.Repeat("0f", 32),
		RequesterOrg: "bank-a",
		OwnerOrg:     "bank-x",
		Peer:         f.bankX.id,
		SignedAt:     f.now,
		Chain:        f.bankX.chain,
	}
	if edit != nil {
		edit(r)
	}
	return r
}

// sealReceipt seals a valid receipt of s with SealReceipt.
func (f *fixture) sealReceipt(t testing.TB, s signer, edit func(*asset.Receipt)) []byte {
	t.Helper()
	sealed, err := asset.SealReceipt(f.receipt(func(r *asset.Receipt) {
		r.Peer, r.Chain = s.id, s.chain
		if edit != nil {
			edit(r)
		}
	}), s.key)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

// rawSeal signs rec with key without any of the Seal functions' checks,
// so tests can build what a careless or hostile node would send.
func rawSeal(t testing.TB, rec record.Record, key crypto.PrivKey) []byte {
	t.Helper()
	env, err := record.Seal(rec, key)
	if err != nil {
		t.Fatal(err)
	}
	data, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// otherCodec is a request sealed under the request domain with another
// payload type.
type otherCodec struct{ *asset.Request }

func (otherCodec) Codec() []byte { return []byte("/finp2p/other/1") }

// checkErr fails unless err wraps every one of want and says each of says.
func checkErr(t testing.TB, err error, want []error, says ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", want)
	}
	t.Log(err)
	for _, w := range want {
		if !errors.Is(err, w) {
			t.Fatalf("error %q does not wrap %q", err, w)
		}
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not say %q", err, s)
		}
	}
}

func errs(e ...error) []error { return e }
