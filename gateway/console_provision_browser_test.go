package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/federation/simkit"
)

// TestConsoleProvisioning: the demo's push into WeCom as an owner clicks it in the console — the
// target's settings with the secret masked, the parked people named by username with WeCom's
// errcode and message, the connectivity test, push now (a reconcile that repairs a change made in
// WeCom behind qiao's back) followed live to its end, the record of that repair (local data,
// WeCom before and after, the changed field highlighted), a retry of a parked person; an auditor
// sees it all and is offered no button that changes anything.
func TestConsoleProvisioning(t *testing.T) {
	a := newAdminWorld(t)
	ps := a.gw.Store.(directory.ProvisionStore)
	// The demo's initial push has put lisi into WeCom, and the admin world's local people without
	// mobile or email are parked (60129).
	for deadline := time.Now().Add(20 * time.Second); ; {
		a.wsim.Org().RLock()
		u := a.wsim.Org().User("lisi")
		a.wsim.Org().RUnlock()
		parked, err := ps.ListOutbox(a.ctx, "demo", directory.OutboxParked, 100)
		if err != nil {
			t.Fatal(err)
		}
		if u != nil && len(parked) == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lisi pushed: %v, parked: %d", u != nil, len(parked))
		}
		time.Sleep(50 * time.Millisecond)
	}

	b := newConsoleBrowser(t, a, "zh-CN")
	b.logonWeCom("zhangsan")
	b.do("the provisioning page", chromedp.Navigate(a.base+"/console/e/demo/"), chromedp.Click(`nav a[href$="/provisioning"]`), chromedp.WaitVisible(`#settings`))
	if sec := b.text(`#secrets`); !strings.Contains(sec, "contact_secret") || !strings.Contains(sec, "••••") {
		t.Fatalf("the secrets show %q", sec)
	}
	if body := b.text(`main`); strings.Contains(body, a.ws.ContactSecret) {
		t.Fatal("the contact secret is on the page")
	}
	if note := b.text(`#file-managed`); note == "" {
		t.Fatal("a file-managed target is not marked so")
	}
	// Parked people are named by their username, with WeCom's errcode and why.
	codes := b.eval(`[...document.querySelectorAll('#parked tbody tr')].map(r => r.children[3].textContent).join(",")`)
	if codes != "60129,60129,60129,60129,60129" || !strings.Contains(b.text(`#parked`), "neither a mobile number nor an email address") {
		t.Fatalf("parked errcodes %q:\n%s", codes, b.text(`#parked`))
	}
	if who := b.eval(`[...document.querySelectorAll('#parked a.who')].map(a => a.textContent).sort().join(",")`); !strings.Contains(who, "wang-admin") {
		t.Fatalf("the parked people are named %q", who)
	}

	// Test connectivity.
	b.do("test connectivity", chromedp.Click(`#test`), chromedp.WaitVisible(`#report`))
	if b.eval(`document.querySelector('#report-ok') ? "ok" : document.querySelector('#report').innerText`) != "ok" {
		t.Fatalf("the test says %q", b.text(`#report`))
	}
	b.shot("provisioning")

	// Someone renames lisi in WeCom behind qiao's back; push now repairs it. The simulator reads
	// the tree slowly once, so the page is seen following the running task.
	a.wsim.Org().RLock()
	drifted := a.wsim.Org().User("lisi").Clone()
	a.wsim.Org().RUnlock()
	drifted.Name = "李四（改）"
	if _, err := a.wsim.Org().PutUser(drifted, false); err != nil {
		t.Fatal(err)
	}
	a.wsim.Kit().AddFault(simkit.Fault{API: "department/list", LatencyMS: 1500, Count: 1})
	b.do("push now", chromedp.Click(`#push-now`), chromedp.WaitVisible(`#live`))
	if st := b.text(`#task-status`); st != "进行中" {
		t.Fatalf("a running task shows %q", st)
	}
	b.waitFor("the task's end", `!!document.querySelector('#task[data-status="succeeded"]')`)
	if counts := b.text(`#counts`); !strings.Contains(counts, "更新 1") {
		t.Fatalf("the finished task's counts: %q", counts)
	}
	a.wsim.Org().RLock()
	name := a.wsim.Org().User("lisi").Name
	a.wsim.Org().RUnlock()
	if name != "李四" {
		t.Fatalf("after the push lisi is %q in WeCom", name)
	}
	b.shot("provisioning-task")
	b.do("lisi's record", chromedp.Click(`#records-table tr[data-remote="lisi"] a`), chromedp.WaitVisible(`#remote`))
	if l := b.text(`#local`); !strings.Contains(l, "李四") {
		t.Fatalf("the local data: %q", l)
	}
	changed := b.eval(`[...document.querySelectorAll('#remote tr[data-changed]')].map(r => r.dataset.field + "=" + r.children[1].textContent + "→" + r.children[2].textContent).join(";")`)
	if changed != "name=李四（改）→李四" {
		t.Fatalf("changed fields: %q", changed)
	}
	b.shot("provisioning-record")

	// Retry one parked person: put back, pushed again, parked again with the same reason.
	b.do("back", chromedp.Navigate(a.base+"/console/e/demo/provisioning"), chromedp.WaitVisible(`#parked`))
	b.do("retry", chromedp.Click(`#parked tbody tr:first-child button`), chromedp.WaitVisible(`#flash`))
	if ev := a.auditOf("demo", "provisioning.retry"); len(ev) != 1 || ev[0].Actor != "user:zhangsan@demo" {
		t.Fatalf("retry audit = %+v", ev)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		parked, _ := ps.ListOutbox(a.ctx, "demo", directory.OutboxParked, 100)
		pending, _ := ps.ListOutbox(a.ctx, "demo", directory.OutboxPending, 100)
		if len(parked) == 5 && len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the retry: %d parked, %d pending", len(parked), len(pending))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The page in English.
	b.do("English", chromedp.Navigate(a.base+"/console/e/demo/provisioning?lang=en"), chromedp.WaitVisible(`#settings`))
	if h := b.text(`h1`); h != "Provisioning" {
		t.Fatalf("the English heading is %q", h)
	}
	b.lang = "en"
	b.shot("provisioning")
	b.lang = "zh-CN"

	// An auditor reads everything and is offered no change.
	b.as(a.sessionOf("demo", "li-auditor"))
	b.do("as an auditor", chromedp.Navigate(a.base+"/console/e/demo/provisioning?lang=zh-CN"), chromedp.WaitVisible(`#parked`))
	if n := b.eval(`String(document.querySelectorAll('#test, #push-now, #dry-run, #retry-all, #parked button').length)`); n != "0" {
		t.Fatalf("an auditor is offered %s change buttons", n)
	}
	if b.text(`#readonly`) == "" || b.text(`#tasks`) == "" {
		t.Fatal("the auditor's page lacks the read-only note or the tasks")
	}
	// A forged push is refused by the API and starts nothing.
	before, _ := ps.ListProvisionTasks(a.ctx, "demo", 100)
	b.postForm("/console/e/demo/provisioning/push")
	b.waitFor("the refusal", `document.querySelector("h1") && document.querySelector("h1").textContent === "无权操作"`)
	if after, _ := ps.ListProvisionTasks(a.ctx, "demo", 100); len(after) != len(before) {
		t.Fatalf("an auditor's forged push started a task (%d → %d)", len(before), len(after))
	}
	a.gw.Admin.Wait()
}
