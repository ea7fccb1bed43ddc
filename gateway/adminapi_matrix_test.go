package gateway

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/adminapi"
	"github.com/qiao-gateway/qiao/directory"
)

// Every endpoint of the admin API × every kind of caller, with the status each must get. A
// refused caller changes nothing; an admin of another enterprise learns nothing (404, as for an
// enterprise that does not exist).
func TestAdminAPIAuthorisationMatrix(t *testing.T) {
	a := newAdminWorld(t)
	ctx := a.ctx
	st := a.gw.Store

	// The operator: a person of acme who followed a setup link after logging on.
	tok, err := adminapi.NewSetupToken(ctx, st, time.Minute, "test")
	if err != nil {
		t.Fatal(err)
	}
	op := a.sessionOf("acme", "acme-op")
	if r := a.call(caller{name: "anonymous"}, "GET", "/operator-setup?token="+tok, ""); r.status != http.StatusSeeOther ||
		r.header.Get("Location") != "/login?return=%2Fapi%2Fv1%2Foperator-setup%3Ftoken%3D"+tok {
		t.Fatalf("setup link without a session: %d %s", r.status, r.header.Get("Location"))
	}
	if r := a.call(op, "GET", "/operator-setup?token="+tok, ""); r.status != 200 || r.json(t)["username"] != "acme-op" {
		t.Fatalf("setup link: %d %s", r.status, r.body)
	}
	if r := a.call(a.sessionOf("demo", "chen-nobody"), "GET", "/operator-setup?token="+tok, ""); r.status != http.StatusGone {
		t.Fatalf("a setup link used twice: %d %s", r.status, r.body)
	}
	if ev := a.auditOf("acme", "admin.operator.grant"); len(ev) != 1 || ev[0].Actor != "user:acme-op@acme" || ev[0].RequestID == "" || ev[0].IP == "" {
		t.Fatalf("operator audit = %+v", ev)
	}

	callers := []caller{
		{name: "anonymous"},
		a.sessionOf("demo", "li-auditor"),
		a.sessionOf("demo", "wang-admin"),
		a.sessionOf("demo", "zhao-owner"),
		a.sessionOf("demo", "chen-nobody"),
		a.sessionOf("acme", "acme-admin"),
		op,
		a.tokenOf("demo", "ci-admin", "qiao:admin"),
		a.tokenOf("demo", "ci-jwt", "qiao:admin"),
		a.tokenOf("demo", "ci-read", "qiao:admin.read"),
		a.tokenOf("demo", "ci-none", ""),
		a.tokenOf("acme", "acme-ci", "qiao:admin"),
	}
	roles := []string{"anonymous", "auditor", "admin", "owner", "member", "other", "operator", "client-admin", "client-admin", "client-read", "client-none", "other"}

	// What each kind of caller gets from an operation needing a role (w is the success status).
	read := func(role string, w int) int {
		switch role {
		case "anonymous":
			return 401
		case "member", "client-none":
			return 403
		case "other":
			return 404
		}
		return w
	}
	write := func(role string, w int) int {
		switch role {
		case "auditor", "client-read":
			return 403
		}
		return read(role, w)
	}
	owner := func(role string, w int) int {
		switch role {
		case "admin", "client-admin":
			return 403
		}
		return write(role, w)
	}
	anyone := func(role string, w int) int {
		switch role {
		case "anonymous":
			return 401
		case "client-none":
			return 403 // its token is not for the admin API (no admin scope, so not its audience)
		}
		return w
	}
	public := func(string, int) int { return 200 }

	tasks, _ := st.ListSyncTasks(ctx, "demo", "wecom", 1)
	task := tasks[0].ID
	base, _ := st.GetSource(ctx, "demo", "wecom")
	fixture := func() {
		mx := *base
		mx.ID, mx.Name, mx.Managed, mx.CreatedAt = "mx", "测试源", "", time.Time{}
		if err := st.PutSource(ctx, &mx); err != nil {
			t.Fatal(err)
		}
		_ = st.DeleteSource(ctx, "demo", "mx2")
		_ = st.DeleteAdminGrant(ctx, "demo", "target")
		appFixture(t, a)
		_ = st.DeleteEnterprise(ctx, "mxe")
		// pp: a person of the local directory the file does not declare, active, without a password.
		pp, err := st.GetUserByUsername(ctx, "demo", "pp")
		if errors.Is(err, directory.ErrNotFound) {
			pp = &directory.User{EnterpriseID: "demo", Username: "pp", Name: "皮皮"}
			if err := st.CreateUser(ctx, pp); err != nil {
				t.Fatal(err)
			}
			if err := st.PutUserLink(ctx, &directory.UserLink{EnterpriseID: "demo", SourceID: "local", UpstreamID: "pp", UserID: pp.ID}); err != nil {
				t.Fatal(err)
			}
		} else if err != nil {
			t.Fatal(err)
		}
		pp.Status, pp.PasswordHash = directory.UserActive, ""
		if err := st.UpdateUser(ctx, pp); err != nil {
			t.Fatal(err)
		}
	}
	endpoints := []struct {
		method, path, body string
		expect             func(role string, w int) int
		ok                 int
	}{
		{"GET", "/openapi.json", "", public, 200},
		{"GET", "/me", "", anyone, 200},
		{"GET", "/enterprises", "", anyone, 200},
		{"GET", "/enterprises/demo/admins", "", read, 200},
		{"GET", "/enterprises/demo/sources", "", read, 200},
		{"GET", "/enterprises/demo/sources/mx", "", read, 200},
		{"GET", "/enterprises/demo/sources/mx/deletion-plan", "", read, 200},
		{"GET", "/enterprises/demo/overview?hours=24", "", read, 200},
		{"GET", "/enterprises/demo/sources/wecom/sync/tasks", "", read, 200},
		{"GET", "/enterprises/demo/sources/wecom/sync/tasks/" + task, "", read, 200},
		{"GET", "/enterprises/demo/sources/wecom/sync/tasks/" + task + "/records?action=create&object_type=user&limit=5", "", read, 200},
		{"PATCH", "/enterprises/demo/sources/mx", `{"description":"改过的标题"}`, write, 200},
		{"POST", "/enterprises/demo/sources/mx/close", "", write, 200},
		{"POST", "/enterprises/demo/sources/mx/open", "", write, 200},
		{"POST", "/enterprises/demo/sources/mx/sync?dry_run=true", "", write, 200},
		{"POST", "/enterprises/demo/sources/mx/test", "", write, 200},
		{"GET", "/enterprises/demo/sources/mx/upstream-departments", "", write, 200},
		{"DELETE", "/enterprises/demo/sources/mx?confirm=true&force=true", "", write, 200},
		{"POST", "/enterprises/demo/sources", a.wecomSource("mx2", "第二个源"), write, 201},
		{"GET", "/enterprises/demo/departments", "", read, 200},
		{"GET", "/enterprises/demo/users?q=pp&status=active&limit=5", "", read, 200},
		{"GET", "/enterprises/demo/users/pp", "", read, 200},
		{"POST", "/enterprises/demo/users/pp/end-sessions", "", write, 200},
		{"POST", "/enterprises/demo/users/pp/disable", "", write, 200},
		{"POST", "/enterprises/demo/users/pp/enable", "", write, 200},
		{"POST", "/enterprises/demo/users/pp/unlock", "", write, 200},
		{"PUT", "/enterprises/demo/users/pp/password", `{"password":"matrix-passw0rd"}`, write, 204},
		{"GET", "/enterprises/demo/clients", "", read, 200},
		{"GET", "/enterprises/demo/clients/mxc", "", read, 200},
		{"PATCH", "/enterprises/demo/clients/mxc", `{"launch_url":"https://mxc.example/start"}`, write, 200},
		{"POST", "/enterprises/demo/clients/mxc/secret", "", write, 200},
		{"POST", "/enterprises/demo/clients/mxc/disable", "", write, 200},
		{"POST", "/enterprises/demo/clients/mxc/enable", "", write, 200},
		{"DELETE", "/enterprises/demo/clients/mxc", "", write, 204},
		{"POST", "/enterprises/demo/clients", `{"id":"mxc2","type":"web","redirect_uris":["https://mxc.example/cb"]}`, write, 201},
		{"GET", "/enterprises/demo/service-providers", "", read, 200},
		{"GET", "/enterprises/demo/service-providers/" + mxSPID, "", read, 200},
		{"POST", "/enterprises/demo/service-providers/" + mxSPID + "/refresh-metadata", "", write, 200},
		{"PATCH", "/enterprises/demo/service-providers/" + mxSPID, `{"nameid_format":"transient"}`, write, 200},
		{"POST", "/enterprises/demo/service-providers/" + mxSPID + "/disable", "", write, 200},
		{"POST", "/enterprises/demo/service-providers/" + mxSPID + "/enable", "", write, 200},
		{"DELETE", "/enterprises/demo/service-providers/" + mxSPID, "", write, 204},
		{"POST", "/enterprises/demo/service-providers", `{"entity_id":"https://mxsp2.test/md","metadata_url":"https://mxsp2.test/md"}`, write, 201},
		{"PUT", "/enterprises/demo/admins/target", `{"role":"auditor"}`, owner, 200},
		{"DELETE", "/enterprises/demo/admins/target", "", owner, 204},
	}
	for i, c := range callers {
		role := roles[i]
		t.Run(fmt.Sprintf("%s(%s)", role, c.name), func(t *testing.T) {
			fixture()
			before, _ := st.GetSource(ctx, "demo", "mx")
			audits := len(a.auditOf("demo", "admin."))
			changes := 0
			for _, ep := range endpoints {
				want := ep.expect(role, ep.ok)
				r := a.call(c, ep.method, ep.path, ep.body)
				if r.status != want {
					t.Errorf("%s %s: %d, want %d: %s", ep.method, ep.path, r.status, want, r.body)
				}
				if r.status >= 400 && r.header.Get("Content-Type") != "application/problem+json" {
					t.Errorf("%s %s: an error as %q, not problem details", ep.method, ep.path, r.header.Get("Content-Type"))
				}
				if ep.method != "GET" && want < 300 && !readOnlyPost(ep.path) {
					changes++
				}
			}
			// A caller refused every write changed nothing; one allowed them left an audit event each.
			after := len(a.auditOf("demo", "admin."))
			if changes == 0 {
				now, err := st.GetSource(ctx, "demo", "mx")
				if err != nil || now.UpdatedAt != before.UpdatedAt || now.Description != before.Description || !now.Enabled {
					t.Errorf("a refused caller changed source mx: %+v, %v", now, err)
				}
				if _, err := st.GetSource(ctx, "demo", "mx2"); !errors.Is(err, directory.ErrNotFound) {
					t.Errorf("a refused caller created mx2: %v", err)
				}
				if pp, err := st.GetUserByUsername(ctx, "demo", "pp"); err != nil || pp.Status != directory.UserActive || pp.PasswordHash != "" {
					t.Errorf("a refused caller changed person pp: %+v, %v", pp, err)
				}
				if after != audits {
					t.Errorf("a refused caller left %d audit events", after-audits)
				}
			} else if after-audits != changes {
				t.Errorf("%d changes left %d audit events", changes, after-audits)
			}
		})
	}
	// Every admin.* audit event names an actor, the request and the caller's address.
	for _, ev := range a.auditOf("demo", "admin.") {
		if ev.Actor == "" || ev.RequestID == "" || ev.IP == "" || ev.Outcome != "ok" {
			t.Fatalf("audit event without actor, request ID or IP: %+v", ev)
		}
	}
}

// readOnlyPost says whether a write of the matrix leaves no audit event in demo: it changes
// nothing, or it changes another enterprise (mxe, audited there and in the operator's).
func readOnlyPost(path string) bool {
	return strings.Contains(path, "dry_run") || strings.HasSuffix(path, "/test") || strings.HasSuffix(path, "/refresh-metadata") ||
		path == "/enterprises" || strings.HasPrefix(path, "/enterprises/mxe")
}

// mxSPID is the path ID of the matrix's SAML service provider.
var mxSPID = base64.RawURLEncoding.EncodeToString([]byte("https://mxsp.test/md"))

// appFixture puts back the matrix's OIDC client mxc and service provider mxsp, and removes the
// ones the matrix creates.
func appFixture(t *testing.T, a *adminWorld) {
	t.Helper()
	ctx, st := a.ctx, a.gw.Store
	if err := st.PutClient(ctx, &directory.OIDCClient{EnterpriseID: "demo", ID: "mxc", Name: "mxc", Type: directory.ClientWeb, Secret: "mxc-secret-0123456789",
		AuthMethod: "client_secret_basic", RedirectURIs: []string{"https://mxc.example/cb"}, GrantTypes: []string{"authorization_code", "refresh_token"},
		AccessTokenFormat: "opaque", IDTokenAlg: "RS256"}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutServiceProvider(ctx, &directory.ServiceProvider{EnterpriseID: "demo", EntityID: "https://mxsp.test/md", Name: "mxsp",
		MetadataURL: "https://mxsp.test/md", NameIDFormat: "persistent", SignResponse: true, SignAssertion: true}); err != nil {
		t.Fatal(err)
	}
	_ = st.DeleteClient(ctx, "demo", "mxc2")
	_ = st.DeleteServiceProvider(ctx, "demo", "https://mxsp2.test/md")
}
