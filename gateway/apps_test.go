package gateway

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	csaml "github.com/crewjam/saml"

	"github.com/qiao-gateway/qiao/access"
	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/config"
)

// appEvent waits for the audit event of the access job that ended the app (written last: what
// the job did is done when it is there) and returns its detail.
func appEvent(w *world, kind, object string) map[string]any {
	w.t.Helper()
	// The gateway runs jobs every second; this change was made in its process, so wake it.
	select {
	case w.gw.AccessNotify <- struct{}{}:
	default:
	}
	var detail map[string]any
	w.eventually(kind+" of "+object+" audited", func() bool {
		evs, _ := w.gw.Store.ListAuditEvents(w.ctx, directory.AuditQuery{EnterpriseID: "demo", Kind: kind})
		for _, e := range evs {
			var d map[string]any
			if json.Unmarshal(e.Detail, &d) == nil && d["object"] == object {
				if e.Outcome != "ok" {
					w.t.Fatalf("%s of %s: outcome %s, %s", kind, object, e.Outcome, e.Detail)
				}
				detail = d
				return true
			}
		}
		return false
	})
	return detail
}

// lifecycleClient is a native client like the demo's sase-client, under a name no other run
// shares (the Redis state store outlives a test's database).
func lifecycleClient() config.Client {
	return config.Client{ID: fmt.Sprintf("lifecycle-%d", time.Now().UnixNano()), Name: "lifecycle", Type: "native",
		RedirectURIs: []string{"http://127.0.0.1/callback"}, GrantTypes: []string{"authorization_code", "refresh_token"}}
}

// Disabling an OIDC client: its refresh tokens are revoked (refused with invalid_client while it
// is disabled), its access tokens introspect inactive and fail at userinfo, a new authorization
// for it is refused on qiao's error page, and the audit event counts what was revoked. Other
// clients go on. Enabled again, new logins work and the old tokens stay revoked. Deleting it
// removes it and revokes what it held.
func TestDisablingAnOIDCClientEndsItsTokens(t *testing.T) {
	for name, backend := range backends(t) {
		t.Run(name, func(t *testing.T) { testDisablingAnOIDCClient(t, backend) })
	}
}

func testDisablingAnOIDCClient(t *testing.T, backend func(*config.Config)) {
	client := lifecycleClient()
	o := newOIDCWorldWith(t, backend, func(c *config.Config) {
		c.Enterprises[0].Clients = append(c.Enterprises[0].Clients, client)
	})
	id := client.ID
	b := newBrowser(t)
	verifier, challenge := pkcePair()
	grant := func() map[string]any {
		t.Helper()
		at := o.login(b, nativeAuthz(challenge, "client_id", id), "http://127.0.0.1:53682/")
		st, tok := o.token(url.Values{"grant_type": {"authorization_code"}, "code": {codeOf(t, at)}, "redirect_uri": {rpRedirect},
			"client_id": {id}, "code_verifier": {verifier}})
		if st != 200 || tok["refresh_token"] == nil || tok["access_token"] == nil {
			t.Fatalf("grant: %d %v", st, tok)
		}
		return tok
	}
	refresh := func(tok map[string]any) (int, map[string]any) {
		return o.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {id}})
	}
	userinfo := func(tok map[string]any) int {
		req := mustReq("GET", o.iss+"/userinfo", "")
		req.Header.Set("Authorization", "Bearer "+tok["access_token"].(string))
		st, _, _ := getJSON(t, req)
		return st
	}
	old := grant()
	if o.introspect(old["access_token"].(string))["active"] != true || userinfo(old) != 200 {
		t.Fatal("a fresh access token is not active")
	}
	svc, _ := o.gw.Store.GetClient(o.ctx, "demo", "demo-service")
	st, other := o.token(url.Values{"grant_type": {"client_credentials"}}, "demo-service", svc.Secret)
	if st != 200 {
		t.Fatalf("demo-service client_credentials: %d %v", st, other)
	}

	changed, err := access.SetClientEnabled(o.ctx, o.gw.Store, "demo", id, false, "admin", "test: lost laptop")
	if err != nil || !changed {
		t.Fatalf("disable: %v, %v", changed, err)
	}
	d := appEvent(o.world, "app.disable", id)
	if d["app"] != "oidc_client" || d["refresh_tokens"].(float64) < 1 {
		t.Fatalf("audit detail %v: want the client and the refresh token it revoked", d)
	}
	if st, m := refresh(old); st != 401 || m["error"] != "invalid_client" {
		t.Fatalf("refresh while disabled: %d %v, want 401 invalid_client", st, m)
	}
	if o.introspect(old["access_token"].(string))["active"] != false {
		t.Fatal("the disabled client's access token is still active")
	}
	if st := userinfo(old); st != 401 {
		t.Fatalf("userinfo with the disabled client's access token: %d, want 401", st)
	}
	b.stop = "http://127.0.0.1:53682/"
	if status, page, at := b.get(o.iss+"/authorize?"+nativeAuthz(challenge, "client_id", id).Encode(), "zhangsan"); status != 400 ||
		!strings.Contains(page, "invalid_request") || strings.HasPrefix(at, b.stop) {
		t.Fatalf("authorize for the disabled client: %d at %s", status, at)
	}
	if o.introspect(other["access_token"].(string))["active"] != true {
		t.Fatal("another client's token was ended too")
	}

	// Enabled again: new logins work; what was revoked stays revoked.
	if changed, err := access.SetClientEnabled(o.ctx, o.gw.Store, "demo", id, true, "admin", "test: found it"); err != nil || !changed {
		t.Fatalf("enable: %v, %v", changed, err)
	}
	fresh := grant()
	if st, m := refresh(old); st != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("the old refresh token after enabling: %d %v, want 400 invalid_grant", st, m)
	}
	if o.introspect(old["access_token"].(string))["active"] != false || userinfo(old) != 401 {
		t.Fatal("the old access token came back with the client")
	}
	if o.introspect(fresh["access_token"].(string))["active"] != true {
		t.Fatal("a new access token after enabling is inactive")
	}
	st, fresh = refresh(fresh)
	if st != 200 {
		t.Fatalf("a new refresh token after enabling: %d %v", st, fresh)
	}

	// Deleted: gone, its refresh tokens revoked with it, its access tokens refused.
	n, err := access.DeleteClient(o.ctx, o.gw.Store, "demo", id, "admin", "test: retired")
	if err != nil || n < 1 {
		t.Fatalf("delete: %d refresh tokens, %v", n, err)
	}
	d = appEvent(o.world, "app.delete", id)
	if d["app"] != "oidc_client" || d["refresh_tokens"].(float64) != float64(n) {
		t.Fatalf("audit detail %v, want %d refresh tokens", d, n)
	}
	if _, err := o.gw.Store.GetClient(o.ctx, "demo", id); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("the deleted client is still there: %v", err)
	}
	if st, m := refresh(fresh); st != 401 || m["error"] != "invalid_client" {
		t.Fatalf("refresh of a deleted client: %d %v", st, m)
	}
	if o.introspect(fresh["access_token"].(string))["active"] != false {
		t.Fatal("a deleted client's access token is active")
	}
}

// newAppsSAMLWorld is a SAML world with two service providers: "soap", which hears logouts over
// SOAP only, and "plain".
func newAppsSAMLWorld(t *testing.T, backend func(*config.Config)) *samlWorld {
	s := &samlWorld{sps: map[string]*testSP{"plain": newTestSP(t, "plain", false, false)}, soap: make(chan soapCall, 10)}
	soapSrv := httptest.NewServer(http.HandlerFunc(s.soapEndpoint))
	t.Cleanup(soapSrv.Close)
	s.sps["soap"] = newTestSP(t, "soap", false, false)
	s.sps["soap"].LogoutBindings = []string{csaml.SOAPBinding}
	soapSLO, _ := url.Parse(soapSrv.URL + "/slo")
	s.sps["soap"].SloURL = *soapSLO
	s.world = newWorld(t, 30, t.TempDir(), true, backend, func(c *config.Config) {
		for name, sp := range s.sps {
			c.Enterprises[0].ServiceProviders = append(c.Enterprises[0].ServiceProviders,
				config.ServiceProvider{EntityID: sp.entity, Name: name, Metadata: sp.metadata()})
		}
	})
	resp, err := http.Get(s.base + "/e/demo/saml/metadata")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md csaml.EntityDescriptor
	if err := xml.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	for _, sp := range s.sps {
		sp.IDPMetadata = &md
	}
	return s
}

// soapLogoutFor waits for the LogoutRequest the "soap" SP receives and checks it names the
// person and the session it was given, signed by the IdP.
func (s *samlWorld) soapLogoutFor(t *testing.T, a *csaml.Assertion) {
	t.Helper()
	select {
	case c := <-s.soap:
		if !c.sigOK || c.req.NameID == nil || c.req.NameID.Value != a.Subject.NameID.Value || c.req.SessionIndex == nil ||
			c.req.SessionIndex.Value != a.AuthnStatements[0].SessionIndex || c.req.Issuer.Value != s.base+"/e/demo/saml/metadata" {
			t.Fatalf("SOAP LogoutRequest %+v (signature ok: %v)", c.req, c.sigOK)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no SOAP LogoutRequest within 20 s")
	}
}

// Disabling a SAML service provider that has a live session: it receives a SOAP LogoutRequest for
// that session, SSO to it is refused (IdP-initiated and SP-initiated, on qiao's page), and the
// person's SSO session goes on with the other SPs; a later logout no longer tells it.
func TestDisablingASAMLServiceProviderEndsItsSessions(t *testing.T) {
	for name, backend := range backends(t) {
		t.Run(name, func(t *testing.T) { testDisablingASAMLServiceProvider(t, backend) })
	}
}

func testDisablingASAMLServiceProvider(t *testing.T, backend func(*config.Config)) {
	s := newAppsSAMLWorld(t, backend)
	b := s.signedIn(t)
	viaSoap := s.launch(t, b, "soap")
	s.launch(t, b, "plain")
	soap := s.sps["soap"].entity

	changed, err := access.SetSPEnabled(s.ctx, s.gw.Store, "demo", soap, false, "admin", "test: contract ended")
	if err != nil || !changed {
		t.Fatalf("disable: %v, %v", changed, err)
	}
	s.soapLogoutFor(t, viaSoap)
	d := appEvent(s.world, "app.disable", soap)
	if d["app"] != "saml_sp" || d["sessions"] != float64(1) || d["soap_logouts"] != float64(1) {
		t.Fatalf("audit detail %v: want one session ended with one SOAP logout", d)
	}
	if status, page, _ := b.get(s.base+"/e/demo/saml/launch?sp="+url.QueryEscape(soap), ""); status != 403 || strings.Contains(page, "SAMLResponse") ||
		!strings.Contains(page, "已被管理员停用") { // the page's language: no Accept-Language is Chinese
		t.Fatalf("IdP-initiated SSO to the disabled SP: %d\n%s", status, page)
	}
	u, _ := s.authnURL(t, s.sps["soap"], "", nil)
	if status, page, _ := b.get(u, ""); status != 403 || strings.Contains(page, "SAMLResponse") {
		t.Fatalf("SP-initiated SSO from the disabled SP: %d\n%s", status, page)
	}
	if !s.alive(b) {
		t.Fatal("disabling an SP ended the person's SSO session")
	}
	s.launch(t, b, "plain")

	// The session no longer lists the SP: logging out tells plain (in the browser), not soap.
	_, page, _ := b.get(s.base+"/login/done", "")
	resp, err := b.c.PostForm(s.base+"/logout", url.Values{"csrf": {csrfOf(t, page)}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	hop, _ := fetch(t, b, resp.Header.Get("Location"))
	if loc := hop.Header.Get("Location"); !strings.HasPrefix(loc, "https://plain.test/slo?") {
		t.Fatalf("the logout went to %q, want plain", loc)
	}
	s.gw.SAML.Wait()
	select {
	case c := <-s.soap:
		t.Fatalf("the disabled SP was told of a session it had left: %+v", c.req)
	default:
	}
}

// Deleting a SAML service provider that has a live session: it is gone, and still receives the
// SOAP LogoutRequest (the job keeps its metadata).
func TestDeletingASAMLServiceProviderEndsItsSessions(t *testing.T) {
	s := newAppsSAMLWorld(t, func(*config.Config) {})
	b := s.signedIn(t)
	viaSoap := s.launch(t, b, "soap")
	soap := s.sps["soap"].entity
	if err := access.DeleteSP(s.ctx, s.gw.Store, "demo", soap, "admin", "test: retired"); err != nil {
		t.Fatal(err)
	}
	s.soapLogoutFor(t, viaSoap)
	if d := appEvent(s.world, "app.delete", soap); d["app"] != "saml_sp" || d["sessions"] != float64(1) || d["soap_logouts"] != float64(1) {
		t.Fatalf("audit detail %v", d)
	}
	if _, err := s.gw.Store.GetServiceProvider(s.ctx, "demo", soap); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("the deleted SP is still there: %v", err)
	}
	if status, page, _ := b.get(s.base+"/e/demo/saml/launch?sp="+url.QueryEscape(soap), ""); status != 404 || strings.Contains(page, "SAMLResponse") {
		t.Fatalf("SSO to the deleted SP: %d", status)
	}
	if !s.alive(b) {
		t.Fatal("deleting an SP ended the person's SSO session")
	}
}
