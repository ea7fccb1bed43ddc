package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/qiao-gateway/qiao/access"
	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/gateway"
)

// appChangeCmds are qiao apps disable, enable and delete.
func appChangeCmds(g *globalFlags) []*cobra.Command {
	return []*cobra.Command{
		appChangeCmd(g, "disable", "Disable an OIDC client or SAML service provider: its requests are refused and what it holds ends",
			"Disable an app. A disabled OIDC client is unknown to every endpoint, its refresh tokens are revoked and its\n"+
				"access tokens refused; a disabled SAML service provider is refused at SSO and its SAML sessions end (a SOAP\n"+
				"LogoutRequest where its metadata has that binding). A running gateway does it within a second (other\n"+
				"replicas refuse within 10 s). Tokens revoked stay revoked when the app is enabled again."),
		appChangeCmd(g, "enable", "Enable a disabled OIDC client or SAML service provider again",
			"Enable an app again. Tokens revoked while it was disabled stay revoked: people sign in to it again."),
		appChangeCmd(g, "delete", "Delete an OIDC client or SAML service provider and end what it holds",
			"Delete an app that the config file does not declare (one it declares is deleted by removing it from the\n"+
				"file). What it held ends as when it is disabled: a client's refresh tokens go with it and its access tokens\n"+
				"are refused; a service provider's SAML sessions end."),
	}
}

func appChangeCmd(g *globalFlags, verb, short, long string) *cobra.Command {
	var ent, client, sp, reason string
	cmd := &cobra.Command{
		Use:   verb + " --enterprise ID (--client ID | --sp ENTITY_ID) [--reason TEXT]",
		Short: short,
		Long:  long,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (client == "") == (sp == "") {
				return &exitError{1, errors.New("name one app: --client ID or --sp ENTITY_ID")}
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := gateway.OpenForChange(ctx, cfg, g.logger())
			if err != nil {
				return &exitError{1, err}
			}
			defer st.Close()
			if _, err := st.GetEnterprise(ctx, ent); errors.Is(err, directory.ErrNotFound) {
				return &exitError{1, fmt.Errorf("no enterprise %q", ent)}
			} else if err != nil {
				return &exitError{1, err}
			}
			if reason == "" {
				reason = "qiao apps " + verb
			}
			var line string
			if client != "" {
				line, err = changeClient(ctx, st, verb, ent, client, reason)
			} else {
				line, err = changeSP(ctx, st, verb, ent, sp, reason)
			}
			if err != nil {
				return &exitError{1, err}
			}
			fmt.Fprintln(cmd.OutOrStdout(), line)
			return nil
		},
	}
	cmd.Flags().StringVar(&ent, "enterprise", "", "enterprise ID")
	cmd.Flags().StringVar(&client, "client", "", "the OIDC client's ID")
	cmd.Flags().StringVar(&sp, "sp", "", "the SAML service provider's entity ID")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit record")
	_ = cmd.MarkFlagRequired("enterprise")
	return cmd
}

// cliActor is who the audit records made the change.
const cliActor = "cli"

// fileOwns is what a disable or enable adds for an app the config file declares.
func fileOwns(managed string) string {
	if managed != directory.ManagedByConfig {
		return ""
	}
	return " (the config file declares it: the next serve or apply sets it as the file says)"
}

func changeClient(ctx context.Context, st directory.Store, verb, ent, id, reason string) (string, error) {
	c, err := st.GetClient(ctx, ent, id)
	if errors.Is(err, directory.ErrNotFound) {
		return "", fmt.Errorf("no client %q in enterprise %s", id, ent)
	}
	if err != nil {
		return "", err
	}
	switch verb {
	case "delete":
		if c.Managed == directory.ManagedByConfig {
			return "", fmt.Errorf("client %s of %s is declared in the config file: remove it there and run qiao apply (or restart qiao serve)", id, ent)
		}
		n, err := access.DeleteClient(ctx, st, ent, id, cliActor, reason)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("deleted client %s of %s and revoked its %d refresh token(s); a running gateway refuses its access tokens within a second", id, ent, n), nil
	case "disable":
		changed, err := access.SetClientEnabled(ctx, st, ent, id, false, cliActor, reason)
		if err != nil || !changed {
			return fmt.Sprintf("client %s of %s is already disabled; nothing changed", id, ent), err
		}
		return fmt.Sprintf("disabled client %s of %s: a running gateway refuses it and its tokens within a second (other replicas within 10 s) and revokes its refresh tokens%s",
			id, ent, fileOwns(c.Managed)), nil
	default:
		changed, err := access.SetClientEnabled(ctx, st, ent, id, true, cliActor, reason)
		if err != nil || !changed {
			return fmt.Sprintf("client %s of %s is already enabled; nothing changed", id, ent), err
		}
		return fmt.Sprintf("enabled client %s of %s; tokens revoked while it was disabled stay revoked%s", id, ent, fileOwns(c.Managed)), nil
	}
}

func changeSP(ctx context.Context, st directory.Store, verb, ent, entityID, reason string) (string, error) {
	sp, err := st.GetServiceProvider(ctx, ent, entityID)
	if errors.Is(err, directory.ErrNotFound) {
		return "", fmt.Errorf("no service provider %q in enterprise %s", entityID, ent)
	}
	if err != nil {
		return "", err
	}
	switch verb {
	case "delete":
		if sp.Managed == directory.ManagedByConfig {
			return "", fmt.Errorf("service provider %s of %s is declared in the config file: remove it there and run qiao apply (or restart qiao serve)", entityID, ent)
		}
		if err := access.DeleteSP(ctx, st, ent, entityID, cliActor, reason); err != nil {
			return "", err
		}
		return fmt.Sprintf("deleted service provider %s of %s; a running gateway ends its SAML sessions within a second", entityID, ent), nil
	case "disable":
		changed, err := access.SetSPEnabled(ctx, st, ent, entityID, false, cliActor, reason)
		if err != nil || !changed {
			return fmt.Sprintf("service provider %s of %s is already disabled; nothing changed", entityID, ent), err
		}
		return fmt.Sprintf("disabled service provider %s of %s: a running gateway refuses it within a second (other replicas within 10 s) and ends its SAML sessions%s",
			entityID, ent, fileOwns(sp.Managed)), nil
	default:
		changed, err := access.SetSPEnabled(ctx, st, ent, entityID, true, cliActor, reason)
		if err != nil || !changed {
			return fmt.Sprintf("service provider %s of %s is already enabled; nothing changed", entityID, ent), err
		}
		return fmt.Sprintf("enabled service provider %s of %s (on every running replica within 10 s)%s", entityID, ent, fileOwns(sp.Managed)), nil
	}
}
