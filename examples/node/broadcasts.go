package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/finp2p/go-finp2p/api"
	"github.com/finp2p/go-finp2p/resource"
)

// broadcastFlags are the flags every broadcast command takes.
type broadcastFlags struct {
	repo, apiURL string
	asJSON       bool
	opts         api.BroadcastOptions
}

func (b *broadcastFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&b.repo, "repo", "", "repo of the running node (for its API address and api.token) (required)")
	fs.StringVar(&b.apiURL, "api", "", "API base URL (default: from the repo's config.json)")
	fs.BoolVar(&b.asJSON, "json", false, "print the whole result as JSON, as the API gives it")
	fs.IntVar(&b.opts.Quorum, "quorum", 0, "valid answers to wait for (default: a majority of the ledger's nodes)")
	fs.StringVar(&b.opts.Timeout, "timeout", "", "how long to wait for the quorum, e.g. 5s (default 5s)")
	fs.StringVar(&b.opts.Consistency, "consistency", "", "strict, majority or newest-version (default newest-version)")
}

// printBroadcast writes who answered what, who failed and what was dropped.
func printBroadcast(w io.Writer, r api.BroadcastResult) {
	fields(w,
		"request", r.ID,
		"scope", strings.TrimSpace(r.Scope.Kind+" "+r.Scope.Ledger+" "+strings.Join(r.Scope.Orgs, ",")),
		"quorum", fmt.Sprint(r.Quorum),
		"ok", fmt.Sprint(r.OK),
		"resolution", r.Resolution,
		"took", fmt.Sprintf("%.1f ms", r.TookMS),
	)
	for _, group := range []struct {
		name string
		rs   []api.ResponderJSON
	}{{"agreed", r.AgreedBy}, {"disagreed", r.Disagreed}, {"unanswered", r.Unanswered}} {
		for _, x := range group.rs {
			line := fmt.Sprintf("  %-10s %s (%s) at ledger version %d", group.name, x.Org, x.Peer, x.LedgerVersion)
			if x.Rendezvous {
				line += ", rendezvous node"
			}
			if x.Reason != "" {
				line += ": " + x.Reason
			}
			if x.Error != "" {
				line += ": " + x.Error
			}
			fmt.Fprintln(w, line)
		}
	}
	for _, p := range r.Failed {
		fmt.Fprintf(w, "  %-10s %s: no valid response in time\n", "failed", p)
	}
	for _, p := range r.NotAwaited {
		fmt.Fprintf(w, "  %-10s %s: not answered yet when the quorum was reached\n", "not waited", p)
	}
	for _, d := range r.Dropped {
		fmt.Fprintf(w, "  %-10s %s: %s\n", "dropped", d.Peer, d.Reason)
	}
}

func runBalanceOf(ctx context.Context, args []string) error {
	fs := newFlagSet("balance-of", "ID ACCOUNT --repo DIR [--ledger L] [--quorum N] [--timeout 5s] [--consistency C] [--json]",
		"Reads ACCOUNT's balance of asset ID by a broadcast request (POST /v1/balances), signed by the\n"+
			"node of repo DIR and encrypted for the primary nodes of the asset's ledger (its owner's node\n"+
			"and the nodes following that ledger), and prints the agreed balance with who agreed, who\n"+
			"disagreed (e.g. a follower at an older ledger version), who failed and what was dropped.\n"+
			resourceIDHelp)
	var b broadcastFlags
	var ledgerID string
	b.register(fs)
	fs.StringVar(&ledgerID, "ledger", "", "ledger to ask (default: the one the asset's org advertises as its own)")
	positional, err := parseFlagsAndArgs(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 2 {
		return usagef("want two arguments, the asset ID and the ACCOUNT")
	}
	if err := requireFlags("repo", b.repo); err != nil {
		return err
	}
	id, err := resource.ParseID(positional[0])
	if err != nil {
		return err
	}
	c, err := apiClient(b.repo, b.apiURL)
	if err != nil {
		return err
	}
	res, err := c.BalanceOf(ctx, api.BalanceRequest{Asset: id.String(), Account: positional[1], Ledger: ledgerID, Quorum: b.opts.Quorum, Timeout: b.opts.Timeout, Consistency: b.opts.Consistency})
	if err != nil {
		return fmt.Errorf("balance of %s by broadcast: %w", id, err)
	}
	if b.asJSON {
		return writeJSON(os.Stdout, "balance", res)
	}
	if res.Balance != nil {
		fields(os.Stdout, "asset", res.Balance.Asset, "account", res.Balance.Account, "current", res.Balance.Current,
			"available", res.Balance.Available, "held", res.Balance.Held, "ledger version", fmt.Sprint(res.LedgerVersion))
	}
	printBroadcast(os.Stdout, res.Broadcast)
	if !res.Broadcast.OK {
		return fmt.Errorf("balance of %s: no agreed answer: %s", id, res.Broadcast.Resolution)
	}
	return nil
}

func runValidateReceipt(ctx context.Context, args []string) error {
	fs := newFlagSet("validate-receipt", "TXID --repo DIR [--quorum N] [--timeout 5s] [--consistency C] [--json]",
		"Validates the receipt of transaction TXID, one the node of repo DIR keeps, by a broadcast\n"+
			"request (POST /v1/receipts/validate) to the nodes of the receipt's ledger: each checks that\n"+
			"its copy of the ledger holds the transaction with the same details. Exits 1 when the agreed\n"+
			"answer is that it is not valid, or when no answer was agreed.")
	var b broadcastFlags
	b.register(fs)
	positional, err := parseFlagsAndArgs(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		return usagef("want one argument, the transaction id of the receipt")
	}
	if err := requireFlags("repo", b.repo); err != nil {
		return err
	}
	c, err := apiClient(b.repo, b.apiURL)
	if err != nil {
		return err
	}
	res, err := c.ValidateReceipt(ctx, api.ValidateReceiptRequest{TransactionID: positional[0], Quorum: b.opts.Quorum, Timeout: b.opts.Timeout, Consistency: b.opts.Consistency})
	if err != nil {
		return fmt.Errorf("validate receipt %s: %w", positional[0], err)
	}
	if b.asJSON {
		return writeJSON(os.Stdout, "validation", res)
	}
	valid := "no agreed answer"
	if v := res.Validation; v != nil {
		valid = fmt.Sprint(v.Valid)
		if v.Reason != "" {
			valid += ": " + v.Reason
		}
	}
	fields(os.Stdout, "transaction", res.Transaction.ID, "ledger", res.Transaction.LedgerID, "valid", valid, "ledger version", fmt.Sprint(res.LedgerVersion))
	printBroadcast(os.Stdout, res.Broadcast)
	if res.Validation == nil || !res.Validation.Valid {
		return fmt.Errorf("receipt %s not validated: %s", positional[0], valid)
	}
	return nil
}

func runLedgers(ctx context.Context, args []string) error {
	fs := newFlagSet("ledgers", "--repo DIR [--json]",
		"Lists the ledgers the node of repo DIR reads (GET /v1/ledgers): its own, and the replicas of\n"+
			"the ledgers it follows, with their versions and the primary's version as last heard.")
	var repo, apiURL string
	var asJSON bool
	fs.StringVar(&repo, "repo", "", "repo of the running node (required)")
	fs.StringVar(&apiURL, "api", "", "API base URL (default: from the repo's config.json)")
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	if _, err := parseFlagsAndArgs(fs, args); err != nil {
		return err
	}
	if err := requireFlags("repo", repo); err != nil {
		return err
	}
	c, err := apiClient(repo, apiURL)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	infos, err := c.Ledgers(ctx)
	if err != nil {
		return fmt.Errorf("list ledgers: %w", err)
	}
	if asJSON {
		return writeJSON(os.Stdout, "ledgers", infos)
	}
	for _, l := range infos {
		line := fmt.Sprintf("%-30s %-8s version %d", l.ID, l.Role, l.Version)
		if l.Role != "primary" {
			line += fmt.Sprintf(" (primary at %d", l.PrimaryVersion)
			if l.Primary != "" {
				line += ", streaming from " + l.Primary.String()
			}
			line += ")"
			if l.Error != "" {
				line += ": " + l.Error
			}
		}
		fmt.Println(line)
	}
	return nil
}
