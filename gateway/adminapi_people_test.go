package gateway

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/password"
)

// countNodes counts the departments of a tree as the API answers it, and checks each child names
// its parent.
func countNodes(t *testing.T, nodes []any, parent string) int {
	t.Helper()
	n := 0
	for _, x := range nodes {
		d := x.(map[string]any)
		if parent != "" && d["parent_id"] != parent {
			t.Fatalf("department %v under %s", d, parent)
		}
		children, _ := d["children"].([]any)
		n += 1 + countNodes(t, children, d["upstream_id"].(string))
	}
	return n
}

// items are the usernames of a page of people.
func usernames(t *testing.T, r response) []string {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("people: %d %s", r.status, r.body)
	}
	out := []string{}
	for _, x := range r.json(t)["items"].([]any) {
		out = append(out, x.(map[string]any)["username"].(string))
	}
	return out
}

// The directory through the admin API, on SQLite and on PostgreSQL+Redis: departments as trees,
// the people search (prefixes, a mobile number, filters, paging, hostile input), a person with
// their links, sessions and logons, and the actions — end sessions, disable/enable, set a local
// password, unlock — each ending or granting what it says, audited, refused where it must be.
func TestAdminAPIPeople(t *testing.T) {
	for name, backend := range backends(t) {
		t.Run(name, func(t *testing.T) {
			a := newAdminWorld(t, backend)
			st, ctx := a.gw.Store, a.ctx
			auditor, admin := a.sessionOf("demo", "li-auditor"), a.sessionOf("demo", "wang-admin")

			// Departments: one tree per source, every department once, children under their parent.
			r := a.call(auditor, "GET", "/enterprises/demo/departments", "")
			if r.status != 200 {
				t.Fatalf("departments: %d %s", r.status, r.body)
			}
			seen := map[string]bool{}
			for _, x := range r.json(t)["items"].([]any) {
				sd := x.(map[string]any)
				ds, _ := st.ListDepartments(ctx, "demo", sd["source"].(string))
				if n := countNodes(t, sd["departments"].([]any), ""); n != len(ds) || int(sd["count"].(float64)) != len(ds) {
					t.Fatalf("source %s: %d departments in the tree, %d in the store", sd["source"], n, len(ds))
				}
				seen[sd["source"].(string)] = len(ds) > 0
			}
			if !seen["wecom"] || !seen["dingtalk"] {
				t.Fatalf("departments of %v", seen)
			}
			if r := a.call(auditor, "GET", "/enterprises/demo/departments?source=nope", ""); r.status != 404 {
				t.Fatalf("departments of no source: %d", r.status)
			}

			// The people search.
			all, _ := st.ListUsers(ctx, "demo", "", 0)
			var want []string
			for _, u := range all {
				want = append(want, u.Username)
			}
			slices.Sort(want)
			var paged []string
			cursor := ""
			for i := 0; ; i++ {
				q := "/enterprises/demo/users?limit=7"
				if cursor != "" {
					q += "&cursor=" + url.QueryEscape(cursor)
				}
				r := a.call(auditor, "GET", q, "")
				page := usernames(t, r)
				paged = append(paged, page...)
				next, _ := r.json(t)["next_cursor"].(string)
				if next == "" {
					break
				}
				if len(page) != 7 || i > 100 {
					t.Fatalf("a page of %d with a next cursor", len(page))
				}
				cursor = next
			}
			if !slices.Equal(paged, want) {
				t.Fatalf("paging the people: %d of %d, or out of order", len(paged), len(want))
			}
			if got := usernames(t, a.call(auditor, "GET", "/enterprises/demo/users?q="+url.QueryEscape("张"), "")); !slices.Contains(got, "zhangsan") {
				t.Fatalf("q=张: %v", got)
			} else {
				for _, un := range got {
					u, _ := st.GetUserByUsername(ctx, "demo", un)
					if !strings.HasPrefix(u.Name, "张") && !strings.HasPrefix(u.Username, "张") && !strings.HasPrefix(u.Email, "张") {
						t.Fatalf("q=张 found %s (%s)", un, u.Name)
					}
				}
			}
			// A synchronized WeCom person, not declared in the file, with a mobile number.
			var person *directory.User
			var plink *directory.UserLink
			links, _ := st.ListUserLinks(ctx, "demo", "wecom")
			for _, l := range links {
				u, _ := st.GetUser(ctx, "demo", l.UserID)
				if u.Managed == "" && u.Mobile != "" && u.Status == directory.UserActive && len(l.Departments) > 0 {
					person, plink = u, l
					break
				}
			}
			if person == nil {
				t.Fatal("no synchronized person with a mobile number")
			}
			if got := usernames(t, a.call(auditor, "GET", "/enterprises/demo/users?q="+url.QueryEscape(person.Mobile), "")); !slices.Contains(got, person.Username) {
				t.Fatalf("q=%s (mobile): %v", person.Mobile, got)
			}
			if got := usernames(t, a.call(auditor, "GET", "/enterprises/demo/users?source=wecom&department="+url.QueryEscape(plink.Departments[0]), "")); !slices.Contains(got, person.Username) {
				t.Fatalf("department %s: %v", plink.Departments[0], got)
			}
			// The root department and everything below it holds the person; the root alone may not.
			if got := usernames(t, a.call(auditor, "GET", "/enterprises/demo/users?source=wecom&department=1&subdepartments=true&limit=200", "")); !slices.Contains(got, person.Username) {
				t.Fatalf("department 1 and below: %v", got)
			}
			if got := usernames(t, a.call(auditor, "GET", "/enterprises/demo/users?q="+url.QueryEscape(strings.ToUpper(person.Username)), "")); !slices.Contains(got, person.Username) {
				t.Fatalf("q=%s (the username in capitals): %v", strings.ToUpper(person.Username), got)
			}
			if got := usernames(t, a.call(auditor, "GET", "/enterprises/demo/users?status=disabled", "")); len(got) != 0 {
				t.Fatalf("disabled people before any was disabled: %v", got)
			}
			for _, q := range []string{"' OR '1'='1", "%", "_%", "张' OR 1=1 --", "'); DROP TABLE users; --", `\`} {
				if got := usernames(t, a.call(auditor, "GET", "/enterprises/demo/users?q="+url.QueryEscape(q), "")); len(got) != 0 {
					t.Fatalf("q=%q found %v", q, got)
				}
			}
			if got, _ := st.ListUsers(ctx, "demo", "", 0); len(got) != len(all) {
				t.Fatalf("the hostile searches changed the directory: %d people, %d before", len(got), len(all))
			}
			for q, status := range map[string]int{"cursor=!!!": 422, "limit=201": 422, "limit=0": 422, "department=2": 422, "status=gone": 422,
				"source=nope": 404, "q=" + strings.Repeat("x", 201): 422, "sort=name": 422} {
				if r := a.call(auditor, "GET", "/enterprises/demo/users?"+q, ""); r.status != status {
					t.Errorf("?%s: %d, want %d: %s", q, r.status, status, r.body)
				}
			}

			// A person: 张三 logs on with WeCom; the API shows the session, the logon and the links.
			b := newBrowser(t)
			if status, page, _ := b.get(a.base+"/login?enterprise=demo&idp_hint=wecom", "zhangsan"); status != 200 || !strings.Contains(page, "张三") {
				t.Fatalf("WeCom logon: %d", status)
			}
			zs := a.sessionCookie(b, "zhangsan")
			zhang, _ := st.GetUserByUsername(ctx, "demo", "zhangsan")
			r = a.call(auditor, "GET", "/enterprises/demo/users/zhangsan", "")
			p := r.json(t)
			if r.status != 200 || p["id"] != zhang.ID || p["has_password"] != true || p["file_managed"] != true || p["locked"] != false {
				t.Fatalf("zhangsan: %d %s", r.status, r.body)
			}
			var srcs []string
			for _, l := range p["links"].([]any) {
				srcs = append(srcs, l.(map[string]any)["source"].(string))
			}
			if !slices.Contains(srcs, "wecom") || !slices.Contains(srcs, "local") {
				t.Fatalf("zhangsan's links: %v", srcs)
			}
			sess := p["sessions"].([]any)
			if len(sess) != 1 || sess[0].(map[string]any)["source"] != "wecom" {
				t.Fatalf("zhangsan's sessions: %v", sess)
			}
			if lg := p["recent_logons"].([]any); len(lg) == 0 || lg[0].(map[string]any)["kind"] != "login.success" || lg[0].(map[string]any)["source"] != "wecom" {
				t.Fatalf("zhangsan's logons: %v", lg)
			}
			if strings.Contains(string(r.body), "argon2") || strings.Contains(string(r.body), zs.cookie.Value) {
				t.Fatal("the person view shows the password hash or the session cookie")
			}
			if r := a.call(auditor, "GET", "/enterprises/demo/users/"+zhang.ID, ""); r.status != 200 || r.json(t)["username"] != "zhangsan" {
				t.Fatalf("by ID: %d", r.status)
			}
			if r := a.call(auditor, "GET", "/enterprises/demo/users/nobody", ""); r.status != 404 {
				t.Fatalf("nobody: %d", r.status)
			}
			if r := a.call(auditor, "GET", "/enterprises/acme/users/acme-admin", ""); r.status != 404 {
				t.Fatalf("another enterprise's person: %d", r.status)
			}

			// End sessions: the auditor may not; the admin does, and the session is refused at once.
			if r := a.call(auditor, "POST", "/enterprises/demo/users/zhangsan/end-sessions", ""); r.status != 403 {
				t.Fatalf("auditor ends sessions: %d", r.status)
			}
			if r := a.call(zs, "GET", "/me", ""); r.status != 200 {
				t.Fatalf("zhangsan's session before: %d", r.status)
			}
			r = a.call(admin, "POST", "/enterprises/demo/users/zhangsan/end-sessions", "")
			if r.status != 200 || r.json(t)["sessions"] != 1.0 {
				t.Fatalf("end sessions: %d %s", r.status, r.body)
			}
			if r := a.call(zs, "GET", "/me", ""); r.status != 401 {
				t.Fatalf("an ended session at the API: %d", r.status)
			}
			if ev := a.auditOf("demo", "admin.user.end-sessions"); len(ev) != 1 || ev[0].Actor != "user:wang-admin@demo" || ev[0].UserID != zhang.ID || ev[0].RequestID == "" {
				t.Fatalf("end-sessions audit: %+v", ev)
			}
			if ev := a.auditOf("demo", "user.revoke"); len(ev) == 0 || ev[0].Actor != "user:wang-admin@demo" || ev[0].UserID != zhang.ID {
				t.Fatalf("user.revoke audit: %+v", ev)
			}
			if r := a.call(auditor, "GET", "/enterprises/demo/users/zhangsan", ""); len(r.json(t)["sessions"].([]any)) != 0 ||
				!strings.Contains(string(r.body), "admin.user.end-sessions") {
				t.Fatalf("zhangsan after: %s", r.body)
			}

			// Disable: the person's session ends, logon is refused; enable brings them back.
			if r := a.call(admin, "POST", "/enterprises/demo/users/zhangsan/disable", ""); r.status != 409 || !strings.Contains(string(r.body), "file-managed") {
				t.Fatalf("disable a file-managed person: %d %s", r.status, r.body)
			}
			ps := a.sessionOf("demo", person.Username)
			r = a.call(admin, "POST", "/enterprises/demo/users/"+person.ID+"/disable", "")
			if out := r.json(t); r.status != 200 || out["person"].(map[string]any)["status"] != "disabled" || out["ended"].(map[string]any)["sessions"] != 1.0 {
				t.Fatalf("disable: %d %s", r.status, r.body)
			}
			if r := a.call(ps, "GET", "/me", ""); r.status != 401 {
				t.Fatalf("a disabled person's session: %d", r.status)
			}
			if got := usernames(t, a.call(auditor, "GET", "/enterprises/demo/users?status=disabled", "")); !slices.Equal(got, []string{person.Username}) {
				t.Fatalf("disabled people: %v", got)
			}
			refused := newBrowser(t)
			if _, _, at := refused.get(a.base+"/login?enterprise=demo&idp_hint=wecom", plink.UpstreamID); strings.HasSuffix(at, "/login/done") {
				t.Fatal("a disabled person logged on")
			}
			r = a.call(admin, "POST", "/enterprises/demo/users/"+person.ID+"/enable", "")
			if r.status != 200 || r.json(t)["person"].(map[string]any)["status"] != "active" {
				t.Fatalf("enable: %d %s", r.status, r.body)
			}
			again := newBrowser(t)
			if _, _, at := again.get(a.base+"/login?enterprise=demo&idp_hint=wecom", plink.UpstreamID); !strings.HasSuffix(at, "/login/done") {
				t.Fatalf("an enabled person's logon landed at %s", at)
			}
			if r := a.call(admin, "POST", "/enterprises/demo/users/"+person.ID+"/enable", ""); r.status != 200 || len(a.auditOf("demo", "admin.user.enable")) != 1 {
				t.Fatalf("enabling an active person: %d, %d audit events", r.status, len(a.auditOf("demo", "admin.user.enable")))
			}

			// A local password: only for a person of a local directory, never for the file's, never shown.
			lin := &directory.User{EnterpriseID: "demo", Username: "lin", Name: "林"}
			if err := st.CreateUser(ctx, lin); err != nil {
				t.Fatal(err)
			}
			if err := st.PutUserLink(ctx, &directory.UserLink{EnterpriseID: "demo", SourceID: "local", UpstreamID: "lin", UserID: lin.ID}); err != nil {
				t.Fatal(err)
			}
			const pw = "Lin-s3cret-passw0rd"
			for who, c := range map[string]struct {
				c      caller
				path   string
				body   string
				status int
			}{
				"auditor":      {auditor, "lin", `{"password":"` + pw + `"}`, 403},
				"short":        {admin, "lin", `{"password":"short12"}`, 422},
				"unknown":      {admin, "lin", `{"password":"` + pw + `","hint":"x"}`, 422},
				"wrong type":   {admin, "lin", `{"password":12345678}`, 422},
				"file-managed": {admin, "zhangsan", `{"password":"` + pw + `"}`, 409},
				"not local":    {admin, person.ID, `{"password":"` + pw + `"}`, 409},
			} {
				r := a.call(c.c, "PUT", "/enterprises/demo/users/"+c.path+"/password", c.body)
				if r.status != c.status || strings.Contains(string(r.body), "short12") || strings.Contains(string(r.body), pw) {
					t.Fatalf("%s: %d %s", who, r.status, r.body)
				}
			}
			if u, _ := st.GetUser(ctx, "demo", lin.ID); u.PasswordHash != "" {
				t.Fatal("a refused password was stored")
			}
			if r := a.call(admin, "PUT", "/enterprises/demo/users/lin/password", `{"password":"`+pw+`"}`); r.status != 204 || len(r.body) != 0 {
				t.Fatalf("set password: %d %s", r.status, r.body)
			}
			u, _ := st.GetUser(ctx, "demo", lin.ID)
			if ok, err := password.Verify(pw, u.PasswordHash); !ok || err != nil || !strings.HasPrefix(u.PasswordHash, "$argon2id$") {
				t.Fatalf("the stored hash does not verify: %v", err)
			}
			ev := a.auditOf("demo", "admin.user.password")
			if len(ev) != 1 || ev[0].UserID != lin.ID || strings.Contains(string(ev[0].Detail), pw) || strings.Contains(string(ev[0].Detail), "argon2") {
				t.Fatalf("password audit: %+v %s", ev, ev[0].Detail)
			}

			// The lockout: five wrong passwords lock lin out; unlock lets the right one in again.
			action := a.base + "/login/e/demo/s/local/password"
			lb := newBrowser(t)
			_, page, _ := lb.get(a.base+"/login/e/demo/s/local", "")
			tok := csrfOf(t, page)
			for i := 0; i < 5; i++ {
				lb.post(action, url.Values{"csrf": {tok}, "username": {"lin"}, "password": {"wrong"}})
			}
			if status, _, _ := lb.post(action, url.Values{"csrf": {tok}, "username": {"lin"}, "password": {pw}}); status != http.StatusTooManyRequests {
				t.Fatalf("locked out: %d", status)
			}
			if r := a.call(auditor, "GET", "/enterprises/demo/users/lin", ""); r.json(t)["locked"] != true {
				t.Fatalf("lin is not shown locked: %s", r.body)
			}
			if r := a.call(auditor, "POST", "/enterprises/demo/users/lin/unlock", ""); r.status != 403 {
				t.Fatalf("auditor unlocks: %d", r.status)
			}
			if r := a.call(admin, "POST", "/enterprises/demo/users/lin/unlock", ""); r.status != 200 || r.json(t)["was_locked"] != true {
				t.Fatalf("unlock: %d %s", r.status, r.body)
			}
			if r := a.call(auditor, "GET", "/enterprises/demo/users/lin", ""); r.json(t)["locked"] != false {
				t.Fatalf("lin is still shown locked: %s", r.body)
			}
			if status, page, at := lb.post(action, url.Values{"csrf": {tok}, "username": {"lin"}, "password": {pw}}); status != 200 || !strings.HasSuffix(at, "/login/done") || !strings.Contains(page, "林") {
				t.Fatalf("lin after unlock: %d at %s", status, at)
			}
			if ev := a.auditOf("demo", "admin.user.unlock"); len(ev) != 1 || ev[0].Actor != "user:wang-admin@demo" || ev[0].UserID != lin.ID {
				t.Fatalf("unlock audit: %+v", ev)
			}
			a.gw.Admin.Wait()
		})
	}
}
