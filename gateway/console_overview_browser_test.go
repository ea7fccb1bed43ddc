package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/qiao-gateway/qiao/directory"
)

// shotLangs saves the page in the browser's language, then the same address in English, and
// comes back to the language it had (QIAO_SCREENSHOTS only).
func (b *consoleBrowser) shotLangs(name, ready string) {
	b.t.Helper()
	if os.Getenv("QIAO_SCREENSHOTS") == "" {
		return
	}
	b.shot(name)
	loc, err := url.Parse(b.eval(`location.href`))
	if err != nil {
		b.fatal("the page's address", err)
	}
	saved := b.lang
	for _, l := range []string{"en", saved} {
		q := loc.Query()
		q.Set("lang", l)
		loc.RawQuery = q.Encode()
		b.do(name+" in "+l, chromedp.Navigate(loc.String()), chromedp.WaitVisible(ready))
		// The navigation can report done while the previous page still shows: wait for this one.
		b.waitFor(name+" in "+l, `document.documentElement.lang === "`+l+`" && !!document.querySelector(`+strconv.Quote(ready)+`)`)
		if l == "en" {
			b.lang = "en"
			b.shot(name)
			b.lang = saved
		}
	}
}

// TestConsoleOverview: after an owner's logon through WeCom, the overview counts it among the
// last 24 hours' logons (a chart of bars per hour), counts their live session, shows the last
// event received from the platform, and — once the connectivity test has run — that test's
// findings as each source's problems.
func TestConsoleOverview(t *testing.T) {
	a := newAdminWorld(t)
	b := newConsoleBrowser(t, a, "zh-CN")
	b.logonWeCom("zhangsan")
	if _, err := a.gw.Store.AddSourceEvent(a.ctx, &directory.SourceEvent{EnterpriseID: "demo", SourceID: "wecom", DedupeKey: "overview-1",
		EventType: "update_user", Payload: json.RawMessage(`{"UserID":"zhangsan"}`), Status: "pending"}); err != nil {
		t.Fatal(err)
	}

	b.do("the overview", chromedp.Navigate(a.base+"/console/e/demo/"), chromedp.WaitVisible(`#logon-chart`))
	num := func(sel string) int {
		t.Helper()
		n, err := strconv.Atoi(strings.TrimSpace(b.text(sel)))
		if err != nil {
			t.Fatalf("%s shows %q", sel, b.text(sel))
		}
		return n
	}
	if n := num(`#logons-ok`); n < 1 {
		t.Fatalf("logons in the last 24 hours: %d after a logon", n)
	}
	if n := num(`#sessions-live`); n < 1 {
		t.Fatalf("live sessions: %d while the owner's is live", n)
	}
	// The chart: 24 hours, and the current hour's bar has height.
	if n := b.eval(`String(document.querySelectorAll('#logon-chart g.hour').length)`); n != "24" {
		t.Fatalf("the chart has %s hours", n)
	}
	if h := b.eval(`String([...document.querySelectorAll('#logon-chart rect.bar-ok')].pop().getAttribute('height'))`); h == "0" || h == "" {
		t.Fatalf("the current hour's bar has height %q", h)
	}
	if ev := b.text(`tr[data-source="wecom"] .last-event`); !strings.Contains(ev, "update_user") {
		t.Fatalf("the last event shown: %q", ev)
	}
	if p := b.text(`tr[data-source="wecom"] .problems`); !strings.Contains(p, "尚未测试连通性") {
		t.Fatalf("problems before any connectivity test: %q", p)
	}

	// The API counts what the page shows, and a session ended is no longer counted.
	owner := a.sessionOf("demo", "zhao-owner")
	ov := a.call(owner, "GET", "/enterprises/demo/overview", "")
	if ov.status != 200 {
		t.Fatalf("overview: %d %s", ov.status, ov.body)
	}
	live := ov.json(t)["sessions_live"].(float64)
	if r := a.call(owner, "POST", "/enterprises/demo/users/zhao-owner/end-sessions", ""); r.status != 200 {
		t.Fatalf("end-sessions: %d %s", r.status, r.body)
	}
	owner = a.sessionOf("demo", "zhao-owner")
	if after := a.call(owner, "GET", "/enterprises/demo/overview", "").json(t)["sessions_live"].(float64); after != live {
		// one ended, one started
		t.Fatalf("live sessions %v, then %v after ending one and starting one", live, after)
	}

	// The connectivity test's findings become the source's problems.
	if r := a.call(owner, "POST", "/enterprises/demo/sources/wecom/test", ""); r.status != 200 {
		t.Fatalf("connectivity test: %d %s", r.status, r.body)
	}
	b.do("the overview again", chromedp.Navigate(a.base+"/console/e/demo/"), chromedp.WaitVisible(`#logon-chart`))
	p := b.text(`tr[data-source="wecom"] .problems`)
	if !strings.Contains(p, "连通性测试于") || strings.Contains(p, "尚未测试连通性") {
		t.Fatalf("problems after the connectivity test: %q", p)
	}
	b.shotLangs("overview", `#logon-chart`)
}

// authorizeStatus is the OpenID Provider's answer to an authorization request of client with
// redirect: a redirect (to the logon) when it accepts the redirect URI, 400 when it refuses it.
func (a *adminWorld) authorizeStatus(client, redirect string) int {
	a.t.Helper()
	q := url.Values{"client_id": {client}, "redirect_uri": {redirect}, "response_type": {"code"}, "scope": {"openid"}, "state": {"st-0123456789"},
		"nonce": {"n-0123456789"}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Get(a.base + "/e/demo/authorize?" + q.Encode())
	if err != nil {
		a.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestConsoleAppsEditDelete: an owner changes an OIDC client's redirect URI in the console (a bad
// one first: refused beside its field, nothing stored) and the OpenID Provider accepts the new one
// and refuses the old one at once; deletes it after a confirmation, and its secret no longer gets
// a token; edits a SAML service provider's name, NameID format and signing, and deletes it. A
// file-managed client and an auditor are offered neither, and a delete posted anyway is refused.
func TestConsoleAppsEditDelete(t *testing.T) {
	a := newAdminWorld(t)
	owner := a.sessionOf("demo", "zhao-owner")
	r := a.call(owner, "POST", "/enterprises/demo/clients", `{"id":"edit-me","name":"待改应用","type":"web","redirect_uris":["https://old.example/cb"],"grant_types":["authorization_code","refresh_token"]}`)
	if r.status != 201 {
		t.Fatalf("create the client: %d %s", r.status, r.body)
	}
	secret := r.json(t)["client_secret"].(string)
	// Its secret authenticates it at the token endpoint (the grant is not its: 400, not 401).
	if st := a.clientCredentials("demo", "edit-me", secret); st != http.StatusBadRequest {
		t.Fatalf("the new client at the token endpoint: %d, want 400 unauthorized_client", st)
	}
	if st := a.authorizeStatus("edit-me", "https://old.example/cb"); st < 300 || st >= 400 {
		t.Fatalf("authorize with the registered redirect URI: %d", st)
	}

	b := newConsoleBrowser(t, a, "zh-CN")
	b.logonWeCom("zhangsan")
	b.do("the client", chromedp.Navigate(a.base+"/console/e/demo/apps/clients/edit-me"), chromedp.WaitVisible(`#client-urls`))
	b.shotLangs("client", `#client-urls`)
	b.do("edit", chromedp.Click(`#edit`), chromedp.WaitVisible(`#client-edit-form`))
	if v := b.eval(`document.getElementById("redirect_uris").value`); v != "https://old.example/cb" {
		t.Fatalf("the edit form shows redirect URIs %q", v)
	}
	if b.eval(`String(document.getElementById("grant.refresh_token").checked && !document.getElementById("grant.client_credentials").checked)`) != "true" {
		t.Fatal("the edit form does not show the client's grant types")
	}
	b.eval(`document.getElementById("redirect_uris").value = "not a uri#frag", ""`)
	b.do("save a bad redirect URI", chromedp.Click(`#save`), chromedp.WaitVisible(`#form-error`))
	if e := b.eval(`document.querySelector('#redirect_uris ~ .field-error') ? document.querySelector('#redirect_uris ~ .field-error').textContent : ""`); e == "" {
		t.Fatalf("no error beside the redirect URIs: %q", b.text(`main`))
	}
	if c, err := a.gw.Store.GetClient(a.ctx, "demo", "edit-me"); err != nil || len(c.RedirectURIs) != 1 || c.RedirectURIs[0] != "https://old.example/cb" {
		t.Fatalf("a refused edit changed the client: %+v, %v", c, err)
	}
	b.eval(`document.getElementById("redirect_uris").value = "https://new.example/cb", ""`)
	b.do("save", chromedp.Click(`#save`), chromedp.WaitVisible(`#client-urls`))
	if uris := strings.TrimSpace(b.text(`#redirect-uris`)); uris != "https://new.example/cb" {
		t.Fatalf("redirect URIs after the edit %q", uris)
	}
	if st := a.authorizeStatus("edit-me", "https://new.example/cb"); st < 300 || st >= 400 {
		t.Fatalf("authorize with the new redirect URI: %d", st)
	}
	if st := a.authorizeStatus("edit-me", "https://old.example/cb"); st != 400 {
		t.Fatalf("authorize with the old redirect URI: %d, want 400", st)
	}
	if len(a.auditOf("demo", "admin.client.update")) == 0 {
		t.Fatal("no admin.client.update audit event")
	}

	// A file-managed client: no edit or delete, and the edit page is refused.
	b.do("a file-managed client", chromedp.Navigate(a.base+"/console/e/demo/apps/clients/ci-admin"), chromedp.WaitVisible(`#file-managed`))
	if n := b.eval(`String(document.querySelectorAll('#edit, #delete').length)`); n != "0" {
		t.Fatalf("a file-managed client offers %s changes", n)
	}
	b.do("its edit page", chromedp.Navigate(a.base+"/console/e/demo/apps/clients/ci-admin/edit"), chromedp.WaitVisible(`#ref`))

	// Delete, after the confirmation page.
	b.do("delete", chromedp.Navigate(a.base+"/console/e/demo/apps/clients/edit-me"), chromedp.Click(`#delete`), chromedp.WaitVisible(`#delete-form`))
	if eff := b.text(`#delete-effect`); !strings.Contains(eff, "刷新令牌") {
		t.Fatalf("the confirmation says %q", eff)
	}
	b.do("confirm", chromedp.Click(`#confirm-delete`), chromedp.WaitVisible(`#clients`))
	if f := b.text(`#flash`); !strings.Contains(f, "应用已删除") {
		t.Fatalf("after deleting: %q", f)
	}
	if _, err := a.gw.Store.GetClient(a.ctx, "demo", "edit-me"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("the deleted client is still stored: %v", err)
	}
	if st := a.clientCredentials("demo", "edit-me", secret); st != http.StatusUnauthorized {
		t.Fatalf("the deleted client's secret at the token endpoint: %d, want 401 invalid_client", st)
	}

	// A SAML service provider: edit, then delete.
	sp := newTestSP(t, "editsp", false, false)
	dir := t.TempDir()
	md := filepath.Join(dir, "editsp.xml")
	if err := os.WriteFile(md, []byte(sp.metadata()), 0o600); err != nil {
		t.Fatal(err)
	}
	b.do("a new SP", chromedp.Navigate(a.base+"/console/e/demo/apps/saml/new"), chromedp.WaitVisible(`#sp-form`),
		chromedp.SetUploadFiles(`#metadata_file`, []string{md}), chromedp.SendKeys(`#name`, "旧名字"),
		chromedp.Click(`#create`), chromedp.WaitVisible(`#sp-urls`))
	b.do("edit the SP", chromedp.Click(`#edit`), chromedp.WaitVisible(`#sp-edit-form`))
	if v := b.eval(`document.getElementById("name").value`); v != "旧名字" {
		t.Fatalf("the SP edit form shows name %q", v)
	}
	b.eval(`document.getElementById("name").value = "新名字", document.getElementById("nameid_format").value = "transient", document.getElementById("sign_response").checked = false, ""`)
	b.do("attributes", chromedp.SendKeys(`#attributes`, "mail=email"))
	b.do("save the SP", chromedp.Click(`#save`), chromedp.WaitVisible(`#sp-urls`))
	if h := b.text(`#sp-name`); h != "新名字" {
		t.Fatalf("the SP's name after the edit: %q", h)
	}
	got, err := a.gw.Store.GetServiceProvider(a.ctx, "demo", sp.entity)
	if err != nil || got.Name != "新名字" || got.NameIDFormat != "transient" || got.SignResponse || !got.SignAssertion || got.Attributes["mail"] != "email" || got.MetadataXML == "" {
		t.Fatalf("the edited SP: %+v, %v", got, err)
	}
	spPage := b.eval(`location.pathname`)

	// An auditor sees the SP without edit or delete; a delete posted anyway is refused.
	b.as(a.sessionOf("demo", "li-auditor"))
	b.do("the SP as an auditor", chromedp.Navigate(a.base+spPage), chromedp.WaitVisible(`#sp-urls`))
	if n := b.eval(`String(document.querySelectorAll('#edit, #delete').length)`); n != "0" {
		t.Fatalf("an auditor is offered %s changes", n)
	}
	b.postForm(spPage + "/delete")
	b.waitFor("the refusal", `!!document.querySelector("#ref")`)
	if _, err := a.gw.Store.GetServiceProvider(a.ctx, "demo", sp.entity); err != nil {
		t.Fatalf("an auditor's delete removed the SP: %v", err)
	}

	b.as(a.sessionOf("demo", "zhao-owner"))
	b.do("delete the SP", chromedp.Navigate(a.base+spPage), chromedp.Click(`#delete`), chromedp.WaitVisible(`#delete-form`),
		chromedp.Click(`#confirm-delete`), chromedp.WaitVisible(`#clients`))
	if _, err := a.gw.Store.GetServiceProvider(a.ctx, "demo", sp.entity); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("the deleted SP is still stored: %v", err)
	}
	if len(a.auditOf("demo", "admin.sp.update")) == 0 || len(a.auditOf("demo", "admin.sp.delete")) == 0 {
		t.Fatal("no admin.sp.update or admin.sp.delete audit event")
	}
	a.gw.Admin.Wait()
}
