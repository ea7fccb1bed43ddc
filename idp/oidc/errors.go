package oidc

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/qiao-gateway/qiao/internal/httpx"
	"github.com/qiao-gateway/qiao/pages"
)

// Every error qiao's OpenID Provider answers carries an RFC error code and the fixed description of
// that code, nothing else: descriptions built from errors (the library's "Parent=…" chains, decoder
// messages, storage errors) would tell a caller about qiao's insides and echo its input.
var errorDescriptions = map[string]string{
	"invalid_request":            "The request is missing a parameter, repeats one, has an invalid value, or is otherwise malformed.",
	"invalid_client":             "Client authentication failed.",
	"invalid_grant":              "The authorization code or refresh token is invalid, expired, revoked, or was issued to another client.",
	"unauthorized_client":        "The client is not allowed to use this grant or response type.",
	"unsupported_grant_type":     "The grant type is not supported.",
	"unsupported_response_type":  "The response type is not supported.",
	"invalid_scope":              "The requested scope is invalid or not allowed for this client.",
	"access_denied":              "The request was denied.",
	"server_error":               "The server could not complete the request.",
	"temporarily_unavailable":    "The server cannot handle the request right now.",
	"interaction_required":       "The user must interact with the sign-in.",
	"login_required":             "The user must sign in.",
	"account_selection_required": "The user must select an account.",
	"consent_required":           "The user must consent.",
	"request_not_supported":      "The request parameter is not supported.",
	"request_uri_not_supported":  "The request_uri parameter is not supported.",
	"invalid_token":              "The access token is invalid, expired or revoked.",
	// RFC 8628 §3.5, the device's polls.
	"authorization_pending": "The person has not yet finished on the verification page; poll again after the interval.",
	"slow_down":             "Polling too fast; add 5 seconds to the interval and poll again.",
	"expired_token":         "The device code expired; start again.",
}

// throttledDescription goes with invalid_client on a 429.
const throttledDescription = "Too many failed client authentications; retry after the time in Retry-After."

// errorCode returns code if it is one qiao answers with, or the generic code for the status.
func errorCode(code string, status int) string {
	if _, ok := errorDescriptions[code]; ok {
		return code
	}
	if status >= 500 {
		return "server_error"
	}
	return "invalid_request"
}

// endpoint kinds, for the form of an error.
const (
	kindAPI     = iota // JSON (token, introspection, revocation, discovery)
	kindBrowser        // an HTML page (authorization, its callback, end_session)
	kindBearer         // JSON with a Bearer challenge (userinfo, RFC 6750 §3)
)

// apiEndpoint reports whether path is one of the provider's API endpoints, which answer JSON
// whoever asks.
func apiEndpoint(path string) bool {
	switch path {
	case "/.well-known/openid-configuration", "/oauth/token", "/oauth/introspect", "/revoke", "/userinfo", "/keys", "/device_authorization":
		return true
	}
	return false
}

func endpointKind(path string) int {
	switch path {
	case "/authorize", "/authorize/callback", "/authorize/continue", "/end_session", "/logged-out":
		return kindBrowser
	case "/userinfo":
		return kindBearer
	}
	return kindAPI
}

// writeOAuthError answers an OAuth error (RFC 6749 §5.2) in JSON with the code's fixed description.
// A 401 carries the challenge HTTP requires: Basic for the client-authenticating endpoints.
func writeOAuthError(w http.ResponseWriter, status int, code string) {
	code = errorCode(code, status)
	desc := errorDescriptions[code]
	if status == http.StatusTooManyRequests {
		desc = throttledDescription
	}
	if status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="qiao", charset="UTF-8"`)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	httpx.WriteJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// fail answers an error in the form of the endpoint: a page for the browser endpoints, OAuth JSON
// otherwise.
func (p *Provider) fail(w http.ResponseWriter, r *http.Request, path string, status int, code string) {
	code = errorCode(code, status)
	kind := endpointKind(path)
	if kind == kindAPI && !apiEndpoint(path) && p.Pages != nil && pages.WantsPage(r) {
		// A browser at a path under the issuer that is no endpoint (the issuer URL itself, say).
		if status == http.StatusNotFound {
			p.Pages.NotFound(w, r)
			return
		}
		kind = kindBrowser
	}
	switch kind {
	case kindBrowser:
		p.errorPage(w, r, status, code)
	case kindBearer:
		if code == "invalid_client" || code == "invalid_grant" {
			code = "invalid_token"
		}
		if status == http.StatusUnauthorized || status == http.StatusForbidden {
			status, code = http.StatusUnauthorized, "invalid_token"
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="qiao", error="`+code+`"`)
		writeOAuthError(w, status, code)
	default:
		writeOAuthError(w, status, code)
	}
}

// errorPage tells a person that the app's request cannot be served, naming only the RFC code.
func (p *Provider) errorPage(w http.ResponseWriter, r *http.Request, status int, code string) {
	p.errorPageFor(w, r, status, code, pages.Text2{})
}

// Fixed words for administrators about the authorization requests refused before the client is
// trusted; they quote nothing of the request.
var (
	adminUnknownClient = pages.Text2{"请求中的 client_id 不是这个企业登记的应用，或该应用已停用。",
		"The request's client_id is not an app registered with this enterprise, or the app is disabled."}
	adminRedirectURI = pages.Text2{"请求中的 redirect_uri 不是该应用登记的回调地址（redirect_uris）。",
		"The request's redirect_uri is not one of the app's registered redirect_uris."}
)

// errorPageFor is errorPage with a line for administrators.
func (p *Provider) errorPageFor(w http.ResponseWriter, r *http.Request, status int, code string, admin pages.Text2) {
	if p.Pages == nil {
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "The request cannot be completed ("+code+").", status)
		return
	}
	p.Pages.MessageDetail(w, r, status, pages.Text2{"无法完成请求", "The request cannot be completed"},
		pages.Text2{"应用发来的请求无效或已失效（" + code + "）。请回到应用重试；如果问题仍在，请联系应用的管理员。",
			"The app's request is invalid or expired (" + code + "). Go back to the app and try again; if it keeps happening, contact the app's administrator."},
		admin, nil, "", pages.Text2{})
}

// libWriter stands between the op library's handlers and the client. Error responses (4xx, 5xx)
// are held back and replaced by qiao's own, which carry only the RFC code; error redirects to the
// client keep their code and get its fixed description.
type libWriter struct {
	w      http.ResponseWriter
	status int
	body   bytes.Buffer // an error response's body, to find its code
}

func (l *libWriter) Header() http.Header { return l.w.Header() }

func (l *libWriter) WriteHeader(status int) {
	if l.status != 0 {
		return
	}
	l.status = status
	if status >= 400 {
		return
	}
	if status >= 300 && status < 400 {
		if loc := l.w.Header().Get("Location"); loc != "" {
			l.w.Header().Set("Location", sanitizeErrorRedirect(loc))
		}
	}
	l.w.WriteHeader(status)
}

func (l *libWriter) Write(b []byte) (int, error) {
	if l.status == 0 {
		l.WriteHeader(http.StatusOK)
	}
	if l.status >= 400 {
		if l.body.Len() < 16<<10 {
			l.body.Write(b)
		}
		return len(b), nil
	}
	return l.w.Write(b)
}

// finish writes qiao's error in place of the library's, if the library answered one.
func (l *libWriter) finish(p *Provider, r *http.Request, path string) {
	if l.status < 400 {
		return
	}
	status := l.status
	code := libraryErrorCode(l.body.Bytes())
	if code == "" {
		switch {
		case status == http.StatusUnauthorized && endpointKind(path) == kindAPI:
			code = "invalid_client"
		case status >= 500:
			code = "server_error"
		}
	}
	code = errorCode(code, status)
	switch {
	case code == "server_error":
		status = http.StatusInternalServerError
	case status >= 500:
		status = http.StatusBadRequest // a client's mistake the library answered as its own
	}
	// The library's headers describe its body, not ours.
	for _, h := range []string{"Content-Type", "Content-Length"} {
		l.w.Header().Del(h)
	}
	p.fail(l.w, r, path, status, code)
}

// libraryErrorCode finds the RFC code in a library error body: OAuth JSON, or the text of an
// *oidc.Error ("ErrorType=invalid_request Description=…") that some handlers write with http.Error.
func libraryErrorCode(body []byte) string {
	var m struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &m) == nil && m.Error != "" {
		return m.Error
	}
	if rest, ok := strings.CutPrefix(string(body), "ErrorType="); ok {
		if i := strings.IndexAny(rest, " \n"); i >= 0 {
			rest = rest[:i]
		}
		return rest
	}
	return ""
}

// sanitizeErrorRedirect gives an error response sent to a client's redirect URI (in the query or the
// fragment) the fixed description of its code. Other redirects are returned unchanged.
func sanitizeErrorRedirect(loc string) string {
	u, err := url.Parse(loc)
	if err != nil {
		return loc
	}
	fix := func(raw string) (string, bool) {
		q, err := url.ParseQuery(raw)
		if err != nil || q.Get("error") == "" {
			return raw, false
		}
		code := errorCode(q.Get("error"), http.StatusBadRequest)
		q.Set("error", code)
		q.Set("error_description", errorDescriptions[code])
		q.Del("error_uri")
		return q.Encode(), true
	}
	if raw, ok := fix(u.RawQuery); ok {
		u.RawQuery = raw
		return u.String()
	}
	if raw, ok := fix(u.EscapedFragment()); ok {
		u.RawFragment = raw
		u.Fragment, _ = url.PathUnescape(raw)
		return u.String()
	}
	return loc
}

// retryAfter formats a Retry-After value in whole seconds.
func retryAfter(seconds float64) string {
	if seconds < 1 {
		seconds = 1
	}
	return strconv.Itoa(int(seconds + 0.999))
}
