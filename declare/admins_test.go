package declare

import (
	"context"
	"testing"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/config"
)

// The file's admins are written file-managed; one the file drops loses its role; a grant made
// through the API is left alone unless the file names the same person.
func TestAdminsAreTheFiles(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	cfg := &config.Config{Enterprises: []config.Enterprise{{ID: "acme", Admins: []config.Admin{{User: "zhangsan", Role: "owner"}, {User: "lisi", Role: "auditor"}}}}}
	if _, err := Apply(ctx, st, cfg); err != nil {
		t.Fatal(err)
	}
	g, err := st.GetAdminGrant(ctx, "acme", "zhangsan")
	if err != nil || g.Role != directory.RoleOwner || g.Managed != directory.ManagedByConfig || g.GrantedBy != Actor {
		t.Fatalf("declared grant = %+v, %v", g, err)
	}
	if err := st.PutAdminGrant(ctx, &directory.AdminGrant{EnterpriseID: "acme", Username: "wangwu", Role: directory.RoleAdmin, GrantedBy: "user:zhangsan@acme"}); err != nil {
		t.Fatal(err)
	}
	// Applying the same file again changes nothing.
	res, err := Apply(ctx, st, cfg)
	if err != nil || len(res.Changes) != 0 {
		t.Fatalf("second apply: %+v, %v", res, err)
	}
	if again, _ := st.GetAdminGrant(ctx, "acme", "zhangsan"); !again.UpdatedAt.Equal(g.UpdatedAt) {
		t.Fatal("the second apply rewrote an unchanged grant")
	}
	cfg.Enterprises[0].Admins = []config.Admin{{User: "zhangsan", Role: "admin"}}
	res, err = Apply(ctx, st, cfg)
	if err != nil || len(res.Changes) != 1 {
		t.Fatalf("apply without lisi: %+v, %v", res, err)
	}
	list, _ := st.ListAdminGrants(ctx, "acme")
	if len(list) != 2 || list[0].Username != "wangwu" || list[0].Managed != "" || list[1].Username != "zhangsan" || list[1].Role != directory.RoleAdmin {
		t.Fatalf("grants after the file dropped lisi = %+v", list)
	}
}
