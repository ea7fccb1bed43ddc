package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
)

// qiao sources test prints one line per check and exits 1 while WeCom refuses this machine's
// address (naming it), 0 once the app trusts it.
func TestSourcesTestCommand(t *testing.T) {
	ws := wecomsim.NewSetup(10, 6, "127.0.0.1:8080")
	ws.Config.Apps[0].TrustedIPs = []string{"203.0.113.9"}
	sim := wecomsim.New(ws.Config)
	defer sim.Close()
	srv := httptest.NewServer(sim)
	defer srv.Close()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`external_url: http://127.0.0.1:8080
enterprises:
  - id: acme
    sources:
      - id: wecom
        kind: wecom
        name: 企业微信
        config: {corp_id: %s, agent_id: "1000002", api_base_url: %s, callback_domain: "127.0.0.1:8080"}
        secrets: {secret: %s}
`, ws.CorpID, srv.URL, ws.Secret))
	data := filepath.Join(dir, "data")
	run := func(want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		args = append(args, "--config", cfg, "--data", data)
		if code := runMain(context.Background(), args, &out, &errb); code != want {
			t.Fatalf("%v: exit %d, want %d\n%s%s", args, code, want, out.String(), errb.String())
		}
		return out.String() + errb.String()
	}
	run(0, "apply")
	out := run(1, "sources", "test", "--enterprise", "acme", "--source", "wecom")
	if !strings.Contains(out, "FAIL  egress_ip") || !strings.Contains(out, "add 127.0.0.1 to the app's trusted IPs") ||
		!strings.Contains(out, "ok    credentials") || !strings.Contains(out, "1 check(s) of source wecom failed") || strings.Contains(out, ws.Secret) {
		t.Fatalf("refused address:\n%s", out)
	}
	sim.SetTrustedIPs(ws.AgentID, []string{"127.0.0.1"})
	out = run(0, "sources", "test", "--enterprise", "acme", "--source", "wecom")
	if strings.Contains(out, "FAIL") || !strings.Contains(out, "ok    egress_ip") || !strings.Contains(out, "ok    login_settings") ||
		strings.Count(out, "\n") != 6 {
		t.Fatalf("trusted address:\n%s", out)
	}
	run(1, "sources", "test", "--enterprise", "acme", "--source", "nosuch")
}
