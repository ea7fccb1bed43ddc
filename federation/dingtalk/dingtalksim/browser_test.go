package dingtalksim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/qiao-gateway/qiao/internal/browsertest"
)

// TestPersonScansInBrowser: a person chooses 张三 on the DingTalk login page in Chromium and lands
// on the app with an authCode the app exchanges for a user token.
func TestPersonScansInBrowser(t *testing.T) {
	ctx := browsertest.New(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<!doctype html><title>app</title><p id="done">callback reached</p>`))
	}))
	defer app.Close()
	s := NewSetup(50, 9, strings.TrimPrefix(app.URL, "http://"))
	sim := New(s.Config)
	defer sim.Close()
	srv := httptest.NewServer(sim)
	defer srv.Close()
	login := srv.URL + "/oauth2/auth?response_type=code&scope=openid&prompt=consent&state=st9&client_id=" + s.AppKey +
		"&redirect_uri=" + url.QueryEscape(app.URL+"/e/demo/sources/dingtalk/callback")
	if err := chromedp.Do(ctx,
		chromedp.Navigate(login),
		chromedp.WaitVisible(`img[alt^="QR code"]`),
		chromedp.Click(`button[value="zhangsan"]`),
		chromedp.WaitVisible(`#done`),
	); err != nil {
		t.Fatal(err)
	}
	landed, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(landed)
	if u.Query().Get("authCode") == "" || u.Query().Get("state") != "st9" {
		t.Fatalf("landed on %s", landed)
	}
	body, _ := json.Marshal(map[string]string{"clientId": s.AppKey, "clientSecret": s.AppSecret, "code": u.Query().Get("authCode"), "grantType": "authorization_code"})
	resp, err := http.Post(srv.URL+"/v1.0/oauth2/userAccessToken", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var tok map[string]any
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/v1.0/contact/users/me", nil)
	req.Header.Set("x-acs-dingtalk-access-token", tok["accessToken"].(string))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var me map[string]any
	json.NewDecoder(resp.Body).Decode(&me)
	resp.Body.Close()
	if me["nick"] != "张三" {
		t.Fatalf("users/me = %v", me)
	}
}
