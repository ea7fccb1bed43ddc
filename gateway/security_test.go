package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/broker"
	"github.com/qiao-gateway/qiao/federation/msgcrypt"
	"github.com/qiao-gateway/qiao/internal/config"
)

// postPasswords sends n password attempts at once from one browser (one CSRF cookie), each with
// the username and X-Forwarded-For that who(i) gives, and returns the statuses by count.
func postPasswords(t *testing.T, w *world, n int, who func(i int) (user, ip string)) map[int]int {
	t.Helper()
	b := newBrowser(t)
	_, page, _ := b.get(w.base+"/login/e/demo/s/local", "")
	tok := csrfOf(t, page)
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user, ip := who(i)
			form := url.Values{"csrf": {tok}, "username": {user}, "password": {"wrong-" + strconv.Itoa(i)}}
			req, _ := http.NewRequest("POST", w.base+"/login/e/demo/s/local/password", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if ip != "" {
				req.Header.Set("X-Forwarded-For", ip)
			}
			<-start
			resp, err := b.c.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return statuses
}

func trustLoopback(c *config.Config) { c.TrustedProxies = []string{"127.0.0.0/8", "::1/128"} }

// Concurrent wrong guesses: every attempt reserves its place in the counters before the argon2
// check, so however many arrive at once, at most the limit are checked.
func TestPasswordLockoutHoldsUnderConcurrency(t *testing.T) {
	w := newWorld(t, 10, t.TempDir(), true, trustLoopback)
	lim := w.gw.Broker.Passwords
	login := func(ip, pw string) int {
		b := newBrowser(t)
		_, page, _ := b.get(w.base+"/login/e/demo/s/local", "")
		form := url.Values{"csrf": {csrfOf(t, page)}, "username": {"zhangsan"}, "password": {pw}}
		req, _ := http.NewRequest("POST", w.base+"/login/e/demo/s/local/password", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", ip)
		resp, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Successes give their reservation back: an office behind one NAT signs in all day.
	for i := 0; i < MaxIPAttemptsForTest+5; i++ {
		if status := login("198.51.100.6", "pw"); status != 303 {
			t.Fatalf("sign-in %d from one IP: %d, want 303", i+1, status)
		}
	}

	before := lim.Checks()
	st := postPasswords(t, w, 60, func(int) (string, string) { return "zhangsan", "198.51.100.7" })
	if checked := lim.Checks() - before; checked > 5 {
		t.Fatalf("60 concurrent guesses at one account: %d password checks, want at most 5 (statuses %v)", checked, st)
	}
	// A refusal is 429 (locked) or, on a machine too busy to queue another argon2 check, 503
	// (shed before checking); either way the password was not tried.
	if st[429]+st[503] < 55 {
		t.Fatalf("statuses %v: want at least 55 refusals (429, or 503 when shed)", st)
	}
	if status := login("198.51.100.9", "pw"); status != 429 {
		t.Fatalf("locked account, right password: %d, want 429", status)
	}

	// One IP guessing at 60 different accounts at once: at most MaxIPFailures are checked.
	before = lim.Checks()
	st = postPasswords(t, w, 60, func(i int) (string, string) { return "user" + strconv.Itoa(i), "198.51.100.8" })
	if checked := lim.Checks() - before; checked > MaxIPAttemptsForTest {
		t.Fatalf("60 concurrent guesses from one IP: %d checks, want at most %d (statuses %v)", checked, MaxIPAttemptsForTest, st)
	}
	if st[429]+st[503] < 60-MaxIPAttemptsForTest {
		t.Fatalf("statuses %v: want at least %d refusals (429, or 503 when shed) for the IP", st, 60-MaxIPAttemptsForTest)
	}
}

// MaxIPAttemptsForTest is broker.MaxIPFailures, named here so the test reads as the rule.
const MaxIPAttemptsForTest = broker.MaxIPFailures

// A flood of password attempts from many addresses: each argon2 check holds 64 MiB, so the
// number running at once must be bounded, and with it the memory. Without the bound, 60 at once
// took the process past 4 GB.
func TestPasswordFloodMemoryIsBounded(t *testing.T) {
	w := newWorld(t, 10, t.TempDir(), true, trustLoopback)
	slots := w.gw.Broker.Passwords.Slots()
	// Give the heap earlier tests left back to the system and reset the peak (Linux: 5 >
	// clear_refs), so that the figure is this flood's alone.
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatalf("resetting the peak RSS: %v", err)
	}
	base := vmHWM(t)
	before := w.gw.Broker.Passwords.Checks()
	st := postPasswords(t, w, 60, func(i int) (string, string) {
		return "user" + strconv.Itoa(i), "203.0.113." + strconv.Itoa(i+1)
	})
	grew := vmHWM(t) - base
	checked := w.gw.Broker.Passwords.Checks() - before
	t.Logf("60 concurrent attempts, %d slots: %d checked, statuses %v, peak RSS grew %d MiB", slots, checked, st, grew>>20)
	if st[401]+st[503] != 60 {
		t.Fatalf("statuses %v: want each attempt refused as wrong (401) or busy (503)", st)
	}
	// The stated bound: 1 GiB over the flood, whatever the slot count (4 on 2 cores): each running
	// check holds 64 MiB and the garbage collector may keep as much again before it runs.
	bound := int64(1 << 30)
	if raceEnabled {
		bound *= 2 // the race detector's shadow memory for every byte argon2 touches
	}
	if grew > bound {
		t.Fatalf("peak RSS grew %d MiB during the flood, bound %d MiB (%d slots)", grew>>20, bound>>20, slots)
	}
}

// vmHWM is the process's peak resident set (VmHWM) in bytes.
func vmHWM(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatalf("this test reads /proc/self/status (Linux): %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
			return kb * 1024
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// publicPaths reach every route family the gateway serves.
var publicPaths = []string{
	"/", "/healthz", "/readyz", "/metrics", "/static/qiao.css", "/static/", "/e/demo/keys",
	"/e/demo/sources/wecom/events", "/e/demo/sources/wecom/callback", "/login", "/login/e/demo", "/login/e/demo/s/local",
	"/login/e/demo/s/local/password", "/login/done", "/logout",
	"/e/demo/.well-known/openid-configuration", "/e/demo/authorize", "/e/demo/authorize/continue", "/e/demo/oauth/token",
	"/e/demo/userinfo", "/e/demo/oauth/introspect", "/e/demo/revoke", "/e/demo/end_session", "/e/demo/keys",
	"/e/demo/saml/metadata", "/e/demo/saml/sso", "/e/demo/saml/slo", "/e/demo/saml/continue", "/demo-app/", "/demo-sp/",
}

func metricSeries(t *testing.T, base string) int {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "qiao_http_request_duration_seconds_count{") {
			n++
		}
	}
	return n
}

// The request line is the client's: an invented method or path must not become a new metrics
// series, or /metrics grows without bound (20,000 invented methods made it 93 MB).
func TestMetricsSeriesDoNotGrowOnJunkMethodsAndPaths(t *testing.T) {
	w := newWorld(t, 5, t.TempDir(), true)
	send := func(method, path string) {
		req, err := http.NewRequest(method, w.base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	round := func(tag string, n int) {
		for i := 0; i < n; i++ {
			method := fmt.Sprintf("JUNK%s%d", tag, i)
			for _, p := range publicPaths {
				send(method, p)
			}
			send(method, fmt.Sprintf("/no/such/%s/%d", tag, i))
			send("GET", fmt.Sprintf("/e/demo/no-such-%s-%d", tag, i))
		}
	}
	round("A", 2)
	metricSeries(t, w.base) // the scrape itself is a series, counted from the next one on
	first := metricSeries(t, w.base)
	round("B", 40)
	if after := metricSeries(t, w.base); after != first {
		t.Fatalf("junk methods and paths grew the request metric from %d to %d series", first, after)
	}
	resp, _ := http.Get(w.base + "/metrics")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "JUNK") || strings.Contains(string(body), "no-such") {
		t.Fatal("a client-sent method or path reached a metric label")
	}
}

// /static/ serves the embedded files, never a listing of them.
func TestStaticServesFilesNotListings(t *testing.T) {
	w := newWorld(t, 5, t.TempDir(), true)
	for path, want := range map[string]int{"/static/qiao.css": 200, "/static/": 404, "/static/.": 404, "/static//": 404, "/static/nope.css": 404} {
		resp, err := http.Get(w.base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
		if strings.Contains(string(body), "<a href=\"qiao.css\"") {
			t.Errorf("%s lists the directory", path)
		}
	}
}

// A login made in a browser that already holds a session gets a new session ID, and the old ID
// is dead: an ID known before the login (planted, say) is worthless after it.
func TestLoginRegeneratesTheSessionID(t *testing.T) {
	w := newWorld(t, 5, t.TempDir(), true)
	b := newBrowser(t)
	signIn := func() string {
		_, page, _ := b.get(w.base+"/login/e/demo/s/local", "")
		status, _, at := b.post(w.base+"/login/e/demo/s/local/password", url.Values{"csrf": {csrfOf(t, page)}, "username": {"zhangsan"}, "password": {"pw"}})
		if status != 200 || !strings.HasSuffix(at, "/login/done") {
			t.Fatalf("sign-in: %d at %s", status, at)
		}
		u, _ := url.Parse(w.base)
		for _, c := range b.c.Jar.Cookies(u) {
			if c.Name == w.gw.Sessions.CookieName {
				return c.Value
			}
		}
		t.Fatal("no session cookie after sign-in")
		return ""
	}
	first := signIn()
	second := signIn()
	if first == second {
		t.Fatal("a second login kept the session ID")
	}
	// The old ID, presented alone, is not signed in.
	jarless := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", w.base+"/login/done", nil)
	req.AddCookie(&http.Cookie{Name: w.gw.Sessions.CookieName, Value: first})
	resp, err := jarless.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 303 {
		t.Fatalf("the session ID from before the login still works: %d", resp.StatusCode)
	}
	req.Header.Del("Cookie")
	req.AddCookie(&http.Cookie{Name: w.gw.Sessions.CookieName, Value: second})
	resp, _ = jarless.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("the new session ID: %d", resp.StatusCode)
	}
}

// A return target a browser resolves off the gateway ends at the gateway's own page instead.
func TestLoginReturnStaysOnTheGateway(t *testing.T) {
	w := newWorld(t, 5, t.TempDir(), true)
	for _, ret := range []string{"/\t/evil.example", "/\\evil.example", "//evil.example", "https://evil.example/", "/\n/evil.example"} {
		b := newBrowser(t)
		_, page, _ := b.get(w.base+"/login/e/demo/s/local?"+url.Values{"return": {ret}}.Encode(), "")
		form := url.Values{"csrf": {csrfOf(t, page)}, "username": {"zhangsan"}, "password": {"pw"}, "return": {ret}}
		resp, err := b.c.PostForm(w.base+"/login/e/demo/s/local/password", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != 303 || loc != "/login/done" {
			t.Errorf("return %q: %d to %q, want 303 to /login/done", ret, resp.StatusCode, loc)
		}
	}
	b := newBrowser(t)
	_, page, _ := b.get(w.base+"/login/e/demo/s/local", "")
	form := url.Values{"csrf": {csrfOf(t, page)}, "username": {"zhangsan"}, "password": {"pw"}, "return": {"/e/demo/authorize/continue?id=x"}}
	resp, _ := b.c.PostForm(w.base+"/login/e/demo/s/local/password", form)
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != "/e/demo/authorize/continue?id=x" {
		t.Fatalf("a local return: %q", loc)
	}
}

// A callback replayed with its signature's hex in another case verifies (the comparison ignores
// case), so it must also be recognised as the same callback.
func TestEventReplayWithRecasedSignatureIsRefused(t *testing.T) {
	w := newWorld(t, 5, t.TempDir(), false)
	c, err := msgcrypt.New(w.ws.CallbackToken, w.ws.CallbackAESKey, w.ws.CorpID)
	if err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	plain := "<xml><ToUserName><![CDATA[" + w.ws.CorpID + "]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1</CreateTime>" +
		"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event><ChangeType><![CDATA[delete_user]]></ChangeType>" +
		"<UserID><![CDATA[recased]]></UserID></xml>"
	enc, sig, _ := c.Seal([]byte(plain), ts, "recase-nonce")
	body := "<xml><ToUserName><![CDATA[" + w.ws.CorpID + "]]></ToUserName><Encrypt><![CDATA[" + enc + "]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>"
	for i, s := range []string{sig, strings.ToUpper(sig), sig[:20] + strings.ToUpper(sig[20:])} {
		q := url.Values{"msg_signature": {s}, "timestamp": {ts}, "nonce": {"recase-nonce"}}
		resp, err := http.Post(w.base+"/e/demo/sources/wecom/events?"+q.Encode(), "text/xml", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := 403
		if i == 0 {
			want = 200
		}
		if resp.StatusCode != want {
			t.Fatalf("delivery %d (signature %q): %d, want %d", i, s, resp.StatusCode, want)
		}
	}
}
