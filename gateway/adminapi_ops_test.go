package gateway

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/adminapi"
	"github.com/qiao-gateway/qiao/directory"
)

// operatorOf makes acme-op a platform operator by a setup link and returns their session.
func (a *adminWorld) operatorOf() caller {
	a.t.Helper()
	tok, err := adminapi.NewSetupToken(a.ctx, a.gw.Store, time.Minute, "test")
	if err != nil {
		a.t.Fatal(err)
	}
	op := a.sessionOf("acme", "acme-op")
	if r := a.call(op, "GET", "/operator-setup?token="+tok, ""); r.status != 200 {
		a.t.Fatalf("setup link: %d %s", r.status, r.body)
	}
	return op
}

// An owner lists the signing keys; an operator rotates one: the new key is active and published in
// the JWKS at once, the old one retiring. The keys sign for every enterprise, so an owner or admin
// of one may not rotate them.
func TestAdminAPIKeys(t *testing.T) {
	a := newAdminWorld(t)
	owner := a.sessionOf("demo", "zhao-owner")
	r := a.call(owner, "GET", "/enterprises/demo/keys", "")
	before := map[string]string{}
	for _, k := range r.json(t)["items"].([]any) {
		k := k.(map[string]any)
		if k["state"] == "active" {
			before[k["alg"].(string)] = k["kid"].(string)
		}
	}
	// One active key per algorithm: the token algorithms and SAML's.
	if r.status != 200 || len(before) != 4 || before["RS256"] == "" || before["ES256"] == "" || before["EdDSA"] == "" || before["SAML"] == "" {
		t.Fatalf("keys: %d %s", r.status, r.body)
	}
	if r := a.call(a.sessionOf("demo", "wang-admin"), "POST", "/enterprises/demo/keys/rotate", `{"algs":["ES256"]}`); r.status != 403 {
		t.Fatalf("an admin rotates: %d", r.status)
	}
	if r := a.call(owner, "POST", "/enterprises/demo/keys/rotate", `{"algs":["ES256"]}`); r.status != 403 {
		t.Fatalf("an owner rotates the keys of every enterprise: %d", r.status)
	}
	op := a.operatorOf()
	if r := a.call(op, "POST", "/enterprises/demo/keys/rotate", `{"algs":["HS256"]}`); r.status != 422 {
		t.Fatalf("an unknown alg: %d %s", r.status, r.body)
	}
	r = a.call(op, "POST", "/enterprises/demo/keys/rotate", `{"algs":["ES256"]}`)
	after := map[string]string{}
	retiring := ""
	for _, k := range r.json(t)["items"].([]any) {
		k := k.(map[string]any)
		if k["state"] == "active" {
			after[k["alg"].(string)] = k["kid"].(string)
		} else if k["kid"] == before["ES256"] && k["expires_at"] != nil {
			retiring = k["kid"].(string)
		}
	}
	if r.status != 200 || after["ES256"] == before["ES256"] || after["RS256"] != before["RS256"] || after["EdDSA"] != before["EdDSA"] || retiring == "" {
		t.Fatalf("rotate: %d %s", r.status, r.body)
	}
	resp, err := http.Get(a.base + "/e/demo/keys")
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(jwks), after["ES256"]) || !strings.Contains(string(jwks), before["ES256"]) {
		t.Fatalf("the JWKS lacks the new or the retiring key: %s", jwks)
	}
	if ev := a.auditOf("demo", "admin.keys.rotate"); len(ev) != 1 || !strings.Contains(string(ev[0].Detail), after["ES256"]) || strings.Contains(string(ev[0].Detail), "PRIVATE") {
		t.Fatalf("rotate audit = %+v", ev)
	}
}

// The audit log through the API: filtered by kind prefix, person and time, paged by cursor.
func TestAdminAPIAudit(t *testing.T) {
	a := newAdminWorld(t)
	owner := a.sessionOf("demo", "zhao-owner")
	u, _ := a.gw.Store.GetUserByUsername(a.ctx, "demo", "li-auditor")
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	for i := 0; i < 7; i++ {
		ev := &directory.AuditEvent{EnterpriseID: "demo", Kind: fmt.Sprintf("test.kind%d", i%2), At: base.Add(time.Duration(i) * time.Minute), Outcome: "ok"}
		if i%3 == 0 {
			ev.UserID = u.ID
		}
		if err := a.gw.Store.AddAuditEvent(a.ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	// Every page of test. events, three at a time, newest first, seven in all.
	var seen []string
	path := "/enterprises/demo/audit?kind=test.&limit=3"
	for page := 0; ; page++ {
		r := a.call(owner, "GET", path, "")
		m := r.json(t)
		if r.status != 200 || page > 3 {
			t.Fatalf("page %d: %d %s", page, r.status, r.body)
		}
		for _, it := range m["items"].([]any) {
			seen = append(seen, it.(map[string]any)["kind"].(string)+"@"+it.(map[string]any)["at"].(string))
		}
		next, _ := m["next_before"].(string)
		if next == "" {
			break
		}
		path = "/enterprises/demo/audit?kind=test.&limit=3&before=" + next
	}
	if len(seen) != 7 || !strings.HasPrefix(seen[0], "test.kind0@") || !strings.HasPrefix(seen[6], "test.kind0@") {
		t.Fatalf("pages: %v", seen)
	}
	count := func(q string) int {
		r := a.call(owner, "GET", "/enterprises/demo/audit?"+q, "")
		if r.status != 200 {
			t.Fatalf("%s: %d %s", q, r.status, r.body)
		}
		return len(r.json(t)["items"].([]any))
	}
	if n := count("kind=test.kind1"); n != 3 {
		t.Fatalf("an exact kind: %d", n)
	}
	if n := count("kind=test.&user=li-auditor"); n != 3 {
		t.Fatalf("by person: %d", n)
	}
	if n := count("kind=test.&user=" + u.ID); n != 3 {
		t.Fatalf("by user ID: %d", n)
	}
	since, until := base.Add(2*time.Minute).Format(time.RFC3339), base.Add(5*time.Minute).Format(time.RFC3339)
	if n := count("kind=test.&since=" + url.QueryEscape(since) + "&until=" + url.QueryEscape(until)); n != 3 {
		t.Fatalf("a time window: %d", n)
	}
	for _, q := range []string{"before=abc", "since=yesterday", "limit=0", "limit=501", "kind=test.&since=" + url.QueryEscape(until) + "&until=" + url.QueryEscape(since), "actor=x"} {
		if r := a.call(owner, "GET", "/enterprises/demo/audit?"+q, ""); r.status != 422 {
			t.Errorf("%s: %d %s", q, r.status, r.body)
		}
	}
	// Another enterprise's admin sees nothing of it.
	if r := a.call(a.sessionOf("acme", "acme-admin"), "GET", "/enterprises/demo/audit", ""); r.status != 404 {
		t.Fatalf("another enterprise's admin: %d", r.status)
	}
}

// An operator creates an enterprise, renames it, reads what deleting it removes and deletes it;
// the file's enterprises are read-only; no one else may.
func TestAdminAPIEnterprises(t *testing.T) {
	a := newAdminWorld(t)
	op := a.operatorOf()
	owner := a.sessionOf("demo", "zhao-owner")
	if r := a.call(owner, "POST", "/enterprises", `{"id":"newco","name":"新公司"}`); r.status != 403 {
		t.Fatalf("an owner creates an enterprise: %d", r.status)
	}
	if r := a.call(op, "POST", "/enterprises", `{"id":"NewCo","name":"x"}`); r.status != 422 {
		t.Fatalf("a bad ID: %d", r.status)
	}
	if r := a.call(op, "POST", "/enterprises", `{"id":"newco","name":"新公司"}`); r.status != 201 || r.json(t)["name"] != "新公司" {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if r := a.call(op, "POST", "/enterprises", `{"id":"newco","name":"again"}`); r.status != 409 {
		t.Fatalf("a taken ID: %d", r.status)
	}
	if r := a.call(op, "PATCH", "/enterprises/newco", `{"name":"新公司（改名）"}`); r.status != 200 || r.json(t)["name"] != "新公司（改名）" {
		t.Fatalf("rename: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "PATCH", "/enterprises/newco", `{"name":"x"}`); r.status != 404 {
		t.Fatalf("another enterprise's owner renames it: %d", r.status)
	}
	if r := a.call(owner, "PATCH", "/enterprises/demo", `{"name":"x"}`); r.status != 403 {
		t.Fatalf("an owner renames their enterprise: %d", r.status)
	}
	if r := a.call(op, "PATCH", "/enterprises/demo", `{"name":"x"}`); r.status != 409 || !strings.Contains(string(r.body), "config.yaml") {
		t.Fatalf("rename a file-managed enterprise: %d %s", r.status, r.body)
	}
	// Someone in newco's directory, and an app.
	if err := a.gw.Store.CreateUser(a.ctx, &directory.User{EnterpriseID: "newco", Username: "wu", Name: "吴", Status: directory.UserActive}); err != nil {
		t.Fatal(err)
	}
	if r := a.call(op, "POST", "/enterprises/newco/clients", `{"id":"web","type":"web","redirect_uris":["https://w.example/cb"]}`); r.status != 201 {
		t.Fatalf("a client of newco: %d %s", r.status, r.body)
	}
	r := a.call(op, "GET", "/enterprises/newco/deletion-plan", "")
	if m := r.json(t); r.status != 200 || m["people"] != 1.0 || m["clients"] != 1.0 || m["sources"] != 0.0 || m["deleted"] != false {
		t.Fatalf("plan: %d %s", r.status, r.body)
	}
	if r := a.call(op, "DELETE", "/enterprises/newco", ""); r.status != 400 {
		t.Fatalf("delete without confirm: %d", r.status)
	}
	if r := a.call(op, "DELETE", "/enterprises/acme?confirm=true", ""); r.status != 409 {
		t.Fatalf("delete the operator's own enterprise: %d %s", r.status, r.body)
	}
	if r := a.call(op, "DELETE", "/enterprises/newco?confirm=true", ""); r.status != 200 || r.json(t)["deleted"] != true {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if _, err := a.gw.Store.GetEnterprise(a.ctx, "newco"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("newco after delete: %v", err)
	}
	if r := a.call(op, "GET", "/enterprises/newco/deletion-plan", ""); r.status != 404 {
		t.Fatalf("a deleted enterprise: %d", r.status)
	}
	if ev := a.auditOf("acme", "admin.enterprise.delete"); len(ev) != 1 || ev[0].Actor != "user:acme-op@acme" || !strings.Contains(string(ev[0].Detail), `"people":1`) {
		t.Fatalf("delete audit = %+v", ev)
	}
}
