package gateway

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/qiao-gateway/qiao/federation/simkit"
	"github.com/qiao-gateway/qiao/internal/browsertest"
)

// consoleBrowser is one Chromium at 1280×800 walking the console of an adminWorld.
type consoleBrowser struct {
	t    *testing.T
	a    *adminWorld
	ctx  context.Context
	lang string
}

func newConsoleBrowser(t *testing.T, a *adminWorld, lang string) *consoleBrowser {
	ctx := browsertest.NewWith(t, chromedp.WindowSize(1280, 800), chromedp.Flag("accept-lang", lang), chromedp.Flag("lang", lang))
	// A console walk is longer than the minute browsertest gives one test: the same tab, with
	// the walk's own ceiling.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 4*time.Minute)
	t.Cleanup(cancel)
	return &consoleBrowser{t: t, a: a, ctx: ctx, lang: lang}
}

// do runs steps, failing the test with where the browser is and what it shows.
func (b *consoleBrowser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second) // a step that waits for what never comes fails soon
	defer cancel()
	for {
		err := chromedp.Do(ctx, steps...)
		// A page that reloads itself (a running task's page does, when the task ends) can drop
		// the node a click had just found; the click did not happen, so the steps run again.
		if err != nil && staleNode(err) && ctx.Err() == nil {
			continue
		}
		if err != nil {
			b.fatal(what, err)
		}
		return
	}
}

// staleNode says the DevTools protocol lost a node between finding and using it.
func staleNode(err error) bool {
	s := err.Error()
	return strings.Contains(s, "Could not find node with given id") || strings.Contains(s, "does not belong to the document")
}

func (b *consoleBrowser) fatal(what string, err any) {
	b.t.Helper()
	loc, _ := chromedp.Run(b.ctx, chromedp.Location())
	text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	b.t.Fatalf("%s: %v (at %s showing %q)", what, err, loc, text)
}

func (b *consoleBrowser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(sel))
	if err != nil {
		b.fatal("read "+sel, err)
	}
	return s
}

func (b *consoleBrowser) eval(js string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		b.fatal("evaluate "+js, err)
	}
	return s
}

// waitFor polls the page for cond (a JavaScript expression), with a ceiling.
func (b *consoleBrowser) waitFor(what, cond string) {
	b.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; {
		if ok, _ := chromedp.Run(b.ctx, chromedp.Evaluate[bool](cond)); ok {
			return
		}
		if time.Now().After(deadline) {
			b.fatal(what, "not reached")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// copy clicks the copy button of the element id once the console's script has attached its
// handlers (a deferred script can run after the page shows), and waits for it to say copied.
func (b *consoleBrowser) copy(id string) {
	b.t.Helper()
	b.waitFor("the console script", `document.documentElement.dataset.scripted === "1"`)
	b.do("copy "+id, chromedp.Click(`button[data-copy="`+id+`"]`))
	b.waitFor("the copy button says copied", `document.querySelector('button[data-copy="`+id+`"]').dataset.copied === "1"`)
}

// shot saves the page as docs/screenshots-style PNG when QIAO_SCREENSHOTS=DIR is set.
func (b *consoleBrowser) shot(name string) {
	if dir := os.Getenv("QIAO_SCREENSHOTS"); dir != "" {
		if png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100)); err == nil {
			_ = os.WriteFile(filepath.Join(dir, "console-"+b.lang+"-"+name+".png"), png, 0o644)
		}
	}
}

// TestConsoleFramework: an owner who opens /console/ without a session logs on through the
// enterprise's normal logon (the WeCom simulator's QR page) and comes back to the console of
// their enterprise: the layout names them and their role, the navigation and the language switch
// work, both languages are whole; another enterprise's console answers the API's 404 with a
// reference; a form posted without the console's CSRF token changes nothing.
func TestConsoleFramework(t *testing.T) {
	a := newAdminWorld(t)
	b := newConsoleBrowser(t, a, "zh-CN")
	b.do("log on through the console",
		chromedp.Navigate(a.base+"/console/"),
		chromedp.WaitVisible(`#enterprise`),
		chromedp.SendKeys(`#enterprise`, "demo"),
		chromedp.Click(`button[type="submit"]`),
		chromedp.WaitVisible(`ul.sources`),
		chromedp.Click(`a.button[href*="/s/wecom"]`),
		chromedp.WaitVisible(`img[alt^="QR code"]`),
		chromedp.Click(`button[value="zhangsan"]`),
		chromedp.WaitVisible(`#who`),
	)
	if loc, _ := chromedp.Run(b.ctx, chromedp.Location()); !strings.HasSuffix(loc, "/console/e/demo/") {
		t.Fatalf("after the logon the browser is at %s", loc)
	}
	if who := b.text(`#who`); !strings.Contains(who, "zhangsan") || !strings.Contains(who, "所有者") {
		t.Fatalf("the layout shows %q", who)
	}
	if l := b.eval(`document.documentElement.lang`); l != "zh-CN" {
		t.Fatalf("page language %q", l)
	}
	if ov := b.text(`#overview-sources`); !strings.Contains(ov, "企业微信") || !strings.Contains(ov, "钉钉") {
		t.Fatalf("the overview lists %q", ov)
	}
	b.shot("overview")
	b.do("open the sources", chromedp.Click(`nav a[href$="/sources"]`), chromedp.WaitVisible(`#sources`))
	if cur := b.eval(`document.querySelector('nav a[aria-current="page"]').textContent`); cur != "身份源" {
		t.Fatalf("the navigation marks %q", cur)
	}
	// The language switch: the same page in English, with no Chinese of the console's own.
	b.do("switch to English", chromedp.Click(`#lang-switch`), chromedp.WaitVisible(`#sources`))
	if l := b.eval(`document.documentElement.lang`); l != "en" {
		t.Fatalf("after the switch the page language is %q", l)
	}
	if h := b.text(`h1`); h != "Identity sources" {
		t.Fatalf("English heading %q", h)
	}
	b.do("back to Chinese", chromedp.Click(`#lang-switch`), chromedp.WaitVisible(`#sources`))

	// Another enterprise: the API's 404, on the console's error page with a reference.
	b.do("another enterprise", chromedp.Navigate(a.base+"/console/e/acme/"), chromedp.WaitVisible(`#ref`))
	if h := b.text(`h1`); h != "找不到" {
		t.Fatalf("another enterprise's console: %q", h)
	}
	// A post without the console's CSRF token is refused and changes nothing.
	b.do("the sources again", chromedp.Navigate(a.base+"/console/e/demo/sources"), chromedp.WaitVisible(`#sources`))
	b.eval(`(() => { const f = document.createElement("form"); f.method = "post"; f.action = "/console/e/demo/sources/dingtalk/close"; document.body.append(f); f.submit(); return ""; })()`)
	b.waitFor("the CSRF refusal", `!!document.querySelector("#ref") && document.querySelector("h1").textContent === "无权操作"`)
	if src, _ := a.gw.Store.GetSource(a.ctx, "demo", "dingtalk"); !src.Enabled {
		t.Fatal("a post without the CSRF token closed the source")
	}

	// Employees: the department tree narrows the list; the search finds a person; their page
	// shows their links and live sessions; disable and enable go through the API.
	b.do("employees", chromedp.Navigate(a.base+"/console/e/demo/sources"), chromedp.Click(`nav a[href$="/people"]`), chromedp.WaitVisible(`#tree`))
	if tree := b.text(`#tree`); !strings.Contains(tree, "企业微信") || !strings.Contains(tree, "钉钉") {
		t.Fatalf("the department trees: %q", tree)
	}
	b.do("a department", chromedp.Click(`#tree li:not(:has(ul)) a`), chromedp.WaitVisible(`#tree a[aria-current]`))
	if n := b.eval(`String(document.querySelectorAll('#people tbody a').length)`); n == "0" {
		t.Fatalf("a department of the tree lists nobody: %q", b.text(`#people`))
	}
	b.do("search 张三", chromedp.Navigate(a.base+"/console/e/demo/people"), chromedp.SendKeys(`#q`, "张三"), chromedp.Submit(`#people-search`), chromedp.WaitVisible(`#people a`))
	b.shotBoth("employees", `#people a`, "")
	b.do("open 张三", chromedp.Navigate(a.base+"/console/e/demo/people?q=zhangsan"), chromedp.WaitVisible(`#people a`), chromedp.Click(`#people a`), chromedp.WaitVisible(`#links`))
	if links := b.text(`#links`); !strings.Contains(links, "zhangsan") || !strings.Contains(links, "企业微信") {
		t.Fatalf("张三's links: %q", links)
	}
	if n := b.eval(`String(document.querySelectorAll('#sessions tbody tr td:nth-child(2)').length)`); n == "0" {
		t.Fatalf("张三's live session is not listed: %q", b.text(`#sessions`))
	}
	b.shot("person")
	// Someone of WeCom's other than the owner: disable, then enable.
	b.do("WeCom's people", chromedp.Navigate(a.base+"/console/e/demo/people?source=wecom"), chromedp.WaitVisible(`#people a`))
	other := b.eval(`[...document.querySelectorAll('#people tbody tr')].find(r => r.cells[1].textContent !== "zhangsan").cells[1].textContent`)
	b.do("disable "+other, chromedp.Navigate(a.base+"/console/e/demo/people?q="+other), chromedp.Click(`#people a`), chromedp.Click(`#disable`), chromedp.WaitVisible(`#enable`))
	if st := b.text(`#person-status`); st != "已停用" {
		t.Fatalf("after disabling: %q", st)
	}
	if u, _ := a.gw.Store.GetUserByUsername(a.ctx, "demo", other); u.Status != "disabled" {
		t.Fatalf("after disabling %s is %s", other, u.Status)
	}
	b.do("enable "+other, chromedp.Click(`#enable`), chromedp.WaitVisible(`#disable`))
	if u, _ := a.gw.Store.GetUserByUsername(a.ctx, "demo", other); u.Status != "active" {
		t.Fatalf("after enabling %s is %s", other, u.Status)
	}

	// Administrators: the owner grants chen-nobody the auditor role, then revokes it.
	b.do("administrators", chromedp.Click(`nav a[href$="/admins"]`), chromedp.WaitVisible(`#grant`), chromedp.SendKeys(`#username`, "chen-nobody"))
	b.eval(`document.getElementById("role").value = "auditor", ""`)
	b.do("grant", chromedp.Submit(`#grant`), chromedp.WaitVisible(`#admin-chen-nobody`))
	if g, err := a.gw.Store.GetAdminGrant(a.ctx, "demo", "chen-nobody"); err != nil || g.Role != "auditor" {
		t.Fatalf("the grant: %+v %v", g, err)
	}
	b.shot("administrators")
	// The grant's answer page shows a flash too: wait for the revocation's page, where the row is gone.
	b.do("revoke", chromedp.Click(`#admin-chen-nobody button`))
	b.waitFor("the revocation's page", `!document.getElementById("admin-chen-nobody") && !!document.getElementById("flash")`)
	if _, err := a.gw.Store.GetAdminGrant(a.ctx, "demo", "chen-nobody"); err == nil {
		t.Fatal("the grant survived its revocation")
	}

	// An auditor sees everything and can change nothing: no buttons that change, and a change
	// posted anyway (with a valid console token) is the API's 403.
	b.as(a.sessionOf("demo", "li-auditor"))
	b.do("the auditor's console", chromedp.Navigate(a.base+"/console/"), chromedp.WaitVisible(`#readonly`))
	if who := b.text(`#who`); !strings.Contains(who, "li-auditor") || !strings.Contains(who, "审计员") {
		t.Fatalf("the auditor's layout: %q", who)
	}
	b.do("the auditor's sources", chromedp.Navigate(a.base+"/console/e/demo/sources"), chromedp.WaitVisible(`#sources`))
	if n := b.eval(`String(document.querySelectorAll('#new-source, #sources form').length)`); n != "0" {
		t.Fatalf("the auditor is offered %s changes on the sources list", n)
	}
	b.do("the auditor opens a source", chromedp.Navigate(a.base+"/console/e/demo/sources/wecom"), chromedp.WaitVisible(`#records`))
	if n := b.eval(`String(document.querySelectorAll('#test, #sync-now, #close, #edit, #delete').length)`); n != "0" {
		t.Fatalf("the auditor is offered %s changes on a source", n)
	}
	b.do("the auditor's administrators", chromedp.Navigate(a.base+"/console/e/demo/admins"), chromedp.WaitVisible(`#admins`))
	if n := b.eval(`String(document.querySelectorAll('#grant, #admins form').length)`); n != "0" {
		t.Fatalf("the auditor is offered %s grant or revoke forms", n)
	}
	// The edit page by its address: a file-managed source offers no form, its page says where to change it.
	b.do("the auditor opens the edit address", chromedp.Navigate(a.base+"/console/e/demo/sources/wecom/edit"), chromedp.WaitVisible(`#records`))
	if loc, n := b.eval(`location.pathname`), b.eval(`String(document.querySelectorAll('form#source-form, [name="name"]').length)`); loc != "/console/e/demo/sources/wecom" || n != "0" {
		t.Fatalf("the edit address of a file-managed source: at %s with %s form fields", loc, n)
	}
	b.do("the auditor opens a source again", chromedp.Navigate(a.base+"/console/e/demo/sources/wecom"), chromedp.WaitVisible(`#records`))
	b.do("the auditor reads the sync records", chromedp.Click(`#records`), chromedp.WaitVisible(`#tasks`))
	b.postForm("/console/e/demo/sources/wecom/sync")
	b.waitFor("the auditor's refusal", `!!document.querySelector("#ref") && document.querySelector("h1").textContent === "无权操作"`)
	if ts, _ := a.gw.Store.ListSyncTasks(a.ctx, "demo", "wecom", 10); len(ts) != 1 {
		t.Fatalf("the auditor's sync ran: %d tasks", len(ts))
	}

	// An admin of another enterprise sees nothing of demo: not in the switcher, and every page
	// and change of it is the API's 404.
	b.as(a.sessionOf("acme", "acme-admin"))
	b.do("acme's console", chromedp.Navigate(a.base+"/console/"), chromedp.WaitVisible(`#who`))
	if loc := b.eval(`location.pathname`); loc != "/console/e/acme/" {
		t.Fatalf("acme's admin lands on %s", loc)
	}
	if opts := b.eval(`[...document.querySelectorAll('#ent-switch option')].map(o => o.value).join(",")`); opts != "acme" {
		t.Fatalf("acme's admin may switch to %q", opts)
	}
	for _, path := range []string{"/console/e/demo/", "/console/e/demo/sources", "/console/e/demo/sources/wecom", "/console/e/demo/sources/wecom/tasks", "/console/?e=demo"} {
		b.do("acme's admin at "+path, chromedp.Navigate(a.base+path), chromedp.WaitVisible(`#ref`))
		if h := b.text(`h1`); h != "找不到" {
			t.Fatalf("acme's admin at %s: %q", path, h)
		}
		if txt := b.text(`main`); strings.Contains(txt, "企业微信") {
			t.Fatalf("acme's admin at %s sees %q", path, txt)
		}
	}
	b.postForm("/console/e/demo/sources/wecom/close")
	b.waitFor("acme's refusal", `!!document.querySelector("#ref") && document.querySelector("h1").textContent === "找不到"`)
	if src, _ := a.gw.Store.GetSource(a.ctx, "demo", "wecom"); !src.Enabled {
		t.Fatal("another enterprise's admin closed demo's source")
	}
}

// as makes the browser hold c's session instead of its own: sign out (a page cannot replace an
// HttpOnly cookie), then set the new one.
func (b *consoleBrowser) as(c caller) {
	b.t.Helper()
	b.do("the console", chromedp.Navigate(b.a.base+"/console/"), chromedp.WaitReady(`form[action="/logout"]`))
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`fetch("/logout", {method: "POST", redirect: "manual", body: new URLSearchParams({csrf: document.querySelector("input[name=csrf]").value})}).then(() => "")`, chromedp.EvalAwaitPromise)); err != nil {
		b.fatal("sign out", err)
	}
	b.eval(`document.cookie = "qiao_sso=` + c.cookie.Value + `; path=/", ""`)
}

// postForm posts a form with the console's valid CSRF token to path, as a forged button would.
func (b *consoleBrowser) postForm(path string) {
	b.t.Helper()
	b.eval(`(() => { const f = document.createElement("form"); f.method = "post"; f.action = "` + path + `";
	  const c = document.createElement("input"); c.type = "hidden"; c.name = "csrf"; c.value = document.querySelector("input[name=csrf]").value;
	  f.append(c); document.body.append(f); f.submit(); return ""; })()`)
}

// logonWeCom logs the browser on to the console through the enterprise's WeCom logon as who.
func (b *consoleBrowser) logonWeCom(who string) {
	b.t.Helper()
	b.do("log on through the console",
		chromedp.Navigate(b.a.base+"/console/"),
		chromedp.WaitVisible(`#enterprise`),
		chromedp.SendKeys(`#enterprise`, "demo"),
		chromedp.Click(`button[type="submit"]`),
		chromedp.WaitVisible(`ul.sources`),
		chromedp.Click(`a.button[href*="/s/wecom"]`),
		chromedp.WaitVisible(`img[alt^="QR code"]`),
		chromedp.Click(`button[value="`+who+`"]`),
		chromedp.WaitVisible(`#who`),
	)
}

// fill types into the inputs named by the map's keys (JSON paths such as wecom.corp_id).
func (b *consoleBrowser) fill(fields map[string]string) {
	b.t.Helper()
	for name, v := range fields {
		b.do("fill "+name, chromedp.SendKeys(`[name="`+name+`"]`, v))
	}
}

// TestConsoleWeComSourceWorkflow: the seed's identity-source workflow as an owner clicks it in
// the console — create a WeCom source, copy its login callback URL, test connectivity (60020 with
// the address to add; add it in the simulator; pass), synchronize now and watch the running task
// end, filter its records, open zhangsan's record and see the WeCom data beside the local person
// before and after, then close the source and see a logon through it refused.
func TestConsoleWeComSourceWorkflow(t *testing.T) {
	a := newAdminWorld(t)
	b := newConsoleBrowser(t, a, "zh-CN")
	b.logonWeCom("zhangsan")
	// The simulator's app trusts one other address only, from now on.
	agent := a.ws.AgentID
	if !a.wsim.SetTrustedIPs(agent, []string{"203.0.113.9"}) {
		t.Fatal("no such app")
	}

	src, err := a.gw.Store.GetSource(a.ctx, "demo", "wecom")
	if err != nil {
		t.Fatal(err)
	}
	c, s := src.Config, src.Secrets
	b.do("new source", chromedp.Navigate(a.base+"/console/e/demo/sources"), chromedp.Click(`#new-source`), chromedp.WaitVisible(`#kind-wecom`))
	b.shotBoth("source-kinds", `#kind-wecom`, "")
	b.do("WeCom", chromedp.Click(`#kind-wecom`), chromedp.WaitVisible(`#source-form`))
	if d := b.eval(`document.querySelector('[name="wecom.callback_domain"]').value`); d != c["callback_domain"] {
		t.Fatalf("the callback domain is prefilled with %q, want %q", d, c["callback_domain"])
	}
	// A bad ID first: the API's error is shown beside the field, nothing is created.
	b.fill(map[string]string{"id": "Bad ID", "name": "企业微信二", "wecom.corp_id": c["corp_id"], "wecom.agent_id": c["agent_id"],
		"wecom.secret": s["secret"], "wecom.callback_token": s["callback_token"],
		"wecom.encoding_aes_key": s["encoding_aes_key"]})
	b.do("advanced", chromedp.Click(`details summary`))
	b.fill(map[string]string{"wecom.api_base_url": c["api_base_url"], "wecom.login_base_url": c["login_base_url"],
		"wecom.open_base_url": c["open_base_url"], "wecom.oauth_base_url": c["oauth_base_url"]})
	b.do("create with a bad ID", chromedp.Click(`#create`), chromedp.WaitVisible(`#form-error`))
	if e := b.eval(`document.querySelector('#id ~ .field-error') ? document.querySelector('#id ~ .field-error').textContent : ""`); e == "" {
		t.Fatal("no error beside the ID")
	}
	if _, err := a.gw.Store.GetSource(a.ctx, "demo", "Bad ID"); err == nil {
		t.Fatal("a source with a bad ID was stored")
	}
	// The form keeps what was typed, secrets included: fix the ID only.
	b.eval(`document.getElementById("id").value = ""`)
	b.do("fix the ID", chromedp.SendKeys(`#id`, "wecom2"), chromedp.Click(`#create`), chromedp.WaitVisible(`#console-values`))
	if f := b.text(`#flash`); f != "已保存。" {
		t.Fatalf("after creating: %q", f)
	}
	want := a.base + "/e/demo/sources/wecom2/callback"
	if got := b.text(`#v-callback`); got != want {
		t.Fatalf("login callback URL %q, want %q", got, want)
	}
	b.copy("v-callback")
	if got := b.text(`#v-events`); got != a.base+"/e/demo/sources/wecom2/events" {
		t.Fatalf("event request URL %q", got)
	}
	b.shotBoth("source", `#console-values`, "")

	// Test connectivity: 60020 and the address to add.
	b.do("test connectivity", chromedp.Click(`#test`), chromedp.WaitVisible(`#checks`))
	if st := b.eval(`document.querySelector('#check-egress_ip').dataset.status`); st != "fail" {
		t.Fatalf("egress IP check %q", st)
	}
	if row := b.text(`#check-egress_ip`); !strings.Contains(row, "60020") || !strings.Contains(row, "127.0.0.1") {
		t.Fatalf("the egress IP check says %q", row)
	}
	b.shotBoth("connectivity-fail", `#checks`, a.base+"/console/e/demo/sources/wecom2",
		chromedp.Navigate(a.base+"/console/e/demo/sources/wecom2"), chromedp.Click(`#test`))
	if !a.wsim.SetTrustedIPs(agent, []string{"203.0.113.9", "127.0.0.1"}) {
		t.Fatal("no such app")
	}
	b.do("test again", chromedp.Click(`#test`), chromedp.WaitVisible(`#report-ok`))
	if st := b.eval(`document.querySelector('#check-egress_ip').dataset.status`); st != "ok" {
		t.Fatalf("egress IP check after the fix %q", st)
	}

	// Synchronize now: the task runs (the simulator answers the department list slowly), the page
	// follows it and shows the result when it ends.
	a.wsim.Kit().AddFault(simkit.Fault{API: "department/list", LatencyMS: 1500, Count: 1})
	b.do("synchronize now", chromedp.Click(`#sync-now`), chromedp.WaitVisible(`#live`))
	if st := b.text(`#task-status`); st != "进行中" {
		t.Fatalf("a running task shows %q", st)
	}
	b.shot("task-running")
	b.waitFor("the task's end", `!!document.querySelector('#task[data-status="succeeded"]')`)
	if counts := b.text(`#counts`); !strings.Contains(counts, "新增") {
		t.Fatalf("the finished task's counts: %q", counts)
	}
	// Records filtered by action: only creations.
	b.eval(`document.getElementById("action").value = "create", ""`)
	b.do("filter by action", chromedp.Submit(`#record-filter`), chromedp.WaitVisible(`#records-table`))
	if others := b.eval(`String([...document.querySelectorAll('#records-table tbody tr')].filter(r => r.dataset.action !== "create").length)`); others != "0" {
		t.Fatalf("%s records other than creations after filtering", others)
	}
	b.shotBoth("task", `#records-table`, "")
	// zhangsan's record: the WeCom data beside the local person, the changed fields marked.
	b.do("open zhangsan's record", chromedp.Navigate(strings.Split(b.eval(`location.href`), "?")[0]+"/records/user/zhangsan"), chromedp.WaitVisible(`#local`))
	if up := b.text(`#upstream`); !strings.Contains(up, "张三") {
		t.Fatalf("the upstream data: %q", up)
	}
	if n := b.eval(`String(document.querySelectorAll('#local tr[data-changed] td.changed').length)`); n == "0" {
		t.Fatalf("no changed field highlighted: %q", b.text(`#local`))
	}
	b.shotBoth("record", `#local`, "")

	// Close the source: logons through it are refused.
	b.do("close", chromedp.Navigate(a.base+"/console/e/demo/sources/wecom2"), chromedp.Click(`#close`), chromedp.WaitVisible(`#open`))
	if st := b.text(`#source-status`); st != "已关闭" {
		t.Fatalf("after closing the status is %q", st)
	}
	refused := newBrowser(t)
	if _, _, at := refused.get(a.base+"/login?enterprise=demo&idp_hint=wecom2", "zhangsan"); strings.HasSuffix(at, "/login/done") {
		t.Fatalf("logon through a closed source landed at %s", at)
	}
	for _, kind := range []string{"admin.source.create", "admin.sync.run", "admin.source.close"} {
		if ev := a.auditOf("demo", kind); len(ev) != 1 || ev[0].Actor != "user:zhangsan@demo" || ev[0].SourceID != "wecom2" {
			t.Fatalf("%s audit = %+v", kind, ev)
		}
	}
	// The audit log: filtered by kind, the close the console made, by the owner, with the
	// request's reference.
	b.do("the audit log", chromedp.Navigate(a.base+"/console/e/demo/audit"), chromedp.WaitVisible(`#audit-filter`),
		chromedp.SendKeys(`#kind`, "admin.source."), chromedp.Submit(`#audit-filter`), chromedp.WaitVisible(`#audit tr[data-kind]`))
	if kinds := b.eval(`[...new Set([...document.querySelectorAll('#audit tr[data-kind]')].map(r => r.dataset.kind))].sort().join(",")`); kinds != "admin.source.close,admin.source.create" {
		t.Fatalf("the audit log filtered by admin.source.: %q", kinds)
	}
	closed := a.auditOf("demo", "admin.source.close")[0]
	if row := b.text(`#audit tr[data-kind="admin.source.close"]`); !strings.Contains(row, "user:zhangsan@demo") || !strings.Contains(row, closed.RequestID) {
		t.Fatalf("the close's audit row: %q", row)
	}
	b.shotBoth("audit", `#audit tr[data-kind]`, "")
	a.gw.Admin.Wait()
}
