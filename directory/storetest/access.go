package storetest

import (
	"testing"

	"github.com/qiao-gateway/qiao/directory"
)

// plainStore hides a store's optional interfaces (directory.AccessReader): ActiveThrough then
// reads the user, the source and the links one by one.
type plainStore struct{ directory.Store }

// testActiveThrough checks directory.ActiveThrough both ways — in one query when the store is an
// AccessReader, and by its three reads — and that they agree at every step.
func testActiveThrough(t *testing.T, newStore NewStore) {
	s := newStore(t)
	if _, ok := s.(directory.AccessReader); !ok {
		t.Log("the store is not a directory.AccessReader: only the three-read path is checked")
	}
	seed(t, s, "acme")
	seed(t, s, "other")
	for _, src := range []*directory.IdentitySource{source("acme", "wecom", directory.KindWeCom, true), source("acme", "dingtalk", directory.KindDingTalk, true),
		source("other", "wecom", directory.KindWeCom, true)} {
		if err := s.PutSource(ctx, src); err != nil {
			t.Fatal(err)
		}
	}
	u := &directory.User{EnterpriseID: "acme", Username: "zhangsan", Name: "张三"}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := s.PutUserLink(ctx, &directory.UserLink{EnterpriseID: "acme", SourceID: "wecom", UpstreamID: "zs", UserID: u.ID}); err != nil {
		t.Fatal(err)
	}
	check := func(step, uid, src string, want bool) {
		t.Helper()
		for _, st := range []directory.Store{s, plainStore{s}} {
			got, err := directory.ActiveThrough(ctx, st, "acme", uid, src)
			if want && (err != nil || got == nil || got.ID != uid || got.Username != "zhangsan") {
				t.Fatalf("%s (%T): ActiveThrough = %+v, %v; want the user", step, st, got, err)
			}
			if !want && (err == nil || got != nil) {
				t.Fatalf("%s (%T): ActiveThrough = %+v, %v; want an error", step, st, got, err)
			}
		}
	}
	check("active, linked, source open", u.ID, "wecom", true)
	check("no source named", u.ID, "", true)
	check("a source that does not link them", u.ID, "dingtalk", false)
	check("an unknown source", u.ID, "nosuch", false)
	check("an unknown user", "nosuch", "wecom", false)
	if _, err := directory.ActiveThrough(ctx, s, "other", u.ID, "wecom"); err == nil {
		t.Fatal("another enterprise's ActiveThrough found the user")
	}
	src, _ := s.GetSource(ctx, "acme", "wecom")
	src.Enabled = false
	if err := s.PutSource(ctx, src); err != nil {
		t.Fatal(err)
	}
	check("source closed", u.ID, "wecom", false)
	src.Enabled = true
	if err := s.PutSource(ctx, src); err != nil {
		t.Fatal(err)
	}
	check("source open again", u.ID, "wecom", true)
	if err := s.DeleteUserLink(ctx, "acme", "wecom", "zs"); err != nil {
		t.Fatal(err)
	}
	check("link removed", u.ID, "wecom", false)
	if err := s.PutUserLink(ctx, &directory.UserLink{EnterpriseID: "acme", SourceID: "wecom", UpstreamID: "zs", UserID: u.ID}); err != nil {
		t.Fatal(err)
	}
	check("linked again", u.ID, "wecom", true)
	u.Status = directory.UserDisabled
	if err := s.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	check("user disabled", u.ID, "wecom", false)
	check("user disabled, no source named", u.ID, "", false)
}
