package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/qiao-gateway/qiao/directory"
)

func enterprisesCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "enterprises",
		Short: "List the enterprises in the store: their sources, OIDC clients, SAML service providers and people",
		Long: "List every enterprise serve or apply wrote into the store, with how many identity sources (and how many\n" +
			"of them are closed), OIDC clients, SAML service providers and people (and how many of them departed) it\n" +
			"has, and whether the config file declares it. It only reads, as qiao sources and qiao apps do.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			gw, err := openReadOnly(cmd, g)
			if err != nil {
				return err
			}
			defer gw.Close()
			ctx := cmd.Context()
			ents, err := gw.Store.ListEnterprises(ctx)
			if err != nil {
				return &exitError{1, err}
			}
			w := cmd.OutOrStdout()
			if len(ents) == 0 {
				fmt.Fprintln(w, "no enterprise yet: declare one in the config file and run qiao apply (or restart qiao serve)")
				return nil
			}
			fmt.Fprintf(w, "%-20s  %-12s  %-14s  %7s  %3s  %-20s  %s\n", "ENTERPRISE", "DECLARED BY", "SOURCES", "CLIENTS", "SPS", "PEOPLE", "NAME")
			for _, e := range ents {
				row, err := countEnterprise(ctx, gw.Store, e.ID)
				if err != nil {
					return &exitError{1, fmt.Errorf("enterprise %s: %w", e.ID, err)}
				}
				by := "command line"
				if e.Managed == directory.ManagedByConfig {
					by = "config file"
				}
				srcs := fmt.Sprint(row.sources)
				if row.closed > 0 {
					srcs += fmt.Sprintf(" (%d closed)", row.closed)
				}
				people := fmt.Sprint(row.people)
				if row.departed > 0 {
					people += fmt.Sprintf(" (%d departed)", row.departed)
				}
				fmt.Fprintf(w, "%-20s  %-12s  %-14s  %7d  %3d  %-20s  %s\n", e.ID, by, srcs, row.clients, row.sps, people, e.Name)
			}
			return nil
		},
	}
}

type enterpriseCounts struct {
	sources, closed, clients, sps, people, departed int
}

func countEnterprise(ctx context.Context, st directory.Store, ent string) (enterpriseCounts, error) {
	var c enterpriseCounts
	srcs, err := st.ListSources(ctx, ent)
	if err != nil {
		return c, err
	}
	for _, s := range srcs {
		c.sources++
		if !s.Enabled {
			c.closed++
		}
	}
	clients, err := st.ListClients(ctx, ent)
	if err != nil {
		return c, err
	}
	sps, err := st.ListServiceProviders(ctx, ent)
	if err != nil {
		return c, err
	}
	c.clients, c.sps = len(clients), len(sps)
	for after := ""; ; {
		users, err := st.ListUsers(ctx, ent, after, 10000)
		if err != nil {
			return c, err
		}
		for _, u := range users {
			c.people++
			if u.Status == directory.UserDeparted {
				c.departed++
			}
		}
		if len(users) < 10000 {
			return c, nil
		}
		after = users[len(users)-1].ID
	}
}
