package dingtalk

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/dingtalk/dingtalksim"
)

func TestBrowserAndInAppLogin(t *testing.T) {
	s, c := setup(t, func(cfg *dingtalksim.Config) { cfg.Apps[0].RedirectDomain = "sso.example.com" })
	c.s.LoginBase = c.s.APIBase
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	scan := func(who string) string {
		resp, err := noRedirect.Get(c.AuthURL("https://sso.example.com/cb", "st") + "&sim_user=" + who)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		u, _ := url.Parse(resp.Header.Get("Location"))
		return u.Query().Get("authCode")
	}
	id, err := c.Exchange(context.Background(), scan("zhangsan"))
	if err != nil || id.UserID != "zhangsan" || id.UnionID == "" || id.Attrs["name"] != "张三" {
		t.Fatalf("identity = %+v %v", id, err)
	}
	if _, err := c.Exchange(context.Background(), scan("@outsider")); !errors.Is(err, federation.ErrNotMember) || errors.Is(err, federation.ErrExternalContact) {
		t.Fatalf("outsider: %v", err)
	}
	// An external contact (getbyunionid contact_type 1) is no member either, and said so.
	if _, err := c.Exchange(context.Background(), scan("@external")); !errors.Is(err, federation.ErrExternalContact) || !errors.Is(err, federation.ErrNotMember) {
		t.Fatalf("external contact: %v", err)
	}
	code := scan("zhangsan")
	c.Exchange(context.Background(), code)
	var fe *federation.Error
	if _, err := c.Exchange(context.Background(), code); !errors.As(err, &fe) || fe.SubCode != "invalidCode" {
		t.Fatalf("reused code: %v", err)
	}
	_ = s
}

func TestInAppFreeLogin(t *testing.T) {
	s, c := setup(t, nil)
	resp, err := http.Post(c.s.APIBase+"/_sim/jsapi/code", "application/json", strings.NewReader(`{"userid":"zhangsan"}`))
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Code string }
	decode(t, resp, &body)
	id, err := c.ExchangeInApp(context.Background(), body.Code)
	if err != nil || id.UserID != "zhangsan" {
		t.Fatalf("identity = %+v %v", id, err)
	}
	if _, err := c.ExchangeInApp(context.Background(), body.Code); err == nil || !strings.Contains(err.Error(), "40078") {
		t.Fatalf("reused code: %v", err)
	}
	_ = s
}
