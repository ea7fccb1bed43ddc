package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/gateway"
	"github.com/qiao-gateway/qiao/internal/config"
)

// qiao admins bootstrap prints a one-time setup link whose token the store keeps only hashed.
func TestAdminsBootstrapPrintsASingleUseLink(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfgPath := writeConfig(t, dir, "external_url: https://sso.example.com\nenterprises:\n  - id: acme\n")
	run := func(want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		args = append(args, "--config", cfgPath, "--data", data)
		if code := runMain(context.Background(), args, &out, &errb); code != want {
			t.Fatalf("%v: exit %d, want %d\n%s%s", args, code, want, out.String(), errb.String())
		}
		return out.String() + errb.String()
	}
	run(0, "apply")
	out := run(0, "admins", "bootstrap", "--ttl", "10m")
	link := strings.SplitN(out, "\n", 2)[0]
	u, err := url.Parse(link)
	if err != nil || u.Scheme+"://"+u.Host+u.Path != "https://sso.example.com/api/v1/operator-setup" || len(u.Query().Get("token")) < 40 {
		t.Fatalf("link: %q", out)
	}
	if !strings.Contains(out, "works once") {
		t.Fatalf("output: %q", out)
	}
	if out := run(1, "admins", "bootstrap", "--ttl", "0s"); !strings.Contains(out, "--ttl") {
		t.Fatalf("a zero TTL: %q", out)
	}
	cfg, err := config.Load(cfgPath, os.Getenv, config.Overrides{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	st, err := gateway.OpenForChange(context.Background(), cfg, gateway.NewLogger(cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := sha256.Sum256([]byte(u.Query().Get("token")))
	tok, err := st.TakeSetupToken(context.Background(), hex.EncodeToString(h[:]), time.Now())
	if err != nil || tok.CreatedBy != "qiao admins bootstrap" || tok.ExpiresAt.Sub(tok.CreatedAt) != 10*time.Minute {
		t.Fatalf("stored token = %+v, %v", tok, err)
	}
	if _, err := st.TakeSetupToken(context.Background(), hex.EncodeToString(h[:]), time.Now()); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("taken twice: %v", err)
	}
}
