package wecom

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/simorg"
	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
)

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// scan completes a login on the simulator as who and returns the code the app receives.
func scan(t *testing.T, authURL, who string) string {
	t.Helper()
	resp, err := noRedirect.Get(authURL + "&sim_user=" + url.QueryEscape(who))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("login page answered %d for %s", resp.StatusCode, authURL)
	}
	u, _ := url.Parse(resp.Header.Get("Location"))
	return u.Query().Get("code")
}

func loginClient(t *testing.T) (*Client, *wecomsim.Setup) {
	s, base := setup(t, func(c *wecomsim.Config) { c.Apps[0].TrustedDomain = "sso.example.com" })
	st, _ := SettingsFrom(map[string]string{"corp_id": s.CorpID, "agent_id": "1000002", "api_base_url": base, "login_base_url": base,
		"open_base_url": base, "oauth_base_url": base}, map[string]string{"secret": s.Secret})
	c, err := NewClient(st)
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

func TestQRAndInAppLogin(t *testing.T) {
	c, s := loginClient(t)
	cb := "https://sso.example.com/e/demo/sources/wecom/callback"
	for _, mode := range []string{LoginQR, LoginQRLegacy, LoginInApp} {
		u, err := c.AuthURL(mode, cb, "State123", "zh")
		if err != nil {
			t.Fatal(err)
		}
		id, err := c.Exchange(context.Background(), scan(t, strings.TrimSuffix(u, "#wechat_redirect"), "zhangsan"), "wecom_qr")
		if err != nil || id.UserID != "zhangsan" || len(id.Attrs) != 0 || id.Consented {
			t.Fatalf("%s: %+v %v", mode, id, err)
		}
	}
	u, _ := c.AuthURL(LoginInAppInfo, cb, "State123", "")
	if !strings.HasSuffix(u, "#wechat_redirect") || !strings.Contains(u, "scope=snsapi_privateinfo") {
		t.Fatalf("in-app URL = %s", u)
	}
	id, err := c.Exchange(context.Background(), scan(t, strings.TrimSuffix(u, "#wechat_redirect"), "zhangsan"), "wecom_inapp")
	if err != nil || id.Attrs["mobile"] != "13800000001" || id.Attrs["email"] == "" || id.Attrs["gender"] != "1" || !id.Consented {
		t.Fatalf("privateinfo identity = %+v %v", id, err)
	}
	// Gender "0" is WeCom's answer for a gender not disclosed: no value.
	if _, err := s.Config.Org.PutUser(&simorg.User{UserID: "gender0", Name: "未填性别", Depts: []int{1}, Status: simorg.StatusActive,
		Gender: "0", Mobile: "13900000000"}, true); err != nil {
		t.Fatal(err)
	}
	id, err = c.Exchange(context.Background(), scan(t, strings.TrimSuffix(u, "#wechat_redirect"), "gender0"), "wecom_inapp")
	if err != nil {
		t.Fatal(err)
	}
	if _, told := id.Attrs["gender"]; told || id.Attrs["mobile"] != "13900000000" || !id.Consented {
		t.Fatalf("privateinfo identity with gender 0 = %+v %v", id, err)
	}
	// Someone outside the corp, and a code used twice.
	u, _ = c.AuthURL(LoginQR, cb, "s", "")
	if _, err := c.Exchange(context.Background(), scan(t, u, "@outsider"), "wecom_qr"); !errors.Is(err, federation.ErrNotMember) {
		t.Fatalf("non-member: %v", err)
	}
	code := scan(t, u, "zhangsan")
	c.Exchange(context.Background(), code, "wecom_qr")
	if _, err := c.Exchange(context.Background(), code, "wecom_qr"); err == nil || !strings.Contains(err.Error(), "start the login again") {
		t.Fatalf("reused code: %v", err)
	}
	if _, err := c.AuthURL(LoginInApp, cb, "has-dash", ""); err == nil {
		t.Fatal("an in-app state with a dash accepted")
	}
	if !CallbackDomainOK(cb, "sso.example.com") || CallbackDomainOK(cb, "sso.example.com:8443") || CallbackDomainOK("https://evil.example.com/cb", "sso.example.com") {
		t.Fatal("CallbackDomainOK")
	}
}
