package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/config"
	"github.com/qiao-gateway/qiao/session"
)

// adminWorld is a gateway whose enterprise demo has administrators of every role and service
// clients with and without the admin scopes, and a second enterprise acme with its own admin.
// Every response the admin API gives through call is validated against the OpenAPI document the
// gateway serves (github.com/pb33f/libopenapi-validator).
type adminWorld struct {
	*world
	spec      validator.Validator
	mu        sync.Mutex
	validated int
}

// The people and clients of the admin world.
const (
	svcSecret = "svc-secret-0123456789abcdef"
)

func newAdminWorld(t *testing.T, more ...func(*config.Config)) *adminWorld {
	t.Helper()
	opts := append([]func(*config.Config){func(c *config.Config) {
		e := &c.Enterprises[0]
		for _, u := range []string{"zhao-owner", "wang-admin", "li-auditor", "chen-nobody", "target"} {
			e.Users = append(e.Users, config.User{Username: u, Name: u})
		}
		e.Admins = []config.Admin{{User: "zhangsan", Role: "owner"}, {User: "zhao-owner", Role: "owner"}, {User: "wang-admin", Role: "admin"},
			{User: "li-auditor", Role: "auditor"}}
		e.Clients = append(e.Clients,
			config.Client{ID: "ci-admin", Type: "service", Secret: svcSecret, Scopes: []string{"qiao:admin"}},
			config.Client{ID: "ci-jwt", Type: "service", Secret: svcSecret, Scopes: []string{"qiao:admin"}, AccessTokenFormat: "jwt"},
			config.Client{ID: "ci-read", Type: "service", Secret: svcSecret, Scopes: []string{"qiao:admin.read"}},
			config.Client{ID: "ci-none", Type: "service", Secret: svcSecret})
		c.Enterprises = append(c.Enterprises, config.Enterprise{ID: "acme", Name: "Acme",
			Users:   []config.User{{Username: "acme-admin", Name: "A"}, {Username: "acme-op", Name: "Op"}},
			Admins:  []config.Admin{{User: "acme-admin", Role: "owner"}},
			Clients: []config.Client{{ID: "acme-ci", Type: "service", Secret: svcSecret, Scopes: []string{"qiao:admin"}}}})
	}}, more...)
	a := &adminWorld{world: newWorld(t, 30, t.TempDir(), true, opts...)}
	resp, err := http.Get(a.base + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/openapi+json" && !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/") {
		t.Fatalf("openapi.json: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	doc, err := libopenapi.NewDocument(spec)
	if err != nil {
		t.Fatal(err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("the OpenAPI document does not load: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		t.Fatalf("the OpenAPI document is not valid OpenAPI: %v", verrs)
	}
	a.spec = v
	t.Cleanup(func() {
		if !t.Failed() {
			t.Logf("%d admin API responses validated against the OpenAPI document", a.validated)
		}
	})
	return a
}

// caller is who a request comes from: a session cookie or a bearer token, or neither.
type caller struct {
	name   string
	cookie *http.Cookie
	bearer string
}

// sessionOf opens an SSO session for a person of ent, as the broker does at the end of a logon.
func (a *adminWorld) sessionOf(ent, username string) caller {
	a.t.Helper()
	u, err := a.gw.Store.GetUserByUsername(a.ctx, ent, username)
	if err != nil {
		a.t.Fatalf("user %s of %s: %v", username, ent, err)
	}
	rec := httptest.NewRecorder()
	if err := a.gw.Sessions.Start(rec, httptest.NewRequest("GET", a.base+"/login/done", nil), &session.Session{Enterprise: ent, User: u.ID}); err != nil {
		a.t.Fatal(err)
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == "qiao_sso" {
			return caller{name: username + "@" + ent, cookie: c}
		}
	}
	a.t.Fatal("no session cookie")
	return caller{}
}

// tokenOf gets a client_credentials access token.
func (a *adminWorld) tokenOf(ent, client, scope string) caller {
	a.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	req, _ := http.NewRequest("POST", a.base+"/e/"+ent+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, svcSecret)
	st, m, _ := getJSON(a.t, req)
	tok, _ := m["access_token"].(string)
	if st != 200 || tok == "" {
		a.t.Fatalf("token of %s/%s scope %q: %d %v", ent, client, scope, st, m)
	}
	return caller{name: client + "@" + ent, bearer: tok}
}

// response is an admin API answer.
type response struct {
	status int
	body   []byte
	header http.Header
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("not JSON (%d): %s", r.status, r.body)
	}
	return m
}

// call sends a request to the admin API as c (path below /api/v1) and validates the response
// against the OpenAPI document. Unsafe requests authenticated by the session carry the CSRF
// header and a same-origin Origin unless hdr says otherwise.
func (a *adminWorld) call(c caller, method, path, body string, hdr ...string) response {
	a.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, a.base+"/api/v1"+path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.cookie != nil {
		req.AddCookie(c.cookie)
		if method != "GET" {
			req.Header.Set("X-Qiao-CSRF", "1")
			req.Header.Set("Origin", a.base)
		}
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	a.validate(req, resp, b)
	return response{resp.StatusCode, b, resp.Header}
}

// validate checks one response against the OpenAPI document.
func (a *adminWorld) validate(req *http.Request, resp *http.Response, body []byte) {
	a.t.Helper()
	if strings.HasPrefix(req.URL.Path, "/api/v1/openapi") {
		return // the document itself
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	vreq := req.Clone(a.ctx)
	vreq.Body = http.NoBody
	a.mu.Lock()
	defer a.mu.Unlock()
	if ok, errs := a.spec.ValidateHttpResponse(vreq, resp); !ok {
		msgs := []string{}
		for _, e := range errs {
			msgs = append(msgs, e.Error())
		}
		a.t.Errorf("%s %s → %d does not match the OpenAPI document: %s\nbody: %s", req.Method, req.URL.Path, resp.StatusCode, strings.Join(msgs, "; "), body)
		return
	}
	a.validated++
}

// wecomSource is a create body for a WeCom source on the world's simulator.
func (a *adminWorld) wecomSource(id, name string) string {
	a.t.Helper()
	src, err := a.gw.Store.GetSource(a.ctx, "demo", "wecom")
	if err != nil {
		a.t.Fatal(err)
	}
	c, s := src.Config, src.Secrets
	b, _ := json.Marshal(map[string]any{"id": id, "kind": "wecom", "name": name, "description": "企业微信（接口创建）",
		"wecom": map[string]any{"corp_id": c["corp_id"], "agent_id": c["agent_id"], "api_base_url": c["api_base_url"], "login_base_url": c["login_base_url"],
			"open_base_url": c["open_base_url"], "oauth_base_url": c["oauth_base_url"], "callback_domain": c["callback_domain"],
			"secret": s["secret"], "contact_secret": s["contact_secret"], "callback_token": s["callback_token"], "encoding_aes_key": s["encoding_aes_key"]}})
	return string(b)
}

// auditOf returns the enterprise's audit events of a kind, newest first.
func (a *adminWorld) auditOf(ent, kind string) []*directory.AuditEvent {
	a.t.Helper()
	evs, err := a.gw.Store.ListAuditEvents(a.ctx, directory.AuditQuery{EnterpriseID: ent, Kind: kind})
	if err != nil {
		a.t.Fatal(err)
	}
	return evs
}
