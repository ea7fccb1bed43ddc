package oidc

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/sqlstore"
	"github.com/qiao-gateway/qiao/internal/secretbox"
	"github.com/qiao-gateway/qiao/internal/state"
	"github.com/qiao-gateway/qiao/keys"
	"github.com/qiao-gateway/qiao/pages"
	"github.com/qiao-gateway/qiao/session"
	"github.com/qiao-gateway/qiao/templates"
)

// harness is one Provider over SQLite and the in-memory state store, served by httptest, with two
// enterprises ("acme", "beta") and a few clients; no browser, no upstream identity source. Tests
// make authorization requests "done" directly in the state store.
type harness struct {
	t     *testing.T
	ctx   context.Context
	p     *Provider
	store *sqlstore.Store
	state *state.Memory
	srv   *httptest.Server
	user  *directory.User
	ip    string          // the address the provider sees for the next request (ClientIP)
	pk    *rsa.PrivateKey // the "pkjwt" client's private_key_jwt key ("k1")
}

const (
	webSecret = "acme-web-secret-0123456789"
	svcSecret = "acme-svc-secret-0123456789"
)

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, ctx: context.Background(), ip: "192.0.2.1"}
	box, err := secretbox.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	h.store, err = sqlstore.Open(h.ctx, "sqlite:"+filepath.Join(t.TempDir(), "qiao.db"), box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.store.Close() })
	km, err := keys.Open(t.TempDir(), keys.WithRSABits(2048))
	if err != nil {
		t.Fatal(err)
	}
	h.state = state.NewMemory()
	tmpl, err := templates.Parse()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sessions := &session.Store{State: h.state, CookieName: "qiao_sso"}
	pg := &pages.Renderer{Templates: tmpl, Log: log}
	h.pk, err = rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &h.pk.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	for _, e := range []string{"acme", "beta"} {
		if err := h.store.PutEnterprise(h.ctx, &directory.Enterprise{ID: e, Name: e}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*directory.OIDCClient{
		{EnterpriseID: "acme", ID: "web", Type: directory.ClientWeb, Secret: webSecret, AuthMethod: "client_secret_basic",
			RedirectURIs: []string{"https://app.example/cb"}, GrantTypes: []string{"authorization_code", "refresh_token"}},
		{EnterpriseID: "acme", ID: "web2", Type: directory.ClientWeb, Secret: webSecret + "2", AuthMethod: "client_secret_basic",
			RedirectURIs: []string{"https://app.example/cb"}, GrantTypes: []string{"authorization_code", "refresh_token"}},
		{EnterpriseID: "acme", ID: "native", Type: directory.ClientNative, AuthMethod: "none",
			RedirectURIs: []string{"http://127.0.0.1/callback"}, PostLogoutRedirectURIs: []string{"http://127.0.0.1/logged-out"},
			GrantTypes: []string{"authorization_code", "refresh_token"}},
		{EnterpriseID: "acme", ID: "svc", Type: directory.ClientService, Secret: svcSecret, AuthMethod: "client_secret_basic",
			GrantTypes: []string{"client_credentials"}},
		{EnterpriseID: "acme", ID: "svc2", Type: directory.ClientService, Secret: svcSecret + "2", AuthMethod: "client_secret_basic",
			GrantTypes: []string{"client_credentials"}},
		{EnterpriseID: "acme", ID: "pkjwt", Type: directory.ClientWeb, AuthMethod: "private_key_jwt", JWKS: jwks,
			RedirectURIs: []string{"https://app.example/cb"}, GrantTypes: []string{"authorization_code", "refresh_token", "client_credentials"}},
		{EnterpriseID: "beta", ID: "svc", Type: directory.ClientService, Secret: svcSecret, AuthMethod: "client_secret_basic",
			GrantTypes: []string{"client_credentials"}},
		// beta has a client of the same ID and secret: enterprises are separate namespaces.
		{EnterpriseID: "beta", ID: "web", Type: directory.ClientWeb, Secret: webSecret, AuthMethod: "client_secret_basic",
			RedirectURIs: []string{"https://app.example/cb"}, GrantTypes: []string{"authorization_code", "refresh_token"}},
	} {
		if err := h.store.PutClient(h.ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	h.user = &directory.User{EnterpriseID: "acme", Username: "zhangsan", Name: "张三"}
	if err := h.store.CreateUser(h.ctx, h.user); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	h.p = &Provider{Store: h.store, State: h.state, Keys: km, Sessions: sessions, Pages: pg, ExternalURL: h.srv.URL,
		Log: log, ClientIP: func(*http.Request) string { return h.ip }}
	if err := h.p.Init(); err != nil {
		t.Fatal(err)
	}
	h.p.Routes(mux)
	return h
}

func (h *harness) iss(ent string) string { return h.srv.URL + "/e/" + ent }

// entCtx is a context as the provider's storage sees it during a request to ent.
func (h *harness) entCtx(ent string) context.Context {
	return context.WithValue(h.ctx, ctxKey{}, &reqInfo{enterprise: ent})
}

// code makes a done authorization request of client for the harness user and returns a code for it.
func (h *harness) code(ent, client, challenge string) (code, grant string) {
	h.t.Helper()
	ctx := h.entCtx(ent)
	ar := &authRequest{ID: newID(24), Enterprise: ent, ClientID: client, RedirectURI: "https://app.example/cb", Scopes: []string{"openid", "offline_access"},
		ResponseType: "code", CreatedAt: time.Now(), UserID: h.user.ID, AuthTime: time.Now(), IsDone: true}
	if client == "native" {
		ar.RedirectURI = "http://127.0.0.1:4711/callback"
	}
	if challenge != "" {
		ar.CodeChallenge, ar.CodeChallengeMethod = challenge, "S256"
	}
	if err := h.p.st.saveAuthRequest(ctx, ar, time.Minute); err != nil {
		h.t.Fatal(err)
	}
	code, err := op.BuildAuthRequestCode(ar, h.p.op.Crypto())
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.p.st.SaveAuthCode(ctx, ar.ID, code); err != nil {
		h.t.Fatal(err)
	}
	return code, ar.ID
}

// resp is an HTTP answer as the tests read it.
type resp struct {
	status int
	header http.Header
	body   string
	json   map[string]any
}

func (h *harness) do(req *http.Request) resp {
	h.t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	out := resp{status: res.StatusCode, header: res.Header, body: string(b)}
	_ = json.Unmarshal(b, &out.json)
	return out
}

// post POSTs a form to an endpoint of ent; basic is id and secret for client_secret_basic.
func (h *harness) post(ent, path string, form url.Values, basic ...string) resp {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.iss(ent)+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if len(basic) == 2 {
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	return h.do(req)
}

func (h *harness) get(ent, pathAndQuery string) resp {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.iss(ent)+pathAndQuery, nil)
	return h.do(req)
}

func (r resp) err() string { s, _ := r.json["error"].(string); return s }

// exchange redeems a code as the "web" client (or another, with its secret).
func (h *harness) exchange(ent, code string, basic ...string) resp {
	h.t.Helper()
	if len(basic) == 0 {
		basic = []string{"web", webSecret}
	}
	return h.post(ent, "/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.example/cb"}}, basic...)
}

// introspect asks as the "svc" resource server.
func (h *harness) introspect(tok string) bool {
	h.t.Helper()
	r := h.post("acme", "/oauth/introspect", url.Values{"token": {tok}}, "svc", svcSecret)
	if r.status != 200 {
		h.t.Fatalf("introspect: %d %s", r.status, r.body)
	}
	return r.json["active"] == true
}

func pkce() (verifier, challenge string) {
	verifier = newID(48)
	s := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(s[:])
}

// assertion signs a private_key_jwt client assertion for "pkjwt" at ent's issuer.
func (h *harness) assertion(ent, jti string) string {
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": "pkjwt", "sub": "pkjwt", "aud": h.iss(ent), "jti": jti,
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(h.pk)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
