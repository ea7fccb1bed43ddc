package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/qiao-gateway/qiao/gateway"
)

// mask shows the first and last characters of a secret only.
func mask(s string) string {
	if len(s) <= 8 {
		return strings.Repeat("•", len(s))
	}
	return s[:3] + strings.Repeat("•", 6) + s[len(s)-3:]
}

func sourcesCmd(g *globalFlags) *cobra.Command {
	var ent string
	var reveal bool
	cmd := &cobra.Command{
		Use:   "sources --enterprise ID [--reveal]",
		Short: "Show an enterprise's identity sources: what to paste into the platform console, last sync and last event",
		Long: "Show each identity source with its event callback URL, token and AES key (masked unless --reveal),\n" +
			"login callback URL, the last sync task and the time and outcome of the last event received.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			gw, err := openReadOnly(cmd, g)
			if err != nil {
				return err
			}
			defer gw.Close()
			if err := knownSource(cmd.Context(), gw.Store, ent, ""); err != nil {
				return err
			}
			srcs, err := gw.Store.ListSources(cmd.Context(), ent)
			if err != nil {
				return &exitError{1, err}
			}
			w := cmd.OutOrStdout()
			printExternalURL(w, gw)
			if len(srcs) == 0 {
				fmt.Fprintf(w, "enterprise %s has no identity source\n", ent)
			}
			base := gw.Config.ExternalURL + "/e/" + ent + "/sources/"
			for _, s := range srcs {
				state := "enabled"
				if !s.Enabled {
					state = "closed"
				}
				fmt.Fprintf(w, "%s (%s, %s) — %s\n", s.ID, s.Kind, state, s.Name)
				if s.Kind != "local" {
					fmt.Fprintf(w, "  login callback     %scallback\n", base+s.ID+"/")
					if err := gw.Broker.CheckCallbackDomain(s); err != nil {
						fmt.Fprintf(w, "  PROBLEM            %s\n", err)
					} else {
						fmt.Fprintf(w, "  callback domain    %s (register it as the app's trusted/redirect domain)\n", s.Config["callback_domain"])
					}
					fmt.Fprintf(w, "  event callback     %sevents\n", base+s.ID+"/")
					keys := []string{}
					for k := range s.Secrets {
						keys = append(keys, k)
					}
					sort.Strings(keys)
					for _, k := range keys {
						v := s.Secrets[k]
						if !reveal {
							v = mask(v)
						}
						fmt.Fprintf(w, "  %-18s %s\n", k, v)
					}
				}
				if tasks, _ := gw.Store.ListSyncTasks(cmd.Context(), ent, s.ID, 1); len(tasks) > 0 {
					t := tasks[0]
					fmt.Fprintf(w, "  last task          %s %s %s: %s", t.StartedAt.Local().Format("2006-01-02 15:04:05"), t.Trigger, t.Status, formatCounts(t.Counts))
					if t.Reason != "" {
						fmt.Fprintf(w, "; %s", t.Reason)
					}
					fmt.Fprintln(w)
				}
				if evs, _ := gw.Store.ListSourceEvents(cmd.Context(), ent, s.ID, 1); len(evs) > 0 {
					e := evs[0]
					fmt.Fprintf(w, "  last event         %s %s %s %s\n", e.ReceivedAt.Local().Format("2006-01-02 15:04:05"), e.EventType, e.Status, e.Error)
				} else if s.Kind != "local" {
					fmt.Fprintf(w, "  last event         none received yet\n")
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&ent, "enterprise", "", "enterprise ID")
	cmd.Flags().BoolVar(&reveal, "reveal", false, "show secrets in full")
	cmd.AddCommand(sourceDeleteCmd(g), sourceSwitchCmd(g, false), sourceSwitchCmd(g, true), sourceTestCmd(g))
	_ = cmd.MarkFlagRequired("enterprise")
	return cmd
}

// printExternalURL says which external URL the URLs shown derive from: the one the gateway serving
// from the data directory recorded, or, when none has, the configuration's.
func printExternalURL(w io.Writer, ro *gateway.ReadOnly) {
	if r := ro.Running; r != nil {
		fmt.Fprintf(w, "external URL %s (recorded by qiao serve %s, pid %d, started %s, in %s/%s)\n", ro.Config.ExternalURL, r.Version, r.PID,
			r.StartedAt.Local().Format("2006-01-02 15:04:05"), ro.Config.DataDir, gateway.RunningFile)
		if ro.ConfigURL != "" {
			fmt.Fprintf(w, "  note: this command's configuration says %s; the URLs below are the gateway's\n", ro.ConfigURL)
		}
		return
	}
	fmt.Fprintf(w, "external URL %s (from the configuration: no gateway has served from %s yet)\n", ro.Config.ExternalURL, ro.Config.DataDir)
}
