package gateway

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/qiao-gateway/qiao/idp/oidc"
	"github.com/qiao-gateway/qiao/internal/browsertest"
)

// The wrong-code counters per address live in Redis across tests and runs: each test's browsers
// have their own address, through X-Forwarded-For from loopback (trustLoopback).
type fromAddr struct {
	ip   string
	next http.RoundTripper
}

func (f fromAddr) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", f.ip)
	return f.next.RoundTrip(r)
}

// newBrowserAt is newBrowser at its own address (198.18.0.0/15, for benchmarks: never routed here).
func newBrowserAt(t *testing.T, ip string) *browser {
	b := newBrowser(t)
	b.c.Transport = fromAddr{ip: ip, next: http.DefaultTransport}
	return b
}

func testAddr() string {
	return fmt.Sprintf("198.%d.%d.%d", 18+rand.IntN(2), rand.IntN(256), 1+rand.IntN(254))
}

// The device flow (RFC 8628): device authorization, the verification pages behind the broker's
// logon, the poll's answers in order, single use, and the limits on polling and on guessing user
// codes — on SQLite+memory and PostgreSQL+Redis.

func (o *oidcWorld) deviceAuthz(form url.Values, basic ...string) (int, map[string]any) {
	req, _ := http.NewRequest("POST", o.iss+"/device_authorization", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if len(basic) == 2 {
		req.SetBasicAuth(basic[0], basic[1])
	}
	st, m, _ := getJSON(o.t, req)
	return st, m
}

func (o *oidcWorld) pollDevice(dc string) (int, map[string]any) {
	return o.token(url.Values{"grant_type": {oidc.GrantDeviceCode}, "device_code": {dc}, "client_id": {"sase-client"}})
}

// pollDeviceUntil polls as a well-behaved device does (the interval, plus the slow_down step after
// each slow_down) until the answer is neither authorization_pending nor slow_down, with a ceiling.
func (o *oidcWorld) pollDeviceUntil(dc string, interval, step time.Duration) (int, map[string]any) {
	o.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st, m := o.pollDevice(dc)
		switch m["error"] {
		case "slow_down":
			interval += step
		case "authorization_pending":
		default:
			return st, m
		}
		time.Sleep(interval)
	}
	o.t.Fatal("the device poll did not settle")
	return 0, nil
}

var deviceIDRe = regexp.MustCompile(`name="id" value="([^"]+)"`)

// enterUserCode posts a user code on the verification page in browser b and returns the page
// the browser ends on (the confirmation, once logged on) and the status.
func (o *oidcWorld) enterUserCode(b *browser, code string) (int, string, string) {
	o.t.Helper()
	st, page, _ := b.get(o.iss+"/device", "")
	if st != 200 || !strings.Contains(page, `name="user_code"`) {
		o.t.Fatalf("verification page: %d\n%s", st, page)
	}
	return b.post(o.iss+"/device", url.Values{"csrf": {csrfOf(o.t, page)}, "user_code": {code}})
}

func (o *oidcWorld) decideDevice(b *browser, confirmPage, decision string) (int, string) {
	o.t.Helper()
	m := deviceIDRe.FindStringSubmatch(confirmPage)
	if m == nil {
		o.t.Fatalf("no confirmation form:\n%s", confirmPage)
	}
	st, page, _ := b.post(o.iss+"/device/confirm", url.Values{"csrf": {csrfOf(o.t, confirmPage)}, "id": {m[1]}, "decision": {decision}})
	return st, page
}

func TestDeviceFlowAnswersInOrder(t *testing.T) {
	for name, backend := range backends(t) {
		t.Run(name, func(t *testing.T) {
			o := newOIDCWorldWith(t, backend, trustLoopback)
			const interval, step = time.Second, 500 * time.Millisecond
			o.gw.OIDC.SetDeviceTiming(oidc.DeviceTiming{Interval: interval, SlowDown: step})

			_, d, _ := getJSON(t, mustReq("GET", o.iss+"/.well-known/openid-configuration", ""))
			if d["device_authorization_endpoint"] != o.iss+"/device_authorization" || !strings.Contains(toJSON(d["grant_types_supported"]), oidc.GrantDeviceCode) {
				t.Fatalf("discovery: %v %v", d["device_authorization_endpoint"], d["grant_types_supported"])
			}
			// Allowed per client: demo-app is not registered for the device grant.
			demoApp, _ := o.gw.Store.GetClient(o.ctx, "demo", "demo-app")
			if st, m := o.deviceAuthz(url.Values{"scope": {"openid"}}, "demo-app", demoApp.Secret); st != 400 || m["error"] != "unauthorized_client" {
				t.Fatalf("demo-app device authorization: %d %v", st, m)
			}
			if st, m := o.deviceAuthz(url.Values{"scope": {"profile"}, "client_id": {"sase-client"}}); st != 400 || m["error"] != "invalid_scope" {
				t.Fatalf("without openid: %d %v", st, m)
			}
			if st, m := o.deviceAuthz(url.Values{"scope": {"openid"}, "client_id": {"nobody"}}); st != 401 || m["error"] != "invalid_client" {
				t.Fatalf("unknown client: %d %v", st, m)
			}

			st, da := o.deviceAuthz(url.Values{"scope": {"openid profile offline_access"}, "client_id": {"sase-client"}})
			if st != 200 || da["verification_uri"] != o.iss+"/device" || da["interval"] != float64(1) || da["expires_in"] != float64(600) {
				t.Fatalf("device authorization: %d %v", st, da)
			}
			uc, dc := da["user_code"].(string), da["device_code"].(string)
			if !regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`).MatchString(uc) ||
				da["verification_uri_complete"] != o.iss+"/device?user_code="+uc {
				t.Fatalf("user code %q, complete URI %v", uc, da["verification_uri_complete"])
			}
			if st, m := o.pollDevice(dc); st != 400 || m["error"] != "authorization_pending" {
				t.Fatalf("first poll: %d %v", st, m)
			}
			if st, m := o.pollDevice(dc); st != 400 || m["error"] != "slow_down" {
				t.Fatalf("poll at once: %d %v", st, m)
			}
			if st, m := o.pollDevice("not-a-device-code"); st != 400 || m["error"] != "invalid_grant" {
				t.Fatalf("unknown device code: %d %v", st, m)
			}

			// The person: the verification page sends the browser to the broker, then to the
			// confirmation, which names the app and the person.
			b := newBrowserAt(t, testAddr())
			st, page, at := o.enterUserCode(b, strings.ToLower(strings.ReplaceAll(uc, "-", " ")))
			if st != 200 || !strings.Contains(at, "/login/e/demo") || !strings.Contains(page, "/s/wecom") {
				t.Fatalf("code entered without a session: %d at %s\n%s", st, at, page)
			}
			u, _ := url.Parse(at)
			q := u.Query()
			q.Set("idp_hint", "wecom")
			u.RawQuery = q.Encode()
			st, page, at = b.get(u.String(), "zhangsan")
			if st != 200 || !strings.Contains(at, "/e/demo/device/confirm?id=") || !strings.Contains(page, "SASE client") ||
				!strings.Contains(page, "张三") || !strings.Contains(page, uc) {
				t.Fatalf("confirmation: %d at %s\n%s", st, at, page)
			}
			st, page = o.decideDevice(b, page, "approve")
			if st != 200 || !strings.Contains(page, "设备已连接") {
				t.Fatalf("approve: %d\n%s", st, page)
			}
			st, tok := o.pollDeviceUntil(dc, interval, step)
			if st != 200 || tok["access_token"] == nil || tok["refresh_token"] == nil || tok["id_token"] == nil {
				t.Fatalf("tokens: %d %v", st, tok)
			}
			claims, _ := o.verifyJWT(tok["id_token"].(string))
			if claims["sub"] != o.user("zhangsan").ID || claims["aud"] != "sase-client" && !strings.Contains(toJSON(claims["aud"]), "sase-client") ||
				toJSON(claims["amr"]) != `["wecom_qr"]` || claims["idp"] != "wecom" || claims["name"] != "张三" {
				t.Fatalf("ID token: %s", toJSON(claims))
			}
			// Single use: the device code is spent, and so is the user code.
			time.Sleep(interval)
			if st, m := o.pollDevice(dc); st != 400 || m["error"] != "invalid_grant" {
				t.Fatalf("device code polled again after its tokens: %d %v", st, m)
			}
			if st, page, _ := o.enterUserCode(b, uc); st != 400 || !strings.Contains(page, "验证码不正确或已过期") {
				t.Fatalf("a spent user code: %d\n%s", st, page)
			}
			// The refresh token is an ordinary one of sase-client.
			if st, m := o.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {"sase-client"}}); st != 200 || m["access_token"] == nil {
				t.Fatalf("refresh: %d %v", st, m)
			}
			// Userinfo with the device's access token.
			req := mustReq("GET", o.iss+"/userinfo", "")
			req.Header.Set("Authorization", "Bearer "+tok["access_token"].(string))
			if st, m, _ := getJSON(t, req); st != 200 || m["sub"] != o.user("zhangsan").ID {
				t.Fatalf("userinfo: %d %v", st, m)
			}

			// Denied: the session is there now, so the code goes straight to the confirmation.
			_, da = o.deviceAuthz(url.Values{"scope": {"openid"}, "client_id": {"sase-client"}})
			st, page, at = o.enterUserCode(b, da["user_code"].(string))
			if st != 200 || !strings.Contains(at, "/device/confirm?id=") {
				t.Fatalf("code entered with a session: %d at %s", st, at)
			}
			if st, page := o.decideDevice(b, page, "deny"); st != 200 || !strings.Contains(page, "已拒绝") {
				t.Fatalf("deny: %d\n%s", st, page)
			}
			if st, m := o.pollDeviceUntil(da["device_code"].(string), interval, step); st != 400 || m["error"] != "access_denied" {
				t.Fatalf("after deny: %d %v", st, m)
			}

			// Expired: a device code whose lifetime runs out while nobody answers.
			o.gw.OIDC.SetDeviceTiming(oidc.DeviceTiming{Interval: interval, SlowDown: step, Lifetime: 2 * time.Second})
			_, da = o.deviceAuthz(url.Values{"scope": {"openid"}, "client_id": {"sase-client"}})
			if st, m := o.pollDeviceUntil(da["device_code"].(string), interval, step); st != 400 || m["error"] != "expired_token" {
				t.Fatalf("after the lifetime: %d %v", st, m)
			}
			if st, page, _ := o.enterUserCode(b, da["user_code"].(string)); st != 400 || !strings.Contains(page, "验证码不正确或已过期") {
				t.Fatalf("an expired user code: %d\n%s", st, page)
			}
		})
	}
}

// TestDeviceUserCodeGuessing: wrong user codes are counted per browser and per IP address; past
// either limit the page says so and checks no more codes, right ones included; the device's
// grant is untouched.
func TestDeviceUserCodeGuessing(t *testing.T) {
	for name, backend := range backends(t) {
		t.Run(name, func(t *testing.T) {
			o := newOIDCWorldWith(t, backend, trustLoopback)
			o.gw.OIDC.SetDeviceTiming(oidc.DeviceTiming{Interval: time.Second, GuessesPerBrowser: 3, GuessesPerIP: 5})
			_, da := o.deviceAuthz(url.Values{"scope": {"openid"}, "client_id": {"sase-client"}})
			right := da["user_code"].(string)
			wrong := "BBBB-BBBB"
			if right == wrong {
				wrong = "CCCC-CCCC"
			}
			addr := testAddr()
			b1, b2 := newBrowserAt(t, addr), newBrowserAt(t, addr)
			// A form without its CSRF token is refused and not counted.
			if st, _, _ := b1.post(o.iss+"/device", url.Values{"user_code": {right}}); st != 403 {
				t.Fatalf("without CSRF: %d", st)
			}
			for i := 0; i < 3; i++ {
				if st, page, _ := o.enterUserCode(b1, wrong); st != 400 || !strings.Contains(page, `id="device-error"`) {
					t.Fatalf("wrong code %d: %d\n%s", i+1, st, page)
				}
			}
			st, page, _ := o.enterUserCode(b1, right)
			if st != 429 || !strings.Contains(page, "尝试次数过多") || !strings.Contains(page, "15") {
				t.Fatalf("the browser past its limit, with the right code: %d\n%s", st, page)
			}
			// Another browser from the same address: the address has two wrong codes left.
			for i := 0; i < 2; i++ {
				if st, _, _ := o.enterUserCode(b2, "not a code"); st != 400 {
					t.Fatalf("second browser, wrong code %d: %d", i+1, st)
				}
			}
			if st, _, _ := o.enterUserCode(b2, right); st != 429 {
				t.Fatalf("the address past its limit: %d", st)
			}
			// Nothing of the grant changed: the device is still waiting.
			if st, m := o.pollDevice(da["device_code"].(string)); st != 400 || m["error"] != "authorization_pending" {
				t.Fatalf("the device after the guesses: %d %v", st, m)
			}
		})
	}
}

// TestOpenIDClientDeviceFlow: openid-client (not our code) runs the device flow — discovery,
// device authorization, polling through authorization_pending, the ID token's checks, refresh and
// revocation — while Chromium plays the person: the verification page, the broker's source
// choice, the WeCom simulator's QR page, and the confirmation.
func TestOpenIDClientDeviceFlow(t *testing.T) {
	o := newOIDCWorld(t)
	o.gw.OIDC.SetDeviceTiming(oidc.DeviceTiming{Interval: time.Second})
	ctx := browsertest.New(t)
	res := runE2E(t, "device.mjs", []string{"ISSUER=" + o.iss}, func(msg map[string]any) (string, bool) {
		u, ok := msg["device"].(string)
		if !ok {
			return "", false
		}
		err := chromedp.Do(ctx,
			chromedp.Navigate(u),
			chromedp.WaitVisible(`#user_code`),
			chromedp.Click(`button[type="submit"]`),
			chromedp.WaitVisible(`ul.sources`),
			chromedp.Click(`a.button[href*="/s/wecom"]`),
			chromedp.WaitVisible(`img[alt^="QR code"]`),
			chromedp.Click(`button[value="zhangsan"]`),
			chromedp.WaitVisible(`#approve`),
		)
		if err != nil {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			t.Fatalf("%v (at %s)", err, loc)
		}
		facts, _ := chromedp.Run(ctx, chromedp.Text(`#device-facts`))
		if !strings.Contains(facts, "SASE client") || !strings.Contains(facts, "张三") || !strings.Contains(facts, msg["user_code"].(string)) {
			t.Fatalf("the confirmation shows %q", facts)
		}
		if err := chromedp.Do(ctx, chromedp.Click(`#approve`), chromedp.WaitVisible(`main h1`)); err != nil {
			t.Fatal(err)
		}
		return "approved", true
	})
	if res["sub"] != o.user("zhangsan").ID || toJSON(res["amr"]) != `["wecom_qr"]` {
		t.Fatalf("openid-client's ID token: %v", res)
	}
	t.Logf("openid-client device flow: user code %v, sub %v, amr %v", res["user_code"], res["sub"], res["amr"])
}
