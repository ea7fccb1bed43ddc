package gateway

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/qiao-gateway/qiao/demo"
	"github.com/qiao-gateway/qiao/internal/browsertest"
	"github.com/qiao-gateway/qiao/internal/config"
)

// TestPersonScansInThroughTheGateway: in Chromium, a person types the enterprise ID, chooses
// WeCom, "scans" as 张三 on the simulator's QR page and lands signed in on the gateway.
func TestPersonScansInThroughTheGateway(t *testing.T) {
	ctx := browsertest.New(t)
	w := newWorld(t, 40, t.TempDir(), true)
	err := chromedp.Do(ctx,
		chromedp.Navigate(w.base+"/login"),
		chromedp.WaitVisible(`#enterprise`),
		chromedp.SendKeys(`#enterprise`, "demo"),
		chromedp.Click(`button[type="submit"]`),
		chromedp.WaitVisible(`ul.sources`),
		chromedp.Click(`a.button[href*="/s/wecom"]`),
		chromedp.WaitVisible(`img[alt^="QR code"]`),
		chromedp.Click(`button[value="zhangsan"]`),
		chromedp.WaitVisible(`form[action="/logout"]`),
	)
	if err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(`main`))
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	if !strings.Contains(text, "张三") || !strings.HasSuffix(loc, "/login/done") {
		t.Fatalf("landed on %s showing %q", loc, text)
	}
}

// TestDemoAppsOneSessionInChromium: in Chromium, a person signs in to the demo's OIDC app with a
// WeCom scan, then opens the demo's SAML app and is signed in without scanning again (one SSO
// session); the SAML app shows the NameID and attributes of the assertion it received (posted by
// the IdP's self-submitting form, under the gateway's Content-Security-Policy).
func TestDemoAppsOneSessionInChromium(t *testing.T) {
	ctx := browsertest.New(t)
	w := newWorld(t, 40, t.TempDir(), true)
	c, _ := w.gw.Store.GetClient(w.ctx, "demo", "demo-app")
	(&demo.RP{Issuer: w.base + "/e/demo", ClientID: "demo-app", Secret: c.Secret, BaseURL: w.base + "/demo-app"}).Routes(w.gw.Mux)
	if err := (&demo.SP{BaseURL: w.base + "/demo-sp", IdPMetadataURL: w.base + "/e/demo/saml/metadata"}).Routes(w.gw.Mux); err != nil {
		t.Fatal(err)
	}
	err := chromedp.Do(ctx,
		chromedp.Navigate(w.base+"/demo-app/"),
		chromedp.Click(`a.button[href="login"]`),
		chromedp.WaitVisible(`ul.sources`),
		chromedp.Click(`a.button[href*="/s/wecom"]`),
		chromedp.WaitVisible(`img[alt^="QR code"]`),
		chromedp.Click(`button[value="zhangsan"]`),
		chromedp.WaitVisible(`#claims`),
	)
	if err != nil {
		t.Fatal(err)
	}
	claims, _ := chromedp.Run(ctx, chromedp.Text(`#claims`))
	zhang := w.user("zhangsan")
	if !strings.Contains(claims, "张三") || !strings.Contains(claims, zhang.ID) || !strings.Contains(claims, "wecom_qr") {
		t.Fatalf("the OIDC app shows %q", claims)
	}
	err = chromedp.Do(ctx,
		chromedp.Navigate(w.base+"/demo-sp/"),
		chromedp.Click(`a.button[href="login"]`),
		chromedp.WaitVisible(`#nameid`),
	)
	if err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ := chromedp.Run(ctx, chromedp.Text(`body`))
		t.Fatalf("%v; the browser is at %s showing %q", err, loc, body)
	}
	nameID, _ := chromedp.Run(ctx, chromedp.Text(`#nameid`))
	attrs, _ := chromedp.Run(ctx, chromedp.Text(`#attributes`))
	if strings.TrimSpace(nameID) != zhang.ID || !strings.Contains(attrs, "张三") || !strings.Contains(attrs, "zhangsan") {
		t.Fatalf("the SAML app shows NameID %q and attributes %q", nameID, attrs)
	}
}

// TestOIDCFormPostInChromium: response_mode=form_post in a real browser — the library's
// self-submitting page runs under the gateway's Content-Security-Policy (its handler allowed by
// hash) and posts the code to the relying party, which exchanges it.
func TestOIDCFormPostInChromium(t *testing.T) {
	ctx := browsertest.New(t)
	got := make(chan url.Values, 1)
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if r.Method == http.MethodPost {
			got <- r.PostForm
		}
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`<!doctype html><p id="received">received</p>`))
	}))
	t.Cleanup(rp.Close)
	w := newWorld(t, 40, t.TempDir(), true, func(c *config.Config) {
		c.Enterprises[0].Clients = append(c.Enterprises[0].Clients, config.Client{ID: "web-fp", Type: "web", Secret: "fp-secret",
			RedirectURIs: []string{rp.URL + "/cb"}})
	})
	q := url.Values{"client_id": {"web-fp"}, "response_type": {"code"}, "response_mode": {"form_post"}, "scope": {"openid profile"},
		"redirect_uri": {rp.URL + "/cb"}, "state": {"fp-state"}, "nonce": {"fp-nonce"}, "idp_hint": {"wecom"}}
	err := chromedp.Do(ctx,
		chromedp.Navigate(w.base+"/e/demo/authorize?"+q.Encode()),
		chromedp.WaitVisible(`img[alt^="QR code"]`),
		chromedp.Click(`button[value="zhangsan"]`),
		chromedp.WaitVisible(`#received`),
	)
	if err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("%v (at %s)", err, loc)
	}
	var form url.Values
	select {
	case form = <-got:
	default:
		t.Fatal("the relying party received no POST")
	}
	if form.Get("state") != "fp-state" || form.Get("code") == "" {
		t.Fatalf("form_post delivered %v", form)
	}
	req, _ := http.NewRequest("POST", w.base+"/e/demo/oauth/token", strings.NewReader(url.Values{"grant_type": {"authorization_code"},
		"code": {form.Get("code")}, "redirect_uri": {rp.URL + "/cb"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("web-fp", "fp-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("exchanging the posted code: %d", resp.StatusCode)
	}
}
