// Package storetest is the conformance suite every directory.Store passes, run unchanged against
// SQLite and PostgreSQL.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/qiao-gateway/qiao/directory"
)

// NewStore returns an empty, ready store for one test.
type NewStore func(t *testing.T) directory.Store

// Tests are the conformance tests, by name; Run runs them all as subtests.
var Tests = []struct {
	Name string
	Run  func(t *testing.T, newStore NewStore)
}{
	{"Enterprises", testEnterprises},
	{"SourcesRoundTripAndSecrets", testSourcesRoundTripAndSecrets},
	{"SecretsEncryptedAtRest", testSecretsEncryptedAtRest},
	{"SourceLimits", testSourceLimits},
	{"DepartmentsUsersLinks", testDepartmentsUsersLinks},
	{"BulkUsersAndLinks", testBulkUsersAndLinks},
	{"ListUsersPaging", testListUsersPaging},
	{"SearchUsers", testSearchUsers},
	{"Groups", testGroups},
	{"ActiveThrough", testActiveThrough},
	{"ClientsAndServiceProviders", testClientsAndServiceProviders},
	{"RefreshTokens", testRefreshTokens},
	{"SyncTasksAndRecords", testSyncTasksAndRecords},
	{"InterruptedTasks", testInterruptedTasks},
	{"Audit", testAudit},
	{"EventInbox", testEventInbox},
	{"AccessJobs", testAccessJobs},
	{"Admins", testAdmins},
	{"TransactionRollsBack", testTransactionRollsBack},
}

// Run runs the suite; newStore returns an empty, migrated store for each subtest.
func Run(t *testing.T, newStore func(t *testing.T) directory.Store) {
	for _, tc := range Tests {
		t.Run(tc.Name, func(t *testing.T) { tc.Run(t, newStore) })
	}
}

var ctx = context.Background()

// ---- helpers shared by the tests

func seed(t *testing.T, s directory.Store, ent string) {
	t.Helper()
	if err := s.PutEnterprise(ctx, &directory.Enterprise{ID: ent, Name: "Acme " + ent}); err != nil {
		t.Fatal(err)
	}
}

func source(ent, id string, kind directory.SourceKind, enabled bool) *directory.IdentitySource {
	return &directory.IdentitySource{EnterpriseID: ent, ID: id, Kind: kind, Name: "源-" + id, Description: "Log on with " + id,
		Enabled: enabled, Sync: directory.DefaultSyncSettings(), Config: map[string]string{"corp_id": "ww" + id}}
}

func testEnterprises(t *testing.T, newStore NewStore) {
	s := newStore(t)
	if _, err := s.GetEnterprise(ctx, "nope"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("missing enterprise: %v", err)
	}
	seed(t, s, "acme")
	seed(t, s, "beta")
	e, err := s.GetEnterprise(ctx, "acme")
	if err != nil || e.Name != "Acme acme" || e.CreatedAt.IsZero() {
		t.Fatalf("GetEnterprise = %+v, %v", e, err)
	}
	created := e.CreatedAt
	if err := s.PutEnterprise(ctx, &directory.Enterprise{ID: "acme", Name: "Renamed"}); err != nil {
		t.Fatal(err)
	}
	e, _ = s.GetEnterprise(ctx, "acme")
	if e.Name != "Renamed" || !e.CreatedAt.Equal(created) {
		t.Fatalf("upsert changed creation time or kept name: %+v", e)
	}
	list, err := s.ListEnterprises(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "acme" || list[1].ID != "beta" {
		t.Fatalf("ListEnterprises = %v, %v", list, err)
	}
	if err := s.PutEnterprise(ctx, &directory.Enterprise{ID: "Bad ID!"}); err == nil {
		t.Fatal("invalid enterprise ID accepted")
	}
	if err := s.DeleteEnterprise(ctx, "beta"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteEnterprise(ctx, "beta"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func testSourcesRoundTripAndSecrets(t *testing.T, newStore NewStore) {
	s := newStore(t)
	seed(t, s, "acme")
	src := source("acme", "wecom", directory.KindWeCom, true)
	src.Secrets = map[string]string{"secret": "app-secret-value", "aes_key": "abc"}
	src.Sync.ScopeAll = false
	src.Sync.ScopeDeptIDs = []string{"2", "7"}
	src.Sync.FieldMappings = []directory.FieldMapping{{Upstream: "position", Local: "ext.title"}}
	if err := s.PutSource(ctx, src); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSource(ctx, "acme", "wecom")
	if err != nil {
		t.Fatal(err)
	}
	if got.Secrets["secret"] != "app-secret-value" || got.Config["corp_id"] != "wwwecom" || got.Kind != directory.KindWeCom ||
		!got.Enabled || got.Sync.ScopeAll || len(got.Sync.ScopeDeptIDs) != 2 || got.Sync.FieldMappings[0].Local != "ext.title" ||
		got.Name != "源-wecom" {
		t.Fatalf("round trip lost data: %+v", got)
	}
	if !directory.IsAuthoritative(got) || got.Authoritative != nil || got.Managed != "" {
		t.Fatalf("a new WeCom source: authoritative %v (%v), managed %q", directory.IsAuthoritative(got), got.Authoritative, got.Managed)
	}
	no := false
	got.Authoritative, got.Managed = &no, directory.ManagedByConfig
	if err := s.PutSource(ctx, got); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.GetSource(ctx, "acme", "wecom"); again.Authoritative == nil || *again.Authoritative || again.Managed != directory.ManagedByConfig {
		t.Fatalf("authoritative/managed lost: %+v", again)
	}
	if err := s.PutSource(ctx, source("nope", "x", directory.KindWeCom, true)); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("source of a missing enterprise: %v", err)
	}
	bad := source("acme", "bad", directory.KindWeCom, true)
	bad.Sync.CycleHours = 25
	var fe *directory.FieldError
	if err := s.PutSource(ctx, bad); !errors.As(err, &fe) || fe.Field != "sync.cycle_hours" {
		t.Fatalf("cycle 25h: %v", err)
	}
	bad = source("acme", "bad", directory.KindWeCom, true)
	bad.Name = "x"
	if err := s.PutSource(ctx, bad); !errors.As(err, &fe) || fe.Field != "name" {
		t.Fatalf("1-char name: %v", err)
	}
	if _, err := s.GetSource(ctx, "acme", "bad"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("invalid source was stored: %v", err)
	}
}

func testSecretsEncryptedAtRest(t *testing.T, newStore NewStore) {
	s := newStore(t)
	raw, ok := s.(interface {
		RawRows(ctx context.Context, table string) ([]string, error)
	})
	if !ok {
		t.Skip("store does not expose raw rows")
	}
	seed(t, s, "acme")
	src := source("acme", "wecom", directory.KindWeCom, true)
	src.Secrets = map[string]string{"secret": "TOPSECRET-SOURCE"}
	if err := s.PutSource(ctx, src); err != nil {
		t.Fatal(err)
	}
	if err := s.PutClient(ctx, &directory.OIDCClient{EnterpriseID: "acme", ID: "web", Type: directory.ClientWeb, Secret: "TOPSECRET-CLIENT"}); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"identity_sources", "oidc_clients"} {
		rows, err := raw.RawRows(ctx, table)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if contains(r, "TOPSECRET") {
				t.Fatalf("plaintext secret stored in %s: %s", table, r)
			}
		}
	}
}

func testSourceLimits(t *testing.T, newStore NewStore) {
	s := newStore(t)
	seed(t, s, "acme")
	for i := 0; i < directory.MaxEnabledSources; i++ {
		kind := directory.KindWeCom
		if i == 0 {
			kind = directory.KindLocal
		}
		if err := s.PutSource(ctx, source("acme", fmt.Sprintf("s%d", i), kind, true)); err != nil {
			t.Fatalf("source %d: %v", i, err)
		}
	}
	if err := s.PutSource(ctx, source("acme", "sixth", directory.KindDingTalk, true)); !errors.Is(err, directory.ErrLimit) {
		t.Fatalf("sixth enabled source: %v", err)
	}
	// A closed source does not count, and re-saving an enabled one is not a new one.
	if err := s.PutSource(ctx, source("acme", "sixth", directory.KindDingTalk, false)); err != nil {
		t.Fatalf("closed sixth source: %v", err)
	}
	if err := s.PutSource(ctx, source("acme", "s3", directory.KindWeCom, true)); err != nil {
		t.Fatalf("re-saving an enabled source: %v", err)
	}
	if err := s.PutSource(ctx, source("acme", "s3", directory.KindWeCom, false)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSource(ctx, source("acme", "local2", directory.KindLocal, true)); !errors.Is(err, directory.ErrLimit) {
		t.Fatalf("second enabled custom directory: %v", err)
	}
	list, err := s.ListSources(ctx, "acme")
	if err != nil || len(list) != 6 {
		t.Fatalf("ListSources = %d, %v", len(list), err)
	}
	if err := s.DeleteSource(ctx, "acme", "sixth"); err != nil {
		t.Fatal(err)
	}
}

func testDepartmentsUsersLinks(t *testing.T, newStore NewStore) {
	s := newStore(t)
	seed(t, s, "acme")
	if err := s.PutSource(ctx, source("acme", "wecom", directory.KindWeCom, true)); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*directory.Department{
		{EnterpriseID: "acme", SourceID: "wecom", UpstreamID: "1", Name: "Acme"},
		{EnterpriseID: "acme", SourceID: "wecom", UpstreamID: "2", ParentID: "1", Name: "研发部", Order: 5, Extra: json.RawMessage(`{"name_en":"R&D"}`)},
	} {
		if err := s.PutDepartment(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	d, err := s.GetDepartment(ctx, "acme", "wecom", "2")
	if err != nil || d.Name != "研发部" || d.ParentID != "1" || d.Order != 5 || string(d.Extra) != `{"name_en":"R&D"}` {
		t.Fatalf("department = %+v, %v", d, err)
	}
	u := &directory.User{EnterpriseID: "acme", Username: "zhangsan", Name: "张三", Email: "zs@acme.cn", Mobile: "13800000000",
		Attributes: map[string]string{"title": "工程师"}}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if u.ID == "" || u.Status != directory.UserActive {
		t.Fatalf("CreateUser gave no ID or status: %+v", u)
	}
	if err := s.CreateUser(ctx, &directory.User{EnterpriseID: "acme", Username: "zhangsan"}); !errors.Is(err, directory.ErrConflict) {
		t.Fatalf("duplicate username: %v", err)
	}
	got, err := s.GetUserByUsername(ctx, "acme", "zhangsan")
	if err != nil || got.ID != u.ID || got.Attributes["title"] != "工程师" {
		t.Fatalf("GetUserByUsername = %+v, %v", got, err)
	}
	found, err := s.FindUsers(ctx, "acme", "email", "zs@acme.cn")
	if err != nil || len(found) != 1 {
		t.Fatalf("FindUsers = %v, %v", found, err)
	}
	if _, err := s.FindUsers(ctx, "acme", "password_hash", "x"); err == nil {
		t.Fatal("FindUsers on an arbitrary column accepted")
	}
	got.Status = directory.UserDeparted
	got.Name = "张三丰"
	if err := s.UpdateUser(ctx, got); err != nil {
		t.Fatal(err)
	}
	again, _ := s.GetUser(ctx, "acme", u.ID)
	if again.Status != directory.UserDeparted || again.Name != "张三丰" || again.ID != u.ID {
		t.Fatalf("update lost: %+v", again)
	}
	again.Status = "weird"
	if err := s.UpdateUser(ctx, again); err == nil {
		t.Fatal("unknown status accepted")
	}
	if err := s.UpdateUser(ctx, &directory.User{EnterpriseID: "acme", ID: "nope", Status: directory.UserActive}); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("update of a missing user: %v", err)
	}
	link := &directory.UserLink{EnterpriseID: "acme", SourceID: "wecom", UpstreamID: "ZhangSan", UserID: u.ID,
		Departments: []string{"1", "2"}, Upstream: json.RawMessage(`{"userid":"ZhangSan"}`)}
	if err := s.PutUserLink(ctx, link); err != nil {
		t.Fatal(err)
	}
	l, err := s.GetUserLink(ctx, "acme", "wecom", "ZhangSan")
	if err != nil || l.UserID != u.ID || len(l.Departments) != 2 {
		t.Fatalf("link = %+v, %v", l, err)
	}
	if ls, _ := s.LinksOfUser(ctx, "acme", u.ID); len(ls) != 1 {
		t.Fatalf("LinksOfUser = %d", len(ls))
	}
	lus, err := s.SourceUsers(ctx, "acme", "wecom")
	if err != nil || len(lus) != 1 || lus[0].User.Name != "张三丰" || lus[0].Link.UpstreamID != "ZhangSan" || lus[0].User.Attributes["title"] != "工程师" {
		t.Fatalf("SourceUsers = %+v, %v", lus, err)
	}
	// One user has at most one link per source.
	if err := s.PutUserLink(ctx, &directory.UserLink{EnterpriseID: "acme", SourceID: "wecom", UpstreamID: "other", UserID: u.ID}); !errors.Is(err, directory.ErrConflict) {
		t.Fatalf("second link of one user to one source: %v", err)
	}
	if err := s.PutUserLink(ctx, &directory.UserLink{EnterpriseID: "acme", SourceID: "wecom", UpstreamID: "ghost", UserID: "no-such-user"}); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("link to a missing user: %v", err)
	}
	// Deleting the source removes its departments and links but not the user.
	if err := s.DeleteSource(ctx, "acme", "wecom"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUserLink(ctx, "acme", "wecom", "ZhangSan"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("link survived its source: %v", err)
	}
	if ds, _ := s.ListDepartments(ctx, "acme", "wecom"); len(ds) != 0 {
		t.Fatalf("departments survived their source: %d", len(ds))
	}
	if _, err := s.GetUser(ctx, "acme", u.ID); err != nil {
		t.Fatalf("user deleted with the source: %v", err)
	}
}

func testListUsersPaging(t *testing.T, newStore NewStore) {
	s := newStore(t)
	seed(t, s, "acme")
	seed(t, s, "other")
	for i := 0; i < 25; i++ {
		if err := s.CreateUser(ctx, &directory.User{EnterpriseID: "acme", Username: fmt.Sprintf("u%02d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateUser(ctx, &directory.User{EnterpriseID: "other", Username: "u00"}); err != nil {
		t.Fatalf("same username in another enterprise: %v", err)
	}
	seen := map[string]bool{}
	after := ""
	for {
		page, err := s.ListUsers(ctx, "acme", after, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, u := range page {
			if seen[u.ID] {
				t.Fatalf("user %s listed twice", u.ID)
			}
			seen[u.ID] = true
		}
		after = page[len(page)-1].ID
	}
	if len(seen) != 25 {
		t.Fatalf("paged %d users, want 25", len(seen))
	}
}

func testGroups(t *testing.T, newStore NewStore) {
	s := newStore(t)
	seed(t, s, "acme")
	a := &directory.User{EnterpriseID: "acme", Username: "a"}
	b := &directory.User{EnterpriseID: "acme", Username: "b"}
	for _, u := range []*directory.User{a, b} {
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutGroup(ctx, &directory.Group{EnterpriseID: "acme", ID: "vpn", Name: "VPN users", Members: []string{a.ID, b.ID, a.ID}}); err != nil {
		t.Fatal(err)
	}
	g, err := s.GetGroup(ctx, "acme", "vpn")
	if err != nil || len(g.Members) != 2 {
		t.Fatalf("group = %+v, %v", g, err)
	}
	if err := s.PutGroup(ctx, &directory.Group{EnterpriseID: "acme", ID: "vpn", Name: "VPN", Members: []string{b.ID}}); err != nil {
		t.Fatal(err)
	}
	if gs, _ := s.GroupsOfUser(ctx, "acme", a.ID); len(gs) != 0 {
		t.Fatalf("a still in %d groups", len(gs))
	}
	if gs, _ := s.GroupsOfUser(ctx, "acme", b.ID); len(gs) != 1 || gs[0].Name != "VPN" {
		t.Fatalf("GroupsOfUser(b) = %v", gs)
	}
	if err := s.PutGroup(ctx, &directory.Group{EnterpriseID: "acme", ID: "bad", Members: []string{"ghost"}}); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("group with a missing member: %v", err)
	}
	if _, err := s.GetGroup(ctx, "acme", "bad"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("failed group write was half-applied: %v", err)
	}
	if err := s.DeleteUser(ctx, "acme", b.ID); err != nil {
		t.Fatal(err)
	}
	if g, _ := s.GetGroup(ctx, "acme", "vpn"); len(g.Members) != 0 {
		t.Fatalf("deleted user still a member: %v", g.Members)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
