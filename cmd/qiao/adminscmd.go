package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/qiao-gateway/qiao/adminapi"
	"github.com/qiao-gateway/qiao/gateway"
)

// adminsCmd is qiao admins: who administers qiao.
func adminsCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "admins", Short: "Administrators of the admin API: bootstrap a platform operator", Args: cobra.NoArgs}
	var ttl time.Duration
	boot := &cobra.Command{
		Use:   "bootstrap [--ttl 30m]",
		Short: "Print a one-time link that makes whoever follows it, logged on, a platform operator",
		Long: "Print a setup link for the first platform operator (an administrator of every enterprise). Open it in a\n" +
			"browser, log on the normal way (WeCom, DingTalk or a password) as a person of any enterprise, and that\n" +
			"person becomes an operator. The link works once and expires after --ttl; only its hash is stored. There is\n" +
			"no default password anywhere: run this again for a new link.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ttl < time.Minute || ttl > 24*time.Hour {
				return &exitError{1, errors.New("--ttl must be between 1m and 24h")}
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			cfg.Log.Level = "warn"
			ctx := cmd.Context()
			st, err := gateway.OpenForChange(ctx, cfg, gateway.NewLogger(cfg))
			if err != nil {
				return &exitError{1, err}
			}
			defer st.Close()
			tok, err := adminapi.NewSetupToken(ctx, st, ttl, "qiao admins bootstrap")
			if err != nil {
				return &exitError{1, err}
			}
			ext := cfg.ExternalURL
			if run, err := gateway.ReadRunning(cfg.DataDir); err == nil && run != nil && run.ExternalURL != "" {
				ext = run.ExternalURL
			}
			w := cmd.OutOrStdout()
			fmt.Fprintln(w, adminapi.SetupURL(ext, tok))
			fmt.Fprintf(w, "open it and log on within %s: the person logged on becomes a platform operator (the link works once)\n", ttl)
			return nil
		},
	}
	boot.Flags().DurationVar(&ttl, "ttl", 30*time.Minute, "how long the link works")
	cmd.AddCommand(boot)
	return cmd
}
