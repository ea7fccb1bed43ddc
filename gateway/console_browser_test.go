package gateway

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

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
	// A console walk is longer than the default minute of one browser test.
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(cancel)
	return &consoleBrowser{t: t, a: a, ctx: ctx, lang: lang}
}

// do runs steps, failing the test with where the browser is and what it shows.
func (b *consoleBrowser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.fatal(what, err)
	}
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
}
