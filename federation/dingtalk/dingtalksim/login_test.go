package dingtalksim

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
)

func (f *fixture) login(q string) (*http.Response, *url.URL) {
	f.t.Helper()
	resp, err := noRedirect.Get(f.srv.URL + "/oauth2/auth?" + q)
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	u, _ := url.Parse(resp.Header.Get("Location"))
	return resp, u
}

func TestBrowserLogin(t *testing.T) {
	f := newFixture(t, nil)
	base := "response_type=code&client_id=" + appKey + "&scope=openid&prompt=consent&state=xyz&redirect_uri=" + url.QueryEscape("https://sso.example.com/cb")
	resp, u := f.login(base + "&sim_user=zhangsan")
	if resp.StatusCode != http.StatusFound || u.Query().Get("code") == "" || u.Query().Get("code") != u.Query().Get("authCode") || u.Query().Get("state") != "xyz" {
		t.Fatalf("redirect = %d %s", resp.StatusCode, u)
	}
	code := u.Query().Get("code")
	st, m := f.do("POST", "/v1.0/oauth2/userAccessToken", map[string]string{"clientId": appKey, "clientSecret": appSecret, "code": code, "grantType": "authorization_code"}, nil)
	if st != 200 || m["accessToken"] == nil || m["refreshToken"] == nil || m["expireIn"].(float64) != 7200 || m["corpId"] != corp {
		t.Fatalf("userAccessToken = %d %v", st, m)
	}
	st, again := f.do("POST", "/v1.0/oauth2/userAccessToken", map[string]string{"clientId": appKey, "clientSecret": appSecret, "code": code, "grantType": "authorization_code"}, nil)
	if st != 400 || again["code"] != "invalidCode" {
		t.Fatalf("code reused = %d %v", st, again)
	}
	utok := m["accessToken"].(string)
	st, me := f.do("GET", "/v1.0/contact/users/me", nil, map[string]string{"x-acs-dingtalk-access-token": utok})
	if st != 200 || me["nick"] != "张三" || me["unionId"] == nil || me["mobile"] != "13800000001" {
		t.Fatalf("users/me = %d %v", st, me)
	}
	apptok := f.token(appKey, appSecret)
	byUnion := f.oapi(apptok, "user/getbyunionid", map[string]any{"unionid": me["unionId"]})
	if byUnion["result"].(map[string]any)["userid"] != "zhangsan" {
		t.Fatalf("unionid does not resolve: %v", byUnion)
	}
	if st, _ := f.do("GET", "/v1.0/contact/users/me", nil, map[string]string{"x-acs-dingtalk-access-token": "bogus"}); st != 400 {
		t.Fatalf("users/me with a bad token = %d", st)
	}
	st, r := f.do("POST", "/v1.0/oauth2/userAccessToken", map[string]string{"clientId": appKey, "clientSecret": appSecret, "refreshToken": m["refreshToken"].(string), "grantType": "refresh_token"}, nil)
	if st != 200 || r["accessToken"] == nil {
		t.Fatalf("refresh = %d %v", st, r)
	}
	// Someone outside the org: a unionid the org does not know.
	_, u = f.login(base + "&sim_user=@outsider")
	_, m = f.do("POST", "/v1.0/oauth2/userAccessToken", map[string]string{"clientId": appKey, "clientSecret": appSecret, "code": u.Query().Get("code"), "grantType": "authorization_code"}, nil)
	_, me = f.do("GET", "/v1.0/contact/users/me", nil, map[string]string{"x-acs-dingtalk-access-token": m["accessToken"].(string)})
	expect(t, f.oapi(apptok, "user/getbyunionid", map[string]any{"unionid": me["unionId"]}), 60121, "outsider's unionid")
	// An external contact of the org: getbyunionid knows them, as contact_type 1.
	_, u = f.login(base + "&sim_user=@external")
	_, m = f.do("POST", "/v1.0/oauth2/userAccessToken", map[string]string{"clientId": appKey, "clientSecret": appSecret, "code": u.Query().Get("code"), "grantType": "authorization_code"}, nil)
	_, me = f.do("GET", "/v1.0/contact/users/me", nil, map[string]string{"x-acs-dingtalk-access-token": m["accessToken"].(string)})
	ext := f.oapi(apptok, "user/getbyunionid", map[string]any{"unionid": me["unionId"]})
	if res, _ := ext["result"].(map[string]any); errcode(ext) != 0 || res["contact_type"] != float64(1) || res["userid"] == "" {
		t.Fatalf("external contact's getbyunionid = %v", ext)
	}
	// Declined: error and state, no code.
	_, u = f.login(base + "&sim_user=@deny")
	if u.Query().Get("error") == "" || u.Query().Get("code") != "" || u.Query().Get("state") != "xyz" {
		t.Fatalf("declined = %s", u)
	}
	// Codes expire.
	_, u = f.login(base + "&sim_user=zhangsan")
	f.advance(CodeTTL + time.Second)
	if st, m := f.do("POST", "/v1.0/oauth2/userAccessToken", map[string]string{"clientId": appKey, "clientSecret": appSecret, "code": u.Query().Get("code"), "grantType": "authorization_code"}, nil); st != 400 || m["code"] != "invalidCode" {
		t.Fatalf("expired code = %d %v", st, m)
	}
	// Refusals shown on the platform's page.
	for name, q := range map[string]string{
		"redirect host": strings.Replace(base, "sso.example.com", "evil.example.com", 1),
		"port differs":  strings.Replace(base, url.QueryEscape("https://sso.example.com/cb"), url.QueryEscape("https://sso.example.com:444/cb"), 1),
		"client_id":     strings.Replace(base, appKey, "nope", 1),
		"scope":         strings.Replace(base, "scope=openid", "scope=email", 1),
		"prompt":        strings.Replace(base, "prompt=consent", "prompt=none", 1),
	} {
		if resp, _ := f.login(q + "&sim_user=zhangsan"); resp.StatusCode != 400 {
			t.Errorf("%s: %d, want the error page", name, resp.StatusCode)
		}
	}
	// The page itself, for a person.
	resp, err := http.Get(f.srv.URL + "/oauth2/auth?" + base)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(page), "data:image/png;base64,") || !strings.Contains(string(page), "张三") {
		t.Fatal("login page lacks the QR image or the people list")
	}
}

func TestH5FreeLogin(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(appKey, appSecret)
	code, ok := f.sim.JSAPICode("zhangsan")
	if !ok {
		t.Fatal("no code")
	}
	m := f.oapi(tok, "v2/user/getuserinfo", map[string]any{"code": code})
	res := m["result"].(map[string]any)
	if res["userid"] != "zhangsan" || res["unionid"] == nil || res["name"] != "张三" {
		t.Fatalf("getuserinfo = %v", m)
	}
	expect(t, f.oapi(tok, "v2/user/getuserinfo", map[string]any{"code": code}), 40078, "code reused")
	code, _ = f.sim.JSAPICode("zhangsan")
	f.advance(CodeTTL + time.Second)
	tok = f.token(appKey, appSecret)
	expect(t, f.oapi(tok, "v2/user/getuserinfo", map[string]any{"code": code}), 40078, "code expired")
}

// ---- events: an independent receiver on msgcrypt (tested against the published vectors)

type receiver struct {
	mu      sync.Mutex
	events  []map[string]any
	srv     *httptest.Server
	slow    atomic.Bool
	badSig  atomic.Bool
	fails   atomic.Int32
	recvKey string
}

// TestLoginErrorPageLeadsBack: the platform's error page links back to the app's origin (the
// redirect_uri's), after a refused login URL and after a scan as someone the org does not have.
func TestLoginErrorPageLeadsBack(t *testing.T) {
	f := newFixture(t, nil)
	base := "response_type=code&client_id=" + appKey + "&scope=openid&prompt=consent&state=xyz&redirect_uri=" + url.QueryEscape("https://sso.example.com/cb")
	get := func(q string) string {
		resp, err := noRedirect.Get(f.srv.URL + "/oauth2/auth?" + q)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	for name, html := range map[string]string{
		"no such member": get(base + "&sim_user=nobody-such"),
		"wrong scope":    get(strings.Replace(base, "scope=openid", "scope=email", 1)),
	} {
		if !strings.Contains(html, "登录失败") || !strings.Contains(html, `<a id="back" href="https://sso.example.com/">`) {
			t.Errorf("%s: the error page has no way back to the app's origin:\n%s", name, html)
		}
	}
}
