// Package browsertest starts a headless Chromium (Debian's chromium package) for end-to-end tests
// through chromedp. Without a browser the tests skip, saying so — unless QIAO_REQUIRE_BROWSER=1
// (CI), where a missing browser fails them.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// New returns a browser context that lives until the test ends.
func New(t *testing.T) context.Context {
	t.Helper()
	return NewWith(t)
}

// NewLang is New with a browser that asks for lang (Accept-Language), as a person's would.
func NewLang(t *testing.T, lang string) context.Context {
	t.Helper()
	return NewWith(t, chromedp.Flag("accept-lang", lang), chromedp.Flag("lang", lang))
}

// NewWith is New with more options for the browser.
func NewWith(t *testing.T, more ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	path := os.Getenv("QIAO_CHROMIUM")
	if path == "" {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				path = p
				break
			}
		}
	}
	if path == "" {
		if os.Getenv("QIAO_REQUIRE_BROWSER") == "1" {
			t.Fatal("QIAO_REQUIRE_BROWSER=1 but no chromium found (apt-get install chromium)")
		}
		t.Skip("no chromium on this machine: browser test skipped (apt-get install chromium; CI runs it)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(420, 900),
	}
	opts = append(opts, more...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first run starts the browser and must not carry a timeout (it would stop the browser).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium at %s: %v", path, err)
	}
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancel)
	return tctx
}
