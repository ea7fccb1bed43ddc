package gateway

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// sessionCookie is the SSO cookie a browser holds for the gateway.
func (a *adminWorld) sessionCookie(b *browser, who string) caller {
	a.t.Helper()
	u, _ := url.Parse(a.base)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "qiao_sso" {
			return caller{name: who, cookie: c}
		}
	}
	a.t.Fatal("the browser holds no session")
	return caller{}
}

// An owner who logged on with WeCom creates a second WeCom source through the API, synchronizes
// it, reads what the task did, and closes it: logons through it are refused from then on, and
// the session it gave is refused at once — on SQLite and on PostgreSQL+Redis.
func TestAdminAPIWeComSourceEndToEnd(t *testing.T) {
	for name, backend := range backends(t) {
		t.Run(name, func(t *testing.T) {
			a := newAdminWorld(t, backend)
			b := newBrowser(t)
			if status, page, at := b.get(a.base+"/login?enterprise=demo&idp_hint=wecom", "zhangsan"); status != 200 || !strings.Contains(page, "张三") {
				t.Fatalf("WeCom logon: %d at %s", status, at)
			}
			owner := a.sessionCookie(b, "zhangsan")
			if r := a.call(owner, "GET", "/me", ""); r.status != 200 || r.json(t)["role"] != "owner" || r.json(t)["actor"] != "user:zhangsan@demo" {
				t.Fatalf("me: %d %s", r.status, r.body)
			}
			// Without the CSRF header, or from another origin, a cookie-authenticated change is refused.
			if r := a.call(owner, "POST", "/enterprises/demo/sources", a.wecomSource("wecom2", "企业微信二"), "X-Qiao-CSRF", ""); r.status != http.StatusForbidden {
				t.Fatalf("no CSRF header: %d %s", r.status, r.body)
			}
			if r := a.call(owner, "POST", "/enterprises/demo/sources", a.wecomSource("wecom2", "企业微信二"), "Origin", "https://evil.example"); r.status != http.StatusForbidden {
				t.Fatalf("another origin: %d %s", r.status, r.body)
			}

			r := a.call(owner, "POST", "/enterprises/demo/sources", a.wecomSource("wecom2", "企业微信二"))
			if r.status != 201 || r.json(t)["enabled"] != true {
				t.Fatalf("create: %d %s", r.status, r.body)
			}
			r = a.call(owner, "POST", "/enterprises/demo/sources/wecom2/sync?wait=true", "")
			run := r.json(t)
			if r.status != 200 || run["status"] != "succeeded" {
				t.Fatalf("sync now: %d %s", r.status, r.body)
			}
			task := run["task"].(map[string]any)["id"].(string)
			if r.header.Get("Location") != "/api/v1/enterprises/demo/sources/wecom2/sync/tasks/"+task {
				t.Fatalf("sync Location: %q", r.header.Get("Location"))
			}
			r = a.call(owner, "GET", "/enterprises/demo/sources/wecom2/sync/tasks", "")
			if items := r.json(t)["items"].([]any); r.status != 200 || len(items) != 1 || items[0].(map[string]any)["id"] != task {
				t.Fatalf("tasks: %d %s", r.status, r.body)
			}
			r = a.call(owner, "GET", "/enterprises/demo/sources/wecom2/sync/tasks/"+task+"/records?object_type=user&upstream_id=zhangsan", "")
			recs := r.json(t)["items"].([]any)
			if r.status != 200 || len(recs) != 1 || !strings.Contains(string(r.body), "张三") || recs[0].(map[string]any)["upstream"] == nil {
				t.Fatalf("zhangsan's record: %d %s", r.status, r.body)
			}
			r = a.call(owner, "GET", "/enterprises/demo/sources/wecom2/sync/tasks/"+task+"/records?object_type=department&limit=2", "")
			if page := r.json(t); r.status != 200 || len(page["items"].([]any)) != 2 || page["next_after"] == nil {
				t.Fatalf("a page of department records: %d %s", r.status, r.body)
			}

			// Logon through the new source works, and its session reaches the API.
			viaNew := newBrowser(t)
			if status, page, at := viaNew.get(a.base+"/login?enterprise=demo&idp_hint=wecom2", "zhangsan"); status != 200 || !strings.Contains(page, "张三") || !strings.HasSuffix(at, "/login/done") {
				t.Fatalf("logon through wecom2: %d at %s", status, at)
			}
			newSession := a.sessionCookie(viaNew, "zhangsan via wecom2")
			if r := a.call(newSession, "GET", "/me", ""); r.status != 200 {
				t.Fatalf("the wecom2 session at the API: %d", r.status)
			}

			r = a.call(owner, "POST", "/enterprises/demo/sources/wecom2/close", "")
			if r.status != 200 || r.json(t)["enabled"] != false {
				t.Fatalf("close: %d %s", r.status, r.body)
			}
			// Logon through it is refused; the session it gave is refused at once.
			refused := newBrowser(t)
			if _, _, at := refused.get(a.base+"/login?enterprise=demo&idp_hint=wecom2", "zhangsan"); strings.HasSuffix(at, "/login/done") {
				t.Fatalf("logon through a closed source landed at %s (%v)", at, refused.log)
			}
			if _, err := a.gw.Store.GetUserByUsername(a.ctx, "demo", "zhangsan"); err != nil {
				t.Fatal(err)
			}
			if r := a.call(newSession, "GET", "/me", ""); r.status != http.StatusUnauthorized {
				t.Fatalf("a closed source's session at the API: %d", r.status)
			}
			if r := a.call(owner, "POST", "/enterprises/demo/sources/wecom2/sync", ""); r.status != 409 || !strings.Contains(string(r.body), "closed") {
				t.Fatalf("sync of a closed source: %d %s", r.status, r.body)
			}
			for _, kind := range []string{"admin.source.create", "admin.sync.run", "admin.source.close"} {
				ev := a.auditOf("demo", kind)
				if len(ev) != 1 || ev[0].Actor != "user:zhangsan@demo" || ev[0].SourceID != "wecom2" || ev[0].RequestID == "" {
					t.Fatalf("%s audit = %+v", kind, ev)
				}
			}
			a.gw.Admin.Wait()
		})
	}
}
