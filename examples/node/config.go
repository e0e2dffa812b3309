package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/finp2p/go-finp2p/node"
)

// envPrefix starts the environment variable of each config field:
// FINP2P_LISTEN sets listen, FINP2P_HANDSHAKE_TIMEOUT handshake_timeout.
const envPrefix = "FINP2P_"

// configDocs says what each field of config.json is for, in `finp2p config
// fields` and the README. TestConfigFieldsDocumented keeps it complete.
var configDocs = map[string]string{
	"listen":            "multiaddrs the node listens on, TCP and QUIC (quic-v1); port 0 picks a free port",
	"api":               "host:port of the local HTTP API; keep it on loopback unless a proxy guards it",
	"genesis":           "the network's genesis file",
	"certificate":       "PEM file: the node's certificate, then the CA certificates above it (not the root)",
	"key":               "the node's Ed25519 key, PKCS#8 PEM, mode 0600",
	"datastore":         "pebble (persistent, in DIR/datastore) or memory (state lost at exit; for tests)",
	"handshake_timeout": "how long a peer has to complete the membership handshake",
	"block_duration":    "how long a peer whose credentials failed the handshake is blocked (one that only ran out of time: at most 30s)",
	"announce":          "multiaddrs advertised instead of the listen addresses, such as a public or NAT address (no /p2p)",
	"no_announce":       "multiaddrs, or ranges such as /ip4/10.0.0.0/ipcidr/8, never advertised",
	"services":          "FinP2P services the organisation offers, as advertised (such as custody)",
	"ledgers":           "ledgers the organisation can reach, as advertised",
	"advertisement_ttl": "how long the node's advertisement is valid; it re-advertises every third of it",
	"follow_ledgers":    "ledgers the node keeps a replica of (\"bank-a/embedded\"), to answer balance and receipt broadcasts; its own org's ledger makes the node a cluster's standby node, which executes no ledger and leaves asset transactions to the org's primary node",
	"ledger_followers":  "other orgs allowed to replicate this node's embedded ledger (its own org's standby nodes always are); \"*\" allows every member",
}

// configField is one field of config.json: its JSON name and Go type.
type configField struct {
	name string
	typ  reflect.Type
}

// configFields lists the fields of config.json, in node.Config's order.
func configFields() []configField {
	t := reflect.TypeFor[node.Config]()
	var out []configField
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		out = append(out, configField{name: name, typ: f.Type})
	}
	return out
}

func lookupField(name string) (configField, bool) {
	for _, f := range configFields() {
		if f.name == name {
			return f, true
		}
	}
	return configField{}, false
}

// env is the environment variable that sets the field.
func (f configField) env() string { return envPrefix + strings.ToUpper(f.name) }

// kind says how the field is written, in config.json and in its variable.
func (f configField) kind() string {
	switch {
	case f.typ == reflect.TypeFor[node.Duration]():
		return "duration"
	case f.typ.Kind() == reflect.Slice:
		return "list"
	}
	return f.typ.Kind().String()
}

// envJSON turns the value of the field's environment variable into the
// JSON config.json would hold: a list is comma-separated, a string or
// duration is as is, anything else is JSON.
func (f configField) envJSON(v string) json.RawMessage {
	var data []byte
	switch f.kind() {
	case "list":
		items := []string{}
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		data, _ = json.Marshal(items)
	case "string", "duration":
		data, _ = json.Marshal(v)
	default:
		data = []byte(v)
	}
	return data
}

// configOverride is a value of one field from outside config.json.
type configOverride struct {
	field  string
	source string // "environment variable FINP2P_API", "flag --api"
	value  json.RawMessage
}

// configFlags are the flags of run and config show that override
// config.json and the environment.
type configFlags struct {
	listen stringList
	api    string
}

// flagOfField names the flag that overrides a config field.
var flagOfField = map[string]string{"listen": "--listen", "api": "--api"}

func (c *configFlags) register(fs *flag.FlagSet) {
	fs.Var(&c.listen, "listen", "multiaddr to listen on, replacing config.json's listen and FINP2P_LISTEN (repeatable)")
	fs.StringVar(&c.api, "api", "", "host:port of the HTTP API, replacing config.json's api and FINP2P_API")
}

// overrides are the flags given, as overrides of config fields.
func (c *configFlags) overrides() []configOverride {
	var out []configOverride
	add := func(field string, v any) {
		data, _ := json.Marshal(v)
		out = append(out, configOverride{field, "flag " + flagOfField[field], data})
	}
	if len(c.listen) > 0 {
		add("listen", []string(c.listen))
	}
	if c.api != "" {
		add("api", c.api)
	}
	return out
}

// repoConfig is a repo's effective configuration: config.json, then the
// FINP2P_<FIELD> environment variables, then flags, each overriding the one
// before; fields none of them sets keep node.DefaultConfig's value.
type repoConfig struct {
	repo, file string
	cfg        node.Config
	// sources says where each field's value came from: "config.json",
	// "default", an environment variable or a flag.
	sources map[string]string
}

// Where a field's value came from, besides an override's source.
const (
	fromFile    = "config.json"
	fromDefault = "default"
)

// loadRepoConfig reads repo's effective configuration; lookupEnv is
// os.LookupEnv but for tests. An empty variable counts as unset. It does not
// validate the result (validate does): config show shows it anyway.
func loadRepoConfig(repo string, lookupEnv func(string) (string, bool), flags []configOverride) (*repoConfig, error) {
	if err := checkRepo(repo); err != nil {
		return nil, err
	}
	rc := &repoConfig{repo: repo, file: filepath.Join(repo, node.ConfigFileName), cfg: node.DefaultConfig(), sources: map[string]string{}}
	for _, f := range configFields() {
		rc.sources[f.name] = fromDefault
	}
	data, err := os.ReadFile(rc.file)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var file map[string]json.RawMessage
	if err := json.Unmarshal(data, &file); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return nil, fmt.Errorf("config %s is not valid JSON at byte offset %d: %w", rc.file, syntax.Offset-1, err)
		}
		return nil, fmt.Errorf("config %s is not a JSON object: %w", rc.file, err)
	}
	for _, name := range slices.Sorted(maps.Keys(file)) {
		if _, ok := lookupField(name); !ok {
			return nil, fmt.Errorf("config %s: unknown field %q; config.json takes %s ('finp2p config fields' says what each is)",
				rc.file, name, strings.Join(fieldNames(), ", "))
		}
		if err := rc.set(name, file[name], fromFile); err != nil {
			return nil, fmt.Errorf("config %s: field %q: %w", rc.file, name, err)
		}
	}
	for _, f := range configFields() {
		if v, ok := lookupEnv(f.env()); ok && v != "" {
			if err := rc.set(f.name, f.envJSON(v), "environment variable "+f.env()); err != nil {
				return nil, fmt.Errorf("environment variable %s (config field %q, overriding %s): %w", f.env(), f.name, rc.file, err)
			}
		}
	}
	for _, o := range flags {
		if err := rc.set(o.field, o.value, o.source); err != nil {
			return nil, fmt.Errorf("%s (config field %q, overriding %s): %w", o.source, o.field, rc.file, err)
		}
	}
	rc.cfg.RepoDir = repo
	return rc, nil
}

// set decodes value into the field name, as config.json would hold it.
func (rc *repoConfig) set(name string, value json.RawMessage, source string) error {
	f, _ := lookupField(name)
	var obj bytes.Buffer
	obj.WriteString(`{"` + name + `":`) // a known field's name needs no escaping
	obj.Write(value)
	obj.WriteString("}")
	dec := json.NewDecoder(&obj)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rc.cfg); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			return fmt.Errorf("a JSON %s, want %s", typ.Value, describeKind(f.kind()))
		}
		return err
	}
	rc.sources[name] = source
	return nil
}

func describeKind(kind string) string {
	switch kind {
	case "list":
		return "a list of strings"
	case "duration":
		return `a duration string such as "10s" or "24h"`
	case "string":
		return "a string"
	}
	return kind
}

func fieldNames() []string {
	var names []string
	for _, f := range configFields() {
		names = append(names, f.name)
	}
	return names
}

// validate checks the effective configuration and names the field that is
// wrong, the config file and, when the value came from elsewhere, where.
func (rc *repoConfig) validate() error {
	err := rc.cfg.Validate()
	if err == nil {
		return nil
	}
	source := ""
	if ce, ok := errors.AsType[*node.ConfigError](err); ok {
		source = rc.sources[ce.Field]
	}
	switch source {
	case "", fromFile:
		return fmt.Errorf("invalid configuration in %s: %w", rc.file, err)
	case fromDefault:
		return fmt.Errorf("invalid configuration in %s (the field is not set, and its default is refused): %w", rc.file, err)
	}
	return fmt.Errorf("invalid configuration (%s, which overrides %s): %w", source, rc.file, err)
}

// origin says, in words, where field's value came from.
func (rc *repoConfig) origin(field string) string {
	switch s := rc.sources[field]; s {
	case fromFile:
		return rc.file
	case fromDefault:
		return "the default, as " + rc.file + " does not set it"
	default:
		return s
	}
}

// overridden lists the fields whose value did not come from config.json
// or the defaults, with where it came from.
func (rc *repoConfig) overridden() []string {
	var out []string
	for _, f := range configFields() {
		if s := rc.sources[f.name]; s != fromFile && s != fromDefault {
			out = append(out, f.name+" from "+s)
		}
	}
	return out
}

// checkRepo refuses a directory that is not a node repo: missing, not a
// directory, or holding none of config.json, node.key and api.token.
func checkRepo(repo string) error {
	notRepo := func(why string) error {
		return fmt.Errorf("%s is not a finp2p repo (%s): run `finp2p init --repo %s --org ORG ...` first", repo, why, repo)
	}
	st, err := os.Stat(repo)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return notRepo("no such directory")
	case err != nil:
		return fmt.Errorf("repo %s: %w", repo, err)
	case !st.IsDir():
		return notRepo("not a directory")
	}
	for _, name := range []string{node.ConfigFileName, node.KeyFileName, node.TokenFileName} {
		if _, err := os.Stat(filepath.Join(repo, name)); err == nil {
			return nil
		}
	}
	return notRepo(fmt.Sprintf("it holds no %s, %s or %s", node.ConfigFileName, node.KeyFileName, node.TokenFileName))
}

func runConfig(ctx context.Context, args []string) error {
	const usage = "want 'finp2p config show' or 'finp2p config fields'"
	if len(args) == 0 {
		return usagef("missing subcommand: %s", usage)
	}
	switch args[0] {
	case "show":
		return runConfigShow(ctx, args[1:])
	case "fields":
		return runConfigFields(ctx, args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Fprintf(os.Stderr, "Usage: finp2p config show --repo DIR [--listen MA ...] [--api HOST:PORT]\n"+
			"       finp2p config fields\n\n"+
			"Subcommands:\n"+
			"  show    print a repo's effective configuration: config.json, then FINP2P_<FIELD>\n"+
			"          environment variables, then flags, each overriding the one before\n"+
			"  fields  list every field of config.json: type, environment variable, flag, default, meaning\n")
		return nil
	}
	return usagef("unknown subcommand %q: %s", args[0], usage)
}

func runConfigShow(_ context.Context, args []string) error {
	fs := newFlagSet("config show", "--repo DIR [--listen MA ...] [--api HOST:PORT]",
		"Prints on stdout, as config.json would hold it, the configuration 'finp2p run' would use\n"+
			"with the same environment and flags: config.json, then FINP2P_<FIELD> environment\n"+
			"variables, then --listen and --api, each overriding the one before. On stderr it notes\n"+
			"the fields that did not come from config.json. It exits 1, naming the field, when\n"+
			"'finp2p run' would refuse the configuration.")
	var repo string
	var flags configFlags
	fs.StringVar(&repo, "repo", "", "repo directory made by 'finp2p init' (required)")
	flags.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if err := requireFlags("repo", repo); err != nil {
		return err
	}
	rc, err := loadRepoConfig(repo, os.LookupEnv, flags.overrides())
	if err != nil {
		return err
	}
	if err := writeJSON(os.Stdout, "configuration", rc.cfg); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "note: read %s\n", rc.file)
	for _, o := range rc.overridden() {
		fmt.Fprintf(os.Stderr, "note: %s\n", o)
	}
	return rc.validate()
}

func runConfigFields(_ context.Context, args []string) error {
	fs := newFlagSet("config fields", "",
		"Lists every field of a repo's config.json: how it is written, the environment variable\n"+
			"that overrides it (a list is comma-separated; an empty variable counts as unset), the\n"+
			"flag of 'finp2p run' and 'finp2p config show' that overrides both, its default and what\n"+
			"it is for. Paths are relative to the repo directory.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	printConfigFields(os.Stdout)
	return nil
}

// printConfigFields writes one line per config field.
func printConfigFields(w io.Writer) {
	defaults, _ := json.Marshal(node.DefaultConfig())
	var def map[string]json.RawMessage
	_ = json.Unmarshal(defaults, &def)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "FIELD\tTYPE\tENVIRONMENT\tFLAG\tDEFAULT\tMEANING\n")
	for _, f := range configFields() {
		d := "none"
		if v, ok := def[f.name]; ok {
			d = string(v)
		}
		fl := flagOfField[f.name]
		if fl == "" {
			fl = "-"
		}
		doc := configDocs[f.name]
		if doc == "" {
			doc = "(not documented)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.name, f.kind(), f.env(), fl, d, doc)
	}
	_ = tw.Flush()
}
