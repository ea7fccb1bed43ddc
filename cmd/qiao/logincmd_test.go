package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/qiao-gateway/qiao/internal/browsertest"
)

// startDemo runs `qiao demo` in-process until the test ends and returns the gateway's URL.
func startDemo(t *testing.T) string {
	t.Helper()
	// A port freeAddr found free can be taken by another test before the demo binds it: then the
	// demo exits at once, and it is started again on other ports.
retry:
	for attempt := 1; ; attempt++ {
		addr, waddr, daddr := freeAddr(t), freeAddr(t), freeAddr(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		var out, errb syncBuffer
		go func() {
			done <- runMain(ctx, []string{"demo", "--addr", addr, "--wecom-addr", waddr, "--dingtalk-addr", daddr, "--users", "20", "--data", t.TempDir()}, &out, &errb)
		}()
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(out.String(), "qiao demo is ready") {
			select {
			case code := <-done:
				cancel()
				if attempt < 5 && strings.Contains(errb.String(), "address already in use") {
					t.Logf("demo attempt %d: %s", attempt, strings.TrimSpace(errb.String()))
					continue retry
				}
				t.Fatalf("demo exited with %d: %s %s", code, out.String(), errb.String())
			default:
			}
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("demo not ready: %s %s", out.String(), errb.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Cleanup(func() { cancel(); <-done })
		return "http://" + addr
	}
}

// runCLI runs a command line with stdin and returns its exit code and output, in the background.
func runCLI(ctx context.Context, stdin string, args ...string) (<-chan int, *syncBuffer, *syncBuffer) {
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		root := newRoot()
		root.SetArgs(args)
		root.SetIn(strings.NewReader(stdin))
		root.SetOut(&out)
		root.SetErr(&errb)
		if err := root.ExecuteContext(ctx); err != nil {
			errb.Write([]byte("qiao: " + err.Error() + "\n"))
			done <- 1
			return
		}
		done <- 0
	}()
	return done, &out, &errb
}

func waitFor(t *testing.T, what string, buf *syncBuffer, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := re.FindStringSubmatch(buf.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not printed:\n%s", what, buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitExit(t *testing.T, what string, done <-chan int, out, errb *syncBuffer) {
	t.Helper()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s\n%s", what, code, out.String(), errb.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not finish:\n%s\n%s", what, out.String(), errb.String())
	}
}

// userinfo asks the gateway who an access token is for.
func userinfo(t *testing.T, base, token string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/e/demo/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func TestQiaoLoginRefusesBadInput(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	if code, _, stderr := cli("login"); code != 2 || !strings.Contains(stderr, "--server is required") {
		t.Errorf("login without --server: exit %d %q", code, stderr)
	}
	if code, _, stderr := cli("login", "--server", "http://127.0.0.1:9", "--enterprise", "Not An ID"); code != 2 || !strings.Contains(stderr, "is not an enterprise ID") {
		t.Errorf("login with a bad enterprise ID: exit %d %q", code, stderr)
	}
	if code, out, _ := cli("logout"); code != 0 || !strings.Contains(out, "Not logged on.") {
		t.Errorf("logout without a logon: exit %d %q", code, out)
	}
}

// The reference SASE client against `qiao demo`, Chromium playing the person: qiao login --device
// (the verification page, the WeCom QR page, the confirmation), qiao token (stored, then refreshed
// and rotated), qiao login in the browser (asking for the enterprise ID; PKCE on a loopback port),
// qiao logout (revoked at the gateway, forgotten here).
func TestQiaoLoginTokenLogout(t *testing.T) {
	base := startDemo(t)
	cfgHome := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfgHome)
	t.Setenv("QIAO_KEYRING", "off") // the fallback file; this machine has no keyring anyway
	credFile := filepath.Join(cfgHome, "qiao", "credentials.json")
	ctx := context.Background()

	// --device: the code and the QR code in the terminal; the person approves in a browser.
	done, out, errb := runCLI(ctx, "", "login", "--server", base, "--enterprise", "demo", "--device")
	m := waitFor(t, "the device login's URL and code", out, regexp.MustCompile(`open\n  (\S+)\nand enter the code ([A-Z]{4}-[A-Z]{4})`))
	if !strings.Contains(out.String(), "█") {
		t.Fatalf("no QR code printed:\n%s", out.String())
	}
	if m[1] != base+"/e/demo/device" {
		t.Fatalf("verification URL %s", m[1])
	}
	b := browsertest.New(t)
	err := chromedp.Do(b,
		chromedp.Navigate(m[1]),
		chromedp.WaitVisible(`#user_code`),
		chromedp.SendKeys(`#user_code`, strings.ToLower(m[2])),
		chromedp.Click(`button[type="submit"]`),
		chromedp.WaitVisible(`ul.sources`),
		chromedp.Click(`a.button[href*="/s/wecom"]`),
		chromedp.WaitVisible(`img[alt^="QR code"]`),
		chromedp.Click(`button[value="zhangsan"]`),
		chromedp.WaitVisible(`#approve`),
		chromedp.Click(`#approve`),
	)
	if err != nil {
		loc, _ := chromedp.Run(b, chromedp.Location())
		t.Fatalf("%v (at %s)", err, loc)
	}
	waitExit(t, "qiao login --device", done, out, errb)
	if !strings.Contains(out.String(), "Logged on to "+base+"/e/demo as 张三 (zhangsan); the refresh token is in "+credFile) {
		t.Fatalf("login --device said:\n%s", out.String())
	}
	fi, err := os.Stat(credFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", fi, err)
	}

	token := func() string {
		t.Helper()
		done, out, errb := runCLI(ctx, "", "token")
		waitExit(t, "qiao token", done, out, errb)
		return strings.TrimSpace(out.String())
	}
	at1 := token()
	if st, ui := userinfo(t, base, at1); st != 200 || ui["preferred_username"] != "zhangsan" {
		t.Fatalf("the token qiao token printed: %d %v", st, ui)
	}
	if again := token(); again != at1 {
		t.Fatal("a token that has not expired was not reused")
	}
	// Expired (as far as the client knows): refreshed, and the rotated refresh token kept.
	var cr map[string]any
	raw, _ := os.ReadFile(credFile)
	_ = json.Unmarshal(raw, &cr)
	rt1 := cr["refresh_token"]
	cr["expiry"] = time.Now().Add(-time.Minute).Format(time.RFC3339)
	raw, _ = json.Marshal(cr)
	_ = os.WriteFile(credFile, raw, 0o600)
	at2 := token()
	raw, _ = os.ReadFile(credFile)
	_ = json.Unmarshal(raw, &cr)
	if at2 == at1 || cr["refresh_token"] == rt1 || cr["refresh_token"] == "" {
		t.Fatalf("refresh: token changed %v, refresh token rotated %v", at2 != at1, cr["refresh_token"] != rt1)
	}
	if st, _ := userinfo(t, base, at2); st != 200 {
		t.Fatalf("the refreshed token: %d", st)
	}

	// The browser flow, the enterprise ID asked for: a fresh browser logs on through WeCom.
	b2 := browsertest.New(t)
	opened := make(chan string, 1)
	orig := openBrowser
	openBrowser = func(u string) error { opened <- u; return nil }
	t.Cleanup(func() { openBrowser = orig })
	done, out, errb = runCLI(ctx, "demo\n", "login", "--server", base)
	var authURL string
	select {
	case authURL = <-opened:
	case <-time.After(30 * time.Second):
		t.Fatalf("no browser opened:\n%s\n%s", out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "Enterprise ID") || !strings.Contains(out.String(), authURL) ||
		!regexp.MustCompile(`redirect_uri=http%3A%2F%2F127\.0\.0\.1%3A[0-9]+%2Fcallback`).MatchString(authURL) ||
		!strings.Contains(authURL, "code_challenge_method=S256") {
		t.Fatalf("authorization URL %s\n%s", authURL, out.String())
	}
	err = chromedp.Do(b2,
		chromedp.Navigate(authURL),
		chromedp.WaitVisible(`ul.sources`),
		chromedp.Click(`a.button[href*="/s/wecom"]`),
		chromedp.WaitVisible(`img[alt^="QR code"]`),
		chromedp.Click(`button[value="zhangsan"]`),
		chromedp.WaitVisible(`#result`),
	)
	if err != nil {
		loc, _ := chromedp.Run(b2, chromedp.Location())
		t.Fatalf("%v (at %s)", err, loc)
	}
	waitExit(t, "qiao login", done, out, errb)
	if !strings.Contains(out.String(), "Logged on to "+base+"/e/demo as 张三 (zhangsan)") {
		t.Fatalf("login said:\n%s", out.String())
	}
	at3 := token()
	if st, _ := userinfo(t, base, at3); st != 200 {
		t.Fatalf("the browser login's token: %d", st)
	}

	// Logout revokes the grant at the gateway (its access tokens too) and forgets it here.
	done, out, errb = runCLI(ctx, "", "logout")
	waitExit(t, "qiao logout", done, out, errb)
	if st, _ := userinfo(t, base, at3); st != 401 {
		t.Fatalf("the access token after logout: %d", st)
	}
	if _, err := os.Stat(credFile); !os.IsNotExist(err) {
		t.Fatalf("credentials kept after logout: %v", err)
	}
	done, _, errb = runCLI(ctx, "", "token")
	if code := <-done; code != 1 || !strings.Contains(errb.String(), "not logged on") {
		t.Fatalf("token after logout: exit %d %s", code, errb.String())
	}
}
