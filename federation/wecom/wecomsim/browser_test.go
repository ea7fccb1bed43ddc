package wecomsim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/qiao-gateway/qiao/internal/browsertest"
)

// TestPersonScansInBrowser: a person opens the QR login page in Chromium, chooses 张三 in the
// "scan as" list, and lands on the app's callback with a code the app can exchange.
func TestPersonScansInBrowser(t *testing.T) {
	ctx := browsertest.New(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<!doctype html><title>app</title><p id="done">callback reached</p>`))
	}))
	defer app.Close()
	appHost := strings.TrimPrefix(app.URL, "http://")
	s := NewSetup(50, 9, appHost)
	sim := New(s.Config)
	defer sim.Close()
	srv := httptest.NewServer(sim)
	defer srv.Close()

	login := srv.URL + "/wwlogin/sso/login?login_type=CorpApp&appid=" + s.CorpID + "&agentid=1000002&state=st8&redirect_uri=" +
		url.QueryEscape(app.URL+"/e/demo/sources/wecom/callback")
	err := chromedp.Do(ctx,
		chromedp.Navigate(login),
		chromedp.WaitVisible(`img[alt^="QR code"]`),
		chromedp.Click(`button[value="zhangsan"]`),
		chromedp.WaitVisible(`#done`),
	)
	if err != nil {
		t.Fatal(err)
	}
	landed, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(landed)
	if u.Path != "/e/demo/sources/wecom/callback" || u.Query().Get("state") != "st8" || u.Query().Get("code") == "" {
		t.Fatalf("landed on %s", landed)
	}
	resp, err := http.Get(srv.URL + "/cgi-bin/gettoken?corpid=" + s.CorpID + "&corpsecret=" + s.Secret)
	if err != nil {
		t.Fatal(err)
	}
	var tok map[string]any
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	resp, _ = http.Get(srv.URL + "/cgi-bin/auth/getuserinfo?access_token=" + tok["access_token"].(string) + "&code=" + u.Query().Get("code"))
	var who map[string]any
	json.NewDecoder(resp.Body).Decode(&who)
	resp.Body.Close()
	if who["userid"] != "zhangsan" {
		t.Fatalf("getuserinfo = %v", who)
	}
}
