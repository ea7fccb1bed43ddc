package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/qiao-gateway/qiao/directory"
)

// testSearchUsers: the people search by name, username or email prefix and whole mobile number,
// with the source, department and status filters and paging by username; hostile text is only
// ever a value.
func testSearchUsers(t *testing.T, newStore NewStore) {
	s := newStore(t)
	seed(t, s, "acme")
	seed(t, s, "other")
	for _, id := range []string{"wecom", "dingtalk"} {
		if err := s.PutSource(ctx, source("acme", id, directory.SourceKind(id), true)); err != nil {
			t.Fatal(err)
		}
	}
	people := []struct {
		username, name, email, mobile string
		status                        directory.UserStatus
		src                           string
		depts                         []string
	}{
		{"zhangsan", "张三", "zhangsan@acme.example", "13800000001", directory.UserActive, "wecom", []string{"2", "3"}},
		{"zhangsanfeng", "张三丰", "feng@acme.example", "13800000002", directory.UserDisabled, "wecom", []string{"3"}},
		{"lisi", "李四", "li.si@acme.example", "13900000003", directory.UserActive, "dingtalk", []string{"2"}},
		{"wangwu", "王五", "wangwu@acme.example", "+86 13700000004", directory.UserActive, "", nil},
		{"zhang-a", "Anna Zhang", "anna@acme.example", "", directory.UserActive, "wecom", []string{"4"}},
	}
	// wecom's tree: 1 ⊃ 2 ⊃ 3 ⊃ 4, and a cycle 8 ⇄ 9 (the platform should never send one; the
	// search must still end).
	for _, d := range [][2]string{{"1", ""}, {"2", "1"}, {"3", "2"}, {"4", "3"}, {"8", "9"}, {"9", "8"}} {
		if err := s.PutDepartment(ctx, &directory.Department{EnterpriseID: "acme", SourceID: "wecom", UpstreamID: d[0], ParentID: d[1], Name: "部门" + d[0]}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range people {
		u := &directory.User{EnterpriseID: "acme", Username: p.username, Name: p.name, Email: p.email, Mobile: p.mobile, Status: p.status}
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		if p.src != "" {
			if err := s.PutUserLink(ctx, &directory.UserLink{EnterpriseID: "acme", SourceID: p.src, UpstreamID: p.username, UserID: u.ID, Departments: p.depts}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Another enterprise's 张三 is never found.
	if err := s.CreateUser(ctx, &directory.User{EnterpriseID: "other", Username: "zhangsan", Name: "张三", Mobile: "13800000001"}); err != nil {
		t.Fatal(err)
	}
	search := func(q directory.UserSearch) []string {
		t.Helper()
		q.EnterpriseID = "acme"
		us, err := s.SearchUsers(ctx, q)
		if err != nil {
			t.Fatalf("SearchUsers(%+v): %v", q, err)
		}
		names := []string{}
		for _, u := range us {
			if u.EnterpriseID != "acme" {
				t.Fatalf("SearchUsers(%+v) returned %s of %s", q, u.Username, u.EnterpriseID)
			}
			names = append(names, u.Username)
		}
		return names
	}
	for _, c := range []struct {
		q    directory.UserSearch
		want []string
	}{
		{directory.UserSearch{}, []string{"lisi", "wangwu", "zhang-a", "zhangsan", "zhangsanfeng"}},
		{directory.UserSearch{Text: "张"}, []string{"zhangsan", "zhangsanfeng"}},                // name prefix
		{directory.UserSearch{Text: "张三丰"}, []string{"zhangsanfeng"}},                          // whole name
		{directory.UserSearch{Text: "三"}, []string{}},                                          // not a prefix
		{directory.UserSearch{Text: "zhang"}, []string{"zhang-a", "zhangsan", "zhangsanfeng"}}, // username (and email) prefix
		{directory.UserSearch{Text: "li.si@"}, []string{"lisi"}},                               // email prefix
		{directory.UserSearch{Text: "13800000002"}, []string{"zhangsanfeng"}},                  // mobile
		{directory.UserSearch{Text: "+86 13700000004"}, []string{"wangwu"}},
		{directory.UserSearch{Text: "1380000000"}, []string{}}, // a mobile number is matched whole
		{directory.UserSearch{Text: "Anna"}, []string{"zhang-a"}},
		{directory.UserSearch{Text: "anna"}, []string{"zhang-a"}},
		// Case is ignored (the ASCII letters).
		{directory.UserSearch{Text: "ANNA Z"}, []string{"zhang-a"}},
		{directory.UserSearch{Text: "ZHANG"}, []string{"zhang-a", "zhangsan", "zhangsanfeng"}},
		{directory.UserSearch{Text: "Li.Si@ACME"}, []string{"lisi"}},
		{directory.UserSearch{Status: directory.UserDisabled}, []string{"zhangsanfeng"}},
		{directory.UserSearch{Text: "张", Status: directory.UserActive}, []string{"zhangsan"}},
		{directory.UserSearch{SourceID: "wecom"}, []string{"zhang-a", "zhangsan", "zhangsanfeng"}},
		{directory.UserSearch{SourceID: "dingtalk"}, []string{"lisi"}},
		{directory.UserSearch{SourceID: "wecom", DepartmentID: "3"}, []string{"zhangsan", "zhangsanfeng"}},
		{directory.UserSearch{SourceID: "wecom", DepartmentID: "2"}, []string{"zhangsan"}},
		{directory.UserSearch{SourceID: "dingtalk", DepartmentID: "3"}, []string{}},
		{directory.UserSearch{SourceID: "wecom", DepartmentID: "3", Text: "张三丰"}, []string{"zhangsanfeng"}},
		// A department and the ones below it: 2 ⊃ 3 ⊃ 4 in wecom's tree.
		{directory.UserSearch{SourceID: "wecom", DepartmentID: "2", SubDepartments: true}, []string{"zhang-a", "zhangsan", "zhangsanfeng"}},
		{directory.UserSearch{SourceID: "wecom", DepartmentID: "3", SubDepartments: true}, []string{"zhang-a", "zhangsan", "zhangsanfeng"}},
		{directory.UserSearch{SourceID: "wecom", DepartmentID: "4", SubDepartments: true}, []string{"zhang-a"}},
		{directory.UserSearch{SourceID: "wecom", DepartmentID: "1", SubDepartments: true, Status: directory.UserActive}, []string{"zhang-a", "zhangsan"}},
		{directory.UserSearch{SourceID: "dingtalk", DepartmentID: "1", SubDepartments: true}, []string{}}, // dingtalk's tree has no 2 under 1
		{directory.UserSearch{SourceID: "wecom", DepartmentID: "8", SubDepartments: true}, []string{}},
		{directory.UserSearch{SourceID: "wecom", DepartmentID: `2' OR '1'='1`, SubDepartments: true}, []string{}},
		{directory.UserSearch{After: "zhang-a"}, []string{"zhangsan", "zhangsanfeng"}},
		{directory.UserSearch{Limit: 2}, []string{"lisi", "wangwu"}},
		{directory.UserSearch{Limit: 2, After: "wangwu"}, []string{"zhang-a", "zhangsan"}},
		// Hostile text is a value: no wildcard, no quote, no statement of its own.
		{directory.UserSearch{Text: "%"}, []string{}},
		{directory.UserSearch{Text: "_"}, []string{}},
		{directory.UserSearch{Text: "' OR '1'='1"}, []string{}},
		{directory.UserSearch{Text: `张' OR 1=1 --`}, []string{}},
		{directory.UserSearch{Text: "'); DROP TABLE users; --"}, []string{}},
		{directory.UserSearch{Text: `\`}, []string{}},
		{directory.UserSearch{SourceID: "wecom' OR '1'='1"}, []string{}},
		{directory.UserSearch{SourceID: "wecom", DepartmentID: `3" OR 1=1`}, []string{}},
		{directory.UserSearch{After: "' OR 1=1 --"}, []string{"lisi", "wangwu", "zhang-a", "zhangsan", "zhangsanfeng"}},
	} {
		if got := search(c.q); !slices.Equal(got, c.want) {
			t.Errorf("SearchUsers(%+v) = %v, want %v", c.q, got, c.want)
		}
	}
	// Paging by username visits everyone once.
	var seen []string
	for after := ""; ; {
		page := search(directory.UserSearch{Limit: 2, After: after})
		if len(page) == 0 {
			break
		}
		seen = append(seen, page...)
		after = page[len(page)-1]
	}
	if len(seen) != 5 {
		t.Fatalf("paging saw %v", seen)
	}
	// The users table survived the hostile searches.
	if got := search(directory.UserSearch{}); len(got) != 5 {
		t.Fatalf("after the hostile searches: %v", got)
	}
	var fe *directory.FieldError
	if _, err := s.SearchUsers(ctx, directory.UserSearch{EnterpriseID: "acme", DepartmentID: "3"}); !errors.As(err, &fe) {
		t.Fatalf("a department without its source: %v", err)
	}
	// Many people: the limit holds and pages follow one another.
	for i := 0; i < 30; i++ {
		if err := s.CreateUser(ctx, &directory.User{EnterpriseID: "acme", Username: fmt.Sprintf("p%02d", i), Name: fmt.Sprintf("周%02d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := search(directory.UserSearch{Text: "周", Limit: 25}); len(got) != 25 || got[0] != "p00" || got[24] != "p24" {
		t.Fatalf("a page of 25: %v", got)
	}
	if got := search(directory.UserSearch{Text: "周", Limit: 25, After: "p24"}); len(got) != 5 || got[0] != "p25" {
		t.Fatalf("the next page: %v", got)
	}
}
