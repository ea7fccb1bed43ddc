package wecomsim

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
	corp     = "ww5823bf96d3bd56c7"
	appSec   = "app-secret-old"
	app22Sec = "app-secret-2023"
	scopeSec = "app-secret-scoped"
	ipSec    = "app-secret-ip"
	contSec  = "contact-sync-secret"
	cbToken  = "QDG6eK"
	cbKey    = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
)

type fixture struct {
	t   *testing.T
	sim *Sim
	srv *httptest.Server
	now atomic.Int64 // unix nanos of the simulated clock
}

func newFixture(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	f := &fixture{t: t}
	f.now.Store(time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC).UnixNano())
	org := simorg.Generate("测试科技", 300, 7)
	cfg := Config{CorpID: corp, Org: org, ContactSecret: contSec, CallbackToken: cbToken, CallbackAESKey: cbKey, RateLimits: true,
		Now: func() time.Time { return time.Unix(0, f.now.Load()) },
		Apps: []App{
			{AgentID: 1000002, Name: "SSO", Secret: appSec, TrustedDomain: "sso.example.com"},
			{AgentID: 1000003, Name: "New", Secret: app22Sec, Post2022: true, TrustedDomain: "127.0.0.1:8080"},
			{AgentID: 1000004, Name: "Scoped", Secret: scopeSec, VisibleDepts: []int{2}, TrustedDomain: "sso.example.com"},
			{AgentID: 1000005, Name: "IP", Secret: ipSec, TrustedIPs: []string{"10.9.9.9"}, TrustedDomain: "sso.example.com"},
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

// call performs a request and decodes the JSON answer.
func (f *fixture) call(method, path string, body any) map[string]any {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		if s, ok := body.(string); ok {
			rd = strings.NewReader(s)
		} else {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
	}
	req, _ := http.NewRequest(method, f.srv.URL+path, rd)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		f.t.Fatalf("%s %s: HTTP %d (WeCom answers business errors with 200)", method, path, resp.StatusCode)
	}
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		f.t.Fatalf("%s %s: not JSON: %v", method, path, err)
	}
	return out
}

func errcode(m map[string]any) int { n, _ := m["errcode"].(float64); return int(n) }

func (f *fixture) token(secret string) string {
	f.t.Helper()
	m := f.call("GET", "/cgi-bin/gettoken?corpid="+corp+"&corpsecret="+url.QueryEscape(secret), nil)
	if errcode(m) != 0 {
		f.t.Fatalf("gettoken: %v", m)
	}
	return m["access_token"].(string)
}

func expect(t *testing.T, m map[string]any, code int, what string) {
	t.Helper()
	if errcode(m) != code {
		t.Fatalf("%s: errcode %d (%v), want %d", what, errcode(m), m["errmsg"], code)
	}
}

func TestGetToken(t *testing.T) {
	f := newFixture(t, nil)
	m := f.call("GET", "/cgi-bin/gettoken?corpid="+corp+"&corpsecret="+appSec, nil)
	expect(t, m, 0, "gettoken")
	if m["errmsg"] != "ok" || m["expires_in"].(float64) != 7200 || len(m["access_token"].(string)) > 512 {
		t.Fatalf("gettoken = %v", m)
	}
	f.advance(100 * time.Second)
	m2 := f.call("GET", "/cgi-bin/gettoken?corpid="+corp+"&corpsecret="+appSec, nil)
	if m2["access_token"] != m["access_token"] || m2["expires_in"].(float64) != 7100 {
		t.Fatalf("re-fetch inside the window gave %v", m2)
	}
	if other := f.token(contSec); other == m["access_token"] {
		t.Fatal("two secrets share a token")
	}
	f.advance(7200 * time.Second)
	if again := f.token(appSec); again == m["access_token"] {
		t.Fatal("expired token re-issued")
	}
	for q, code := range map[string]int{
		"corpsecret=" + appSec:                        41002,
		"corpid=wrong&corpsecret=" + appSec:           40013,
		"corpid=" + corp:                              41004,
		"corpid=" + corp + "&corpsecret=wrong-secret": 40001,
	} {
		m := f.call("GET", "/cgi-bin/gettoken?"+q, nil)
		expect(t, m, code, q)
		if !strings.Contains(m["errmsg"].(string), "from ip: 127.0.0.1") || !strings.Contains(m["errmsg"].(string), "more info at") {
			t.Fatalf("errmsg lacks the platform's suffix: %v", m["errmsg"])
		}
	}
}

// Expired tokens answer 40014 on today's platform; 42001 (documented) when configured.
func TestTokenErrors(t *testing.T) {
	for _, code := range []int{0, 42001} {
		f := newFixture(t, func(c *Config) { c.ExpiredTokenCode = code })
		want := code
		if want == 0 {
			want = 40014
		}
		expect(t, f.call("GET", "/cgi-bin/user/get?userid=zhangsan", nil), 41001, "no token")
		expect(t, f.call("GET", "/cgi-bin/user/get?userid=zhangsan&access_token=bogus", nil), 40014, "bad token")
		tok := f.token(appSec)
		expect(t, f.call("GET", "/cgi-bin/user/get?userid=zhangsan&access_token="+tok, nil), 0, "good token")
		f.advance(7201 * time.Second)
		m := f.call("GET", "/cgi-bin/user/get?userid=zhangsan&access_token="+tok, nil)
		expect(t, m, want, "expired token")
		if !strings.HasPrefix(m["errmsg"].(string), errText[want]+", hint: [") {
			t.Fatalf("expired token errmsg %q", m["errmsg"])
		}
		tok = f.token(appSec)
		f.sim.ExpireTokens()
		expect(t, f.call("GET", "/cgi-bin/user/get?userid=zhangsan&access_token="+tok, nil), want, "token expired early by the control")
		if f.token(appSec) == tok {
			t.Fatal("an early-expired token was handed out again")
		}
	}
}

func TestDepartmentReads(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(appSec)
	all := f.call("GET", "/cgi-bin/department/list?access_token="+tok, nil)
	expect(t, all, 0, "department/list")
	depts := all["department"].([]any)
	d, _ := f.sim.Org().Counts()
	if len(depts) != d {
		t.Fatalf("department/list = %d, org has %d", len(depts), d)
	}
	first := depts[0].(map[string]any)
	for _, k := range []string{"id", "name", "name_en", "department_leader", "parentid", "order"} {
		if _, ok := first[k]; !ok {
			t.Fatalf("department lacks %s: %v", k, first)
		}
	}
	if first["id"].(float64) != 1 || first["parentid"].(float64) != 0 {
		t.Fatalf("root = %v", first)
	}
	sub := f.call("GET", "/cgi-bin/department/list?id=2&access_token="+tok, nil)
	f.sim.Org().RLock()
	want := len(f.sim.Org().Subtree(2))
	f.sim.Org().RUnlock()
	if n := len(sub["department"].([]any)); n != want || sub["department"].([]any)[0].(map[string]any)["id"].(float64) != 2 {
		t.Fatalf("subtree of 2: %d departments, want %d including itself", n, want)
	}
	simple := f.call("GET", "/cgi-bin/department/simplelist?access_token="+tok, nil)
	row := simple["department_id"].([]any)[1].(map[string]any)
	if len(row) != 3 || row["parentid"] == nil || row["order"] == nil {
		t.Fatalf("simplelist row = %v", row)
	}
	expect(t, f.call("GET", "/cgi-bin/department/list?id=999999&access_token="+tok, nil), 60003, "missing department")
	get := f.call("GET", "/cgi-bin/department/get?id=2&access_token="+tok, nil)
	if get["department"].(map[string]any)["name"] != "研发部" {
		t.Fatalf("department/get = %v", get)
	}
	expect(t, f.call("GET", "/cgi-bin/department/get?access_token="+tok, nil), 40058, "department/get without id")
	// A scoped app sees its subtree only.
	stok := f.token(scopeSec)
	scoped := f.call("GET", "/cgi-bin/department/list?access_token="+stok, nil)
	if len(scoped["department"].([]any)) != want {
		t.Fatalf("scoped app sees %d departments, want %d", len(scoped["department"].([]any)), want)
	}
	expect(t, f.call("GET", "/cgi-bin/department/get?id=3&access_token="+stok, nil), 60011, "department outside scope")
}

func TestUserReads(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(appSec)
	u := f.call("GET", "/cgi-bin/user/get?userid=zhangsan&access_token="+tok, nil)
	expect(t, u, 0, "user/get")
	for _, k := range []string{"userid", "name", "department", "order", "position", "mobile", "gender", "email", "biz_mail",
		"is_leader_in_dept", "direct_leader", "avatar", "thumb_avatar", "telephone", "alias", "address", "extattr", "status",
		"qr_code", "main_department", "external_profile"} {
		if _, ok := u[k]; !ok {
			t.Errorf("user/get lacks %s", k)
		}
	}
	if u["name"] != "张三" || u["mobile"] != "13800000001" || u["status"].(float64) != 1 || u["gender"] != "1" {
		t.Fatalf("user/get = %v", u)
	}
	if f.call("GET", "/cgi-bin/user/get?userid=ZhangSan&access_token="+tok, nil)["userid"] != "zhangsan" {
		t.Fatal("userid lookup must be case-insensitive")
	}
	expect(t, f.call("GET", "/cgi-bin/user/get?userid=nobody&access_token="+tok, nil), 60111, "unknown user")
	expect(t, f.call("GET", "/cgi-bin/user/get?access_token="+tok, nil), 41009, "no userid")
	// The 2022-06-20 rule: a newer app gets no sensitive fields.
	nu := f.call("GET", "/cgi-bin/user/get?userid=zhangsan&access_token="+f.token(app22Sec), nil)
	for _, k := range []string{"mobile", "email", "biz_mail", "avatar", "qr_code", "address"} {
		if _, ok := nu[k]; ok {
			t.Errorf("post-2022 app got %s", k)
		}
	}
	if nu["gender"] != "0" || nu["name"] != "张三" {
		t.Fatalf("post-2022 user/get = %v", nu)
	}
	// One level vs recursive.
	direct := f.call("GET", "/cgi-bin/user/list?department_id=2&access_token="+tok, nil)["userlist"].([]any)
	deep := f.call("GET", "/cgi-bin/user/list?department_id=2&fetch_child=1&access_token="+tok, nil)["userlist"].([]any)
	if len(deep) <= len(direct) {
		t.Fatalf("fetch_child=1 gave %d users, one level %d", len(deep), len(direct))
	}
	if _, ok := direct[0].(map[string]any)["english_name"]; !ok {
		t.Fatal("user/list lacks english_name")
	}
	simple := f.call("GET", "/cgi-bin/user/simplelist?department_id=2&access_token="+tok, nil)["userlist"].([]any)
	if len(simple) != len(direct) || len(simple[0].(map[string]any)) != 3 {
		t.Fatalf("user/simplelist = %v", simple[0])
	}
	expect(t, f.call("GET", "/cgi-bin/user/list?access_token="+tok, nil), 40058, "user/list without department_id")
	expect(t, f.call("GET", "/cgi-bin/user/list?department_id=999999&access_token="+tok, nil), 60003, "user/list of a missing department")
	stok := f.token(scopeSec)
	expect(t, f.call("GET", "/cgi-bin/user/list?department_id=3&access_token="+stok, nil), 60011, "user/list outside scope")
}

func TestUserListID(t *testing.T) {
	f := newFixture(t, nil)
	expect(t, f.call("POST", "/cgi-bin/user/list_id?access_token="+f.token(appSec), map[string]any{"limit": 10}), 48002, "list_id with an app secret")
	tok := f.token(contSec)
	f.sim.Org().RLock()
	rows := f.sim.Org().RowsCount()
	f.sim.Org().RUnlock()
	seen, cursor, pages := 0, "", 0
	for {
		body := map[string]any{"limit": 100}
		if cursor != "" {
			body["cursor"] = cursor
		}
		m := f.call("POST", "/cgi-bin/user/list_id?access_token="+tok, body)
		expect(t, m, 0, "list_id")
		page := m["dept_user"].([]any)
		if len(page) > 100 {
			t.Fatalf("page of %d > limit", len(page))
		}
		seen += len(page)
		pages++
		cursor = m["next_cursor"].(string)
		if cursor == "" {
			break
		}
	}
	if seen != rows || pages != (rows+99)/100 {
		t.Fatalf("list_id paged %d rows in %d pages, want %d rows", seen, pages, rows)
	}
	expect(t, f.call("POST", "/cgi-bin/user/list_id?access_token="+tok, map[string]any{"limit": 0}), 40058, "limit 0")
	expect(t, f.call("POST", "/cgi-bin/user/list_id?access_token="+tok, map[string]any{"limit": 10001}), 40058, "limit 10001")
	expect(t, f.call("POST", "/cgi-bin/user/list_id?access_token="+tok, map[string]any{"cursor": "garbage!"}), 50100, "bad cursor")
	m := f.call("POST", "/cgi-bin/user/list_id?access_token="+tok, "{not json")
	expect(t, m, 40058, "bad JSON")
	if !strings.Contains(m["errmsg"].(string), "Warning: wrong json format.") {
		t.Fatalf("bad JSON errmsg = %v", m["errmsg"])
	}
}

// The 2022-08-15 rule as the platform answers it today: the contact-sync secret called from a
// newly added IP gets 48009 "api forbidden for contact assistant" from the full read APIs
// (reported in openscrm/api-server#26 for department/list and opsre/go-ldap-admin#378, whose
// devtool text reads "不再允许通讯录同步助手从新增IP读取通讯录详情"); the ID-only reads still
// work, and app secrets are not affected.
func TestContactRestrictedSecret(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.ContactRestricted = true })
	tok := f.token(contSec)
	for _, p := range []string{"/cgi-bin/user/get?userid=zhangsan", "/cgi-bin/department/list?x=1", "/cgi-bin/user/list?department_id=1",
		"/cgi-bin/user/simplelist?department_id=1", "/cgi-bin/department/get?id=1"} {
		m := f.call("GET", p+"&access_token="+tok, nil)
		expect(t, m, 48009, p)
		if msg := m["errmsg"].(string); !strings.HasPrefix(msg, "api forbidden for contact assistant, hint: [") ||
			!strings.Contains(msg, "devtool/query?e=48009") {
			t.Fatalf("%s: errmsg %q", p, msg)
		}
	}
	expect(t, f.call("GET", "/cgi-bin/department/simplelist?access_token="+tok, nil), 0, "simplelist")
	expect(t, f.call("GET", "/cgi-bin/department/simplelist?id=2&access_token="+tok, nil), 0, "simplelist of a subtree")
	expect(t, f.call("POST", "/cgi-bin/user/list_id?access_token="+tok, map[string]any{}), 0, "list_id")
	// The rule is about the contact assistant: an app secret still reads within its scope.
	atok := f.token(appSec)
	expect(t, f.call("GET", "/cgi-bin/user/get?userid=zhangsan&access_token="+atok, nil), 0, "user/get with the app secret")
	expect(t, f.call("GET", "/cgi-bin/department/list?access_token="+atok, nil), 0, "department/list with the app secret")
	// The console switch: the IP grandfathered again, then restricted again.
	resp, err := http.Post(f.srv.URL+"/_sim/contact-restricted", "application/json", strings.NewReader(`{"enabled":false}`))
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("switch off: %v %v", resp, err)
	}
	expect(t, f.call("GET", "/cgi-bin/user/get?userid=zhangsan&access_token="+tok, nil), 0, "user/get once unrestricted")
	f.sim.SetContactRestricted(true)
	expect(t, f.call("GET", "/cgi-bin/user/get?userid=zhangsan&access_token="+tok, nil), 48009, "user/get restricted again")
	if resp, _ := http.Post(f.srv.URL+"/_sim/contact-restricted", "application/json", strings.NewReader(`{}`)); resp.StatusCode != 400 {
		t.Fatalf("switch without enabled: HTTP %d", resp.StatusCode)
	}
}

func TestWrites(t *testing.T) {
	f := newFixture(t, nil)
	expect(t, f.call("POST", "/cgi-bin/department/create?access_token="+f.token(appSec), map[string]any{"name": "x", "parentid": 1}), 48002, "write with an app secret")
	tok := f.token(contSec)
	p := func(path string) string { return path + "?access_token=" + tok }
	m := f.call("POST", p("/cgi-bin/department/create"), map[string]any{"name": "新部门", "parentid": 1, "order": 5})
	expect(t, m, 0, "department/create")
	if m["errmsg"] != "created" || m["id"] == nil {
		t.Fatalf("create = %v", m)
	}
	newID := int(m["id"].(float64))
	for _, tc := range []struct {
		body map[string]any
		code int
	}{
		{map[string]any{"name": "bad:name", "parentid": 1}, 60009},
		{map[string]any{"name": strings.Repeat("长", 33), "parentid": 1}, 60001},
		{map[string]any{"name": "孤儿", "parentid": 999999}, 60004},
		{map[string]any{"name": "新部门", "parentid": 1}, 60008},
		{map[string]any{"name": "重复ID", "parentid": 1, "id": newID}, 60008},
		{map[string]any{"name": "根", "parentid": 1, "id": 1}, 60123},
	} {
		expect(t, f.call("POST", p("/cgi-bin/department/create"), tc.body), tc.code, fmt.Sprint(tc.body))
	}
	child := int(f.call("POST", p("/cgi-bin/department/create"), map[string]any{"name": "子部门", "parentid": newID})["id"].(float64))
	expect(t, f.call("POST", p("/cgi-bin/department/update"), map[string]any{"id": newID, "parentid": child}), 60010, "cycle")
	m = f.call("POST", p("/cgi-bin/department/update"), map[string]any{"id": child, "name": "改名"})
	if errcode(m) != 0 || m["errmsg"] != "updated" {
		t.Fatalf("update = %v", m)
	}
	expect(t, f.call("POST", p("/cgi-bin/department/update"), map[string]any{"id": 999999, "name": "x"}), 60003, "update missing")

	user := map[string]any{"userid": "lisi", "name": "李四", "department": []int{child}, "mobile": "13900000000", "email": "lisi@example.com"}
	m = f.call("POST", p("/cgi-bin/user/create"), user)
	if errcode(m) != 0 || m["errmsg"] != "created" {
		t.Fatalf("user/create = %v", m)
	}
	many := make([]int, 101)
	for i := range many {
		many[i] = 1
	}
	for _, tc := range []struct {
		body map[string]any
		code int
	}{
		{map[string]any{"userid": "LISI", "name": "x", "department": []int{1}, "email": "other@example.com"}, 60102},
		{map[string]any{"userid": "-bad", "name": "x", "department": []int{1}, "email": "b@example.com"}, 40003},
		{map[string]any{"name": "x", "department": []int{1}, "email": "b@example.com"}, 41009},
		{map[string]any{"userid": "u1", "name": "x", "email": "b@example.com"}, 60127},
		{map[string]any{"userid": "u1", "name": "x", "department": many, "email": "b@example.com"}, 60110},
		{map[string]any{"userid": "u1", "name": "x", "department": []int{1}}, 60129},
		{map[string]any{"userid": "u1", "name": "x", "department": []int{1}, "mobile": "abc"}, 60103},
		{map[string]any{"userid": "u1", "name": "x", "department": []int{1}, "mobile": "13900000000"}, 60104},
		{map[string]any{"userid": "u1", "name": "x", "department": []int{1}, "email": "nope"}, 60105},
		{map[string]any{"userid": "u1", "name": "x", "department": []int{1}, "email": "lisi@example.com"}, 60106},
		{map[string]any{"userid": "u1", "name": "x", "department": []int{1}, "email": "u1@example.com", "is_leader_in_dept": []int{1, 0}}, 60132},
		{map[string]any{"userid": "u1", "name": "", "department": []int{1}, "email": "u1@example.com"}, 60112},
		{map[string]any{"userid": "u1", "name": "x", "department": []int{999999}, "email": "u1@example.com"}, 60003},
	} {
		expect(t, f.call("POST", p("/cgi-bin/user/create"), tc.body), tc.code, fmt.Sprint(tc.body))
	}
	m = f.call("POST", p("/cgi-bin/user/update"), map[string]any{"userid": "lisi", "position": "经理"})
	if errcode(m) != 0 || m["errmsg"] != "updated" {
		t.Fatalf("user/update = %v", m)
	}
	if got := f.call("GET", p("/cgi-bin/user/get")+"&userid=lisi", nil); got["position"] != "经理" || got["name"] != "李四" {
		t.Fatalf("update changed unspecified fields or missed the new one: %v", got)
	}
	expect(t, f.call("POST", p("/cgi-bin/user/update"), map[string]any{"userid": "ghost", "name": "x"}), 60111, "update missing user")
	expect(t, f.call("GET", p("/cgi-bin/department/delete")+"&id="+fmt.Sprint(child), nil), 60005, "delete dept with members")
	expect(t, f.call("GET", p("/cgi-bin/department/delete")+"&id="+fmt.Sprint(newID), nil), 60006, "delete dept with subs")
	expect(t, f.call("GET", p("/cgi-bin/department/delete")+"&id=1", nil), 60007, "delete root")
	expect(t, f.call("GET", p("/cgi-bin/department/delete")+"&id=999999", nil), 60003, "delete missing")
	ids := make([]string, 201)
	for i := range ids {
		ids[i] = "lisi"
	}
	expect(t, f.call("POST", p("/cgi-bin/user/batchdelete"), map[string]any{"useridlist": ids}), 40032, "batchdelete > 200")
	expect(t, f.call("POST", p("/cgi-bin/user/batchdelete"), map[string]any{"useridlist": []string{"lisi", "ghost"}}), 40031, "batchdelete with an invalid userid")
	expect(t, f.call("GET", p("/cgi-bin/user/get")+"&userid=lisi", nil), 0, "lisi survives a failed batchdelete")
	m = f.call("GET", p("/cgi-bin/user/delete")+"&userid=lisi", nil)
	if errcode(m) != 0 || m["errmsg"] != "deleted" {
		t.Fatalf("user/delete = %v", m)
	}
	expect(t, f.call("GET", p("/cgi-bin/user/delete")+"&userid=lisi", nil), 60111, "delete twice")
	m = f.call("GET", p("/cgi-bin/department/delete")+"&id="+fmt.Sprint(child), nil)
	if errcode(m) != 0 || m["errmsg"] != "deleted" {
		t.Fatalf("department/delete = %v", m)
	}
}

func TestTrustedIP(t *testing.T) {
	f := newFixture(t, nil)
	m := f.call("GET", "/cgi-bin/user/get?userid=zhangsan&access_token="+f.token(ipSec), nil)
	expect(t, m, 60020, "call from an untrusted IP")
	if !strings.Contains(m["errmsg"].(string), "from ip: 127.0.0.1") {
		t.Fatalf("60020 must name the caller's IP: %v", m["errmsg"])
	}
}

// serve runs a request straight through the handler (no sockets) for the rate-limit tests.
func (f *fixture) serve(path string) int {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", path, nil)
	req.RemoteAddr = "192.0.2.10:5000"
	f.sim.ServeHTTP(rec, req)
	var m map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	return errcode(m)
}

func TestRateLimitPerMinuteAndHour(t *testing.T) {
	f := newFixture(t, nil)
	path := "/cgi-bin/department/get?id=2&access_token=" + f.token(appSec)
	for i := 0; i < 10000; i++ {
		if c := f.serve(path); c != 0 {
			t.Fatalf("call %d: errcode %d before the limit", i+1, c)
		}
	}
	if c := f.serve(path); c != 45009 {
		t.Fatalf("call 10001 in a minute: errcode %d, want 45009", c)
	}
	f.advance(59 * time.Second)
	if c := f.serve(path); c != 45009 {
		t.Fatalf("blocked for 60 s, but errcode %d at 59 s", c)
	}
	// Another API is counted separately.
	if c := f.serve("/cgi-bin/department/simplelist?id=2&access_token=" + f.token(appSec)); c != 0 {
		t.Fatalf("another API was blocked too: %d", c)
	}
	f.advance(2 * time.Second)
	if c := f.serve(path); c != 0 {
		t.Fatalf("after the block: errcode %d", c)
	}
	// 150,000 per hour: 10,000 a minute for 15 minutes reaches it.
	f.sim.SetRateLimits(true) // resets the counters
	total := 0
	for minute := 0; minute < 15; minute++ {
		for i := 0; i < 10000; i++ {
			if c := f.serve(path); c != 0 {
				t.Fatalf("minute %d call %d: %d", minute, i, c)
			}
			total++
		}
		f.advance(time.Minute)
	}
	if c := f.serve(path); c != 45009 {
		t.Fatalf("call %d in an hour: errcode %d, want 45009", total+1, c)
	}
	f.advance(30 * time.Minute)
	if c := f.serve(path); c != 45009 {
		t.Fatalf("hour limit blocks for 60 min; errcode %d after 30", c)
	}
	f.sim.SetRateLimits(false)
	if c := f.serve(path); c != 0 {
		t.Fatalf("limits off: %d", c)
	}
}

func TestFaultsAndCallLog(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(appSec)
	f.sim.Kit().ClearCalls()
	resp, err := http.Post(f.srv.URL+"/_sim/faults", "application/json", strings.NewReader(`{"api":"user/get","errcode":-1,"count":2}`))
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("inject: %v %v", resp, err)
	}
	for i := 0; i < 2; i++ {
		expect(t, f.call("GET", "/cgi-bin/user/get?userid=zhangsan&access_token="+tok, nil), -1, "injected")
	}
	expect(t, f.call("GET", "/cgi-bin/user/get?userid=zhangsan&access_token="+tok, nil), 0, "after the injected errors")
	http.Post(f.srv.URL+"/_sim/faults", "application/json", strings.NewReader(`{"api":"*","latency_ms":150,"count":1}`))
	start := time.Now()
	f.call("GET", "/cgi-bin/department/get?id=1&access_token="+tok, nil)
	if time.Since(start) < 150*time.Millisecond {
		t.Fatal("latency not injected")
	}
	calls := f.sim.Kit().Calls()
	if len(calls) != 4 || calls[0].API != "user/get" || calls[0].ErrCode != -1 || calls[2].ErrCode != 0 {
		t.Fatalf("call log = %+v", calls)
	}
	r, _ := http.Get(f.srv.URL + "/_sim/calls")
	var logged []map[string]any
	json.NewDecoder(r.Body).Decode(&logged)
	if len(logged) != 4 {
		t.Fatalf("GET /_sim/calls = %d entries", len(logged))
	}
}

// ---- login

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// Setting a trusted domain needs the ownership file the console hands out (WW_verify_….txt)
// served at the domain's root; the domain does not change until it answers.
func TestTrustedDomainVerification(t *testing.T) {
	f := newFixture(t, nil)
	r, err := http.Get(f.srv.URL + "/_sim/apps/1000002/domain-verification")
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("verification file: %v %v", r, err)
	}
	var vf struct{ File, Content string }
	json.NewDecoder(r.Body).Decode(&vf)
	r.Body.Close()
	if !strings.HasPrefix(vf.File, "WW_verify_") || !strings.HasSuffix(vf.File, ".txt") || vf.Content == "" {
		t.Fatalf("verification file = %+v", vf)
	}
	serving := ""
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/"+vf.File && serving != "" {
			io.WriteString(w, serving)
			return
		}
		http.NotFound(w, r)
	}))
	defer site.Close()
	host := strings.TrimPrefix(site.URL, "http://")
	set := func() int {
		resp, err := http.Post(f.srv.URL+"/_sim/apps/1000002/trusted-domain", "application/json", strings.NewReader(`{"domain":"`+host+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	login := func() int {
		resp, err := noRedirect.Get(f.srv.URL + "/wwlogin/sso/login?login_type=CorpApp&appid=" + corp + "&agentid=1000002&redirect_uri=" +
			url.QueryEscape(site.URL+"/cb") + "&state=s")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if set() != 400 {
		t.Fatal("a domain without the file was accepted")
	}
	serving = "wrong content"
	if set() != 400 {
		t.Fatal("a domain serving other content was accepted")
	}
	if login() == 200 {
		t.Fatal("login redirected to an unverified domain")
	}
	serving = vf.Content + "\n"
	if set() != 204 {
		t.Fatal("a verified domain was refused")
	}
	if login() != 200 {
		t.Fatal("login page refused the verified trusted domain")
	}
}

// TestDepartmentRules: at most 15 levels (root included) on create and on move (60002), a
// department name unique among its siblings on create, rename and move (60008).
func TestDepartmentRules(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(contSec)
	p := func(path string) string { return path + "?access_token=" + tok }
	create := func(name string, parent int) map[string]any {
		return f.call("POST", p("/cgi-bin/department/create"), map[string]any{"name": name, "parentid": parent})
	}
	parent := 1
	var chain []int
	for level := 2; level <= 15; level++ {
		m := create(fmt.Sprintf("层级%d", level), parent)
		expect(t, m, 0, fmt.Sprintf("level %d", level))
		parent = int(m["id"].(float64))
		chain = append(chain, parent)
	}
	expect(t, create("第16层", parent), 60002, "a 16th level")
	// A two-level subtree moved under level 14 would reach 16.
	a := int(create("甲", 1)["id"].(float64))
	create("乙", a)
	expect(t, f.call("POST", p("/cgi-bin/department/update"), map[string]any{"id": a, "parentid": chain[len(chain)-2]}), 60002, "move too deep")
	expect(t, f.call("POST", p("/cgi-bin/department/update"), map[string]any{"id": a, "parentid": chain[len(chain)-3]}), 0, "move to level 15")
	b := int(create("丙", 1)["id"].(float64))
	create("丁", 1)
	expect(t, f.call("POST", p("/cgi-bin/department/update"), map[string]any{"id": b, "name": "丁"}), 60008, "rename to a sibling's name")
	dup := int(create("层级2", a)["id"].(float64)) // same name as a root child, elsewhere: allowed
	expect(t, f.call("POST", p("/cgi-bin/department/update"), map[string]any{"id": dup, "parentid": 1}), 60008, "move next to a same-named sibling")
	expect(t, f.call("POST", p("/cgi-bin/department/update"), map[string]any{"id": b, "name": "丙"}), 0, "rename to its own name")
}
