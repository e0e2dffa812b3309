package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/finp2p/go-finp2p/api"
	"github.com/finp2p/go-finp2p/node"
)

func runStatus(ctx context.Context, args []string) error {
	fs := newFlagSet("status", "--repo DIR [--api URL] [--json]",
		"Asks the running node of repo DIR (GET /v1/status, with the token from DIR/api.token) who it\n"+
			"is, what it advertises to the network and which members it is connected to.")
	var repo, apiURL string
	var asJSON bool
	fs.StringVar(&repo, "repo", "", "repo of the running node (required)")
	fs.StringVar(&apiURL, "api", "", "API base URL (default: from the repo's config.json)")
	fs.BoolVar(&asJSON, "json", false, "print the status as JSON")
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
	st, err := c.Status(ctx)
	if err != nil {
		return fmt.Errorf("node at %s: %w", c.Base, err)
	}
	if asJSON {
		return writeJSON(os.Stdout, "status", st)
	}
	printStatus(os.Stdout, st, time.Now())
	return nil
}

// printStatus writes a node's status for a person to read.
func printStatus(w io.Writer, st node.Status, now time.Time) {
	fields(w,
		"peer", st.PeerID,
		"network", st.Network,
		"org", st.Org,
		"finid", st.FinID,
		"role", st.Role,
		"version", st.Version,
		"certificate", "expires "+expiry(st.CertificateExpires, now),
	)
	fmt.Fprintf(w, "addresses\n")
	for _, a := range st.Addresses {
		fmt.Fprintf(w, "  %s\n", a)
	}
	if ad := st.Advertisement; ad != nil {
		fmt.Fprintf(w, "advertisement\n")
		printNodeInfo(w, *ad, now, false)
	}
	fmt.Fprintf(w, "members   %d connected\n", len(st.Members))
	if len(st.Members) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  ORG\tROLE\tPEER\tADDRESS\n")
	for _, m := range st.Members {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", m.Org, m.Role, m.PeerID, strings.Join(m.Addresses, " "))
	}
	_ = tw.Flush()
}

// expiry shows when something expires: the time, and how far off it is.
func expiry(t, now time.Time) string {
	return fmt.Sprintf("%s (%s)", t.UTC().Format(time.RFC3339), roundDuration(t.Sub(now)))
}

// roundDuration shows a duration from now, "in 3d" or "expired 2h0m0s ago".
func roundDuration(d time.Duration) string {
	if d < 0 {
		// -minDuration overflows: a zero time's distance saturates to it.
		return "expired " + roundAbs(max(-d, -(d+1))) + " ago"
	}
	return "in " + roundAbs(d)
}

// roundAbs shows a positive duration in days, or smaller units under a day.
func roundAbs(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
	return d.Round(time.Second).String()
}

// apiClient builds a client for the node of repo: the base URL from apiURL
// or the repo's effective configuration (config.json and the environment,
// as 'finp2p run' reads them), the bearer token from its api.token.
func apiClient(repo, apiURL string) (*api.Client, error) {
	if err := checkRepo(repo); err != nil {
		return nil, err
	}
	token, err := node.ReadToken(repo)
	if err != nil {
		return nil, err
	}
	base := apiURL
	if base == "" {
		rc, err := loadRepoConfig(repo, os.LookupEnv, nil)
		if err != nil {
			return nil, err
		}
		if base, err = baseURL(rc.cfg.API); err != nil {
			return nil, fmt.Errorf("api address from %s: %w", rc.origin("api"), err)
		}
	} else if base, err = normaliseURL(apiURL); err != nil {
		return nil, fmt.Errorf("--api: %w", err)
	}
	return &api.Client{Base: base, Token: token, TokenFile: filepath.Join(repo, node.TokenFileName)}, nil
}

// baseURL turns the host:port a node listens on into a URL to call it at:
// an unspecified host (0.0.0.0, ::) is reached on loopback.
func baseURL(hostPort string) (string, error) {
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return "", fmt.Errorf("%q: %w", hostPort, err)
	}
	if port == "0" {
		return "", fmt.Errorf("%q has port 0, so the node's API address is only known to the node; pass --api", hostPort)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// normaliseURL accepts http://host:port (optionally with a trailing slash)
// or a bare host:port.
func normaliseURL(s string) (string, error) {
	if !strings.Contains(s, "://") {
		return baseURL(s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("%q: scheme %q, want http or https", s, u.Scheme)
	}
	if u.Host == "" {
		return "", fmt.Errorf("%q has no host", s)
	}
	return strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/"), nil
}
