package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/oauth2"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/saseclient"
)

// The reference SASE client: qiao login, qiao token, qiao logout (internal/saseclient).

// openBrowser opens the system browser at u; tests replace it with theirs.
var openBrowser = func(u string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", u)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	default:
		cmd = exec.Command("xdg-open", u)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	return nil
}

// credentialStore is where the client keeps its credentials; QIAO_KEYRING=off skips the keyring.
func credentialStore() *saseclient.Store {
	return &saseclient.Store{NoKeyring: os.Getenv("QIAO_KEYRING") == "off"}
}

func loginCmd() *cobra.Command {
	var server, ent string
	var device bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "login --server URL [--enterprise ID] [--device]",
		Short: "Log on as the reference SASE client: browser (code flow with PKCE on a loopback port) or --device",
		Long: "Log on to an enterprise through the gateway at --server, as the SASE client (client sase-client):\n" +
			"it asks for the enterprise ID when --enterprise is not given, discovers the enterprise's issuer\n" +
			"({server}/e/{enterprise}), and opens the system browser for the logon (the authorization code flow with\n" +
			"PKCE, redirected to a loopback port; the URL is printed too). With --device (no browser on this machine)\n" +
			"it prints a code and a QR code to open on a phone or another computer (the device flow, RFC 8628).\n" +
			"The refresh token is kept in the OS keyring when there is one, otherwise in a file only you can read\n" +
			"(credentials.json in the user config directory). Then qiao token prints a fresh access token.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if server == "" {
				return &exitError{2, errors.New("--server is required (the gateway's URL, e.g. https://sso.example.com)")}
			}
			if ent == "" {
				fmt.Fprint(out, "Enterprise ID (企业 ID): ")
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && line == "" {
					return &exitError{2, errors.New("no enterprise ID given (--enterprise)")}
				}
				ent = strings.ToLower(strings.TrimSpace(line))
			}
			if !directory.ValidID(ent) {
				return &exitError{2, fmt.Errorf("%q is not an enterprise ID (lowercase letters, digits, - and _)", ent)}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			c := &saseclient.Client{Server: strings.TrimRight(server, "/"), Enterprise: ent}
			if err := c.Discover(ctx); err != nil {
				return err
			}
			var tok *oauth2.Token
			var err error
			if device {
				tok, err = c.DeviceLogin(ctx, func(complete, uri, code string) {
					fmt.Fprintf(out, "On your phone or another computer, open\n  %s\nand enter the code %s (在手机或其他电脑上打开上面的地址并输入验证码), or scan:\n\n", uri, code)
					_ = saseclient.WriteQR(out, complete)
					fmt.Fprintln(out, "\nWaiting for the approval…")
				})
			} else {
				tok, err = c.BrowserLogin(ctx, func(u string) error {
					fmt.Fprintf(out, "Opening the browser to log on. If it does not open, go to:\n  %s\n", u)
					if err := openBrowser(u); err != nil {
						fmt.Fprintf(cmd.ErrOrStderr(), "could not open a browser (%v): open the address above yourself\n", err)
					}
					return nil
				})
			}
			if err != nil {
				return err
			}
			if tok.RefreshToken == "" {
				return errors.New("the gateway issued no refresh token (is offline_access allowed for sase-client?)")
			}
			where, err := credentialStore().Save(&saseclient.Credentials{Server: c.Server, Enterprise: ent, RefreshToken: tok.RefreshToken,
				AccessToken: tok.AccessToken, Expiry: tok.Expiry})
			if err != nil {
				return err
			}
			who := idTokenName(tok)
			fmt.Fprintf(out, "Logged on to %s as %s; the refresh token is in %s.\n", c.Issuer(), who, where)
			return nil
		},
	}
	cmd.Flags().StringVar(&server, "server", "", "the gateway's URL")
	cmd.Flags().StringVar(&ent, "enterprise", "", "enterprise ID (asked for when not given)")
	cmd.Flags().BoolVar(&device, "device", false, "log on with a code on another device (no browser here)")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "give up waiting for the logon after this long")
	return cmd
}

// idTokenName is the person's name the ID token gives (its signature is not checked: it came
// straight from the token endpoint, OpenID Connect Core §3.1.3.7), for the message only.
func idTokenName(tok *oauth2.Token) string {
	raw, _ := tok.Extra("id_token").(string)
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "(unknown)"
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "(unknown)"
	}
	var c struct {
		Name     string `json:"name"`
		Username string `json:"preferred_username"`
		Sub      string `json:"sub"`
	}
	_ = json.Unmarshal(b, &c)
	switch {
	case c.Name != "" && c.Username != "":
		return c.Name + " (" + c.Username + ")"
	case c.Username != "":
		return c.Username
	}
	return c.Sub
}

// loggedOn returns the stored credentials and a client for their enterprise, discovered.
func loggedOn(ctx context.Context) (*saseclient.Store, *saseclient.Credentials, *saseclient.Client, error) {
	st := credentialStore()
	cr, err := st.Load()
	if err != nil {
		return nil, nil, nil, err
	}
	c := &saseclient.Client{Server: cr.Server, Enterprise: cr.Enterprise}
	if err := c.Discover(ctx); err != nil {
		return nil, nil, nil, err
	}
	return st, cr, c, nil
}

func tokenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "token",
		Short: "Print a fresh access token of the SASE client's logon (refreshing it when needed), for scripts",
		Long: "Print the access token of the logon qiao login made, on one line, refreshing it first when it expires within\n" +
			"a minute (the gateway rotates the refresh token; the new one is stored). Use it in scripts:\n" +
			"  curl -H \"Authorization: Bearer $(qiao token)\" …",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			st := credentialStore()
			cr, err := st.Load()
			if err != nil {
				return err
			}
			if cr.AccessToken != "" && time.Until(cr.Expiry) > time.Minute {
				fmt.Fprintln(cmd.OutOrStdout(), cr.AccessToken)
				return nil
			}
			_, cr, c, err := loggedOn(ctx)
			if err != nil {
				return err
			}
			tok, err := c.Refresh(ctx, cr.RefreshToken)
			if err != nil {
				return fmt.Errorf("%w (run qiao login again)", err)
			}
			cr.AccessToken, cr.Expiry = tok.AccessToken, tok.Expiry
			if tok.RefreshToken != "" {
				cr.RefreshToken = tok.RefreshToken
			}
			if _, err := st.Save(cr); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok.AccessToken)
			return nil
		},
	}
}

func logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Revoke the SASE client's logon at the gateway and forget its tokens",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			st, cr, c, err := loggedOn(ctx)
			if errors.Is(err, saseclient.ErrNotLoggedOn) {
				fmt.Fprintln(cmd.OutOrStdout(), "Not logged on.")
				return nil
			}
			if err != nil {
				return err
			}
			if err := c.Revoke(ctx, cr.RefreshToken); err != nil {
				return fmt.Errorf("%w; the tokens are kept: try again", err)
			}
			if err := st.Delete(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Logged out of %s.\n", c.Issuer())
			return nil
		},
	}
}
