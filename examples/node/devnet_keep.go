package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/finp2p/go-finp2p/internal/atomicfile"
	"github.com/finp2p/go-finp2p/node"
)

// devnetFile is the file `devnet --keep` writes in its directory once every
// step passed, and removes when it stops the nodes: while it exists, it
// says how to reach the running network.
const devnetFile = "devnet.json"

// devnetInfo is what devnet.json holds.
type devnetInfo struct {
	Network string `json:"network"`
	Dir     string `json:"dir"`
	// Genesis is the network's genesis file, for `finp2p init --genesis`.
	Genesis string `json:"genesis"`
	// GovernanceCA is the governance authority's directory, for
	// `finp2p certify --ca`: it certifies new member nodes.
	GovernanceCA string           `json:"governance_ca"`
	Nodes        []devnetNodeInfo `json:"nodes"`
	Asset        devnetAssetInfo  `json:"asset"`
}

// devnetNodeInfo describes one running node.
type devnetNodeInfo struct {
	Name string `json:"name"`
	Org  string `json:"org"`
	Role string `json:"role"`
	Peer string `json:"peer"`
	// API is the base URL of the node's HTTP API; TokenFile holds its
	// bearer token.
	API       string `json:"api"`
	TokenFile string `json:"token_file"`
	Repo      string `json:"repo"`
	Log       string `json:"log"`
	PID       int    `json:"pid"`
	// Standby marks the second node of the cluster; Follows lists the
	// ledgers the node keeps a replica of.
	Standby bool     `json:"standby,omitempty"`
	Follows []string `json:"follows,omitempty"`
	Revoked bool     `json:"revoked,omitempty"`
}

// devnetAssetInfo is the asset the transfer moved, as the run left it.
type devnetAssetInfo struct {
	ID     string `json:"id"`
	Ledger string `json:"ledger"`
	// Owner is the asset's org; OwnerRepo the repo of its primary node,
	// for the commands that manage the asset (acl, issue, balance).
	Owner     string `json:"owner"`
	OwnerRepo string `json:"owner_repo"`
	// Grants is the asset's ACL as devnet set it: `finp2p acl` replaces
	// the whole list, so add to these.
	Grants map[string]string `json:"grants"`
	// Requester is the org that asked for the transfer and keeps the
	// receipt of transaction Receipt.
	Requester string `json:"requester"`
	Receipt   string `json:"receipt"`
	// Balances are the accounts' current balances after the transfer.
	Balances map[string]string `json:"balances"`
}

func (d *devnet) info() devnetInfo {
	info := devnetInfo{
		Network: devnetNetwork, Dir: d.dir,
		Genesis:      filepath.Join(d.dir, genesisFile),
		GovernanceCA: filepath.Join(d.dir, devnetGovCADir),
		Asset: devnetAssetInfo{
			ID: d.ledgerAsset, Ledger: embeddedLedger(d.owner.org),
			Owner: d.owner.org, OwnerRepo: d.owner.repo,
			Grants:    map[string]string{d.requester.org: "transact"},
			Requester: d.requester.org, Receipt: d.receipt.Transaction.ID,
			Balances: map[string]string{},
		},
	}
	if len(d.users) == 2 {
		info.Asset.Balances[d.users[0].resource] = "60"
		info.Asset.Balances[d.users[1].resource] = "40"
	}
	for _, n := range d.nodes() {
		ni := devnetNodeInfo{
			Name: n.name, Org: n.org, Role: string(n.role), Peer: n.peer.String(),
			API: n.client.Base, TokenFile: filepath.Join(n.repo, node.TokenFileName),
			Repo: n.repo, Log: n.logPath,
			Standby: n.standby, Follows: n.follows, Revoked: n == d.revoked,
		}
		if n.cmd != nil && n.cmd.Process != nil {
			ni.PID = n.cmd.Process.Pid
		}
		info.Nodes = append(info.Nodes, ni)
	}
	return info
}

// keepRunning serves --keep: it writes devnet.json, shows how to reach each
// node, waits for Ctrl-C (or SIGTERM) and then stops the nodes.
func (d *devnet) keepRunning(ctx context.Context) error {
	path := filepath.Join(d.dir, devnetFile)
	data, err := json.MarshalIndent(d.info(), "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", devnetFile, err)
	}
	if err := atomicfile.Write(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(path)

	fmt.Fprintf(d.out, "\nthe nodes keep running; press Ctrl-C to stop them\n")
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  NODE\tORG\tROLE\tAPI\tTOKEN\tLOG\n")
	for _, n := range d.nodes() {
		role := string(n.role)
		switch {
		case n == d.revoked:
			role += " (revoked)"
		case n.standby:
			role += " (standby)"
		case len(n.follows) > 0:
			role += " (follower)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", n.name, n.org, role, n.client.Base, filepath.Join(n.repo, node.TokenFileName), n.logPath)
	}
	_ = tw.Flush()
	fmt.Fprintf(d.out, "network: %s (genesis %s, governance CA %s)\n", path, filepath.Join(d.dir, genesisFile), filepath.Join(d.dir, devnetGovCADir))
	r, alice := d.requester, d.users[0]
	fmt.Fprintf(d.out, "try:  finp2p status --repo %s\n", r.repo)
	fmt.Fprintf(d.out, "      finp2p orgs --repo %s --ledger %s\n", r.repo, embeddedLedger(d.owner.org))
	fmt.Fprintf(d.out, "      finp2p resolve %s --repo %s\n", d.owner.org, r.repo)
	fmt.Fprintf(d.out, "      finp2p find %s --repo %s\n", d.asset, d.reader.repo)
	fmt.Fprintf(d.out, "      finp2p balance-of %s %s --repo %s\n", d.ledgerAsset, alice.resource, r.repo)
	fmt.Fprintf(d.out, "      finp2p validate-receipt %s --repo %s\n", d.receipt.Transaction.ID, r.repo)
	fmt.Fprintf(d.out, "      finp2p ledgers --repo %s\n", d.follower.repo)
	fmt.Fprintf(d.out, "      curl -H \"Authorization: Bearer $(cat %s)\" %s/v1/status\n",
		filepath.Join(r.repo, node.TokenFileName), r.client.Base)
	<-ctx.Done()
	fmt.Fprintf(d.out, "\nstopping %d nodes\n", len(d.nodes()))
	results := d.stopAll()
	for _, n := range d.nodes() {
		if err, ok := results[n]; ok {
			fmt.Fprintf(d.out, "  %-24s %s\n", n.name, describeExit(err))
		}
	}
	return nil
}
