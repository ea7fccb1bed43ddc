package oidc

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// leakMarkers are what internal error text looks like: the library's error chains, the form
// decoder's messages, storage errors, and a marker the requests below inject.
var leakMarkers = []string{"Parent=", "ErrorType=", "Description=", "schema", "converting", "missing from request", "key not found",
	"state:", "unknown client", "ZZMARK", "does not correspond", "invalid code", "sql", "<script>"} // inline script; the pages load theirs from /static

// TestErrorsCarryOnlyTheRFCCode sends malformed and hostile requests to every endpoint and checks that
// each answer is the RFC error code with that code's fixed description: JSON with nothing else, an
// error redirect with nothing else, or a page naming the code; no library or storage text, no echo.
func TestErrorsCarryOnlyTheRFCCode(t *testing.T) {
	h := newHarness(t)
	_, challenge := pkce()
	authz := url.Values{"client_id": {"native"}, "redirect_uri": {"http://127.0.0.1:4711/callback"}, "response_type": {"code"},
		"scope": {"openid"}, "state": {"s1"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	with := func(v url.Values, kv ...string) string {
		c := url.Values{}
		for k, vs := range v {
			c[k] = append([]string(nil), vs...)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			c.Set(kv[i], kv[i+1])
		}
		return c.Encode()
	}
	code, _ := h.code("acme", "web", "")
	form := func(ct, body string, basic ...string) *http.Request {
		req, _ := http.NewRequest(http.MethodPost, h.iss("acme")+"/oauth/token", strings.NewReader(body))
		req.Header.Set("Content-Type", ct)
		if len(basic) == 2 {
			req.SetBasicAuth(basic[0], basic[1])
		}
		return req
	}
	get := func(pq string, hdr ...string) *http.Request {
		req, _ := http.NewRequest(http.MethodGet, h.iss("acme")+pq, nil)
		if len(hdr) == 2 {
			req.Header.Set(hdr[0], hdr[1])
		}
		return req
	}
	post := func(path string, v url.Values, basic ...string) *http.Request {
		req := form("application/x-www-form-urlencoded", v.Encode(), basic...)
		req.URL.Path = "/e/acme" + path
		return req
	}
	for _, c := range []struct {
		name   string
		req    *http.Request
		status int
		code   string
	}{
		{"introspection without a client", post("/oauth/introspect", url.Values{"token": {"x"}}), 401, "invalid_client"},
		{"introspection by an unknown client", post("/oauth/introspect", url.Values{"token": {"x"}}, "ZZMARK", "x"), 401, "invalid_client"},
		{"introspection by a public client", post("/oauth/introspect", url.Values{"token": {"x"}, "client_id": {"native"}}), 401, "invalid_client"},
		{"a malformed Basic header", post("/oauth/token", url.Values{"grant_type": {"client_credentials"}}, "svc", "%zz"), 401, "invalid_client"},
		{"a scope that is not allowed", post("/oauth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"<script>ZZMARK"}}, "svc", svcSecret), 400, "invalid_scope"},
		{"a garbage code", post("/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {"ZZMARK"}, "redirect_uri": {"https://app.example/cb"}}, "web", webSecret), 400, "invalid_grant"},
		{"a code with another redirect_uri", post("/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.example/ZZMARK"}}, "web", webSecret), 400, "invalid_grant"},
		{"no code", post("/oauth/token", url.Values{"grant_type": {"authorization_code"}}, "web", webSecret), 400, "invalid_request"},
		{"a garbage refresh token", post("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"ZZMARK"}}, "web", webSecret), 400, "invalid_grant"},
		{"a refresh token for a client without the grant", post("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"ZZMARK"}}, "svc", svcSecret), 400, "unauthorized_client"},
		{"client_credentials for a client without the grant", post("/oauth/token", url.Values{"grant_type": {"client_credentials"}}, "web", webSecret), 400, "unauthorized_client"},
		{"token exchange", post("/oauth/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}}), 400, "unsupported_grant_type"},
		{"no grant_type", post("/oauth/token", url.Values{"client_id": {"native"}}), 400, "invalid_request"},
		{"JSON instead of a form", form("application/json", `{"grant_type":"client_credentials"}`, "svc", svcSecret), 400, "invalid_request"},
		{"a body over 64 KiB", post("/oauth/token", url.Values{"grant_type": {"client_credentials"}, "pad": {strings.Repeat("Z", 70<<10)}}, "svc", svcSecret), 400, "invalid_request"},
		{"revocation with a wrong secret", post("/revoke", url.Values{"token": {"ZZMARK"}}, "web", "wrong"), 401, "invalid_client"},
		{"userinfo with a garbage token", get("/userinfo", "Authorization", "Bearer ZZMARK"), 401, "invalid_token"},
		{"userinfo without a token", get("/userinfo"), 401, "invalid_token"},
		// Authorization requests whose client and redirect URI are good: the error goes back to the client.
		{"a max_age that is not a number", get("/authorize?" + with(authz, "max_age", "abcZZMARK")), 302, "invalid_request"},
		{"an unknown response type", get("/authorize?" + with(authz, "response_type", "ZZMARK")), 302, "unauthorized_client"},
		{"a request object", get("/authorize?" + with(authz, "request", "ZZMARK")), 302, "request_not_supported"},
		{"no openid scope", get("/authorize?" + with(authz, "scope", "ZZMARK")), 302, "invalid_scope"},
		{"an id_token_hint that is not a token", get("/authorize?" + with(authz, "id_token_hint", "ZZMARK")), 302, "login_required"},
		// ... and when they are not: a page.
		{"no client_id", get("/authorize?max_age=abcZZMARK"), 400, "invalid_request"},
		{"an unknown client", get("/authorize?" + with(authz, "client_id", "zzmark")), 400, "invalid_request"},
		{"an unknown authorization request", get("/authorize/callback?id=ZZMARK"), 400, "invalid_request"},
		{"an end_session hint that is not a token", get("/end_session?id_token_hint=ZZMARK&post_logout_redirect_uri=http://127.0.0.1/ZZMARK"), 400, "invalid_request"},
		{"an end_session hint that is not a token, no redirect", get("/end_session?id_token_hint=ZZMARK"), 400, "invalid_request"},
	} {
		r := h.do(c.req)
		checkFixedError(t, c.name, r, c.status, c.code)
	}
}

// checkFixedError checks an error answer: its status, its code, the code's fixed description and
// nothing else.
func checkFixedError(t *testing.T, name string, r resp, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d: %s %s", name, r.status, status, r.header.Get("Location"), r.body)
		return
	}
	all := r.body + " " + r.header.Get("Location") + " " + r.header.Get("WWW-Authenticate")
	for _, m := range leakMarkers {
		if strings.Contains(all, m) {
			t.Errorf("%s: the answer contains %q: %s", name, m, all)
		}
	}
	switch {
	case status == 302:
		u, err := url.Parse(r.header.Get("Location"))
		if err != nil {
			t.Errorf("%s: Location %q", name, r.header.Get("Location"))
			return
		}
		q := u.Query()
		if f, _ := url.ParseQuery(u.Fragment); f.Get("error") != "" {
			q = f
		}
		if q.Get("error") != code || q.Get("error_description") != errorDescriptions[code] || !strings.HasPrefix(u.String(), "http://127.0.0.1:4711/callback") {
			t.Errorf("%s: redirect %s, want error %s with its description", name, u, code)
		}
	case strings.HasPrefix(r.header.Get("Content-Type"), "text/html"):
		if !strings.Contains(r.body, code) {
			t.Errorf("%s: the page does not name %s", name, code)
		}
	default:
		if len(r.json) != 2 || r.json["error"] != code || r.json["error_description"] != errorDescriptions[code] {
			t.Errorf("%s: %s, want exactly {error: %s, error_description: its fixed text}", name, r.body, code)
		}
		if r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q", name, r.header.Get("Cache-Control"))
		}
		if status == 401 && r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: a 401 without WWW-Authenticate", name)
		}
	}
}
