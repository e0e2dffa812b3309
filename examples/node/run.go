package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/finp2p/go-finp2p/api"
	"github.com/finp2p/go-finp2p/node"
)

// shutdownTimeout bounds stopping the API and the node.
const shutdownTimeout = 10 * time.Second

func runRun(ctx context.Context, args []string) error {
	fs := newFlagSet("run", "--repo DIR [flags]",
		"Runs the node of repo DIR and its HTTP API until SIGINT or SIGTERM. Once up it prints\n"+
			"'peer <id>', one 'listen <multiaddr>' per address, 'api <url>' and 'ready'; logs go to stderr.\n"+
			"The configuration is DIR/config.json, then FINP2P_<FIELD> environment variables, then\n"+
			"--listen and --api, each overriding the one before ('finp2p config show' prints it,\n"+
			"'finp2p config fields' lists the fields).")
	var repo, logFormat, logLevel string
	var flags configFlags
	fs.StringVar(&repo, "repo", "", "repo directory made by 'finp2p init' (required)")
	flags.register(fs)
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if err := requireFlags("repo", repo); err != nil {
		return err
	}
	logger, err := newLogger(os.Stderr, logFormat, logLevel)
	if err != nil {
		return err
	}
	routeLibraryLogs(logger, logFormat)
	rc, err := loadRepoConfig(repo, os.LookupEnv, flags.overrides())
	if err != nil {
		return err
	}
	return runNode(ctx, logger, rc)
}

// newLogger builds the slog logger the flags ask for.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format %q: want text or json", format)
}

// routeLibraryLogs makes the libraries' logs come out like the node's:
// go-libp2p's (gologshim) through logger's handler, each line with a
// "logger" attribute naming the libp2p subsystem, at the levels
// GOLOG_LOG_LEVEL sets (error by default, as before); go-log's (kad-dht)
// as JSON when the node logs JSON.
func routeLibraryLogs(logger *slog.Logger, format string) {
	levels := gologshim.ConfigFromEnv()
	gologshim.SetDefaultHandler(libraryHandler{Handler: logger.Handler(), levels: levels, level: levels.LevelForSystem("")})
	if format == "json" {
		cfg := golog.GetConfig()
		cfg.Format = golog.JSONOutput
		golog.SetupLogging(cfg)
	}
}

// libraryHandler is the node's handler with a library's own minimum level
// per subsystem: a libp2p logger names its subsystem in the "logger"
// attribute it adds first.
type libraryHandler struct {
	slog.Handler
	levels *gologshim.Config
	level  slog.Level
}

func (h libraryHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h libraryHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	level := h.level
	for _, a := range attrs {
		if a.Key == "logger" {
			level = h.levels.LevelForSystem(a.Value.String())
		}
	}
	return libraryHandler{Handler: h.Handler.WithAttrs(attrs), levels: h.levels, level: level}
}

func (h libraryHandler) WithGroup(name string) slog.Handler {
	return libraryHandler{Handler: h.Handler.WithGroup(name), levels: h.levels, level: h.level}
}

// runNode starts the node and its API, announces them on stdout and serves
// until ctx is cancelled, then stops both within shutdownTimeout. It claims
// the API port and checks the listen ports before starting the node, so a
// port in use is refused naming it.
func runNode(ctx context.Context, logger *slog.Logger, rc *repoConfig) (err error) {
	if err := rc.validate(); err != nil {
		return err
	}
	cfg := rc.cfg
	logger.Info("configuration", "file", rc.file, "overridden", rc.overridden())
	token, err := node.ReadToken(rc.repo)
	if err != nil {
		return err
	}
	if err := checkListenPorts(cfg.Listen, rc.origin("listen")); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.API)
	if err != nil {
		return portError(err, "API address "+cfg.API, rc.origin("api"), "--api, FINP2P_API or config.json's api")
	}
	defer func() {
		if err != nil {
			_ = ln.Close()
		}
	}()

	reg := prometheus.NewRegistry()
	for name, c := range map[string]prometheus.Collector{
		"Go runtime": collectors.NewGoCollector(),
		"process":    collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register %s metrics: %w", name, err)
		}
	}
	n, err := node.New(node.WithRepo(rc.repo), node.WithConfig(cfg), node.WithLogger(logger), node.WithMetrics(reg))
	if err != nil {
		return err
	}
	if err := n.Start(ctx); err != nil {
		return err
	}
	srv, err := api.New(api.Config{
		Addr: cfg.API, Listener: ln, Token: token, TokenFile: filepath.Join(rc.repo, node.TokenFileName),
		Node: n, Gatherer: reg, Logger: logger,
	})
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		closeCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		return errors.Join(err, n.Close(closeCtx))
	}

	fmt.Fprintf(os.Stdout, "peer %s\n", n.ID())
	for _, a := range n.Addrs() {
		fmt.Fprintf(os.Stdout, "listen %s\n", a)
	}
	fmt.Fprintf(os.Stdout, "api http://%s\n", srv.Addr())
	fmt.Fprintf(os.Stdout, "ready\n")

	<-ctx.Done()
	// A second SIGINT or SIGTERM while stopping ends the process at once.
	signal.Reset(os.Interrupt, syscall.SIGTERM)
	logger.Info("stopping", "timeout", shutdownTimeout)
	closeCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	var errs []error
	if err := srv.Close(closeCtx); err != nil {
		errs = append(errs, err)
	}
	if err := n.Close(closeCtx); err != nil {
		errs = append(errs, fmt.Errorf("close node: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	logger.Info("stopped")
	fmt.Fprintf(os.Stdout, "stopped\n")
	return nil
}
