package oidc

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/qiao-gateway/qiao/directory"
)

// TestTokensSignedWithTheClientsAlgVerifyAgainstTheJWKS: each client's id_token_alg (RS256, ES256,
// EdDSA) signs its JWT access tokens and ID tokens, with the matching key type in the JWKS, and an
// independent verifier (go-jose, the JWKS fetched over HTTP) accepts them.
func TestTokensSignedWithTheClientsAlgVerifyAgainstTheJWKS(t *testing.T) {
	h := newHarness(t)
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		for _, c := range []*directory.OIDCClient{
			{EnterpriseID: "acme", ID: "svc-" + strings.ToLower(alg), Type: directory.ClientService, Secret: svcSecret, AuthMethod: "client_secret_basic",
				GrantTypes: []string{"client_credentials"}, AccessTokenFormat: "jwt", IDTokenAlg: alg},
			{EnterpriseID: "acme", ID: "web-" + strings.ToLower(alg), Type: directory.ClientWeb, Secret: webSecret, AuthMethod: "client_secret_basic",
				RedirectURIs: []string{"https://app.example/cb"}, GrantTypes: []string{"authorization_code", "refresh_token"}, AccessTokenFormat: "jwt", IDTokenAlg: alg},
		} {
			if err := h.store.PutClient(h.ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := h.get("acme", "/keys")
	if r.status != 200 {
		t.Fatalf("JWKS: %d %s", r.status, r.body)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(r.body), &set); err != nil {
		t.Fatalf("JWKS does not parse: %v\n%s", err, r.body)
	}
	// The Ed25519 key is published as RFC 8037 says: kty OKP, crv Ed25519, alg EdDSA.
	if !strings.Contains(r.body, `"kty":"OKP"`) || !strings.Contains(r.body, `"crv":"Ed25519"`) || !strings.Contains(r.body, `"alg":"EdDSA"`) {
		t.Fatalf("JWKS lacks the Ed25519 key: %s", r.body)
	}
	verify := func(alg, what, tok string) {
		t.Helper()
		jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
		if err != nil {
			t.Fatalf("%s %s: not a JWS signed with %s: %v", alg, what, alg, err)
		}
		kid := jws.Signatures[0].Header.KeyID
		found := set.Key(kid)
		if len(found) != 1 {
			t.Fatalf("%s %s: kid %q is not in the JWKS", alg, what, kid)
		}
		k := found[0]
		if k.Algorithm != alg {
			t.Fatalf("%s %s: signed by a key published for %s", alg, what, k.Algorithm)
		}
		switch k.Key.(type) {
		case *rsa.PublicKey:
			if alg != "RS256" {
				t.Fatalf("%s %s: verified by an RSA key", alg, what)
			}
		case *ecdsa.PublicKey:
			if alg != "ES256" {
				t.Fatalf("%s %s: verified by an EC key", alg, what)
			}
		case ed25519.PublicKey:
			if alg != "EdDSA" {
				t.Fatalf("%s %s: verified by an Ed25519 key", alg, what)
			}
		default:
			t.Fatalf("%s %s: JWKS key of type %T", alg, what, k.Key)
		}
		payload, err := jws.Verify(k.Key)
		if err != nil {
			t.Fatalf("%s %s does not verify against the JWKS: %v", alg, what, err)
		}
		var claims map[string]any
		if err := json.Unmarshal(payload, &claims); err != nil || claims["iss"] != h.iss("acme") {
			t.Fatalf("%s %s claims: %s (%v)", alg, what, payload, err)
		}
		// A changed payload does not verify: the check above is a real signature check.
		parts := strings.Split(tok, ".")
		tampered := parts[0] + "." + strings.Replace(parts[1], parts[1][:4], "eyJh", 1) + "x." + parts[2]
		if jws2, err := jose.ParseSignedCompact(tampered, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)}); err == nil {
			if _, err := jws2.Verify(k.Key); err == nil {
				t.Fatalf("%s %s: a tampered token verifies", alg, what)
			}
		}
	}
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		cc := h.post("acme", "/oauth/token", url.Values{"grant_type": {"client_credentials"}}, "svc-"+strings.ToLower(alg), svcSecret)
		at, _ := cc.json["access_token"].(string)
		if cc.status != 200 || at == "" {
			t.Fatalf("%s client_credentials: %d %s", alg, cc.status, cc.body)
		}
		verify(alg, "client_credentials access token", at)
		code, _ := h.code("acme", "web-"+strings.ToLower(alg), "")
		ex := h.exchange("acme", code, "web-"+strings.ToLower(alg), webSecret)
		idt, _ := ex.json["id_token"].(string)
		at, _ = ex.json["access_token"].(string)
		if ex.status != 200 || idt == "" || at == "" {
			t.Fatalf("%s authorization_code: %d %s", alg, ex.status, ex.body)
		}
		verify(alg, "ID token", idt)
		// The gateway accepts its own ID token of that algorithm as an id_token_hint (logout, prompt).
		ictx := op.ContextWithIssuer(h.ctx, h.iss("acme"))
		if claims, err := op.VerifyIDTokenHint[*zoidc.IDTokenClaims](ictx, idt, h.p.op.IDTokenHintVerifier(ictx)); err != nil || claims.Subject != h.user.ID {
			t.Fatalf("%s ID token as id_token_hint: %v", alg, err)
		}
		verify(alg, "access token", at)
		// The gateway accepts its own JWT access token of that algorithm at userinfo.
		req, _ := http.NewRequest(http.MethodGet, h.iss("acme")+"/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+at)
		if ui := h.do(req); ui.status != 200 || ui.json["sub"] != h.user.ID {
			t.Fatalf("%s userinfo with the JWT access token: %d %s", alg, ui.status, ui.body)
		}
	}
	// Discovery names EdDSA among the ID token algorithms.
	d := h.get("acme", "/.well-known/openid-configuration")
	if !strings.Contains(d.body, `"EdDSA"`) {
		t.Fatalf("discovery lacks EdDSA: %s", d.body)
	}
}
