package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/qiao-gateway/qiao/access"
	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/gateway"
	"github.com/qiao-gateway/qiao/internal/config"
	"github.com/qiao-gateway/qiao/internal/state"
	"github.com/qiao-gateway/qiao/session"
)

// openForChange opens the store for a command that changes it (the serving replicas run the
// access jobs the change queues).
func openForChange(cmd *cobra.Command, g *globalFlags) (*config.Config, directory.Store, error) {
	cfg, err := g.load()
	if err != nil {
		return nil, nil, err
	}
	st, err := gateway.OpenForChange(cmd.Context(), cfg, g.logger())
	if err != nil {
		return nil, nil, &exitError{1, err}
	}
	return cfg, st, nil
}

// declaredSource says whether the config file declares the source (then the next serve or
// apply would bring back what a command removed or reopen what it closed).
func declaredSource(cfg *config.Config, ent, id string) bool {
	for _, e := range cfg.Enterprises {
		if e.ID != ent {
			continue
		}
		for _, s := range e.Sources {
			if s.ID == id {
				return true
			}
		}
	}
	return false
}

func sourceDeleteCmd(g *globalFlags) *cobra.Command {
	var ent, src, reason string
	var force, dryRun bool
	cmd := &cobra.Command{
		Use:   "delete --enterprise ID --source ID [--dry-run] [--force]",
		Short: "Delete an identity source: show the plan, then remove its departments and links; people it alone linked depart",
		Long: "Show what deleting the source does — its departments and links, the people who depart (linked nowhere else),\n" +
			"those who keep other links, the sessions and refresh tokens that end — then delete it in one transaction.\n" +
			"Deletion protection (the source's sync.delete_users_threshold / delete_depts_threshold) refuses unless --force.\n" +
			"Sessions and tokens obtained through the source are refused at once; the serving replicas end them (with\n" +
			"back-channel and SOAP logout) within a second and audit it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, st, err := openForChange(cmd, g)
			if err != nil {
				return err
			}
			defer st.Close()
			ctx := cmd.Context()
			var counter access.SessionCounter
			if strings.HasPrefix(cfg.State, "redis") {
				if ss, err := state.Open(cfg.State); err == nil {
					defer ss.Close()
					counter = &session.Store{State: ss}
				}
			}
			plan, err := access.PlanSourceDeletion(ctx, st, counter, ent, src)
			if err != nil {
				return &exitError{1, fmt.Errorf("source %s of enterprise %s: %w", src, ent, err)}
			}
			w := cmd.OutOrStdout()
			printPlan(w, plan)
			if dryRun {
				fmt.Fprintln(w, "dry run: nothing changed")
				return nil
			}
			if plan.Protection != "" && !force {
				return &exitError{1, fmt.Errorf("deletion protection: %s; run again with --force to delete anyway", plan.Protection)}
			}
			if reason == "" {
				reason = "deleted with qiao sources delete"
			}
			if _, err := access.DeleteSource(ctx, st, ent, src, force, "cli", reason); err != nil {
				if errors.Is(err, access.ErrProtected) {
					return &exitError{1, fmt.Errorf("%w; run again with --force to delete anyway", err)}
				}
				return &exitError{1, err}
			}
			fmt.Fprintf(w, "deleted source %s of %s; the serving replicas end its sessions and tokens within a second\n", src, ent)
			if declaredSource(cfg, ent, src) {
				fmt.Fprintf(w, "note: the config file still declares %s: remove it there too, or the next serve/apply creates it again\n", src)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&ent, "enterprise", "", "enterprise ID")
	cmd.Flags().StringVar(&src, "source", "", "identity source ID")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show the plan only")
	cmd.Flags().BoolVar(&force, "force", false, "delete even past deletion protection")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	_ = cmd.MarkFlagRequired("enterprise")
	_ = cmd.MarkFlagRequired("source")
	return cmd
}

func printPlan(w io.Writer, p *access.SourceDeletion) {
	fmt.Fprintf(w, "deleting source %s (%s) of %s:\n", p.SourceID, p.Kind, p.EnterpriseID)
	fmt.Fprintf(w, "  departments removed   %d\n  links removed         %d\n", p.Departments, p.Links)
	fmt.Fprintf(w, "  people who depart     %d%s\n", len(p.Departing), names(p.Departing))
	fmt.Fprintf(w, "  people who stay       %d (other sources still link them; what this source granted ends)\n", len(p.Leaving))
	fmt.Fprintf(w, "  refresh tokens ended  %d\n", p.RefreshTokens)
	if p.Sessions >= 0 {
		fmt.Fprintf(w, "  sessions ended        %d\n", p.Sessions)
	} else {
		fmt.Fprintln(w, "  sessions ended        all opened through it (in-memory state: not countable from here)")
	}
	if p.Protection != "" {
		fmt.Fprintf(w, "  deletion protection   STOPS THIS: %s\n", p.Protection)
	}
}

func names(us []*directory.User) string {
	if len(us) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(" (")
	for i, u := range us {
		if i == 5 {
			fmt.Fprintf(&b, ", and %d more", len(us)-5)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(u.Username)
	}
	b.WriteString(")")
	return b.String()
}

func sourceSwitchCmd(g *globalFlags, enable bool) *cobra.Command {
	var ent, src, reason string
	verb, short := "close", "Close an identity source: no logon through it; its sessions and tokens end; its events wait in the inbox"
	if enable {
		verb, short = "open", "Open a closed identity source again: logon through it, scheduled sync, and the events it kept are applied"
	}
	cmd := &cobra.Command{
		Use:   verb + " --enterprise ID --source ID",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, st, err := openForChange(cmd, g)
			if err != nil {
				return err
			}
			defer st.Close()
			if reason == "" {
				reason = verb + "d with qiao sources " + verb
			}
			changed, err := access.SetSourceEnabled(cmd.Context(), st, ent, src, enable, "cli", reason)
			if err != nil {
				return &exitError{1, fmt.Errorf("source %s of enterprise %s: %w", src, ent, err)}
			}
			w := cmd.OutOrStdout()
			switch {
			case !changed:
				fmt.Fprintf(w, "source %s of %s is already %sed\n", src, ent, strings.TrimSuffix(verb, "e"))
			case enable:
				fmt.Fprintf(w, "opened source %s of %s; its kept events apply within a second\n", src, ent)
			default:
				fmt.Fprintf(w, "closed source %s of %s; its sessions and refresh tokens are refused now and ended within a second\n", src, ent)
			}
			if changed && declaredSource(cfg, ent, src) {
				fmt.Fprintf(w, "note: the config file declares %s: set enabled there too, or the next serve/apply sets it back\n", src)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&ent, "enterprise", "", "enterprise ID")
	cmd.Flags().StringVar(&src, "source", "", "identity source ID")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	_ = cmd.MarkFlagRequired("enterprise")
	_ = cmd.MarkFlagRequired("source")
	return cmd
}
