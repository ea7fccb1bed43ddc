package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/qiao-gateway/qiao/access"

	"github.com/qiao-gateway/qiao/directory"
)

// These tests cover the OpenID Provider's answers to a red-team review of main 4cdb444: client
// credentials from the body only, codes taken only by their authenticated client, throttled client
// authentication, errors without internal text, strict redirect URI matching, strict authorization
// parameters, and checks a mutation run found untested.

const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// post sends a form to an endpoint with an optional query string and Basic credentials.
func (o *oidcWorld) post(path, query string, form url.Values, basic ...string) (int, map[string]any, http.Header) {
	o.t.Helper()
	u := o.iss + path
	if query != "" {
		u += "?" + query
	}
	req := mustReq("POST", u, form.Encode())
	if len(basic) == 2 {
		req.SetBasicAuth(basic[0], basic[1])
	}
	return getJSON(o.t, req)
}

// TestOIDCAssertionNotReplayableThroughTheQuery: the single-use check and the library read client
// credentials from the same place, the body; in the query they are refused at every endpoint that
// authenticates clients.
func TestOIDCAssertionNotReplayableThroughTheQuery(t *testing.T) {
	o := newOIDCWorld(t)
	a := clientAssertion("pkjwt-svc", o.iss, o.pk, "q-1")
	st, cc := o.token(url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {jwtBearer}, "client_assertion": {a}})
	if st != 200 {
		t.Fatalf("client_credentials with private_key_jwt: %d %v", st, cc)
	}
	// The spent assertion, replayed in the query, must not authenticate anything.
	replay := url.Values{"client_assertion_type": {jwtBearer}, "client_assertion": {a}}.Encode()
	if st, m, _ := o.post("/oauth/introspect", replay, url.Values{"token": {cc["access_token"].(string)}}); st != 400 || m["error"] != "invalid_request" || m["active"] != nil {
		t.Fatalf("introspection with the used assertion in the query: %d %v", st, m)
	}
	b := newBrowser(t)
	q := url.Values{"client_id": {"pkjwt"}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {"https://app.example/cb"},
		"state": {"st-1"}, "idp_hint": {"wecom"}}
	used := clientAssertion("pkjwt", o.iss, o.pk, "q-2")
	if st, m := o.token(url.Values{"grant_type": {"authorization_code"}, "code": {codeOf(t, o.login(b, q, "https://app.example/"))},
		"redirect_uri": {"https://app.example/cb"}, "client_assertion_type": {jwtBearer}, "client_assertion": {used}}); st != 200 {
		t.Fatalf("pkjwt's code exchange: %d %v", st, m)
	}
	st, m, _ := o.post("/oauth/token", url.Values{"client_assertion_type": {jwtBearer}, "client_assertion": {used}}.Encode(),
		url.Values{"grant_type": {"authorization_code"}, "code": {codeOf(t, o.login(b, q, "https://app.example/"))}, "redirect_uri": {"https://app.example/cb"}})
	if st != 400 || m["error"] != "invalid_request" || m["access_token"] != nil {
		t.Fatalf("a code exchange with the used assertion in the query: %d %v", st, m)
	}
	svc, _ := o.gw.Store.GetClient(o.ctx, "demo", "demo-service")
	for _, path := range []string{"/oauth/token", "/oauth/introspect", "/revoke"} {
		for _, q := range []url.Values{{"client_secret": {svc.Secret}}, {"client_assertion": {clientAssertion("pkjwt-svc", o.iss, o.pk, "q-"+path)}},
			{"client_assertion_type": {jwtBearer}}, {"client_id": {"demo-service"}}} {
			st, m, _ := o.post(path, q.Encode(), url.Values{"grant_type": {"client_credentials"}, "token": {"x"}, "client_id": {"demo-service"}})
			if st != 400 || m["error"] != "invalid_request" || m["access_token"] != nil || m["active"] != nil {
				t.Errorf("%s with %v in the query: %d %v", path, q, st, m)
			}
		}
	}
}

// TestOIDCLeakedCodeAtAnotherEnterprise: a code presented at another enterprise's token endpoint, by
// that enterprise's client of the same ID and secret, is unknown there: it is not burnt, and
// presenting it again after its redemption revokes nothing.
func TestOIDCLeakedCodeAtAnotherEnterprise(t *testing.T) {
	o := newOIDCWorld(t)
	b := newBrowser(t)
	q := url.Values{"client_id": {"web-es"}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {"https://app.example/cb"},
		"state": {"st-1"}, "idp_hint": {"wecom"}}
	code := codeOf(t, o.login(b, q, "https://app.example/"))
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.example/cb"}, "client_id": {"web-es"}, "client_secret": {o.webSecret}}
	if st, m := o.tokenAt(o.base+"/e/other", form); st != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("another enterprise's token endpoint: %d %v", st, m)
	}
	app, _ := o.gw.Store.GetClient(o.ctx, "demo", "demo-app")
	if st, m := o.token(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.example/cb"}}, "demo-app", app.Secret); st != 400 {
		t.Fatalf("another client of the enterprise: %d %v", st, m)
	}
	st, tok := o.token(form)
	if st != 200 {
		t.Fatalf("the code's own client after others presented it: %d %v", st, tok)
	}
	o.tokenAt(o.base+"/e/other", form)
	if in := o.introspectAs("web-es", o.webSecret, tok["access_token"].(string)); in["active"] != true {
		t.Fatal("presenting the code at another enterprise revoked its tokens")
	}
}

// TestOIDCClientAuthenticationThrottled: wrong secrets are answered invalid_client until the
// client's limit, then 429 with Retry-After, even for the right secret; other clients go on.
func TestOIDCClientAuthenticationThrottled(t *testing.T) {
	o := newOIDCWorld(t)
	svc, _ := o.gw.Store.GetClient(o.ctx, "demo", "demo-service")
	cc := url.Values{"grant_type": {"client_credentials"}}
	for i := 0; i < o.gw.OIDC.ClientAuthFailures; i++ {
		if st, m, _ := o.post("/oauth/token", "", cc, "demo-service", "wrong"); st != 401 || m["error"] != "invalid_client" {
			t.Fatalf("wrong secret %d: %d %v", i, st, m)
		}
	}
	for _, secret := range []string{"wrong", svc.Secret} {
		st, m, h := o.post("/oauth/token", "", cc, "demo-service", secret)
		if st != 429 || m["error"] != "invalid_client" || h.Get("Retry-After") == "" || m["access_token"] != nil {
			t.Fatalf("over the limit: %d %v %v", st, m, h)
		}
	}
	if in := o.introspectAs("web-es", o.webSecret, "x"); in["active"] != false {
		t.Fatalf("another client over the same address: %v", in)
	}
}

// TestOIDCErrorsCarryNoInternalText: the answers the review found leaking the library's error chains
// and decoder messages now carry the RFC code and a fixed description.
func TestOIDCErrorsCarryNoInternalText(t *testing.T) {
	o := newOIDCWorld(t)
	_, challenge := pkcePair()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	read := func(req *http.Request) (int, string, http.Header) {
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b), resp.Header
	}
	svc, _ := o.gw.Store.GetClient(o.ctx, "demo", "demo-service")
	descriptions := map[string]string{} // code -> the one description seen for it
	for _, c := range []struct {
		name string
		req  *http.Request
		code string
	}{
		{"introspection without a client", mustReq("POST", o.iss+"/oauth/introspect", "token=x"), "invalid_client"},
		{"a scope that is not allowed", func() *http.Request {
			r := mustReq("POST", o.iss+"/oauth/token", "grant_type=client_credentials&scope=%3Cb%3Ezz")
			r.SetBasicAuth("demo-service", svc.Secret)
			return r
		}(), "invalid_scope"},
		{"a wrong secret", func() *http.Request {
			r := mustReq("POST", o.iss+"/oauth/introspect", "token=zz")
			r.SetBasicAuth("demo-service", "zz")
			return r
		}(), "invalid_client"},
		{"a max_age that is not a number", mustReq("GET", o.iss+"/authorize?"+nativeAuthz(challenge, "max_age", "abc").Encode(), ""), "invalid_request"},
		{"an unknown authorization request", mustReq("GET", o.iss+"/authorize/callback?id=zz", ""), "invalid_request"},
		{"a garbage code", mustReq("POST", o.iss+"/oauth/token", "grant_type=authorization_code&code=zz&client_id=sase-client&redirect_uri="+url.QueryEscape(rpRedirect)), "invalid_grant"},
		{"a garbage id_token_hint", mustReq("GET", o.iss+"/end_session?id_token_hint=zz", ""), "invalid_request"},
	} {
		st, body, h := read(c.req)
		all := body + h.Get("Location")
		for _, leak := range []string{"Parent", "ErrorType", "schema", "converting", "missing from request", "key not found", "zz", "<b>"} {
			if strings.Contains(all, leak) {
				t.Errorf("%s: %d, the answer contains %q: %s", c.name, st, leak, all)
			}
		}
		desc := ""
		if loc := h.Get("Location"); loc != "" {
			u, _ := url.Parse(loc)
			if u.Query().Get("error") != c.code {
				t.Errorf("%s: redirect %s", c.name, loc)
			}
			desc = u.Query().Get("error_description")
		} else if strings.HasPrefix(h.Get("Content-Type"), "application/json") {
			m := map[string]any{}
			_ = json.Unmarshal([]byte(body), &m)
			if m["error"] != c.code || len(m) != 2 {
				t.Errorf("%s: %d %s", c.name, st, body)
			}
			if st == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("%s: 401 without a Basic challenge: %v", c.name, h)
			}
			desc, _ = m["error_description"].(string)
		} else if !strings.Contains(body, c.code) {
			t.Errorf("%s: %d page without the code: %s", c.name, st, body)
		}
		if desc != "" {
			if seen, ok := descriptions[c.code]; ok && seen != desc {
				t.Errorf("%s: %s described as %q and as %q", c.name, c.code, seen, desc)
			}
			descriptions[c.code] = desc
		}
	}
}

// TestOIDCRedirectURIMatching: a registered redirect URI with anything appended or altered is refused
// on a page, never redirected to; for the native SASE client, only 127.0.0.1 on any valid port.
func TestOIDCRedirectURIMatching(t *testing.T) {
	o := newOIDCWorld(t)
	_, challenge := pkcePair()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	authz := func(q url.Values) (int, string) {
		resp, err := noFollow.Get(o.iss + "/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Location")
	}
	web := func(uri string) url.Values {
		return url.Values{"client_id": {"web-es"}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {uri}, "state": {"st-1"}}
	}
	for _, uri := range []string{"https://app.example/cb/", "https://app.example/cbx", "https://app.example/cb/extra", "https://app.example/cb?x=1",
		"https://app.example/cb?", "https://app.example/cb#f", "https://app.example/cb%2F", "https://app.example/c%62", "https://APP.example/cb",
		"https://app.example:443/cb", "https://app.example.evil.example/cb", "https://app.example/cb/../cb"} {
		if st, loc := authz(web(uri)); st != 400 || loc != "" {
			t.Errorf("web-es with %s: %d %s", uri, st, loc)
		}
	}
	for _, uri := range []string{"http://localhost:53682/callback", "http://127.0.0.2:53682/callback", "http://[::ffff:127.0.0.1]:53682/callback",
		"http://[::1]:53682/callback", "http://user@127.0.0.1:53682/callback", "http://127.0.0.1:0/callback", "http://127.0.0.1:99999/callback",
		"http://127.0.0.1:53682/%63allback", "http://127.0.0.1:53682/callback#f", "http://127.0.0.1:53682/callback/", "http://127.0.0.1:53682/callbackx",
		"http://127.0.0.1:53682/callback?x=1", "http://127.0.0.1:53682/callback/x", "https://127.0.0.1:53682/callback"} {
		if st, loc := authz(nativeAuthz(challenge, "redirect_uri", uri)); st != 400 || loc != "" {
			t.Errorf("sase-client with %s: %d %s", uri, st, loc)
		}
	}
	for _, uri := range []string{"http://127.0.0.1/callback", "http://127.0.0.1:1/callback", "http://127.0.0.1:65535/callback"} {
		if st, loc := authz(nativeAuthz(challenge, "redirect_uri", uri)); st != 302 || !strings.Contains(loc, "/authorize/continue") {
			t.Errorf("sase-client with %s: %d %s", uri, st, loc)
		}
	}
}

// TestOIDCPromptStrictWithASession: with an SSO session, prompt=login&prompt=none and prompt=LOGIN no
// longer produce a code without a new login: they are invalid_request.
func TestOIDCPromptStrictWithASession(t *testing.T) {
	o := newOIDCWorld(t)
	_, challenge := pkcePair()
	b := newBrowser(t)
	o.login(b, nativeAuthz(challenge), "http://127.0.0.1:53682/")
	b.stop = "http://127.0.0.1:53682/"
	for name, q := range map[string]url.Values{
		"prompt=login&prompt=none": func() url.Values { q := nativeAuthz(challenge); q["prompt"] = []string{"login", "none"}; return q }(),
		"prompt=none&prompt=login": func() url.Values { q := nativeAuthz(challenge); q["prompt"] = []string{"none", "login"}; return q }(),
		"prompt=LOGIN":             nativeAuthz(challenge, "prompt", "LOGIN"),
		"a short challenge":        nativeAuthz(challenge, "code_challenge", challenge[:42]),
	} {
		_, _, at := b.get(o.iss+"/authorize?"+q.Encode(), "")
		u, _ := url.Parse(at)
		if !strings.HasPrefix(at, "http://127.0.0.1:53682/callback") || u.Query().Get("code") != "" || u.Query().Get("error") != "invalid_request" {
			t.Errorf("%s with a session: %s", name, at)
		}
	}
}

// TestOIDCIntrospectionByAnotherEnterprisesService: a service client of another enterprise learns
// nothing about this enterprise's tokens, at its own endpoint or at this one.
func TestOIDCIntrospectionByAnotherEnterprisesService(t *testing.T) {
	o := newOIDCWorld(t)
	svc, _ := o.gw.Store.GetClient(o.ctx, "demo", "demo-service")
	_, cc := o.token(url.Values{"grant_type": {"client_credentials"}}, "demo-service", svc.Secret)
	tok := cc["access_token"].(string)
	if o.introspect(tok)["active"] != true {
		t.Fatal("demo's own resource server sees its token inactive")
	}
	req := mustReq("POST", o.base+"/e/other/oauth/introspect", url.Values{"token": {tok}}.Encode())
	req.SetBasicAuth("svc-other", "svc-other-secret")
	if st, m, _ := getJSON(t, req); st != 200 || m["active"] != false || len(m) != 1 {
		t.Fatalf("other's service introspecting demo's token at other: %d %v", st, m)
	}
	req = mustReq("POST", o.iss+"/oauth/introspect", url.Values{"token": {tok}}.Encode())
	req.SetBasicAuth("svc-other", "svc-other-secret")
	if st, m, _ := getJSON(t, req); st != 401 || m["active"] != nil {
		t.Fatalf("other's service introspecting at demo: %d %v", st, m)
	}
}

// TestOIDCEndSessionConfirmBelongsToTheSession: the confirmation of a logout without id_token_hint is
// bound to the browser's session: a forged value, or another session's, ends nothing.
func TestOIDCEndSessionConfirmBelongsToTheSession(t *testing.T) {
	o := newOIDCWorld(t)
	q := url.Values{"client_id": {"web-es"}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {"https://app.example/cb"},
		"state": {"st-1"}, "idp_hint": {"wecom"}}
	confirmRe := regexp.MustCompile(`name="confirm" value="([^"]+)"`)
	signIn := func() (*browser, string) {
		b := newBrowser(t)
		o.login(b, q, "https://app.example/")
		resp, err := b.c.Get(o.iss + "/end_session?client_id=web-es")
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := confirmRe.FindSubmatch(page)
		if m == nil {
			t.Fatalf("no logout confirmation: %d", resp.StatusCode)
		}
		return b, string(m[1])
	}
	alive := func(b *browser) bool {
		b.stop = "https://app.example/"
		pq := url.Values{"client_id": {"web-es"}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {"https://app.example/cb"},
			"state": {"st-1"}, "prompt": {"none"}}
		_, _, at := b.get(o.iss+"/authorize?"+pq.Encode(), "")
		return strings.Contains(at, "code=")
	}
	a, tokA := signIn()
	b, tokB := signIn()
	if tokA == tokB {
		t.Fatal("two sessions share a logout confirmation")
	}
	for name, confirm := range map[string]string{"another session's": tokA, "forged": strings.Repeat("A", len(tokB)), "empty": "",
		"altered": tokB[:len(tokB)-1] + "x"} {
		resp, err := b.c.PostForm(o.iss+"/end_session", url.Values{"confirm": {confirm}, "client_id": {"web-es"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Location") != "" || !alive(b) {
			t.Fatalf("%s confirmation: %d %s; the session must survive", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	resp, err := b.c.PostForm(o.iss+"/end_session", url.Values{"confirm": {tokB}, "client_id": {"web-es"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 || alive(b) {
		t.Fatalf("the session's own confirmation: %d; the session must end", resp.StatusCode)
	}
	if !alive(a) {
		t.Fatal("ending one session ended another")
	}
}

// TestOIDCNoEmptySecretForClientsWithoutOne: a client registered without a secret (private_key_jwt,
// public) never authenticates with an empty one over Basic.
func TestOIDCNoEmptySecretForClientsWithoutOne(t *testing.T) {
	o := newOIDCWorld(t)
	b := newBrowser(t)
	q := url.Values{"client_id": {"pkjwt"}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {"https://app.example/cb"},
		"state": {"st-1"}, "idp_hint": {"wecom"}}
	code := codeOf(t, o.login(b, q, "https://app.example/"))
	for _, id := range []string{"pkjwt", "pkjwt-svc", "sase-client"} {
		for path, form := range map[string]url.Values{
			"/oauth/token":      {"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.example/cb"}},
			"/oauth/introspect": {"token": {"x"}},
			"/revoke":           {"token": {"x"}},
		} {
			if st, m, _ := o.post(path, "", form, id, ""); st != 401 || m["error"] != "invalid_client" {
				t.Errorf("%s as %s with an empty secret: %d %v", path, id, st, m)
			}
		}
	}
	// The code was not spent by those attempts.
	if st, m := o.token(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.example/cb"},
		"client_assertion_type": {jwtBearer}, "client_assertion": {clientAssertion("pkjwt", o.iss, o.pk, "e-1")}}); st != 200 {
		t.Fatalf("pkjwt with its assertion: %d %v", st, m)
	}
}

// TestOIDCRevokeUserEndsRefreshTokens: the gateway's revocation of a person (sync's answer to a
// departure) stops their refresh tokens at once, checked directly rather than through back-channel
// deliveries.
func TestOIDCRevokeUserEndsRefreshTokens(t *testing.T) {
	o := newOIDCWorld(t)
	verifier, challenge := pkcePair()
	b := newBrowser(t)
	code := codeOf(t, o.login(b, nativeAuthz(challenge), "http://127.0.0.1:53682/"))
	_, tok := o.token(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect}, "client_id": {"sase-client"}, "code_verifier": {verifier}})
	rt, _ := tok["refresh_token"].(string)
	if rt == "" {
		t.Fatalf("no refresh token: %v", tok)
	}
	zhang := o.user("zhangsan")
	// The account still reads as active: only the revocation stands between the token and a refresh.
	if err := o.gw.Access.EndUser(o.ctx, "demo", zhang.ID, access.Departed); err != nil {
		t.Fatal(err)
	}
	if st, m := o.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"sase-client"}}); st != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("refresh after RevokeUser: %d %v", st, m)
	}
	if u := o.user("zhangsan"); u.Status != directory.UserActive {
		t.Fatalf("the test meant an active account, got %s", u.Status)
	}
}
