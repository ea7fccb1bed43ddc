package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/qiao-gateway/qiao/gateway"
)

func demoCmd(g *globalFlags) *cobra.Command {
	var pw string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the gateway with the demo enterprise on loopback",
		Long: "Run the whole demo in one process: the gateway with enterprise \"demo\", its identity sources\n" +
			"and clients. It uses a fresh data directory unless --data is given, and prints every URL and\n" +
			"credential it uses.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			addr := g.addr
			if addr == "" {
				addr = "127.0.0.1:8080"
			}
			dataDir := g.data
			if dataDir == "" {
				d, err := os.MkdirTemp("", "qiao-demo-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(d)
				dataDir = d
			}
			cfg, creds, err := gateway.DemoConfig(addr, dataDir, pw)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			return run(cmd.Context(), cfg, func(*gateway.Gateway) { printDemo(out, cfg.ExternalURL, dataDir, creds) })
		},
	}
	cmd.Flags().StringVar(&pw, "password", "", "password of the demo user zhangsan (default: random, printed)")
	return cmd
}

func printDemo(w io.Writer, ext, dataDir string, c *gateway.DemoCredentials) {
	fmt.Fprintf(w, `qiao demo is ready.

  gateway            %[1]s/
  health             %[1]s/healthz   %[1]s/readyz   %[1]s/metrics
  data directory     %[2]s

  enterprise         demo
  identity sources   local (the enterprise's own directory)
  demo user          %[3]s / %[4]s   (张三)
  OIDC clients       sase-client (native, PKCE, loopback redirect)
                     demo-app    secret %[5]s
                     demo-service secret %[6]s

Press Ctrl-C to stop.
`, ext, dataDir, c.Username, c.Password, c.DemoAppSecret, c.DemoServiceSecret)
}

func redact(dsn string) string { return gateway.RedactDSN(dsn) }
