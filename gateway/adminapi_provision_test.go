package gateway

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestProvisioningEndToEnd: the demo's provisioning target (file-managed) pushes the local-only
// 李四 into the WeCom simulator's org once the gateway serves, and not the people who came from
// WeCom; the admin API shows the target with its secret masked, refuses to change a file-managed
// one, tests it, runs a dry-run push and shows its task and records; an auditor may read but not
// push; an enterprise without a target is 404 — on SQLite and on PostgreSQL+Redis.
func TestProvisioningEndToEnd(t *testing.T) {
	for name, backend := range backends(t) {
		t.Run(name, func(t *testing.T) {
			a := newAdminWorld(t, backend)
			deadline := time.Now().Add(15 * time.Second)
			for {
				a.wsim.Org().RLock()
				u := a.wsim.Org().User("lisi")
				a.wsim.Org().RUnlock()
				if u != nil && u.Name == "李四" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("lisi was not pushed into the WeCom simulator")
				}
				time.Sleep(50 * time.Millisecond)
			}
			auditor, owner := a.sessionOf("demo", "li-auditor"), a.sessionOf("demo", "zhao-owner")
			r := a.call(auditor, "GET", "/enterprises/demo/provisioning", "")
			m := r.json(t)
			if r.status != 200 || m["managed"] != "config" || m["corp_id"] != a.ws.CorpID || m["secrets"].(map[string]any)["contact_secret"] != "••••" {
				t.Fatalf("get: %d %s", r.status, r.body)
			}
			if strings.Contains(string(r.body), a.ws.ContactSecret) {
				t.Fatal("the contact secret is shown")
			}
			if st := m["status"].(map[string]any); st["managed"].(map[string]any)["user"].(float64) < 1 {
				t.Fatalf("status: %v", st)
			}
			if r := a.call(owner, "PUT", "/enterprises/demo/provisioning", `{"corp_id":"x","secrets":{"contact_secret":"y"}}`); r.status != 409 ||
				!strings.Contains(string(r.body), "config.yaml") {
				t.Fatalf("put a file-managed target: %d %s", r.status, r.body)
			}
			if r := a.call(auditor, "POST", "/enterprises/demo/provisioning/push", ""); r.status != 403 {
				t.Fatalf("an auditor pushed: %d %s", r.status, r.body)
			}
			r = a.call(owner, "POST", "/enterprises/demo/provisioning/test", "")
			if m := r.json(t); r.status != 200 || m["ok"] != true {
				t.Fatalf("test: %d %s", r.status, r.body)
			}
			r = a.call(owner, "POST", "/enterprises/demo/provisioning/push?dry_run=true", "")
			task := r.json(t)
			if r.status != 202 || task["dry_run"] != true {
				t.Fatalf("push: %d %s", r.status, r.body)
			}
			deadline = time.Now().Add(15 * time.Second)
			var done map[string]any
			for done == nil {
				r := a.call(auditor, "GET", "/enterprises/demo/provisioning/tasks", "")
				var ts []map[string]any
				if err := json.Unmarshal(r.body, &ts); err != nil {
					t.Fatalf("tasks: %d %s", r.status, r.body)
				}
				for _, x := range ts {
					if x["id"] == task["id"] && x["status"] != "running" {
						done = x
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("the dry run did not finish: %s", r.body)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if done["status"] != "succeeded" {
				t.Fatalf("dry run: %v", done)
			}
			r = a.call(auditor, "GET", "/enterprises/demo/provisioning/records", "")
			if r.status != 200 || !strings.Contains(string(r.body), `"remote_id":"lisi"`) {
				t.Fatalf("records: %d %s", r.status, r.body)
			}
			// The admin world's extra local people have neither mobile nor email: WeCom would refuse
			// them (60129), so they are parked with that reason. A push that ran before the first
			// WeCom sync linked 张三 parked him too (60102, not qiao's); the link queues him again,
			// and that push (he is now WeCom's own) clears his parked item. Wait for it.
			var parked []map[string]any
			for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				r = a.call(auditor, "GET", "/enterprises/demo/provisioning/parked", "")
				parked = nil
				if err := json.Unmarshal(r.body, &parked); err != nil || r.status != 200 {
					t.Fatalf("parked: %d %s", r.status, r.body)
				}
				if len(parked) == 5 && !strings.Contains(string(r.body), `"zhangsan"`) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("parked: %d %s", r.status, r.body)
				}
			}
			for _, p := range parked {
				if p["errcode"].(float64) != 60129 || !strings.Contains(p["error"].(string), "neither a mobile number nor an email address") {
					t.Fatalf("parked: %v", p)
				}
			}
			// 张三 came from WeCom: his WeCom record is not the local one.
			a.wsim.Org().RLock()
			zs := a.wsim.Org().User("zhangsan").Clone()
			a.wsim.Org().RUnlock()
			if zs.Email == "zhangsan@demo.example" {
				t.Fatal("the local 张三 was pushed over WeCom's")
			}
			// Another enterprise: none yet; bad input is refused and stores nothing.
			acme := a.sessionOf("acme", "acme-admin")
			if r := a.call(acme, "GET", "/enterprises/acme/provisioning", ""); r.status != 404 {
				t.Fatalf("acme: %d %s", r.status, r.body)
			}
			if r := a.call(acme, "PUT", "/enterprises/acme/provisioning", `{"corp_id":"ww1"}`); r.status != 422 || !strings.Contains(string(r.body), "contact_secret") {
				t.Fatalf("no secret: %d %s", r.status, r.body)
			}
			if r := a.call(acme, "PUT", "/enterprises/acme/provisioning", `{"corp_id":"ww1","proxies":"nohost","secrets":{"contact_secret":"s3cr3t-value"}}`); r.status != 422 ||
				strings.Contains(string(r.body), "s3cr3t-value") {
				t.Fatalf("bad proxies: %d %s", r.status, r.body)
			}
			r = a.call(acme, "PUT", "/enterprises/acme/provisioning", `{"corp_id":"`+a.ws.CorpID+`","api_base_url":"`+a.wURL+`","secrets":{"contact_secret":"`+a.ws.ContactSecret+`"}}`)
			if m := r.json(t); r.status != 200 || m["secrets"].(map[string]any)["contact_secret"] != "••••" || strings.Contains(string(r.body), a.ws.ContactSecret) {
				t.Fatalf("put: %d %s", r.status, r.body)
			}
			if len(a.auditOf("acme", "provisioning.update")) != 1 {
				t.Fatal("the change is not audited")
			}
		})
	}
}
