// Package pages renders the gateway's HTML pages — login, protocol errors and confirmations — in
// the browser's language, with the double-submit CSRF token every form carries. The broker and
// the protocol packages share it so neither reaches into the other for a page.
package pages

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/qiao-gateway/qiao/internal/httpx"
)

// Renderer renders the templates.
type Renderer struct {
	Templates *template.Template
	Secure    bool // the external URL is https: cookies are Secure
	Log       *slog.Logger
}

// Render writes the named template with data, to which it adds the wording (T), a default Title
// and the CSRF token.
func (p *Renderer) Render(w http.ResponseWriter, r *http.Request, status int, name string, data map[string]any) {
	t := Lang(r)
	data["T"] = t
	if _, ok := data["Title"]; !ok {
		data["Title"] = t.SignIn
	}
	data["CSRF"] = p.CSRF(w, r)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := p.Templates.ExecuteTemplate(w, name, data); err != nil {
		p.Log.Error("render page", "page", name, "err", err)
	}
}

// LoginError is the page a failed login ends on: what happened, what an admin can do, and the
// request ID as the reference that matches the log line. again is where to start over.
func (p *Renderer) LoginError(w http.ResponseWriter, r *http.Request, status int, user, admin Text2, again string) {
	t := Lang(r)
	p.Render(w, r, status, "login_error.html", map[string]any{"Title": t.SignIn, "Heading": Text2{"无法登录", "Could not sign in"}.In(t),
		"Message": user.In(t), "Admin": admin.In(t), "Ref": httpx.RequestID(r.Context()), "Again": again})
}

const csrfCookie = "qiao_csrf"

// CSRF returns the browser's CSRF token (double-submit: a SameSite=Strict cookie and a form field).
func (p *Renderer) CSRF(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	buf := make([]byte, 32)
	_, _ = rand.Read(buf)
	tok := base64.RawURLEncoding.EncodeToString(buf)
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: tok, Path: "/", HttpOnly: true, Secure: p.Secure, SameSite: http.SameSiteStrictMode})
	return tok
}

// CSRFOK reports whether a posted form's csrf field matches the browser's cookie.
func CSRFOK(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	return err == nil && len(c.Value) == 43 && subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) == 1
}

// MessageForm is a one-button form on a message page. Cancel, when set, is where a "Cancel" link
// beside the button leads (a browser with history goes back instead).
type MessageForm struct {
	Action string
	Hidden map[string]string
	Button Text2
	Cancel string
}

// Message renders a page with a heading, a message and optionally a form or a link, in the
// browser's language: the protocols use it for their error and confirmation pages. An error page
// (status 400 and up) carries the request ID as its reference, and a way back when the caller
// gives no link: back in the browser's history (to the app that sent the person here), or the
// start page without one.
func (p *Renderer) Message(w http.ResponseWriter, r *http.Request, status int, heading, message Text2, form *MessageForm, link string, linkText Text2) {
	p.MessageDetail(w, r, status, heading, message, Text2{}, form, link, linkText)
}

// MessageDetail is Message with a line for administrators (what to check), shown under the
// message when it is not empty.
func (p *Renderer) MessageDetail(w http.ResponseWriter, r *http.Request, status int, heading, message, admin Text2, form *MessageForm, link string, linkText Text2) {
	t := Lang(r)
	data := map[string]any{"Title": heading.In(t), "Heading": heading.In(t), "Message": message.In(t), "Admin": admin.In(t), "Alert": status >= 400,
		"Link": link, "LinkText": linkText.In(t)}
	if status >= 400 {
		data["Ref"] = httpx.RequestID(r.Context())
		if link == "" && form == nil {
			data["Link"], data["LinkText"], data["Back"] = "/", t.GoBack, true
		}
	}
	if form != nil {
		data["Form"] = map[string]any{"Action": form.Action, "Hidden": form.Hidden, "Button": form.Button.In(t), "Cancel": form.Cancel}
	}
	p.Render(w, r, status, "message.html", data)
}

// NotFound answers a path nothing serves: a page for a browser, the JSON error for an API client.
func (p *Renderer) NotFound(w http.ResponseWriter, r *http.Request) {
	p.Refuse(w, r, http.StatusNotFound, "not_found", "no such endpoint: "+r.URL.Path, Text2{"找不到这个页面", "Page not found"},
		Text2{"这个地址上没有页面。请检查地址，或从首页重新开始。", "There is no page at this address. Check the address, or start again from the start page."})
}

// UnknownEnterprise answers a path under /e/{enterprise}/ whose enterprise does not exist.
func (p *Renderer) UnknownEnterprise(w http.ResponseWriter, r *http.Request, ent string) {
	p.Refuse(w, r, http.StatusNotFound, "unknown_enterprise", "no enterprise "+strconv.Quote(ent), Text2{"没有这个企业", "Unknown enterprise"},
		Text2{"这个地址中的企业 ID 不存在。请检查应用中配置的地址，或从首页输入企业 ID 登录。",
			"The enterprise ID in this address does not exist. Check the address configured in the app, or enter your enterprise ID on the start page."})
}

// StoreUnavailable answers when the directory cannot be read.
func (p *Renderer) StoreUnavailable(w http.ResponseWriter, r *http.Request) {
	p.Refuse(w, r, http.StatusServiceUnavailable, "store_unavailable", "the directory cannot be read right now", Text2{"服务暂时不可用", "Service unavailable"},
		Text2{"服务暂时不可用，请稍后再试。", "The service is unavailable; try again shortly."})
}

// Refuse answers an error in the form the caller reads: for a browser's navigation (WantsPage) a
// page with the heading, message, reference and a way back; for anything else qiao's JSON error
// with code and msg.
func (p *Renderer) Refuse(w http.ResponseWriter, r *http.Request, status int, code, msg string, heading, message Text2) {
	if !WantsPage(r) {
		httpx.WriteError(w, r, status, code, msg)
		return
	}
	// A handler may have set another CSP (a form's); the page needs none beyond the default.
	p.Message(w, r, status, heading, message, nil, "", Text2{})
}

// RequestExpired is the page for a protocol request (OIDC or SAML) that is gone by the time the
// person comes back from logging in.
func (p *Renderer) RequestExpired(w http.ResponseWriter, r *http.Request) {
	p.Message(w, r, http.StatusBadRequest, Text2{"登录请求已失效", "Sign-in request expired"},
		Text2{"这个登录请求已过期或不存在。请回到应用重新登录。", "This sign-in request expired or is unknown. Go back to the app and sign in again."}, nil, "", Text2{})
}
