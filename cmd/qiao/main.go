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
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/qiao-gateway/qiao/gateway"
	"github.com/qiao-gateway/qiao/internal/config"
	"github.com/qiao-gateway/qiao/keys"
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

// runMain runs the command line and returns the exit status.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	gateway.Version = buildVersion()
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

type globalFlags struct {
	config string
	data   string
	addr   string
}

func newRoot() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "qiao",
		Short:         "qiao (桥) — identity federation gateway for WeCom and DingTalk",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.config, "config", os.Getenv("QIAO_CONFIG"), "config file (YAML); env QIAO_CONFIG")
	root.PersistentFlags().StringVar(&g.data, "data", "", "data directory (SQLite database, master key, signing keys); env QIAO_DATA")
	root.PersistentFlags().StringVar(&g.addr, "addr", "", "listen address HOST:PORT; env QIAO_ADDR")
	root.AddCommand(serveCmd(g), demoCmd(g), versionCmd(), keysCmd(g), hashPasswordCmd(), simCmd(), syncCmd(g), sourcesCmd(g), appsCmd(g), applyCmd(g))
	return root
}

func (g *globalFlags) load() (*config.Config, error) {
	return config.Load(g.config, os.Getenv, config.Overrides{Listen: g.addr, DataDir: g.data})
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
			cfg.Log.Level = "warn"
			res, err := gateway.Apply(cmd.Context(), cfg, gateway.NewLogger(cfg), force)
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
			"SQLite at ./data/qiao.db, in-memory state, keys generated under ./data/keys on first start.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			var opts []gateway.Option
			if force {
				opts = append(opts, gateway.WithForce())
			}
			return run(cmd.Context(), cfg, nil, opts...)
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "delete what the config file no longer declares even past deletion protection, and removed enterprises")
	return cmd
}

// run starts a gateway and serves until SIGINT/SIGTERM. ready, if not nil, is called once the
// listener is bound.
func run(ctx context.Context, cfg *config.Config, ready func(*gateway.Gateway), opts ...gateway.Option) error {
	log := gateway.NewLogger(cfg)
	// zitadel/oidc's op package logs through slog.Default (op.WithLogger does nothing): keep its
	// lines in the gateway's format and level.
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	gw, err := gateway.New(ctx, cfg, log, opts...)
	if err != nil {
		return &exitError{1, err}
	}
	defer gw.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return &exitError{1, fmt.Errorf("cannot listen on %s: %w: choose another address with --addr or QIAO_ADDR", cfg.Listen, err)}
	}
	log.Info("qiao is serving", "version", gateway.Version, "listen", ln.Addr().String(), "external_url", cfg.ExternalURL,
		"storage", redact(cfg.Storage), "state", redact(cfg.State), "keys_dir", cfg.KeysDir,
		"startup_ms", time.Since(start).Milliseconds())
	if ready != nil {
		ready(gw)
	}
	return gw.Serve(ctx, ln)
}

func keysCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage signing keys"}
	open := func() (*keys.Manager, error) {
		cfg, err := g.load()
		if err != nil {
			return nil, err
		}
		return keys.Open(cfg.KeysDir, keys.WithGrace(cfg.KeyRotationGrace.D()))
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the published signing keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := open()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%-6s  %-43s  %-7s  %s\n", "ALG", "KID", "STATE", "CREATED / RETIRED UNTIL")
			for _, k := range m.Published() {
				stateS, when := "active", k.CreatedAt.Format(time.RFC3339)
				if !k.Active() {
					stateS, when = "retired", k.ExpiresAt.Format(time.RFC3339)
				}
				fmt.Fprintf(w, "%-6s  %-43s  %-7s  %s\n", k.Alg, k.ID, stateS, when)
			}
			return nil
		},
	}
	var algs []string
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Make new signing keys; the old ones stay published for key_rotation_grace",
		Long: "Make new signing keys. The old public keys stay in JWKS and SAML metadata for key_rotation_grace\n" +
			"(default 48h) so tokens they signed still verify. A running gateway picks the change up within 30 s.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := open()
			if err != nil {
				return err
			}
			rotated, err := m.Rotate(algs...)
			if err != nil {
				return err
			}
			for _, k := range rotated {
				fmt.Fprintf(cmd.OutOrStdout(), "new %s key %s\n", k.Alg, k.ID)
			}
			return nil
		},
	}
	rotate.Flags().StringSliceVar(&algs, "alg", nil, "which keys to rotate: RS256, ES256, SAML (default: all)")
	cmd.AddCommand(list, rotate)
	return cmd
}
