package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/finp2p/go-finp2p/api"
	"github.com/finp2p/go-finp2p/internal/atomicfile"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/resource"
)

func runCreateUser(ctx context.Context, args []string) error {
	fs := newFlagSet("create-user", "--repo DIR [--api URL] (--data STRING | FILE | -) [--json]",
		"Has the running node of repo DIR (POST /v1/users) create a user profile of its org: a key the\n"+
			"node keeps, whose compressed public key is the user's FinID, and the user's details (the\n"+
			"text of --data, or the content of FILE, - for standard input, at most 256 KiB) as the private\n"+
			"data of the user resource org:101:FinID. Prints the FinID and the resource; orgs the\n"+
			"resource's ACL lets query read the details with 'finp2p private'.")
	var repo, apiURL, text string
	var asJSON bool
	fs.StringVar(&repo, "repo", "", "repo of the running node (for its API address and api.token) (required)")
	fs.StringVar(&apiURL, "api", "", "API base URL (default: from the repo's config.json)")
	fs.StringVar(&text, "data", "", "the user's details, as text")
	fs.BoolVar(&asJSON, "json", false, "print the user as JSON, as the API gives it")
	positional, err := parseFlagsAndArgs(fs, args)
	if err != nil {
		return err
	}
	dataGiven := flagGiven(fs, "data")
	switch {
	case len(positional) > 1:
		return usagef("want at most one FILE argument, the user's details")
	case dataGiven == (len(positional) == 1):
		return usagef("give exactly one of --data and FILE (- for standard input)")
	}
	if err := requireFlags("repo", repo); err != nil {
		return err
	}
	details := []byte(text)
	if dataGiven {
		if len(details) > node.MaxPrivateData {
			return fmt.Errorf("--data: %d bytes, at most %d", len(details), node.MaxPrivateData)
		}
	} else if details, err = readInput(positional[0], node.MaxPrivateData); err != nil {
		return err
	}
	c, err := apiClient(repo, apiURL)
	if err != nil {
		return err
	}
	user, err := c.CreateUser(ctx, details)
	if err != nil {
		return fmt.Errorf("create a user through the node at %s: %w", c.Base, err)
	}
	if asJSON {
		return writeJSON(os.Stdout, "user", user)
	}
	fields(os.Stdout, "finid", user.FinID, "resource", user.Resource.String())
	return nil
}

func runPrivate(ctx context.Context, args []string) error {
	fs := newFlagSet("private", "ID --repo DIR [--api URL] [--set FILE|- | --out FILE]",
		"Has the running node of repo DIR (GET /v1/resources/ID/private) ask the owner of resource ID\n"+
			"for its private data, such as a user's details, which the owner's node serves only if its\n"+
			"ACL lets the node's org query it, and writes it to standard output, or to FILE (mode 0600)\n"+
			"with --out. With --set (PUT /v1/resources/ID/private) the node instead keeps the content\n"+
			"of FILE (- for standard input, at most 256 KiB) as the private data of ID, which must belong\n"+
			"to the node's own org.\n"+
			resourceIDHelp)
	var repo, apiURL, set, out string
	fs.StringVar(&repo, "repo", "", "repo of the running node (for its API address and api.token) (required)")
	fs.StringVar(&apiURL, "api", "", "API base URL (default: from the repo's config.json)")
	fs.StringVar(&set, "set", "", "file holding the private data to set (- for standard input)")
	fs.StringVar(&out, "out", "", "file to write the private data to (default: standard output)")
	id, err := resourceCommandArgs(fs, args, "query", &repo)
	if err != nil {
		return err
	}
	if flagGiven(fs, "set") && set == "" {
		return usagef("--set wants a FILE (- for standard input)")
	}
	if set != "" && out != "" {
		return usagef("--set stores the private data and --out writes what a query answers: give at most one")
	}
	c, err := apiClient(repo, apiURL)
	if err != nil {
		return err
	}
	if set != "" {
		return setPrivate(ctx, c, id, set)
	}
	data, err := c.QueryPrivateData(ctx, id.String())
	var p *api.Problem
	switch {
	case errors.As(err, &p) && p.Kind() == "access-denied":
		return fmt.Errorf("the node at %s may not query %s: %s", c.Base, id, p.Detail)
	case errors.As(err, &p) && p.Kind() == "rate-limited":
		return fmt.Errorf("the owner of %s drops the requests of the node at %s for now, after too many refusals; try again in a second: %s", id, c.Base, p.Detail)
	case errors.As(err, &p) && p.Kind() == "resource-not-found":
		return fmt.Errorf("resource %s has no private data at its owner: %s", id, p.Detail)
	case err != nil:
		return fmt.Errorf("query %s through the node at %s: %w", id, c.Base, err)
	}
	if out == "" {
		if _, err := os.Stdout.Write(data); err != nil {
			return fmt.Errorf("write the private data: %w", err)
		}
		return nil
	}
	if err := atomicfile.Write(out, data, 0o600); err != nil {
		return err
	}
	fields(os.Stdout, "resource", id.String(), "private", fmt.Sprintf("%d bytes written to %s", len(data), out))
	return nil
}

// setPrivate is 'finp2p private --set': it has the node keep the content
// of file as the private data of one of its org's resources.
func setPrivate(ctx context.Context, c *api.Client, id resource.ID, file string) error {
	data, err := readInput(file, node.MaxPrivateData)
	if err != nil {
		return err
	}
	err = c.SetPrivateData(ctx, id.String(), data)
	var p *api.Problem
	switch {
	case errors.As(err, &p) && p.Kind() == "not-owner":
		return fmt.Errorf("resource %s is not the node's org's to set the private data of (node at %s): %s", id, c.Base, p.Detail)
	case err != nil:
		return fmt.Errorf("set the private data of %s through the node at %s: %w", id, c.Base, err)
	}
	fields(os.Stdout, "resource", id.String(), "private", fmt.Sprintf("%d bytes stored", len(data)))
	return nil
}
