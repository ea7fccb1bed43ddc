package gateway

import (
	"encoding/json"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/qiao-gateway/qiao/federation/simorg"
)

// setLang switches the console's language (its ?lang= cookie), on a static file so that no page
// is loaded twice; at an address never asked before, so that no cached answer skips the cookie.
func (b *consoleBrowser) setLang(l string) {
	b.t.Helper()
	b.do("language "+l, chromedp.Navigate(b.a.base+"/console/static/console.css?lang="+l+"&n="+strconv.FormatInt(time.Now().UnixNano(), 10)))
}

// shotBoth saves the page as it is, then the same screen in English — reached again by redo, or
// by loading the page's address — and switches back to Chinese at back (the page's address when
// empty). Only when screenshots are asked for (QIAO_SCREENSHOTS).
func (b *consoleBrowser) shotBoth(name, ready, back string, redo ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if os.Getenv("QIAO_SCREENSHOTS") == "" {
		return
	}
	b.shot(name)
	loc := b.eval(`location.href`)
	if len(redo) == 0 {
		redo = []chromedp.Action[chromedp.Void]{chromedp.Navigate(loc)}
	}
	if back == "" {
		back = loc
	}
	saved := b.lang
	b.setLang("en")
	b.do(name+" in English", append(redo, chromedp.WaitVisible(ready))...)
	if l := b.eval(`document.documentElement.lang`); l != "en" {
		b.t.Fatalf("%s: the page's language after the switch is %q", name, l)
	}
	b.lang = "en"
	b.shot(name)
	b.lang = saved
	b.setLang(saved)
	b.do(name+" back in "+saved, chromedp.Navigate(back), chromedp.WaitReady(`body`))
}

// secondWeCom creates, through the API, another WeCom source of the world's app (the world's own
// is file-managed, so its settings cannot change), not synchronized yet.
func (a *adminWorld) secondWeCom(id, name string) {
	a.t.Helper()
	src, err := a.gw.Store.GetSource(a.ctx, "demo", "wecom")
	if err != nil {
		a.t.Fatal(err)
	}
	settings := map[string]string{"secret": src.Secrets["secret"]}
	for _, k := range []string{"corp_id", "agent_id", "callback_domain", "api_base_url", "login_base_url", "open_base_url", "oauth_base_url"} {
		settings[k] = src.Config[k]
	}
	body, _ := json.Marshal(map[string]any{"id": id, "kind": "wecom", "name": name, "wecom": settings})
	if r := a.call(a.sessionOf("demo", "zhao-owner"), "POST", "/enterprises/demo/sources", string(body)); r.status != 201 {
		a.t.Fatalf("create %s: %d %s", id, r.status, r.body)
	}
}

// TestConsoleSyncScopeTree: an owner opens the sync settings of a new WeCom source, sees the
// platform's departments read live as a tree, chooses one department by keyboard (its
// sub-departments come with it), saves, synchronizes now, and exactly the people of that subtree
// are synchronized. When the platform refuses the read, the page says why and keeps the chosen
// IDs editable.
func TestConsoleSyncScopeTree(t *testing.T) {
	a := newAdminWorld(t)
	// The simulated org gets a subtree to choose: 研发中心 with two teams, and 市场部 beside it,
	// each with people moved there from elsewhere.
	o := a.wsim.Org()
	for _, d := range []simorg.Dept{{ID: 9001, ParentID: simorg.RootID, Name: "研发中心"}, {ID: 9002, ParentID: 9001, Name: "后端组"},
		{ID: 9003, ParentID: 9001, Name: "前端组"}, {ID: 9004, ParentID: simorg.RootID, Name: "市场部"}} {
		if _, err := o.AddDept(d); err != nil {
			t.Fatal(err)
		}
	}
	o.RLock()
	var movers []*simorg.User
	for _, id := range o.UserIDs() {
		if id != "zhangsan" && len(movers) < 5 {
			movers = append(movers, o.User(id).Clone())
		}
	}
	o.RUnlock()
	for i, u := range movers {
		d := []int{9001, 9002, 9003, 9002, 9004}[i]
		u.Depts, u.Orders, u.IsLeader, u.MainDept = []int{d}, []uint32{0}, []int{0}, d
		if _, err := o.PutUser(u, false); err != nil {
			t.Fatal(err)
		}
	}
	o.RLock()
	sub := o.Subtree(9001)
	var want []string
	for _, id := range o.UserIDs() {
		for _, d := range o.User(id).Depts {
			if slices.Contains(sub, d) {
				want = append(want, id)
				break
			}
		}
	}
	depts, users := o.Counts()
	o.RUnlock()
	if len(want) != 4 || len(want) >= users {
		t.Fatalf("the subtree holds %v of %d people", want, users)
	}

	a.secondWeCom("wecom-part", "企业微信研发")

	b := newConsoleBrowser(t, a, "zh-CN")
	b.logonWeCom("zhangsan")
	edit := a.base + "/console/e/demo/sources/wecom-part/edit"
	b.do("the sync settings", chromedp.Navigate(edit), chromedp.WaitVisible(`#scope-tree`))
	if n := b.eval(`String(document.querySelectorAll('#scope-tree input[name="sync.scope"]').length)`); n != strconv.Itoa(depts) {
		t.Fatalf("the tree offers %s departments, the platform has %d", n, depts)
	}
	if b.eval(`String(document.getElementById("scope-all").checked)`) != "true" {
		t.Fatal("a new source's scope is not the whole organisation")
	}
	// The tree nests: the teams are inside 研发中心's item, and every box has its label.
	if n := b.eval(`String(document.querySelectorAll('#scope-9001 ~ details input[name="sync.scope"]').length)`); n != "2" {
		t.Fatalf("研发中心 holds %s sub-departments in the tree", n)
	}
	if unlabelled := b.eval(`String([...document.querySelectorAll('#source-form input:not([type=hidden])')].filter(i => !i.labels.length && !i.getAttribute("aria-label")).map(i => i.name))`); unlabelled != "" {
		t.Fatalf("inputs without a label: %s", unlabelled)
	}
	// By keyboard: focus 研发中心's box and press space.
	b.do("choose 研发中心", chromedp.Focus(`#scope-9001`), chromedp.KeyEvent(" "))
	if got := b.eval(`[document.getElementById("scope-9001").checked, document.getElementById("scope-chosen").checked, document.getElementById("scope-9002").checked, document.getElementById("scope-9002").disabled].join(",")`); got != "true,true,true,true" {
		t.Fatalf("after choosing 研发中心 (chosen, partial scope, team checked, team left to its parent): %s", got)
	}
	// A mapping too, so that the page shows every part of the sync settings.
	b.fill(map[string]string{"sync.map.0.upstream": "position", "sync.map.0.local": "ext.职务"})
	b.do("save", chromedp.Click(`#save`), chromedp.WaitVisible(`#flash`))
	if s, _ := a.gw.Store.GetSource(a.ctx, "demo", "wecom-part"); s.Sync.ScopeAll || !slices.Equal(s.Sync.ScopeDeptIDs, []string{"9001"}) || len(s.Sync.FieldMappings) != 1 {
		t.Fatalf("stored scope: all=%v %v, mappings %v", s.Sync.ScopeAll, s.Sync.ScopeDeptIDs, s.Sync.FieldMappings)
	}
	b.do("the sync settings again", chromedp.Navigate(edit), chromedp.WaitVisible(`#scope-tree`))
	if got := b.eval(`[document.getElementById("scope-chosen").checked, document.getElementById("scope-9001").checked, document.getElementById("scope-9004").checked].join(",")`); got != "true,true,false" {
		t.Fatalf("the saved scope shows as %s", got)
	}
	b.shotBoth("sync-settings", `#scope-tree`, "")

	// "Chosen departments" with none chosen is the form's error; nothing is stored.
	b.do("the sync settings once more", chromedp.Navigate(edit), chromedp.WaitVisible(`#scope-tree`))
	b.do("unchoose 研发中心", chromedp.Click(`#scope-9001`), chromedp.Click(`#save`), chromedp.WaitVisible(`#form-error`))
	if e := b.text(`#scope .field-error`); !strings.Contains(e, "请至少选择一个部门") {
		t.Fatalf("the scope's error: %q", e)
	}
	if s, _ := a.gw.Store.GetSource(a.ctx, "demo", "wecom-part"); !slices.Equal(s.Sync.ScopeDeptIDs, []string{"9001"}) {
		t.Fatalf("a refused form changed the scope to %v", s.Sync.ScopeDeptIDs)
	}

	// Synchronize now: exactly the subtree's people are linked to the source.
	b.do("synchronize now", chromedp.Navigate(a.base+"/console/e/demo/sources/wecom-part"), chromedp.Click(`#sync-now`), chromedp.WaitVisible(`#task`))
	b.waitFor("the task's end", `!!document.querySelector('#task[data-status="succeeded"]')`)
	links, err := a.gw.Store.ListUserLinks(a.ctx, "demo", "wecom-part")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range links {
		got = append(got, l.UpstreamID)
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("synchronized %v, the chosen subtree holds %v", got, want)
	}
	// The people list of the source says the same.
	b.do("the source's people", chromedp.Navigate(a.base+"/console/e/demo/people?source=wecom-part"), chromedp.WaitVisible(`#people`))
	if listed := b.eval(`[...document.querySelectorAll('#people tbody tr')].map(r => r.cells[1].textContent).sort().join(",")`); listed != strings.Join(want, ",") {
		t.Fatalf("the people list of the source: %q, want %q", listed, strings.Join(want, ","))
	}

	// The platform refuses the read (60020): the page says so and keeps the IDs as text.
	if !a.wsim.SetTrustedIPs(a.ws.AgentID, []string{"203.0.113.9"}) {
		t.Fatal("no such app")
	}
	b.do("the sync settings, refused", chromedp.Navigate(edit), chromedp.WaitVisible(`#tree-error`))
	if e := b.text(`#tree-error`); !strings.Contains(e, "60020") {
		t.Fatalf("the refusal says %q", e)
	}
	if ids := b.eval(`document.getElementById("sync.scope_ids").value`); ids != "9001" {
		t.Fatalf("the chosen IDs as text: %q", ids)
	}
	a.gw.Admin.Wait()
}

// TestConsoleSyncFieldMappings: an owner adds a field mapping and an extended field in the sync
// settings, edits the mapping, synchronizes and sees the mapped values on a person's page, then
// deletes the mapping. A half-filled mapping is the form's error and changes nothing.
func TestConsoleSyncFieldMappings(t *testing.T) {
	a := newAdminWorld(t)
	a.secondWeCom("wecom-map", "企业微信映射")
	b := newConsoleBrowser(t, a, "zh-CN")
	b.logonWeCom("zhangsan")
	edit := a.base + "/console/e/demo/sources/wecom-map/edit"
	stored := func() (maps []string, exts []string) {
		t.Helper()
		s, err := a.gw.Store.GetSource(a.ctx, "demo", "wecom-map")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range s.Sync.FieldMappings {
			maps = append(maps, m.Upstream+"="+m.Local)
		}
		return maps, s.Sync.ExtendedFields
	}

	b.do("the sync settings", chromedp.Navigate(edit), chromedp.WaitVisible(`#mapping-rows`))
	b.fill(map[string]string{"sync.map.0.upstream": "position"})
	b.do("a half-filled mapping", chromedp.Click(`#save`), chromedp.WaitVisible(`#form-error`))
	if e := b.text(`#mappings .field-error`); !strings.Contains(e, "上游属性和本地字段") {
		t.Fatalf("the mapping's error: %q", e)
	}
	if m, _ := stored(); len(m) != 0 {
		t.Fatalf("a refused form stored mappings %v", m)
	}
	// Add: the row kept what was typed; complete it, and add an extended field.
	b.fill(map[string]string{"sync.map.0.local": "ext.title", "sync.ext.0": "工号"})
	b.do("add", chromedp.Click(`#save`), chromedp.WaitVisible(`#flash`))
	if m, e := stored(); !slices.Equal(m, []string{"position=ext.title"}) || !slices.Equal(e, []string{"工号"}) {
		t.Fatalf("after adding: mappings %v, extended fields %v", m, e)
	}
	// Edit: the mapping's local field becomes ext.职务; a new empty row is offered below it.
	b.do("the sync settings again", chromedp.Navigate(edit), chromedp.WaitVisible(`#mapping-rows`))
	if n := b.eval(`String(document.querySelectorAll('#mapping-rows tbody tr').length)`); n != "2" {
		t.Fatalf("%s mapping rows for one mapping", n)
	}
	b.eval(`document.querySelector('[name="sync.map.0.local"]').value = "", ""`)
	b.fill(map[string]string{"sync.map.0.local": "ext.职务"})
	b.do("edit", chromedp.Click(`#save`), chromedp.WaitVisible(`#flash`))
	if m, _ := stored(); !slices.Equal(m, []string{"position=ext.职务"}) {
		t.Fatalf("after editing: mappings %v", m)
	}

	// Synchronize: 张三's page shows his position as 职务 and his employee number as 工号.
	b.do("synchronize now", chromedp.Navigate(a.base+"/console/e/demo/sources/wecom-map"), chromedp.Click(`#sync-now`), chromedp.WaitVisible(`#task`))
	b.waitFor("the task's end", `!!document.querySelector('#task[data-status="succeeded"]')`)
	b.do("张三", chromedp.Navigate(a.base+"/console/e/demo/people?q=zhangsan"), chromedp.WaitVisible(`#people a`), chromedp.Click(`#people a`), chromedp.WaitVisible(`#attributes`))
	o := a.wsim.Org()
	o.RLock()
	position := o.User("zhangsan").Position
	number := o.User("zhangsan").ExtAttrs[0].Value
	o.RUnlock()
	if got := b.eval(`[document.querySelector('#attributes dd[data-field="职务"]'), document.querySelector('#attributes dd[data-field="工号"]')].map(d => d ? d.textContent : "").join(",")`); got != position+","+number {
		t.Fatalf("张三's extended fields %q, want %q", got, position+","+number)
	}
	b.shotBoth("person-extended", `#attributes`, "")

	// Delete the mapping; the extended field stays.
	b.do("the sync settings to delete", chromedp.Navigate(edit), chromedp.WaitVisible(`#mapping-rows`))
	b.do("delete", chromedp.Click(`[name="sync.map.0.remove"]`), chromedp.Click(`#save`), chromedp.WaitVisible(`#flash`))
	if m, e := stored(); len(m) != 0 || !slices.Equal(e, []string{"工号"}) {
		t.Fatalf("after deleting: mappings %v, extended fields %v", m, e)
	}
	if kinds := a.auditOf("demo", "admin.source.update"); len(kinds) != 3 {
		t.Fatalf("%d update audit events, want 3 (add, edit, delete)", len(kinds))
	}
	a.gw.Admin.Wait()
}

// TestConsoleSyncDingTalkDedicated: an owner creates a DingTalk source of the dedicated (专属)
// edition: without its own hosts the API's error says which, beside the field; with the
// simulator's hosts the page shows the values to paste and the connectivity test passes.
func TestConsoleSyncDingTalkDedicated(t *testing.T) {
	a := newAdminWorld(t)
	b := newConsoleBrowser(t, a, "zh-CN")
	b.logonWeCom("zhangsan")
	src, err := a.gw.Store.GetSource(a.ctx, "demo", "dingtalk")
	if err != nil {
		t.Fatal(err)
	}
	c, s := src.Config, src.Secrets

	b.do("new DingTalk source", chromedp.Navigate(a.base+"/console/e/demo/sources/new"), chromedp.Click(`#kind-dingtalk`), chromedp.WaitVisible(`#source-form`))
	b.eval(`document.getElementById("dingtalk.edition").value = "dedicated", ""`)
	b.fill(map[string]string{"id": "dt-dedicated", "name": "钉钉专属版", "dingtalk.corp_id": c["corp_id"], "dingtalk.app_key": c["app_key"],
		"dingtalk.app_secret": s["app_secret"], "dingtalk.agent_id": c["agent_id"]})
	b.do("create without the dedicated hosts", chromedp.Click(`#create`), chromedp.WaitVisible(`#form-error`))
	if e := b.eval(`document.querySelector('[name="dingtalk.oapi_base_url"] ~ .field-error') ? document.querySelector('[name="dingtalk.oapi_base_url"] ~ .field-error').textContent : ""`); !strings.Contains(e, "dedicated") {
		t.Fatalf("no error beside the OAPI base URL: %q (%q)", e, b.text(`main`))
	}
	if _, err := a.gw.Store.GetSource(a.ctx, "demo", "dt-dedicated"); err == nil {
		t.Fatal("a dedicated source without its hosts was stored")
	}
	if ed := b.eval(`document.getElementById("dingtalk.edition").value`); ed != "dedicated" {
		t.Fatalf("the form forgot the edition: %q", ed)
	}
	b.fill(map[string]string{"dingtalk.oapi_base_url": a.dURL, "dingtalk.api_base_url": a.dURL, "dingtalk.login_base_url": a.dURL})
	b.do("create", chromedp.Click(`#create`), chromedp.WaitVisible(`#console-values`))
	stored, err := a.gw.Store.GetSource(a.ctx, "demo", "dt-dedicated")
	if err != nil || stored.Config["edition"] != "dedicated" || stored.Config["oapi_base_url"] != a.dURL {
		t.Fatalf("stored: %+v %v", stored, err)
	}
	for id, want := range map[string]string{"v-callback": a.base + "/e/demo/sources/dt-dedicated/callback", "v-events": a.base + "/e/demo/sources/dt-dedicated/events"} {
		if got := b.text(`#` + id); got != want {
			t.Fatalf("%s %q, want %q", id, got, want)
		}
	}
	if ed := b.text(`#edition`); ed != "专属版" {
		t.Fatalf("the source's page names the edition %q", ed)
	}
	page := b.eval(`location.origin + location.pathname`)
	b.do("test connectivity", chromedp.Click(`#test`), chromedp.WaitVisible(`#checks`))
	if ok := b.eval(`String(!!document.querySelector("#report-ok"))`); ok != "true" {
		t.Fatalf("the dedicated source's test: %q", b.text(`#checks`))
	}
	if st := b.eval(`document.querySelector('#check-credentials').dataset.status`); st != "ok" {
		t.Fatalf("credentials check %q", st)
	}
	b.shotBoth("dingtalk-dedicated", `#report-ok`, page, chromedp.Navigate(page), chromedp.Click(`#test`))
	a.gw.Admin.Wait()
}
