package dingtalk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/dingtalk/dingtalksim"
	"github.com/qiao-gateway/qiao/federation/simorg"
	"github.com/qiao-gateway/qiao/federation/upstream"
)

func setup(t *testing.T, mod func(*dingtalksim.Config)) (*dingtalksim.Setup, *Client) {
	t.Helper()
	s, _, c := setupSim(t, mod)
	return s, c
}

func setupSim(t *testing.T, mod func(*dingtalksim.Config)) (*dingtalksim.Setup, *dingtalksim.Sim, *Client) {
	t.Helper()
	s := dingtalksim.NewSetup(150, 19, "127.0.0.1:8080")
	if mod != nil {
		mod(&s.Config)
	}
	sim := dingtalksim.New(s.Config)
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	st, err := SettingsFrom(map[string]string{"corp_id": s.CorpID, "app_key": s.AppKey, "oapi_base_url": srv.URL, "api_base_url": srv.URL},
		map[string]string{"app_secret": s.AppSecret})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(st)
	if err != nil {
		t.Fatal(err)
	}
	c.SetBackoff(upstream.Backoff{Base: time.Millisecond, Max: 5 * time.Millisecond, Attempts: 3})
	return s, sim, c
}

func TestReaderAndScope(t *testing.T) {
	s, c := setup(t, nil)
	r := c.Reader()
	depts, err := r.Departments(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var users []federation.User
	if err := r.Users(context.Background(), depts, func(u federation.User) error { users = append(users, u); return nil }); err != nil {
		t.Fatal(err)
	}
	o := s.Config.Org
	o.RLock()
	present := 0
	for _, id := range o.UserIDs() {
		if st := o.User(id).Status; st == simorg.StatusActive || st == simorg.StatusNotActivated {
			present++
		}
	}
	sub := len(o.Subtree(2))
	o.RUnlock()
	d, _ := o.Counts()
	if len(depts) != d || len(users) != present {
		t.Fatalf("read %d depts, %d users; want %d, %d", len(depts), len(users), d, present)
	}
	part, err := c.Reader().Departments(context.Background(), []string{"2"})
	if err != nil || len(part) != sub || part[0].ParentID != "" {
		t.Fatalf("subtree of 2: %d depts (want %d), root parent %q, %v", len(part), sub, part[0].ParentID, err)
	}
	if _, err := c.Reader().User(context.Background(), "nobody"); !errors.Is(err, federation.ErrNotFound) {
		t.Fatalf("missing user: %v", err)
	}
}

func TestActionableErrors(t *testing.T) {
	_, c := setup(t, func(cfg *dingtalksim.Config) { cfg.Apps[0].NoContactRead = true })
	_, err := c.Reader().Departments(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "permission") {
		t.Fatalf("60011: %v", err)
	}
	_, c = setup(t, func(cfg *dingtalksim.Config) { cfg.Apps[0].TrustedIPs = []string{"10.0.0.9"} })
	if _, err := c.Reader().Departments(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "allowlist") || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("60020: %v", err)
	}
	if _, err := SettingsFrom(map[string]string{}, map[string]string{}); err == nil || !strings.Contains(err.Error(), "app_key") {
		t.Fatalf("missing app_key: %v", err)
	}
}

func decode(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// A revoked or expired token on /topapi/* comes back as errcode 88 with sub_code 40014: the client
// drops the cached token, fetches a new one and retries once.
func TestTopapiTokenRevoked(t *testing.T) {
	ctx := context.Background()
	_, sim, c := setupSim(t, nil)
	if _, err := c.Reader().User(ctx, "zhangsan"); err != nil {
		t.Fatal(err)
	}
	sim.ExpireTokens() // what a secret reset does to the tokens already issued
	sim.Kit().ClearCalls()
	u, err := c.Reader().User(ctx, "zhangsan")
	if err != nil || u.UserID != "zhangsan" {
		t.Fatalf("after the token was revoked: %+v %v", u, err)
	}
	var apis []string
	for _, call := range sim.Kit().Calls() {
		apis = append(apis, fmt.Sprintf("%s:%d", call.API, call.ErrCode))
	}
	if strings.Join(apis, " ") != "v2/user/get:88 gettoken:0 v2/user/get:0" {
		t.Fatalf("calls = %v", apis)
	}
	// A missing permission arrives the same way and says what to grant.
	_, c2 := setup(t, func(cfg *dingtalksim.Config) { cfg.Apps[0].NoContactRead = true })
	_, err = c2.Reader().User(ctx, "zhangsan")
	var fe *federation.Error
	if !errors.As(err, &fe) || fe.Code != 60011 || !strings.Contains(err.Error(), "permission") || !strings.Contains(err.Error(), "errcode 88") {
		t.Fatalf("88/60011: %v", err)
	}
}

// gettoken with a bad AppKey or AppSecret: 40096 (as reported for today's platform), 40089 or
// 40001 all tell the admin to check them.
func TestBadCredentials(t *testing.T) {
	for _, code := range []int{40096, 0} {
		s, c := setup(t, func(cfg *dingtalksim.Config) { cfg.BadCredentialCode = code })
		st := c.s
		st.AppSecret = "wrong"
		bad, _ := NewClient(st)
		_, err := bad.Reader().User(context.Background(), "zhangsan")
		if err == nil || !strings.Contains(err.Error(), "AppKey or AppSecret was refused") {
			t.Fatalf("code %d: %v", code, err)
		}
		st.AppKey, st.AppSecret = "dingnobody", s.AppSecret
		bad, _ = NewClient(st)
		if _, err := bad.Reader().User(context.Background(), "zhangsan"); err == nil || !strings.Contains(err.Error(), "AppKey or AppSecret was refused") {
			t.Fatalf("code %d, unknown key: %v", code, err)
		}
	}
}

// The new API answers a bad token with HTTP 400 InvalidAuthentication.
func TestNewAPIInvalidAuthentication(t *testing.T) {
	_, c := setup(t, nil)
	var out map[string]any
	err := c.newAPI(context.Background(), "contact/users/me", http.MethodGet, "/v1.0/contact/users/me", nil, "bogus", &out)
	var fe *federation.Error
	if !errors.As(err, &fe) || fe.Code != http.StatusBadRequest || fe.SubCode != "InvalidAuthentication" || !strings.Contains(err.Error(), "token was refused") {
		t.Fatalf("users/me with a bad token: %v", err)
	}
}

// listsub has no order: the full read takes it from v2/department/get, so a full sync and an
// event's re-read (Department) agree.
func TestDepartmentOrder(t *testing.T) {
	ctx := context.Background()
	s, c := setup(t, nil)
	depts, err := c.Reader().Departments(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := s.Config.Org
	for _, d := range depts {
		o.RLock()
		var want int64
		if id, _ := strconv.Atoi(d.ID); o.Dept(id) != nil {
			want = int64(o.Dept(id).Order)
		}
		o.RUnlock()
		one, err := c.Reader().Department(ctx, d.ID)
		if err != nil || d.Order != want || one.Order != d.Order || one.Name != d.Name {
			t.Fatalf("department %s: full read order %d, detail %d (%v), upstream %d", d.ID, d.Order, one.Order, err, want)
		}
	}
}

// An access-limited employee (访问受限) is read, not silently skipped: v2/user/list leaves them
// out unless asked with contain_access_limit.
func TestAccessLimitedEmployeesRead(t *testing.T) {
	_, c := setup(t, func(cfg *dingtalksim.Config) { cfg.AccessLimited = []string{"zhangsan"} })
	r := c.Reader()
	depts, err := r.Departments(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	err = r.Users(context.Background(), depts, func(u federation.User) error {
		found = found || u.UserID == "zhangsan"
		return nil
	})
	if err != nil || !found {
		t.Fatalf("zhangsan (access-limited) read: %v, %v", found, err)
	}
}

// edition: standard uses the public hosts (a base URL may override one, for a simulator);
// edition: dedicated has hosts of its own, all three required together.
func TestEdition(t *testing.T) {
	s, sim, _ := setupSim(t, nil)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	sec := map[string]string{"app_secret": s.AppSecret}
	std, err := ParseConfig(map[string]string{"app_key": s.AppKey}, sec)
	if err != nil || std.Validate() != nil || std.Edition != EditionStandard || std.OAPIBase != DefaultOAPIBase || std.LoginBase != DefaultLoginBase {
		t.Fatalf("standard = %+v %v", std, err)
	}
	for _, missing := range []string{"oapi_base_url", "api_base_url", "login_base_url"} {
		cfg := map[string]string{"app_key": s.AppKey, "edition": "dedicated", "oapi_base_url": srv.URL, "api_base_url": srv.URL, "login_base_url": srv.URL}
		delete(cfg, missing)
		c, _ := ParseConfig(cfg, sec)
		var se *federation.SettingError
		if err := c.Validate(); !errors.As(err, &se) || se.Key != "config."+missing || !strings.Contains(se.Reason, "dedicated") {
			t.Fatalf("dedicated without %s: %v", missing, err)
		}
	}
	c, _ := ParseConfig(map[string]string{"app_key": s.AppKey, "edition": "dedicated", "oapi_base_url": srv.URL, "api_base_url": "ftp://x", "login_base_url": srv.URL}, sec)
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "api_base_url") {
		t.Fatalf("dedicated with a bad URL: %v", err)
	}
	c, _ = ParseConfig(map[string]string{"app_key": s.AppKey, "edition": "pro"}, sec)
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "config.edition") {
		t.Fatalf("unknown edition: %v", err)
	}
	// A dedicated deployment (the simulator standing in for its hosts) is read and logged in to
	// through its own hosts.
	ded, _ := ParseConfig(map[string]string{"app_key": s.AppKey, "corp_id": s.CorpID, "edition": "dedicated",
		"oapi_base_url": srv.URL + "/", "api_base_url": srv.URL, "login_base_url": srv.URL}, sec)
	r, err := ded.Reader()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.(*Reader).User(context.Background(), "zhangsan"); err != nil {
		t.Fatalf("dedicated read: %v", err)
	}
	l, err := ded.Login()
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := l.AuthURL("http://127.0.0.1:8080/cb", "st", "", false); !strings.HasPrefix(u, srv.URL+"/oauth2/auth?") {
		t.Fatalf("dedicated login URL = %s", u)
	}
}
