package gateway

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestConsoleAppsClients: an owner creates a web client in the console and sees its secret once
// (never in the address, gone when the page is opened again), with its issuer and discovery URL to
// copy; rotates it; creates a service client whose generated secret, then its rotated one, work at
// the token endpoint (the old one no longer does); disables and enables it. A file-managed client
// shows read-only.
func TestConsoleAppsClients(t *testing.T) {
	rotatedPage := `!!document.querySelector("#new-secret") && !!document.querySelector("#flash") && document.querySelector("#flash").textContent.includes("已轮换")`
	a := newAdminWorld(t)
	b := newConsoleBrowser(t, a, "zh-CN")
	b.logonWeCom("zhangsan")

	b.do("apps", chromedp.Navigate(a.base+"/console/e/demo/"), chromedp.Click(`nav a[href$="/apps"]`), chromedp.WaitVisible(`#clients`))
	if cur := b.eval(`document.querySelector('nav a[aria-current="page"]').textContent`); cur != "应用" {
		t.Fatalf("the navigation marks %q", cur)
	}
	if row := b.text(`#client-ci-admin`); !strings.Contains(row, "配置文件") {
		t.Fatalf("the file-managed client's row: %q", row)
	}
	b.do("a file-managed client", chromedp.Click(`#client-ci-admin a`), chromedp.WaitVisible(`#file-managed`))
	if n := b.eval(`String(document.querySelectorAll('#rotate-secret, #disable, #enable').length)`); n != "0" {
		t.Fatalf("a file-managed client offers %s changes", n)
	}

	// A web client: a bad redirect URI first, shown beside its field, nothing stored.
	b.do("new client", chromedp.Navigate(a.base+"/console/e/demo/apps"), chromedp.Click(`#new-client`), chromedp.WaitVisible(`#client-form`))
	b.fill(map[string]string{"id": "web-new", "name": "新网页", "redirect_uris": "not a uri#frag"})
	b.do("create with a bad redirect URI", chromedp.Click(`#create`), chromedp.WaitVisible(`#form-error`))
	if e := b.eval(`document.querySelector('#redirect_uris ~ .field-error') ? document.querySelector('#redirect_uris ~ .field-error').textContent : ""`); e == "" {
		t.Fatalf("no error beside the redirect URIs: %q", b.text(`main`))
	}
	if _, err := a.gw.Store.GetClient(a.ctx, "demo", "web-new"); err == nil {
		t.Fatal("a client with a bad redirect URI was stored")
	}
	b.eval(`document.getElementById("redirect_uris").value = "", ""`)
	b.do("create", chromedp.SendKeys(`#redirect_uris`, "https://app.example/cb"), chromedp.Click(`#create`), chromedp.WaitVisible(`#new-secret`))
	secret := b.text(`#v-secret`)
	stored, err := a.gw.Store.GetClient(a.ctx, "demo", "web-new")
	if err != nil || stored.Secret != secret || len(secret) < 20 {
		t.Fatalf("the secret shown %q is not the stored client's (%v)", secret, err)
	}
	if w := b.text(`#secret-warning`); !strings.Contains(w, "只显示这一次") {
		t.Fatalf("the secret's warning: %q", w)
	}
	if loc := b.eval(`location.href`); strings.Contains(loc, secret) {
		t.Fatalf("the secret is in the address %s", loc)
	}
	if got := b.text(`#v-issuer`); got != a.base+"/e/demo" {
		t.Fatalf("issuer %q", got)
	}
	if got := b.text(`#v-discovery`); got != a.base+"/e/demo/.well-known/openid-configuration" {
		t.Fatalf("discovery URL %q", got)
	}
	b.copy("v-discovery")
	b.shot("client-secret")
	// Opened again, the page has the masked secret only.
	b.do("the client again", chromedp.Navigate(a.base+"/console/e/demo/apps/clients/web-new"), chromedp.WaitVisible(`#client-urls`))
	if strings.Contains(b.text(`body`), secret) || b.eval(`String(!!document.querySelector("#new-secret"))`) != "false" {
		t.Fatal("the secret is shown a second time")
	}
	if uris := strings.TrimSpace(b.text(`#redirect-uris`)); uris != "https://app.example/cb" {
		t.Fatalf("redirect URIs %q", uris)
	}
	b.do("rotate", chromedp.Click(`#rotate-secret`))
	b.waitFor("the rotated secret's page", rotatedPage)
	if rotated := b.text(`#v-secret`); rotated == secret || rotated == "" {
		t.Fatalf("the rotated secret %q", rotated)
	}

	// A service client: its secrets at the token endpoint.
	b.do("new service client", chromedp.Navigate(a.base+"/console/e/demo/apps/clients/new"), chromedp.WaitVisible(`#client-form`))
	b.fill(map[string]string{"id": "svc-console", "name": "报表"})
	b.eval(`document.getElementById("type").value = "service", ""`)
	b.do("create the service client", chromedp.Click(`#create`), chromedp.WaitVisible(`#new-secret`))
	first := b.text(`#v-secret`)
	if st := a.clientCredentials("demo", "svc-console", first); st != http.StatusOK {
		t.Fatalf("the created secret at the token endpoint: %d", st)
	}
	if g := b.text(`#grant-types`); g != "client_credentials" {
		t.Fatalf("a service client's grant types %q", g)
	}
	// The creation's answer page shows a secret too: wait for the rotation's own page.
	b.do("rotate the service client's secret", chromedp.Click(`#rotate-secret`))
	b.waitFor("the rotated secret's page", rotatedPage)
	second := b.text(`#v-secret`)
	if st := a.clientCredentials("demo", "svc-console", second); st != http.StatusOK {
		t.Fatalf("the rotated secret at the token endpoint: %d", st)
	}
	if st := a.clientCredentials("demo", "svc-console", first); st == http.StatusOK {
		t.Fatal("the secret before rotation still works")
	}
	b.do("disable", chromedp.Navigate(a.base+"/console/e/demo/apps/clients/svc-console"), chromedp.Click(`#disable`), chromedp.WaitVisible(`#enable`))
	if st := a.clientCredentials("demo", "svc-console", second); st == http.StatusOK {
		t.Fatal("a disabled client got a token")
	}
	b.do("enable", chromedp.Click(`#enable`), chromedp.WaitVisible(`#disable`))
	if st := a.clientCredentials("demo", "svc-console", second); st != http.StatusOK {
		t.Fatalf("the enabled client at the token endpoint: %d", st)
	}
	for _, kind := range []string{"admin.client.create", "admin.client.disable", "admin.client.enable"} {
		if len(a.auditOf("demo", kind)) == 0 {
			t.Fatalf("no %s audit event", kind)
		}
	}
	a.gw.Admin.Wait()
}

// TestConsoleAppsSAMLAndKeys: an owner registers a SAML service provider by uploading its
// metadata file (a bad file first: the API's error beside the input, nothing stored) and sees its
// ACS and the IdP's URLs on its page; the keys page lists the signing keys with no rotate button
// for a non-operator; an auditor sees apps and keys and is offered no change, and a change posted
// anyway is refused; an operator rotates the keys.
func TestConsoleAppsSAMLAndKeys(t *testing.T) {
	a := newAdminWorld(t)
	b := newConsoleBrowser(t, a, "zh-CN")
	b.logonWeCom("zhangsan")

	spsBefore, _ := a.gw.Store.ListServiceProviders(a.ctx, "demo")
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.xml")
	if err := os.WriteFile(bad, []byte("<not-metadata/>"), 0o600); err != nil {
		t.Fatal(err)
	}
	b.do("new SP", chromedp.Navigate(a.base+"/console/e/demo/apps"), chromedp.Click(`#new-sp`), chromedp.WaitVisible(`#sp-form`))
	b.do("upload a bad file", chromedp.SetUploadFiles(`#metadata_file`, []string{bad}), chromedp.SendKeys(`#entity_id`, "https://bad.test/metadata"),
		chromedp.Click(`#create`), chromedp.WaitVisible(`#sp-form .field-error`))
	if e := b.eval(`document.querySelector('#metadata_file ~ .field-error') ? document.querySelector('#metadata_file ~ .field-error').textContent : ""`); e == "" {
		t.Fatalf("no error beside the metadata file: %q", b.text(`main`))
	}
	if sps, _ := a.gw.Store.ListServiceProviders(a.ctx, "demo"); len(sps) != len(spsBefore) {
		t.Fatalf("a bad upload stored a service provider: %d, before %d", len(sps), len(spsBefore))
	}

	sp := newTestSP(t, "wiki", false, false)
	good := filepath.Join(dir, "wiki.xml")
	if err := os.WriteFile(good, []byte(sp.metadata()), 0o600); err != nil {
		t.Fatal(err)
	}
	b.do("upload the metadata", chromedp.Navigate(a.base+"/console/e/demo/apps/saml/new"), chromedp.WaitVisible(`#sp-form`),
		chromedp.SetUploadFiles(`#metadata_file`, []string{good}), chromedp.SendKeys(`#name`, "维基"),
		chromedp.Click(`#create`), chromedp.WaitVisible(`#sp-urls`))
	if got := b.text(`#entity-id`); got != sp.entity {
		t.Fatalf("entity ID %q, want %q", got, sp.entity)
	}
	if acs := b.text(`#acs`); !strings.Contains(acs, sp.acs) {
		t.Fatalf("the SP's page shows ACS %q, want %q", acs, sp.acs)
	}
	if got := b.text(`#v-idp-sso`); got != a.base+"/e/demo/saml/sso" {
		t.Fatalf("IdP SSO URL %q", got)
	}
	if got := b.text(`#v-idp-metadata`); got != a.base+"/e/demo/saml/metadata" {
		t.Fatalf("IdP metadata URL %q", got)
	}
	if _, err := a.gw.Store.GetServiceProvider(a.ctx, "demo", sp.entity); err != nil {
		t.Fatalf("the uploaded SP is not stored: %v", err)
	}
	b.shotBoth("sp", `#sp-urls`, "")
	spPage := b.eval(`location.pathname`)
	b.do("the apps list", chromedp.Navigate(a.base+"/console/e/demo/apps"), chromedp.WaitVisible(`#sps`))
	if row := b.text(`#sps`); !strings.Contains(row, "维基") {
		t.Fatalf("the SP list: %q", row)
	}
	b.shotBoth("apps", `#sps`, "")

	// By URL: the console shows how the fetch went; the URL fails, "fetch now" says why and
	// keeps when it last went well.
	urlSP := newTestSP(t, "mdurl", false, false)
	var broken atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/samlmetadata+xml")
		_, _ = w.Write([]byte(urlSP.metadata()))
	}))
	defer srv.Close()
	b.do("an SP by URL", chromedp.Navigate(a.base+"/console/e/demo/apps/saml/new"), chromedp.WaitVisible(`#sp-form`),
		chromedp.SendKeys(`#metadata_url`, srv.URL+"/md"), chromedp.SendKeys(`#entity_id`, urlSP.entity),
		chromedp.Click(`#create`), chromedp.WaitVisible(`#metadata-fetch`))
	if st := b.text(`#fetch-status`); st != "通过" {
		t.Fatalf("the first fetch: %q", b.text(`#metadata-fetch`))
	}
	if acs := b.text(`#acs`); !strings.Contains(acs, urlSP.acs) {
		t.Fatalf("the fetched ACS %q, want %q", acs, urlSP.acs)
	}
	broken.Store(true)
	b.do("fetch now", chromedp.Click(`#fetch-now`), chromedp.WaitVisible(`#fetch-error`))
	if f := b.text(`#metadata-fetch`); b.text(`#fetch-status`) != "错误" || !strings.Contains(f, "503") || strings.Contains(f, "从未") {
		t.Fatalf("the failed fetch: %q", f)
	}

	// Keys: listed; an owner who is not an operator is offered no rotation.
	b.do("keys", chromedp.Click(`nav a[href$="/keys"]`), chromedp.WaitVisible(`#keys`))
	if n := b.eval(`String(document.querySelectorAll('#keys tbody tr[data-state="active"]').length)`); n == "0" {
		t.Fatalf("no active key listed: %q", b.text(`#keys`))
	}
	if n := b.eval(`String(document.querySelectorAll('#rotate').length)`); n != "0" {
		t.Fatal("a non-operator is offered key rotation")
	}
	b.shotBoth("keys", `#keys`, "")

	// The auditor: everything readable, nothing offered; a forged change is the API's 403.
	b.as(a.sessionOf("demo", "li-auditor"))
	b.do("the auditor's apps", chromedp.Navigate(a.base+"/console/e/demo/apps"), chromedp.WaitVisible(`#sps`), chromedp.WaitVisible(`#clients`))
	if n := b.eval(`String(document.querySelectorAll('#new-client, #new-sp').length)`); n != "0" {
		t.Fatalf("the auditor is offered %s creations", n)
	}
	b.do("the auditor's SP", chromedp.Navigate(a.base+spPage), chromedp.WaitVisible(`#sp-urls`))
	if n := b.eval(`String(document.querySelectorAll('main form').length)`); n != "0" {
		t.Fatalf("the auditor is offered %s changes on an SP", n)
	}
	b.do("the auditor's client", chromedp.Navigate(a.base+"/console/e/demo/apps/clients/ci-read"), chromedp.WaitVisible(`#client-urls`))
	if n := b.eval(`String(document.querySelectorAll('main form').length)`); n != "0" {
		t.Fatalf("the auditor is offered %s changes on a client", n)
	}
	b.do("the auditor's keys", chromedp.Navigate(a.base+"/console/e/demo/keys"), chromedp.WaitVisible(`#keys`))
	if n := b.eval(`String(document.querySelectorAll('main form').length)`); n != "0" {
		t.Fatalf("the auditor is offered %s changes on the keys", n)
	}
	b.postForm(spPage + "/disable")
	b.waitFor("the auditor's refusal", `!!document.querySelector("#ref") && document.querySelector("h1").textContent === "无权操作"`)
	if got, _ := a.gw.Store.GetServiceProvider(a.ctx, "demo", sp.entity); got == nil || got.Disabled {
		t.Fatal("the auditor disabled the SP")
	}

	// An operator rotates the keys: the active ones change.
	op := a.operatorOf()
	b.as(op)
	b.do("the operator's keys", chromedp.Navigate(a.base+"/console/e/demo/keys"), chromedp.WaitVisible(`#rotate`))
	activeKids := `[...document.querySelectorAll('#keys tbody tr[data-state="active"] code')].map(c => c.textContent).sort().join(",")`
	before := b.eval(activeKids)
	b.do("rotate", chromedp.Click(`#rotate`), chromedp.WaitVisible(`#flash`))
	if after := b.eval(activeKids); after == before || after == "" {
		t.Fatalf("the active keys before %q and after rotation %q", before, after)
	}
	if n := b.eval(`String(document.querySelectorAll('#keys tbody tr[data-state="retiring"]').length)`); n == "0" {
		t.Fatal("no retiring key after rotation")
	}
	a.gw.Admin.Wait()
}
