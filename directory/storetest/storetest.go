// Package storetest is the conformance suite every directory.Store passes, run unchanged against
// SQLite and PostgreSQL.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	{"ListUsersPaging", testListUsersPaging},
	{"Groups", testGroups},
	{"ClientsAndServiceProviders", testClientsAndServiceProviders},
	{"RefreshTokens", testRefreshTokens},
	{"SyncTasksAndRecords", testSyncTasksAndRecords},
	{"Audit", testAudit},
	{"EventInbox", testEventInbox},
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

func testClientsAndServiceProviders(t *testing.T, newStore NewStore) {
	s := newStore(t)
	seed(t, s, "acme")
	c := &directory.OIDCClient{EnterpriseID: "acme", ID: "sase-client", Name: "SASE", Type: directory.ClientNative, AuthMethod: "none",
		RedirectURIs: []string{"http://127.0.0.1/callback"}, GrantTypes: []string{"authorization_code", "refresh_token"}, IDTokenAlg: "ES256"}
	if err := s.PutClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetClient(ctx, "acme", "sase-client")
	if err != nil || got.Type != directory.ClientNative || got.RedirectURIs[0] != "http://127.0.0.1/callback" || got.IDTokenAlg != "ES256" || got.Secret != "" {
		t.Fatalf("client = %+v, %v", got, err)
	}
	if err := s.PutClient(ctx, &directory.OIDCClient{EnterpriseID: "acme", ID: "x", Type: "weird"}); err == nil {
		t.Fatal("unknown client type accepted")
	}
	sp := &directory.ServiceProvider{EnterpriseID: "acme", EntityID: "https://sp.example.com/metadata", Name: "SP",
		MetadataXML: "<EntityDescriptor/>", NameIDFormat: "persistent", Attributes: map[string]string{"mail": "email"}, SignAssertion: true}
	if err := s.PutServiceProvider(ctx, sp); err != nil {
		t.Fatal(err)
	}
	gsp, err := s.GetServiceProvider(ctx, "acme", sp.EntityID)
	if err != nil || gsp.Attributes["mail"] != "email" || !gsp.SignAssertion || gsp.SignResponse {
		t.Fatalf("sp = %+v, %v", gsp, err)
	}
	if l, _ := s.ListServiceProviders(ctx, "acme"); len(l) != 1 {
		t.Fatalf("ListServiceProviders = %d", len(l))
	}
	if l, _ := s.ListClients(ctx, "acme"); len(l) != 1 {
		t.Fatalf("ListClients = %d", len(l))
	}
	if err := s.DeleteServiceProvider(ctx, "acme", sp.EntityID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteClient(ctx, "acme", "sase-client"); err != nil {
		t.Fatal(err)
	}
}

func testRefreshTokens(t *testing.T, newStore NewStore) {
	s := newStore(t)
	seed(t, s, "acme")
	now := time.Now()
	mk := func(id, fam, user string, exp time.Time) *directory.RefreshToken {
		return &directory.RefreshToken{ID: id, FamilyID: fam, EnterpriseID: "acme", ClientID: "c", UserID: user,
			Scopes: []string{"openid", "offline_access"}, AMR: []string{"wecom_qr"}, AuthTime: now, ExpiresAt: exp, SourceID: "wecom", SessionID: "sid-" + id}
	}
	for _, tok := range []*directory.RefreshToken{
		mk("t1", "f1", "u1", now.Add(time.Hour)), mk("t2", "f1", "u1", now.Add(time.Hour)),
		mk("t3", "f2", "u2", now.Add(time.Hour)), mk("old", "f3", "u3", now.Add(-time.Hour)),
	} {
		if err := s.CreateRefreshToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetRefreshToken(ctx, "t1")
	if err != nil || got.Scopes[1] != "offline_access" || got.AMR[0] != "wecom_qr" || !got.RotatedAt.IsZero() ||
		got.SourceID != "wecom" || got.SessionID != "sid-t1" {
		t.Fatalf("token = %+v, %v", got, err)
	}
	// Concurrent rotation: exactly one wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.RotateRefreshToken(ctx, "t1", time.Now())
			if err == nil {
				wins.Add(1)
			} else if !errors.Is(err, directory.ErrConflict) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d rotations of one token succeeded", wins.Load())
	}
	if err := s.RotateRefreshToken(ctx, "missing", now); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("rotating a missing token: %v", err)
	}
	if n, err := s.RevokeRefreshFamily(ctx, "f1", now); err != nil || n != 2 {
		t.Fatalf("RevokeRefreshFamily = %d, %v", n, err)
	}
	if err := s.RotateRefreshToken(ctx, "t2", now); !errors.Is(err, directory.ErrConflict) {
		t.Fatalf("rotating a revoked token: %v", err)
	}
	if cs, err := s.RefreshTokenClients(ctx, "acme", "u2", now); err != nil || len(cs) != 1 || cs[0] != "c" {
		t.Fatalf("RefreshTokenClients = %v, %v", cs, err)
	}
	if cs, _ := s.RefreshTokenClients(ctx, "acme", "u3", now); len(cs) != 0 {
		t.Fatalf("an expired token's client is listed: %v", cs)
	}
	if n, err := s.RevokeUserRefreshTokens(ctx, "acme", "u2", now); err != nil || n != 1 {
		t.Fatalf("RevokeUserRefreshTokens = %d, %v", n, err)
	}
	if cs, _ := s.RefreshTokenClients(ctx, "acme", "u2", now); len(cs) != 0 {
		t.Fatalf("a revoked token's client is listed: %v", cs)
	}
	if n, err := s.DeleteExpiredRefreshTokens(ctx, now); err != nil || n != 1 {
		t.Fatalf("DeleteExpiredRefreshTokens = %d, %v", n, err)
	}
}

func testSyncTasksAndRecords(t *testing.T, newStore NewStore) {
	s := newStore(t)
	seed(t, s, "acme")
	task := &directory.SyncTask{EnterpriseID: "acme", SourceID: "wecom", Trigger: directory.TriggerManual}
	if err := s.CreateSyncTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	var recs []*directory.SyncRecord
	for i := 0; i < 250; i++ {
		action := "create"
		if i%5 == 0 {
			action = "update"
		}
		recs = append(recs, &directory.SyncRecord{TaskID: task.ID, ObjectType: "user", UpstreamID: fmt.Sprintf("user%03d", i), Action: action,
			Upstream: json.RawMessage(`{"userid":"x"}`), LocalAfter: json.RawMessage(`{"name":"y"}`)})
	}
	if err := s.AddSyncRecords(ctx, recs); err != nil {
		t.Fatal(err)
	}
	task.Status, task.Counts, task.ReadMode = directory.TaskSucceeded, map[string]int{"create": 200, "update": 50}, "list_id+get"
	if err := s.FinishSyncTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSyncTask(ctx, task.ID)
	if err != nil || got.Status != directory.TaskSucceeded || got.Counts["create"] != 200 || got.FinishedAt.IsZero() || got.ReadMode != "list_id+get" {
		t.Fatalf("task = %+v, %v", got, err)
	}
	all, after := 0, int64(0)
	for {
		page, err := s.ListSyncRecords(ctx, directory.RecordQuery{TaskID: task.ID, AfterID: after, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all += len(page)
		after = page[len(page)-1].ID
	}
	if all != 250 {
		t.Fatalf("paged %d records, want 250", all)
	}
	upd, _ := s.ListSyncRecords(ctx, directory.RecordQuery{TaskID: task.ID, Action: "update"})
	if len(upd) != 50 {
		t.Fatalf("update records = %d", len(upd))
	}
	one, _ := s.ListSyncRecords(ctx, directory.RecordQuery{TaskID: task.ID, UpstreamID: "user007"})
	if len(one) != 1 || string(one[0].Upstream) != `{"userid":"x"}` || one[0].LocalBefore != nil {
		t.Fatalf("record of one object = %+v", one)
	}
	if ts, _ := s.ListSyncTasks(ctx, "acme", "wecom", 10); len(ts) != 1 {
		t.Fatalf("ListSyncTasks = %d", len(ts))
	}
	if n, err := s.DeleteSyncTasksBefore(ctx, time.Now().Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("DeleteSyncTasksBefore = %d, %v", n, err)
	}
	if left, _ := s.ListSyncRecords(ctx, directory.RecordQuery{TaskID: task.ID}); len(left) != 0 {
		t.Fatalf("%d records outlived their task", len(left))
	}
}

func testAudit(t *testing.T, newStore NewStore) {
	s := newStore(t)
	for i, kind := range []string{"login.success", "login.failure", "source.update", "login.success"} {
		if err := s.AddAuditEvent(ctx, &directory.AuditEvent{EnterpriseID: "acme", Kind: kind, UserID: fmt.Sprintf("u%d", i%2), IP: "10.0.0.1",
			Outcome: "ok", Detail: json.RawMessage(`{"i":1}`)}); err != nil {
			t.Fatal(err)
		}
	}
	all, _ := s.ListAuditEvents(ctx, directory.AuditQuery{EnterpriseID: "acme"})
	if len(all) != 4 || all[0].ID < all[3].ID {
		t.Fatalf("audit = %d events, want 4 newest first", len(all))
	}
	logins, _ := s.ListAuditEvents(ctx, directory.AuditQuery{EnterpriseID: "acme", Kind: "login."})
	if len(logins) != 3 {
		t.Fatalf("login.* = %d", len(logins))
	}
	ok, _ := s.ListAuditEvents(ctx, directory.AuditQuery{EnterpriseID: "acme", Kind: "login.success", UserID: "u0"})
	if len(ok) != 1 {
		t.Fatalf("login.success of u0 = %d", len(ok))
	}
	page, _ := s.ListAuditEvents(ctx, directory.AuditQuery{EnterpriseID: "acme", BeforeID: all[1].ID})
	if len(page) != 2 {
		t.Fatalf("page before %d = %d", all[1].ID, len(page))
	}
}

func testEventInbox(t *testing.T, newStore NewStore) {
	s := newStore(t)
	for i, key := range []string{"k1", "k2", "k1", "k3"} {
		added, err := s.AddSourceEvent(ctx, &directory.SourceEvent{EnterpriseID: "acme", SourceID: "wecom", DedupeKey: key,
			EventType: "delete_user", Payload: json.RawMessage(`{"UserID":"u` + key + `"}`)})
		if err != nil {
			t.Fatal(err)
		}
		if added != (i != 2) {
			t.Fatalf("event %d (%s): added = %v", i, key, added)
		}
	}
	now := time.Now()
	// Two replicas claim at once: every event goes to exactly one.
	var mu sync.Mutex
	got := map[int64]int{}
	var wg sync.WaitGroup
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			evs, err := s.ClaimSourceEvents(ctx, now, now.Add(time.Minute), 10)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			for _, e := range evs {
				got[e.ID]++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(got) != 3 {
		t.Fatalf("claimed %d distinct events, want 3", len(got))
	}
	for id, n := range got {
		if n != 1 {
			t.Fatalf("event %d claimed %d times", id, n)
		}
	}
	if again, _ := s.ClaimSourceEvents(ctx, now, now.Add(time.Minute), 10); len(again) != 0 {
		t.Fatalf("claimed events claimed again before their claim expired: %d", len(again))
	}
	// An expired claim (a replica died) is claimed again.
	later := now.Add(2 * time.Minute)
	evs, _ := s.ClaimSourceEvents(ctx, later, later.Add(time.Minute), 10)
	if len(evs) != 3 || evs[0].Attempts != 2 || evs[0].DedupeKey != "k1" {
		t.Fatalf("reclaim = %d events, attempts %d", len(evs), evs[0].Attempts)
	}
	evs[0].Status, evs[0].TaskID = directory.EventApplied, "task-1"
	if err := s.FinishSourceEvent(ctx, evs[0]); err != nil {
		t.Fatal(err)
	}
	list, _ := s.ListSourceEvents(ctx, "acme", "wecom", 10)
	if len(list) != 3 || list[2].Status != directory.EventApplied || list[2].TaskID != "task-1" || string(list[2].Payload) != `{"UserID":"uk1"}` {
		t.Fatalf("events = %+v", list)
	}
	much := later.Add(time.Hour)
	if left, _ := s.ClaimSourceEvents(ctx, much, much.Add(time.Minute), 10); len(left) != 2 {
		t.Fatalf("an applied event is claimable: %d", len(left))
	}
}

func testTransactionRollsBack(t *testing.T, newStore NewStore) {
	s := newStore(t)
	seed(t, s, "acme")
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx directory.Store) error {
		if err := tx.CreateUser(ctx, &directory.User{EnterpriseID: "acme", Username: "ghost"}); err != nil {
			return err
		}
		if _, err := tx.GetUserByUsername(ctx, "acme", "ghost"); err != nil {
			return fmt.Errorf("read own write in tx: %w", err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v", err)
	}
	if _, err := s.GetUserByUsername(ctx, "acme", "ghost"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("rolled-back user visible: %v", err)
	}
	err = s.InTx(ctx, func(tx directory.Store) error {
		return tx.CreateUser(ctx, &directory.User{EnterpriseID: "acme", Username: "kept"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUserByUsername(ctx, "acme", "kept"); err != nil {
		t.Fatalf("committed user missing: %v", err)
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
