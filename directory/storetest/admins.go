package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/directory"
)

// testAdmins: role grants per enterprise (replace, list, delete, gone with the enterprise),
// operators, and single-use setup tokens that expire.
func testAdmins(t *testing.T, newStore NewStore) {
	s := newStore(t)
	seed(t, s, "acme")
	seed(t, s, "other")
	g := &directory.AdminGrant{EnterpriseID: "acme", Username: "zhangsan", Role: directory.RoleAdmin, Managed: directory.ManagedByConfig, GrantedBy: "config"}
	if err := s.PutAdminGrant(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAdminGrant(ctx, &directory.AdminGrant{EnterpriseID: "acme", Username: "lisi", Role: directory.RoleAuditor, GrantedBy: "user:zhangsan@acme"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAdminGrant(ctx, &directory.AdminGrant{EnterpriseID: "nope", Username: "x", Role: directory.RoleOwner}); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("grant in an unknown enterprise: %v", err)
	}
	got, err := s.GetAdminGrant(ctx, "acme", "zhangsan")
	if err != nil || got.Role != directory.RoleAdmin || got.Managed != directory.ManagedByConfig || got.GrantedBy != "config" || got.CreatedAt.IsZero() {
		t.Fatalf("get grant = %+v, %v", got, err)
	}
	created := got.CreatedAt
	// Replacing keeps the creation time and changes the role.
	if err := s.PutAdminGrant(ctx, &directory.AdminGrant{EnterpriseID: "acme", Username: "zhangsan", Role: directory.RoleOwner}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetAdminGrant(ctx, "acme", "zhangsan"); got.Role != directory.RoleOwner || got.Managed != "" || !got.CreatedAt.Equal(created) {
		t.Fatalf("replaced grant = %+v (created %v)", got, created)
	}
	if _, err := s.GetAdminGrant(ctx, "other", "zhangsan"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("a grant leaked to another enterprise: %v", err)
	}
	list, err := s.ListAdminGrants(ctx, "acme")
	if err != nil || len(list) != 2 || list[0].Username != "lisi" || list[1].Username != "zhangsan" {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if err := s.DeleteAdminGrant(ctx, "acme", "lisi"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAdminGrant(ctx, "acme", "lisi"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}

	if err := s.AddOperator(ctx, &directory.Operator{EnterpriseID: "acme", Username: "zhangsan", GrantedBy: "setup"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddOperator(ctx, &directory.Operator{EnterpriseID: "acme", Username: "zhangsan"}); !errors.Is(err, directory.ErrConflict) {
		t.Fatalf("operator twice: %v", err)
	}
	if o, err := s.GetOperator(ctx, "acme", "zhangsan"); err != nil || o.GrantedBy != "setup" {
		t.Fatalf("get operator = %+v, %v", o, err)
	}
	if _, err := s.GetOperator(ctx, "other", "zhangsan"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("operator of another enterprise: %v", err)
	}
	if ops, err := s.ListOperators(ctx); err != nil || len(ops) != 1 {
		t.Fatalf("operators = %+v, %v", ops, err)
	}

	// Grants and operators go with their enterprise.
	if err := s.PutAdminGrant(ctx, &directory.AdminGrant{EnterpriseID: "other", Username: "wangwu", Role: directory.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddOperator(ctx, &directory.Operator{EnterpriseID: "other", Username: "wangwu"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteEnterprise(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.ListAdminGrants(ctx, "other"); len(list) != 0 {
		t.Fatalf("grants outlived their enterprise: %+v", list)
	}
	if ops, _ := s.ListOperators(ctx); len(ops) != 1 {
		t.Fatalf("operators outlived their enterprise: %+v", ops)
	}
	if err := s.DeleteOperator(ctx, "acme", "zhangsan"); err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	if err := s.AddSetupToken(ctx, &directory.SetupToken{Hash: "h1", CreatedBy: "cli", ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddSetupToken(ctx, &directory.SetupToken{Hash: "h2", CreatedBy: "cli", ExpiresAt: now.Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeSetupToken(ctx, "h2", now); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("an expired token was taken: %v", err)
	}
	tok, err := s.TakeSetupToken(ctx, "h1", now)
	if err != nil || tok.CreatedBy != "cli" {
		t.Fatalf("take = %+v, %v", tok, err)
	}
	if _, err := s.TakeSetupToken(ctx, "h1", now); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("a setup token was taken twice: %v", err)
	}
}
