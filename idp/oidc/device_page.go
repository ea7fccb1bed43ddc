package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/qiao-gateway/qiao/internal/state"
	"github.com/qiao-gateway/qiao/pages"
	"github.com/qiao-gateway/qiao/session"
)

// sessionView is the SSO session that answers a device confirmation, with the person's name.
type sessionView struct {
	sess *session.Session
	name string
}

// The verification pages of the device flow: {issuer}/device takes the user code, the broker logs
// the person on, {issuer}/device/confirm shows which app on which device asks and takes the
// person's approval or refusal. Every form carries the CSRF token; wrong user codes are counted per
// IP address and per browser, and past either limit the page says so instead of checking more.

var (
	devHeading     = pages.Text2{"连接设备", "Connect a device"}
	devEnterMsg    = pages.Text2{"输入设备上显示的验证码。", "Enter the code shown on your device."}
	devConfirmHead = pages.Text2{"确认这台设备", "Confirm this device"}
	devConfirmMsg  = pages.Text2{"一台设备上的应用请求以你的身份登录。只有这台设备是你自己的、并且显示的验证码与下面一致时，才允许。",
		"An app on a device asks to sign in as you. Allow it only if the device is yours and it shows the code below."}
	devWrongCode = pages.Text2{"验证码不正确或已过期，请核对设备上显示的验证码。", "The code is wrong or expired; check the code shown on your device."}
	devLabels    = map[string]pages.Text2{
		"Client": {"应用", "App"}, "Person": {"登录身份", "Signing in as"}, "Code": {"验证码", "Code"},
		"Approve": {"允许", "Allow"}, "Deny": {"拒绝", "Deny"},
		"Help": {"验证码由 8 个字母组成，例如 BCDF-GHJK。", "The code has 8 letters, for example BCDF-GHJK."},
	}
)

func (p *Provider) devicePage(w http.ResponseWriter, r *http.Request, path string) {
	ent := info(r.Context()).enterprise
	switch {
	case path == "/device" && r.Method == http.MethodGet:
		p.renderDevice(w, r, http.StatusOK, map[string]any{"UserCode": r.URL.Query().Get("user_code")}, pages.Text2{})
	case path == "/device" && r.Method == http.MethodPost:
		p.deviceCodeEntered(w, r, ent)
	case path == "/device/confirm" && r.Method == http.MethodGet:
		p.deviceConfirmPage(w, r, ent)
	case path == "/device/confirm" && r.Method == http.MethodPost:
		p.deviceDecision(w, r, ent)
	default:
		w.Header().Set("Allow", "GET, POST")
		p.Pages.Message(w, r, http.StatusMethodNotAllowed, devHeading, pages.Text2{"不支持这种请求。", "This request is not supported."}, nil, "", pages.Text2{})
	}
}

// renderDevice renders the code form (data without "Confirm") or the confirmation.
func (p *Provider) renderDevice(w http.ResponseWriter, r *http.Request, status int, data map[string]any, errText pages.Text2) {
	t := pages.Lang(r)
	labels := map[string]string{}
	for k, v := range devLabels {
		labels[k] = v.In(t)
	}
	data["L"] = labels
	data["Title"] = devHeading.In(t)
	if data["Confirm"] == true {
		data["Heading"], data["Message"] = devConfirmHead.In(t), devConfirmMsg.In(t)
		data["Action"] = "/e/" + info(r.Context()).enterprise + "/device/confirm"
	} else {
		data["Heading"], data["Message"] = devHeading.In(t), devEnterMsg.In(t)
		data["Action"] = "/e/" + info(r.Context()).enterprise + "/device"
	}
	if errText != (pages.Text2{}) {
		data["Error"] = errText.In(t)
	}
	p.Pages.Render(w, r, status, "device.html", data)
}

func (p *Provider) deviceExpiredPage(w http.ResponseWriter, r *http.Request) {
	p.Pages.Message(w, r, http.StatusBadRequest, devHeading,
		pages.Text2{"这个设备请求已过期或已处理。请在设备上重新开始登录。", "This device request expired or was already answered. Start the sign-in on the device again."},
		nil, "/e/"+info(r.Context()).enterprise+"/device", pages.Text2{"输入其他验证码", "Enter another code"})
}

func (p *Provider) deviceUnavailable(w http.ResponseWriter, r *http.Request, what string, err error) {
	p.Log.Error("oidc device page: "+what, "err", err)
	p.Pages.StoreUnavailable(w, r)
}

// guessKeys are the wrong-code counters of the caller's IP address and browser (its CSRF cookie,
// which every form post carries).
func (p *Provider) guessKeys(r *http.Request) (ip, browser string) {
	ip = "oidc:devguess:ip:" + hashToken(p.clientIP(r))
	if c, err := r.Cookie("qiao_csrf"); err == nil {
		browser = "oidc:devguess:b:" + hashToken(c.Value)
	}
	return ip, browser
}

func (p *Provider) tooManyGuesses(ctx context.Context, ipKey, browserKey string) (bool, error) {
	t := p.deviceTiming()
	for _, k := range []struct {
		key   string
		limit int
	}{{ipKey, t.GuessesPerIP}, {browserKey, t.GuessesPerBrowser}} {
		if k.key == "" {
			continue
		}
		b, err := p.State.Get(ctx, k.key)
		if errors.Is(err, state.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		if n, err := strconv.Atoi(string(b)); err == nil && n >= k.limit {
			return true, nil
		}
	}
	return false, nil
}

func (p *Provider) deviceCodeEntered(w http.ResponseWriter, r *http.Request, ent string) {
	ctx := r.Context()
	if !pages.CSRFOK(r) {
		p.Pages.Message(w, r, http.StatusForbidden, devHeading, pages.Text2{"页面已过期，请重试。", "The page expired; please try again."},
			nil, "/e/"+ent+"/device", pages.Text2{"重试", "Try again"})
		return
	}
	typed := r.PostForm.Get("user_code")
	ipKey, browserKey := p.guessKeys(r)
	over, err := p.tooManyGuesses(ctx, ipKey, browserKey)
	if err != nil {
		p.deviceUnavailable(w, r, "read guess counters", err)
		return
	}
	if over {
		t := p.deviceTiming()
		mins := int((t.GuessWindow + time.Minute - 1) / time.Minute)
		w.Header().Set("Retry-After", retryAfter(t.GuessWindow.Seconds()))
		p.Pages.Message(w, r, http.StatusTooManyRequests, pages.Text2{"尝试次数过多", "Too many attempts"},
			pages.Text2{"输错验证码的次数太多。请在 " + strconv.Itoa(mins) + " 分钟后再试，并核对设备上显示的验证码。",
				"Too many wrong codes were entered. Try again in " + strconv.Itoa(mins) + " minutes, and check the code shown on your device."},
			nil, "", pages.Text2{})
		return
	}
	code := normalizeUserCode(typed)
	var g *deviceGrant
	var h string
	if code != "" {
		b, err := p.State.Get(ctx, userCodeKey(ent, code))
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			p.deviceUnavailable(w, r, "read user code", err)
			return
		}
		if err == nil {
			h = string(b)
			g, err = p.loadDevice(ctx, deviceKey(ent, h))
			if err != nil && !errors.Is(err, state.ErrNotFound) {
				p.deviceUnavailable(w, r, "read device code", err)
				return
			}
		}
	}
	if g == nil || g.Status != devicePending || !p.now().Before(g.Expires) {
		t := p.deviceTiming()
		for _, k := range []string{ipKey, browserKey} {
			if k != "" {
				if _, err := p.State.Incr(ctx, k, t.GuessWindow); err != nil {
					p.Log.Warn("oidc device page: count wrong code", "err", err)
				}
			}
		}
		p.renderDevice(w, r, http.StatusBadRequest, map[string]any{"UserCode": typed}, devWrongCode)
		return
	}
	// The confirmation is reached by a fresh handle, not the user code: the code stays off URLs,
	// histories and the broker's return parameter.
	id := newID(24)
	if err := p.State.Put(ctx, deviceConfirmKey(ent, id), []byte(h), g.Expires.Sub(p.now())); err != nil {
		p.deviceUnavailable(w, r, "store confirmation", err)
		return
	}
	http.Redirect(w, r, "/e/"+ent+"/device/confirm?"+url.Values{"id": {id}}.Encode(), http.StatusSeeOther)
}

// deviceOfHandle finds the pending device grant a confirmation handle names.
func (p *Provider) deviceOfHandle(ctx context.Context, ent, id string) (*deviceGrant, string, error) {
	if id == "" || len(id) > 64 {
		return nil, "", state.ErrNotFound
	}
	h, err := p.State.Get(ctx, deviceConfirmKey(ent, id))
	if err != nil {
		return nil, "", err
	}
	g, err := p.loadDevice(ctx, deviceKey(ent, string(h)))
	if err != nil {
		return nil, "", err
	}
	if g.Status != devicePending || !p.now().Before(g.Expires) {
		return nil, "", state.ErrNotFound
	}
	return g, string(h), nil
}

// deviceSession returns the SSO session that may answer for this enterprise, or sends the browser
// to the broker to log on and come back (nil).
func (p *Provider) deviceSession(w http.ResponseWriter, r *http.Request, ent, back string) *sessionView {
	sess, _ := p.Sessions.Load(r)
	if sess != nil && sess.User != "" && sess.Enterprise == ent {
		if err := p.st.activeUser(r.Context(), sess.User, sess.Source); err == nil {
			return &sessionView{sess: sess, name: info(r.Context()).user.Name}
		}
	}
	http.Redirect(w, r, "/login/e/"+ent+"?"+url.Values{"return": {back}}.Encode(), http.StatusSeeOther)
	return nil
}

func (p *Provider) deviceConfirmPage(w http.ResponseWriter, r *http.Request, ent string) {
	ctx := r.Context()
	id := r.URL.Query().Get("id")
	g, _, err := p.deviceOfHandle(ctx, ent, id)
	if errors.Is(err, state.ErrNotFound) {
		p.deviceExpiredPage(w, r)
		return
	}
	if err != nil {
		p.deviceUnavailable(w, r, "read confirmation", err)
		return
	}
	sv := p.deviceSession(w, r, ent, "/e/"+ent+"/device/confirm?"+url.Values{"id": {id}}.Encode())
	if sv == nil {
		return
	}
	c, err := p.st.client(ctx, g.Client)
	if err != nil {
		p.deviceExpiredPage(w, r)
		return
	}
	p.renderDevice(w, r, http.StatusOK, map[string]any{"Confirm": true, "ID": id, "ClientName": c.c.Name, "Person": sv.name,
		"UserCode": displayUserCode(g.UserCode)}, pages.Text2{})
}

func (p *Provider) deviceDecision(w http.ResponseWriter, r *http.Request, ent string) {
	ctx := r.Context()
	id := r.PostForm.Get("id")
	if !pages.CSRFOK(r) {
		p.Pages.Message(w, r, http.StatusForbidden, devConfirmHead, pages.Text2{"页面已过期，请重试。", "The page expired; please try again."},
			nil, "/e/"+ent+"/device/confirm?"+url.Values{"id": {id}}.Encode(), pages.Text2{"重试", "Try again"})
		return
	}
	decision := r.PostForm.Get("decision")
	if decision != "approve" && decision != "deny" {
		p.Pages.Message(w, r, http.StatusBadRequest, devConfirmHead, pages.Text2{"请选择允许或拒绝。", "Choose Allow or Deny."}, nil, "", pages.Text2{})
		return
	}
	g, h, err := p.deviceOfHandle(ctx, ent, id)
	if errors.Is(err, state.ErrNotFound) {
		p.deviceExpiredPage(w, r)
		return
	}
	if err != nil {
		p.deviceUnavailable(w, r, "read confirmation", err)
		return
	}
	sv := p.deviceSession(w, r, ent, "/e/"+ent+"/device/confirm?"+url.Values{"id": {id}}.Encode())
	if sv == nil {
		return
	}
	// The handle and the user code are spent whatever the answer: one decision per device code.
	if _, err := p.State.Take(ctx, deviceConfirmKey(ent, id)); errors.Is(err, state.ErrNotFound) {
		p.deviceExpiredPage(w, r)
		return
	} else if err != nil {
		p.deviceUnavailable(w, r, "take confirmation", err)
		return
	}
	_ = p.State.Delete(ctx, userCodeKey(ent, g.UserCode))
	if decision == "deny" {
		g.Status = deviceDenied
	} else {
		s := sv.sess
		g.Status, g.User, g.Source, g.SID, g.AuthTime, g.Family = deviceApproved, s.User, s.Source, s.SID, s.LoginTime(), newID(24)
		if s.AMR != "" {
			g.AMR = []string{s.AMR}
		}
	}
	b, _ := json.Marshal(g)
	if err := p.State.Replace(ctx, deviceKey(ent, h), b); err != nil {
		if errors.Is(err, state.ErrNotFound) {
			p.deviceExpiredPage(w, r)
			return
		}
		p.deviceUnavailable(w, r, "store decision", err)
		return
	}
	if decision == "deny" {
		p.Pages.Message(w, r, http.StatusOK, devConfirmHead, pages.Text2{"已拒绝。这台设备不会登录。", "Denied. The device will not be signed in."}, nil, "", pages.Text2{})
		return
	}
	// The device's tokens belong to the session like an app's: ending the session tells the client.
	if sv.sess.AddRP(g.Client) {
		if err := p.Sessions.Save(w, r, sv.sess); err != nil {
			p.Log.Warn("remember device client in session", "err", err)
		}
	}
	p.Pages.Message(w, r, http.StatusOK, pages.Text2{"设备已连接", "Device connected"},
		pages.Text2{"设备已获准登录，请回到设备上继续。这个页面可以关闭了。", "The device may now sign in. Go back to the device; you can close this page."}, nil, "", pages.Text2{})
}
