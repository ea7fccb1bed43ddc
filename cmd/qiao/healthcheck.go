package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"
)

func healthcheckCmd(g *globalFlags) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Ask the local gateway whether it is ready (GET /readyz); exit 0 if it is, 1 if not",
		Long: "GET /readyz on the gateway's listen address (--addr, QIAO_ADDR or listen in the config; an unspecified\n" +
			"host such as 0.0.0.0 is asked on 127.0.0.1) and exit 0 on 200, 1 otherwise with one line saying why.\n" +
			"It needs no shell or curl, so a distroless container can run it: HEALTHCHECK CMD [\"qiao\", \"healthcheck\"].",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			host, port, err := net.SplitHostPort(cfg.Listen)
			if err != nil {
				return &exitError{2, fmt.Errorf("listen %q is not HOST:PORT", cfg.Listen)}
			}
			if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
				host = "127.0.0.1"
				if ip != nil && ip.To4() == nil {
					host = "::1"
				}
			}
			u := "http://" + net.JoinHostPort(host, port) + "/readyz"
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				return &exitError{1, err}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return &exitError{1, fmt.Errorf("not ready: %s: %w", u, unwrapURL(err))}
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			if resp.StatusCode != http.StatusOK {
				return &exitError{1, fmt.Errorf("not ready: %s answered %s: %s", u, resp.Status, bytes.TrimSpace(body))}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ready: %s\n", u)
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the answer")
	return cmd
}

// unwrapURL keeps the cause of a *url.Error, whose message repeats the method and URL.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
