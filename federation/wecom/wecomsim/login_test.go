package wecomsim

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/federation/msgcrypt"
	"github.com/qiao-gateway/qiao/federation/simorg"
)

func (f *fixture) loginRedirect(path string) *url.URL {
	f.t.Helper()
	resp, err := noRedirect.Get(f.srv.URL + path)
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		f.t.Fatalf("%s: status %d, want a redirect", path, resp.StatusCode)
	}
	u, _ := url.Parse(resp.Header.Get("Location"))
	return u
}

func TestQRLoginNewAndOld(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(appSec)
	redirect := url.QueryEscape("https://sso.example.com/e/demo/sources/wecom/callback")
	for _, path := range []string{
		"/wwlogin/sso/login?login_type=CorpApp&appid=" + corp + "&agentid=1000002&redirect_uri=" + redirect + "&state=S1&lang=zh",
		"/wwopen/sso/qrConnect?appid=" + corp + "&agentid=1000002&redirect_uri=" + redirect + "&state=S1",
	} {
		u := f.loginRedirect(path + "&sim_user=zhangsan")
		if u.Host != "sso.example.com" || u.Query().Get("state") != "S1" || u.Query().Get("code") == "" {
			t.Fatalf("redirect = %s", u)
		}
		code := u.Query().Get("code")
		m := f.call("GET", "/cgi-bin/auth/getuserinfo?access_token="+tok+"&code="+code, nil)
		if errcode(m) != 0 || m["userid"] != "zhangsan" || m["user_ticket"] != nil {
			t.Fatalf("getuserinfo = %v", m)
		}
		expect(t, f.call("GET", "/cgi-bin/auth/getuserinfo?access_token="+tok+"&code="+code, nil), 40029, "code reused")
	}
	// Codes expire after 5 minutes.
	u := f.loginRedirect("/wwlogin/sso/login?login_type=CorpApp&appid=" + corp + "&agentid=1000002&redirect_uri=" + redirect + "&sim_user=zhangsan")
	f.advance(5*time.Minute + time.Second)
	tok = f.token(appSec)
	expect(t, f.call("GET", "/cgi-bin/auth/getuserinfo?access_token="+tok+"&code="+u.Query().Get("code"), nil), 40029, "expired code")
	expect(t, f.call("GET", "/cgi-bin/auth/getuserinfo?access_token="+f.token(contSec)+"&code=x", nil), 48002, "getuserinfo with the contact secret")
}

func TestLoginPageAndScanForm(t *testing.T) {
	f := newFixture(t, nil)
	redirect := url.QueryEscape("https://sso.example.com/cb?x=1")
	resp, err := http.Get(f.srv.URL + "/wwlogin/sso/login?login_type=CorpApp&appid=" + corp + "&agentid=1000002&redirect_uri=" + redirect + "&state=abc")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	html := string(page)
	if resp.StatusCode != 200 || !strings.Contains(html, `src="data:image/png;base64,`) || !strings.Contains(html, "张三") {
		t.Fatalf("login page (%d) lacks the QR image or the people list", resp.StatusCode)
	}
	i := strings.Index(html, `name="ticket" value="`)
	ticket := html[i+len(`name="ticket" value="`):]
	ticket = ticket[:strings.Index(ticket, `"`)]
	resp, err = noRedirect.PostForm(f.srv.URL+"/_sim/scan", url.Values{"ticket": {ticket}, "user": {"zhangsan"}})
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("scan: %v %v", resp, err)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc.Query().Get("x") != "1" || loc.Query().Get("state") != "abc" || loc.Query().Get("code") == "" {
		t.Fatalf("redirect lost the URI's own query or state: %s", loc)
	}
	// The ticket was used; a second scan fails.
	resp, _ = noRedirect.PostForm(f.srv.URL+"/_sim/scan", url.Values{"ticket": {ticket}, "user": {"zhangsan"}})
	if resp.StatusCode == http.StatusFound {
		t.Fatal("a scan ticket worked twice")
	}
	// Declining redirects with the state only.
	u := f.loginRedirect("/wwlogin/sso/login?login_type=CorpApp&appid=" + corp + "&agentid=1000002&redirect_uri=" + redirect + "&state=abc&sim_user=@deny")
	if u.Query().Get("code") != "" || u.Query().Get("state") != "abc" {
		t.Fatalf("declined login redirect = %s", u)
	}
}

func TestLoginRefusals(t *testing.T) {
	f := newFixture(t, nil)
	base := "/wwlogin/sso/login?login_type=CorpApp&appid=" + corp + "&agentid=1000002&state=s&sim_user=zhangsan&redirect_uri="
	for name, tc := range map[string]struct {
		path string
		code string
	}{
		"host not trusted":     {base + url.QueryEscape("https://evil.example.com/cb"), "50001"},
		"port differs":         {base + url.QueryEscape("https://sso.example.com:8443/cb"), "50001"},
		"wrong corp":           {strings.Replace(base, corp, "wwother", 1) + url.QueryEscape("https://sso.example.com/cb"), "40013"},
		"unknown agent":        {strings.Replace(base, "1000002", "42", 1) + url.QueryEscape("https://sso.example.com/cb"), "40056"},
		"ServiceApp":           {strings.Replace(base, "CorpApp", "ServiceApp", 1) + url.QueryEscape("https://sso.example.com/cb"), "40058"},
		"disabled member":      {strings.Replace(base, "zhangsan", "nobody-such", 1) + url.QueryEscape("https://sso.example.com/cb"), "60111"},
		"outside scope (QR)":   {strings.Replace(base, "1000002", "1000004", 1) + url.QueryEscape("https://sso.example.com/cb") + "&x=", ""},
		"in-app state charset": {"/connect/oauth2/authorize?appid=" + corp + "&agentid=1000002&response_type=code&scope=snsapi_base&state=a-b&redirect_uri=" + url.QueryEscape("https://sso.example.com/cb"), "40058"},
	} {
		resp, err := noRedirect.Get(f.srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if tc.code == "" {
			continue // covered below with a member outside the scope
		}
		if resp.StatusCode == http.StatusFound || !strings.Contains(string(body), "errcode "+tc.code) {
			t.Errorf("%s: status %d, page lacks errcode %s", name, resp.StatusCode, tc.code)
		}
	}
	// A member outside the scoped app's visible departments cannot scan in.
	f.sim.Org().RLock()
	var outsider string
	for _, id := range f.sim.Org().UserIDs() {
		u := f.sim.Org().User(id)
		if u.Status == simorg.StatusActive && !f.sim.userVisible(&cred{app: &f.sim.cfg.Apps[2]}, u) {
			outsider = id
			break
		}
	}
	f.sim.Org().RUnlock()
	resp, _ := noRedirect.Get(f.srv.URL + strings.Replace(strings.Replace(base, "1000002", "1000004", 1), "zhangsan", outsider, 1) + url.QueryEscape("https://sso.example.com/cb"))
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusFound || !strings.Contains(string(body), "errcode 50002") {
		t.Fatalf("member outside the visible scope: %d", resp.StatusCode)
	}
}

func TestInAppOAuthAndUserTicket(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(appSec)
	redirect := url.QueryEscape("https://sso.example.com/cb")
	u := f.loginRedirect("/connect/oauth2/authorize?appid=" + corp + "&redirect_uri=" + redirect + "&response_type=code&scope=snsapi_privateinfo&state=abc&agentid=1000002&sim_user=zhangsan")
	m := f.call("GET", "/cgi-bin/auth/getuserinfo?access_token="+tok+"&code="+u.Query().Get("code"), nil)
	ticket, _ := m["user_ticket"].(string)
	if m["userid"] != "zhangsan" || ticket == "" {
		t.Fatalf("privateinfo getuserinfo = %v", m)
	}
	d := f.call("POST", "/cgi-bin/auth/getuserdetail?access_token="+tok, map[string]string{"user_ticket": ticket})
	if errcode(d) != 0 || d["mobile"] != "13800000001" || d["email"] == nil || d["gender"] != "1" {
		t.Fatalf("getuserdetail = %v", d)
	}
	f.advance(TicketTTL + time.Second)
	tok = f.token(appSec)
	expect(t, f.call("POST", "/cgi-bin/auth/getuserdetail?access_token="+tok, map[string]string{"user_ticket": ticket}), 40058, "expired user_ticket")
	// snsapi_base: no ticket; privateinfo without agentid is treated as base.
	for _, q := range []string{"scope=snsapi_base&agentid=1000002", "scope=snsapi_privateinfo"} {
		u = f.loginRedirect("/connect/oauth2/authorize?appid=" + corp + "&redirect_uri=" + redirect + "&response_type=code&" + q + "&state=abc&sim_user=zhangsan")
		m = f.call("GET", "/cgi-bin/auth/getuserinfo?access_token="+tok+"&code="+u.Query().Get("code"), nil)
		if m["userid"] != "zhangsan" || m["user_ticket"] != nil {
			t.Fatalf("%s: getuserinfo = %v", q, m)
		}
	}
	// Someone outside the corp gets an openid, not a userid.
	u = f.loginRedirect("/connect/oauth2/authorize?appid=" + corp + "&redirect_uri=" + redirect + "&response_type=code&scope=snsapi_base&state=abc&sim_user=@outsider")
	m = f.call("GET", "/cgi-bin/auth/getuserinfo?access_token="+tok+"&code="+u.Query().Get("code"), nil)
	if m["userid"] != nil || m["openid"] == nil {
		t.Fatalf("non-member getuserinfo = %v", m)
	}
}

// ---- events: an independent receiver built on msgcrypt (tested against the published vectors).

type receiver struct {
	mu      sync.Mutex
	events  []map[string]string
	fails   atomic.Int32
	srv     *httptest.Server
	c       *msgcrypt.Crypter
	badEcho bool
}

// TestLoginErrorPageLeadsBack: the platform's error page (errcode 60111 after a scan as someone
// the corp does not have, or a refused login URL) links back to the app's origin — the
// redirect_uri's — instead of being a dead end; with no redirect known it says what to do.
func TestLoginErrorPageLeadsBack(t *testing.T) {
	f := newFixture(t, nil)
	base := "/wwlogin/sso/login?login_type=CorpApp&appid=" + corp + "&agentid=1000002&state=s&redirect_uri=" + url.QueryEscape("https://sso.example.com/e/demo/sources/wecom/callback")
	page := func(path string, form url.Values) string {
		var resp *http.Response
		var err error
		if form != nil {
			resp, err = noRedirect.PostForm(f.srv.URL+path, form)
		} else {
			resp, err = noRedirect.Get(f.srv.URL + path)
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	for name, html := range map[string]string{
		"60111 by sim_user":      page(base+"&sim_user=nobody-such", nil),
		"ServiceApp login_type":  page(strings.Replace(base, "CorpApp", "ServiceApp", 1), nil),
		"60111 on the scan form": "",
	} {
		if name == "60111 on the scan form" {
			login := page(base, nil)
			i := strings.Index(login, `name="ticket" value="`)
			if i < 0 {
				t.Fatal("the login page has no scan form")
			}
			ticket := login[i+len(`name="ticket" value="`):]
			ticket = ticket[:strings.Index(ticket, `"`)]
			html = page("/_sim/scan", url.Values{"ticket": {ticket}, "user": {"nobody-such"}})
			if !strings.Contains(html, "errcode 60111") {
				t.Fatalf("scanning as someone the corp does not have: %s", html)
			}
		}
		if !strings.Contains(html, `<a id="back" href="https://sso.example.com/">`) {
			t.Errorf("%s: the error page has no way back to the app's origin:\n%s", name, html)
		}
	}
	html := page("/wwlogin/sso/login?login_type=CorpApp&appid="+corp+"&agentid=1000002&state=s", nil)
	if !strings.Contains(html, `id="back"`) || strings.Contains(html, `<a id="back"`) {
		t.Errorf("with no redirect_uri the page should say what to do, without a link: %s", html)
	}
}
