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

// qiao admins grant|revoke|list: the admin API's role rules at the server, audited as cli.
func TestAdminsGrantRevokeList(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfgPath := writeConfig(t, dir, `external_url: https://sso.example.com
enterprises:
  - id: acme
    users:
      - {username: boss, name: Boss}
      - {username: ops, name: Ops}
      - {username: audit, name: Audit}
    admins:
      - {user: boss, role: owner}
`)
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
	if out := run(0, "admins", "grant", "acme", "ops", "owner"); !strings.Contains(out, "ops is now owner of enterprise acme") {
		t.Fatalf("grant: %q", out)
	}
	run(0, "admins", "grant", "acme", "audit", "auditor")
	out := run(0, "admins", "list", "acme")
	for _, want := range []string{"boss", "owner", "config file", "ops", "audit", "auditor", "cli"} {
		if !strings.Contains(out, want) {
			t.Fatalf("list lacks %q:\n%s", want, out)
		}
	}
	// The API's refusals, each naming why.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"admins", "grant", "acme", "nobody", "admin"}, `no user "nobody"`},
		{[]string{"admins", "grant", "acme", "ops", "root"}, "want owner, admin or auditor"},
		{[]string{"admins", "revoke", "acme", "boss"}, "file-managed"},
		{[]string{"admins", "grant", "nowhere", "ops", "admin"}, `no enterprise "nowhere"`},
		{[]string{"admins", "revoke", "acme", "nobody"}, "holds no role"},
	} {
		code := 1
		if c.args[1] == "grant" && c.args[4] == "root" {
			code = 2
		}
		if out := run(code, c.args...); !strings.Contains(out, c.want) {
			t.Fatalf("%v: %q, want %q", c.args, out, c.want)
		}
	}
	run(0, "admins", "revoke", "acme", "ops")
	if out := run(0, "admins", "list", "acme"); strings.Contains(out, "ops ") {
		t.Fatalf("ops still listed:\n%s", out)
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
	evs, err := st.ListAuditEvents(context.Background(), directory.AuditQuery{EnterpriseID: "acme", Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, e := range evs {
		if e.Actor == "cli" {
			kinds[e.Kind]++
		}
	}
	if kinds["admin.grant"] != 2 || kinds["admin.revoke"] != 1 {
		t.Fatalf("audit by cli = %v", kinds)
	}
}
