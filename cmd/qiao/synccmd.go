package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/dirsync"
	"github.com/qiao-gateway/qiao/gateway"
)

func syncCmd(g *globalFlags) *cobra.Command {
	var ent, src string
	var dry bool
	cmd := &cobra.Command{
		Use:   "sync --enterprise ID --source ID [--dry-run]",
		Short: "Synchronize one identity source now",
		Long: "Read the source's upstream directory, plan the changes against the local copy and apply them in one\n" +
			"transaction (or, with --dry-run, print the plan and change nothing). Deletion protection applies.\n" +
			"Progress goes to stderr; the summary to stdout. Exit status 1 when the task fails or is cancelled.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			cfg.Log.Level = "warn"
			gw, err := gateway.New(cmd.Context(), cfg, gateway.NewLogger(cfg))
			if err != nil {
				return &exitError{1, err}
			}
			defer gw.Close()
			pr := newProgress(cmd.ErrOrStderr())
			res, err := gw.Sync.Run(cmd.Context(), ent, src, dirsync.Options{Trigger: directory.TriggerManual, DryRun: dry, Progress: pr.update})
			pr.stop()
			if res != nil && res.Plan != nil {
				printSummary(cmd.OutOrStdout(), res, dry)
			}
			if err != nil {
				return &exitError{1, err}
			}
			if res.Task != nil && res.Task.Status != directory.TaskSucceeded {
				return &exitError{1, fmt.Errorf("task %s %s: %s", res.Task.ID, res.Task.Status, res.Task.Reason)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&ent, "enterprise", "", "enterprise ID")
	cmd.Flags().StringVar(&src, "source", "", "identity source ID")
	cmd.Flags().BoolVar(&dry, "dry-run", false, "print the plan and change nothing")
	_ = cmd.MarkFlagRequired("enterprise")
	_ = cmd.MarkFlagRequired("source")
	return cmd
}

// progress prints the task's phase and counts at most once a second.
type progress struct {
	mu   sync.Mutex
	w    io.Writer
	last time.Time
	p    dirsync.Progress
}

func newProgress(w io.Writer) *progress { return &progress{w: w} }

func (p *progress) update(pg dirsync.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	changed := pg.Phase != p.p.Phase
	p.p = pg
	if changed || time.Since(p.last) >= time.Second {
		p.last = time.Now()
		fmt.Fprintf(p.w, "%-16s departments %6d  users %7d  planned %7d  applied %7d\n", pg.Phase, pg.Depts, pg.Users, pg.Planned, pg.Applied)
	}
}

func (p *progress) stop() {}

func printSummary(w io.Writer, res *dirsync.Result, dry bool) {
	counts := res.Plan.Counts()
	if res.Task != nil {
		counts = res.Task.Counts
	}
	fmt.Fprintln(w)
	if res.Task != nil {
		fmt.Fprintf(w, "task        %s\nstatus      %s\n", res.Task.ID, res.Task.Status)
		if res.Task.Reason != "" {
			fmt.Fprintf(w, "reason      %s\n", res.Task.Reason)
		}
	} else if dry {
		fmt.Fprintln(w, "dry run: nothing was applied")
	}
	fmt.Fprintf(w, "read mode   %s (%d API calls)\n\n", res.Info.Mode, res.Info.Calls)
	fmt.Fprintf(w, "%-10s %10s\n", "ACTION", "OBJECTS")
	var actions []string
	for a := range counts {
		actions = append(actions, a)
	}
	sort.Strings(actions)
	for _, a := range actions {
		fmt.Fprintf(w, "%-10s %10d\n", a, counts[a])
	}
	if dry {
		shown := 0
		fmt.Fprintln(w, "\nplanned changes (first 50):")
		for _, d := range res.Plan.Depts {
			if shown == 50 {
				break
			}
			name := ""
			if d.After != nil {
				name = d.After.Name
			} else if d.Before != nil {
				name = d.Before.Name
			}
			fmt.Fprintf(w, "  %-8s department %s\n", d.Action, name)
			shown++
		}
		for _, u := range res.Plan.Users {
			if shown == 50 {
				break
			}
			line := fmt.Sprintf("  %-8s user %s", u.Action, u.UpstreamID)
			if u.Error != "" {
				line += ": " + u.Error
			}
			fmt.Fprintln(w, strings.TrimRight(line, " "))
			shown++
		}
	}
}
