// Package broker is the login broker: enterprise and source choice, upstream redirects, callback
// checks, and the resolution of an upstream identity to a directory user, ending in an SSO session.
package broker

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/internal/httpx"
	"github.com/qiao-gateway/qiao/internal/password"
	"github.com/qiao-gateway/qiao/internal/state"
	"github.com/qiao-gateway/qiao/pages"
	"github.com/qiao-gateway/qiao/session"
)

// Limits of the password fallback.
const (
	MaxUserFailures = 5                // then the account is locked for LockoutWindow
	MaxIPFailures   = 30               // per client IP per LockoutWindow
	LockoutWindow   = 15 * time.Minute // fixed window of the counters
	LoginTTL        = 10 * time.Minute // a started upstream login must come back within this
)

// LoginOpener opens a source's upstream login (federation/connectors.Login in production).
type LoginOpener func(src *directory.IdentitySource) (federation.Login, error)

// ConsentKeeper keeps in the directory what a login disclosed with the person's consent about
// the user linked to upstreamID at src; a nil task means nothing changed.
type ConsentKeeper func(ctx context.Context, src *directory.IdentitySource, upstreamID string, attrs map[string]string) (*directory.SyncTask, error)

// Broker serves the login pages and the upstream callbacks.
type Broker struct {
	Store       directory.Store
	State       state.Store
	Sessions    *session.Store
	Pages       *pages.Renderer
	ExternalURL string
	OpenLogin   LoginOpener
	Log         *slog.Logger
	ClientIP    func(*http.Request) string
	Now         func() time.Time
	// Consent keeps the fields a login disclosed with the person's consent (dirsync.Engine.Consent
	// in production); nil keeps nothing.
	Consent ConsentKeeper
	// Passwords bounds concurrent password checks (default: sized from the machine's memory).
	Passwords *password.Limiter
	// Version is shown on the start page.
	Version string
	// dummyHash equalises the time of a password check for an unknown user.
	dummyHash string
	passwords *password.Limiter
}

// Routes mounts the broker's endpoints.
func (b *Broker) Routes(m *http.ServeMux) {
	h, _ := password.Hash("qiao-dummy-password", password.Default)
	b.dummyHash = h
	b.passwords = b.Passwords
	if b.passwords == nil {
		b.passwords = password.NewLimiter(password.DefaultSlots(password.Default), 3*time.Second)
	}
	m.HandleFunc("GET /{$}", b.home)
	m.HandleFunc("GET /login", b.enterpriseForm)
	m.HandleFunc("POST /login", b.enterpriseSubmit)
	m.HandleFunc("GET /login/e/{enterprise}", b.sources)
	m.HandleFunc("GET /login/e/{enterprise}/s/{source}", b.start)
	m.HandleFunc("POST /login/e/{enterprise}/s/{source}/password", b.passwordSubmit)
	m.HandleFunc("GET /e/{enterprise}/sources/{source}/callback", b.callback)
	m.HandleFunc("GET /login/done", b.done)
	m.HandleFunc("POST /logout", b.logout)
}

func (b *Broker) now() time.Time {
	if b.Now == nil {
		return time.Now()
	}
	return b.Now()
}

// ---- page plumbing

// fail ends a login on a page that says what happened and what an admin can do, with the request
// ID as the reference that matches the log line.
func (b *Broker) fail(w http.ResponseWriter, r *http.Request, status int, reason string, user, admin pages.Text2, ent string, attrs ...any) {
	ref := httpx.RequestID(r.Context())
	b.Log.Warn("login failed", append([]any{"reason", reason, "enterprise", ent, "request_id", ref, "ip", b.ip(r)}, attrs...)...)
	again := "/login"
	if ent != "" && directory.ValidID(ent) {
		again = "/login/e/" + ent
	}
	b.Pages.LoginError(w, r, status, user, admin, again)
}

func (b *Broker) ip(r *http.Request) string {
	if b.ClientIP != nil {
		return b.ClientIP(r)
	}
	return r.RemoteAddr
}

func randomToken(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf)
	return base64.RawURLEncoding.EncodeToString(buf)
}

func (b *Broker) secure() bool { return strings.HasPrefix(b.ExternalURL, "https://") }

// safeReturn accepts only a path on the gateway's own origin, judged as a browser would resolve
// it (httpx.LocalRedirect), so the broker never redirects off the gateway.
func (b *Broker) safeReturn(v string) string {
	ext, err := url.Parse(b.ExternalURL)
	if err != nil {
		return ""
	}
	return httpx.LocalRedirect(ext, v)
}

// ---- enterprise and source choice

func (b *Broker) enterpriseForm(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ret := b.safeReturn(q.Get("return"))
	ent := q.Get("enterprise")
	if ent == "" && q.Get("change") == "" {
		if c, err := r.Cookie("qiao_ent"); err == nil && directory.ValidID(c.Value) {
			ent = c.Value
		}
	}
	if ent != "" && directory.ValidID(ent) {
		u := "/login/e/" + ent + "?" + url.Values{"return": {ret}, "idp_hint": {q.Get("idp_hint")}}.Encode()
		http.Redirect(w, r, u, http.StatusSeeOther)
		return
	}
	b.Pages.Render(w, r, http.StatusOK, "login_enterprise.html", map[string]any{"Return": ret, "Enterprise": ""})
}

func (b *Broker) enterpriseSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil || !pages.CSRFOK(r) {
		b.fail(w, r, http.StatusForbidden, "csrf", pages.Text2{"页面已过期，请重试。", "The page expired; please try again."}, pages.Text2{}, "")
		return
	}
	ent := strings.ToLower(strings.TrimSpace(r.PostFormValue("enterprise")))
	ret := b.safeReturn(r.PostFormValue("return"))
	t := pages.Lang(r)
	if !directory.ValidID(ent) {
		b.unknownEnterprise(r, ent)
		b.Pages.Render(w, r, http.StatusBadRequest, "login_enterprise.html", map[string]any{"Return": ret, "Enterprise": ent,
			"Error": pages.Text2{"企业 ID 只能包含小写字母、数字、- 和 _。", "An enterprise ID has only lowercase letters, digits, - and _."}.In(t)})
		return
	}
	if _, err := b.Store.GetEnterprise(r.Context(), ent); err != nil {
		b.unknownEnterprise(r, ent)
		b.Pages.Render(w, r, http.StatusNotFound, "login_enterprise.html", map[string]any{"Return": ret, "Enterprise": ent,
			"Error": pages.Text2{"没有这个企业 ID，请与管理员核对。", "There is no enterprise with this ID; check it with your administrator."}.In(t)})
		return
	}
	b.rememberEnterprise(w, ent)
	http.Redirect(w, r, "/login/e/"+ent+"?"+url.Values{"return": {ret}}.Encode(), http.StatusSeeOther)
}

func (b *Broker) enabledSources(ctx context.Context, ent string) ([]*directory.IdentitySource, error) {
	all, err := b.Store.ListSources(ctx, ent)
	if err != nil {
		return nil, err
	}
	var out []*directory.IdentitySource
	for _, s := range all {
		if s.Enabled {
			out = append(out, s)
		}
	}
	return out, nil
}

func (b *Broker) sources(w http.ResponseWriter, r *http.Request) {
	ent := r.PathValue("enterprise")
	q := r.URL.Query()
	ret := b.safeReturn(q.Get("return"))
	e, err := b.Store.GetEnterprise(r.Context(), ent)
	if err != nil {
		b.unknownEnterprise(r, ent)
		b.fail(w, r, http.StatusNotFound, "unknown enterprise", pages.Text2{"没有这个企业 ID。", "There is no enterprise with this ID."},
			pages.Text2{"", ""}, "", "enterprise_typed", typed(ent))
		return
	}
	// Whichever way the person came (typed, a link, an app's redirect), the enterprise is
	// remembered for the next sign-in and after signing out.
	b.rememberEnterprise(w, ent)
	srcs, err := b.enabledSources(r.Context(), ent)
	if err != nil || len(srcs) == 0 {
		b.fail(w, r, http.StatusServiceUnavailable, "no enabled source", pages.Text2{"这个企业暂时没有可用的登录方式。", "This enterprise has no way to sign in right now."},
			pages.Text2{"请至少启用一个身份源。", "Enable at least one identity source."}, ent)
		return
	}
	orderSources(srcs)
	hint := q.Get("idp_hint")
	for _, s := range srcs {
		if len(srcs) == 1 || s.ID == hint {
			http.Redirect(w, r, "/login/e/"+ent+"/s/"+s.ID+"?"+url.Values{"return": {ret}}.Encode(), http.StatusSeeOther)
			return
		}
	}
	// Inside the WeCom or DingTalk app, the app's own login is the only sensible one: go straight
	// to it (the chooser stays reachable with ?choose=1, for someone who wants another).
	if q.Get("choose") == "" {
		for _, s := range srcs {
			if inAppUA(r, s.Kind) {
				http.Redirect(w, r, "/login/e/"+ent+"/s/"+s.ID+"?"+url.Values{"return": {ret}}.Encode(), http.StatusSeeOther)
				return
			}
		}
	}
	t := pages.Lang(r)
	type choice struct{ Title, URL string }
	var cs []choice
	for _, s := range srcs {
		cs = append(cs, choice{SourceTitle(s).In(t), "/login/e/" + ent + "/s/" + s.ID + "?" + url.Values{"return": {ret}}.Encode()})
	}
	b.Pages.Render(w, r, http.StatusOK, "login_sources.html", map[string]any{"EnterpriseName": e.Name, "Sources": cs, "Return": ret})
}

// ---- starting a login

// pending is an upstream login in flight, stored under its state.
type pending struct {
	Enterprise string `json:"e"`
	Source     string `json:"s"`
	Return     string `json:"r"`
	Binding    string `json:"b"` // the value of the browser's binding cookie for this login
	InApp      bool   `json:"a"`
}

func (b *Broker) source(w http.ResponseWriter, r *http.Request) (*directory.IdentitySource, bool) {
	ent, srcID := r.PathValue("enterprise"), r.PathValue("source")
	src, err := b.Store.GetSource(r.Context(), ent, srcID)
	if errors.Is(err, directory.ErrNotFound) {
		b.auditFailure(r, ent, srcID, "unknown source", nil)
		b.fail(w, r, http.StatusNotFound, "unknown source", pages.Text2{"没有这个登录方式。", "There is no such way to sign in."}, pages.Text2{}, ent, "source", srcID)
		return nil, false
	}
	if err != nil {
		b.fail(w, r, http.StatusServiceUnavailable, "store", pages.Text2{"服务暂时不可用，请稍后再试。", "The service is unavailable; try again shortly."}, pages.Text2{}, ent, "err", err)
		return nil, false
	}
	if !src.Enabled {
		b.auditFailure(r, ent, srcID, "source closed", nil)
		b.fail(w, r, http.StatusForbidden, "source closed", pages.Text2{"这个登录方式已关闭。", "This way to sign in is closed."},
			pages.Text2{"身份源 " + src.ID + " 已关闭；需要时请在管理端开启。", "Identity source " + src.ID + " is closed; enable it if it should be used."}, ent)
		return nil, false
	}
	return src, true
}

// callbackURL is the source's upstream login callback; its host must be the source's configured
// callback domain, which must be the host the platform allows (WeCom: trusted domain).
func (b *Broker) callbackURL(src *directory.IdentitySource) string {
	return b.ExternalURL + "/e/" + src.EnterpriseID + "/sources/" + src.ID + "/callback"
}

// CheckCallbackDomain reports a source whose configured callback domain cannot match the external
// URL: the platform would refuse every login. Checked at start and on the admin's view.
func (b *Broker) CheckCallbackDomain(src *directory.IdentitySource) error {
	if src.Kind == directory.KindLocal {
		return nil
	}
	u, err := url.Parse(b.ExternalURL)
	if err != nil {
		return err
	}
	d := src.Config["callback_domain"]
	if d == "" {
		return fmt.Errorf("source %s/%s: config.callback_domain is not set; set it to %s and register that as the app's trusted domain", src.EnterpriseID, src.ID, u.Host)
	}
	if !strings.EqualFold(d, u.Host) {
		return fmt.Errorf("source %s/%s: config.callback_domain %s does not match the external URL's host %s; the platform will refuse logins", src.EnterpriseID, src.ID, d, u.Host)
	}
	return nil
}

// inAppUA reports whether the browser is the source's platform app, where its in-app login applies.
func inAppUA(r *http.Request, kind directory.SourceKind) bool {
	k, ok := federation.LookupKind(string(kind))
	return ok && k.InApp != nil && k.InApp(r.UserAgent())
}

func (b *Broker) start(w http.ResponseWriter, r *http.Request) {
	src, ok := b.source(w, r)
	if !ok {
		return
	}
	ret := b.safeReturn(r.URL.Query().Get("return"))
	if src.Kind == directory.KindLocal {
		b.passwordForm(w, r, src, ret, "", "", http.StatusOK)
		return
	}
	if err := b.CheckCallbackDomain(src); err != nil {
		b.fail(w, r, http.StatusServiceUnavailable, "callback domain", pages.Text2{"这个登录方式配置有误。", "This way to sign in is misconfigured."},
			pages.Text2{err.Error(), err.Error()}, src.EnterpriseID)
		return
	}
	login, err := b.OpenLogin(src)
	if err != nil {
		b.fail(w, r, http.StatusServiceUnavailable, "connector", pages.Text2{"这个登录方式配置有误。", "This way to sign in is misconfigured."},
			pages.Text2{err.Error(), err.Error()}, src.EnterpriseID)
		return
	}
	binding := randomToken(32)
	st := strings.ReplaceAll(randomToken(24), "-", "0")
	st = strings.ReplaceAll(st, "_", "1") // in-app OAuth allows letters and digits only
	inApp := inAppUA(r, src.Kind) && r.URL.Query().Get("browser") == ""
	p, _ := json.Marshal(pending{Enterprise: src.EnterpriseID, Source: src.ID, Return: ret, Binding: binding, InApp: inApp})
	if err := b.State.Put(r.Context(), "login:"+st, p, LoginTTL); err != nil {
		b.fail(w, r, http.StatusServiceUnavailable, "state", pages.Text2{"服务暂时不可用，请稍后再试。", "The service is unavailable; try again shortly."}, pages.Text2{}, src.EnterpriseID, "err", err)
		return
	}
	lg := "zh"
	if pages.Lang(r).Lang == "en" {
		lg = "en"
	}
	// One binding cookie per login, so logins started in two tabs do not overwrite each other.
	http.SetCookie(w, &http.Cookie{Name: bindingCookie(st), Value: binding, Path: "/e/" + src.EnterpriseID + "/sources/", MaxAge: int(LoginTTL.Seconds()),
		HttpOnly: true, Secure: b.secure(), SameSite: http.SameSiteLaxMode})
	if page, ok := login.(federation.InAppPage); ok && inApp {
		// H5 free login: the page asks the DingTalk container for a code (dd.requestAuthCode) and
		// brings it to the callback with this login's state. DingTalk's is the only such login,
		// so the page is DingTalk's.
		corpID, clientID := page.InAppPage()
		t := pages.Lang(r)
		title := SourceTitle(src).In(t)
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' https://g.alicdn.com; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'")
		b.Pages.Render(w, r, http.StatusOK, "login_dingtalk_inapp.html", map[string]any{"SourceTitle": title, "CorpID": corpID,
			"ClientID": clientID, "Callback": b.callbackURL(src) + "?" + url.Values{"state": {st}, "inapp": {"1"}}.Encode(),
			"Browser": "/login/e/" + src.EnterpriseID + "/s/" + src.ID + "?" + url.Values{"return": {ret}, "browser": {"1"}}.Encode(),
			"Wait":    pages.Text2{"正在通过钉钉登录…", "Signing in with DingTalk…"}.In(t), "Fallback": pages.Text2{"改用浏览器登录", "Use the browser login instead"}.In(t),
			"NoApp":  pages.Text2{"请在钉钉中打开这个页面，或改用下面的浏览器登录。", "Open this page inside the DingTalk app, or use the browser login below."}.In(t),
			"NoCode": pages.Text2{"钉钉没有给出登录码，请改用下面的浏览器登录。", "DingTalk did not give a sign-in code; use the browser login below."}.In(t)})
		return
	}
	target, err := login.AuthURL(b.callbackURL(src), st, lg, inApp)
	if err != nil {
		b.fail(w, r, http.StatusServiceUnavailable, "auth url", pages.Text2{"这个登录方式配置有误。", "This way to sign in is misconfigured."}, pages.Text2{err.Error(), err.Error()}, src.EnterpriseID)
		return
	}
	http.Redirect(w, r, target, http.StatusFound)
}

// bindingCookie names the cookie that binds one login's state to the browser that started it.
func bindingCookie(state string) string {
	sum := sha256.Sum256([]byte(state))
	return "qiao_login_" + hex.EncodeToString(sum[:6])
}

// ---- the upstream callback

func (b *Broker) callback(w http.ResponseWriter, r *http.Request) {
	ent, srcID := r.PathValue("enterprise"), r.PathValue("source")
	q := r.URL.Query()
	st := q.Get("state")
	if st == "" || len(st) > 128 {
		b.auditFailure(r, ent, srcID, "missing state", nil)
		b.fail(w, r, http.StatusBadRequest, "missing state", pages.Text2{"登录请求无效，请重新登录。", "The sign-in request is not valid; please sign in again."}, pages.Text2{}, ent)
		return
	}
	raw, err := b.State.Take(r.Context(), "login:"+st)
	if errors.Is(err, state.ErrNotFound) {
		// A replayed callback (the state was taken by the first one), or one too late.
		b.auditFailure(r, ent, srcID, "unknown, used or expired state", nil)
		b.fail(w, r, http.StatusBadRequest, "unknown, used or expired state", pages.Text2{"登录已过期或已使用，请重新登录。", "This sign-in expired or was already used; please sign in again."}, pages.Text2{}, ent)
		return
	}
	if err != nil {
		b.fail(w, r, http.StatusServiceUnavailable, "state", pages.Text2{"服务暂时不可用，请稍后再试。", "The service is unavailable; try again shortly."}, pages.Text2{}, ent, "err", err)
		return
	}
	var p pending
	_ = json.Unmarshal(raw, &p)
	c, cerr := r.Cookie(bindingCookie(st))
	if cerr != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(p.Binding)) != 1 || p.Enterprise != ent || p.Source != srcID {
		b.auditFailure(r, ent, srcID, "state not bound to this browser", nil)
		b.fail(w, r, http.StatusBadRequest, "state not bound to this browser", pages.Text2{"这个登录不是在此浏览器中发起的，请重新登录。", "This sign-in was not started in this browser; please sign in again."}, pages.Text2{}, ent)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: bindingCookie(st), Path: "/e/" + ent + "/sources/", MaxAge: -1})
	src, ok := b.source(w, r)
	if !ok {
		return
	}
	// The three hosts must match: the one configured for the source, the external URL's, and the
	// one the request arrived on.
	if err := b.CheckCallbackDomain(src); err != nil || !strings.EqualFold(r.Host, src.Config["callback_domain"]) {
		b.auditFailure(r, ent, srcID, "callback host", map[string]string{"host": typed(r.Host)})
		b.fail(w, r, http.StatusBadRequest, "callback host", pages.Text2{"登录回调地址不正确。", "The sign-in came back to the wrong address."},
			pages.Text2{"回调到达的主机 " + r.Host + " 与身份源配置的回调域名不一致。", "The callback arrived on host " + r.Host + ", not the source's callback domain."}, ent)
		return
	}
	code := q.Get("code")
	if code == "" {
		code = q.Get("authCode")
	}
	if code == "" {
		b.audit(r, src, "", "login.failure", "declined at the platform")
		b.fail(w, r, http.StatusUnauthorized, "declined upstream", pages.Text2{"登录已取消。", "The sign-in was cancelled."}, pages.Text2{}, ent, "error", q.Get("error"))
		return
	}
	login, err := b.OpenLogin(src)
	if err != nil {
		b.fail(w, r, http.StatusServiceUnavailable, "connector", pages.Text2{"这个登录方式配置有误。", "This way to sign in is misconfigured."}, pages.Text2{err.Error(), err.Error()}, ent)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	id, err := login.Exchange(ctx, code, p.InApp)
	if errors.Is(err, federation.ErrExternalContact) {
		b.audit(r, src, "", "login.failure", "an external contact, not a member of the organisation")
		b.fail(w, r, http.StatusForbidden, "external contact", pages.Text2{"这个账号是本企业的外部联系人，不是企业成员，无法登录。", "This account is an external contact of the organisation, not a member, and cannot sign in."},
			pages.Text2{"平台把登录的人识别为外部联系人（contact_type 1）；只有通讯录中的成员可以登录。", "The platform reports the person as an external contact (contact_type 1); only members in the directory can sign in."}, ent)
		return
	}
	if errors.Is(err, federation.ErrNotMember) {
		b.audit(r, src, "", "login.failure", "not a member of the organisation")
		b.fail(w, r, http.StatusForbidden, "not a member", pages.Text2{"这个账号不属于本企业。", "This account is not a member of the organisation."},
			pages.Text2{"登录的人不在该平台的本企业通讯录中。", "The person who signed in is not in the platform's directory of this organisation."}, ent)
		return
	}
	if err != nil {
		b.audit(r, src, "", "login.failure", "upstream: "+err.Error())
		b.fail(w, r, http.StatusBadGateway, "upstream exchange", pages.Text2{"暂时无法完成登录，请重试。", "The sign-in could not be completed; please try again."},
			pages.Text2{err.Error(), err.Error()}, ent, "err", err)
		return
	}
	link, err := b.Store.GetUserLink(r.Context(), ent, src.ID, id.UserID)
	if errors.Is(err, directory.ErrNotFound) {
		b.audit(r, src, "", "login.failure", "not in the synced directory: "+id.UserID)
		b.fail(w, r, http.StatusForbidden, "not in directory", pages.Text2{"你的账号不在本企业已同步的通讯录中，请联系管理员。", "Your account is not in this enterprise's synced directory; ask your administrator."},
			pages.Text2{fmt.Sprintf("%s 用户 %s 不在企业 %s 的已同步通讯录中：检查同步范围或先运行同步。", src.Kind, id.UserID, ent),
				fmt.Sprintf("%s user %s is not in the synced directory of enterprise %s: check the sync scope or run a sync.", src.Kind, id.UserID, ent)}, ent)
		return
	}
	if err != nil {
		b.fail(w, r, http.StatusServiceUnavailable, "store", pages.Text2{"服务暂时不可用，请稍后再试。", "The service is unavailable; try again shortly."}, pages.Text2{}, ent, "err", err)
		return
	}
	b.keepConsent(r, src, id)
	b.finish(w, r, src, link.UserID, id.Method, p.Return)
}

// keepConsent hands what the person consented to disclose to the directory. The login does not
// depend on it: a failure is logged, and the next consented login brings the fields again.
func (b *Broker) keepConsent(r *http.Request, src *directory.IdentitySource, id *federation.Identity) {
	if b.Consent == nil || !id.Consented || len(id.Attrs) == 0 {
		return
	}
	task, err := b.Consent(r.Context(), src, id.UserID, id.Attrs)
	if err != nil {
		b.Log.Warn("consented fields not kept", "enterprise", src.EnterpriseID, "source", src.ID, "upstream_id", id.UserID,
			"request_id", httpx.RequestID(r.Context()), "err", err)
		return
	}
	if task != nil {
		b.Log.Info("consented fields kept", "enterprise", src.EnterpriseID, "source", src.ID, "upstream_id", id.UserID, "task", task.ID)
	}
}

// finish opens the SSO session of an active user.
func (b *Broker) finish(w http.ResponseWriter, r *http.Request, src *directory.IdentitySource, userID, method, ret string) {
	ent := src.EnterpriseID
	u, err := b.Store.GetUser(r.Context(), ent, userID)
	if err != nil {
		b.fail(w, r, http.StatusServiceUnavailable, "store", pages.Text2{"服务暂时不可用，请稍后再试。", "The service is unavailable; try again shortly."}, pages.Text2{}, ent, "err", err)
		return
	}
	if u.Status != directory.UserActive {
		b.audit(r, src, u.ID, "login.failure", "user is "+string(u.Status))
		b.fail(w, r, http.StatusForbidden, "user not active", pages.Text2{"你的账号已停用或已离职，无法登录。", "Your account is disabled or has left the organisation."},
			pages.Text2{"用户 " + u.Username + " 的状态是 " + string(u.Status) + "。", "User " + u.Username + " is " + string(u.Status) + "."}, ent)
		return
	}
	// sid names this login to relying parties (ID token sid, back-channel logout); it is not the
	// cookie's secret ID.
	sess := &session.Session{Enterprise: ent, User: u.ID, Source: src.ID, AMR: method, AuthTime: b.now().UnixMilli(), SID: randomToken(16)}
	// A new ID at every login, and the old one ended: an ID known before the login (planted in
	// this browser, say) is worthless after it. No login without it.
	if err := b.Sessions.Start(w, r, sess); err != nil {
		b.fail(w, r, http.StatusServiceUnavailable, "session", pages.Text2{"服务暂时不可用，请稍后再试。", "The service is unavailable; try again shortly."}, pages.Text2{}, ent, "err", err)
		return
	}
	b.audit(r, src, u.ID, "login.success", method)
	// Checked again where it is used: the return travelled through state since it was first judged.
	if ret = b.safeReturn(ret); ret == "" {
		ret = "/login/done"
	}
	http.Redirect(w, r, ret, http.StatusSeeOther)
}

func (b *Broker) audit(r *http.Request, src *directory.IdentitySource, userID, kind, reason string) {
	outcome := "ok"
	if kind == "login.failure" {
		outcome = "denied"
	}
	ua := r.UserAgent()
	if len(ua) > 512 {
		ua = ua[:512]
	}
	if err := b.Store.AddAuditEvent(context.WithoutCancel(r.Context()), &directory.AuditEvent{EnterpriseID: src.EnterpriseID, Kind: kind, Actor: "broker",
		UserID: userID, SourceID: src.ID, IP: b.ip(r), UserAgent: ua, Outcome: outcome, Reason: reason, RequestID: httpx.RequestID(r.Context())}); err != nil {
		b.Log.Error("audit", "err", err)
	}
}

// ---- password fallback

func (b *Broker) passwordForm(w http.ResponseWriter, r *http.Request, src *directory.IdentitySource, ret, username, errText string, status int) {
	b.Pages.Render(w, r, status, "login_password.html", map[string]any{"SourceTitle": SourceTitle(src).In(pages.Lang(r)), "Return": ret, "Username": username, "Error": errText,
		"Action": "/login/e/" + src.EnterpriseID + "/s/" + src.ID + "/password", "Back": "/login/e/" + src.EnterpriseID + "?" + url.Values{"return": {ret}}.Encode()})
}

func hashKey(parts ...string) string {
	return hex.EncodeToString([]byte(strings.Join(parts, "\x00")))
}

func (b *Broker) passwordSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil || !pages.CSRFOK(r) {
		b.fail(w, r, http.StatusForbidden, "csrf", pages.Text2{"页面已过期，请重试。", "The page expired; please try again."}, pages.Text2{}, r.PathValue("enterprise"))
		return
	}
	src, ok := b.source(w, r)
	if !ok {
		return
	}
	t := pages.Lang(r)
	ret := b.safeReturn(r.PostFormValue("return"))
	if src.Kind != directory.KindLocal {
		b.fail(w, r, http.StatusNotFound, "password on an upstream source", pages.Text2{"这个登录方式不使用密码。", "This way to sign in does not use a password."}, pages.Text2{}, src.EnterpriseID)
		return
	}
	username := strings.TrimSpace(r.PostFormValue("username"))
	pw := r.PostFormValue("password")
	ctx := r.Context()
	ipKey := "pwip:" + hashKey(b.ip(r))
	userKey := password.LockoutKey(src.EnterpriseID, username)
	wrong := pages.Text2{"用户名或密码错误。", "Wrong username or password."}.In(t)
	// Every attempt reserves its place in both counters before the password is checked: reading
	// a counter first and adding a failure after the (slow) check let 60 concurrent guesses
	// through where 5 were allowed. A reservation is given back only by a success, so at most the
	// limit of attempts per window is ever checked, however many arrive at once.
	unavailable := func(err error) {
		b.fail(w, r, http.StatusServiceUnavailable, "state unavailable", pages.Text2{"登录服务暂时不可用，请稍后再试。", "Sign-in is unavailable right now; try again shortly."},
			pages.Text2{"状态存储（state）不可用。", "The state store does not answer."}, src.EnterpriseID, "err", err)
	}
	tooMany := func(reason string) {
		b.audit(r, src, "", "login.failure", reason)
		w.Header().Set("Retry-After", strconv.Itoa(int(LockoutWindow.Seconds())))
		b.passwordForm(w, r, src, ret, username, pages.Text2{"尝试次数过多，请 15 分钟后再试。", "Too many attempts; try again in 15 minutes."}.In(t), http.StatusTooManyRequests)
	}
	nIP, err := b.State.Incr(ctx, ipKey, LockoutWindow)
	if err != nil {
		unavailable(err)
		return
	}
	if nIP > MaxIPFailures {
		tooMany("password: too many failures from this IP")
		return
	}
	nUser, err := b.State.Incr(ctx, userKey, LockoutWindow)
	if err != nil || nUser > MaxUserFailures {
		_, _ = b.State.Decr(ctx, ipKey) // the IP's attempt was not checked
		if err != nil {
			unavailable(err)
		} else {
			tooMany("password: account locked after repeated failures")
		}
		return
	}
	var u *directory.User
	if username != "" && len(username) <= 128 {
		if link, err := b.Store.GetUserLink(ctx, src.EnterpriseID, src.ID, username); err == nil {
			u, _ = b.Store.GetUser(ctx, src.EnterpriseID, link.UserID)
		}
	}
	hash := b.dummyHash
	if u != nil && u.PasswordHash != "" {
		hash = u.PasswordHash
	}
	good, err := b.passwords.Verify(ctx, pw, hash)
	if errors.Is(err, password.ErrBusy) {
		// Not the person's fault: give both reservations back and ask them to retry.
		_, _ = b.State.Decr(ctx, ipKey)
		_, _ = b.State.Decr(ctx, userKey)
		b.Log.Warn("password check refused: every verification slot is busy", "enterprise", src.EnterpriseID, "slots", b.passwords.Slots())
		w.Header().Set("Retry-After", "2")
		b.passwordForm(w, r, src, ret, username, pages.Text2{"登录的人太多，请几秒后再试。", "Too many sign-ins at once; try again in a few seconds."}.In(t), http.StatusServiceUnavailable)
		return
	}
	if err != nil || !good || u == nil || u.PasswordHash == "" {
		b.audit(r, src, "", "login.failure", "password: wrong username or password")
		b.passwordForm(w, r, src, ret, username, wrong, http.StatusUnauthorized)
		return
	}
	// A success gives back its IP reservation (an office behind one NAT must not lock itself out
	// by signing in) and clears the person's failures.
	_, _ = b.State.Decr(ctx, ipKey)
	_ = b.State.Delete(ctx, userKey)
	b.finish(w, r, src, u.ID, "pwd", ret)
}

// ---- after login

func (b *Broker) done(w http.ResponseWriter, r *http.Request) {
	sess, _ := b.Sessions.Load(r)
	if sess == nil || sess.User == "" {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	ent := sess.Enterprise
	u, err := b.Store.GetUser(r.Context(), ent, sess.User)
	if err != nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	b.Pages.Render(w, r, http.StatusOK, "login_done.html", map[string]any{"Title": pages.Lang(r).SignedIn, "Name": u.Name, "Username": u.Username,
		"Enterprise": ent, "Apps": b.apps(r.Context(), ent)})
}

func (b *Broker) logout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil || !pages.CSRFOK(r) {
		b.fail(w, r, http.StatusForbidden, "csrf", pages.Text2{"页面已过期，请重试。", "The page expired; please try again."}, pages.Text2{}, "")
		return
	}
	sess, _ := b.Sessions.Load(r)
	dest := "/login"
	if sess != nil {
		// Back to the enterprise's sign-in: the enterprise stays remembered.
		if directory.ValidID(sess.Enterprise) {
			dest = "/login/e/" + sess.Enterprise
			b.rememberEnterprise(w, sess.Enterprise)
		}
		if err := b.Sessions.End(w, r, sess); err == nil {
			dest = b.Sessions.LogoutHops(r.Context(), sess, dest)
		}
	}
	http.Redirect(w, r, dest, http.StatusSeeOther)
}
