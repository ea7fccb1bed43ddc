package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/qiao-gateway/qiao/gateway"
	"github.com/qiao-gateway/qiao/internal/config"
	"github.com/qiao-gateway/qiao/keys"
)

// qiao keys list/rotate/export: the signing keys in the database every replica shares.
func keysCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage signing keys (kept in the database, sealed with the master key)"}
	// open loads the key set: existing opens the store read-only and makes nothing.
	open := func(cmd *cobra.Command, existing bool) (*config.Config, *keys.Manager, bool, func(), error) {
		cfg, err := g.load()
		if err != nil {
			return nil, nil, false, nil, err
		}
		m, made, closeFn, err := gateway.OpenKeys(cmd.Context(), cfg, g.logger(), existing)
		if errors.Is(err, gateway.ErrNoKeys) {
			return nil, nil, false, nil, &exitError{1, fmt.Errorf("%w: qiao serve generates them at its first start (or qiao keys rotate)", err)}
		}
		var se *gateway.StartError
		if errors.As(err, &se) && existing {
			// Nothing set up yet (no data directory, no database): there are no keys to show.
			return nil, nil, false, nil, &exitError{1, fmt.Errorf("no signing keys: %w", err)}
		}
		if err != nil {
			return nil, nil, false, nil, &exitError{1, err}
		}
		return cfg, m, made, closeFn, nil
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the published signing keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, m, _, closeFn, err := open(cmd, true)
			if err != nil {
				return err
			}
			defer closeFn()
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%-6s  %-43s  %-7s  %s\n", "ALG", "KID", "STATE", "CREATED / RETIRED UNTIL")
			for _, k := range m.Published() {
				stateS, when := "active", k.CreatedAt.Format(time.RFC3339)
				if !k.Active() {
					stateS, when = "retired", k.ExpiresAt.Format(time.RFC3339)
				}
				fmt.Fprintf(w, "%-6s  %-43s  %-7s  %s\n", k.Alg, k.ID, stateS, when)
			}
			return nil
		},
	}
	var algs []string
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Make new signing keys; the old ones stay published for key_rotation_grace",
		Long: "Make new signing keys. The old public keys stay in JWKS and SAML metadata for key_rotation_grace\n" +
			"(default 48h) so tokens they signed still verify. Every running replica picks the change up within 15 s.\n" +
			"With no keys yet it makes the first set (from the files in keys_dir, if a gateway kept them there).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for i, a := range algs {
				j := slices.IndexFunc(keys.Algs, func(k string) bool { return strings.EqualFold(k, strings.TrimSpace(a)) })
				if j < 0 {
					return &exitError{2, fmt.Errorf("--alg %q: want RS256, ES256, EdDSA or SAML", a)}
				}
				algs[i] = keys.Algs[j]
			}
			_, m, made, closeFn, err := open(cmd, false)
			if err != nil {
				return err
			}
			defer closeFn()
			if made {
				for _, k := range m.Published() {
					fmt.Fprintf(cmd.OutOrStdout(), "new %s key %s (the first set)\n", k.Alg, k.ID)
				}
				return nil
			}
			rotated, err := m.Rotate(algs...)
			if err != nil {
				return &exitError{1, err}
			}
			for _, k := range rotated {
				fmt.Fprintf(cmd.OutOrStdout(), "new %s key %s\n", k.Alg, k.ID)
			}
			return nil
		},
	}
	rotate.Flags().StringSliceVar(&algs, "alg", nil, "which keys to rotate: RS256, ES256, EdDSA, SAML, any case (default: all)")
	export := &cobra.Command{
		Use:   "export DIR",
		Short: "Write every stored signing key (private keys in PEM, 0600) and a manifest to a new directory",
		Long: "Write every stored signing key, retired ones included, to DIR as a keys directory: one PEM file per\n" +
			"key (0600), the SAML certificates and keys.json. It is a backup: keep it as secret as the master key.\n" +
			"A gateway whose database has no keys imports such a directory when keys_dir names it.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, m, _, closeFn, err := open(cmd, true)
			if err != nil {
				return err
			}
			defer closeFn()
			n, err := m.Export(cmd.Context(), args[0])
			if err != nil {
				return &exitError{1, err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "exported %d keys to %s\n", n, args[0])
			return nil
		},
	}
	cmd.AddCommand(list, rotate, export)
	return cmd
}
