package gateway

import (
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
)

// checksOf reads a connectivity report's checks by name.
func checksOf(t *testing.T, r response) (bool, map[string]map[string]any) {
	t.Helper()
	m := r.json(t)
	out := map[string]map[string]any{}
	for _, c := range m["checks"].([]any) {
		c := c.(map[string]any)
		out[c["name"].(string)] = c
	}
	ok, _ := m["ok"].(bool)
	return ok, out
}

// A WeCom source created through the API whose app only trusts another address: the connectivity
// test fails with 60020 and names the address to add; once the simulator's app trusts it, the
// test passes and the upstream departments can be read — on SQLite and on PostgreSQL+Redis.
func TestAdminAPIConnectivityEndToEnd(t *testing.T) {
	for name, backend := range backends(t) {
		t.Run(name, func(t *testing.T) {
			a := newAdminWorld(t, backend)
			setup := wecomsim.NewSetup(20, 77, "")
			setup.Config.Apps[0].TrustedIPs = []string{"203.0.113.9"}
			sim := wecomsim.New(setup.Config)
			srv := httptest.NewServer(sim)
			t.Cleanup(func() { srv.Close(); sim.Close() })

			demo, err := a.gw.Store.GetSource(a.ctx, "demo", "wecom")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := json.Marshal(map[string]any{"id": "wecom3", "kind": "wecom", "name": "企业微信三",
				"wecom": map[string]any{"corp_id": setup.CorpID, "agent_id": strconv.Itoa(setup.AgentID), "api_base_url": srv.URL,
					"callback_domain": demo.Config["callback_domain"], "secret": setup.Secret}})
			owner := a.sessionOf("demo", "zhao-owner")
			if r := a.call(owner, "POST", "/enterprises/demo/sources", string(body)); r.status != 201 {
				t.Fatalf("create: %d %s", r.status, r.body)
			}

			r := a.call(owner, "POST", "/enterprises/demo/sources/wecom3/test", "")
			if r.status != 200 {
				t.Fatalf("test: %d %s", r.status, r.body)
			}
			ok, checks := checksOf(t, r)
			if ok || checks["credentials"]["status"] != "ok" || checks["egress_ip"]["status"] != "fail" ||
				!strings.Contains(checks["egress_ip"]["detail"].(string), "60020") ||
				!strings.Contains(checks["egress_ip"]["fix"].(string), "add 127.0.0.1 ") {
				t.Fatalf("with the address not trusted: %s", r.body)
			}
			if checks["login_settings"]["status"] != "ok" || checks["event_callback"]["status"] != "warn" || checks["domain_verification"]["status"] != "warn" {
				t.Fatalf("the other checks: %s", r.body)
			}
			if strings.Contains(string(r.body), setup.Secret) {
				t.Fatal("the report shows the secret")
			}
			if r := a.call(owner, "GET", "/enterprises/demo/sources/wecom3/upstream-departments", ""); r.status != 502 || !strings.Contains(string(r.body), "60020") {
				t.Fatalf("upstream departments while refused: %d %s", r.status, r.body)
			}

			if !sim.SetTrustedIPs(setup.AgentID, []string{"203.0.113.9", "127.0.0.1"}) {
				t.Fatal("no such app")
			}
			r = a.call(owner, "POST", "/enterprises/demo/sources/wecom3/test", "")
			ok, checks = checksOf(t, r)
			if r.status != 200 || !ok || checks["egress_ip"]["status"] != "ok" || checks["read_mode"]["status"] != "ok" ||
				!strings.Contains(checks["read_mode"]["detail"].(string), "department/list+user/list") {
				t.Fatalf("with the address trusted: %d %s", r.status, r.body)
			}

			r = a.call(owner, "GET", "/enterprises/demo/sources/wecom3/upstream-departments", "")
			items, _ := r.json(t)["items"].([]any)
			depts, _ := setup.Config.Org.Counts()
			if r.status != 200 || len(items) != depts {
				t.Fatalf("upstream departments: %d, %d items, want %d: %s", r.status, len(items), depts, r.body)
			}
			// The test changes nothing, so it leaves no audit event; an auditor may not run it.
			if ev := a.auditOf("demo", "admin.source.test"); len(ev) != 0 {
				t.Fatalf("a test left audit events: %+v", ev)
			}
			if r := a.call(a.sessionOf("demo", "li-auditor"), "POST", "/enterprises/demo/sources/wecom3/test", ""); r.status != 403 {
				t.Fatalf("an auditor tests: %d", r.status)
			}
		})
	}
}

// The world's DingTalk source passes the checks that reach DingTalk, and its upstream departments
// are the simulator's.
func TestAdminAPIConnectivityDingTalk(t *testing.T) {
	a := newAdminWorld(t)
	owner := a.sessionOf("demo", "zhao-owner")
	r := a.call(owner, "POST", "/enterprises/demo/sources/dingtalk/test", "")
	ok, checks := checksOf(t, r)
	if r.status != 200 || !ok || checks["credentials"]["status"] != "ok" || checks["egress_ip"]["status"] != "ok" || checks["read_mode"]["status"] != "ok" ||
		checks["domain_verification"] != nil {
		t.Fatalf("test: %d %s", r.status, r.body)
	}
	r = a.call(owner, "GET", "/enterprises/demo/sources/dingtalk/upstream-departments", "")
	if items, _ := r.json(t)["items"].([]any); r.status != 200 || len(items) == 0 {
		t.Fatalf("upstream departments: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "GET", "/enterprises/demo/sources/local/upstream-departments", ""); r.status != 409 {
		t.Fatalf("a local directory's upstream departments: %d %s", r.status, r.body)
	}
}
