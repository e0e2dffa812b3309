package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/finp2p/go-finp2p/node"
)

// TestRunJSONLogsAndMetrics runs two nodes with --log-format json: their
// stderr is one JSON object a line, every line about a peer names its org,
// and the founder's /metrics holds the FinP2P families, libp2p's resource
// manager's and the Go runtime's.
func TestRunJSONLogsAndMetrics(t *testing.T) {
	tn := newTestNet(t)
	founder := startNode(t, "founder", tn.founder.repo, "--log-format", "json", "--log-level", "debug")
	governor := startNode(t, "governor", tn.governor.repo, "--log-format", "json", "--log-level", "debug")
	waitFor(t, networkTimeout, "the governor lists the founder as a member", func() (bool, string) {
		st, err := governor.status(t)
		if err != nil {
			return false, err.Error()
		}
		return lists(st, founder.peer), fmt.Sprintf("%+v", st.Members)
	})

	token, err := node.ReadToken(tn.founder.repo)
	if err != nil {
		t.Fatal(err)
	}
	families := []string{
		"finp2p_members_connected", "finp2p_membership_handshakes_total", "finp2p_requests_total",
		"finp2p_request_duration_seconds", "finp2p_gossip_validations_total", "finp2p_broadcasts_total",
		"finp2p_ledger_operations_total", "libp2p_rcmgr_limit", "libp2p_rcmgr_connections", "libp2p_rcmgr_streams",
		"go_goroutines", "process_cpu_seconds_total",
	}
	// The duration histogram appears with the first request served (the
	// governor's registration): poll.
	waitFor(t, networkTimeout, "every metric family on /metrics", func() (bool, string) {
		text, err := scrape(founder.api+"/metrics", token)
		if err != nil {
			return false, err.Error()
		}
		var missing []string
		for _, f := range families {
			if !strings.Contains(text, "\n# TYPE "+f+" ") {
				missing = append(missing, f)
			}
		}
		if !strings.Contains(text, "\nfinp2p_members_connected 1\n") {
			missing = append(missing, "finp2p_members_connected 1")
		}
		return len(missing) == 0, "missing " + strings.Join(missing, ", ")
	})

	founder.stop(t)
	governor.stop(t)
	for _, n := range []*testNode{founder, governor} {
		data, err := os.ReadFile(n.logPath)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		verified := 0
		for _, line := range lines {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("%s: log line is not JSON: %v\n%s", n.name, err, line)
			}
			if rec["msg"] == nil || rec["level"] == nil || rec["time"] == nil {
				t.Errorf("%s: log line without time, level and msg: %s", n.name, line)
			}
			if rec["msg"] == "member verified" {
				verified++
			}
			// libp2p's own lines ("logger" names the subsystem) keep
			// libp2p's keys.
			if _, lib := rec["logger"]; lib {
				continue
			}
			if _, ok := rec["peer"]; ok {
				if org, _ := rec["org"].(string); org == "" {
					t.Errorf("%s: log line about a peer without its org: %s", n.name, line)
				}
			}
		}
		if verified == 0 {
			t.Errorf("%s: no 'member verified' line in %d lines", n.name, len(lines))
		}
	}
}

// scrape fetches a /metrics page with the API token.
func scrape(url, token string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return string(body), nil
}
