package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/qiao-gateway/qiao/adminapi"
	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/gateway"
)

// adminsCmd is qiao admins: who administers qiao.
func adminsCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "admins", Short: "Administrators: grant, revoke and list roles; bootstrap a platform operator", Args: cobra.NoArgs}
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
	cmd.AddCommand(boot, roleCmd(g, "grant"), roleCmd(g, "revoke"), adminsListCmd(g))
	return cmd
}

// roleCmd is qiao admins grant|revoke: the admin API's role grants, for an operator at the
// server (for example to name the first owner of an enterprise the file does not declare).
func roleCmd(g *globalFlags, verb string) *cobra.Command {
	use, short, nargs := "grant ENTERPRISE USERNAME owner|admin|auditor", "Give a person of the enterprise's directory an administrator role", 3
	if verb == "revoke" {
		use, short, nargs = "revoke ENTERPRISE USERNAME", "Take a person's administrator role", 2
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + ". The same rules as the admin API: the person must be in the directory, roles config.yaml\n" +
			"grants are changed in the file, and an enterprise keeps at least one owner. The change is audited (actor cli).",
		Args: cobra.ExactArgs(nargs),
		RunE: func(cmd *cobra.Command, args []string) error {
			var role directory.AdminRole
			if verb == "grant" {
				role = directory.AdminRole(args[2])
				if !role.Valid() {
					return &exitError{2, fmt.Errorf("role %q: want owner, admin or auditor", args[2])}
				}
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
			if _, err := st.GetEnterprise(ctx, args[0]); errors.Is(err, directory.ErrNotFound) {
				return &exitError{1, fmt.Errorf("no enterprise %q (qiao enterprises lists them)", args[0])}
			} else if err != nil {
				return &exitError{1, err}
			}
			_, err = adminapi.ChangeRole(ctx, st, adminapi.RoleChange{Enterprise: args[0], Username: args[1], Role: role, Actor: cliActor, ConfigFile: configName(g.config)})
			if err != nil {
				return &exitError{1, err}
			}
			w := cmd.OutOrStdout()
			if verb == "grant" {
				fmt.Fprintf(w, "%s is now %s of enterprise %s\n", args[1], role, args[0])
			} else {
				fmt.Fprintf(w, "%s holds no role in enterprise %s any more; their open console pages stop working at their next request\n", args[1], args[0])
			}
			return nil
		},
	}
}

// adminsListCmd is qiao admins list: who holds which role, and the platform operators.
func adminsListCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list ENTERPRISE",
		Short: "List an enterprise's administrators and their roles",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			gw, err := openReadOnly(cmd, g)
			if err != nil {
				return err
			}
			defer gw.Close()
			ctx := cmd.Context()
			if _, err := gw.Store.GetEnterprise(ctx, args[0]); errors.Is(err, directory.ErrNotFound) {
				return &exitError{1, fmt.Errorf("no enterprise %q (qiao enterprises lists them)", args[0])}
			}
			gs, err := gw.Store.ListAdminGrants(ctx, args[0])
			if err != nil {
				return &exitError{1, err}
			}
			w := cmd.OutOrStdout()
			if len(gs) == 0 {
				fmt.Fprintf(w, "nobody administers enterprise %s (qiao admins grant %s USERNAME owner)\n", args[0], args[0])
				return nil
			}
			fmt.Fprintf(w, "%-24s %-8s %-12s %s\n", "USERNAME", "ROLE", "FROM", "GRANTED BY")
			for _, gr := range gs {
				from := "api/cli"
				if gr.Managed == directory.ManagedByConfig {
					from = "config file"
				}
				fmt.Fprintf(w, "%-24s %-8s %-12s %s\n", gr.Username, gr.Role, from, gr.GrantedBy)
			}
			return nil
		},
	}
}

// configName is what a refusal names as the file that owns a grant.
func configName(path string) string {
	if path == "" {
		return "the config file"
	}
	return path
}
