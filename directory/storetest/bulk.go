package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/qiao-gateway/qiao/directory"
)

// testBulkUsersAndLinks: a store that writes people and links many to a statement stores exactly
// what CreateUser and PutUserLink would, across several statements, updates a link that exists,
// and refuses what they refuse (a taken username) inside a transaction that then rolls back.
func testBulkUsersAndLinks(t *testing.T, newStore NewStore) {
	s := newStore(t)
	bulk, ok := s.(directory.BulkUserWriter)
	if !ok {
		t.Skip("the store has no bulk writes (directory.BulkUserWriter is optional)")
	}
	seed(t, s, "acme")
	if err := s.PutSource(ctx, source("acme", "wecom", directory.KindWeCom, true)); err != nil {
		t.Fatal(err)
	}
	const n = 1203 // three statements
	users := make([]*directory.User, n)
	for i := range users {
		users[i] = &directory.User{EnterpriseID: "acme", Username: fmt.Sprintf("u%04d", i), Name: fmt.Sprintf("用户%d", i),
			Email: fmt.Sprintf("u%d@acme.cn", i), Mobile: fmt.Sprintf("138%08d", i), Attributes: map[string]string{"ext.no": fmt.Sprint(i)}}
	}
	users[7].Status = directory.UserDisabled
	if err := bulk.CreateUsers(ctx, users); err != nil {
		t.Fatal(err)
	}
	links := make([]*directory.UserLink, n)
	for i, u := range users {
		if u.ID == "" || u.UpdatedAt.IsZero() || u.CreatedAt != u.UpdatedAt {
			t.Fatalf("user %d: ID %q, times %v %v", i, u.ID, u.CreatedAt, u.UpdatedAt)
		}
		links[i] = &directory.UserLink{EnterpriseID: "acme", SourceID: "wecom", UpstreamID: fmt.Sprintf("up%d", i), UserID: u.ID,
			Departments: []string{"1"}, Upstream: json.RawMessage(fmt.Sprintf(`{"userid":"up%d"}`, i)), SyncHash: fmt.Sprintf("h%d", i)}
	}
	if err := s.PutUserLink(ctx, &directory.UserLink{EnterpriseID: "acme", SourceID: "wecom", UpstreamID: "up5", UserID: users[5].ID}); err != nil {
		t.Fatal(err)
	}
	if err := bulk.PutUserLinks(ctx, links); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 5, 7, 499, 500, 1202} {
		u, err := s.GetUser(ctx, "acme", users[i].ID)
		if err != nil || u.Username != users[i].Username || u.Name != users[i].Name || u.Mobile != users[i].Mobile ||
			u.Attributes["ext.no"] != fmt.Sprint(i) || u.UpdatedAt.UnixMilli() != users[i].UpdatedAt.UnixMilli() {
			t.Fatalf("user %d = %+v, %v; want %+v", i, u, err, users[i])
		}
		l, err := s.GetUserLink(ctx, "acme", "wecom", fmt.Sprintf("up%d", i))
		if err != nil || l.UserID != users[i].ID || l.SyncHash != fmt.Sprintf("h%d", i) || string(l.Upstream) != fmt.Sprintf(`{"userid":"up%d"}`, i) || len(l.Departments) != 1 {
			t.Fatalf("link %d = %+v, %v", i, l, err)
		}
	}
	if u, _ := s.GetUser(ctx, "acme", users[7].ID); u.Status != directory.UserDisabled {
		t.Fatalf("status = %s", u.Status)
	}
	if lus, err := s.SourceUsers(ctx, "acme", "wecom"); err != nil || len(lus) != n {
		t.Fatalf("SourceUsers = %d, %v", len(lus), err)
	}

	// A taken username is refused as CreateUser refuses it, and the transaction rolls back.
	err := s.InTx(ctx, func(tx directory.Store) error {
		return tx.(directory.BulkUserWriter).CreateUsers(ctx, []*directory.User{
			{EnterpriseID: "acme", Username: "fresh"}, {EnterpriseID: "acme", Username: "u0003"}})
	})
	if !errors.Is(err, directory.ErrConflict) {
		t.Fatalf("a taken username: %v", err)
	}
	if _, err := s.GetUserByUsername(ctx, "acme", "fresh"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("the rolled-back batch left a user: %v", err)
	}
	if err := bulk.CreateUsers(ctx, []*directory.User{{EnterpriseID: "acme"}}); err == nil {
		t.Fatal("a user without a username was accepted")
	}
}
