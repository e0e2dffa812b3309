package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/finp2p/go-finp2p/api"
	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/atomicfile"
	"github.com/finp2p/go-finp2p/internal/limitedfile"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/resource"
)

func runACL(ctx context.Context, args []string) error {
	fs := newFlagSet("acl", "ID --repo DIR [--api URL] (--grant ORG=RIGHTS ... [--public] | --public | --private | --show) [--json]",
		"Has the running node of repo DIR (PUT /v1/resources/ID/acl) replace the ACL of resource ID,\n"+
			"which must belong to the node's own org, and hand it to every org it concerns. --grant gives\n"+
			"an org rights, a comma-separated list of read, subscribe, query and transact; --public lets\n"+
			"every member read and subscribe; --private sets an ACL that grants nobody anything (only\n"+
			"the owner's nodes have access). The ACL replaces the last one whole: give every grant each\n"+
			"time. With --show it prints the ACL the node holds instead (GET /v1/resources/ID/acl), its\n"+
			"own org's or one an owner handed to it.\n"+
			resourceIDHelp)
	var repo, apiURL string
	var grants grantFlag
	var public, private, show, asJSON bool
	fs.StringVar(&repo, "repo", "", "repo of the running node (for its API address and api.token) (required)")
	fs.StringVar(&apiURL, "api", "", "API base URL (default: from the repo's config.json)")
	fs.Var(&grants, "grant", "ORG=RIGHTS, such as bank-b=read,subscribe (repeatable)")
	fs.BoolVar(&public, "public", false, "let every member read and subscribe")
	fs.BoolVar(&private, "private", false, "grant nobody anything (replaces every grant)")
	fs.BoolVar(&show, "show", false, "print the ACL the node holds instead of setting one")
	fs.BoolVar(&asJSON, "json", false, "print the ACL as JSON, as the API gives it")
	id, err := resourceCommandArgs(fs, args, "set the ACL of", &repo)
	if err != nil {
		return err
	}
	switch {
	case show && (len(grants) > 0 || public || private):
		return usagef("--show prints the ACL the node holds; it takes no --grant, --public or --private")
	case private && (len(grants) > 0 || public):
		return usagef("--private grants nobody anything; it takes no --grant or --public")
	case !show && !private && !public && len(grants) == 0:
		return usagef("say what to set: --grant ORG=RIGHTS (repeatable), --public, or --private for no grants; or --show to print the ACL")
	}
	req := api.ACLRequest{Public: public, Grants: map[string]string{}}
	for _, g := range grants {
		if err := governance.ValidateOrgID(g.org); err != nil {
			return fmt.Errorf("--grant: %w", err)
		}
		rights, err := resource.ParseRights(g.rights)
		if err != nil {
			return fmt.Errorf("--grant %s=%s: %w", g.org, g.rights, err)
		}
		req.Grants[g.org] = rights.String()
	}
	c, err := apiClient(repo, apiURL)
	if err != nil {
		return err
	}
	var acl api.ACLResponse
	if show {
		acl, err = c.GetACL(ctx, id.String())
	} else {
		acl, err = c.SetACL(ctx, id.String(), req)
	}
	var p *api.Problem
	switch {
	case errors.As(err, &p) && p.Kind() == "not-owner":
		return fmt.Errorf("resource %s is not the node's org's to set the ACL of (node at %s): %s", id, c.Base, p.Detail)
	case errors.As(err, &p) && p.Kind() == "acl-not-found":
		return fmt.Errorf("%s (node at %s)", p.Detail, c.Base)
	case err != nil && show:
		return fmt.Errorf("get the ACL of %s through the node at %s: %w", id, c.Base, err)
	case err != nil:
		return fmt.Errorf("set the ACL of %s through the node at %s: %w", id, c.Base, err)
	}
	if acl.Warning != "" {
		fmt.Fprintf(os.Stderr, "finp2p acl: warning: the ACL is in force, but %s\n", oneLine(acl.Warning))
	}
	if asJSON {
		return writeJSON(os.Stdout, "ACL", acl)
	}
	printACL(os.Stdout, acl)
	return nil
}

// printACL writes an ACL for a person to read; grants are shown as --grant
// takes them.
func printACL(w io.Writer, acl api.ACLResponse) {
	grants := []string{}
	for _, org := range slices.Sorted(maps.Keys(acl.Grants)) {
		grants = append(grants, org+"="+acl.Grants[org].String())
	}
	shown := strings.Join(grants, " ")
	if shown == "" {
		shown = "none"
	}
	public := "no"
	if acl.Public {
		public = "yes: every member may read and subscribe"
	}
	fields(w,
		"resource", acl.Resource,
		"owner", acl.Owner,
		"version", fmt.Sprint(acl.Version),
		"public", public,
		"grants", shown,
	)
}

// grant is one --grant ORG=RIGHTS.
type grant struct{ org, rights string }

// grantFlag is the repeatable --grant flag. The form is checked here; the
// org and the rights after parsing, with the node's own messages.
type grantFlag []grant

func (g *grantFlag) String() string {
	var out []string
	for _, x := range *g {
		out = append(out, x.org+"="+x.rights)
	}
	return strings.Join(out, " ")
}

func (g *grantFlag) Set(v string) error {
	org, rights, ok := strings.Cut(v, "=")
	if !ok || org == "" || rights == "" {
		return fmt.Errorf("%q: want ORG=RIGHTS, such as bank-b=read,subscribe", v)
	}
	for _, x := range *g {
		if x.org == org {
			return fmt.Errorf("org %s is granted twice; give its rights in one --grant, comma-separated", org)
		}
	}
	*g = append(*g, grant{org: org, rights: rights})
	return nil
}

func runPutState(ctx context.Context, args []string) error {
	fs := newFlagSet("put-state", "ID --repo DIR [--api URL] FILE|-",
		"Has the running node of repo DIR (PUT /v1/resources/ID/state) serve the content of FILE\n"+
			"(- for standard input, at most 1 MiB) as the state of resource ID, which must belong to the\n"+
			"node's own org. Orgs its ACL lets read fetch it with 'finp2p get'.\n"+
			resourceIDHelp)
	var repo, apiURL string
	fs.StringVar(&repo, "repo", "", "repo of the running node (for its API address and api.token) (required)")
	fs.StringVar(&apiURL, "api", "", "API base URL (default: from the repo's config.json)")
	positional, err := parseFlagsAndArgs(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 2 {
		return usagef("want two arguments, the resource ID and the FILE holding its state (- for standard input)")
	}
	if err := requireFlags("repo", repo); err != nil {
		return err
	}
	id, err := resource.ParseID(positional[0])
	if err != nil {
		return err
	}
	data, err := readInput(positional[1], node.MaxResourceState)
	if err != nil {
		return err
	}
	c, err := apiClient(repo, apiURL)
	if err != nil {
		return err
	}
	err = c.PutState(ctx, id.String(), data)
	var p *api.Problem
	switch {
	case errors.As(err, &p) && p.Kind() == "not-owner":
		return fmt.Errorf("resource %s is not the node's org's to set the state of (node at %s): %s", id, c.Base, p.Detail)
	case err != nil:
		return fmt.Errorf("set the state of %s through the node at %s: %w", id, c.Base, err)
	}
	fields(os.Stdout, "resource", id.String(), "state", fmt.Sprintf("%d bytes stored", len(data)))
	return nil
}

func runGet(ctx context.Context, args []string) error {
	fs := newFlagSet("get", "ID --repo DIR [--api URL] [--out FILE]",
		"Has the running node of repo DIR (GET /v1/resources/ID/state) fetch the state of resource ID\n"+
			"from its owner's node, which serves it only if its ACL lets the node's org read it, and\n"+
			"writes it to standard output, or to FILE (mode 0600) with --out.\n"+
			resourceIDHelp)
	var repo, apiURL, out string
	fs.StringVar(&repo, "repo", "", "repo of the running node (for its API address and api.token) (required)")
	fs.StringVar(&apiURL, "api", "", "API base URL (default: from the repo's config.json)")
	fs.StringVar(&out, "out", "", "file to write the state to (default: standard output)")
	id, err := resourceCommandArgs(fs, args, "get", &repo)
	if err != nil {
		return err
	}
	c, err := apiClient(repo, apiURL)
	if err != nil {
		return err
	}
	data, err := c.GetState(ctx, id.String())
	var p *api.Problem
	switch {
	case errors.As(err, &p) && p.Kind() == "access-denied":
		return fmt.Errorf("the node at %s may not read %s: %s", c.Base, id, p.Detail)
	case errors.As(err, &p) && p.Kind() == "rate-limited":
		return fmt.Errorf("the owner of %s drops the requests of the node at %s for now, after too many refusals; try again in a second: %s", id, c.Base, p.Detail)
	case errors.As(err, &p) && p.Kind() == "resource-not-found":
		return fmt.Errorf("resource %s has no state at its owner: %s", id, p.Detail)
	case err != nil:
		return fmt.Errorf("get %s through the node at %s: %w", id, c.Base, err)
	}
	if out == "" {
		if _, err := os.Stdout.Write(data); err != nil {
			return fmt.Errorf("write the state: %w", err)
		}
		return nil
	}
	if err := atomicfile.Write(out, data, 0o600); err != nil {
		return err
	}
	fields(os.Stdout, "resource", id.String(), "state", fmt.Sprintf("%d bytes written to %s", len(data), out))
	return nil
}

func runPublish(ctx context.Context, args []string) error {
	fs := newFlagSet("publish", "ID --repo DIR [--api URL] (--data STRING | FILE | -)",
		"Has the running node of repo DIR (POST /v1/resources/ID/updates) publish an update of\n"+
			"resource ID, which must belong to the node's own org, on the resource's topic: the text\n"+
			"of --data, or the content of FILE (- for standard input), at most 256 KiB. Prints the\n"+
			"update's sequence number; subscribers receive every update once, in order.\n"+
			resourceIDHelp)
	var repo, apiURL, text string
	fs.StringVar(&repo, "repo", "", "repo of the running node (for its API address and api.token) (required)")
	fs.StringVar(&apiURL, "api", "", "API base URL (default: from the repo's config.json)")
	fs.StringVar(&text, "data", "", "the update, as text")
	positional, err := parseFlagsAndArgs(fs, args)
	if err != nil {
		return err
	}
	dataGiven := flagGiven(fs, "data")
	switch {
	case len(positional) == 0:
		return usagef("want the resource ID to publish on")
	case len(positional) > 2:
		return usagef("want the resource ID and at most one FILE")
	case dataGiven == (len(positional) == 2):
		return usagef("give exactly one of --data and FILE (- for standard input)")
	}
	if err := requireFlags("repo", repo); err != nil {
		return err
	}
	id, err := resource.ParseID(positional[0])
	if err != nil {
		return err
	}
	data := []byte(text)
	if dataGiven {
		if len(data) > node.MaxUpdateSize {
			return fmt.Errorf("--data: %d bytes, at most %d", len(data), node.MaxUpdateSize)
		}
	} else if data, err = readInput(positional[1], node.MaxUpdateSize); err != nil {
		return err
	}
	c, err := apiClient(repo, apiURL)
	if err != nil {
		return err
	}
	resp, err := c.PublishUpdate(ctx, id.String(), data)
	var p *api.Problem
	switch {
	case errors.As(err, &p) && p.Kind() == "not-owner":
		return fmt.Errorf("resource %s is not the node's org's to publish on (node at %s): %s", id, c.Base, p.Detail)
	case err != nil:
		return fmt.Errorf("publish on %s through the node at %s: %w", id, c.Base, err)
	}
	if resp.Warning != "" {
		fmt.Fprintf(os.Stderr, "finp2p publish: warning: %s\n", oneLine(resp.Warning))
	}
	fields(os.Stdout, "resource", id.String(), "seq", fmt.Sprint(resp.Seq))
	return nil
}

func runSubscribe(ctx context.Context, args []string) error {
	fs := newFlagSet("subscribe", "ID --repo DIR [--api URL] [--count N] [--json]",
		"Has the running node of repo DIR (GET /v1/resources/ID/updates) subscribe to resource ID's\n"+
			"topic and prints each update published from then on as a line SEQ<TAB>PUBLISHER<TAB>DATA,\n"+
			"in order per publishing node, until interrupted or --count updates arrived. DATA is shown\n"+
			"as is when it is one line of printable text, else Go-quoted (starting with \"); --json\n"+
			"prints each update as one JSON object (data in base64), as the API gives it. Once the\n"+
			"subscription is live it says so on standard error.\n"+
			resourceIDHelp)
	var repo, apiURL string
	var count int
	var asJSON bool
	fs.StringVar(&repo, "repo", "", "repo of the running node (for its API address and api.token) (required)")
	fs.StringVar(&apiURL, "api", "", "API base URL (default: from the repo's config.json)")
	fs.IntVar(&count, "count", 0, "stop after this many updates (default: until interrupted)")
	fs.BoolVar(&asJSON, "json", false, "print each update as a JSON line")
	id, err := resourceCommandArgs(fs, args, "subscribe to", &repo)
	if err != nil {
		return err
	}
	if count < 0 {
		return usagef("--count %d: want 0 (no limit) or more", count)
	}
	c, err := apiClient(repo, apiURL)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	updates, err := c.Subscribe(ctx, id.String())
	var p *api.Problem
	switch {
	case errors.As(err, &p) && p.Kind() == "access-denied":
		return fmt.Errorf("the node at %s may not subscribe to %s: %s", c.Base, id, p.Detail)
	case err != nil:
		return fmt.Errorf("subscribe to %s through the node at %s: %w", id, c.Base, err)
	}
	fmt.Fprintf(os.Stderr, "subscribed to %s through the node at %s\n", id, c.Base)
	enc := json.NewEncoder(os.Stdout)
	received := 0
	for u := range updates {
		if asJSON {
			err = enc.Encode(u)
		} else {
			_, err = fmt.Fprintf(os.Stdout, "%d\t%s\t%s\n", u.Seq, u.Publisher, showData(u.Data))
		}
		if err != nil {
			return fmt.Errorf("write update %d: %w", u.Seq, err)
		}
		received++
		if received == count {
			return nil
		}
	}
	if ctx.Err() != nil {
		return nil // interrupted
	}
	return fmt.Errorf("the node at %s ended the stream after %d updates (did it stop?)", c.Base, received)
}

// showData is an update's data on one line: as is when it is printable text
// that does not start with a quote, else Go-quoted.
func showData(b []byte) string {
	s := string(b)
	printable := utf8.ValidString(s) && !strings.HasPrefix(s, `"`)
	for _, r := range s {
		if !printable {
			break
		}
		printable = unicode.IsPrint(r)
	}
	if printable {
		return s
	}
	return strconv.Quote(s)
}

// readInput reads FILE, or standard input for "-", refusing more than max
// bytes.
func readInput(file string, max int) ([]byte, error) {
	if file != "-" {
		return limitedfile.Read(file, int64(max))
	}
	data, err := io.ReadAll(io.LimitReader(os.Stdin, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("read standard input: %w", err)
	}
	if len(data) > max {
		return nil, fmt.Errorf("standard input is larger than the %d bytes allowed", max)
	}
	return data, nil
}

// flagGiven reports whether the flag was set on the command line, even to
// an empty value.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}
