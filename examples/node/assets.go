package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/finp2p/go-finp2p/api"
	"github.com/finp2p/go-finp2p/asset"
	"github.com/finp2p/go-finp2p/internal/atomicfile"
	"github.com/finp2p/go-finp2p/ledger"
	"github.com/finp2p/go-finp2p/resource"
)

// keyHelp is the usage text of --key, which every command that changes a
// ledger takes.
const keyHelp = "idempotency key: a retry with the same key returns the first result instead of doing it again (default: a new random one, printed on standard error)"

func runCreateAsset(ctx context.Context, args []string) error {
	fs := newFlagSet("create-asset", "ID --decimals N --repo DIR [--api URL] [--key K] [--json]",
		"Has the running node of repo DIR (POST /v1/assets) create asset ID, which must belong to the\n"+
			"node's own org, on the ledger it keeps for its org's assets, with N decimal places in its\n"+
			"quantities. Prints the ledger transaction.\n"+
			resourceIDHelp)
	var repo, apiURL, key string
	var decimals int
	var asJSON bool
	fs.StringVar(&repo, "repo", "", "repo of the running node (for its API address and api.token) (required)")
	fs.StringVar(&apiURL, "api", "", "API base URL (default: from the repo's config.json)")
	fs.IntVar(&decimals, "decimals", 0, fmt.Sprintf("number of decimal places of the asset's quantities, 0 to %d (required)", ledger.MaxDecimals))
	fs.StringVar(&key, "key", "", keyHelp)
	fs.BoolVar(&asJSON, "json", false, "print the transaction as JSON, as the API gives it")
	id, err := resourceCommandArgs(fs, args, "create", &repo)
	if err != nil {
		return err
	}
	if !flagGiven(fs, "decimals") {
		return usagef("flag --decimals is required")
	}
	if decimals < 0 || decimals > ledger.MaxDecimals {
		return usagef("--decimals %d: want 0 to %d", decimals, ledger.MaxDecimals)
	}
	c, err := apiClient(repo, apiURL)
	if err != nil {
		return err
	}
	key = idempotencyKey("create-asset", key)
	tx, err := c.CreateAsset(ctx, api.CreateAssetRequest{Asset: id.String(), Decimals: decimals, IdempotencyKey: key})
	if err != nil {
		return assetError("create", id.String(), c, key, err)
	}
	if asJSON {
		return writeJSON(os.Stdout, "transaction", tx)
	}
	printTransaction(os.Stdout, tx)
	return nil
}

func runIssue(ctx context.Context, args []string) error {
	fs := newFlagSet("issue", "ID --to ACCOUNT --quantity Q --repo DIR [--api URL] [--key K] [--json]",
		"Has the running node of repo DIR (POST /v1/assets/ID/issue) issue quantity Q of asset ID,\n"+
			"one of its org's, to ACCOUNT (an account of any org) on its ledger. Prints the ledger\n"+
			"transaction.\n"+
			resourceIDHelp)
	var repo, apiURL, to, quantity, key string
	var asJSON bool
	fs.StringVar(&repo, "repo", "", "repo of the running node (for its API address and api.token) (required)")
	fs.StringVar(&apiURL, "api", "", "API base URL (default: from the repo's config.json)")
	fs.StringVar(&to, "to", "", "account credited (required)")
	fs.StringVar(&quantity, "quantity", "", "decimal quantity, with at most the asset's decimals (required)")
	fs.StringVar(&key, "key", "", keyHelp)
	fs.BoolVar(&asJSON, "json", false, "print the transaction as JSON, as the API gives it")
	id, err := resourceCommandArgs(fs, args, "issue", &repo)
	if err != nil {
		return err
	}
	if err := requireFlags("to", to, "quantity", quantity); err != nil {
		return err
	}
	c, err := apiClient(repo, apiURL)
	if err != nil {
		return err
	}
	key = idempotencyKey("issue", key)
	tx, err := c.IssueAsset(ctx, id.String(), api.IssueRequest{To: to, Quantity: quantity, IdempotencyKey: key})
	if err != nil {
		return assetError("issue", id.String(), c, key, err)
	}
	if asJSON {
		return writeJSON(os.Stdout, "transaction", tx)
	}
	printTransaction(os.Stdout, tx)
	return nil
}

func runBalance(ctx context.Context, args []string) error {
	fs := newFlagSet("balance", "ID ACCOUNT --repo DIR [--api URL] [--json]",
		"Asks the running node of repo DIR (GET /v1/assets/ID/balances/ACCOUNT) for ACCOUNT's balance\n"+
			"of asset ID, one of its org's, from its ledger: current, available and held (current =\n"+
			"available + held). An account the ledger never credited has a zero balance.\n"+
			resourceIDHelp)
	var repo, apiURL string
	var asJSON bool
	fs.StringVar(&repo, "repo", "", "repo of the running node (for its API address and api.token) (required)")
	fs.StringVar(&apiURL, "api", "", "API base URL (default: from the repo's config.json)")
	fs.BoolVar(&asJSON, "json", false, "print the balance as JSON, as the API gives it")
	positional, err := parseFlagsAndArgs(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 2 {
		return usagef("want two arguments, the asset ID and the ACCOUNT")
	}
	if err := requireFlags("repo", repo); err != nil {
		return err
	}
	id, err := resource.ParseID(positional[0])
	if err != nil {
		return err
	}
	account := positional[1]
	c, err := apiClient(repo, apiURL)
	if err != nil {
		return err
	}
	bal, err := c.Balance(ctx, id.String(), account)
	if err != nil {
		return assetError("read the balance of", id.String(), c, "", err)
	}
	if asJSON {
		return writeJSON(os.Stdout, "balance", bal)
	}
	fields(os.Stdout,
		"asset", bal.Asset,
		"account", bal.Account,
		"current", bal.Current,
		"available", bal.Available,
		"held", bal.Held,
	)
	return nil
}

// txCommand is one of the commands that ask an asset's owner to run an
// operation: which flags it takes, each required.
type txCommand struct {
	op                       ledger.Operation
	synopsis, description    string
	from, to, quantity, hold bool
}

var txCommands = map[ledger.Operation]txCommand{
	ledger.OpTransfer: {op: ledger.OpTransfer, from: true, to: true, quantity: true,
		synopsis:    "ID --from ACCOUNT --to ACCOUNT --quantity Q",
		description: "move quantity Q from one account to another"},
	ledger.OpRedeem: {op: ledger.OpRedeem, from: true, quantity: true,
		synopsis:    "ID --from ACCOUNT --quantity Q",
		description: "destroy quantity Q of an account's available balance"},
	ledger.OpHold: {op: ledger.OpHold, from: true, quantity: true,
		synopsis:    "ID --from ACCOUNT --quantity Q",
		description: "set quantity Q of an account's available balance aside, until a release\nsettles it or a rollback returns it; the hold id is the transaction's id"},
	ledger.OpRelease: {op: ledger.OpRelease, hold: true, to: true,
		synopsis:    "ID --hold H --to ACCOUNT",
		description: "settle hold H: its quantity goes to ACCOUNT"},
	ledger.OpRollback: {op: ledger.OpRollback, hold: true,
		synopsis:    "ID --hold H",
		description: "cancel hold H: its quantity returns to the holder's available balance"},
}

func runTransfer(ctx context.Context, args []string) error {
	return runTransaction(ctx, txCommands[ledger.OpTransfer], args)
}

func runRedeem(ctx context.Context, args []string) error {
	return runTransaction(ctx, txCommands[ledger.OpRedeem], args)
}

func runHold(ctx context.Context, args []string) error {
	return runTransaction(ctx, txCommands[ledger.OpHold], args)
}

func runRelease(ctx context.Context, args []string) error {
	return runTransaction(ctx, txCommands[ledger.OpRelease], args)
}

func runRollback(ctx context.Context, args []string) error {
	return runTransaction(ctx, txCommands[ledger.OpRollback], args)
}

// runTransaction has the node ask the asset's owner to run tc's operation
// and prints the owner's signed receipt.
func runTransaction(ctx context.Context, tc txCommand, args []string) error {
	name := string(tc.op)
	fs := newFlagSet(name, tc.synopsis+" --repo DIR [--api URL] [--key K] [--json]",
		"Has the running node of repo DIR (POST /v1/transactions) ask the owner of asset ID to\n"+
			tc.description+".\n"+
			"The owner's node checks that the asset's ACL gives the node's org transact, runs the\n"+
			"operation on its ledger and signs a receipt, which the node verifies and keeps; this\n"+
			"prints it ('finp2p receipt' saves it to a file). If the command fails without an answer,\n"+
			"running it again with the same --key is safe: the owner does it at most once.\n"+
			resourceIDHelp)
	var repo, apiURL, from, to, quantity, hold, key string
	var asJSON bool
	fs.StringVar(&repo, "repo", "", "repo of the running node (for its API address and api.token) (required)")
	fs.StringVar(&apiURL, "api", "", "API base URL (default: from the repo's config.json)")
	if tc.from {
		fs.StringVar(&from, "from", "", "account debited (required)")
	}
	if tc.to {
		fs.StringVar(&to, "to", "", "account credited (required)")
	}
	if tc.quantity {
		fs.StringVar(&quantity, "quantity", "", "decimal quantity, with at most the asset's decimals (required)")
	}
	if tc.hold {
		fs.StringVar(&hold, "hold", "", "hold id: the transaction id of the hold (required)")
	}
	fs.StringVar(&key, "key", "", keyHelp)
	fs.BoolVar(&asJSON, "json", false, "print the receipt as JSON, as the API gives it")
	id, err := resourceCommandArgs(fs, args, name, &repo)
	if err != nil {
		return err
	}
	var required []string
	for _, f := range []struct {
		takes bool
		name  string
		value string
	}{{tc.from, "from", from}, {tc.to, "to", to}, {tc.quantity, "quantity", quantity}, {tc.hold, "hold", hold}} {
		if f.takes {
			required = append(required, f.name, f.value)
		}
	}
	if err := requireFlags(required...); err != nil {
		return err
	}
	c, err := apiClient(repo, apiURL)
	if err != nil {
		return err
	}
	key = idempotencyKey(name, key)
	resp, err := c.Execute(ctx, api.TransactionRequest{
		Operation: tc.op, Asset: id.String(), From: from, To: to, Quantity: quantity, HoldID: hold, IdempotencyKey: key,
	})
	if err != nil {
		return assetError(name, id.String(), c, key, err)
	}
	if asJSON {
		return writeJSON(os.Stdout, "receipt", resp)
	}
	fields(os.Stdout, receiptFields(resp)...)
	return nil
}

func runReceipt(ctx context.Context, args []string) error {
	fs := newFlagSet("receipt", "TXID --repo DIR [--api URL] [--out FILE] [--json]",
		"Asks the running node of repo DIR (GET /v1/receipts/TXID) for the receipt it keeps of\n"+
			"transaction TXID, one it asked an asset's owner for, and prints it; with --out it also\n"+
			"writes the signed receipt itself to FILE (mode 0600), which 'finp2p verify-receipt' checks.")
	var repo, apiURL, out string
	var asJSON bool
	fs.StringVar(&repo, "repo", "", "repo of the running node (for its API address and api.token) (required)")
	fs.StringVar(&apiURL, "api", "", "API base URL (default: from the repo's config.json)")
	fs.StringVar(&out, "out", "", "file to write the signed receipt to")
	fs.BoolVar(&asJSON, "json", false, "print the receipt as JSON, as the API gives it")
	positional, err := parseFlagsAndArgs(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		return usagef("want exactly one TXID argument, the transaction id of the receipt")
	}
	if err := requireFlags("repo", repo); err != nil {
		return err
	}
	txID := positional[0]
	c, err := apiClient(repo, apiURL)
	if err != nil {
		return err
	}
	resp, err := c.Receipt(ctx, txID)
	var p *api.Problem
	switch {
	case errors.As(err, &p) && p.Kind() == "receipt-not-found":
		return fmt.Errorf("the node at %s keeps no receipt of transaction %s: %s", c.Base, txID, p.Detail)
	case err != nil:
		return fmt.Errorf("get the receipt of %s through the node at %s: %w", txID, c.Base, err)
	}
	if out != "" {
		if err := atomicfile.Write(out, resp.Receipt, 0o600); err != nil {
			return err
		}
	}
	if asJSON {
		return writeJSON(os.Stdout, "receipt", resp)
	}
	pairs := receiptFields(resp)
	if out != "" {
		pairs = append(pairs, "receipt", fmt.Sprintf("%d bytes written to %s", len(resp.Receipt), out))
	}
	fields(os.Stdout, pairs...)
	return nil
}

func runVerifyReceipt(ctx context.Context, args []string) error {
	fs := newFlagSet("verify-receipt", "FILE|- --repo DIR [--api URL] [--json]",
		"Has the running node of repo DIR (POST /v1/receipts/verify) check the signed receipt in\n"+
			"FILE (- for standard input), as 'finp2p receipt --out' writes it: the signature, that the\n"+
			"signer is a node of the asset's owner org certified under the network's founding roots\n"+
			"when it signed, and not revoked then. Any member's node can check any receipt. Prints the\n"+
			"receipt when it is valid; exits 1 saying why when it is not.")
	var repo, apiURL string
	var asJSON bool
	fs.StringVar(&repo, "repo", "", "repo of the running node (for its API address and api.token) (required)")
	fs.StringVar(&apiURL, "api", "", "API base URL (default: from the repo's config.json)")
	fs.BoolVar(&asJSON, "json", false, "print the answer as JSON, as the API gives it")
	positional, err := parseFlagsAndArgs(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		return usagef("want exactly one FILE argument, the signed receipt (- for standard input)")
	}
	if err := requireFlags("repo", repo); err != nil {
		return err
	}
	file := positional[0]
	sealed, err := readInput(file, asset.MaxReceiptSize)
	if err != nil {
		return err
	}
	c, err := apiClient(repo, apiURL)
	if err != nil {
		return err
	}
	resp, err := c.VerifyReceipt(ctx, sealed)
	var p *api.Problem
	switch {
	case errors.As(err, &p) && p.Kind() == "receipt-invalid":
		return fmt.Errorf("receipt %s is not valid: %s", file, p.Detail)
	case err != nil:
		return fmt.Errorf("verify receipt %s through the node at %s: %w", file, c.Base, err)
	}
	if asJSON {
		return writeJSON(os.Stdout, "verification", resp)
	}
	fields(os.Stdout, append([]string{"valid", "yes"}, receiptFields(resp.ReceiptResponse)...)...)
	return nil
}

// idempotencyKey returns key, or else a new random one, which it shows on
// standard error before the request goes out, so that the operator can
// retry a request whose answer was lost without it being done twice.
func idempotencyKey(command, key string) string {
	if key != "" {
		return key
	}
	key = uuid.NewString()
	fmt.Fprintf(os.Stderr, "finp2p %s: idempotency key %s (to retry this request, pass --key %s)\n", command, key, key)
	return key
}

// assetError words the failure of an asset command on subject: a refusal
// names its kind; a failure to get an answer says the command can be run
// again with the same key.
func assetError(what, subject string, c *api.Client, key string, err error) error {
	var p *api.Problem
	switch {
	case errors.As(err, &p) && p.Kind() == "not-owner":
		return fmt.Errorf("asset %s is not the org's of the node at %s: %s", subject, c.Base, p.Detail)
	case errors.As(err, &p) && p.Kind() == "rate-limited":
		return fmt.Errorf("the owner of %s drops the requests of the node at %s for now, after too many refusals; try again in a second: %s", subject, c.Base, p.Detail)
	case errors.As(err, &p) && p.Status < http.StatusInternalServerError:
		return fmt.Errorf("%s %s: refused (%s): %s", what, subject, p.Kind(), p.Detail)
	case key != "":
		return fmt.Errorf("%s %s through the node at %s: %w (safe to retry with --key %s)", what, subject, c.Base, err, key)
	}
	return fmt.Errorf("%s %s through the node at %s: %w", what, subject, c.Base, err)
}

// printTransaction writes a ledger transaction for a person to read.
func printTransaction(w io.Writer, tx ledger.Transaction) {
	fields(w, transactionFields(tx)...)
}

// transactionFields are a transaction's name/value lines, without the
// fields its operation does not have.
func transactionFields(tx ledger.Transaction) []string {
	pairs := []string{"transaction", tx.ID, "operation", string(tx.Operation), "asset", tx.Asset}
	add := func(name, value string) {
		if value != "" {
			pairs = append(pairs, name, value)
		}
	}
	add("from", tx.From)
	add("to", tx.To)
	add("quantity", tx.Quantity)
	hold := tx.HoldID
	if tx.Operation == ledger.OpHold {
		hold = tx.ID // a hold's id is its transaction's
	}
	add("hold", hold)
	if tx.Operation == ledger.OpCreateAsset {
		pairs = append(pairs, "decimals", fmt.Sprint(tx.Decimals))
	}
	return append(pairs,
		"ledger", tx.LedgerID,
		"version", fmt.Sprint(tx.Version),
		"key", tx.IdempotencyKey,
		"time", tx.Timestamp.UTC().Format(time.RFC3339Nano),
		"hash", tx.Hash,
	)
}

// receiptFields are a signed receipt's name/value lines: its transaction,
// then who signed it, when, and the request it answers.
func receiptFields(r api.ReceiptResponse) []string {
	return append(transactionFields(r.Transaction),
		"signer", fmt.Sprintf("%s (peer %s)", r.SignerOrg, r.SignerPeer),
		"signed", r.SignedAt.UTC().Format(time.RFC3339Nano),
		"requester", r.RequesterOrg,
		"request", r.RequestHash,
	)
}
