package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	pebbleds "github.com/ipfs/go-ds-pebble"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	"github.com/finp2p/go-finp2p/asset"
	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/ledger"
	"github.com/finp2p/go-finp2p/ledger/embedded"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/protocols/pb"
	"github.com/finp2p/go-finp2p/resource"
)

// The baseline a user might pick instead of a FinP2P network: the same
// asset handler served point to point over gRPC with mutual TLS. The
// service is one unary method whose messages are the node's own protobuf
// messages (pb.AssetTxRequest, pb.AssetTxResponse), carried by a codec that
// passes bytes through, so no code generation is needed.
const (
	grpcService = "finp2p.bench.Asset"
	grpcMethod  = "/" + grpcService + "/Execute"
)

// rawCodec is a gRPC codec for messages that are already bytes.
type rawCodec struct{}

func (rawCodec) Name() string { return "finp2p-bench-raw" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	*b = slices.Clone(data)
	return nil
}

// identity is a certified node's signing key and chain, read from its repo.
type identity struct {
	org   string
	key   crypto.PrivKey
	peer  peer.ID
	chain [][]byte
}

func loadIdentity(repo, org string) (identity, error) {
	raw, err := governance.ReadKeyFile(filepath.Join(repo, node.KeyFileName))
	if err != nil {
		return identity{}, err
	}
	key, err := crypto.UnmarshalEd25519PrivateKey(raw)
	if err != nil {
		return identity{}, fmt.Errorf("key of %s: %w", org, err)
	}
	p, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return identity{}, fmt.Errorf("key of %s: %w", org, err)
	}
	certs, err := governance.LoadCertificatesPEM(filepath.Join(repo, node.CertFileName))
	if err != nil {
		return identity{}, err
	}
	chain := make([][]byte, len(certs))
	for i, c := range certs {
		chain[i] = c.Raw
	}
	return identity{org: org, key: key, peer: p, chain: chain}, nil
}

// trustStore is the network's trust store, from its genesis file.
func trustStore(genesisFile string) (*governance.TrustStore, error) {
	g, err := governance.LoadGenesis(genesisFile)
	if err != nil {
		return nil, err
	}
	roots, err := g.RootCertificates()
	if err != nil {
		return nil, err
	}
	return governance.NewTrustStore(roots)
}

// grpcRig is the gRPC+mTLS baseline: a server that runs the same checks,
// ledger and signatures as a node's asset handler, with the same
// durability, and a client that does what node.Execute does around the
// call. Each side has its own pebble datastore in dir.
type grpcRig struct {
	network string
	asset   resource.ID
	owner   identity
	client  identity

	// server side
	srv      *grpc.Server
	lis      net.Listener
	sds      *pebbleds.Datastore
	ledger   *embedded.Ledger
	requests *asset.RequestVerifier
	replay   *asset.ReplayGuard
	issued   datastore.Datastore
	grants   map[string]bool // orgs the asset's ACL lets transact

	// client side
	cds      *pebbleds.Datastore
	conn     *grpc.ClientConn
	outgoing datastore.Datastore
	resend   *asset.RequestVerifier
	receipts *asset.ReceiptStore
}

// newGRPCRig starts the server on 127.0.0.1 and connects the client. The
// asset is created on the server's ledger with supply for the client's
// account alice@<client org>.
func newGRPCRig(ctx context.Context, dir, genesisFile string, id resource.ID, owner, client identity) (*grpcRig, error) {
	trust, err := trustStore(genesisFile)
	if err != nil {
		return nil, err
	}
	r := &grpcRig{network: networkName, asset: id, owner: owner, client: client, grants: map[string]bool{client.org: true}}
	ok := false
	defer func() {
		if !ok {
			r.close()
		}
	}()
	if r.sds, err = node.OpenPebble(filepath.Join(dir, "grpc-server")); err != nil {
		return nil, fmt.Errorf("grpc server datastore: %w", err)
	}
	if r.ledger, err = embedded.Open(ctx, namespace.Wrap(r.sds, datastore.NewKey("/ledger")), owner.org+"/embedded"); err != nil {
		return nil, err
	}
	if _, err := r.ledger.CreateAsset(ctx, ledger.CreateAsset{IdempotencyKey: "create", Asset: id.String(), Decimals: 0}); err != nil {
		return nil, err
	}
	if _, err := r.ledger.Issue(ctx, ledger.Issue{IdempotencyKey: "issue", Asset: id.String(), To: "alice@" + client.org, Quantity: "1000000000000"}); err != nil {
		return nil, err
	}
	r.requests = &asset.RequestVerifier{Network: r.network, Trust: trust}
	if r.replay, err = asset.NewReplayGuard(); err != nil {
		return nil, err
	}
	r.issued = namespace.Wrap(r.sds, datastore.NewKey("/assets/issued"))

	if r.cds, err = node.OpenPebble(filepath.Join(dir, "grpc-client")); err != nil {
		return nil, fmt.Errorf("grpc client datastore: %w", err)
	}
	r.outgoing = namespace.Wrap(r.cds, datastore.NewKey("/assets/outgoing"))
	r.resend = &asset.RequestVerifier{Network: r.network, Trust: trust}
	r.receipts = asset.NewReceiptStore(namespace.Wrap(r.cds, datastore.NewKey("/assets/receipts")), &asset.ReceiptVerifier{Network: r.network, Trust: trust})

	serverTLS, clientTLS, err := mutualTLS(owner.org, client.org)
	if err != nil {
		return nil, err
	}
	if r.lis, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	r.srv = grpc.NewServer(grpc.Creds(credentials.NewTLS(serverTLS)), grpc.ForceServerCodec(rawCodec{}))
	r.srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: grpcService,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Execute",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var in []byte
				if err := dec(&in); err != nil {
					return nil, err
				}
				out, err := r.serve(ctx, in)
				if err != nil {
					return nil, err
				}
				return &out, nil
			},
		}},
	}, nil)
	go func() { _ = r.srv.Serve(r.lis) }()
	if r.conn, err = grpc.NewClient(r.lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)), grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}))); err != nil {
		return nil, err
	}
	ok = true
	return r, nil
}

// serve is the server's handler: the node's asset handler's checks, in its
// order, then the ledger, the signed receipt and its store.
func (r *grpcRig) serve(ctx context.Context, in []byte) ([]byte, error) {
	var req pb.AssetTxRequest
	if err := proto.Unmarshal(in, &req); err != nil {
		return nil, err
	}
	org, err := peerOrg(ctx)
	if err != nil {
		return nil, err
	}
	receipt, code, err := r.execute(ctx, org, req.Request)
	reply := &pb.AssetTxResponse{Receipt: receipt}
	if err != nil {
		reply = &pb.AssetTxResponse{Code: code, Error: err.Error()}
	}
	return proto.Marshal(reply)
}

// peerOrg is the org the client's TLS certificate names.
func peerOrg(ctx context.Context) (string, error) {
	p, ok := grpcpeer.FromContext(ctx)
	if !ok {
		return "", errors.New("no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return "", errors.New("no client certificate")
	}
	return ti.State.PeerCertificates[0].Subject.CommonName, nil
}

func (r *grpcRig) execute(ctx context.Context, org string, sealedReq []byte) ([]byte, string, error) {
	vr, err := r.requests.Open(sealedReq)
	if err != nil {
		return nil, "bad-request", err
	}
	q := vr.Request
	if q.RequesterOrg != org {
		return nil, "forged", fmt.Errorf("request of org %s from org %s", q.RequesterOrg, org)
	}
	if vr.AssetID.Org() != r.owner.org {
		return nil, "not-owner", fmt.Errorf("%s is not an asset of org %s", vr.AssetID, r.owner.org)
	}
	if err := r.replay.Check(q.Peer, q.Nonce, q.IdempotencyKey, q.Timestamp); err != nil {
		return nil, "replay", err
	}
	if q.Operation != ledger.OpTransfer || !r.grants[org] || vr.AssetID != r.asset {
		return nil, "denied", fmt.Errorf("org %s may not %s %s", org, q.Operation, vr.AssetID)
	}
	key := q.IdempotencyKey
	if !strings.HasPrefix(key, org+"/") {
		return nil, "bad-request", fmt.Errorf("idempotency key %q is not of org %s", key, org)
	}
	if prev, err := r.issued.Get(ctx, datastore.NewKey(key)); err == nil {
		return prev, "", nil
	}
	tx, err := r.ledger.Transfer(ctx, ledger.Transfer{IdempotencyKey: key, Asset: q.Asset, From: q.From, To: q.To, Quantity: q.Quantity})
	if err != nil {
		return nil, "ledger-error", err
	}
	sealed, err := asset.SealReceipt(&asset.Receipt{
		Network:      r.network,
		Transaction:  tx,
		RequestHash:  vr.Hash,
		RequesterOrg: org,
		OwnerOrg:     r.owner.org,
		Peer:         r.owner.peer,
		SignedAt:     time.Now(),
		Chain:        r.owner.chain,
	}, r.owner.key)
	if err != nil {
		return nil, "ledger-error", err
	}
	if err := r.issued.Put(ctx, datastore.NewKey(key), sealed); err != nil {
		return nil, "ledger-error", err
	}
	return sealed, "", nil
}

// transfer is the client's side of one transfer, as node.Execute does it:
// seal the request and store it before it leaves, look for a stored
// receipt, call, then verify and durably store the receipt and check that
// it answers the request.
func (r *grpcRig) transfer(ctx context.Context, key string) error {
	okey := datastore.NewKey(r.asset.String()).ChildString(fmt.Sprintf("%x", key))
	var req *asset.Request
	sealed, err := r.outgoing.Get(ctx, okey)
	if err == nil {
		// A retry: the request sent first, as node.Execute resends it.
		vr, err := r.resend.Open(sealed)
		if err != nil {
			return err
		}
		req = vr.Request
	} else {
		req = &asset.Request{
			Network: r.network, Operation: ledger.OpTransfer, Asset: r.asset.String(),
			From: "alice@" + r.client.org, To: "bob@" + r.client.org, Quantity: "1",
			IdempotencyKey: r.client.org + "/" + key, Nonce: asset.NewNonce(), Timestamp: time.Now(),
			RequesterOrg: r.client.org, Peer: r.client.peer, Chain: r.client.chain,
		}
		if sealed, err = asset.SealRequest(req, r.client.key); err != nil {
			return err
		}
		if err := r.outgoing.Put(ctx, okey, sealed); err != nil {
			return err
		}
	}
	hash := asset.RequestHash(sealed)
	if _, err := r.receipts.ByRequest(ctx, hash); err == nil {
		return nil // answered already
	}
	in, err := proto.Marshal(&pb.AssetTxRequest{Request: sealed})
	if err != nil {
		return err
	}
	var out []byte
	if err := r.conn.Invoke(ctx, grpcMethod, &in, &out); err != nil {
		return fmt.Errorf("grpc: %w", err)
	}
	var reply pb.AssetTxResponse
	if err := proto.Unmarshal(out, &reply); err != nil {
		return err
	}
	if reply.Code != "" {
		return fmt.Errorf("refused (%s): %s", reply.Code, reply.Error)
	}
	vr, err := r.receipts.Put(ctx, reply.Receipt)
	if err != nil {
		return err
	}
	return vr.Receipt.Answers(req, hash)
}

func (r *grpcRig) close() {
	if r.conn != nil {
		_ = r.conn.Close()
	}
	if r.srv != nil {
		r.srv.Stop()
	}
	if r.sds != nil {
		_ = r.sds.Close()
	}
	if r.cds != nil {
		_ = r.cds.Close()
	}
}

// mutualTLS makes a throwaway CA (Ed25519, like the network's) and a
// server certificate for 127.0.0.1 and a client certificate, each naming
// its org, and the TLS 1.3 configurations that require and verify both.
func mutualTLS(serverOrg, clientOrg string) (*tls.Config, *tls.Config, error) {
	caPub, caKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bench CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caPub, caKey)
	if err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, err
	}
	leaf := func(serial int64, org string, usage x509.ExtKeyUsage) (tls.Certificate, error) {
		pub, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return tls.Certificate{}, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: org},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
		if err != nil {
			return tls.Certificate{}, err
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
	}
	srvCert, err := leaf(2, serverOrg, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, nil, err
	}
	cliCert, err := leaf(3, clientOrg, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	server := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{srvCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	client := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cliCert},
		RootCAs:      pool,
		ServerName:   "127.0.0.1",
	}
	return server, client, nil
}
