package gateway

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/qiao-gateway/qiao/demo"
	"github.com/qiao-gateway/qiao/internal/browsertest"
)

// pageFacts is what a crawl reads of the page a browser shows.
type pageFacts struct {
	URL, Lang, ContentType, Text, NoLangText string
	Styled, Back, Form                       bool
}

const readFacts = `(() => {
  const main = document.querySelector("main.card");
  let noLang = "";
  if (main) {
    const c = main.cloneNode(true);
    c.querySelectorAll("[lang]").forEach(e => e.remove());
    noLang = c.innerText;
  }
  return {
    URL: location.href,
    Lang: document.documentElement.lang,
    ContentType: document.contentType,
    Text: document.body ? document.body.innerText : "",
    NoLangText: noLang,
    Styled: !!main && getComputedStyle(main).borderRadius === "12px",
    Back: !!document.querySelector("a[data-back], a.button[href]"),
    Form: !!document.querySelector("form input[name=csrf]"),
  };
})()`

var (
	han = regexp.MustCompile(`\p{Han}`)
	// What an English page may show in Chinese: the demo's data (the enterprise's and 张三's
	// names), never the page's own words.
	demoData = strings.NewReplacer("演示企业", "", "张三", "")
	// English words of the pages' own that must not appear on a Chinese page.
	englishUI = regexp.MustCompile(`\b(Sign in|Sign out|Log on|Continue|Back|Go back|Cancel|Reference|Enterprise ID|refused|Could not|The request|Page not found|Unknown enterprise|Your apps)\b`)
)

// TestEveryPageIsAProductPageInBothLanguages: in Chromium, in Chinese and in English, a person
// walks every page the demo's flows reach — the start page, the enterprise entry, the source
// chooser, the broker's, the OpenID Provider's and the SAML IdP's error pages, an unknown path and
// an unknown enterprise's issuer URL, the password form, the app portal, the end_session
// confirmation and its cancel, the sign-out — and each is a styled product page in the person's
// language, never raw JSON or bare text; an error page carries its reference ID and a way back.
// With QIAO_SCREENSHOTS=DIR the pages are saved there as PNG (the README's screenshots).
func TestEveryPageIsAProductPageInBothLanguages(t *testing.T) {
	for _, lang := range []string{"zh-CN", "en"} {
		t.Run(lang, func(t *testing.T) {
			ctx := browsertest.NewLang(t, lang)
			w := newWorld(t, 40, t.TempDir(), true)
			if err := (&demo.SP{BaseURL: w.base + "/demo-sp", IdPMetadataURL: w.base + "/e/demo/saml/metadata"}).Routes(w.gw.Mux); err != nil {
				t.Fatal(err)
			}
			zh := lang == "zh-CN"
			check := func(name string, wantError bool) pageFacts {
				t.Helper()
				f, err := chromedp.Run(ctx, chromedp.Evaluate[pageFacts](readFacts))
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if dir := os.Getenv("QIAO_SCREENSHOTS"); dir != "" { // quality 100: PNG (below it, JPEG)
					if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
						_ = os.WriteFile(filepath.Join(dir, lang+"-"+strings.ReplaceAll(name, " ", "-")+".png"), png, 0o644)
					}
				}
				body := strings.TrimSpace(f.Text)
				switch {
				case f.ContentType != "text/html":
					t.Errorf("%s (%s): served as %s: %q", name, f.URL, f.ContentType, body)
				case strings.HasPrefix(body, "{") || strings.HasPrefix(body, "<"):
					t.Errorf("%s (%s): raw JSON or markup: %q", name, f.URL, body)
				case !f.Styled:
					t.Errorf("%s (%s): not a styled product page: %q", name, f.URL, body)
				case f.Lang != lang:
					t.Errorf("%s (%s): page language %q", name, f.URL, f.Lang)
				}
				if zh && englishUI.MatchString(f.NoLangText) {
					t.Errorf("%s (%s): English words on a Chinese page: %q", name, f.URL, englishUI.FindAllString(f.NoLangText, -1))
				}
				if !zh && han.MatchString(demoData.Replace(f.NoLangText)) {
					t.Errorf("%s (%s): Chinese on an English page: %q", name, f.URL, f.NoLangText)
				}
				if wantError {
					ref := map[bool]string{true: "参考编号", false: "Reference:"}[zh]
					if !strings.Contains(body, ref) || !f.Back {
						t.Errorf("%s (%s): an error page without a reference or a way back: %q", name, f.URL, body)
					}
				}
				return f
			}
			visit := func(name, path string, wantError bool) pageFacts {
				t.Helper()
				if err := chromedp.Do(ctx, chromedp.Navigate(w.base+path), chromedp.WaitReady("body")); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				return check(name, wantError)
			}
			// waitFor polls the page for cond, with a ceiling (a history navigation fires no load
			// event chromedp could wait for, and leaves its DOM queries stale).
			waitFor := func(what, cond string) {
				t.Helper()
				for deadline := time.Now().Add(10 * time.Second); ; {
					if ok, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](cond)); ok {
						return
					}
					if time.Now().After(deadline) {
						loc, _ := chromedp.Run(ctx, chromedp.Location())
						text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
						t.Fatalf("%s: not reached (at %s showing %q)", what, loc, text)
					}
				}
			}
			authz := func(client, redirect string) string {
				return "/e/demo/authorize?" + url.Values{"client_id": {client}, "redirect_uri": {redirect}, "response_type": {"code"},
					"scope": {"openid"}, "state": {"s"}}.Encode()
			}

			f := visit("start page", "/", false)
			if !f.Form || !strings.Contains(f.Text, map[bool]string{true: "企业 ID", false: "Enterprise ID"}[zh]) {
				t.Fatalf("the start page has no enterprise entry: %q", f.Text)
			}
			visit("enterprise entry", "/login", false)
			visit("unknown path", "/no/such/page", true)
			visit("unknown enterprise issuer", "/e/nosuch", true)
			visit("unknown enterprise discovery", "/e/nosuch/.well-known/openid-configuration", true)
			visit("unknown enterprise SAML", "/e/nosuch/saml/sso", true)
			visit("issuer URL", "/e/demo/", true)
			visit("unregistered redirect_uri", authz("demo-app", "http://evil.example/cb"), true)
			visit("unknown client", authz("no-such-app", "http://127.0.0.1/callback"), true)
			visit("SAML request without a message", "/e/demo/saml/sso", true)
			visit("broker unknown enterprise", "/login/e/nosuch", true)
			visit("broker unknown source", "/login/e/demo/s/nosuch", true)

			// The chooser: the sources' titles in the page's language, the password last.
			f = visit("source chooser", "/login/e/demo", false)
			order, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("ul.sources a")].map(a => new URL(a.href).pathname.split("/").pop())`))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(order, ",") != "dingtalk,wecom,local" {
				t.Errorf("chooser order %v, want the platforms first and the password last", order)
			}
			if want := map[bool]string{true: "使用演示密码登录", false: "Sign in with the demo password"}[zh]; !strings.Contains(f.Text, want) {
				t.Errorf("the chooser does not title the password source %q: %q", want, f.Text)
			}

			// Sign in with the password: the portal shows who and the apps.
			err = chromedp.Do(ctx, chromedp.Navigate(w.base+"/login/e/demo/s/local"), chromedp.WaitVisible(`#password`),
				chromedp.SendKeys(`#username`, "zhangsan"), chromedp.SendKeys(`#password`, "pw"), chromedp.Submit(`#password`),
				chromedp.WaitVisible(`#who`))
			if err != nil {
				t.Fatal(err)
			}
			f = check("portal", false)
			if !strings.Contains(f.Text, "张三") || !strings.Contains(f.Text, "Demo SAML app") || !strings.Contains(f.Text, "Demo web app") {
				t.Errorf("the portal does not show who is signed in, the SAML app and the OIDC app with a launch URL: %q", f.Text)
			}
			if f := visit("start page signed in", "/", false); !strings.Contains(f.Text, "张三") {
				t.Errorf("the start page of a signed-in person is not the portal: %q", f.Text)
			}

			// end_session without a hint asks first, and can be cancelled.
			f = visit("end_session confirmation", "/e/demo/end_session", false)
			if err := chromedp.Do(ctx, chromedp.Click(`#cancel`)); err != nil {
				t.Fatal(err)
			}
			// Back in history, to the portal, still signed in.
			waitFor("the portal after cancelling the sign-out", `location.pathname === "/" && !!document.querySelector("#who")`)

			// Sign out at the portal: back on the enterprise's sign-in, which stays remembered.
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('form[action="/logout"] button').click(), true`)); err != nil {
				t.Fatal(err)
			}
			waitFor("the enterprise's sign-in after signing out", `location.pathname === "/login/e/demo" && !!document.querySelector("ul.sources")`)
			check("after sign-out", false)
			visit("start page after sign-out", "/", false)
			if ent, err := chromedp.Run(ctx, chromedp.Value(`#enterprise`)); err != nil || ent != "demo" {
				t.Errorf("after signing out the start page forgot the enterprise: %q (%v)", ent, err)
			}
			visit("signed out", "/e/demo/logged-out", false)
		})
	}
}

// TestDemoSAMLAppSignsOutThroughSingleLogout: in Chromium, the demo's SAML app publishes a
// SingleLogoutService; its "Sign out" ends the qiao session through SAML single logout, and
// signing out at qiao ends the app's session (the IdP's LogoutRequest reaches it).
func TestDemoSAMLAppSignsOutThroughSingleLogout(t *testing.T) {
	ctx := browsertest.NewLang(t, "en")
	w := newWorld(t, 20, t.TempDir(), true)
	if err := (&demo.SP{BaseURL: w.base + "/demo-sp", IdPMetadataURL: w.base + "/e/demo/saml/metadata"}).Routes(w.gw.Mux); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(w.base + "/demo-sp/metadata")
	if err != nil {
		t.Fatal(err)
	}
	md, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(md), `SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="`+w.base+`/demo-sp/slo"`) {
		t.Fatalf("the demo SP's metadata has no SingleLogoutService:\n%s", md)
	}
	signIn := func() {
		t.Helper()
		err := chromedp.Do(ctx, chromedp.Navigate(w.base+"/demo-sp/"), chromedp.Click(`a.button[href="login"]`), chromedp.WaitVisible(`ul.sources`),
			chromedp.Click(`a.button[href*="/s/local"]`), chromedp.WaitVisible(`#password`),
			chromedp.SendKeys(`#username`, "zhangsan"), chromedp.SendKeys(`#password`, "pw"), chromedp.Submit(`#password`),
			chromedp.WaitVisible(`#nameid`))
		if err != nil {
			t.Fatal(err)
		}
	}
	at := func(what, cond string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; {
			if ok, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](cond)); ok {
				return
			}
			if time.Now().After(deadline) {
				loc, _ := chromedp.Run(ctx, chromedp.Location())
				text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
				t.Fatalf("%s: not reached (at %s showing %q)", what, loc, text)
			}
		}
	}
	// Sign out in the app: single logout through qiao, back to the app, signed out of both.
	signIn()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('form[action="logout"] button').click(), true`)); err != nil {
		t.Fatal(err)
	}
	at("the app after its sign-out", `location.pathname === "/demo-sp/" && !!document.querySelector("#signed-out")`)
	if err := chromedp.Do(ctx, chromedp.Navigate(w.base+"/login/done")); err != nil {
		t.Fatal(err)
	}
	at("qiao after the app's single logout", `location.pathname !== "/login/done" && !document.querySelector("#who")`)

	// Sign out at qiao: the browser visits the app's SingleLogoutService, which ends its session.
	signIn()
	if err := chromedp.Do(ctx, chromedp.Navigate(w.base+"/login/done"), chromedp.WaitVisible(`#who`)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('form[action="/logout"] button').click(), true`)); err != nil {
		t.Fatal(err)
	}
	at("qiao's sign-in after signing out", `location.pathname === "/login/e/demo"`)
	if err := chromedp.Do(ctx, chromedp.Navigate(w.base+"/demo-sp/"), chromedp.WaitVisible(`a.button[href="login"]`)); err != nil {
		t.Fatal(err)
	}
}
