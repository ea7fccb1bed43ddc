package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/federation/simorg"
)

// browser is an HTTP client with a cookie jar that follows redirects by hand, so a test can act
// on the simulator's login page as a person would.
type browser struct {
	t   *testing.T
	c   *http.Client
	ua  string
	log []string
	// stop, when set, is a URL prefix (a relying party's redirect URI) get does not fetch: it
	// returns there with status 0.
	stop string
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// get fetches u and follows redirects; on a simulator login page it "scans" as who.
func (b *browser) get(u, who string) (int, string, string) {
	b.t.Helper()
	for i := 0; i < 10; i++ {
		if strings.Contains(u, "/wwlogin/sso/login?") || strings.Contains(u, "/oauth2/auth?") || strings.Contains(u, "/connect/oauth2/authorize?") {
			u = strings.TrimSuffix(u, "#wechat_redirect") + "&sim_user=" + url.QueryEscape(who)
		}
		if b.stop != "" && strings.HasPrefix(u, b.stop) {
			b.log = append(b.log, u)
			return 0, "", u
		}
		req, _ := http.NewRequest("GET", u, nil)
		if b.ua != "" {
			req.Header.Set("User-Agent", b.ua)
		}
		resp, err := b.c.Do(req)
		if err != nil {
			b.t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		b.log = append(b.log, u)
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			next, _ := resp.Request.URL.Parse(resp.Header.Get("Location"))
			u = next.String()
			continue
		}
		return resp.StatusCode, string(body), u
	}
	b.t.Fatal("redirect loop")
	return 0, "", ""
}

func (b *browser) post(u string, form url.Values) (int, string, string) {
	b.t.Helper()
	resp, err := b.c.PostForm(u, form)
	if err != nil {
		b.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		next, _ := resp.Request.URL.Parse(resp.Header.Get("Location"))
		return b.get(next.String(), "")
	}
	return resp.StatusCode, string(body), u
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, html string) string {
	m := csrfRe.FindStringSubmatch(html)
	if m == nil {
		t.Fatalf("no CSRF token in page:\n%s", html)
	}
	return m[1]
}

func TestPasswordLogin(t *testing.T) {
	w := newWorld(t, 20, t.TempDir(), true)
	b := newBrowser(t)
	status, page, at := b.get(w.base+"/login?enterprise=demo&idp_hint=local", "")
	if status != 200 || !strings.Contains(page, `name="password"`) || !strings.HasSuffix(strings.SplitN(at, "?", 2)[0], "/login/e/demo/s/local") {
		t.Fatalf("password form: %d at %s", status, at)
	}
	form := url.Values{"csrf": {csrfOf(t, page)}, "username": {"zhangsan"}, "password": {"wrong"}}
	action := w.base + "/login/e/demo/s/local/password"
	if status, page, _ := b.post(action, form); status != 401 || !strings.Contains(page, "用户名或密码错误") {
		t.Fatalf("wrong password: %d", status)
	}
	form.Set("username", "nobody")
	if status, page, _ := b.post(action, form); status != 401 || !strings.Contains(page, "用户名或密码错误") {
		t.Fatalf("unknown user must look like a wrong password: %d", status)
	}
	form.Set("username", "zhangsan")
	form.Set("password", "pw")
	form.Del("csrf")
	if status, _, _ := b.post(action, form); status != 403 {
		t.Fatalf("missing CSRF: %d", status)
	}
	form.Set("csrf", csrfOf(t, page))
	status, page, at = b.post(action, form)
	if status != 200 || !strings.Contains(page, "张三") || !strings.HasSuffix(at, "/login/done") {
		t.Fatalf("right password: %d at %s", status, at)
	}
	ok, _ := w.gw.Store.ListAuditEvents(w.ctx, directory.AuditQuery{EnterpriseID: "demo", Kind: "login."})
	if len(ok) < 3 || ok[0].Kind != "login.success" || ok[0].Reason != "pwd" || ok[1].Kind != "login.failure" {
		t.Fatalf("audit = %+v", ok[:2])
	}
	// Five failures lock the account, even for the right password afterwards.
	b2 := newBrowser(t)
	_, page, _ = b2.get(w.base+"/login/e/demo/s/local", "")
	tok := csrfOf(t, page)
	for i := 0; i < 5; i++ {
		b2.post(action, url.Values{"csrf": {tok}, "username": {"zhangsan"}, "password": {"nope"}})
	}
	if status, page, _ := b2.post(action, url.Values{"csrf": {tok}, "username": {"zhangsan"}, "password": {"pw"}}); status != 429 || !strings.Contains(page, "15") {
		t.Fatalf("locked account: %d", status)
	}
	// English when the browser asks for it.
	req, _ := http.NewRequest("GET", w.base+"/login?change=1", nil)
	req.Header.Set("Accept-Language", "en-US,en;q=0.9")
	resp, _ := http.DefaultClient.Do(req)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "Enterprise ID") || !strings.Contains(string(body), `lang="en"`) {
		t.Fatal("English page not served")
	}
}

func TestWeComQRLoginAndRefusals(t *testing.T) {
	w := newWorld(t, 40, t.TempDir(), true)
	b := newBrowser(t)
	status, page, at := b.get(w.base+"/login?enterprise=demo&idp_hint=wecom", "zhangsan")
	if status != 200 || !strings.Contains(page, "张三") || !strings.HasSuffix(at, "/login/done") {
		t.Fatalf("WeCom QR login: %d at %s (%v)", status, at, b.log)
	}
	// The callback the simulator redirected to, replayed: the state is single use.
	var cb string
	for _, u := range b.log {
		if strings.Contains(u, "/sources/wecom/callback?") {
			cb = u
		}
	}
	if status, page, _ := b.get(cb, ""); status != 400 || !strings.Contains(page, "已过期或已使用") {
		t.Fatalf("replayed callback: %d", status)
	}
	audit, _ := w.gw.Store.ListAuditEvents(w.ctx, directory.AuditQuery{EnterpriseID: "demo", Kind: "login.success"})
	if len(audit) != 1 || audit[0].Reason != "wecom_qr" || audit[0].SourceID != "wecom" {
		t.Fatalf("audit = %+v", audit)
	}
	// A state started in one browser and completed in another.
	a, other := newBrowser(t), newBrowser(t)
	resp, _ := a.c.Get(w.base + "/login/e/demo/s/wecom")
	authURL := resp.Header.Get("Location")
	resp.Body.Close()
	resp, _ = a.c.Get(authURL + "&sim_user=zhangsan")
	callback := resp.Header.Get("Location")
	resp.Body.Close()
	if status, page, _ := other.get(callback, ""); status != 400 || !strings.Contains(page, "不是在此浏览器中发起") {
		t.Fatalf("foreign browser: %d", status)
	}
	// Two logins started in two tabs of one browser both complete.
	tab := func() string {
		resp, _ := a.c.Get(w.base + "/login/e/demo/s/wecom")
		au := resp.Header.Get("Location")
		resp.Body.Close()
		resp, _ = a.c.Get(au + "&sim_user=zhangsan")
		resp.Body.Close()
		return resp.Header.Get("Location")
	}
	first, second := tab(), tab()
	for _, cbu := range []string{second, first} {
		if status, page, _ := a.get(cbu, ""); status != 200 || !strings.Contains(page, "张三") {
			t.Fatalf("a login in one of two tabs failed: %d", status)
		}
	}
	// The callback arriving on another host than the configured callback domain.
	resp, _ = a.c.Get(w.base + "/login/e/demo/s/wecom")
	authURL = resp.Header.Get("Location")
	resp.Body.Close()
	resp, _ = a.c.Get(authURL + "&sim_user=zhangsan")
	callback = resp.Header.Get("Location")
	resp.Body.Close()
	req, _ := http.NewRequest("GET", callback, nil)
	req.Host = "localhost.evil:1"
	u, _ := url.Parse(callback)
	for _, c := range a.c.Jar.Cookies(u) {
		req.AddCookie(c)
	}
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("wrong callback host: %d", resp.StatusCode)
	}
	// Refusals, each on the error page, none with a session.
	o := w.wsim.Org()
	if _, err := o.PutUser(&simorg.User{UserID: "unsynced", Name: "未同步", Depts: []int{2}, Status: simorg.StatusActive}, true); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, who string
		status    int
		text      string
	}{
		{"declined", "@deny", 401, "已取消"},
		{"outside the corp", "@outsider", 403, "不属于本企业"},
		{"not in the synced directory", "unsynced", 403, "不在本企业已同步的通讯录"},
	}
	for _, tc := range cases {
		nb := newBrowser(t)
		status, page, _ := nb.get(w.base+"/login/e/demo/s/wecom", tc.who)
		if status != tc.status || !strings.Contains(page, tc.text) || !strings.Contains(page, "<code>") {
			t.Errorf("%s: %d", tc.name, status)
		}
		if _, page, _ := nb.get(w.base+"/login/done", ""); strings.Contains(page, "退出登录") {
			t.Errorf("%s: a session was opened", tc.name)
		}
	}
	// A disabled local user.
	zs := w.user("zhangsan")
	zs.Status = directory.UserDisabled
	w.gw.Store.UpdateUser(w.ctx, zs)
	if status, page, _ := newBrowser(t).get(w.base+"/login/e/demo/s/wecom", "zhangsan"); status != 403 || !strings.Contains(page, "已停用") {
		t.Fatalf("disabled user: %d", status)
	}
	zs.Status = directory.UserActive
	w.gw.Store.UpdateUser(w.ctx, zs)
	// An upstream error.
	http.Post(w.wURL+"/_sim/faults", "application/json", strings.NewReader(`{"api":"auth/getuserinfo","errcode":40029,"count":1}`))
	if status, _, _ := newBrowser(t).get(w.base+"/login/e/demo/s/wecom", "zhangsan"); status != 502 {
		t.Fatalf("upstream error: %d", status)
	}
	// A closed source.
	src, _ := w.gw.Store.GetSource(w.ctx, "demo", "wecom")
	src.Enabled = false
	w.gw.Store.PutSource(w.ctx, src)
	if status, _, _ := newBrowser(t).get(w.base+"/login/e/demo/s/wecom", "zhangsan"); status != 403 {
		t.Fatalf("closed source: %d", status)
	}
	// Unknown enterprise, oversized state.
	if status, _, _ := newBrowser(t).get(w.base+"/login/e/nope", ""); status != 404 {
		t.Fatalf("unknown enterprise: %d", status)
	}
	if status, _, _ := newBrowser(t).get(w.base+"/e/demo/sources/dingtalk/callback?code=x&state="+strings.Repeat("a", 500), ""); status != 400 {
		t.Fatalf("oversized state: %d", status)
	}
}

func TestWeComInAppAndDingTalkLogin(t *testing.T) {
	w := newWorld(t, 40, t.TempDir(), true)
	b := newBrowser(t)
	b.ua = "Mozilla/5.0 (iPhone) wxwork/4.1.0 MicroMessenger/7.0.1"
	status, page, _ := b.get(w.base+"/login/e/demo/s/wecom", "zhangsan")
	inApp := false
	for _, u := range b.log {
		inApp = inApp || strings.Contains(u, "/connect/oauth2/authorize?")
	}
	if status != 200 || !strings.Contains(page, "张三") || !inApp {
		t.Fatalf("in-app WeCom login: %d, in-app URL used: %v", status, inApp)
	}
	d := newBrowser(t)
	status, page, _ = d.get(w.base+"/login?enterprise=demo&idp_hint=dingtalk", "zhangsan")
	if status != 200 || !strings.Contains(page, "张三") {
		t.Fatalf("DingTalk login: %d (%v)", status, d.log)
	}
	if status, page, _ := newBrowser(t).get(w.base+"/login/e/demo/s/dingtalk", "@outsider"); status != 403 || !strings.Contains(page, "不属于本企业") {
		t.Fatalf("DingTalk outsider: %d", status)
	}
	// An external contact of the org is refused as a non-member, with its own words and audit reason.
	if status, page, _ := newBrowser(t).get(w.base+"/login/e/demo/s/dingtalk", "@external"); status != 403 || !strings.Contains(page, "外部联系人") {
		t.Fatalf("DingTalk external contact: %d", status)
	}
	if ev, _ := w.gw.Store.ListAuditEvents(w.ctx, directory.AuditQuery{EnterpriseID: "demo", Kind: "login.failure"}); len(ev) == 0 ||
		ev[0].Reason != "an external contact, not a member of the organisation" || ev[0].SourceID != "dingtalk" {
		t.Fatalf("external contact audit = %+v", ev[:min(1, len(ev))])
	}
	// Inside the DingTalk app: the H5 free-login page, then the code dd.requestAuthCode gives.
	h5 := newBrowser(t)
	h5.ua = "Mozilla/5.0 (iPhone) AliApp(DingTalk/7.0.10) com.laiwang.DingTalk"
	status, page, _ = h5.get(w.base+"/login/e/demo/s/dingtalk", "")
	m := regexp.MustCompile(`data-callback="([^"]+)"`).FindStringSubmatch(page)
	if status != 200 || m == nil || !strings.Contains(page, `data-corp-id="`+w.ds.CorpID+`"`) {
		t.Fatalf("H5 page: %d", status)
	}
	resp, err := http.Post(w.dURL+"/_sim/jsapi/code", "application/json", strings.NewReader(`{"userid":"zhangsan"}`))
	if err != nil {
		t.Fatal(err)
	}
	var jc struct{ Code string }
	json.NewDecoder(resp.Body).Decode(&jc)
	resp.Body.Close()
	callback := strings.ReplaceAll(m[1], "&amp;", "&") + "&code=" + jc.Code
	if status, page, _ := h5.get(callback, ""); status != 200 || !strings.Contains(page, "张三") {
		t.Fatalf("H5 free login: %d", status)
	}
	// Logging out ends the session.
	_, page, _ = d.get(w.base+"/login/done", "")
	d.post(w.base+"/logout", url.Values{"csrf": {csrfOf(t, page)}})
	if _, page, at := d.get(w.base+"/login/done", ""); strings.Contains(page, "张三") || strings.HasSuffix(at, "/login/done") {
		t.Fatal("still signed in after logout")
	}
}
