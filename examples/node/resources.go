package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/finp2p/go-finp2p/api"
	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/node"
	"github.com/finp2p/go-finp2p/resource"
)

// resourceIDHelp is how the resource commands' usage texts name an ID.
const resourceIDHelp = "ID is a resource id, org:type:id (bank-a:102:9929ccaf-8967-4ba3-9198-a4b8e3128388)\n" +
	"or finp2p://org/type/id."

func runAdvertise(ctx context.Context, args []string) error {
	fs := newFlagSet("advertise", "ID --repo DIR [--api URL] [--topic T] [--to ORG ...] [--json]",
		"Has the running node of repo DIR (POST /v1/resources) advertise resource ID, which must\n"+
			"belong to the node's own org. Without --to the advertisement is public: it goes into the\n"+
			"DHT and any member finds it. With --to it is restricted: it is handed only to the nodes of\n"+
			"the orgs named, and only they find it. Advertising again replaces the last advertisement.\n"+
			resourceIDHelp)
	var repo, apiURL, topic string
	var to listFlag
	var asJSON bool
	fs.StringVar(&repo, "repo", "", "repo of the running node (for its API address and api.token) (required)")
	fs.StringVar(&apiURL, "api", "", "API base URL (default: from the repo's config.json)")
	fs.StringVar(&topic, "topic", "", "pub/sub topic of the resource's updates, if any")
	fs.Var(&to, "to", "org to advertise to, making the advertisement restricted (repeatable, or comma-separated)")
	fs.BoolVar(&asJSON, "json", false, "print the advertisement as JSON, as the API gives it")
	id, err := resourceCommandArgs(fs, args, "advertise", &repo)
	if err != nil {
		return err
	}
	if len(topic) > resource.MaxTopicLen {
		return fmt.Errorf("--topic: %d bytes, at most %d", len(topic), resource.MaxTopicLen)
	}
	for _, org := range to {
		if err := governance.ValidateOrgID(org); err != nil {
			return fmt.Errorf("--to: %w", err)
		}
	}
	c, err := apiClient(repo, apiURL)
	if err != nil {
		return err
	}
	info, err := c.AdvertiseResource(ctx, id.String(), topic, to)
	var p *api.Problem
	switch {
	case errors.As(err, &p) && p.Kind() == "not-owner":
		return fmt.Errorf("resource %s is not the node's org's to advertise (node at %s): %s", id, c.Base, p.Detail)
	case err != nil:
		return fmt.Errorf("advertise %s through the node at %s: %w", id, c.Base, err)
	}
	if asJSON {
		return writeJSON(os.Stdout, "advertisement", info)
	}
	printResource(os.Stdout, info, to, time.Now())
	return nil
}

func runFind(ctx context.Context, args []string) error {
	fs := newFlagSet("find", "ID --repo DIR [--api URL] [--json]",
		"Asks the running node of repo DIR (GET /v1/resources/ID) for resource ID's advertisement:\n"+
			"its owner org, the peer that advertised it, whether it is restricted, its topic, sequence\n"+
			"number and expiry. The node answers from the advertisements it holds (its own and the\n"+
			"restricted ones handed to it), else from the DHT.\n"+
			resourceIDHelp)
	var repo, apiURL string
	var asJSON bool
	fs.StringVar(&repo, "repo", "", "repo of the running node (for its API address and api.token) (required)")
	fs.StringVar(&apiURL, "api", "", "API base URL (default: from the repo's config.json)")
	fs.BoolVar(&asJSON, "json", false, "print the advertisement as JSON, as the API gives it")
	id, err := resourceCommandArgs(fs, args, "find", &repo)
	if err != nil {
		return err
	}
	c, err := apiClient(repo, apiURL)
	if err != nil {
		return err
	}
	info, err := c.FindResource(ctx, id.String())
	var p *api.Problem
	switch {
	case errors.As(err, &p) && p.Kind() == "resource-not-found":
		return fmt.Errorf("resource %s not found by the node at %s: %s", id, c.Base, p.Detail)
	case err != nil:
		return fmt.Errorf("find %s through the node at %s: %w", id, c.Base, err)
	}
	if asJSON {
		return writeJSON(os.Stdout, "advertisement", info)
	}
	printResource(os.Stdout, info, nil, time.Now())
	return nil
}

func runWithdraw(ctx context.Context, args []string) error {
	fs := newFlagSet("withdraw", "ID --repo DIR [--api URL]",
		"Has the running node of repo DIR (DELETE /v1/resources/ID) withdraw its advertisement of\n"+
			"resource ID: a newer advertisement marked withdrawn replaces it wherever it went (the DHT,\n"+
			"or the orgs a restricted one was handed to), and nobody finds the resource any more.\n"+
			resourceIDHelp)
	var repo, apiURL string
	fs.StringVar(&repo, "repo", "", "repo of the running node (for its API address and api.token) (required)")
	fs.StringVar(&apiURL, "api", "", "API base URL (default: from the repo's config.json)")
	id, err := resourceCommandArgs(fs, args, "withdraw", &repo)
	if err != nil {
		return err
	}
	c, err := apiClient(repo, apiURL)
	if err != nil {
		return err
	}
	err = c.WithdrawResource(ctx, id.String())
	var p *api.Problem
	switch {
	case errors.As(err, &p) && p.Kind() == "resource-not-found":
		return fmt.Errorf("resource %s was not advertised by the node at %s: %s", id, c.Base, p.Detail)
	case err != nil:
		return fmt.Errorf("withdraw %s through the node at %s: %w", id, c.Base, err)
	}
	fields(os.Stdout, "withdrawn", id.String())
	return nil
}

// resourceCommandArgs parses a resource command's flags and its one ID
// argument, and checks that --repo was given.
func resourceCommandArgs(fs *flag.FlagSet, args []string, name string, repo *string) (resource.ID, error) {
	positional, err := parseFlagsAndArgs(fs, args)
	if err != nil {
		return resource.ID{}, err
	}
	if len(positional) != 1 {
		return resource.ID{}, usagef("want exactly one ID argument, the resource id to %s", name)
	}
	if err := requireFlags("repo", *repo); err != nil {
		return resource.ID{}, err
	}
	return resource.ParseID(positional[0])
}

// printResource writes a resource's advertisement for a person to read; to
// is the audience of a restricted advertisement this command made, if known.
func printResource(w io.Writer, info node.ResourceInfo, to []string, now time.Time) {
	visibility := "public"
	if info.Restricted {
		visibility = "restricted"
		if len(to) > 0 {
			visibility += " to " + strings.Join(to, ",")
		}
	}
	topic := info.Topic
	if topic == "" {
		topic = "-"
	}
	fields(w,
		"resource", info.Resource,
		"owner", info.Owner,
		"visibility", visibility,
		"topic", topic,
		"peer", info.Peer,
		"seq", fmt.Sprint(info.Seq),
		"expires", expiry(info.Expires, now),
	)
}
