package gateway

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// clientCredentials asks the enterprise's token endpoint for a token as client/secret.
func (a *adminWorld) clientCredentials(ent, client, secret string) int {
	a.t.Helper()
	req, _ := http.NewRequest("POST", a.base+"/e/"+ent+"/oauth/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, secret)
	st, _, _ := getJSON(a.t, req)
	return st
}

// An OIDC client created through the API gets a secret shown once (masked everywhere after, in the
// audit log too) that works at the token endpoint; rotating it gives a new one and the old one
// stops working; changes are checked like the file's; a file-managed client is read-only.
func TestAdminAPIClients(t *testing.T) {
	a := newAdminWorld(t)
	owner := a.sessionOf("demo", "zhao-owner")

	r := a.call(owner, "POST", "/enterprises/demo/clients", `{"id":"svc-new","type":"service","name":"报表服务"}`)
	c := r.json(t)
	secret, _ := c["client_secret"].(string)
	if r.status != 201 || len(secret) < 40 || c["secret"] != "••••"+secret[len(secret)-4:] || c["issuer"] != a.base+"/e/demo" ||
		c["discovery_url"] != a.base+"/e/demo/.well-known/openid-configuration" || r.header.Get("Location") != "/api/v1/enterprises/demo/clients/svc-new" {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "GET", "/enterprises/demo/clients/svc-new", ""); r.status != 200 || strings.Contains(string(r.body), secret) || r.json(t)["client_secret"] != nil {
		t.Fatalf("get shows the secret: %d %s", r.status, r.body)
	}
	// The OpenID Provider caches the client once it is used; a rotation must not wait for that
	// copy to expire.
	if st := a.clientCredentials("demo", "svc-new", secret); st != 200 {
		t.Fatalf("the new client's secret at the token endpoint: %d", st)
	}
	r = a.call(owner, "POST", "/enterprises/demo/clients/svc-new/secret", "")
	rotated, _ := r.json(t)["client_secret"].(string)
	if r.status != 200 || rotated == "" || rotated == secret {
		t.Fatalf("rotate: %d %s", r.status, r.body)
	}
	if st := a.clientCredentials("demo", "svc-new", rotated); st != 200 {
		t.Fatalf("the rotated secret at the token endpoint: %d", st)
	}
	if st := a.clientCredentials("demo", "svc-new", secret); st != 401 && st != 400 {
		t.Fatalf("the old secret at the token endpoint: %d", st)
	}
	for _, kind := range []string{"admin.client.create", "admin.client.rotate_secret"} {
		ev := a.auditOf("demo", kind)
		if len(ev) != 1 || ev[0].Actor != "user:zhao-owner@demo" || strings.Contains(string(ev[0].Detail), secret) || strings.Contains(string(ev[0].Detail), rotated) {
			t.Fatalf("%s audit = %+v", kind, ev)
		}
	}

	// The device flow is a grant an admin gives a people's client, never a service.
	if r := a.call(owner, "POST", "/enterprises/demo/clients", `{"id":"tv-app","type":"native","redirect_uris":["http://127.0.0.1/cb"],`+
		`"grant_types":["urn:ietf:params:oauth:grant-type:device_code","refresh_token"]}`); r.status != 201 || !strings.Contains(string(r.body), "device_code") {
		t.Fatalf("create a device-flow client: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "POST", "/enterprises/demo/clients", `{"id":"svc-dev","type":"service","grant_types":["urn:ietf:params:oauth:grant-type:device_code"]}`); r.status != 422 ||
		!strings.Contains(string(r.body), "body.grant_types") {
		t.Fatalf("a service client with the device grant: %d %s", r.status, r.body)
	}

	// A web client: its settings, checked as the config file's are.
	if r := a.call(owner, "POST", "/enterprises/demo/clients", `{"id":"web-new","type":"web","redirect_uris":["https://app.example/cb"],"launch_url":"https://app.example/"}`); r.status != 201 {
		t.Fatalf("create web: %d %s", r.status, r.body)
	}
	for body, loc := range map[string]string{
		`{"redirect_uris":["/relative"]}`:                  "body.redirect_uris[0]",
		`{"allowed_origins":["https://a.example/path"]}`:   "body.allowed_origins[0]",
		`{"claims":{"employee_no":"password_hash"}}`:       "body.claims.employee_no",
		`{"claims":{"sub":"username"}}`:                    "body.claims.sub",
		`{"claims":{"dept":"departments"}}`:                "body.claims.dept",
		`{"grant_types":["client_credentials"]}`:           "body.grant_types",
		`{"backchannel_logout_uri":"javascript:alert(1)"}`: "body.backchannel_logout_uri",
		`{"id_token_alg":"none"}`:                          "body.id_token_alg",
		`{"id_token_alg":"eddsa"}`:                         "body.id_token_alg",
		`{"secret":"mine"}`:                                "body.secret",
	} {
		r := a.call(owner, "PATCH", "/enterprises/demo/clients/web-new", body)
		if r.status != 422 || !strings.Contains(string(r.body), loc) {
			t.Errorf("PATCH %s: %d %s", body, r.status, r.body)
		}
	}
	r = a.call(owner, "PATCH", "/enterprises/demo/clients/web-new", `{"redirect_uris":["https://app.example/cb","https://app.example/cb2"],
		"allowed_origins":["https://app.example"],"claims":{"employee_no":"ext.employee_no"},"access_token_format":"jwt","id_token_alg":"EdDSA",
		"backchannel_logout_uri":"https://app.example/bcl","launch_url":"https://app.example/start"}`)
	if m := r.json(t); r.status != 200 || len(m["redirect_uris"].([]any)) != 2 || m["access_token_format"] != "jwt" || m["id_token_alg"] != "EdDSA" || m["launch_url"] != "https://app.example/start" ||
		m["claims"].(map[string]any)["employee_no"] != "ext.employee_no" {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "POST", "/enterprises/demo/clients/web-new/disable", ""); r.status != 200 || r.json(t)["enabled"] != false {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "POST", "/enterprises/demo/clients/web-new/enable", ""); r.status != 200 || r.json(t)["enabled"] != true {
		t.Fatalf("enable: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "DELETE", "/enterprises/demo/clients/web-new", ""); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "GET", "/enterprises/demo/clients/web-new", ""); r.status != 404 {
		t.Fatalf("a deleted client: %d", r.status)
	}
	if r := a.call(owner, "POST", "/enterprises/demo/clients", `{"id":"svc-new","type":"service"}`); r.status != 409 {
		t.Fatalf("a taken ID: %d", r.status)
	}
	// The file's clients are read-only here.
	before, _ := a.gw.Store.GetClient(a.ctx, "demo", "ci-admin")
	for _, op := range [][2]string{{"PATCH", `{"name":"x"}`}, {"POST", ""}, {"DELETE", ""}} {
		path := "/enterprises/demo/clients/ci-admin"
		if op[0] == "POST" {
			path += "/disable"
		}
		if r := a.call(owner, op[0], path, op[1]); r.status != 409 || !strings.Contains(string(r.body), "config.yaml") {
			t.Errorf("%s a file-managed client: %d %s", op[0], r.status, r.body)
		}
	}
	if after, _ := a.gw.Store.GetClient(a.ctx, "demo", "ci-admin"); after.UpdatedAt != before.UpdatedAt || after.Disabled {
		t.Fatal("a file-managed client changed")
	}
}

// A SAML service provider created through the API with inline metadata (checked now) or a
// metadata URL, with the IdP's values to configure it with; changed, disabled, enabled, deleted.
func TestAdminAPIServiceProviders(t *testing.T) {
	a := newAdminWorld(t)
	owner := a.sessionOf("demo", "zhao-owner")
	sp := newTestSP(t, "hr", false, false)
	body, _ := json.Marshal(map[string]any{"entity_id": sp.entity, "name": "人事系统", "metadata": sp.metadata(), "attributes": map[string]string{"mail": "email"}})
	r := a.call(owner, "POST", "/enterprises/demo/service-providers", string(body))
	m := r.json(t)
	id := base64.RawURLEncoding.EncodeToString([]byte(sp.entity))
	if r.status != 201 || m["id"] != id || m["nameid_format"] != "persistent" || m["sign_assertion"] != true || m["idp_metadata_url"] != a.base+"/e/demo/saml/metadata" ||
		m["launch_url"] != a.base+"/e/demo/saml/launch?sp="+url.QueryEscape(sp.entity) || len(m["acs"].([]any)) == 0 || m["acs"].([]any)[0] != sp.acs {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	other := newTestSP(t, "other", false, false)
	bad, _ := json.Marshal(map[string]any{"entity_id": sp.entity + "x", "metadata": other.metadata()})
	if r := a.call(owner, "POST", "/enterprises/demo/service-providers", string(bad)); r.status != 422 || !strings.Contains(string(r.body), "body.metadata") {
		t.Fatalf("metadata of another SP: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "POST", "/enterprises/demo/service-providers", `{"entity_id":"https://x.test/md","metadata":"<x/>","metadata_url":"https://x.test/md"}`); r.status != 422 {
		t.Fatalf("both metadata and URL: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "POST", "/enterprises/demo/service-providers", `{"entity_id":"https://url.test/md","metadata_url":"https://url.test/md","nameid_format":"emailAddress"}`); r.status != 201 ||
		r.json(t)["metadata_url"] != "https://url.test/md" {
		t.Fatalf("by URL: %d %s", r.status, r.body)
	}
	r = a.call(owner, "PATCH", "/enterprises/demo/service-providers/"+id, `{"nameid_format":"emailAddress","attributes":{"uid":"username"},"sign_response":false}`)
	if m := r.json(t); r.status != 200 || m["nameid_format"] != "emailAddress" || m["sign_response"] != false || m["attributes"].(map[string]any)["uid"] != "username" {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "PATCH", "/enterprises/demo/service-providers/"+id, `{"attributes":{"x":"password_hash"}}`); r.status != 422 {
		t.Fatalf("a bad attribute: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "POST", "/enterprises/demo/service-providers/"+id+"/disable", ""); r.status != 200 || r.json(t)["enabled"] != false {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	if got, _ := a.gw.Store.GetServiceProvider(a.ctx, "demo", sp.entity); !got.Disabled {
		t.Fatal("not disabled in the store")
	}
	if r := a.call(owner, "POST", "/enterprises/demo/service-providers/"+id+"/enable", ""); r.status != 200 || r.json(t)["enabled"] != true {
		t.Fatalf("enable: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "GET", "/enterprises/demo/service-providers", ""); r.status != 200 || len(r.json(t)["items"].([]any)) < 2 {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "DELETE", "/enterprises/demo/service-providers/"+id, ""); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "GET", "/enterprises/demo/service-providers/"+id, ""); r.status != 404 {
		t.Fatalf("a deleted SP: %d", r.status)
	}
	if r := a.call(owner, "GET", "/enterprises/demo/service-providers/not*base64", ""); r.status != 404 {
		t.Fatalf("a bad id: %d", r.status)
	}
	for _, kind := range []string{"admin.sp.create", "admin.sp.update", "admin.sp.disable", "admin.sp.enable", "admin.sp.delete"} {
		if ev := a.auditOf("demo", kind); len(ev) == 0 || ev[0].Actor != "user:zhao-owner@demo" {
			t.Fatalf("%s audit = %+v", kind, ev)
		}
	}
}
