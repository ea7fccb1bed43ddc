package gateway

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/access"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/config"
)

// These tests mirror the OpenID Foundation's Basic OP and Config OP checks (the suite itself
// cannot run here) plus qiao's own rules: PKCE S256 only, single-use codes, refresh rotation with
// reuse detection, per-enterprise issuers, back-channel logout and revocation of departed users.

const rpRedirect = "http://127.0.0.1:53682/callback" // the SASE client's loopback listener

type oidcWorld struct {
	*world
	iss       string
	logouts   chan string // logout tokens POSTed to the test RP's back-channel URI
	webSecret string
	pk        *rsa.PrivateKey // the pkjwt client's private_key_jwt key
}

func newOIDCWorld(t *testing.T) *oidcWorld { return newOIDCWorldWith(t) }

// newOIDCWorldWith is newOIDCWorld with more changes to its config (a backend, say).
func newOIDCWorldWith(t *testing.T, more ...func(*config.Config)) *oidcWorld {
	o := &oidcWorld{logouts: make(chan string, 10), webSecret: "web-es-secret"}
	o.pk, _ = rsa.GenerateKey(rand.Reader, 2048)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &o.pk.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		o.logouts <- r.PostForm.Get("logout_token")
	}))
	t.Cleanup(rp.Close)
	o.world = newWorld(t, 30, t.TempDir(), true, func(c *config.Config) {
		e := &c.Enterprises[0]
		e.Clients = append(e.Clients,
			config.Client{ID: "web-es", Type: "web", Secret: o.webSecret, AuthMethod: "client_secret_post", IDTokenAlg: "ES256",
				AccessTokenFormat: "jwt", RedirectURIs: []string{"https://app.example/cb"}, PostLogoutRedirectURIs: []string{"https://app.example/bye"},
				BackchannelLogoutURI: rp.URL + "/bcl", AllowedOrigins: []string{"https://app.example"}, Scopes: []string{"groups"},
				Claims: map[string]string{"login": "username"}},
			config.Client{ID: "pkjwt", Type: "web", AuthMethod: "private_key_jwt", JWKS: string(jwks), RedirectURIs: []string{"https://app.example/cb"}},
			config.Client{ID: "pkjwt-svc", Type: "service", AuthMethod: "private_key_jwt", JWKS: string(jwks)})
		c.Enterprises = append(c.Enterprises, config.Enterprise{ID: "other", Clients: []config.Client{
			{ID: "web-es", Type: "web", Secret: o.webSecret, AuthMethod: "client_secret_post", RedirectURIs: []string{"https://app.example/cb"}},
			{ID: "svc-other", Type: "service", Secret: "svc-other-secret"}}})
		for _, m := range more {
			m(c)
		}
	})
	o.iss = o.base + "/e/demo"
	return o
}

func pkcePair() (verifier, challenge string) {
	verifier = strings.Repeat("v", 20) + base64.RawURLEncoding.EncodeToString([]byte(time.Now().String()))
	h := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(h[:])
}

func getJSON(t *testing.T, req *http.Request) (int, map[string]any, http.Header) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m, resp.Header
}

func (o *oidcWorld) token(form url.Values, basic ...string) (int, map[string]any) {
	req, _ := http.NewRequest("POST", o.iss+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if len(basic) == 2 {
		req.SetBasicAuth(basic[0], basic[1])
	}
	st, m, _ := getJSON(o.t, req)
	return st, m
}

// login runs an authorization request in browser b through the WeCom simulator and returns the
// URL the browser was sent to at the redirect URI.
func (o *oidcWorld) login(b *browser, q url.Values, stop string) string {
	o.t.Helper()
	b.stop = stop
	status, page, at := b.get(o.iss+"/authorize?"+q.Encode(), "zhangsan")
	if status != 0 {
		o.t.Fatalf("authorization did not reach the redirect URI: %d at %s\n%s\n%v", status, at, page, b.log)
	}
	return at
}

func nativeAuthz(challenge string, extra ...string) url.Values {
	q := url.Values{"client_id": {"sase-client"}, "response_type": {"code"}, "scope": {"openid profile email offline_access"},
		"redirect_uri": {rpRedirect}, "state": {"st-1"}, "nonce": {"n-1"}, "code_challenge": {challenge},
		"code_challenge_method": {"S256"}, "idp_hint": {"wecom"}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return q
}

func codeOf(t *testing.T, at string) string {
	t.Helper()
	u, _ := url.Parse(at)
	if e := u.Query().Get("error"); e != "" {
		t.Fatalf("error response: %s %s", e, u.Query().Get("error_description"))
	}
	if u.Query().Get("state") != "st-1" {
		t.Fatalf("state not echoed: %s", at)
	}
	return u.Query().Get("code")
}

// verifyJWT checks a JWT's signature against the issuer's published JWKS and returns its claims.
func (o *oidcWorld) verifyJWT(tok string) (map[string]any, string) {
	o.t.Helper()
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		o.t.Fatalf("parse JWT: %v", err)
	}
	resp, err := http.Get(o.iss + "/keys")
	if err != nil {
		o.t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	_ = json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	h := jws.Signatures[0].Header
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		o.t.Fatalf("kid %q not in JWKS", h.KeyID)
	}
	payload, err := jws.Verify(keys[0].Key)
	if err != nil {
		o.t.Fatalf("signature: %v", err)
	}
	var claims map[string]any
	_ = json.Unmarshal(payload, &claims)
	return claims, h.Algorithm
}

func TestOIDCDiscoveryAndKeys(t *testing.T) {
	o := newOIDCWorld(t)
	st, d, h := getJSON(t, mustReq("GET", o.iss+"/.well-known/openid-configuration", ""))
	if st != 200 || d["issuer"] != o.iss || h.Get("Cache-Control") == "" {
		t.Fatalf("discovery: %d %v", st, d["issuer"])
	}
	for k, want := range map[string]string{"authorization_endpoint": "/authorize", "token_endpoint": "/oauth/token", "userinfo_endpoint": "/userinfo",
		"jwks_uri": "/keys", "introspection_endpoint": "/oauth/introspect", "revocation_endpoint": "/revoke", "end_session_endpoint": "/end_session"} {
		if d[k] != o.iss+want {
			t.Errorf("%s = %v", k, d[k])
		}
	}
	list := func(k string) string {
		var s []string
		for _, v := range d[k].([]any) {
			s = append(s, v.(string))
		}
		return strings.Join(s, " ")
	}
	for k, want := range map[string]string{"response_types_supported": "code", "code_challenge_methods_supported": "S256",
		"grant_types_supported": "authorization_code refresh_token client_credentials urn:ietf:params:oauth:grant-type:device_code", "subject_types_supported": "public",
		"id_token_signing_alg_values_supported": "RS256 ES256 EdDSA"} {
		if got := list(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if d["backchannel_logout_supported"] != true || !strings.Contains(list("scopes_supported"), "openid") {
		t.Errorf("discovery lacks back-channel logout or scopes: %v", d)
	}
	// JWKS: public keys only, cacheable.
	resp, _ := http.Get(o.iss + "/keys")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Cache-Control") == "" || !strings.Contains(string(b), `"kty":"RSA"`) || !strings.Contains(string(b), `"kty":"EC"`) {
		t.Fatalf("JWKS: %s", b)
	}
	for _, private := range []string{`"d"`, `"p"`, `"q"`, `"dp"`, `"dq"`, `"qi"`} {
		if strings.Contains(string(b), private) {
			t.Fatalf("JWKS has private member %s", private)
		}
	}
	// Another enterprise is another issuer; an unknown one is nobody.
	_, d2, _ := getJSON(t, mustReq("GET", o.base+"/e/other/.well-known/openid-configuration", ""))
	if d2["issuer"] != o.base+"/e/other" {
		t.Fatalf("other issuer = %v", d2["issuer"])
	}
	if st, _, _ := getJSON(t, mustReq("GET", o.base+"/e/nobody/.well-known/openid-configuration", "")); st != 404 {
		t.Fatalf("unknown enterprise: %d", st)
	}
	// CORS: only registered origins.
	pre := mustReq("OPTIONS", o.iss+"/oauth/token", "")
	pre.Header.Set("Origin", "https://app.example")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	resp, _ = http.DefaultClient.Do(pre)
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("registered origin refused: %v", resp.Header)
	}
	pre.Header.Set("Origin", "https://evil.example")
	resp, _ = http.DefaultClient.Do(pre)
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("unregistered origin allowed")
	}
}

func mustReq(method, u, body string) *http.Request {
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return req
}

func TestOIDCNativeCodeFlowRefreshAndRevocation(t *testing.T) {
	o := newOIDCWorld(t)
	b := newBrowser(t)
	verifier, challenge := pkcePair()
	at := o.login(b, nativeAuthz(challenge), "http://127.0.0.1:53682/")
	code := codeOf(t, at)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect}, "client_id": {"sase-client"},
		"code_verifier": {"wrong" + verifier}}
	if st, m := o.token(form); st != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("wrong verifier: %d %v", st, m)
	}
	// A wrong verifier does not spend the code: only the verifier's holder can.
	form.Set("code_verifier", verifier)
	st, tok := o.token(form)
	if st != 200 || tok["refresh_token"] == nil || tok["id_token"] == nil || tok["token_type"] != "Bearer" {
		t.Fatalf("exchange: %d %v", st, tok)
	}
	claims, alg := o.verifyJWT(tok["id_token"].(string))
	zhang := o.user("zhangsan")
	if alg != "RS256" || claims["iss"] != o.iss || claims["aud"] != "sase-client" && !strings.Contains(toJSON(claims["aud"]), "sase-client") ||
		claims["sub"] != zhang.ID || claims["nonce"] != "n-1" || claims["name"] != "张三" || claims["preferred_username"] != "zhangsan" ||
		toJSON(claims["amr"]) != `["wecom_qr"]` || claims["auth_time"] == nil || claims["idp"] != "wecom" || claims["sid"] == nil ||
		claims["enterprise_id"] != "demo" || claims["email"] != zhang.Email || zhang.Email == "" {
		t.Fatalf("ID token claims: %s", toJSON(claims))
	}
	// The code is single use; presenting it again revokes what it issued.
	if st, m := o.token(form); st != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("code reuse: %d %v", st, m)
	}
	if o.introspect(tok["access_token"].(string))["active"] != false {
		t.Fatal("access token still active after the code was reused")
	}
	if st, m := o.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {"sase-client"}}); st != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("refresh after code reuse: %d %v", st, m)
	}

	// A clean grant: refresh rotates; presenting the old refresh token again revokes the family.
	code = codeOf(t, o.login(b, nativeAuthz(challenge), "http://127.0.0.1:53682/"))
	form.Set("code", code)
	_, tok = o.token(form)
	rt1 := tok["refresh_token"].(string)
	st, tok2 := o.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt1}, "client_id": {"sase-client"}})
	if st != 200 || tok2["refresh_token"] == rt1 || tok2["id_token"] == nil {
		t.Fatalf("refresh: %d %v", st, tok2)
	}
	if c, _ := o.verifyJWT(tok2["id_token"].(string)); c["sub"] != zhang.ID || c["idp"] != "wecom" {
		t.Fatalf("refreshed ID token: %v", c)
	}
	if o.introspect(tok2["access_token"].(string))["active"] != true {
		t.Fatal("refreshed access token inactive")
	}
	if st, m := o.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt1}, "client_id": {"sase-client"}}); st != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("reused refresh token: %d %v", st, m)
	}
	if st, _ := o.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok2["refresh_token"].(string)}, "client_id": {"sase-client"}}); st != 400 {
		t.Fatal("the family survived a reuse")
	}
	if o.introspect(tok2["access_token"].(string))["active"] != false {
		t.Fatal("the family's access token survived a reuse")
	}

	// Userinfo by GET header, POST header and POST body.
	code = codeOf(t, o.login(b, nativeAuthz(challenge), "http://127.0.0.1:53682/"))
	form.Set("code", code)
	_, tok = o.token(form)
	atok := tok["access_token"].(string)
	for _, req := range []*http.Request{mustReq("GET", o.iss+"/userinfo", ""), mustReq("POST", o.iss+"/userinfo", ""),
		mustReq("POST", o.iss+"/userinfo", url.Values{"access_token": {atok}}.Encode())} {
		if req.Header.Get("Content-Type") == "" {
			req.Header.Set("Authorization", "Bearer "+atok)
		}
		st, ui, _ := getJSON(t, req)
		if st != 200 || ui["sub"] != zhang.ID || ui["name"] != "张三" || ui["email"] != zhang.Email || ui["idp"] != "wecom" {
			t.Fatalf("userinfo %s: %d %v", req.Method, st, ui)
		}
	}
	if st, _, _ := getJSON(t, mustReq("GET", o.iss+"/userinfo", "")); st != 401 && st != 400 {
		t.Fatalf("userinfo without token: %d", st)
	}
	// Tokens of one enterprise are unknown to another's endpoints.
	req := mustReq("GET", o.base+"/e/other/userinfo", "")
	req.Header.Set("Authorization", "Bearer "+atok)
	if st, _, _ := getJSON(t, req); st == 200 {
		t.Fatal("another enterprise's userinfo accepted the token")
	}
	if st, m := o.tokenAt(o.base+"/e/other", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)},
		"client_id": {"web-es"}, "client_secret": {o.webSecret}}); st != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("another enterprise's token endpoint: %d %v", st, m)
	}
	// Revocation (RFC 7009) of the refresh token ends the grant.
	rv := mustReq("POST", o.iss+"/revoke", url.Values{"token": {tok["refresh_token"].(string)}, "client_id": {"sase-client"}}.Encode())
	if st, _, _ := getJSON(t, rv); st != 200 {
		t.Fatalf("revoke: %d", st)
	}
	if o.introspect(atok)["active"] != false {
		t.Fatal("access token active after its grant was revoked")
	}

	// A departed user: refresh tokens stop, introspection says inactive.
	code = codeOf(t, o.login(b, nativeAuthz(challenge), "http://127.0.0.1:53682/"))
	form.Set("code", code)
	_, tok = o.token(form)
	zhang.Status = directory.UserDeparted
	if err := o.gw.Store.UpdateUser(o.ctx, zhang); err != nil {
		t.Fatal(err)
	}
	if err := o.gw.Access.EndUser(o.ctx, "demo", zhang.ID, access.Departed); err != nil {
		t.Fatal(err)
	}
	if o.introspect(tok["access_token"].(string))["active"] != false {
		t.Fatal("a departed user's access token is active")
	}
	if st, _ := o.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {"sase-client"}}); st != 400 {
		t.Fatal("a departed user's refresh token works")
	}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func (o *oidcWorld) tokenAt(iss string, form url.Values) (int, map[string]any) {
	st, m, _ := getJSON(o.t, mustReq("POST", iss+"/oauth/token", form.Encode()))
	return st, m
}

// introspect asks as the service client demo-service, a resource server, would.
func (o *oidcWorld) introspect(tok string) map[string]any {
	o.t.Helper()
	c, _ := o.gw.Store.GetClient(o.ctx, "demo", "demo-service")
	return o.introspectAs("demo-service", c.Secret, tok)
}

// introspectAs asks as the given client (client_secret_basic).
func (o *oidcWorld) introspectAs(id, secret, tok string) map[string]any {
	o.t.Helper()
	req := mustReq("POST", o.iss+"/oauth/introspect", url.Values{"token": {tok}}.Encode())
	req.SetBasicAuth(id, secret)
	st, m, _ := getJSON(o.t, req)
	if st != 200 {
		o.t.Fatalf("introspect: %d %v", st, m)
	}
	return m
}

func TestOIDCAuthorizationRequestChecks(t *testing.T) {
	o := newOIDCWorld(t)
	_, challenge := pkcePair()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	authz := func(q url.Values) (int, string, string) {
		resp, err := noFollow.Get(o.iss + "/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Location"), string(b)
	}
	errOf := func(loc string) string { // in the query, or the fragment for response types that use it
		u, _ := url.Parse(loc)
		if e := u.Query().Get("error"); e != "" {
			return e
		}
		f, _ := url.ParseQuery(u.Fragment)
		return f.Get("error")
	}
	// Unregistered redirect URI or unknown client: an error page, never a redirect.
	for _, q := range []url.Values{nativeAuthz(challenge, "redirect_uri", "https://evil.example/cb"), nativeAuthz(challenge, "client_id", "nobody"),
		nativeAuthz(challenge, "redirect_uri", "http://127.0.0.1:53682/other")} {
		if st, loc, _ := authz(q); st != 400 || loc != "" {
			t.Fatalf("bad redirect/client %v: %d %s", q, st, loc)
		}
	}
	// Loopback on any port (RFC 8252) is the same redirect URI.
	if st, loc, _ := authz(nativeAuthz(challenge, "redirect_uri", "http://127.0.0.1:1234/callback")); st != 302 || errOf(loc) != "" {
		t.Fatalf("loopback port: %d %s", st, loc)
	}
	for name, c := range map[string]struct {
		q    url.Values
		want string
	}{
		"missing response_type": {func() url.Values { q := nativeAuthz(challenge); q.Del("response_type"); return q }(), "invalid_request"},
		"implicit":              {nativeAuthz(challenge, "response_type", "id_token token"), "unauthorized_client"},
		"PKCE plain":            {nativeAuthz(challenge, "code_challenge_method", "plain"), "invalid_request"},
		"PKCE no method":        {func() url.Values { q := nativeAuthz(challenge); q.Del("code_challenge_method"); return q }(), "invalid_request"},
		"PKCE missing": {func() url.Values {
			q := nativeAuthz(challenge)
			q.Del("code_challenge")
			q.Del("code_challenge_method")
			return q
		}(), "invalid_request"},
		"no openid scope": {nativeAuthz(challenge, "scope", "profile"), "invalid_scope"},
		"prompt=none":     {nativeAuthz(challenge, "prompt", "none"), "login_required"},
	} {
		st, loc, body := authz(c.q)
		if c.want == "login_required" && st == 302 && strings.Contains(loc, "/authorize/continue") {
			st, loc, body = func() (int, string, string) {
				resp, _ := noFollow.Get(o.base + loc)
				resp.Body.Close()
				return resp.StatusCode, resp.Header.Get("Location"), ""
			}()
		}
		if st != 302 || !strings.HasPrefix(loc, rpRedirect) || errOf(loc) != c.want || !strings.Contains(loc, "state=st-1") {
			t.Errorf("%s: %d %s %s", name, st, loc, body)
		}
	}

	// With a session: prompt=none answers at once; prompt=login and an exceeded max_age ask again.
	b := newBrowser(t)
	o.login(b, nativeAuthz(challenge), "http://127.0.0.1:53682/")
	b.stop = "http://127.0.0.1:53682/"
	_, _, at := b.get(o.iss+"/authorize?"+nativeAuthz(challenge, "prompt", "none").Encode(), "")
	if !strings.Contains(at, "code=") {
		t.Fatalf("prompt=none with a session: %s", at)
	}
	for _, extra := range [][]string{{"prompt", "login"}, {"max_age", "0"}} {
		resp, _ := b.c.Get(o.iss + "/authorize?" + nativeAuthz(challenge, extra...).Encode())
		resp.Body.Close()
		resp, _ = b.c.Get(o.base + resp.Header.Get("Location"))
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/login/e/demo?") {
			t.Fatalf("%v with a session must ask for a login, went to %s", extra, loc)
		}
	}
	// ... and a login made after the request satisfies them.
	at = o.login(b, nativeAuthz(challenge, "prompt", "login"), "http://127.0.0.1:53682/")
	if !strings.Contains(at, "code=") {
		t.Fatalf("prompt=login after a fresh login: %s", at)
	}
}
