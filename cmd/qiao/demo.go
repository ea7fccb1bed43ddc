package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/qiao-gateway/qiao/demo"
	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/dirsync"
	"github.com/qiao-gateway/qiao/federation/dingtalk/dingtalksim"
	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
	"github.com/qiao-gateway/qiao/gateway"
)

func demoCmd(g *globalFlags) *cobra.Command {
	var pw, wecomAddr, dingAddr string
	var users int
	var seed uint64
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the gateway with the demo enterprise and the WeCom and DingTalk simulators on loopback",
		Long: "Run the whole demo in one process: the WeCom simulator, the DingTalk simulator and the gateway with\n" +
			"enterprise \"demo\", its identity sources and clients. It uses a fresh data directory unless --data is\n" +
			"given, and prints every URL and credential it uses.",
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
			ws := wecomsim.NewSetup(users, seed, addr)
			ds := dingtalksim.NewSetup(users, seed, addr)
			wsim, dsim := wecomsim.New(ws.Config), dingtalksim.New(ds.Config)
			defer wsim.Close()
			defer dsim.Close()
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			wURL, err := serveBackground(ctx, wecomAddr, wsim)
			if err != nil {
				return fmt.Errorf("WeCom simulator: %w (choose another address with --wecom-addr)", err)
			}
			dURL, err := serveBackground(ctx, dingAddr, dsim)
			if err != nil {
				return fmt.Errorf("DingTalk simulator: %w (choose another address with --dingtalk-addr)", err)
			}
			sims := &demo.Sims{WeCom: ws, WeComURL: wURL, DingTalk: ds, DingTalkURL: dURL}
			cfg, creds, err := demo.Config(addr, dataDir, pw, sims)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			return run(ctx, cfg, runOptions{ready: func(gw *gateway.Gateway) {
				// The sample relying party, on the gateway's own listener.
				(&demo.RP{Issuer: cfg.ExternalURL + "/e/demo", ClientID: "demo-app", Secret: creds.DemoAppSecret,
					BaseURL: cfg.ExternalURL + "/demo-app"}).Routes(gw.Mux)
				// ... and the sample SAML service provider.
				if err := (&demo.SP{BaseURL: cfg.ExternalURL + "/demo-sp", IdPMetadataURL: cfg.ExternalURL + "/e/demo/saml/metadata"}).Routes(gw.Mux); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "demo: SAML app: %v\n", err)
				}
				// The demo's upstream sources are synchronized before the demo says it is ready.
				for _, src := range []string{"wecom", "dingtalk"} {
					res, err := gw.Sync.Run(ctx, "demo", src, dirsync.Options{Trigger: directory.TriggerManual})
					if err != nil {
						fmt.Fprintf(cmd.ErrOrStderr(), "demo: first sync of %s failed: %v\n", src, err)
						continue
					}
					fmt.Fprintf(out, "synced %-8s %s\n", src, formatCounts(res.Task.Counts))
				}
				// Wire both simulators' event pushes to the gateway once it serves (the platforms verify
				// the URL when it is registered); the demo says it is ready only after that.
				go func() {
					for _, c := range []struct{ sim, src string }{{wURL, "wecom"}, {dURL, "dingtalk"}} {
						if err := registerCallback(ctx, c.sim, cfg.ExternalURL+"/e/demo/sources/"+c.src+"/events"); err != nil {
							fmt.Fprintf(cmd.ErrOrStderr(), "demo: wiring %s events: %v\n", c.src, err)
						}
					}
					printDemo(out, cfg.ExternalURL, dataDir, creds, sims)
				}()
			}})
		},
	}
	cmd.Flags().StringVar(&pw, "password", "", "password of the demo user zhangsan (default: random, printed)")
	cmd.Flags().StringVar(&wecomAddr, "wecom-addr", "127.0.0.1:8081", "listen address of the WeCom simulator")
	cmd.Flags().StringVar(&dingAddr, "dingtalk-addr", "127.0.0.1:8082", "listen address of the DingTalk simulator")
	cmd.Flags().IntVar(&users, "users", 200, "users in each simulated org (zhangsan included)")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "seed of the simulated orgs and their credentials")
	return cmd
}

// registerCallback registers a simulator's event callback, retrying while the gateway starts.
func registerCallback(ctx context.Context, sim, callback string) error {
	var last error
	for i := 0; i < 50; i++ {
		resp, err := http.Post(sim+"/_sim/callback", "application/json", strings.NewReader(`{"url":"`+callback+`"}`))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				return nil
			}
			err = fmt.Errorf("%s: %s", resp.Status, b)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return last
}

// serveBackground serves h on addr until ctx ends and returns its base URL.
func serveBackground(ctx context.Context, addr string, h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return "http://" + ln.Addr().String(), nil
}

func printDemo(w io.Writer, ext, dataDir string, c *demo.Credentials, s *demo.Sims) {
	fmt.Fprintf(w, `qiao demo is ready.

  gateway            %[1]s/
  sign in            %[1]s/login?enterprise=demo   (WeCom QR, DingTalk or password; choose 张三 on a
                     simulator's QR page, or use the password below)
  admin console      %[1]s/console/   (张三 is the owner of enterprise demo: sign in as above)
  health             %[1]s/healthz   %[1]s/readyz   %[1]s/metrics
  sample OIDC app    %[1]s/demo-app/   (signs in through qiao and shows its ID token)
  sample SAML app    %[1]s/demo-sp/    (signs in through qiao's SAML IdP and shows the assertion;
                     after the OIDC app, no second scan: one SSO session)
  SAML IdP           metadata %[1]s/e/demo/saml/metadata
                     IdP-initiated: %[1]s/e/demo/saml/launch?sp=%[1]s/demo-sp/metadata
  OpenID Provider    issuer %[1]s/e/demo   (%[1]s/e/demo/.well-known/openid-configuration)
  signing keys       %[1]s/e/demo/keys
                     every client and SP as configured: qiao apps --data DIR --enterprise demo
  data directory     %[2]s

  enterprise         demo
  identity sources   local (the enterprise's own directory), wecom and dingtalk (the simulators'
                     orgs, synchronized; their events are pushed to the gateway, so a change in a
                     simulator's control API reaches the directory at once)
                     sources: qiao sources --data DIR --enterprise demo
                     resync:  qiao sync --enterprise demo --source wecom   (with the demo's --data)
  demo user          %[3]s / %[4]s   (张三)
  OIDC clients       sase-client  (native, PKCE, loopback redirect)
                     demo-app     secret %[5]s
                     demo-service secret %[6]s

  WeCom simulator    %[7]s/_sim/   corp %[8]s, agent %[9]d
  DingTalk simulator %[10]s/_sim/   corp %[11]s, app key %[12]s

Run "qiao sim wecom" or "qiao sim dingtalk" to see a simulator's secrets. Press Ctrl-C to stop.
`, ext, dataDir, c.Username, c.Password, c.DemoAppSecret, c.DemoServiceSecret,
		s.WeComURL, s.WeCom.CorpID, s.WeCom.AgentID, s.DingTalkURL, s.DingTalk.CorpID, s.DingTalk.AppKey)
}

func redact(dsn string) string { return gateway.RedactDSN(dsn) }
