package gateway

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/qiao-gateway/qiao/adminapi"
	"github.com/qiao-gateway/qiao/internal/config"
)

// TestAdminAPITokenAudience: a service client's token reaches the admin API only when it was
// minted for it — its audience names the admin API, which the admin scopes put there — whether the
// client authenticated with a secret or with private_key_jwt (RFC 7523).
func TestAdminAPITokenAudience(t *testing.T) {
	pk, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &pk.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	a := newAdminWorld(t, func(c *config.Config) {
		c.Enterprises[0].Clients = append(c.Enterprises[0].Clients, config.Client{ID: "ci-pkjwt", Type: "service", AuthMethod: "private_key_jwt",
			JWKS: string(jwks), Scopes: []string{"qiao:admin"}, AccessTokenFormat: "jwt"})
	})
	aud := adminapi.Audience(a.base)
	if aud != a.base+"/api/v1" {
		t.Fatalf("the admin API's audience is %q", aud)
	}
	iss := a.base + "/e/demo"

	// private_key_jwt: the assertion is the client's only credential.
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"qiao:admin"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {clientAssertion("ci-pkjwt", iss, pk, "adm-1")}}
	st, m, _ := getJSON(t, mustReq("POST", iss+"/oauth/token", form.Encode()))
	tok, _ := m["access_token"].(string)
	if st != 200 || tok == "" {
		t.Fatalf("client_credentials by private_key_jwt: %d %v", st, m)
	}
	if got := jwtAudience(t, tok); !slices.Contains(got, "ci-pkjwt") || !slices.Contains(got, aud) {
		t.Fatalf("the JWT access token's aud = %v, want the client and %s", got, aud)
	}
	pkjwt := caller{name: "ci-pkjwt@demo", bearer: tok}
	r := a.call(pkjwt, "GET", "/me", "")
	if r.status != 200 || r.json(t)["name"] != "ci-pkjwt" || r.json(t)["kind"] != "client" {
		t.Fatalf("/me with the private_key_jwt client's token: %d %s", r.status, r.body)
	}
	if r := a.call(pkjwt, "POST", "/enterprises/demo/users/target/unlock", ""); r.status != 200 {
		t.Fatalf("a change with the private_key_jwt client's token: %d %s", r.status, r.body)
	}
	if ev := a.auditOf("demo", "admin.user.unlock"); len(ev) == 0 || ev[len(ev)-1].Actor != "client:ci-pkjwt@demo" {
		t.Fatalf("the change's audit names %+v", ev)
	}

	// An opaque token of the admin scope carries the audience too: introspection says so.
	opaque := a.tokenOf("demo", "ci-admin", "qiao:admin")
	req := mustReq("POST", iss+"/oauth/introspect", url.Values{"token": {opaque.bearer}}.Encode())
	req.SetBasicAuth("ci-admin", svcSecret)
	if st, m, _ := getJSON(t, req); st != 200 || m["active"] != true || !slices.Contains(anyStrings(m["aud"]), aud) {
		t.Fatalf("introspection of an admin token: %d %v", st, m)
	}

	// A token without an admin scope is not for the admin API: 403 insufficient_scope, and not
	// counted as a failed authentication (it is genuine).
	none := a.tokenOf("demo", "ci-none", "")
	r = a.call(none, "GET", "/me", "")
	if r.status != 403 || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="insufficient_scope"`) || !strings.Contains(string(r.body), aud) {
		t.Fatalf("/me with a token not for the admin API: %d %q %s", r.status, r.header.Get("WWW-Authenticate"), r.body)
	}
	if r := a.call(none, "GET", "/openapi.json", ""); r.status != 200 {
		t.Fatalf("the public document with a token for something else: %d", r.status)
	}

	// The same admin tokens, presented to an admin API of another address (another deployment
	// sharing nothing but a copy of the keys), are refused: their audience is not it.
	other := &adminapi.API{Store: a.gw.Store, State: a.gw.State, Sessions: a.gw.Sessions, Tokens: a.gw.OIDC, ExternalURL: "https://other.example"}
	other.Init()
	for name, bearer := range map[string]string{"JWT (private_key_jwt)": tok, "opaque": opaque.bearer} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/api/v1/me", nil)
		req.Header.Set("Authorization", "Bearer "+bearer)
		other.Handler().ServeHTTP(rec, req)
		if rec.Code != 403 || !strings.Contains(rec.Body.String(), "https://other.example/api/v1") {
			t.Fatalf("%s admin token at another admin API: %d %s", name, rec.Code, rec.Body)
		}
	}
}

// TestAdminAPIThrottlesFailedAuthentication: after AuthFailures bad credentials from one address
// the API answers that address 429 with Retry-After — even for good credentials, so guessing
// gains nothing — while other addresses go on.
func TestAdminAPIThrottlesFailedAuthentication(t *testing.T) {
	a := newAdminWorld(t, func(c *config.Config) { c.TrustedProxies = []string{"127.0.0.1/32", "::1/128"} })
	good := a.tokenOf("demo", "ci-admin", "qiao:admin")
	from := func(ip string) []string { return []string{"X-Forwarded-For", ip} }
	for i := 0; i < a.gw.Admin.AuthFailures; i++ {
		if r := a.call(caller{bearer: "not-a-token"}, "GET", "/me", "", from("203.0.113.7")...); r.status != 401 {
			t.Fatalf("bad token %d: %d %s", i, r.status, r.body)
		}
	}
	for name, c := range map[string]caller{"a bad token": {bearer: "not-a-token"}, "a good token": good, "no credentials": {}} {
		r := a.call(c, "GET", "/me", "", from("203.0.113.7")...)
		if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
			t.Fatalf("%s from the throttled address: %d %q %s", name, r.status, r.header.Get("Retry-After"), r.body)
		}
	}
	if r := a.call(good, "GET", "/me", "", from("203.0.113.8")...); r.status != 200 {
		t.Fatalf("a good token from another address: %d %s", r.status, r.body)
	}
}

// jwtAudience reads a JWT's aud without verifying it (the admin API's own check verifies).
func jwtAudience(t *testing.T, tok string) []string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %.40s…", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Aud any `json:"aud"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return anyStrings(c.Aud)
}

// anyStrings reads a JSON string-or-array claim.
func anyStrings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, s := range v {
			if s, ok := s.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// TestOperatorSetupLinkInABrowser: the link qiao admins bootstrap prints, followed in a browser,
// answers pages — log on first, then a welcome naming the new operator with the way to the
// console, and a page with a reference (not JSON) when the link is spent.
func TestOperatorSetupLinkInABrowser(t *testing.T) {
	a := newAdminWorld(t)
	tok, err := adminapi.NewSetupToken(a.ctx, a.gw.Store, time.Minute, "test")
	if err != nil {
		t.Fatal(err)
	}
	link := adminapi.SetupURL(a.base, tok)
	page := func(c caller, lang string) (int, string, http.Header) {
		req, _ := http.NewRequest("GET", link, nil)
		req.Header.Set("Accept", "text/html,application/xhtml+xml")
		req.Header.Set("Accept-Language", lang)
		if c.cookie != nil {
			req.AddCookie(c.cookie)
		}
		cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	if st, _, h := page(caller{}, "en"); st != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/login?return=") {
		t.Fatalf("not logged on: %d %s", st, h.Get("Location"))
	}
	who := a.sessionOf("demo", "chen-nobody")
	st, body, h := page(who, "en")
	if st != 200 || !strings.Contains(h.Get("Content-Type"), "text/html") || !strings.Contains(body, "You are now a platform operator") ||
		!strings.Contains(body, `href="/console/"`) || !strings.Contains(body, "chen-nobody") {
		t.Fatalf("welcome page: %d %s\n%s", st, h.Get("Content-Type"), body)
	}
	if _, err := a.gw.Store.GetOperator(a.ctx, "demo", "chen-nobody"); err != nil {
		t.Fatalf("not an operator after the link: %v", err)
	}
	st, body, h = page(who, "zh-CN")
	if st != http.StatusGone || !strings.Contains(h.Get("Content-Type"), "text/html") || !strings.Contains(body, "设置链接无效") ||
		!strings.Contains(body, "qiao admins bootstrap") || !strings.Contains(body, "<code>") {
		t.Fatalf("the spent link: %d %s\n%s", st, h.Get("Content-Type"), body)
	}
}
