package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/finp2p/go-finp2p/api"
	"github.com/finp2p/go-finp2p/node"
)

// finp2pEnv runs the binary to completion with env added to the test's
// environment.
func finp2pEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, finp2pBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("finp2p %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// initTestRepo makes an uncertified repo listening on loopback.
func initTestRepo(t *testing.T) string {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "bank-a")
	mustFinp2p(t, "init", "--repo", repo, "--org", "bank-a", "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0", "--service", "custody")
	return repo
}

// editConfig sets key to value in repo's config.json.
func editConfig(t *testing.T, repo, key string, value any) {
	t.Helper()
	path := filepath.Join(repo, node.ConfigFileName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	m[key] = value
	if data, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestConfigShow: config show prints config.json overridden by FINP2P_*
// variables, overridden in turn by flags, and notes on stderr which fields
// came from where.
func TestConfigShow(t *testing.T) {
	t.Parallel()
	repo := initTestRepo(t)
	env := []string{
		"FINP2P_API=127.0.0.1:6001",
		"FINP2P_LEDGERS=ethereum, canton",
		"FINP2P_HANDSHAKE_TIMEOUT=3s",
		"FINP2P_ANNOUNCE=", // empty counts as unset
	}
	r := finp2pEnv(t, env, "config", "show", "--repo", repo, "--api", "127.0.0.1:6002")
	if r.code != 0 {
		t.Fatalf("config show: %s", r)
	}
	var got node.Config
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("config show did not print a config.json: %v\n%s", err, r.stdout)
	}
	want := node.DefaultConfig()
	want.Listen = []string{"/ip4/127.0.0.1/tcp/0"} // config.json
	want.Services = []string{"custody"}            // config.json
	want.API = "127.0.0.1:6002"                    // the flag beats FINP2P_API
	want.Ledgers = []string{"ethereum", "canton"}  // the environment
	want.HandshakeTimeout = node.Duration(3e9)     // the environment
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config show printed\n%+v\nwant\n%+v", got, want)
	}
	for _, note := range []string{
		"note: read " + filepath.Join(repo, node.ConfigFileName),
		"note: api from flag --api",
		"note: ledgers from environment variable FINP2P_LEDGERS",
		"note: handshake_timeout from environment variable FINP2P_HANDSHAKE_TIMEOUT",
	} {
		if !strings.Contains(r.stderr, note+"\n") {
			t.Errorf("config show does not say %q:\n%s", note, r.stderr)
		}
	}
	for _, not := range []string{"listen from", "services from", "announce from"} {
		if strings.Contains(r.stderr, not) {
			t.Errorf("config show says %q, a field config.json sets or nobody does:\n%s", not, r.stderr)
		}
	}
	// The variable alone, without the flag, sets api.
	r = finp2pEnv(t, env, "config", "show", "--repo", repo)
	if r.code != 0 || !strings.Contains(r.stdout, `"api": "127.0.0.1:6001"`) || !strings.Contains(r.stderr, "api from environment variable FINP2P_API") {
		t.Errorf("config show with FINP2P_API: %s", r)
	}
}

// TestConfigRefusedNamingTheField: run and config show refuse a bad
// configuration, whether from config.json, the environment or a flag, with
// a message naming the field, where the value came from and the config file.
func TestConfigRefusedNamingTheField(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		edit  func(t *testing.T, repo string)
		env   []string
		flags []string
		want  []string
	}{
		{name: "unknown field in the file", edit: func(t *testing.T, repo string) { editConfig(t, repo, "lisen", []string{}) },
			want: []string{`unknown field "lisen"`, "config fields"}},
		{name: "bad duration in the file", edit: func(t *testing.T, repo string) { editConfig(t, repo, "block_duration", "soon") },
			want: []string{`"block_duration"`, `"soon"`}},
		{name: "list written as a string", edit: func(t *testing.T, repo string) { editConfig(t, repo, "listen", "/ip4/127.0.0.1/tcp/0") },
			want: []string{`"listen"`, "a list of strings"}},
		{name: "bad listen address in the file", edit: func(t *testing.T, repo string) { editConfig(t, repo, "listen", []string{"/ip4/127.0.0.1/udp/0"}) },
			want: []string{"invalid configuration", "listen", "/ip4/127.0.0.1/udp/0", "neither TCP nor QUIC"}},
		{name: "zero duration in the file", edit: func(t *testing.T, repo string) { editConfig(t, repo, "handshake_timeout", "0s") },
			want: []string{"invalid configuration", "handshake_timeout", "must be positive"}},
		{name: "file not JSON", edit: func(t *testing.T, repo string) {
			if err := os.WriteFile(filepath.Join(repo, node.ConfigFileName), []byte(`{"api": "127.0.0.1:0",}`), 0o644); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"not valid JSON at byte offset 22"}},
		{name: "bad api address from the environment", env: []string{"FINP2P_API=no-port"},
			want: []string{"invalid configuration", "environment variable FINP2P_API", "api", "no-port"}},
		{name: "bad duration from the environment", env: []string{"FINP2P_ADVERTISEMENT_TTL=1 day"},
			want: []string{"environment variable FINP2P_ADVERTISEMENT_TTL", `"advertisement_ttl"`, `"1 day"`}},
		{name: "bad datastore from the environment", env: []string{"FINP2P_DATASTORE=bogus"},
			want: []string{"environment variable FINP2P_DATASTORE", "datastore", "bogus"}},
		{name: "bad listen address from a flag", flags: []string{"--listen", "/ip4/127.0.0.1"},
			want: []string{"invalid configuration", "flag --listen", "listen", "/ip4/127.0.0.1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			repo := initTestRepo(t)
			if c.edit != nil {
				c.edit(t, repo)
			}
			want := append(c.want, filepath.Join(repo, node.ConfigFileName))
			for _, cmd := range [][]string{{"run"}, {"config", "show"}} {
				r := finp2pEnv(t, c.env, append(append(cmd, "--repo", repo), c.flags...)...)
				if r.code != 1 {
					t.Fatalf("%s: %s\nwant exit 1", strings.Join(cmd, " "), r)
				}
				line := r.stderr[strings.LastIndex(strings.TrimSuffix(r.stderr, "\n"), "\n")+1:]
				for _, w := range want {
					if !strings.Contains(line, w) {
						t.Errorf("%s: the error does not say %q:\n%s", strings.Join(cmd, " "), w, line)
					}
				}
				if strings.Contains(r.stdout, "ready") {
					t.Errorf("%s printed ready:\n%s", strings.Join(cmd, " "), r.stdout)
				}
			}
		})
	}
}

// TestConfigFieldsDocumented: every field of config.json has a meaning in
// `finp2p config fields` and a line, with its environment variable, in the
// README; nothing is documented that is not a field.
func TestConfigFieldsDocumented(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range configFields() {
		names = append(names, f.name)
		if configDocs[f.name] == "" {
			t.Errorf("config field %q has no entry in configDocs", f.name)
		}
		if row := "| `" + f.name + "` | `" + f.env() + "`"; !bytes.Contains(readme, []byte(row)) {
			t.Errorf("README.md has no row starting %q", row)
		}
	}
	for name := range configDocs {
		if !slices.Contains(names, name) {
			t.Errorf("configDocs documents %q, which node.Config does not have", name)
		}
	}
	r := finp2p(t, "config", "fields")
	if r.code != 0 || strings.Contains(r.stdout, "(not documented)") {
		t.Fatalf("config fields: %s", r)
	}
	for _, f := range configFields() {
		if !strings.Contains(r.stdout, f.env()) {
			t.Errorf("config fields does not list %s:\n%s", f.env(), r.stdout)
		}
	}
}

// TestRunPortInUse: run refuses an API or listen address whose port another
// process holds, naming the address and what to do, before it starts the
// node.
func TestRunPortInUse(t *testing.T) {
	t.Parallel()
	repo := initTestRepo(t)
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	tcpAddr, udpPort := tcp.Addr().String(), udp.LocalAddr().(*net.UDPAddr).Port
	listenTCP := "/ip4/127.0.0.1/tcp/" + strings.Split(tcpAddr, ":")[1]
	listenQUIC := "/ip4/127.0.0.1/udp/" + strconv.Itoa(udpPort) + "/quic-v1"
	for _, c := range []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"api flag", nil, []string{"--api", tcpAddr}, []string{"API address " + tcpAddr, "flag --api"}},
		{"api from the environment", []string{"FINP2P_API=" + tcpAddr}, nil, []string{"API address " + tcpAddr, "environment variable FINP2P_API"}},
		{"tcp listen address", nil, []string{"--listen", listenTCP}, []string{"listen address " + listenTCP, "flag --listen"}},
		{"quic listen address", nil, []string{"--listen", "/ip4/127.0.0.1/tcp/0", "--listen", listenQUIC}, []string{"listen address " + listenQUIC}},
	} {
		r := finp2pEnv(t, c.env, append([]string{"run", "--repo", repo}, c.args...)...)
		if r.code != 1 {
			t.Fatalf("%s: %s\nwant exit 1", c.name, r)
		}
		for _, w := range append(c.want, "already in use", "pick another port", "stop the process that holds it") {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: the error does not say %q:\n%s", c.name, w, r.stderr)
			}
		}
		if strings.Contains(r.stdout, "ready") || strings.Contains(r.stderr, "node started") {
			t.Errorf("%s: the node started although a port was taken:\n%s", c.name, r)
		}
	}
}

// TestRepoNotInitialised: commands given a directory that is not a node
// repo say so and how to make one.
func TestRepoNotInitialised(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	missing := filepath.Join(empty, "nowhere")
	file := filepath.Join(empty, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{empty, missing, file} {
		for _, cmd := range [][]string{{"run"}, {"config", "show"}, {"status"}, {"orgs"}, {"find", "bank-a:102:x"}} {
			r := finp2p(t, append(cmd, "--repo", dir)...)
			want := dir + " is not a finp2p repo"
			if r.code != 1 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "run `finp2p init --repo "+dir+" ") {
				t.Errorf("%s --repo %s: %s\nwant exit 1 saying %q and how to init it", strings.Join(cmd, " "), dir, r, want)
			}
		}
	}
}

// TestWrongTokenNamesTokenFile: a client command whose token the node
// refuses says which token file it sent.
func TestWrongTokenNamesTokenFile(t *testing.T) {
	t.Parallel()
	repo := initTestRepo(t)
	// A real API server with another token; the node behind it is never
	// reached, since the token is checked first.
	nd, err := node.New(node.WithRepo(repo))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Addr: "127.0.0.1:0", Token: "another-token-another-token", Node: nd})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	url := "http://" + srv.Addr()
	tokenFile := filepath.Join(repo, node.TokenFileName)
	for _, cmd := range [][]string{{"status"}, {"orgs"}, {"subscribe", "bank-a:102:x"}, {"put-state", "bank-a:102:x", "-"}} {
		r := finp2pStdin(t, "state", append(cmd, "--repo", repo, "--api", url)...)
		if r.code != 1 {
			t.Fatalf("%s: %s\nwant exit 1", cmd[0], r)
		}
		for _, w := range []string{"refused the API token from " + tokenFile, "wrong bearer token", "unauthorized"} {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: the error does not say %q:\n%s", cmd[0], w, r.stderr)
			}
		}
	}
}

// FuzzConfigFile: whatever config.json holds, loading and validating it
// returns a configuration or an error, never panics, and an error names the
// file.
func FuzzConfigFile(f *testing.F) {
	f.Add([]byte(`{"listen": ["/ip4/127.0.0.1/tcp/0"], "api": "127.0.0.1:0", "handshake_timeout": "5s"}`))
	f.Add([]byte(`{"listen": "x", "block_duration": 5, "services": [1]}`))
	f.Add([]byte(`{"lisen": []}`))
	f.Add([]byte(`[1, 2]`))
	f.Add([]byte(`{"api": null, "ledgers": null}`))
	repo := f.TempDir()
	path := filepath.Join(repo, node.ConfigFileName)
	noEnv := func(string) (string, bool) { return "", false }
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		rc, err := loadRepoConfig(repo, noEnv, nil)
		if err == nil {
			err = rc.validate()
		}
		if err != nil && !strings.Contains(err.Error(), path) {
			t.Fatalf("error %q does not name %s", err, path)
		}
	})
}
