package simorg

import (
	"errors"
	"runtime"
	"testing"
	"unicode/utf8"
)

func TestGenerateIsReproducibleAndWellFormed(t *testing.T) {
	a := Generate("测试公司", 2000, 42)
	b := Generate("测试公司", 2000, 42)
	a.RLock()
	b.RLock()
	defer a.RUnlock()
	defer b.RUnlock()
	ua, ub := a.UserIDs(), b.UserIDs()
	if len(ua) != 2000 || len(ub) != 2000 {
		t.Fatalf("users = %d, %d", len(ua), len(ub))
	}
	for i := range ua {
		if ua[i] != ub[i] || a.User(ua[i]).Name != b.User(ub[i]).Name {
			t.Fatalf("same seed, different org at %d: %s vs %s", i, ua[i], ub[i])
		}
	}
	zs := a.User("zhangsan")
	if zs == nil || zs.Name != "张三" || zs.Status != StatusActive {
		t.Fatalf("zhangsan = %+v", zs)
	}
	if a.User("ZhangSan") != zs {
		t.Fatal("userid lookup is not case-insensitive")
	}
	statuses, multi := map[int]int{}, 0
	for _, id := range ua {
		u := a.User(id)
		statuses[u.Status]++
		if len(u.Depts) > 1 {
			multi++
		}
		if !utf8.ValidString(u.Name) || u.Name == "" {
			t.Fatalf("bad name %q", u.Name)
		}
		for _, d := range u.Depts {
			if a.Dept(d) == nil {
				t.Fatalf("%s in missing department %d", id, d)
			}
		}
	}
	for _, st := range []int{StatusActive, StatusDisabled, StatusNotActivated, StatusExited} {
		if statuses[st] == 0 {
			t.Errorf("no user with status %d", st)
		}
	}
	if multi == 0 {
		t.Error("no user in several departments")
	}
	maxDepth := 0
	for _, id := range a.DeptIDs() {
		maxDepth = max(maxDepth, a.Depth(id))
	}
	if maxDepth > MaxDepth || maxDepth < 3 {
		t.Fatalf("max depth %d", maxDepth)
	}
	if c := Generate("x", 2000, 43); c.User(ua[500]) != nil && c.User(ua[500]).Name == a.User(ua[500]).Name && c.UserIDs()[700] == ua[700] {
		t.Log("different seeds happened to agree on two users; fine but unlikely")
	}
}

func TestMutations(t *testing.T) {
	o := New("X")
	d, err := o.AddDept(Dept{ParentID: RootID, Name: "研发部"})
	if err != nil || d.ID != 2 {
		t.Fatalf("AddDept = %+v, %v", d, err)
	}
	if _, err := o.AddDept(Dept{ParentID: RootID, Name: "研发部"}); !errors.Is(err, ErrDeptExists) {
		t.Fatalf("duplicate sibling name: %v", err)
	}
	sub, _ := o.AddDept(Dept{ParentID: 2, Name: "一组"})
	if _, err := o.AddDept(Dept{ParentID: 99, Name: "x"}); !errors.Is(err, ErrParentNotFound) {
		t.Fatal(err)
	}
	if _, err := o.UpdateDept(2, nil, nil, &sub.ID, nil); !errors.Is(err, ErrCycle) {
		t.Fatalf("cycle: %v", err)
	}
	if _, err := o.PutUser(&User{UserID: "Alice", Depts: []int{sub.ID}, Status: 1}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := o.PutUser(&User{UserID: "alice", Depts: []int{2}}, true); !errors.Is(err, ErrUserExists) {
		t.Fatalf("case-insensitive uniqueness: %v", err)
	}
	if err := o.DeleteDept(sub.ID); !errors.Is(err, ErrDeptHasMembers) {
		t.Fatal(err)
	}
	if err := o.DeleteDept(2); !errors.Is(err, ErrDeptHasSubs) {
		t.Fatal(err)
	}
	if err := o.DeleteDept(RootID); !errors.Is(err, ErrRoot) {
		t.Fatal(err)
	}
	if _, err := o.RenameUser("alice", "alice2"); err != nil {
		t.Fatal(err)
	}
	o.RLock()
	if o.User("Alice") != nil || o.User("alice2") == nil || len(o.Members(sub.ID)) != 1 {
		t.Fatal("rename did not move the user")
	}
	o.RUnlock()
	if _, err := o.DeleteUser("alice2"); err != nil {
		t.Fatal(err)
	}
	if err := o.DeleteDept(sub.ID); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkGenerate100k: the target is 100k users in under 2 s and 200 MB.
func BenchmarkGenerate100k(b *testing.B) {
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		o := Generate("基准公司", 100000, uint64(i))
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MB-live")
		_, n := o.Counts()
		if n != 100000 {
			b.Fatal(n)
		}
	}
}

func TestRowsAndIndexInvalidation(t *testing.T) {
	o := Generate("x", 500, 3)
	o.RLock()
	total := o.RowsCount()
	var all []Row
	for start := 0; start < total; start += 37 {
		page, n := o.Rows(start, 37)
		if n != total {
			t.Fatalf("total changed: %d", n)
		}
		all = append(all, page...)
	}
	o.RUnlock()
	if len(all) != total {
		t.Fatalf("paged %d rows, want %d", len(all), total)
	}
	seen := map[Row]bool{}
	for _, r := range all {
		if seen[r] {
			t.Fatalf("row %v twice", r)
		}
		seen[r] = true
	}
	if _, err := o.PutUser(&User{UserID: "aaa-first", Depts: []int{2, 3}, Status: 1}, true); err != nil {
		t.Fatal(err)
	}
	o.RLock()
	defer o.RUnlock()
	if o.RowsCount() != total+2 || o.UserIDs()[0] != "aaa-first" {
		t.Fatal("index not rebuilt after a mutation")
	}
	if first, _ := o.Rows(0, 2); first[1] != (Row{"aaa-first", 3}) {
		t.Fatalf("rows = %v", first)
	}
}
