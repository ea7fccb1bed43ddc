package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/qiao-gateway/qiao/adminapi"
)

// sourceTestCmd runs the admin API's connectivity checks of a source from the server: one line
// per check, exit 1 when one fails.
func sourceTestCmd(g *globalFlags) *cobra.Command {
	var ent, src string
	cmd := &cobra.Command{
		Use:   "test --enterprise ID --source ID",
		Short: "Test an identity source's connectivity: credentials, egress IP, read mode, login settings, event callback, domain file",
		Long: "Run the checks of POST /api/v1/enterprises/{ent}/sources/{id}/test from this machine (its egress address is the one\n" +
			"tested): one line per check, ok, warn or FAIL, with what to do. Exits 1 when a check fails. Changes nothing.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			gw, err := openReadOnly(cmd, g)
			if err != nil {
				return err
			}
			defer gw.Close()
			ctx := cmd.Context()
			if err := knownSource(ctx, gw.Store, ent, src); err != nil {
				return err
			}
			s, err := gw.Store.GetSource(ctx, ent, src)
			if err != nil {
				return &exitError{1, err}
			}
			w := cmd.OutOrStdout()
			failed := 0
			for _, c := range adminapi.TestSource(ctx, gw.Store, s, gw.Broker.CheckCallbackDomain) {
				status := c.Status
				if status == adminapi.CheckFail {
					status, failed = "FAIL", failed+1
				}
				line := fmt.Sprintf("%-4s  %-19s  %s", status, c.Name, c.Detail)
				if c.Fix != "" {
					line += " — fix: " + c.Fix
				}
				fmt.Fprintln(w, line)
			}
			if failed > 0 {
				return &exitError{1, fmt.Errorf("%d check(s) of source %s failed", failed, src)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&ent, "enterprise", "", "enterprise ID")
	cmd.Flags().StringVar(&src, "source", "", "identity source ID")
	_ = cmd.MarkFlagRequired("enterprise")
	_ = cmd.MarkFlagRequired("source")
	return cmd
}
