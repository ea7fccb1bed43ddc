package oidc

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/directory"
)

// TestClientCredentialsOnlyFromTheBody: client credentials in the URL are refused at every endpoint
// that authenticates clients, and a private_key_jwt assertion cannot be replayed through the query
// (the single-use check and the library must read the same place).
func TestClientCredentialsOnlyFromTheBody(t *testing.T) {
	h := newHarness(t)
	cc := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {assertionType}, "client_assertion": {h.assertion("acme", "j-1")}}
	tok := h.post("acme", "/oauth/token", cc)
	if tok.status != 200 || tok.json["access_token"] == nil {
		t.Fatalf("private_key_jwt in the body: %d %s", tok.status, tok.body)
	}
	if r := h.post("acme", "/oauth/token", cc); r.status != 401 || r.err() != "invalid_client" {
		t.Fatalf("the spent assertion again, in the body: %d %s", r.status, r.body)
	}
	// The library reads the query too: there, the spent assertion would authenticate again.
	replay := url.Values{"client_assertion_type": {assertionType}, "client_assertion": {h.assertion("acme", "j-1")}}
	req, _ := http.NewRequest(http.MethodPost, h.iss("acme")+"/oauth/introspect?"+replay.Encode(), strings.NewReader(url.Values{"token": {tok.json["access_token"].(string)}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r := h.do(req); r.status != 400 || r.err() != "invalid_request" || r.json["active"] != nil {
		t.Fatalf("introspection with the spent assertion in the query: %d %s", r.status, r.body)
	}
	code, _ := h.code("acme", "pkjwt", "")
	req, _ = http.NewRequest(http.MethodPost, h.iss("acme")+"/oauth/token?"+replay.Encode(),
		strings.NewReader(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.example/cb"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r := h.do(req); r.status != 400 || r.err() != "invalid_request" || r.json["access_token"] != nil {
		t.Fatalf("a code exchange with the spent assertion in the query: %d %s", r.status, r.body)
	}
	for _, c := range []struct {
		path  string
		query url.Values
		body  url.Values
		basic []string
	}{
		// The used assertion again, in the query: the replay the jti check did not see.
		{"/oauth/token", url.Values{"client_assertion_type": {assertionType}, "client_assertion": {h.assertion("acme", "j-1")}}, url.Values{"grant_type": {"client_credentials"}}, nil},
		// A fresh one in the query is refused just the same.
		{"/oauth/token", url.Values{"client_assertion_type": {assertionType}, "client_assertion": {h.assertion("acme", "j-2")}}, url.Values{"grant_type": {"client_credentials"}}, nil},
		{"/oauth/token", url.Values{"client_secret": {svcSecret}}, url.Values{"grant_type": {"client_credentials"}, "client_id": {"svc"}}, nil},
		{"/oauth/token", url.Values{"client_id": {"svc"}, "client_secret": {svcSecret}}, url.Values{"grant_type": {"client_credentials"}}, nil},
		{"/oauth/token", url.Values{"client_assertion_type": {assertionType}}, url.Values{"grant_type": {"client_credentials"}}, []string{"svc", svcSecret}},
		{"/oauth/introspect", url.Values{"client_secret": {svcSecret}}, url.Values{"token": {"x"}, "client_id": {"svc"}}, nil},
		{"/oauth/introspect", url.Values{"client_assertion_type": {assertionType}, "client_assertion": {h.assertion("acme", "j-3")}}, url.Values{"token": {"x"}}, nil},
		{"/revoke", url.Values{"client_secret": {webSecret}}, url.Values{"token": {"x"}, "client_id": {"web"}}, nil},
		{"/revoke", url.Values{"client_id": {"native"}}, url.Values{"token": {"x"}}, nil},
	} {
		req, _ := http.NewRequest(http.MethodPost, h.iss("acme")+c.path+"?"+c.query.Encode(), strings.NewReader(c.body.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if c.basic != nil {
			req.SetBasicAuth(c.basic[0], c.basic[1])
		}
		if r := h.do(req); r.status != 400 || r.err() != "invalid_request" || r.json["access_token"] != nil || r.json["active"] != nil {
			t.Errorf("%s with %v in the query: %d %s", c.path, c.query, r.status, r.body)
		}
	}
	// Nothing else is read from the query either: a token there is not the request's token.
	req, _ = http.NewRequest(http.MethodPost, h.iss("acme")+"/oauth/introspect?"+url.Values{"token": {tok.json["access_token"].(string)}}.Encode(), nil)
	req.SetBasicAuth("svc", svcSecret)
	if r := h.do(req); r.status != 200 || r.json["active"] != false {
		t.Fatalf("introspection of a token in the query: %d %s", r.status, r.body)
	}
	// The query's assertion j-2 was not consumed either: it still works, once, from the body.
	cc.Set("client_assertion", h.assertion("acme", "j-2"))
	if r := h.post("acme", "/oauth/token", cc); r.status != 200 {
		t.Fatalf("an assertion first sent (and refused) in the query: %d %s", r.status, r.body)
	}
	// Token requests are POSTs (RFC 6749 §3.2); one method per request (§2.3); no repeated parameters.
	creds := url.Values{"grant_type": {"client_credentials"}, "client_id": {"svc"}, "client_secret": {svcSecret}}.Encode()
	for _, m := range []string{http.MethodGet, http.MethodOptions, http.MethodPut, http.MethodDelete} {
		for _, path := range []string{"/oauth/token", "/oauth/introspect", "/revoke"} {
			req, _ := http.NewRequest(m, h.iss("acme")+path+"?"+creds, strings.NewReader(creds))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			// 405, or 400 where the body repeats the query (PUT bodies are parsed too).
			if r := h.do(req); r.status != 405 && r.status != 400 || r.err() != "invalid_request" || r.json["access_token"] != nil {
				t.Errorf("%s %s: %d %s", m, path, r.status, r.body)
			}
		}
	}
	// A CORS preflight is answered, and only that.
	req, _ = http.NewRequest(http.MethodOptions, h.iss("acme")+"/oauth/token?"+creds, nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	if r := h.do(req); r.status >= 300 || strings.Contains(r.body, "access_token") {
		t.Errorf("a CORS preflight: %d %s", r.status, r.body)
	}
	for name, form := range map[string]url.Values{
		"two assertions": {"grant_type": {"client_credentials"}, "client_assertion_type": {assertionType},
			"client_assertion": {h.assertion("acme", "j-4"), h.assertion("acme", "j-5")}},
		"two grant types": {"grant_type": {"client_credentials", "authorization_code"}, "client_id": {"svc"}, "client_secret": {svcSecret}},
		"secret and assertion": {"grant_type": {"client_credentials"}, "client_id": {"pkjwt"}, "client_secret": {"x"},
			"client_assertion_type": {assertionType}, "client_assertion": {h.assertion("acme", "j-6")}},
	} {
		if r := h.post("acme", "/oauth/token", form); r.status != 400 || r.err() != "invalid_request" {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	if r := h.post("acme", "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_secret": {svcSecret}}, "svc", svcSecret); r.status != 400 || r.err() != "invalid_request" {
		t.Errorf("Basic and client_secret: %d %s", r.status, r.body)
	}
}

// TestCodeIsTakenOnlyByItsAuthenticatedClient: a code presented by anyone but its client (another
// enterprise's client of the same name, another client, a wrong secret, a public client's code
// without its PKCE verifier) is neither spent nor able to revoke what it issued.
func TestCodeIsTakenOnlyByItsAuthenticatedClient(t *testing.T) {
	h := newHarness(t)
	code, _ := h.code("acme", "web", "")
	for name, r := range map[string]resp{
		"at another enterprise, by its client of the same name and secret": h.exchange("beta", code),
		"by another client of the enterprise":                              h.exchange("acme", code, "web2", webSecret+"2"),
		"by its client with a wrong secret":                                h.exchange("acme", code, "web", "wrong"),
		"by a public client":                                               h.post("acme", "/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {"native"}}),
	} {
		if r.status < 400 || r.json["access_token"] != nil {
			t.Fatalf("%s: %d %s", name, r.status, r.body)
		}
	}
	tok := h.exchange("acme", code)
	if tok.status != 200 || tok.json["refresh_token"] == nil {
		t.Fatalf("the code's own client after the others tried: %d %s", tok.status, tok.body)
	}
	at := tok.json["access_token"].(string)
	// Presented again by anyone else, it revokes nothing.
	h.exchange("beta", code)
	h.exchange("acme", code, "web2", webSecret+"2")
	h.exchange("acme", code, "web", "wrong")
	if !h.introspect(at) {
		t.Fatal("someone other than the code's client revoked its tokens by presenting it again")
	}
	// By its own client, it does (RFC 6749 §4.1.2).
	if r := h.exchange("acme", code); r.status != 400 || r.err() != "invalid_grant" {
		t.Fatalf("the code again: %d %s", r.status, r.body)
	}
	if h.introspect(at) {
		t.Fatal("a code redeemed twice by its client left its tokens active")
	}

	// A public client's code: only the PKCE verifier's holder can spend it or, again, revoke.
	verifier, challenge := pkce()
	code, _ = h.code("acme", "native", challenge)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {"native"}, "redirect_uri": {"http://127.0.0.1:4711/callback"}}
	for _, v := range []string{"", "short", strings.Repeat("a", 50)} {
		form.Set("code_verifier", v)
		if r := h.post("acme", "/oauth/token", form); r.status != 400 || r.err() != "invalid_grant" && r.err() != "invalid_request" {
			t.Fatalf("verifier %q: %d %s", v, r.status, r.body)
		}
	}
	form.Set("code_verifier", verifier)
	tok = h.post("acme", "/oauth/token", form)
	if tok.status != 200 {
		t.Fatalf("the verifier's holder after wrong verifiers: %d %s", tok.status, tok.body)
	}
	form.Set("code_verifier", strings.Repeat("a", 50))
	h.post("acme", "/oauth/token", form)
	if !h.introspect(tok.json["access_token"].(string)) {
		t.Fatal("a replay without the PKCE verifier revoked the public client's tokens")
	}
	form.Set("code_verifier", verifier)
	h.post("acme", "/oauth/token", form)
	if h.introspect(tok.json["access_token"].(string)) {
		t.Fatal("a replay with the verifier left the tokens active")
	}
}

// TestRefreshTokenSpentOnlyByItsClient: presenting another client's (rotated) refresh token is a
// plain invalid_grant: it neither rotates nor revokes the family.
func TestRefreshTokenSpentOnlyByItsClient(t *testing.T) {
	h := newHarness(t)
	code, _ := h.code("acme", "web", "")
	tok := h.exchange("acme", code)
	rt1 := tok.json["refresh_token"].(string)
	rot := h.post("acme", "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt1}}, "web", webSecret)
	if rot.status != 200 {
		t.Fatalf("refresh: %d %s", rot.status, rot.body)
	}
	for _, rt := range []string{rt1, rot.json["refresh_token"].(string)} {
		if r := h.post("acme", "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "web2", webSecret+"2"); r.status != 400 || r.err() != "invalid_grant" {
			t.Fatalf("another client's refresh token: %d %s", r.status, r.body)
		}
	}
	if !h.introspect(rot.json["access_token"].(string)) {
		t.Fatal("another client presenting a rotated refresh token revoked the family")
	}
	cur := h.post("acme", "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rot.json["refresh_token"].(string)}}, "web", webSecret)
	if cur.status != 200 {
		t.Fatalf("the family's current refresh token after another client tried it: %d %s", cur.status, cur.body)
	}
	// The storage itself refuses a rotated token presented again by its client, and ends the family
	// (the rotation's conditional update would refuse it too, later).
	ctx := h.entCtx("acme")
	info(ctx).authClient = "web"
	if _, err := h.p.st.TokenRequestByRefreshToken(ctx, rt1); err == nil {
		t.Fatal("TokenRequestByRefreshToken accepted a rotated refresh token")
	}
	if h.introspect(cur.json["access_token"].(string)) {
		t.Fatal("a rotated refresh token presented again left the family's access token active")
	}
}

// TestClientAuthenticationIsThrottled: after the limit of failures, a client (from anywhere) and an
// address (for any client) are refused unchecked with 429 and Retry-After until the window ends;
// other clients and other addresses go on.
func TestClientAuthenticationIsThrottled(t *testing.T) {
	h := newHarness(t)
	h.p.ClientAuthFailures, h.p.IPAuthFailures, h.p.AuthFailureWindow = 5, 12, time.Minute
	cc := url.Values{"grant_type": {"client_credentials"}}
	for i := 0; i < 5; i++ {
		h.ip = "192.0.2." + strconv.Itoa(10+i) // a distributed guesser: the per-client limit holds it
		if r := h.post("acme", "/oauth/token", cc, "svc", "wrong"+strconv.Itoa(i)); r.status != 401 || r.err() != "invalid_client" ||
			!strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
			t.Fatalf("wrong secret %d: %d %v %s", i, r.status, r.header, r.body)
		}
	}
	h.ip = "192.0.2.99"
	r := h.post("acme", "/oauth/token", cc, "svc", svcSecret)
	if r.status != 429 || r.err() != "invalid_client" || r.header.Get("Retry-After") != "60" || r.json["access_token"] != nil {
		t.Fatalf("the right secret while the client is throttled: %d %v %s", r.status, r.header, r.body)
	}
	if r := h.post("acme", "/oauth/introspect", url.Values{"token": {"x"}}, "svc", svcSecret); r.status != 429 {
		t.Fatalf("introspection while the client is throttled: %d %s", r.status, r.body)
	}
	// Another client, from the same address, is not held up.
	if r := h.post("acme", "/oauth/token", cc, "svc2", svcSecret+"2"); r.status != 200 {
		t.Fatalf("another client: %d %s", r.status, r.body)
	}
	// The same client ID in another enterprise is another client.
	if r := h.post("beta", "/oauth/token", cc, "svc", svcSecret); r.status != 200 {
		t.Fatalf("beta's svc: %d %s", r.status, r.body)
	}
	// An address spraying many client IDs, known or not, hits the per-address limit.
	h.ip = "198.51.100.7"
	for i := 0; i < 12; i++ {
		h.post("acme", "/oauth/token", cc, "nobody-"+strconv.Itoa(i), "x")
	}
	if r := h.post("acme", "/oauth/token", cc, "svc2", svcSecret+"2"); r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Fatalf("a good client from an address over its limit: %d %s", r.status, r.body)
	}
	h.ip = "198.51.100.8"
	if r := h.post("acme", "/oauth/token", cc, "svc2", svcSecret+"2"); r.status != 200 {
		t.Fatalf("a good client from another address: %d %s", r.status, r.body)
	}
	// Introspection by a client that does not authenticate (a public client's bare client_id) is a
	// failure like any other.
	h.ip, h.p.ClientAuthFailures = "198.51.100.9", 100
	for i := 0; i < 12; i++ {
		if r := h.post("acme", "/oauth/introspect", url.Values{"token": {"x"}, "client_id": {"native"}}); r.status != 401 {
			t.Fatalf("introspection by a public client: %d %s", r.status, r.body)
		}
	}
	if r := h.post("acme", "/oauth/introspect", url.Values{"token": {"x"}}, "svc2", svcSecret+"2"); r.status != 429 {
		t.Fatalf("a good client after unauthenticated introspections from its address: %d %s", r.status, r.body)
	}
	// Assertions count too: a bad one is a failure like a bad secret.
	h.p.ClientAuthFailures = 2
	h.ip = "203.0.113.1"
	bad := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {assertionType}, "client_assertion": {h.assertion("beta", "x-1")}}
	for i := 0; i < 2; i++ {
		if r := h.post("acme", "/oauth/token", bad); r.status != 401 {
			t.Fatalf("an assertion for another audience: %d %s", r.status, r.body)
		}
	}
	good := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {assertionType}, "client_assertion": {h.assertion("acme", "x-2")}}
	if r := h.post("acme", "/oauth/token", good); r.status != 429 {
		t.Fatalf("a good assertion while pkjwt is throttled: %d %s", r.status, r.body)
	}
}

// TestEmptySecretNeverAuthenticates: clients registered without a secret (private_key_jwt, public)
// do not authenticate with an empty one, at any endpoint.
func TestEmptySecretNeverAuthenticates(t *testing.T) {
	h := newHarness(t)
	code, _ := h.code("acme", "pkjwt", "")
	for _, id := range []string{"pkjwt", "native"} {
		for _, c := range []struct {
			path string
			form url.Values
		}{
			{"/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.example/cb"}}},
			{"/oauth/token", url.Values{"grant_type": {"client_credentials"}}},
			{"/oauth/introspect", url.Values{"token": {"x"}}},
			{"/revoke", url.Values{"token": {"x"}}},
		} {
			if r := h.post("acme", c.path, c.form, id, ""); r.status != 401 || r.err() != "invalid_client" {
				t.Errorf("%s with Basic %q and an empty secret: %d %s", c.path, id+":", r.status, r.body)
			}
		}
		if r := h.post("acme", "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {""}}); r.status != 401 {
			t.Errorf("%s with an empty client_secret: %d %s", id, r.status, r.body)
		}
	}
	// The storage check the library calls agrees.
	for _, c := range []*directory.OIDCClient{{AuthMethod: "private_key_jwt"}, {AuthMethod: "none"}, {AuthMethod: "client_secret_basic"},
		{AuthMethod: "private_key_jwt", Secret: "s"}, {AuthMethod: "none", Secret: "s"}} {
		if secretOK(c, "") || (c.Secret != "" && secretOK(c, c.Secret)) {
			t.Errorf("secretOK(%+v) accepted", c)
		}
	}
	if !secretOK(&directory.OIDCClient{AuthMethod: "client_secret_post", Secret: "s"}, "s") || secretOK(&directory.OIDCClient{AuthMethod: "client_secret_post", Secret: "s"}, "t") {
		t.Error("secretOK is wrong about a secret client")
	}
	if err := h.p.st.AuthorizeClientIDSecret(h.entCtx("acme"), "pkjwt", ""); err == nil {
		t.Error("AuthorizeClientIDSecret accepted pkjwt with an empty secret")
	}
}
