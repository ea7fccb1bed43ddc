package dingtalksim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/federation/simorg"
)

const (
	corp      = "ding6ccabc44d2c8d38b"
	appKey    = "dingappkey01"
	appSecret = "app-secret-01"
	narrowKey = "dingnarrow02"
	narrowSec = "narrow-secret"
	cbToken   = "mryue"
	cbAESKey  = "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7"
)

type fixture struct {
	t   *testing.T
	sim *Sim
	srv *httptest.Server
	now atomic.Int64
}

func newFixture(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	f := &fixture{t: t}
	f.now.Store(time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC).UnixNano())
	cfg := Config{CorpID: corp, Org: simorg.Generate("测试科技", 300, 11), CallbackToken: cbToken, CallbackAESKey: cbAESKey, RateLimits: true,
		Now: func() time.Time { return time.Unix(0, f.now.Load()) },
		Apps: []App{
			{AgentID: 2001, AppKey: appKey, AppSecret: appSecret, RedirectDomain: "sso.example.com", MobilePerm: true, EmailPerm: true},
			{AgentID: 2002, AppKey: narrowKey, AppSecret: narrowSec, RedirectDomain: "127.0.0.1:8080", VisibleDepts: []int{2}},
		}}
	if mod != nil {
		mod(&cfg)
	}
	f.sim = New(cfg)
	f.sim.events.Backoff = 20 * time.Millisecond
	f.srv = httptest.NewServer(f.sim)
	t.Cleanup(func() { f.srv.Close(); f.sim.Close() })
	return f
}

func (f *fixture) advance(d time.Duration) { f.now.Add(int64(d)) }

// do sends a request and returns the status and decoded JSON.
func (f *fixture) do(method, path string, body any, hdr map[string]string) (int, map[string]any) {
	f.t.Helper()
	var rd io.Reader
	ct := "application/json"
	switch b := body.(type) {
	case nil:
	case url.Values:
		rd, ct = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	case string:
		rd = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, f.srv.URL+path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", ct)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		f.t.Fatalf("%s %s: not JSON (%d): %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

func (f *fixture) oapi(tok, api string, body any) map[string]any {
	f.t.Helper()
	st, m := f.do("POST", "/topapi/"+api+"?access_token="+tok, body, nil)
	if st != 200 {
		f.t.Fatalf("%s: HTTP %d (oapi answers business errors with 200)", api, st)
	}
	return m
}

func errcode(m map[string]any) int { n, _ := m["errcode"].(float64); return int(n) }

func expect(t *testing.T, m map[string]any, code int, what string) {
	t.Helper()
	if errcode(m) != code {
		t.Fatalf("%s: errcode %d (%v), want %d", what, errcode(m), m["errmsg"], code)
	}
}

func (f *fixture) token(key, secret string) string {
	f.t.Helper()
	_, m := f.do("GET", "/gettoken?appkey="+key+"&appsecret="+secret, nil, nil)
	expect(f.t, m, 0, "gettoken")
	return m["access_token"].(string)
}

func TestTokens(t *testing.T) {
	f := newFixture(t, nil)
	_, m := f.do("GET", "/gettoken?appkey="+appKey+"&appsecret="+appSecret, nil, nil)
	if errcode(m) != 0 || m["expires_in"].(float64) != 7200 {
		t.Fatalf("gettoken = %v", m)
	}
	tok := m["access_token"].(string)
	f.advance(time.Hour)
	if again := f.token(appKey, appSecret); again != tok {
		t.Fatal("re-fetch inside the window gave a new token")
	}
	_, m = f.do("GET", "/gettoken?appkey=nope&appsecret=x", nil, nil)
	expect(t, m, 40089, "unknown appkey")
	_, m = f.do("GET", "/gettoken?appkey="+appKey+"&appsecret=wrong", nil, nil)
	expect(t, m, 40001, "wrong secret")
	// The new API: same token family, HTTP-status errors.
	st, m := f.do("POST", "/v1.0/oauth2/accessToken", map[string]string{"appKey": appKey, "appSecret": appSecret}, nil)
	if st != 200 || m["accessToken"] != tok || m["expireIn"].(float64) != 7200 {
		t.Fatalf("v1.0 accessToken = %d %v", st, m)
	}
	st, m = f.do("POST", "/v1.0/oauth2/accessToken", map[string]string{"appKey": appKey, "appSecret": "bad"}, nil)
	if st != 400 || m["code"] != "invalidClientIdOrSecret" || m["requestid"] == nil {
		t.Fatalf("bad secret on the new API = %d %v", st, m)
	}
	st, m = f.do("POST", "/v1.0/oauth2/accessToken", url.Values{"appKey": {appKey}}, nil)
	if st != 400 || m["code"] != "Missingbody" {
		t.Fatalf("form body on the new API = %d %v", st, m)
	}
	st, m = f.do("POST", "/v1.0/oauth2/"+corp+"/token", map[string]string{"client_id": appKey, "client_secret": appSecret, "grant_type": "client_credentials"}, nil)
	if st != 200 || m["access_token"] != tok {
		t.Fatalf("unified token = %d %v", st, m)
	}
	st, m = f.do("POST", "/v1.0/oauth2/"+corp+"/token", map[string]string{"client_id": appKey, "client_secret": appSecret, "grant_type": "password"}, nil)
	if st != 400 || m["code"] != "unsupported.grant.type" {
		t.Fatalf("unsupported grant = %d %v", st, m)
	}
	// Missing, invalid and expired tokens on oapi: /topapi/* wraps the token error in errcode 88
	// with sub_code "40014" (HTTP 200).
	_, m = f.do("POST", "/topapi/v2/user/get", map[string]string{"userid": "zhangsan"}, nil)
	expect(t, m, 41001, "no token")
	expect88 := func(m map[string]any, sub, what string) {
		t.Helper()
		expect(t, m, 88, what)
		if m["sub_code"] != sub || m["sub_msg"] == "" || m["errmsg"] != "ding talk error[subcode="+sub+",submsg="+m["sub_msg"].(string)+"]" || m["request_id"] == nil {
			t.Fatalf("%s: %v", what, m)
		}
	}
	expect88(f.oapi("bogus", "v2/user/get", map[string]string{"userid": "zhangsan"}), "40014", "bad token")
	f.advance(TokenTTL + time.Second)
	expect88(f.oapi(tok, "v2/user/get", map[string]string{"userid": "zhangsan"}), "40014", "expired token")
	tok = f.token(appKey, appSecret)
	f.sim.ExpireTokens()
	expect88(f.oapi(tok, "v2/user/get", map[string]string{"userid": "zhangsan"}), "40014", "token expired by the control")
	// The new API: a bad token is HTTP 400 InvalidAuthentication, not 401.
	if st, m := f.do("GET", "/v1.0/contact/users/me", nil, map[string]string{"x-acs-dingtalk-access-token": "bogus"}); st != 400 || m["code"] != "InvalidAuthentication" {
		t.Fatalf("users/me with a bad token = %d %v", st, m)
	}
}

// gettoken's answer to bad credentials where the platform is reported to say 40096.
func TestBadCredentialCode(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.BadCredentialCode = 40096 })
	for _, q := range []string{"appkey=nope&appsecret=x", "appkey=" + appKey + "&appsecret=wrong"} {
		_, m := f.do("GET", "/gettoken?"+q, nil, nil)
		expect(t, m, 40096, q)
		if m["errmsg"] != "不合法的appKey或appSecret" {
			t.Fatalf("%s: %v", q, m)
		}
	}
	f.token(appKey, appSecret)
}

func TestDepartments(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(appKey, appSecret)
	m := f.oapi(tok, "v2/department/listsub", map[string]any{"dept_id": 1})
	expect(t, m, 0, "listsub")
	subs := m["result"].([]any)
	f.sim.Org().RLock()
	want := len(f.sim.Org().Children(1))
	f.sim.Org().RUnlock()
	if len(subs) != want {
		t.Fatalf("listsub of the root = %d, want %d (one level)", len(subs), want)
	}
	d := subs[0].(map[string]any)
	for _, k := range []string{"dept_id", "name", "parent_id", "create_dept_group", "auto_add_user"} {
		if _, ok := d[k]; !ok {
			t.Fatalf("listsub row lacks %s", k)
		}
	}
	// listsub carries exactly those five fields: no order ([DT:user-management-acquires-the-list-
	// departments]); the order is in v2/department/get.
	if len(d) != 5 {
		t.Fatalf("listsub row = %v", d)
	}
	if root := f.oapi(tok, "v2/department/listsub", map[string]any{}); len(root["result"].([]any)) != want {
		t.Fatal("listsub without dept_id must list the root's children")
	}
	ids := f.oapi(tok, "v2/department/listsubid", url.Values{"dept_id": {"1"}})
	if len(ids["result"].(map[string]any)["dept_id_list"].([]any)) != want {
		t.Fatalf("listsubid (form body) = %v", ids)
	}
	expect(t, f.oapi(tok, "v2/department/listsubid", map[string]any{}), 40035, "listsubid without dept_id")
	g := f.oapi(tok, "v2/department/get", map[string]any{"dept_id": 2})
	res := g["result"].(map[string]any)
	f.sim.Org().RLock()
	order2 := f.sim.Org().Dept(2).Order
	f.sim.Org().RUnlock()
	if res["name"] != "研发部" || res["parent_id"].(float64) != 1 || res["member_count"] == nil || res["dept_manager_userid_list"] == nil ||
		res["order"].(float64) != float64(order2) || order2 == 0 {
		t.Fatalf("department get = %v", res)
	}
	expect(t, f.oapi(tok, "v2/department/get", map[string]any{"dept_id": 999999}), 60003, "missing department")
	// Scope: the narrow app sees department 2's subtree only, but listsubid is not scoped.
	ntok := f.token(narrowKey, narrowSec)
	expect(t, f.oapi(ntok, "v2/department/get", map[string]any{"dept_id": 3}), 50004, "department outside scope")
	expect(t, f.oapi(ntok, "v2/department/listsubid", map[string]any{"dept_id": 1}), 0, "listsubid ignores scope")
	p := f.oapi(tok, "v2/department/listparentbyuser", map[string]any{"userid": "zhangsan"})
	chain := p["result"].(map[string]any)["parent_list"].([]any)[0].(map[string]any)["parent_dept_id_list"].([]any)
	if chain[0].(float64) != 2 || chain[len(chain)-1].(float64) != 1 {
		t.Fatalf("parent chain = %v (leaf first, root last)", chain)
	}
}

func TestUsers(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(appKey, appSecret)
	u := f.oapi(tok, "v2/user/get", map[string]any{"userid": "zhangsan"})["result"].(map[string]any)
	for _, k := range []string{"userid", "unionid", "name", "mobile", "state_code", "job_number", "title", "email", "dept_id_list",
		"dept_order_list", "hired_date", "active", "admin", "boss", "leader_in_dept", "role_list", "real_authed", "extension"} {
		if _, ok := u[k]; !ok {
			t.Errorf("v2/user/get lacks %s", k)
		}
	}
	if u["name"] != "张三" || u["mobile"] != "13800000001" || u["active"] != true {
		t.Fatalf("v2/user/get = %v", u)
	}
	expect(t, f.oapi(tok, "v2/user/get", map[string]any{"userid": "nobody"}), 33012, "unknown user")
	// Without the permission points, mobile and email are withheld.
	ntok := f.token(narrowKey, narrowSec)
	nu := f.oapi(ntok, "v2/user/get", map[string]any{"userid": "zhangsan"})["result"].(map[string]any)
	for _, k := range []string{"mobile", "state_code", "email", "org_email", "extension"} {
		if _, ok := nu[k]; ok {
			t.Errorf("app without the permission got %s", k)
		}
	}
	// Paging with integer cursors, size ≤ 100, direct members only.
	f.sim.Org().RLock()
	var big, members int
	for _, id := range f.sim.Org().DeptIDs() {
		n := 0
		for _, uid := range f.sim.Org().Members(id) {
			if present(f.sim.Org().User(uid)) {
				n++
			}
		}
		if n > members {
			big, members = id, n
		}
	}
	f.sim.Org().RUnlock()
	seen, cursor := 0, 0
	for pages := 0; ; pages++ {
		m := f.oapi(tok, "v2/user/list", map[string]any{"dept_id": big, "cursor": cursor, "size": 3})
		expect(t, m, 0, "v2/user/list")
		r := m["result"].(map[string]any)
		seen += len(r["list"].([]any))
		if r["has_more"] != true {
			if _, ok := r["next_cursor"]; ok {
				t.Fatal("next_cursor on the last page")
			}
			break
		}
		cursor = int(r["next_cursor"].(float64))
	}
	if seen != members {
		t.Fatalf("paged %d users of department %d, want %d", seen, big, members)
	}
	for _, body := range []map[string]any{
		{"dept_id": big, "cursor": 0, "size": 101},
		{"dept_id": big, "cursor": 0},
		{"dept_id": big, "size": 10},
		{"dept_id": big, "cursor": 0, "size": 10, "order_field": "random"},
	} {
		expect(t, f.oapi(tok, "v2/user/list", body), 40035, fmt.Sprint(body))
	}
	expect(t, f.oapi(tok, "user/listsimple", map[string]any{"dept_id": big, "size": 101}), 40069, "listsimple size 101")
	simple := f.oapi(tok, "user/listsimple", map[string]any{"dept_id": big, "cursor": 0, "size": 100})["result"].(map[string]any)
	if len(simple["list"].([]any)) != members || len(simple["list"].([]any)[0].(map[string]any)) != 2 {
		t.Fatalf("listsimple = %v", simple)
	}
	ids := f.oapi(tok, "user/listid", map[string]any{"dept_id": big})["result"].(map[string]any)["userid_list"].([]any)
	if len(ids) != members {
		t.Fatalf("user/listid = %d, want %d", len(ids), members)
	}
	byUnion := f.oapi(tok, "user/getbyunionid", map[string]any{"unionid": u["unionid"]})["result"].(map[string]any)
	if byUnion["userid"] != "zhangsan" || byUnion["contact_type"].(float64) != 0 {
		t.Fatalf("getbyunionid = %v", byUnion)
	}
	expect(t, f.oapi(tok, "user/getbyunionid", map[string]any{"unionid": "stranger"}), 60121, "unknown unionid")
	all := f.oapi(tok, "user/count", map[string]any{"only_active": false})["result"].(map[string]any)["count"].(float64)
	active := f.oapi(tok, "user/count", map[string]any{"only_active": true})["result"].(map[string]any)["count"].(float64)
	if all <= active || active == 0 {
		t.Fatalf("count all %v, active %v", all, active)
	}
	expect(t, f.oapi(tok, "user/count", map[string]any{}), 40035, "count without only_active")
	expect(t, f.oapi(tok, "v2/user/list", "{broken"), 40035, "broken JSON")
	// A user outside the narrow app's scope.
	f.sim.Org().RLock()
	var outside string
	for _, id := range f.sim.Org().UserIDs() {
		if uu := f.sim.Org().User(id); present(uu) && !f.sim.userVisible(&f.sim.cfg.Apps[1], uu) {
			outside = id
			break
		}
	}
	f.sim.Org().RUnlock()
	expect(t, f.oapi(ntok, "v2/user/get", map[string]any{"userid": outside}), 50002, "user outside scope")
}

func TestNoContactPermissionAndTrustedIP(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Apps = append(c.Apps, App{AppKey: "noperm", AppSecret: "s", NoContactRead: true}, App{AppKey: "ipapp", AppSecret: "s", TrustedIPs: []string{"10.1.1.1"}})
	})
	m := f.oapi(f.token("noperm", "s"), "v2/user/get", map[string]any{"userid": "zhangsan"})
	if errcode(m) != 88 || m["sub_code"] != "60011" {
		t.Fatalf("missing permission point: %v", m)
	}
	m = f.oapi(f.token("ipapp", "s"), "v2/user/get", map[string]any{"userid": "zhangsan"})
	expect(t, m, 60020, "untrusted IP")
	if !strings.Contains(m["errmsg"].(string), "127.0.0.1") {
		t.Fatalf("60020 must name the caller's IP: %v", m["errmsg"])
	}
}

func (f *fixture) serve(path, body string) map[string]any {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = "192.0.2.7:4000"
	f.sim.ServeHTTP(rec, req)
	var m map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	return m
}

func TestRateLimits(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(appKey, appSecret)
	path := "/topapi/v2/department/get?access_token=" + tok
	for i := 0; i < 20; i++ {
		expect(t, f.serve(path, `{"dept_id":1}`), 0, fmt.Sprintf("call %d in a second", i+1))
	}
	expect(t, f.serve(path, `{"dept_id":1}`), 90018, "21st call in a second")
	expect(t, f.serve("/topapi/v2/department/listsub?access_token="+tok, `{}`), 0, "another API has its own limit")
	f.advance(time.Second)
	expect(t, f.serve(path, `{"dept_id":1}`), 0, "next second")
	// 10,000 calls from one IP in 20 s ban it for 5 minutes, with a body that is not the errcode
	// format. Ten apps × five APIs × 20 calls fit the per-app limit in each second.
	f.sim.SetRateLimits(true)
	var toks []string
	for k := 0; k < 10; k++ {
		key := fmt.Sprintf("bulk%d", k)
		f.sim.cfg.Apps = append(f.sim.cfg.Apps, App{AppKey: key, AppSecret: "s"})
	}
	for k := 0; k < 10; k++ {
		toks = append(toks, f.token(fmt.Sprintf("bulk%d", k), "s")) // from 127.0.0.1: not counted for 192.0.2.7
	}
	apis := []string{"v2/department/get", "v2/department/listsub", "v2/department/listsubid", "user/listid", "v2/user/get"}
	n := 0
	for round := 0; round < 10; round++ {
		for _, tk := range toks {
			for _, api := range apis {
				for c := 0; c < 20; c++ {
					m := f.serve("/topapi/"+api+"?access_token="+tk, `{"dept_id":1,"userid":"zhangsan"}`)
					n++
					if errcode(m) != 0 || m["status"] != nil {
						t.Fatalf("call %d from one IP: %v", n, m)
					}
				}
			}
		}
		f.advance(time.Second)
	}
	m := f.serve(path, `{"dept_id":1}`)
	if m["status"] == nil || m["status"].(float64) != 1111 || m["punish"] != "deny" {
		t.Fatalf("call %d from one IP within 20 s = %v, want the ban body", n+1, m)
	}
	f.advance(4 * time.Minute)
	if m := f.serve(path, `{"dept_id":1}`); m["status"] == nil {
		t.Fatal("ban lifted before 5 minutes")
	}
	f.advance(2 * time.Minute)
	expect(t, f.serve(path, `{"dept_id":1}`), 0, "after the ban")
}

func TestFaults(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(appKey, appSecret)
	http.Post(f.srv.URL+"/_sim/faults", "application/json", strings.NewReader(`{"api":"v2/user/list","errcode":-1,"count":1}`))
	expect(t, f.oapi(tok, "v2/user/list", map[string]any{"dept_id": 2, "cursor": 0, "size": 10}), -1, "injected")
	expect(t, f.oapi(tok, "v2/user/list", map[string]any{"dept_id": 2, "cursor": 0, "size": 10}), 0, "after the fault")
	http.Post(f.srv.URL+"/_sim/faults", "application/json", strings.NewReader(`{"api":"oauth2/accessToken","http_status":403,"count":1}`))
	st, m := f.do("POST", "/v1.0/oauth2/accessToken", map[string]string{"appKey": appKey, "appSecret": appSecret}, nil)
	if st != 403 || m["code"] == nil {
		t.Fatalf("injected HTTP status = %d %v", st, m)
	}
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// Access-limited employees are left out of v2/user/list and user/listsimple unless
// contain_access_limit is true (the parameter's meaning: "是否返回访问受限的员工"; absent = false).
func TestAccessLimited(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.AccessLimited = []string{"zhangsan"} })
	tok := f.token(appKey, appSecret)
	has := func(m map[string]any) bool {
		t.Helper()
		expect(t, m, 0, "list")
		for _, u := range m["result"].(map[string]any)["list"].([]any) {
			if u.(map[string]any)["userid"] == "zhangsan" {
				return true
			}
		}
		return false
	}
	page := map[string]any{"dept_id": 2, "cursor": 0, "size": 100}
	if has(f.oapi(tok, "v2/user/list", page)) || has(f.oapi(tok, "user/listsimple", page)) {
		t.Fatal("an access-limited employee was listed by default")
	}
	page["contain_access_limit"] = false
	if has(f.oapi(tok, "v2/user/list", page)) {
		t.Fatal("listed with contain_access_limit false")
	}
	page["contain_access_limit"] = true
	if !has(f.oapi(tok, "v2/user/list", page)) || !has(f.oapi(tok, "user/listsimple", page)) {
		t.Fatal("not listed with contain_access_limit true")
	}
	expect(t, f.oapi(tok, "v2/user/get", map[string]any{"userid": "zhangsan"}), 0, "v2/user/get of an access-limited employee")
	page["contain_access_limit"] = "maybe"
	expect(t, f.oapi(tok, "v2/user/list", page), 40035, "contain_access_limit not a boolean")
}
