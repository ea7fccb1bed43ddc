package main

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/qiao-gateway/qiao/adminapi"
	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/provision"
	"github.com/qiao-gateway/qiao/gateway"
)

func provisionCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "provision status|push|records --enterprise ID",
		Short: "Outbound provisioning: the push of the directory into WeCom",
		Long: "Show an enterprise's provisioning target and its outbox (status), push now with a full reconcile (push),\n" +
			"and show what pushes did to each object (records).",
	}
	cmd.AddCommand(provisionStatusCmd(g), provisionPushCmd(g), provisionRecordsCmd(g))
	return cmd
}

func provisionTarget(cmd *cobra.Command, st directory.Store, ent string) (*directory.ProvisionTarget, directory.ProvisionStore, error) {
	ps, ok := st.(directory.ProvisionStore)
	if !ok {
		return nil, nil, &exitError{1, errors.New("this store keeps no provisioning")}
	}
	t, err := ps.GetProvisionTarget(cmd.Context(), ent)
	if errors.Is(err, directory.ErrNotFound) {
		return nil, nil, &exitError{1, fmt.Errorf("enterprise %q has no provisioning target (enterprises[].provisioning in the config file, or PUT /api/v1/enterprises/%s/provisioning)", ent, ent)}
	}
	if err != nil {
		return nil, nil, &exitError{1, err}
	}
	return t, ps, nil
}

func provisionStatusCmd(g *globalFlags) *cobra.Command {
	var ent string
	cmd := &cobra.Command{
		Use:   "status --enterprise ID",
		Short: "The target, the outbox (pending, parked with the reason) and the last reconcile",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ro, err := openReadOnly(cmd, g)
			if err != nil {
				return err
			}
			defer ro.Close()
			t, ps, err := provisionTarget(cmd, ro.Store, ent)
			if err != nil {
				return err
			}
			st, err := (&provision.Service{Store: ro.Store}).StatusOf(cmd.Context(), ent)
			if err != nil {
				return &exitError{1, err}
			}
			w := cmd.OutOrStdout()
			state := "enabled"
			if !t.Enabled {
				state = "disabled"
			}
			push := "every change"
			if !t.AutoPush {
				push = "reconciles only"
			}
			var secrets []string
			for k := range t.Secrets {
				secrets = append(secrets, k+" ••••")
			}
			sort.Strings(secrets)
			fmt.Fprintf(w, "target     %s corp %s, root department %s, %s, pushes %s\n", t.Kind, t.Config["corp_id"], t.Settings.RootDepartment, state, push)
			fmt.Fprintf(w, "scope      %s %s\n", t.Settings.Scope, strings.Join(append(t.Settings.Sources, t.Settings.Departments...), " "))
			if p := t.Config["proxies"]; p != "" {
				fmt.Fprintf(w, "proxies    %s (user %s)\n", p, t.Config["proxy_username"])
			}
			fmt.Fprintf(w, "secrets    %s\n", strings.Join(secrets, ", "))
			fmt.Fprintf(w, "outbox     %d pending, %d parked\n", st.Pending, st.Parked)
			fmt.Fprintf(w, "in WeCom   %d people and %d departments created by qiao\n", st.Managed[directory.ProvisionUser], st.Managed[directory.ProvisionDepartment])
			if lt := st.LastTask; lt != nil {
				fmt.Fprintf(w, "last task  %s %s %s %s  %s  %d calls", lt.ID, lt.Trigger, lt.Status, lt.StartedAt.Format("2006-01-02 15:04:05"), formatCounts(lt.Counts), lt.Calls)
				if lt.Reason != "" {
					fmt.Fprintf(w, "  (%s)", lt.Reason)
				}
				fmt.Fprintln(w)
			}
			parked, err := ps.ListOutbox(cmd.Context(), ent, directory.OutboxParked, 100)
			if err != nil {
				return &exitError{1, err}
			}
			for _, it := range parked {
				// The person's username (their ID names nobody to an admin), or the department's name.
				who := it.ObjectKey
				if username, name := adminapi.ParkedName(cmd.Context(), ro.Store, ent, it.ObjectType, it.ObjectKey); username != "" {
					who = fmt.Sprintf("%s (%s, id %s)", username, name, it.ObjectKey)
				} else if name != "" {
					who = fmt.Sprintf("%s (%s)", it.ObjectKey, name)
				}
				fmt.Fprintf(w, "parked     %s %s after %d attempts: errcode %d: %s\n", it.ObjectType, who, it.Attempts, it.ErrCode, it.Error)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&ent, "enterprise", "", "enterprise ID")
	_ = cmd.MarkFlagRequired("enterprise")
	return cmd
}

func provisionPushCmd(g *globalFlags) *cobra.Command {
	var ent string
	var dry, force bool
	cmd := &cobra.Command{
		Use:   "push --enterprise ID [--dry-run] [--force]",
		Short: "Push now: read WeCom under the root department, plan, protect, apply and record",
		Long: "A full reconcile: departments parents first, people, then removals (people, then departments deepest\n" +
			"first). Deletion protection cancels it past the target's thresholds unless --force. --dry-run records the\n" +
			"plan and changes nothing. Exit status 1 when the task fails or is cancelled.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			ro, err := gateway.OpenReadOnly(cmd.Context(), cfg, g.logger())
			if err != nil {
				return &exitError{1, err}
			}
			_, _, err = provisionTarget(cmd, ro.Store, ent)
			ro.Close()
			if err != nil {
				return err
			}
			gw, err := gateway.New(cmd.Context(), cfg, g.logger(), gateway.WithoutApply())
			if err != nil {
				return &exitError{1, err}
			}
			defer gw.Close()
			t, err := gw.Provision.Reconcile(cmd.Context(), ent, provision.ReconcileOptions{DryRun: dry, Force: force})
			if err != nil {
				return &exitError{1, err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "task %s %s: %s  (%d WeCom calls)\n", t.ID, t.Status, formatCounts(t.Counts), t.Calls)
			if t.Status != directory.TaskSucceeded {
				return &exitError{1, fmt.Errorf("task %s %s: %s", t.ID, t.Status, t.Reason)}
			}
			if t.Reason != "" {
				fmt.Fprintln(cmd.OutOrStdout(), t.Reason, "(qiao provision records --task "+t.ID+")")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&ent, "enterprise", "", "enterprise ID")
	cmd.Flags().BoolVar(&dry, "dry-run", false, "record the plan and change nothing")
	cmd.Flags().BoolVar(&force, "force", false, "go past deletion protection")
	_ = cmd.MarkFlagRequired("enterprise")
	return cmd
}

func provisionRecordsCmd(g *globalFlags) *cobra.Command {
	q := directory.ProvisionRecordQuery{}
	cmd := &cobra.Command{
		Use:   "records --enterprise ID [--task ID] [--limit N]",
		Short: "What pushes did to each object, newest first: local data, WeCom before and after, errcode",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ro, err := openReadOnly(cmd, g)
			if err != nil {
				return err
			}
			defer ro.Close()
			_, ps, err := provisionTarget(cmd, ro.Store, q.EnterpriseID)
			if err != nil {
				return err
			}
			recs, err := ps.ListProvisionRecords(cmd.Context(), q)
			if err != nil {
				return &exitError{1, err}
			}
			printProvisionRecords(cmd.OutOrStdout(), recs)
			return nil
		},
	}
	cmd.Flags().StringVar(&q.EnterpriseID, "enterprise", "", "enterprise ID")
	cmd.Flags().StringVar(&q.TaskID, "task", "", "a reconcile's task ID (default: every push)")
	cmd.Flags().IntVar(&q.Limit, "limit", 50, "records to show (at most 1000)")
	_ = cmd.MarkFlagRequired("enterprise")
	return cmd
}

func printProvisionRecords(w io.Writer, recs []*directory.ProvisionRecord) {
	for _, r := range recs {
		task := "push"
		if r.TaskID != "" {
			task = "task " + r.TaskID
		}
		fmt.Fprintf(w, "%s %s %s %s → %s (%s)", r.CreatedAt.Format("15:04:05.000"), r.Action, r.ObjectType, r.LocalKey, r.RemoteID, task)
		if r.Error != "" {
			fmt.Fprintf(w, "  errcode %d: %s", r.ErrCode, r.Error)
		}
		fmt.Fprintln(w)
		for _, part := range []struct {
			name string
			v    []byte
		}{{"local", r.Local}, {"before", r.Before}, {"after", r.After}} {
			if len(part.v) > 0 {
				fmt.Fprintf(w, "  %-7s %s\n", part.name, part.v)
			}
		}
	}
}
