package main

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	idpsaml "github.com/qiao-gateway/qiao/idp/saml"
)

func appsCmd(g *globalFlags) *cobra.Command {
	var ent string
	var reveal bool
	cmd := &cobra.Command{
		Use:   "apps --enterprise ID [--reveal]",
		Short: "Show an enterprise's OpenID Provider and SAML IdP endpoints, its OIDC clients and SAML service providers",
		Long: "Show what relying parties and service providers are configured with: the issuer and its endpoints,\n" +
			"each OIDC client's type, redirect URIs, grants and secret (masked unless --reveal), the SAML IdP's\n" +
			"metadata, SSO and SLO URLs, and each SP's NameID, signing, encryption and IdP-initiated launch URL.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			gw, err := openReadOnly(cmd, g)
			if err != nil {
				return err
			}
			defer gw.Close()
			ctx := cmd.Context()
			if _, err := gw.Store.GetEnterprise(ctx, ent); err != nil {
				return &exitError{1, fmt.Errorf("enterprise %q: %w", ent, err)}
			}
			w := cmd.OutOrStdout()
			iss := gw.OIDC.Issuer(ent)
			fmt.Fprintf(w, "OpenID Provider\n  issuer             %s\n  discovery          %s/.well-known/openid-configuration\n", iss, iss)
			clients, err := gw.Store.ListClients(ctx, ent)
			if err != nil {
				return err
			}
			for _, c := range clients {
				state := ""
				if c.Disabled {
					state = ", DISABLED"
				}
				fmt.Fprintf(w, "  client %s (%s, %s%s) — %s\n", c.ID, c.Type, c.AuthMethod, state, c.Name)
				if len(c.RedirectURIs) > 0 {
					note := ""
					if c.Type == "native" {
						note = "   (loopback: any port)"
					}
					fmt.Fprintf(w, "    redirect URIs    %s%s\n", strings.Join(c.RedirectURIs, " "), note)
				}
				fmt.Fprintf(w, "    grants           %s\n", strings.Join(c.GrantTypes, " "))
				fmt.Fprintf(w, "    tokens           ID token %s, access token %s\n", c.IDTokenAlg, c.AccessTokenFormat)
				if len(c.PostLogoutRedirectURIs) > 0 {
					fmt.Fprintf(w, "    after logout     %s\n", strings.Join(c.PostLogoutRedirectURIs, " "))
				}
				if c.BackchannelLogoutURI != "" {
					fmt.Fprintf(w, "    back-channel     %s\n", c.BackchannelLogoutURI)
				}
				if c.Secret != "" {
					s := c.Secret
					if !reveal {
						s = mask(s)
					}
					fmt.Fprintf(w, "    secret           %s\n", s)
				}
			}
			base := gw.SAML.EntityID(ent)
			fmt.Fprintf(w, "SAML IdP\n  entity/metadata    %s\n  SSO                %s\n  SLO                %s\n",
				base, strings.TrimSuffix(base, "/metadata")+"/sso", strings.TrimSuffix(base, "/metadata")+"/slo")
			sps, err := gw.Store.ListServiceProviders(ctx, ent)
			if err != nil {
				return err
			}
			for _, sp := range sps {
				state := ""
				if sp.Disabled {
					state = " (DISABLED)"
				}
				fmt.Fprintf(w, "  SP %s%s — %s\n", sp.EntityID, state, sp.Name)
				signs := []string{}
				if sp.SignResponse {
					signs = append(signs, "response")
				}
				if sp.SignAssertion {
					signs = append(signs, "assertion")
				}
				fmt.Fprintf(w, "    NameID           %s; signed: %s\n", sp.NameIDFormat, strings.Join(signs, " and "))
				if sp.MetadataURL != "" {
					fmt.Fprintf(w, "    metadata         %s (fetched on first use, refreshed hourly)\n", sp.MetadataURL)
				} else if sum, err := idpsaml.Summarize([]byte(sp.MetadataXML)); err != nil {
					fmt.Fprintf(w, "    PROBLEM          %v\n", err)
				} else {
					enc := "no"
					if sum.Encrypted {
						enc = "yes"
					}
					fmt.Fprintf(w, "    ACS              %s\n    encrypted        %s; signs its requests: %v\n", strings.Join(sum.ACS, " "), enc, sum.SignsRequests)
				}
				fmt.Fprintf(w, "    launch           %s?sp=%s\n", strings.TrimSuffix(base, "/metadata")+"/launch", url.QueryEscape(sp.EntityID))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&ent, "enterprise", "", "enterprise ID")
	cmd.Flags().BoolVar(&reveal, "reveal", false, "show client secrets in full")
	_ = cmd.MarkFlagRequired("enterprise")
	cmd.AddCommand(appChangeCmds(g)...)
	return cmd
}
