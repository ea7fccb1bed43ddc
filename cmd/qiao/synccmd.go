package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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
			// Only a store serve or apply set up, and a source it holds: a typo creates nothing.
			ro, err := gateway.OpenReadOnly(cmd.Context(), cfg, g.logger())
			if err != nil {
				return &exitError{1, err}
			}
			err = knownSource(cmd.Context(), ro.Store, ent, src)
			ro.Close()
			if err != nil {
				return err
			}
			gw, err := gateway.New(cmd.Context(), cfg, g.logger(), gateway.WithoutApply())
			if err != nil {
				return &exitError{1, err}
			}
			defer gw.Close()
			pr := newProgress(cmd.ErrOrStderr())
			res, err := gw.Sync.Run(cmd.Context(), ent, src, dirsync.Options{Trigger: directory.TriggerManual, DryRun: dry, Progress: pr.update})
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
	cmd.AddCommand(syncTasksCmd(g), syncRecordsCmd(g))
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
	fmt.Fprintf(w, "read mode   %s (%d API calls)\n", res.Info.Mode, res.Info.Calls)
	fmt.Fprintf(w, "objects     %s\n", formatCounts(counts))
	if dry {
		if res.Plan.Empty() {
			fmt.Fprintln(w, "\nno changes planned: the local copy matches the upstream directory")
			return
		}
		shown := 0
		n := len(res.Plan.Depts) + len(res.Plan.Users)
		if n > 50 {
			fmt.Fprintf(w, "\nplanned changes (the first 50 of %d):\n", n)
		} else {
			fmt.Fprintf(w, "\nplanned changes (%d):\n", n)
		}
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

// openReadOnly opens what the gateway stored, read-only, for a command that only looks.
func openReadOnly(cmd *cobra.Command, g *globalFlags) (*gateway.ReadOnly, error) {
	cfg, err := g.load()
	if err != nil {
		return nil, err
	}
	ro, err := gateway.OpenReadOnly(cmd.Context(), cfg, g.logger())
	if err != nil {
		return nil, &exitError{1, err}
	}
	return ro, nil
}

func syncTasksCmd(g *globalFlags) *cobra.Command {
	var ent, src string
	var limit int
	cmd := &cobra.Command{
		Use:   "tasks --enterprise ID [--source ID]",
		Short: "List recent sync tasks, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			gw, err := openReadOnly(cmd, g)
			if err != nil {
				return err
			}
			defer gw.Close()
			if err := knownSource(cmd.Context(), gw.Store, ent, src); err != nil {
				return err
			}
			tasks, err := gw.Store.ListSyncTasks(cmd.Context(), ent, src, limit)
			if err != nil {
				return &exitError{1, err}
			}
			if len(tasks) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no sync task yet")
				return nil
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%-36s  %-9s  %-12s  %-10s  %-20s  %8s  %s\n", "TASK", "SOURCE", "TRIGGER", "STATUS", "STARTED", "SECONDS", "COUNTS / REASON")
			for _, t := range tasks {
				secs := "-"
				if !t.FinishedAt.IsZero() {
					secs = fmt.Sprintf("%.1f", t.FinishedAt.Sub(t.StartedAt).Seconds())
				}
				detail := formatCounts(t.Counts)
				if t.Reason != "" {
					detail += "  " + t.Reason
				}
				fmt.Fprintf(w, "%-36s  %-9s  %-12s  %-10s  %-20s  %8s  %s\n", t.ID, t.SourceID, t.Trigger, t.Status,
					t.StartedAt.Local().Format("2006-01-02 15:04:05"), secs, detail)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&ent, "enterprise", "", "enterprise ID")
	cmd.Flags().StringVar(&src, "source", "", "only this source")
	cmd.Flags().IntVar(&limit, "limit", 20, "how many tasks")
	_ = cmd.MarkFlagRequired("enterprise")
	return cmd
}

func syncRecordsCmd(g *globalFlags) *cobra.Command {
	var q directory.RecordQuery
	cmd := &cobra.Command{
		Use:   "records --task ID [--action create|update|move|delete|error] [--object user|department] [--upstream-id ID]",
		Short: "Show what a sync task did to each object: upstream data, local data before and after",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			gw, err := openReadOnly(cmd, g)
			if err != nil {
				return err
			}
			defer gw.Close()
			if _, err := gw.Store.GetSyncTask(cmd.Context(), q.TaskID); errors.Is(err, directory.ErrNotFound) {
				return &exitError{1, fmt.Errorf("no sync task %q (see: qiao sync tasks --enterprise ID)", q.TaskID)}
			} else if err != nil {
				return &exitError{1, err}
			}
			w := cmd.OutOrStdout()
			for {
				recs, err := gw.Store.ListSyncRecords(cmd.Context(), q)
				if err != nil {
					return err
				}
				for _, r := range recs {
					fmt.Fprintf(w, "%s %s %s", r.Action, r.ObjectType, r.UpstreamID)
					if r.Error != "" {
						fmt.Fprintf(w, "  error: %s", r.Error)
					}
					fmt.Fprintln(w)
					for _, part := range []struct {
						name string
						v    []byte
					}{{"upstream", r.Upstream}, {"before", r.LocalBefore}, {"after", r.LocalAfter}} {
						if len(part.v) > 0 {
							fmt.Fprintf(w, "  %-8s %s\n", part.name, part.v)
						}
					}
				}
				if len(recs) < 1000 || q.Limit != 1000 {
					return nil
				}
				q.AfterID = recs[len(recs)-1].ID
			}
		},
	}
	cmd.Flags().StringVar(&q.TaskID, "task", "", "task ID (see: qiao sync tasks)")
	cmd.Flags().StringVar(&q.Action, "action", "", "only this action")
	cmd.Flags().StringVar(&q.ObjectType, "object", "", "user or department")
	cmd.Flags().StringVar(&q.UpstreamID, "upstream-id", "", "only this upstream object")
	q.Limit = 1000
	_ = cmd.MarkFlagRequired("task")
	return cmd
}

// knownSource refuses an enterprise, or a source of it (when src is not empty), that the store
// does not hold: a typo is an error, not an empty table.
func knownSource(ctx context.Context, st directory.Store, ent, src string) error {
	if _, err := st.GetEnterprise(ctx, ent); errors.Is(err, directory.ErrNotFound) {
		return &exitError{1, fmt.Errorf("no enterprise %q (see: qiao enterprises)", ent)}
	} else if err != nil {
		return &exitError{1, err}
	}
	if src == "" {
		return nil
	}
	if _, err := st.GetSource(ctx, ent, src); errors.Is(err, directory.ErrNotFound) {
		return &exitError{1, fmt.Errorf("no source %q in enterprise %s (see: qiao sources --enterprise %s)", src, ent, ent)}
	} else if err != nil {
		return &exitError{1, err}
	}
	return nil
}
