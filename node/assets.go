package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/finp2p/go-finp2p/asset"
	"github.com/finp2p/go-finp2p/ledger"
	"github.com/finp2p/go-finp2p/protocols"
	"github.com/finp2p/go-finp2p/protocols/pb"
	"github.com/finp2p/go-finp2p/resource"
)

// AssetRequest is an asset transaction this node's org asks the asset's
// owner to execute. IdempotencyKey makes a retry return the first receipt;
// on the wire and in the owner's ledger it is prefixed with "<org>/".
type AssetRequest struct {
	Asset          resource.ID
	From, To       string
	Quantity       string
	HoldID         string
	IdempotencyKey string
}

// assets runs asset transactions: as the primary node of its org's assets
// it executes requests on its ledger and signs receipts; as a requester it
// sends requests and keeps the receipts durably.
type assets struct {
	n        *Node
	requests *asset.RequestVerifier
	replay   *asset.ReplayGuard
	receipts *asset.ReceiptStore
	verifier *asset.ReceiptVerifier
	issued   datastore.Datastore // receipts this node signed, by ledger idempotency key
	outgoing datastore.Datastore // sealed requests this node sent, by idempotency key
}

func newAssets(n *Node) (*assets, error) {
	guard, err := asset.NewReplayGuard(asset.WithReplayClock(n.cfg.now))
	if err != nil {
		return nil, err
	}
	v := &asset.ReceiptVerifier{Network: n.genesis.Network, Trust: n.trust}
	return &assets{
		n:        n,
		requests: &asset.RequestVerifier{Network: n.genesis.Network, Trust: n.trust, Now: n.cfg.now},
		replay:   guard,
		verifier: v,
		receipts: asset.NewReceiptStore(namespace.Wrap(n.ds, datastore.NewKey("/assets/receipts")), v),
		issued:   namespace.Wrap(n.ds, datastore.NewKey("/assets/issued")),
		outgoing: namespace.Wrap(n.ds, datastore.NewKey("/assets/outgoing")),
	}, nil
}

func (x *assets) start() { x.n.host.SetStreamHandler(protocols.AssetTx, x.handle) }

func (x *assets) close() error {
	x.n.host.RemoveStreamHandler(protocols.AssetTx)
	return nil
}

// handle executes one request as the asset's primary node. Every check is
// made before the ledger is touched.
func (x *assets) handle(s network.Stream) {
	var req pb.AssetTxRequest
	x.n.acc.serve(s, &req, 128<<10, func(org string) proto.Message {
		sealed, code, err := x.execute(org, req.Request)
		if err != nil {
			x.n.log.Warn("asset request refused", "peer", s.Conn().RemotePeer(), "org", org, "code", code, "reason", err)
			return &pb.AssetTxResponse{Code: code, Error: err.Error()}
		}
		return &pb.AssetTxResponse{Receipt: sealed}
	})
}

func (x *assets) execute(org string, sealedReq []byte) ([]byte, string, error) {
	n := x.n
	if n.standbyOf != "" {
		return nil, "standby", fmt.Errorf("%w; this node keeps a replica of %s", ErrStandby, n.standbyOf)
	}
	if !n.acc.limiter.Allow(org) {
		return nil, "rate-limited", fmt.Errorf("org %s has too many refused requests", org)
	}
	vr, err := x.requests.Open(sealedReq)
	switch {
	case errors.Is(err, asset.ErrStaleRequest):
		return nil, "stale", err
	case errors.Is(err, asset.ErrForged):
		return nil, "forged", err
	case err != nil:
		return nil, "bad-request", err
	}
	r := vr.Request
	if r.RequesterOrg != org {
		return nil, "forged", fmt.Errorf("request signed for org %s came from a node of org %s", r.RequesterOrg, org)
	}
	if vr.AssetID.Org() != n.self.OrgID {
		return nil, "not-owner", fmt.Errorf("%s is not an asset of org %s", vr.AssetID, n.self.OrgID)
	}
	if err := x.replay.Check(r.Peer, r.Nonce, r.IdempotencyKey, r.Timestamp); err != nil {
		return nil, "replay", err
	}
	if r.Operation == ledger.OpIssue || !n.acc.allows(vr.AssetID, org, resource.RightTransact) {
		n.acc.limiter.Refused(org)
		return nil, "denied", fmt.Errorf("org %s may not %s %s", org, r.Operation, vr.AssetID)
	}
	// Keys are the requester org's: they carry its id as a prefix, so two
	// orgs never share one on this ledger.
	key := r.IdempotencyKey
	if !strings.HasPrefix(key, org+"/") {
		return nil, "bad-request", fmt.Errorf("idempotency key %q does not start with the requester org %q", key, org+"/")
	}
	// A retry gets the receipt signed the first time. A retry that is a
	// new request with the same key (the requester lost the one it sent,
	// say in a crash before it was on disk) gets a receipt of its own for
	// the same ledger transaction: the ledger returns the first result for
	// the key, or refuses it when the operation differs.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if prev, err := x.issued.Get(ctx, datastore.NewKey(key)); err == nil {
		if pr, err := x.verifier.Verify(prev); err == nil && pr.Receipt.RequestHash == vr.Hash {
			return prev, "", nil
		}
	}
	// The spec's flow: the asset's primary node has the details of the
	// users a transaction moves assets between, asking their org if not.
	for _, account := range []string{r.From, r.To} {
		if account == "" {
			continue
		}
		if err := x.n.priv.userDetails(ctx, account); err != nil {
			return nil, "user-data", err
		}
	}
	tx, err := x.run(ctx, key, r)
	if err != nil {
		return nil, ledgerCode(err), err
	}
	rc := &asset.Receipt{
		Network:      n.genesis.Network,
		Transaction:  tx,
		RequestHash:  vr.Hash,
		RequesterOrg: org,
		OwnerOrg:     n.self.OrgID,
		Peer:         n.host.ID(),
		SignedAt:     n.cfg.now(),
		Chain:        n.disc.chain,
	}
	sealed, err := asset.SealReceipt(rc, n.disc.priv)
	if err != nil {
		return nil, "ledger-error", err
	}
	if err := x.issued.Put(ctx, datastore.NewKey(key), sealed); err != nil {
		return nil, "ledger-error", fmt.Errorf("store receipt of %s: %w", tx.ID, err)
	}
	return sealed, "", nil
}

func (x *assets) run(ctx context.Context, key string, r *asset.Request) (ledger.Transaction, error) {
	l := x.n.ledger
	switch r.Operation {
	case ledger.OpTransfer:
		return l.Transfer(ctx, ledger.Transfer{IdempotencyKey: key, Asset: r.Asset, From: r.From, To: r.To, Quantity: r.Quantity})
	case ledger.OpRedeem:
		return l.Redeem(ctx, ledger.Redeem{IdempotencyKey: key, Asset: r.Asset, From: r.From, Quantity: r.Quantity})
	case ledger.OpHold:
		return l.Hold(ctx, ledger.Hold{IdempotencyKey: key, Asset: r.Asset, From: r.From, Quantity: r.Quantity})
	case ledger.OpRelease:
		return l.Release(ctx, ledger.Release{IdempotencyKey: key, HoldID: r.HoldID, To: r.To})
	case ledger.OpRollback:
		return l.Rollback(ctx, ledger.Rollback{IdempotencyKey: key, HoldID: r.HoldID})
	}
	return ledger.Transaction{}, fmt.Errorf("%w: operation %q", ledger.ErrBadRequest, r.Operation)
}

var ledgerCodes = []struct {
	err  error
	code string
}{
	{ledger.ErrInsufficientBalance, "insufficient-balance"},
	{ledger.ErrUnknownAsset, "unknown-asset"},
	{ledger.ErrUnknownAccount, "unknown-account"},
	{ledger.ErrUnknownHold, "unknown-hold"},
	{ledger.ErrHoldClosed, "unknown-hold"},
	{ledger.ErrBadQuantity, "bad-quantity"},
	{ledger.ErrIdempotencyConflict, "conflict"},
	{ledger.ErrBadRequest, "bad-request"},
}

func ledgerCode(err error) string {
	for _, c := range ledgerCodes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "ledger-error"
}

// codeError turns a primary node's refusal back into the typed error.
func codeError(code, msg string) error {
	return refusal{codeErr(code, msg)}
}

func codeErr(code, msg string) error {
	wrap := func(e error) error {
		// The refusal's text often starts with the sentinel's own.
		return fmt.Errorf("%w: %s", e, strings.TrimPrefix(msg, e.Error()+": "))
	}
	for _, c := range ledgerCodes {
		if c.code == code {
			return wrap(c.err)
		}
	}
	typed := map[string]error{
		"denied": resource.ErrAccessDenied, "rate-limited": resource.ErrRateLimited,
		"replay": asset.ErrReplay, "stale": asset.ErrStaleRequest, "forged": asset.ErrForged,
		"not-owner": resource.ErrNotOwner, "user-data": ErrUserData,
	}
	if e, ok := typed[code]; ok {
		return wrap(e)
	}
	return fmt.Errorf("refused (%s): %s", code, msg)
}

// Execute asks the asset's owner to run an operation (transfer, redeem,
// hold, release, rollback) and returns its signed receipt once it is
// verified and stored durably. The same idempotency key resends the same
// signed request, so a retry returns the first receipt.
func (n *Node) Execute(ctx context.Context, op ledger.Operation, r AssetRequest) (*asset.VerifiedReceipt, error) {
	if n.assets == nil {
		return nil, errors.New("asset transaction: the node is not started")
	}
	x := n.assets
	if r.IdempotencyKey == "" {
		return nil, fmt.Errorf("%s %s: %w: idempotency key is empty", op, r.Asset, ledger.ErrBadRequest)
	}
	if allowed, known := n.acc.acls.Allows(r.Asset, n.self.OrgID, resource.RightTransact); known && !allowed {
		return nil, fmt.Errorf("%s %s: %w: the ACL this node holds gives org %s no transact right; not sent", op, r.Asset, resource.ErrAccessDenied, n.self.OrgID)
	}
	okey := datastore.NewKey(r.Asset.String()).ChildString(hexKey(r.IdempotencyKey))
	sealed, err := x.outgoing.Get(ctx, okey)
	var req *asset.Request
	if err == nil {
		vr, verr := x.requests.Open(sealed)
		if verr != nil {
			return nil, fmt.Errorf("%s %s: the request first sent with key %q can no longer be resent (%w); use a new key", op, r.Asset, r.IdempotencyKey, verr)
		}
		req = vr.Request
		if req.Operation != op || req.From != r.From || req.To != r.To || req.Quantity != r.Quantity || req.HoldID != r.HoldID {
			return nil, fmt.Errorf("%s %s: %w: key %q was used for another request", op, r.Asset, ledger.ErrIdempotencyConflict, r.IdempotencyKey)
		}
	} else {
		req = &asset.Request{
			Network: n.genesis.Network, Operation: op, Asset: r.Asset.String(),
			From: r.From, To: r.To, Quantity: r.Quantity, HoldID: r.HoldID,
			IdempotencyKey: n.self.OrgID + "/" + r.IdempotencyKey, Nonce: asset.NewNonce(), Timestamp: n.cfg.now(),
			RequesterOrg: n.self.OrgID, Peer: n.host.ID(), Chain: n.disc.chain,
		}
		if sealed, err = asset.SealRequest(req, n.disc.priv); err != nil {
			return nil, err
		}
		// Stored before it leaves, so a retry after a crash resends it.
		if err := x.outgoing.Put(ctx, okey, sealed); err != nil {
			return nil, fmt.Errorf("%s %s: store request: %w", op, r.Asset, err)
		}
	}
	// Answered already (a retry after the answer came): the stored receipt.
	if prev, err := x.receipts.ByRequest(ctx, asset.RequestHash(sealed)); err == nil {
		return prev, nil
	}
	var receipt []byte
	if r.Asset.Org() == n.self.OrgID && n.ledger != nil {
		// This org's own asset: executed here, with the same checks.
		rc, code, err := x.execute(n.self.OrgID, sealed)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", op, r.Asset, codeErr(code, err.Error()))
		}
		receipt = rc
	} else {
		err = n.sendToOrg(ctx, r.Asset.Org(), func(ctx context.Context, p peer.ID) error {
			var reply pb.AssetTxResponse
			if err := n.request(ctx, p, protocols.AssetTx, &pb.AssetTxRequest{Request: sealed}, &reply, 128<<10); err != nil {
				return err
			}
			switch reply.Code {
			case "":
			case "standby":
				// Not a refusal: the org's primary node executes it.
				return fmt.Errorf("node %s: %w", p, ErrStandby)
			default:
				return codeError(reply.Code, reply.Error)
			}
			receipt = reply.Receipt
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", op, r.Asset, err)
		}
	}
	vr, err := x.receipts.Put(ctx, receipt)
	if err != nil {
		return nil, fmt.Errorf("%s %s: receipt: %w", op, r.Asset, err)
	}
	if err := vr.Receipt.Answers(req, asset.RequestHash(sealed)); err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, r.Asset, err)
	}
	return vr, nil
}

func hexKey(s string) string { return fmt.Sprintf("%x", s) }

// Transfer asks the asset's owner to move quantity from one account to
// another and returns the verified, stored receipt.
func (n *Node) Transfer(ctx context.Context, r AssetRequest) (*asset.VerifiedReceipt, error) {
	return n.Execute(ctx, ledger.OpTransfer, r)
}

// Receipt returns a stored receipt by ledger transaction id.
func (n *Node) Receipt(ctx context.Context, txID string) (*asset.VerifiedReceipt, error) {
	if n.assets == nil {
		return nil, errors.New("receipt: the node is not started")
	}
	return n.assets.receipts.Get(ctx, txID)
}

// VerifyReceipt checks a sealed receipt offline: signature, chain to the
// founding roots at signing time, revocation at signing time.
func (n *Node) VerifyReceipt(sealed []byte) (*asset.VerifiedReceipt, error) {
	if n.assets == nil {
		return nil, errors.New("verify receipt: the node is not started")
	}
	return n.assets.verifier.Verify(sealed)
}

// Redeem asks the asset's owner to destroy quantity from an account.
func (n *Node) Redeem(ctx context.Context, r AssetRequest) (*asset.VerifiedReceipt, error) {
	return n.Execute(ctx, ledger.OpRedeem, r)
}

// Hold asks the asset's owner to set quantity of an account aside; the
// receipt's transaction ID is the hold id for Release or Rollback.
func (n *Node) Hold(ctx context.Context, r AssetRequest) (*asset.VerifiedReceipt, error) {
	return n.Execute(ctx, ledger.OpHold, r)
}

// Release asks the asset's owner to settle a hold to account r.To.
func (n *Node) Release(ctx context.Context, r AssetRequest) (*asset.VerifiedReceipt, error) {
	return n.Execute(ctx, ledger.OpRelease, r)
}

// Rollback asks the asset's owner to cancel a hold.
func (n *Node) Rollback(ctx context.Context, r AssetRequest) (*asset.VerifiedReceipt, error) {
	return n.Execute(ctx, ledger.OpRollback, r)
}
