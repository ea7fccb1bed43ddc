package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/qiao-gateway/qiao/directory"
)

// qiao users list/show: the admin API's people search and person view, read-only, for an
// operator at the server.
func usersCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "Search the people of an enterprise's directory and show one (read-only)"}
	var ent, q, source, status, after string
	var limit int
	list := &cobra.Command{
		Use:   "list --enterprise ID [--q TEXT] [--source ID] [--status STATUS]",
		Short: "List people: --q matches a prefix of the name, username or email, or a whole mobile number",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 || limit > 1000 {
				return &exitError{2, errors.New("--limit must be between 1 and 1000")}
			}
			gw, err := openReadOnly(cmd, g)
			if err != nil {
				return err
			}
			defer gw.Close()
			ctx := cmd.Context()
			if err := knownSource(ctx, gw.Store, ent, source); err != nil {
				return err
			}
			us, err := gw.Store.SearchUsers(ctx, directory.UserSearch{EnterpriseID: ent, Text: q, SourceID: source,
				Status: directory.UserStatus(status), After: after, Limit: limit + 1})
			if err != nil {
				return &exitError{1, err}
			}
			w := cmd.OutOrStdout()
			if len(us) == 0 {
				fmt.Fprintln(w, "nobody found")
				return nil
			}
			more := len(us) > limit
			if more {
				us = us[:limit]
			}
			fmt.Fprintf(w, "%-24s %-16s %-10s %-16s %s\n", "USERNAME", "NAME", "STATUS", "MOBILE", "EMAIL")
			for _, u := range us {
				fmt.Fprintf(w, "%-24s %-16s %-10s %-16s %s\n", u.Username, u.Name, u.Status, u.Mobile, u.Email)
			}
			if more {
				fmt.Fprintf(w, "… more: --after %s\n", us[len(us)-1].Username)
			}
			return nil
		},
	}
	list.Flags().StringVar(&ent, "enterprise", "", "enterprise ID (required)")
	list.Flags().StringVar(&q, "q", "", "name, username or email prefix, or mobile number")
	list.Flags().StringVar(&source, "source", "", "only people linked to this identity source")
	list.Flags().StringVar(&status, "status", "", "only people in this status (active, disabled, inactive, departed)")
	list.Flags().StringVar(&after, "after", "", "the page after this username")
	list.Flags().IntVar(&limit, "limit", 50, "people per page")
	_ = list.MarkFlagRequired("enterprise")

	var showEnt string
	show := &cobra.Command{
		Use:   "show --enterprise ID USERNAME",
		Short: "Show a person: status, links per source with departments, recent logons and audit",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			gw, err := openReadOnly(cmd, g)
			if err != nil {
				return err
			}
			defer gw.Close()
			ctx := cmd.Context()
			st := gw.Store
			if err := knownSource(ctx, st, showEnt, ""); err != nil {
				return err
			}
			u, err := st.GetUserByUsername(ctx, showEnt, args[0])
			if errors.Is(err, directory.ErrNotFound) {
				u, err = st.GetUser(ctx, showEnt, args[0])
			}
			if errors.Is(err, directory.ErrNotFound) {
				return &exitError{1, fmt.Errorf("enterprise %s has no user %q (see: qiao users list --enterprise %s --q TEXT)", showEnt, args[0], showEnt)}
			}
			if err != nil {
				return &exitError{1, err}
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s — %s (%s)\n", u.Username, u.Name, u.Status)
			fmt.Fprintf(w, "  id                 %s\n", u.ID)
			if u.Email != "" {
				fmt.Fprintf(w, "  email              %s\n", u.Email)
			}
			if u.Mobile != "" {
				fmt.Fprintf(w, "  mobile             %s\n", u.Mobile)
			}
			if u.Managed == directory.ManagedByConfig {
				fmt.Fprintf(w, "  file-managed       declared in the config file\n")
			}
			if u.PasswordHash != "" {
				fmt.Fprintf(w, "  local password     set\n")
			}
			if u.DepartedBy != "" {
				fmt.Fprintf(w, "  departed by        %s\n", u.DepartedBy)
			}
			links, err := st.LinksOfUser(ctx, showEnt, u.ID)
			if err != nil {
				return &exitError{1, err}
			}
			for _, l := range links {
				var depts []string
				for _, d := range l.Departments {
					if dep, err := st.GetDepartment(ctx, showEnt, l.SourceID, d); err == nil {
						depts = append(depts, dep.Name+" ("+d+")")
					} else {
						depts = append(depts, d)
					}
				}
				fmt.Fprintf(w, "  source %-11s %s", l.SourceID, l.UpstreamID)
				if len(depts) > 0 {
					fmt.Fprintf(w, " — %s", strings.Join(depts, ", "))
				}
				fmt.Fprintln(w)
			}
			evs, err := st.ListAuditEvents(ctx, directory.AuditQuery{EnterpriseID: showEnt, UserID: u.ID, Limit: 10})
			if err != nil {
				return &exitError{1, err}
			}
			if len(evs) > 0 {
				fmt.Fprintln(w, "  recent events (logons and changes):")
			}
			for _, e := range evs {
				fmt.Fprintf(w, "    %s %-24s %-7s %s %s %s\n", e.At.Local().Format("2006-01-02 15:04:05"), e.Kind, e.Outcome, e.Actor, e.SourceID, e.Reason)
			}
			fmt.Fprintln(w, "  live sessions: see GET /api/v1/enterprises/"+showEnt+"/users/"+u.ID+" (they are in the state store)")
			return nil
		},
	}
	show.Flags().StringVar(&showEnt, "enterprise", "", "enterprise ID (required)")
	_ = show.MarkFlagRequired("enterprise")
	cmd.AddCommand(list, show)
	return cmd
}
