package oidc

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestAuthorizeRefusesRepeatedAndMalformedParameters: a parameter given twice, a prompt outside OpenID
// Connect's values (or in another case, or none with others), a max_age that is not a number and a
// PKCE challenge outside 43–128 unreserved characters are invalid_request, sent to the redirect URI
// once the client and redirect URI are validated and shown on a page before.
func TestAuthorizeRefusesRepeatedAndMalformedParameters(t *testing.T) {
	h := newHarness(t)
	_, challenge := pkce()
	base := func() url.Values {
		return url.Values{"client_id": {"native"}, "redirect_uri": {"http://127.0.0.1:4711/callback"}, "response_type": {"code"},
			"scope": {"openid"}, "state": {"s1"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	}
	authz := func(q url.Values) resp { return h.get("acme", "/authorize?"+q.Encode()) }
	ok := func(name string, q url.Values) {
		t.Helper()
		if r := authz(q); r.status != 302 || !strings.HasPrefix(r.header.Get("Location"), "/e/acme/authorize/continue?id=") {
			t.Errorf("%s: %d %s %s", name, r.status, r.header.Get("Location"), r.body)
		}
	}
	ok("a good request", base())
	for _, p := range []string{"login", "consent", "select_account", "login consent", "none"} {
		q := base()
		q.Set("prompt", p)
		ok("prompt="+p, q)
	}
	q := base()
	q.Set("code_challenge", strings.Repeat("a", 128))
	ok("a 128-character challenge", q)
	q.Set("code_challenge", strings.Repeat("A", 42)+"~")
	ok("a 43-character challenge", q)

	for name, mod := range map[string]func(url.Values){
		"prompt=login&prompt=none":     func(q url.Values) { q["prompt"] = []string{"login", "none"} },
		"prompt twice, the same":       func(q url.Values) { q["prompt"] = []string{"login", "login"} },
		"prompt=LOGIN":                 func(q url.Values) { q.Set("prompt", "LOGIN") },
		"prompt=None":                  func(q url.Values) { q.Set("prompt", "None") },
		"prompt=none login":            func(q url.Values) { q.Set("prompt", "none login") },
		"prompt=login login":           func(q url.Values) { q.Set("prompt", "login login") },
		"prompt=bogus":                 func(q url.Values) { q.Set("prompt", "bogus") },
		"prompt with a tab":            func(q url.Values) { q.Set("prompt", "login\tnone") },
		"prompt with two spaces":       func(q url.Values) { q.Set("prompt", "login  consent") },
		"prompt with a trailing space": func(q url.Values) { q.Set("prompt", "login ") },
		"max_age=abc":                  func(q url.Values) { q.Set("max_age", "abc") },
		"max_age=-1":                   func(q url.Values) { q.Set("max_age", "-1") },
		"max_age too large":            func(q url.Values) { q.Set("max_age", "99999999999") },
		"a 42-character challenge":     func(q url.Values) { q.Set("code_challenge", strings.Repeat("a", 42)) },
		"a 129-character challenge": func(q url.Values) {
			q.Set("code_challenge", strings.Repeat("a", 129))
		},
		"a challenge with +":         func(q url.Values) { q.Set("code_challenge", strings.Repeat("a", 42)+"+") },
		"a challenge with =":         func(q url.Values) { q.Set("code_challenge", challenge+"=") },
		"a challenge with a space":   func(q url.Values) { q.Set("code_challenge", strings.Repeat("a", 42)+" ") },
		"scope twice":                func(q url.Values) { q["scope"] = []string{"openid", "openid profile"} },
		"code_challenge twice":       func(q url.Values) { q["code_challenge"] = []string{challenge, challenge} },
		"response_type twice":        func(q url.Values) { q["response_type"] = []string{"code", "code"} },
		"an unknown parameter twice": func(q url.Values) { q["x"] = []string{"1", "2"} },
	} {
		q := base()
		mod(q)
		r := authz(q)
		loc, _ := url.Parse(r.header.Get("Location"))
		if r.status != 302 || loc == nil || !strings.HasPrefix(loc.String(), "http://127.0.0.1:4711/callback?") ||
			loc.Query().Get("error") != "invalid_request" || loc.Query().Get("state") != "s1" {
			t.Errorf("%s: %d %s", name, r.status, r.header.Get("Location"))
		}
	}
	// A repeated state is not echoed.
	q = base()
	q["state"] = []string{"s1", "s2"}
	if r := authz(q); r.status != 302 || !strings.Contains(r.header.Get("Location"), "error=invalid_request") || strings.Contains(r.header.Get("Location"), "state=") {
		t.Errorf("state twice: %d %s", r.status, r.header.Get("Location"))
	}
	// Before the client and its redirect URI are known to be good, no redirect at all.
	for name, mod := range map[string]func(url.Values){
		"client_id twice": func(q url.Values) { q["client_id"] = []string{"native", "native"} },
		"redirect_uri twice": func(q url.Values) {
			q["redirect_uri"] = []string{"http://127.0.0.1:4711/callback", "http://127.0.0.1:4711/callback"}
		},
		"no client_id":             func(q url.Values) { q.Del("client_id") },
		"no redirect_uri":          func(q url.Values) { q.Del("redirect_uri") },
		"an unknown client":        func(q url.Values) { q.Set("client_id", "nobody") },
		"a client of beta":         func(q url.Values) { q.Set("client_id", "web"); q.Set("redirect_uri", "https://app.example/cb/x") },
		"an unregistered redirect": func(q url.Values) { q.Set("redirect_uri", "http://localhost:4711/callback") },
		"prompt=LOGIN and a bad redirect": func(q url.Values) {
			q.Set("prompt", "LOGIN")
			q.Set("redirect_uri", "http://127.0.0.1:4711/callback#x")
		},
	} {
		q := base()
		mod(q)
		if r := authz(q); r.status != 400 || r.header.Get("Location") != "" || !strings.Contains(r.header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d %s", name, r.status, r.header.Get("Location"))
		}
	}
	// A POST repeating a query parameter in its body repeats it too.
	req := strings.NewReader(url.Values{"prompt": {"none"}}.Encode())
	q = base()
	q.Set("prompt", "login")
	r := h.do(func() *http.Request {
		r, _ := http.NewRequest(http.MethodPost, h.iss("acme")+"/authorize?"+q.Encode(), req)
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return r
	}())
	if r.status != 302 || !strings.Contains(r.header.Get("Location"), "error=invalid_request") {
		t.Errorf("prompt in the query and the body: %d %s", r.status, r.header.Get("Location"))
	}
}
