// Command qiao is the identity federation gateway: `qiao serve` runs it, `qiao demo` runs it with
// a demo enterprise, `qiao keys` manages its signing keys.
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
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/qiao-gateway/qiao/gateway"
	"github.com/qiao-gateway/qiao/internal/config"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// exitError carries a process exit status: 2 for configuration errors, 1 otherwise.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	os.Exit(runMain(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

var processSetup sync.Once

// runMain runs the command line and returns the exit status.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// Process-wide settings, once: tests run several command lines at a time.
	processSetup.Do(func() {
		gateway.Version = buildVersion()
		// go-redis logs connection failures through its own logger, as raw lines on stderr: route
		// them to the gateway's log at debug level (the failure itself is reported once, by whoever
		// asked).
		redis.SetLogger(redisLog{})
	})
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		code := 1
		var ee *exitError
		var ce *config.Error
		switch {
		case errors.As(err, &ee):
			code = ee.code
		case errors.As(err, &ce):
			code = 2
		}
		fmt.Fprintln(stderr, "qiao:", err)
		return code
	}
	return 0
}

// redisLog is go-redis's logger: its lines go to the default slog logger at debug level.
type redisLog struct{}

func (redisLog) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().Debug("redis client: "+strings.TrimSpace(fmt.Sprintf(format, v...)), "component", "go-redis")
}

// commandLogger is the log of every command but serve and demo: a command says what it did and
// what went wrong in its own lines (an error once, on stderr, by runMain); the log adds only what
// nothing returns — errors a background step logged and went on after — as plain text.
func commandLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelError,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
}

// globalFlags are the flags that say which gateway a command is about. Each command takes the ones
// it uses (--config and --data; --addr for serve, demo and healthcheck), so that none shows a flag
// it ignores.
type globalFlags struct {
	config string
	data   string
	addr   string
	// log is the log of a command other than serve and demo.
	log *slog.Logger
}

// configFlags adds --config and --data to cmd and its subcommands.
func (g *globalFlags) configFlags(cmd *cobra.Command) *cobra.Command {
	return g.dataFlag(g.configFlag(cmd))
}

// configFlag adds --config to cmd and its subcommands.
func (g *globalFlags) configFlag(cmd *cobra.Command) *cobra.Command {
	cmd.PersistentFlags().StringVar(&g.config, "config", os.Getenv("QIAO_CONFIG"), "config file (YAML); env QIAO_CONFIG")
	return cmd
}

// dataFlag adds --data to cmd and its subcommands.
func (g *globalFlags) dataFlag(cmd *cobra.Command) *cobra.Command {
	cmd.PersistentFlags().StringVar(&g.data, "data", "", "data directory (SQLite database, master key, signing keys); env QIAO_DATA")
	return cmd
}

// addrFlag adds --addr to cmd.
func (g *globalFlags) addrFlag(cmd *cobra.Command) *cobra.Command {
	cmd.Flags().StringVar(&g.addr, "addr", "", "listen address HOST:PORT; env QIAO_ADDR")
	return cmd
}

func newRoot() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "qiao",
		Short:         "qiao (桥) — identity federation gateway for WeCom and DingTalk",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			g.log = commandLogger(cmd.ErrOrStderr())
			if name := cmd.Name(); name != "serve" && name != "demo" {
				// Libraries that log through the default logger (zitadel/oidc) follow it.
				slog.SetDefault(g.log)
			}
		},
	}
	root.AddCommand(
		g.addrFlag(g.configFlags(serveCmd(g))),
		g.addrFlag(g.dataFlag(demoCmd(g))),
		versionCmd(),
		g.configFlags(keysCmd(g)),
		hashPasswordCmd(),
		simCmd(),
		g.configFlags(syncCmd(g)),
		g.configFlags(sourcesCmd(g)),
		g.configFlags(appsCmd(g)),
		g.configFlags(applyCmd(g)),
		g.configFlags(enterprisesCmd(g)),
		g.configFlags(adminsCmd(g)),
		g.configFlags(usersCmd(g)),
		g.configFlags(provisionCmd(g)),
		g.addrFlag(g.configFlag(healthcheckCmd(g))),
		loginCmd(), tokenCmd(), logoutCmd(),
	)
	return root
}

func (g *globalFlags) load() (*config.Config, error) {
	return config.Load(g.config, os.Getenv, config.Overrides{Listen: g.addr, DataDir: g.data})
}

// logger is the log a command other than serve and demo hands to what it opens.
func (g *globalFlags) logger() *slog.Logger {
	if g.log == nil {
		return commandLogger(os.Stderr)
	}
	return g.log
}

func applyCmd(g *globalFlags) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Write the config's enterprises, sources, clients and service providers into the store, without serving",
		Long: "Do what qiao serve does at start to the durable store (create or migrate it, then write the enterprises the\n" +
			"config declares) and exit. The file owns what it declares: an enterprise, source, client, service provider or\n" +
			"local user it declared before and no longer does is deleted (a source under its deletion protection; an\n" +
			"enterprise only with --force). The read-only commands (apps, sources, sync tasks, sync records) and qiao sync\n" +
			"never change the configuration: they show and use what serve or apply last wrote.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			res, err := gateway.Apply(cmd.Context(), cfg, g.logger(), force)
			if err != nil {
				return &exitError{1, err}
			}
			for _, c := range res.Changes {
				fmt.Fprintln(cmd.OutOrStdout(), c)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "applied %d enterprise(s) from the config to %s\n", len(cfg.Enterprises), redact(cfg.Storage))
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "delete what the file no longer declares even past deletion protection, and removed enterprises")
	return cmd
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "qiao", buildVersion())
		},
	}
}

func serveCmd(g *globalFlags) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway",
		Long: "Run the gateway. With no config file it starts with the embedded defaults: 127.0.0.1:8080,\n" +
			"SQLite at ./data/qiao.db, in-memory state, keys generated under ./data/keys on first start.\n" +
			"SIGHUP reads the config file again and, if it is valid, applies its enterprises (sources, clients,\n" +
			"service providers, local users) as at start; a bad file changes nothing and is reported in the log.\n" +
			"Other settings (listen, storage, state, keys, session lengths, …) take a restart.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			return run(cmd.Context(), cfg, runOptions{force: force, reload: g.load, logTo: cmd.ErrOrStderr()})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "delete what the config file no longer declares even past deletion protection, and removed enterprises")
	return cmd
}

// runOptions are what serve and demo add to a run.
type runOptions struct {
	// ready, if not nil, is called once the gateway is built and the listener bound.
	ready func(*gateway.Gateway)
	// reload, if not nil, loads the configuration again on SIGHUP.
	reload func() (*config.Config, error)
	force  bool
	// logTo receives the gateway's log (default os.Stderr).
	logTo io.Writer
}

// run starts a gateway and serves until SIGINT/SIGTERM.
func run(ctx context.Context, cfg *config.Config, ro runOptions) error {
	// An external URL no one can reach (a container's listen address 0.0.0.0) would be published
	// in every issuer and callback: refuse it before anything is created.
	if err := cfg.CheckExternalURL(); err != nil {
		return err
	}
	if ro.logTo == nil {
		ro.logTo = os.Stderr
	}
	log := gateway.NewLoggerTo(ro.logTo, cfg)
	// zitadel/oidc's op package logs through slog.Default (op.WithLogger does nothing): keep its
	// lines in the gateway's format and level.
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var hup chan os.Signal
	if ro.reload != nil {
		hup = make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	start := time.Now()
	// Bind first: a port in use stops the start before a data directory, master key or signing
	// key is created.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return &exitError{1, fmt.Errorf("cannot listen on %s: %w: choose another address with --addr or QIAO_ADDR", cfg.Listen, unwrapOp(err))}
	}
	defer ln.Close()
	var opts []gateway.Option
	if ro.force {
		opts = append(opts, gateway.WithForce())
	}
	gw, err := gateway.New(ctx, cfg, log, opts...)
	if err != nil {
		return &exitError{1, err}
	}
	defer gw.Close()
	if err := gateway.WriteRunning(cfg.DataDir, gateway.Running{ExternalURL: cfg.ExternalURL, Listen: ln.Addr().String(),
		PID: os.Getpid(), Version: gateway.Version, StartedAt: time.Now().UTC().Truncate(time.Second)}); err != nil {
		log.Warn("the commands (qiao sources, qiao apps) will show the configuration's URLs", "err", err)
	}
	log.Info("qiao is serving", "version", gateway.Version, "listen", ln.Addr().String(), "external_url", cfg.ExternalURL,
		"storage", redact(cfg.Storage), "state", redact(cfg.State), "keys_dir", cfg.KeysDir,
		"startup_ms", time.Since(start).Milliseconds())
	if ro.ready != nil {
		ro.ready(gw)
	}
	if hup != nil {
		go reloadOnHUP(ctx, gw, hup, ro.reload, ro.force)
	}
	return gw.Serve(ctx, ln)
}

// reloadOnHUP applies the config file again at each SIGHUP; a file that does not load, or whose
// declarations do not apply, changes nothing and is logged.
func reloadOnHUP(ctx context.Context, gw *gateway.Gateway, hup <-chan os.Signal, load func() (*config.Config, error), force bool) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		gw.Log.Info("SIGHUP: reloading the config file")
		cfg, err := load()
		if err != nil {
			gw.Log.Error("config reload refused; nothing changed", "err", err.Error())
			continue
		}
		res, restart, err := gw.Reload(ctx, cfg, force)
		if err != nil {
			gw.Log.Error("config reload refused; nothing changed", "err", err.Error())
			continue
		}
		if len(restart) > 0 {
			gw.Log.Warn("config reload: these settings changed but take effect only at the next start", "keys", strings.Join(restart, ", "))
		}
		gw.Log.Info("config reloaded", "enterprises", len(cfg.Enterprises), "changes", len(res.Changes))
	}
}

// unwrapOp keeps the cause of a *net.OpError ("address already in use"), whose message repeats
// the address the caller names.
func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}
