package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/finp2p/go-finp2p/api"
	"github.com/finp2p/go-finp2p/discovery"
	"github.com/finp2p/go-finp2p/governance"
)

func runOrgs(ctx context.Context, args []string) error {
	fs := newFlagSet("orgs", "--repo DIR [--api URL] [--service S] [--protocol P] [--ledger L] [--json]",
		"Asks the running node of repo DIR (GET /v1/orgs) for the network's member organisations, as\n"+
			"their nodes advertise them, and prints one line per node: org, FinID, peer, role, addresses,\n"+
			"services and ledgers. --service, --protocol and --ledger keep only the nodes that advertise it.")
	var repo, apiURL string
	var f discovery.Filter
	var asJSON bool
	fs.StringVar(&repo, "repo", "", "repo of the running node (for its API address and api.token) (required)")
	fs.StringVar(&apiURL, "api", "", "API base URL (default: from the repo's config.json)")
	fs.StringVar(&f.Service, "service", "", "only organisations offering this service, such as custody")
	fs.StringVar(&f.Protocol, "protocol", "", "only nodes serving this protocol ID")
	fs.StringVar(&f.Ledger, "ledger", "", "only organisations reaching this ledger")
	fs.BoolVar(&asJSON, "json", false, "print the answer as JSON, as the API gives it")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if err := requireFlags("repo", repo); err != nil {
		return err
	}
	c, err := apiClient(repo, apiURL)
	if err != nil {
		return err
	}
	orgs, err := c.Orgs(ctx, f)
	if err != nil {
		return fmt.Errorf("node at %s: %w", c.Base, err)
	}
	if asJSON {
		return writeJSON(os.Stdout, "organisations", api.OrgsResponse{Orgs: orgs})
	}
	printOrgs(os.Stdout, orgs)
	return nil
}

func runResolve(ctx context.Context, args []string) error {
	fs := newFlagSet("resolve", "ORG --repo DIR [--api URL] [--json]",
		"Asks the running node of repo DIR (GET /v1/orgs/ORG) for organisation ORG: its FinID, where\n"+
			"the answer came from (the node's cache, a registrar or the DHT) and each of its nodes with\n"+
			"role, addresses, protocols, version, advertisement sequence number and expiry.")
	var repo, apiURL string
	var asJSON bool
	fs.StringVar(&repo, "repo", "", "repo of the running node (for its API address and api.token) (required)")
	fs.StringVar(&apiURL, "api", "", "API base URL (default: from the repo's config.json)")
	fs.BoolVar(&asJSON, "json", false, "print the resolution as JSON, as the API gives it")
	positional, err := parseFlagsAndArgs(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		return usagef("want exactly one ORG argument, the organisation id to resolve")
	}
	org := positional[0]
	if err := requireFlags("repo", repo); err != nil {
		return err
	}
	if err := governance.ValidateOrgID(org); err != nil {
		return err
	}
	c, err := apiClient(repo, apiURL)
	if err != nil {
		return err
	}
	res, err := c.Resolve(ctx, org)
	var p *api.Problem
	switch {
	case errors.As(err, &p) && p.Kind() == "org-not-found":
		return fmt.Errorf("organisation %s not found by the node at %s: %s", org, c.Base, p.Detail)
	case err != nil:
		return fmt.Errorf("resolve %s through the node at %s: %w", org, c.Base, err)
	}
	if asJSON {
		return writeJSON(os.Stdout, "resolution", res)
	}
	printResolution(os.Stdout, res, time.Now())
	return nil
}

// writeJSON prints v indented, as the API gives it.
func writeJSON(w io.Writer, what string, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write %s: %w", what, err)
	}
	return nil
}

// printOrgs writes one table row per node of each organisation.
func printOrgs(w io.Writer, orgs []discovery.Resolution) {
	if len(orgs) == 0 {
		fmt.Fprintf(w, "no organisation matches\n")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "ORG\tFINID\tPEER\tROLE\tADDRESSES\tSERVICES\tLEDGERS\n")
	nodes := 0
	for _, o := range orgs {
		for _, n := range o.Nodes {
			nodes++
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", o.Org, o.FinID, n.Peer, n.Role, cell(n.Addrs), cell(n.Services), cell(n.Ledgers))
		}
		if len(o.Nodes) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\n", o.Org, o.FinID)
		}
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "%d organisations, %d nodes\n", len(orgs), nodes)
}

// cell shows a list in one table cell: comma-separated, "-" when empty.
func cell(items []string) string {
	if len(items) == 0 {
		return "-"
	}
	return strings.Join(items, ",")
}

// printResolution writes an organisation and each of its nodes.
func printResolution(w io.Writer, res discovery.Resolution, now time.Time) {
	fields(w,
		"org", res.Org,
		"finid", res.FinID,
		"source", res.Source,
		"nodes", fmt.Sprint(len(res.Nodes)),
	)
	for _, n := range res.Nodes {
		fmt.Fprintf(w, "node %s\n", n.Peer)
		printNodeInfo(w, n, now, true)
	}
}

// printNodeInfo writes what one node advertises, indented under a heading;
// a list is one value per line. withIdentity adds the role and version,
// which a node's own status already shows.
func printNodeInfo(w io.Writer, n discovery.NodeInfo, now time.Time, withIdentity bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name string, values ...string) {
		if len(values) == 0 {
			values = []string{"-"}
		}
		for i, v := range values {
			if i > 0 {
				name = ""
			}
			fmt.Fprintf(tw, "  %s\t%s\n", name, v)
		}
	}
	if withIdentity {
		row("role", n.Role)
		row("version", n.Version)
	}
	row("seq", fmt.Sprint(n.Seq))
	if n.Expires.IsZero() {
		row("expires")
	} else {
		row("expires", expiry(n.Expires, now))
	}
	row("addresses", n.Addrs...)
	row("services", n.Services...)
	row("ledgers", n.Ledgers...)
	row("protocols", n.Protocols...)
	_ = tw.Flush()
}
