package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/qiao-gateway/qiao/federation/dingtalk/dingtalksim"
	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
)

func simCmd() *cobra.Command {
	var addr, domain string
	var users int
	var seed uint64
	var noLimits bool
	cmd := &cobra.Command{
		Use:       "sim wecom|dingtalk",
		Short:     "Run a WeCom or DingTalk simulator",
		Long:      "Run a simulator of WeCom or DingTalk on one address: the platform's API, login pages and event\npush, with a generated org. The same seed gives the same org and credentials.",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"wecom", "dingtalk"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if users < 1 || users > 1_000_000 {
				return errors.New("--users must be between 1 and 1000000")
			}
			var h http.Handler
			var describe func(string) string
			var closeSim func()
			switch args[0] {
			case "wecom":
				s := wecomsim.NewSetup(users, seed, domain)
				s.Config.RateLimits = !noLimits
				sim := wecomsim.New(s.Config)
				h, describe, closeSim = sim, s.Describe, sim.Close
			case "dingtalk":
				s := dingtalksim.NewSetup(users, seed, domain)
				s.Config.RateLimits = !noLimits
				sim := dingtalksim.New(s.Config)
				h, describe, closeSim = sim, s.Describe, sim.Close
			default:
				return fmt.Errorf("unknown platform %q: want wecom or dingtalk", args[0])
			}
			defer closeSim()
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("cannot listen on %s: %w", addr, err)
			}
			fmt.Fprint(cmd.OutOrStdout(), describe("http://"+ln.Addr().String()))
			return serveUntilSignal(cmd.Context(), ln, h)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8081", "listen address")
	cmd.Flags().IntVar(&users, "users", 200, "number of generated users (zhangsan included)")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "seed of the generated org and credentials")
	cmd.Flags().StringVar(&domain, "trusted-domain", "127.0.0.1:8080", "host:port the app's login redirects may go to")
	cmd.Flags().BoolVar(&noLimits, "no-rate-limits", false, "turn the published rate limits off (benchmarks)")
	return cmd
}

func serveUntilSignal(ctx context.Context, ln net.Listener, h http.Handler) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
