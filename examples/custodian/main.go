// Command custodian is the smallest program that embeds a FinP2P node, the
// one a custodian's developer would start from. It
//
//  1. opens the node of a repo directory and starts it (it joins the
//     network through the rendezvous nodes of the repo's genesis file),
//  2. asks an asset's owner to transfer a quantity between two accounts,
//  3. waits for the owner's signed receipt and verifies it,
//  4. reads the sender's balance by a broadcast to the nodes of the asset's
//     ledger, and
//  5. shuts the node down.
//
// The repo is made with the finp2p command and certified by a governance
// authority; the asset's owner must grant the repo's org the transact right:
//
//	finp2p init --repo DIR --org ORG --genesis genesis.json --listen /ip4/0.0.0.0/tcp/4001
//	finp2p certify --ca GOVERNANCE-CA --csr DIR/node.csr --out DIR/node.pem
//	go run ./examples/custodian --repo DIR --asset OWNER:102:ID --from A --to B --quantity Q
//
// Against a development network (`finp2p devnet --keep`), see
// custodian_test.go, which does exactly that.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/finp2p/go-finp2p/ledger"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/resource"
)

// options are the program's flags.
type options struct {
	repo, asset, from, to, quantity, key string
	timeout                              time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.repo, "repo", "", "the node's repo directory, made by `finp2p init` and certified (required)")
	flag.StringVar(&o.asset, "asset", "", "the asset's resource id, OWNER-ORG:102:ID (required)")
	flag.StringVar(&o.from, "from", "", "account the quantity leaves (required)")
	flag.StringVar(&o.to, "to", "", "account the quantity goes to (required)")
	flag.StringVar(&o.quantity, "quantity", "", "quantity to transfer, a decimal such as 12.50 (required)")
	flag.StringVar(&o.key, "key", "", "idempotency key: running again with the same key never transfers twice (default: a new one, printed)")
	flag.DurationVar(&o.timeout, "timeout", time.Minute, "how long the whole run may take")
	flag.Parse()
	if o.repo == "" || o.asset == "" || o.from == "" || o.to == "" || o.quantity == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: custodian --repo DIR --asset ORG:102:ID --from A --to B --quantity Q [--key K] [--timeout 1m]")
		os.Exit(2)
	}
	// Ctrl-C cancels the context: whatever is under way stops, the node
	// closes.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "custodian:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	asset, err := resource.ParseID(o.asset)
	if err != nil {
		return fmt.Errorf("--asset: %w", err)
	}
	if o.key == "" {
		// Print the key before sending: if the answer is lost, running
		// again with --key KEY returns the first receipt.
		o.key = uuid.NewString()
		fmt.Printf("idempotency key %s\n", o.key)
	}

	// 1. Open the node. node.Open reads the repo's config.json (listen
	// addresses, genesis, certificate and key files); options given here
	// override it. The node logs with log/slog: warnings only, on stderr.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	n, err := node.Open(o.repo, node.WithLogger(logger))
	if err != nil {
		return err
	}
	// Start does the I/O: it opens the datastore, starts the libp2p host
	// and every protocol, then dials the genesis rendezvous nodes.
	if err := n.Start(ctx); err != nil {
		return err
	}
	// 5. Shut down, whatever happens: Close undoes Start in reverse order,
	// bounded by its own context (ctx may be over by then).
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Close(closeCtx); err != nil {
			fmt.Fprintln(os.Stderr, "custodian: close node:", err)
		}
		fmt.Println("node stopped")
	}()
	self := n.Self()
	fmt.Printf("node %s of org %s started\n", n.ID(), self.OrgID)

	// 2. Transfer. The node finds the asset's owner org (through the
	// registrar or the DHT), sends the signed request to the org's primary
	// node and waits for its signed receipt, which it verifies and stores
	// durably before returning it. Right after Start the owner may not be
	// found yet: try again with the same idempotency key, which is safe,
	// until the owner answers; its refusals are final.
	req := node.AssetRequest{Asset: asset, From: o.from, To: o.to, Quantity: o.quantity, IdempotencyKey: o.key}
	fmt.Printf("transfer %s of %s from %s to %s\n", o.quantity, asset, o.from, o.to)
	var txID string
	err = retry(ctx, func() error {
		vr, err := n.Transfer(ctx, req)
		if err != nil {
			return err
		}
		txID = vr.Receipt.Transaction.ID
		return nil
	})
	if err != nil {
		return fmt.Errorf("transfer: %w", err)
	}

	// 3. The receipt. The node keeps every receipt it got; anyone holding
	// the signed bytes can check them offline, at any time: the owner
	// node's signature, its certificate chain up to the genesis roots and
	// its revocation status at signing time.
	kept, err := n.Receipt(ctx, txID)
	if err != nil {
		return fmt.Errorf("read the receipt back: %w", err)
	}
	checked, err := n.VerifyReceipt(kept.Sealed)
	if err != nil {
		return fmt.Errorf("verify the receipt: %w", err)
	}
	if checked.Signer.OrgID != asset.Org() {
		return fmt.Errorf("the receipt is signed by org %s, not by the asset's owner %s", checked.Signer.OrgID, asset.Org())
	}
	tx := checked.Receipt.Transaction
	fmt.Printf("receipt: transaction %s on ledger %s at version %d: %s %s from %s to %s\n",
		tx.ID, tx.LedgerID, tx.Version, tx.Operation, tx.Quantity, tx.From, tx.To)
	fmt.Printf("receipt verified: signed by org %s node %s at %s\n",
		checked.Signer.OrgID, checked.Signer.PeerID, checked.Receipt.SignedAt.UTC().Format(time.RFC3339))

	// 4. The balance, by broadcast: the request, signed by this node and
	// encrypted for them, goes to every node of the asset's ledger (its
	// owner's primary node and the nodes that keep a replica); a majority
	// must answer, and the newest ledger version wins. A replica may be a
	// moment behind: ask until the answer includes the transfer.
	var bal *node.BalanceResult
	err = retry(ctx, func() error {
		res, err := n.BalanceOf(ctx, asset, o.from, node.BroadcastOptions{})
		if err != nil {
			return err
		}
		if res.Balance == nil || res.LedgerVersion < tx.Version {
			return fmt.Errorf("no answer at ledger version %d yet: %s", tx.Version, res.Broadcast.Resolution)
		}
		bal = res
		return nil
	})
	if err != nil {
		return fmt.Errorf("balance of %s: %w", o.from, err)
	}
	var agreed []string
	for _, r := range bal.Broadcast.AgreedBy {
		agreed = append(agreed, r.Org+" "+r.Peer.String())
	}
	fmt.Printf("balance of %s: current %s, available %s, held %s (ledger version %d, quorum %d of %d nodes asked, agreed by %s)\n",
		o.from, bal.Balance.Current, bal.Balance.Available, bal.Balance.Held, bal.LedgerVersion,
		bal.Broadcast.Quorum, len(bal.Broadcast.Asked), strings.Join(agreed, ", "))
	return nil
}

// refusals are the answers that trying again will not change: the asset's
// owner (or this node, from the ACL it holds) refused the request.
var refusals = []error{
	resource.ErrAccessDenied, resource.ErrNotOwner, node.ErrUserData,
	ledger.ErrInsufficientBalance, ledger.ErrUnknownAsset, ledger.ErrUnknownAccount,
	ledger.ErrBadQuantity, ledger.ErrBadRequest, ledger.ErrIdempotencyConflict,
}

// retry calls f until it succeeds, returns a refusal, or ctx ends.
func retry(ctx context.Context, f func() error) error {
	wait := 250 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		for _, r := range refusals {
			if errors.Is(err, r) {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}
