package gateway

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/qiao-gateway/qiao/internal/browsertest"
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
