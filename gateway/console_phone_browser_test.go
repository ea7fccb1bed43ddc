package gateway

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// TestConsoleOnAPhone: the console's main screens at a phone's size (390×844) in both languages:
// nothing wider than the screen (wide tables scroll inside their own box), the navigation on
// screen, and every screen's main content present.
func TestConsoleOnAPhone(t *testing.T) {
	a := newAdminWorld(t)
	b := newConsoleBrowser(t, a, "zh-CN")
	b.logonWeCom("zhangsan")
	screens := []struct{ path, ready string }{
		{"/console/e/demo/", "#overview-sources"},
		{"/console/e/demo/sources", "#sources"},
		{"/console/e/demo/sources/wecom", "#records"},
		{"/console/e/demo/sources/wecom/tasks", "#tasks"},
		{"/console/e/demo/people", "#people"},
		{"/console/e/demo/apps", "#sps"},
		{"/console/e/demo/audit", "main"},
		{"/console/e/demo/admins", "#admins"},
	}
	for _, lang := range []string{"zh-CN", "en"} {
		b.setLang(lang)
		b.lang = lang // the screenshots' names
		for _, s := range screens {
			b.do("open "+s.path+" on a phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(a.base+s.path), chromedp.WaitVisible(s.ready))
			if over := b.eval(`String(document.documentElement.scrollWidth - window.innerWidth)`); over != "0" && over[0] != '-' {
				t.Fatalf("%s (%s) is %s px wider than a phone's screen", s.path, lang, over)
			}
			if vis := b.eval(`String([...document.querySelectorAll('nav a')].filter(x => { const r = x.getBoundingClientRect(); return r.width > 0 && r.right <= window.innerWidth + 1; }).length)`); vis == "0" {
				t.Fatalf("%s (%s): no navigation link on screen", s.path, lang)
			}
		}
		b.do("the overview on a phone", chromedp.Navigate(a.base+"/console/e/demo/"), chromedp.WaitVisible(`#overview-sources`))
		b.shot("phone-overview")
	}
}
