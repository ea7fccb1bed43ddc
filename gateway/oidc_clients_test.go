package gateway

import (
	"crypto/rand"
	"crypto/rsa"
	"io"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/access"

	"github.com/golang-jwt/jwt/v5"

	"github.com/qiao-gateway/qiao/demo"
	"github.com/qiao-gateway/qiao/directory"
)

func TestOIDCWebClientsTokensAndLogout(t *testing.T) {
	o := newOIDCWorld(t)
	b := newBrowser(t)
	// web-es: confidential (client_secret_post), ES256 ID tokens, JWT access tokens, groups scope.
	q := url.Values{"client_id": {"web-es"}, "response_type": {"code"}, "scope": {"openid groups"}, "redirect_uri": {"https://app.example/cb"},
		"state": {"st-1"}, "nonce": {"n-2"}, "idp_hint": {"wecom"}}
	code := codeOf(t, o.login(b, q, "https://app.example/"))
	st, tok := o.token(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.example/cb"},
		"client_id": {"web-es"}, "client_secret": {o.webSecret}})
	if st != 200 || tok["refresh_token"] != nil {
		t.Fatalf("web exchange: %d %v (no offline_access: no refresh token)", st, tok)
	}
	claims, alg := o.verifyJWT(tok["id_token"].(string))
	if alg != "ES256" || claims["name"] != nil || claims["email"] != nil || claims["departments"] == nil || claims["groups"] == nil {
		t.Fatalf("ES256 ID token with scope openid groups: %s %s", alg, toJSON(claims))
	}
	deps := toJSON(claims["departments"])
	if !strings.HasPrefix(deps, `["/`) {
		t.Fatalf("departments = %s", deps)
	}
	atClaims, _ := o.verifyJWT(tok["access_token"].(string))
	if atClaims["sub"] != o.user("zhangsan").ID || atClaims["iss"] != o.iss {
		t.Fatalf("JWT access token: %v", atClaims)
	}
	// Introspection: a client sees its own tokens; another web client learns nothing.
	if in := o.introspectAs("web-es", o.webSecret, tok["access_token"].(string)); in["active"] != true || in["client_id"] != "web-es" {
		t.Fatalf("web-es introspecting its own token: %v", in)
	}
	app, _ := o.gw.Store.GetClient(o.ctx, "demo", "demo-app")
	if in := o.introspectAs("demo-app", app.Secret, tok["access_token"].(string)); in["active"] != false || len(in) != 1 {
		t.Fatalf("demo-app introspecting web-es's token: %v", in)
	}
	// Wrong secret: invalid_client with 401; an unsupported grant: unsupported_grant_type.
	if st, m := o.token(url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "redirect_uri": {"https://app.example/cb"},
		"client_id": {"web-es"}, "client_secret": {"wrong"}}); m["error"] != "invalid_grant" && m["error"] != "invalid_client" {
		t.Fatalf("wrong secret: %d %v", st, m)
	}
	if st, m := o.token(url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {"x"}}); st != 400 || m["error"] != "unsupported_grant_type" {
		t.Fatalf("jwt-bearer: %d %v", st, m)
	}
	if st, m := o.token(url.Values{"grant_type": {"password"}, "username": {"zhangsan"}}); st != 400 || m["error"] != "unsupported_grant_type" {
		t.Fatalf("password grant: %d %v", st, m)
	}
	// client_credentials for the service client; its token has no userinfo.
	svc, _ := o.gw.Store.GetClient(o.ctx, "demo", "demo-service")
	st, cc := o.token(url.Values{"grant_type": {"client_credentials"}}, "demo-service", svc.Secret)
	if st != 200 || cc["access_token"] == nil || cc["refresh_token"] != nil {
		t.Fatalf("client_credentials: %d %v", st, cc)
	}
	if st, m := o.token(url.Values{"grant_type": {"client_credentials"}}, "demo-service", "wrong"); st != 401 || m["error"] != "invalid_client" {
		t.Fatalf("client_credentials with a wrong secret: %d %v", st, m)
	}
	if st, m := o.token(url.Values{"grant_type": {"client_credentials"}, "client_id": {"sase-client"}}); st < 400 || m["access_token"] != nil {
		t.Fatalf("client_credentials for a public client: %d %v", st, m)
	}
	if in := o.introspect(cc["access_token"].(string)); in["active"] != true || in["client_id"] != "demo-service" {
		t.Fatalf("introspect client token: %v", in)
	}

	// Concurrent redemptions of one code: exactly one wins.
	code = codeOf(t, o.login(b, q, "https://app.example/"))
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st, _ := o.token(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.example/cb"},
				"client_id": {"web-es"}, "client_secret": {o.webSecret}}); st == 200 {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent redemptions of one code succeeded", wins.Load())
	}

	// RP-initiated logout with id_token_hint: the session ends, the RP hears it on its back channel.
	noFollow := b.c
	eq := url.Values{"id_token_hint": {tok["id_token"].(string)}, "post_logout_redirect_uri": {"https://app.example/bye"}, "state": {"s9"}}
	resp, _ := noFollow.Get(o.iss + "/end_session?" + eq.Encode())
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != "https://app.example/bye?state=s9" {
		t.Fatalf("end_session redirect: %d %s", resp.StatusCode, loc)
	}
	select {
	case lt := <-o.logouts:
		c, _ := o.verifyJWT(lt)
		if c["aud"] != "web-es" && !strings.Contains(toJSON(c["aud"]), "web-es") || c["sub"] != o.user("zhangsan").ID || c["sid"] != claims["sid"] ||
			!strings.Contains(toJSON(c["events"]), "backchannel-logout") || c["nonce"] != nil {
			t.Fatalf("logout token: %s", toJSON(c))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no back-channel logout")
	}
	b.stop = "https://app.example/"
	if _, _, at := b.get(o.iss+"/authorize?"+url.Values{"client_id": {"web-es"}, "response_type": {"code"}, "scope": {"openid"},
		"redirect_uri": {"https://app.example/cb"}, "state": {"st-1"}, "prompt": {"none"}}.Encode(), ""); !strings.Contains(at, "error=login_required") {
		t.Fatalf("session survived end_session: %s", at)
	}
	// An unregistered post_logout_redirect_uri is refused.
	eq.Set("post_logout_redirect_uri", "https://evil.example/")
	resp, _ = noFollow.Get(o.iss + "/end_session?" + eq.Encode())
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("unregistered post_logout_redirect_uri: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Without id_token_hint, the person confirms first.
	o.login(b, q, "https://app.example/")
	resp, _ = noFollow.Get(o.iss + "/end_session?client_id=web-es&post_logout_redirect_uri=" + url.QueryEscape("https://app.example/bye"))
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), `name="confirm"`) {
		t.Fatalf("logout confirmation: %d", resp.StatusCode)
	}
	m := regexp.MustCompile(`name="confirm" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatal("no confirm token")
	}
	resp, _ = noFollow.PostForm(o.iss+"/end_session", url.Values{"confirm": {string(m[1])}, "client_id": {"web-es"},
		"post_logout_redirect_uri": {"https://app.example/bye"}})
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != "https://app.example/bye" {
		t.Fatalf("confirmed logout: %d %s", resp.StatusCode, loc)
	}
	select {
	case <-o.logouts:
	case <-time.After(20 * time.Second):
		t.Fatal("no back-channel logout after a confirmed logout")
	}
}

// TestDemoAppSignsIn: the demo's sample relying party signs a person in through the WeCom
// simulator and shows the ID token's claims; its sign-out ends the SSO session.
func TestDemoAppSignsIn(t *testing.T) {
	o := newOIDCWorld(t)
	c, _ := o.gw.Store.GetClient(o.ctx, "demo", "demo-app")
	(&demo.RP{Issuer: o.iss, ClientID: "demo-app", Secret: c.Secret, BaseURL: o.base + "/demo-app"}).Routes(o.gw.Mux)
	b := newBrowser(t)
	status, page, at := b.get(o.base+"/demo-app/login", "zhangsan")
	if status != 200 || !strings.Contains(at, "/login/e/demo") || !strings.Contains(page, "/login/e/demo/s/wecom") {
		t.Fatalf("the demo app did not send the browser to qiao's source choice: %d at %s", status, at)
	}
	status, page, at = b.get(o.base+"/login/e/demo/s/wecom?"+strings.SplitN(at, "?", 2)[1], "zhangsan")
	if status != 200 || !strings.HasSuffix(at, "/demo-app/") || !strings.Contains(page, "张三") || !strings.Contains(page, o.user("zhangsan").ID) ||
		!strings.Contains(page, "wecom_qr") {
		t.Fatalf("demo app after login: %d at %s\n%s", status, at, page)
	}
	resp, err := b.c.PostForm(o.base+"/demo-app/logout", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, o.iss+"/end_session?") {
		t.Fatalf("demo app logout went to %s", loc)
	}
	if _, _, at := b.get(resp.Header.Get("Location"), ""); !strings.HasSuffix(at, "/demo-app/") {
		t.Fatalf("after end_session: %s", at)
	}
	if status, _, at := b.get(o.base+"/login/done", ""); status != 200 || !strings.Contains(at, "/login") || strings.HasSuffix(at, "/login/done") {
		t.Fatalf("the SSO session survived the demo app's logout: %d %s", status, at)
	}
}

// clientAssertion signs a private_key_jwt client assertion (RFC 7523) with key "k1"; no jti when
// jti is empty.
func clientAssertion(client, aud string, key *rsa.PrivateKey, jti string) string {
	c := jwt.MapClaims{"iss": client, "sub": client, "aud": aud, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix()}
	if jti != "" {
		c["jti"] = jti
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = "k1"
	s, _ := tok.SignedString(key)
	return s
}

// TestOIDCClientCredentialsWithPrivateKeyJWT: a service client that holds a key pair instead of a
// secret gets tokens by client_credentials and introspects with its assertion.
func TestOIDCClientCredentialsWithPrivateKeyJWT(t *testing.T) {
	o := newOIDCWorld(t)
	grant := func(a string) url.Values {
		v := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}}
		if a != "" {
			v.Set("client_assertion", a)
		}
		return v
	}
	st, tok := o.token(grant(clientAssertion("pkjwt-svc", o.iss, o.pk, "a-1")))
	if st != 200 || tok["access_token"] == nil {
		t.Fatalf("client_credentials with private_key_jwt: %d %v", st, tok)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	for what, form := range map[string]url.Values{
		"the same assertion again":           grant(clientAssertion("pkjwt-svc", o.iss, o.pk, "a-1")),
		"an assertion signed by another key": grant(clientAssertion("pkjwt-svc", o.iss, other, "a-2")),
		"an assertion for another audience":  grant(clientAssertion("pkjwt-svc", "https://elsewhere.example", o.pk, "a-3")),
		"no assertion, client_id only":       {"grant_type": {"client_credentials"}, "client_id": {"pkjwt-svc"}},
		"a wrong assertion type": {"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:example:other"},
			"client_assertion": {clientAssertion("pkjwt-svc", o.iss, o.pk, "a-4")}},
	} {
		if st, m := o.token(form); st < 400 || m["error"] != "invalid_client" || m["access_token"] != nil {
			t.Fatalf("%s: %d %v", what, st, m)
		}
	}
	// A private_key_jwt client has no secret to fall back on.
	if st, m := o.token(url.Values{"grant_type": {"client_credentials"}}, "pkjwt-svc", ""); st < 400 || m["access_token"] != nil {
		t.Fatalf("pkjwt-svc by Basic auth with an empty secret: %d %v", st, m)
	}
	req := mustReq("POST", o.iss+"/oauth/introspect", url.Values{"token": {tok["access_token"].(string)},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {clientAssertion("pkjwt-svc", o.iss, o.pk, "a-5")}}.Encode())
	if st, m, _ := getJSON(t, req); st != 200 || m["active"] != true || m["client_id"] != "pkjwt-svc" {
		t.Fatalf("introspection with private_key_jwt: %d %v", st, m)
	}
}

// TestOIDCPrivateKeyJWTAndExtraClaims: a client authenticating with private_key_jwt (RFC 7523), and
// admin-defined claims from directory fields.
func TestOIDCPrivateKeyJWTAndExtraClaims(t *testing.T) {
	o := newOIDCWorld(t)
	b := newBrowser(t)
	q := url.Values{"client_id": {"pkjwt"}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {"https://app.example/cb"},
		"state": {"st-1"}, "idp_hint": {"wecom"}}
	assertion := func(aud string, key *rsa.PrivateKey) string {
		return clientAssertion("pkjwt", aud, key, time.Now().String())
	}
	exchange := func(code, a string) (int, map[string]any) {
		return o.token(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.example/cb"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}})
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	if st, m := exchange(codeOf(t, o.login(b, q, "https://app.example/")), assertion(o.iss, other)); st < 400 || m["access_token"] != nil {
		t.Fatalf("assertion signed by another key: %d %v", st, m)
	}
	used := assertion(o.iss, o.pk)
	if st, m := exchange(codeOf(t, o.login(b, q, "https://app.example/")), used); st != 200 || m["id_token"] == nil {
		t.Fatalf("private_key_jwt: %d %v", st, m)
	}
	// An assertion is single use, must carry a jti and must name the client_id sent with it.
	if st, m := exchange(codeOf(t, o.login(b, q, "https://app.example/")), used); st != 401 || m["error"] != "invalid_client" {
		t.Fatalf("a replayed client assertion: %d %v", st, m)
	}
	if st, m := exchange(codeOf(t, o.login(b, q, "https://app.example/")), clientAssertion("pkjwt", o.iss, o.pk, "")); st != 401 || m["error"] != "invalid_client" {
		t.Fatalf("a client assertion without jti: %d %v", st, m)
	}
	if st, m := o.token(url.Values{"grant_type": {"authorization_code"}, "code": {codeOf(t, o.login(b, q, "https://app.example/"))}, "redirect_uri": {"https://app.example/cb"},
		"client_id": {"web-es"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion(o.iss, o.pk)}}); st != 401 || m["error"] != "invalid_client" {
		t.Fatalf("a client assertion for another client_id: %d %v", st, m)
	}
	// Without an assertion the client cannot authenticate at all.
	if st, m := o.token(url.Values{"grant_type": {"authorization_code"}, "code": {codeOf(t, o.login(b, q, "https://app.example/"))},
		"redirect_uri": {"https://app.example/cb"}, "client_id": {"pkjwt"}}); st < 400 || m["access_token"] != nil {
		t.Fatalf("pkjwt without assertion: %d %v", st, m)
	}
	// web-es maps the username to a "login" claim under the profile scope.
	q = url.Values{"client_id": {"web-es"}, "response_type": {"code"}, "scope": {"openid profile offline_access"}, "redirect_uri": {"https://app.example/cb"},
		"state": {"st-1"}, "idp_hint": {"wecom"}}
	_, tok := o.token(url.Values{"grant_type": {"authorization_code"}, "code": {codeOf(t, o.login(b, q, "https://app.example/"))},
		"redirect_uri": {"https://app.example/cb"}, "client_id": {"web-es"}, "client_secret": {o.webSecret}})
	if c, _ := o.verifyJWT(tok["id_token"].(string)); c["login"] != "zhangsan" {
		t.Fatalf("mapped claim: %v", c)
	}
	// The person departs: sync's revocation ends the SSO session, and web-es hears it on its back
	// channel twice: for the session it got tokens in (with its sid) and as the holder of a refresh
	// token (without: the grant outlives sessions).
	zhang := o.user("zhangsan")
	zhang.Status = directory.UserDeparted
	if err := o.gw.Store.UpdateUser(o.ctx, zhang); err != nil {
		t.Fatal(err)
	}
	if err := o.gw.Access.EndUser(o.ctx, "demo", zhang.ID, access.Departed); err != nil {
		t.Fatal(err)
	}
	withSID, withoutSID := 0, 0
	for i := 0; i < 2; i++ {
		select {
		case lt := <-o.logouts:
			c, _ := o.verifyJWT(lt)
			if c["sub"] != zhang.ID || c["aud"] != "web-es" && !strings.Contains(toJSON(c["aud"]), "web-es") {
				t.Fatalf("logout token after departure: %v", c)
			}
			if c["sid"] != nil {
				withSID++
			} else {
				withoutSID++
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("back-channel logouts after departure: %d with sid, %d without", withSID, withoutSID)
		}
	}
	if withSID != 1 || withoutSID != 1 {
		t.Fatalf("back-channel logouts after departure: %d with sid, %d without", withSID, withoutSID)
	}
}

// TestOIDCTokenEndpointBadInput: malformed and hostile token, introspection and revocation
// requests get the RFC's error with the right status, never a token and never a 500.
func TestOIDCTokenEndpointBadInput(t *testing.T) {
	o := newOIDCWorld(t)
	svc, _ := o.gw.Store.GetClient(o.ctx, "demo", "demo-service")
	for _, c := range []struct {
		name   string
		form   url.Values
		basic  []string
		status int
		err    string
	}{
		{"no grant_type", url.Values{}, nil, 400, "invalid_request"},
		{"code missing", url.Values{"grant_type": {"authorization_code"}, "client_id": {"sase-client"}}, nil, 400, "invalid_request"},
		{"garbage code", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {"sase-client"}, "redirect_uri": {rpRedirect}}, nil, 400, "invalid_grant"},
		{"unknown client", url.Values{"grant_type": {"client_credentials"}}, []string{"nobody", "x"}, 401, "invalid_client"},
		{"wrong secret", url.Values{"grant_type": {"client_credentials"}}, []string{"demo-service", "wrong"}, 401, "invalid_client"},
		{"refresh missing", url.Values{"grant_type": {"refresh_token"}, "client_id": {"sase-client"}}, nil, 400, "invalid_request"},
		{"garbage refresh", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {strings.Repeat("z", 300)}, "client_id": {"sase-client"}}, nil, 400, "invalid_grant"},
		{"client_credentials for a native app", url.Values{"grant_type": {"client_credentials"}, "client_id": {"sase-client"}}, nil, 401, "invalid_client"},
		{"client_credentials with an unknown scope", url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}, []string{"demo-service", svc.Secret}, 400, "invalid_scope"},
		{"device code without a client", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {"x"}}, nil, 401, "invalid_client"},
		{"device code missing", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "client_id": {"sase-client"}}, nil, 400, "invalid_request"},
		{"token exchange", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}}, nil, 400, "unsupported_grant_type"},
	} {
		st, m := o.token(c.form, c.basic...)
		if st != c.status || m["error"] != c.err || m["access_token"] != nil {
			t.Errorf("%s: %d %v (want %d %s)", c.name, st, m, c.status, c.err)
		}
	}
	// An oversized body.
	st, m := o.token(url.Values{"grant_type": {"client_credentials"}, "pad": {strings.Repeat("x", 70<<10)}}, "demo-service", svc.Secret)
	if st != 400 || m["error"] != "invalid_request" {
		t.Errorf("oversized token request: %d %v", st, m)
	}
	// Introspection needs an authenticated client; an unknown token is inactive, not an error.
	req := mustReq("POST", o.iss+"/oauth/introspect", url.Values{"token": {"nope"}}.Encode())
	if st, _, _ := getJSON(t, req); st != 401 {
		t.Errorf("unauthenticated introspection: %d", st)
	}
	if in := o.introspect("not-a-token"); in["active"] != false {
		t.Errorf("garbage token introspected as %v", in)
	}
	// Revocation of an unknown token is a 200 (RFC 7009), of someone else's refresh token a refusal.
	if st, _, _ := getJSON(t, mustReq("POST", o.iss+"/revoke", url.Values{"token": {"nope"}, "client_id": {"sase-client"}}.Encode())); st != 200 {
		t.Errorf("revoking an unknown token: %d", st)
	}
}
