// Command finp2p runs and administers a FinP2P node: it creates a network's
// founding authority and genesis file, initialises node repos, certifies
// nodes and governance CAs, revokes certificates, runs a node with its HTTP
// API, queries a running node, advertises, finds and withdraws resources
// through it, sets their ACLs and state, fetches their state and publishes
// and subscribes to their updates through it, creates its org's users and
// sets and queries resources' private data, creates and issues its org's
// assets, asks assets' owners to transfer, redeem, hold and settle them and
// keeps and verifies their signed receipts, and starts a whole local
// development network of real node processes with one command
// (`finp2p devnet`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// command is one subcommand of the binary.
type command struct {
	name     string
	synopsis string
	run      func(ctx context.Context, args []string) error
}

// commands lists the subcommands in the order `finp2p help` shows them.
func commands() []command {
	return []command{
		{"genesis", "create a network's founding authority and genesis file", runGenesis},
		{"init", "create a node repo: key, certificate request, API token, config", runInit},
		{"certify", "certify a node's (or a governance CA's) request with an authority", runCertify},
		{"ca", "manage a governance authority (ca install)", runCA},
		{"revoke", "revoke a certificate and write the authority's signed revocation list", runRevoke},
		{"publish-crl", "hand a revocation list to a running node, which spreads it to the network", runPublishCRL},
		{"config", "show a repo's effective configuration (file, environment, flags) or list its fields", runConfig},
		{"run", "run a node and its HTTP API until SIGINT or SIGTERM", runRun},
		{"status", "show a running node's identity, advertisement and connected members", runStatus},
		{"orgs", "list the network's organisations and their nodes, by service, protocol or ledger", runOrgs},
		{"resolve", "find an organisation's FinID, nodes and addresses through a running node", runResolve},
		{"advertise", "have a running node advertise one of its org's resources, publicly or to some orgs", runAdvertise},
		{"find", "find a resource's advertisement (owner, peer, topic) through a running node", runFind},
		{"withdraw", "have a running node withdraw its advertisement of a resource", runWithdraw},
		{"acl", "set (or show) which orgs may read, subscribe to, query or transact on a resource", runACL},
		{"put-state", "have a running node serve a file as the state of one of its org's resources", runPutState},
		{"get", "fetch a resource's state from its owner, under the owner's ACL", runGet},
		{"publish", "publish an update on one of the node's org's resource topics", runPublish},
		{"subscribe", "print a resource's updates as they are published, in order", runSubscribe},
		{"create-user", "create a user profile of the node's org: its FinID, key and private details", runCreateUser},
		{"private", "query a resource's private data from its owner under its ACL, or set the org's own", runPrivate},
		{"create-asset", "create one of the node's org's assets on its ledger", runCreateAsset},
		{"issue", "issue a quantity of one of the node's org's assets to an account", runIssue},
		{"balance", "show an account's balance of one of the node's org's assets", runBalance},
		{"transfer", "have an asset's owner move a quantity between accounts; prints its signed receipt", runTransfer},
		{"redeem", "have an asset's owner destroy a quantity of an account's balance", runRedeem},
		{"hold", "have an asset's owner set a quantity of an account's balance aside", runHold},
		{"release", "have an asset's owner settle a hold to an account", runRelease},
		{"rollback", "have an asset's owner return a hold to its holder", runRollback},
		{"balance-of", "read an account's balance by broadcast to the asset's ledger nodes", runBalanceOf},
		{"validate-receipt", "validate a receipt by broadcast to its ledger's nodes", runValidateReceipt},
		{"ledgers", "list the ledgers the node reads: its own and the replicas it follows", runLedgers},
		{"receipt", "show, or save to a file, a signed receipt the node keeps", runReceipt},
		{"verify-receipt", "check a signed receipt's signature and signer", runVerifyReceipt},
		{"devnet", "start a local network of real node processes and show it working", runDevnet},
	}
}

// usageError is a command-line mistake: it is reported with exit code 2.
type usageError struct {
	msg     string
	printed bool // the flag package already showed it with the usage text
}

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

func main() {
	os.Exit(realMain(os.Args[1:]))
}

func realMain(args []string) int {
	if len(args) == 0 {
		printUsage(os.Stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if c, ok := lookup(args[1]); ok {
				return dispatch(c, []string{"-h"})
			}
			fmt.Fprintf(os.Stderr, "finp2p: unknown command %q\n\n", args[1])
			printUsage(os.Stderr)
			return exitUsage
		}
		printUsage(os.Stdout)
		return exitOK
	}
	c, ok := lookup(name)
	if !ok {
		fmt.Fprintf(os.Stderr, "finp2p: unknown command %q\n\n", name)
		printUsage(os.Stderr)
		return exitUsage
	}
	return dispatch(c, args[1:])
}

func lookup(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// dispatch runs a subcommand with a context cancelled by SIGINT or SIGTERM
// and turns its error into one line on stderr and an exit code.
func dispatch(c command, args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := c.run(ctx, args)
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		if ue.printed {
			return exitUsage
		}
		fmt.Fprintf(os.Stderr, "finp2p %s: %s\nRun 'finp2p %s -h' for usage.\n", c.name, ue.msg, c.name)
		return exitUsage
	default:
		fmt.Fprintf(os.Stderr, "finp2p %s: %s\n", c.name, oneLine(err.Error()))
		return exitError
	}
}

// oneLine keeps an error message on one line, as a user reads it.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "finp2p runs and administers a FinP2P node.\n\nUsage:\n  finp2p <command> [flags]\n\nCommands:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.synopsis)
	}
	fmt.Fprintf(tw, "  help\tshow this list, or 'finp2p help <command>' for a command's flags\n")
	_ = tw.Flush()
	fmt.Fprintf(w, "\nStart here: 'finp2p devnet' builds and runs a whole local network.\n")
}

// newFlagSet returns a flag set for a subcommand whose usage text starts
// with the command line and a one-paragraph description.
func newFlagSet(name, synopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet("finp2p "+name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: finp2p %s %s\n\n%s\n\nFlags:\n", name, synopsis, description)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; -h prints usage and yields flag.ErrHelp, and any
// other parse error becomes a usage error (the flag package already printed
// it with the usage text).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{msg: err.Error(), printed: true}
	}
	return nil
}

// requireFlags reports the first of the named flags that was left empty.
func requireFlags(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if strings.TrimSpace(pairs[i+1]) == "" {
			return usagef("flag --%s is required", pairs[i])
		}
	}
	return nil
}

// parseFlagsAndArgs is parseFlags for a command that takes positional
// arguments: flags may come before, between or after them, as in
// 'finp2p resolve bank-a --repo DIR'. It returns the positional arguments.
func parseFlagsAndArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// noArgs refuses positional arguments a command does not take.
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (all inputs are flags)", fs.Arg(0))
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// listFlag is a repeatable flag whose values may also be comma-separated:
// --service custody,payments is --service custody --service payments.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return fmt.Errorf("empty item in %q", v)
		}
		*l = append(*l, item)
	}
	return nil
}

// fields prints name/value pairs as aligned lines, "name  value", the format
// every subcommand uses for what it made, so scripts can pick a line by its
// first word.
func fields(w io.Writer, pairs ...string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i := 0; i+1 < len(pairs); i += 2 {
		fmt.Fprintf(tw, "%s\t%s\n", pairs[i], pairs[i+1])
	}
	_ = tw.Flush()
}
