// Package simorg is the organisation the platform simulators serve: departments and users as both
// platforms model them, a reproducible generator (Chinese names, nested departments, people in
// several departments, a mix of statuses) and the mutations the simulators' control APIs make.
// It knows no platform's wire format; wecomsim and dingtalksim render it their own way.
package simorg

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
)

// User statuses, with WeCom's numbers (DingTalk has only active / not activated; exited users are
// simply gone there).
const (
	StatusActive       = 1
	StatusDisabled     = 2
	StatusNotActivated = 4
	StatusExited       = 5
)

// RootID is the root department's ID on both platforms.
const RootID = 1

// Dept is a department.
type Dept struct {
	ID       int
	ParentID int // 0 for the root
	Name     string
	NameEn   string
	Order    uint32 // larger = earlier (WeCom)
	Leaders  []string
}

// ExtAttr is an extended attribute (WeCom extattr; DingTalk extension).
type ExtAttr struct {
	Name  string
	Value string
}

// User is a member of the organisation.
type User struct {
	UserID       string
	UnionID      string // DingTalk
	Name         string
	Depts        []int
	Orders       []uint32
	IsLeader     []int
	MainDept     int
	Position     string
	Mobile       string
	Email        string
	BizMail      string
	Gender       string // "0" unknown, "1" male, "2" female
	Status       int
	Alias        string
	Telephone    string
	Address      string
	Avatar       string
	JobNumber    string
	HiredDate    int64 // ms
	DirectLeader []string
	ExtAttrs     []ExtAttr
	Modified     int64 // change counter, for ordering
}

// Clone returns a deep copy.
func (u *User) Clone() *User {
	c := *u
	c.Depts = slices.Clone(u.Depts)
	c.Orders = slices.Clone(u.Orders)
	c.IsLeader = slices.Clone(u.IsLeader)
	c.DirectLeader = slices.Clone(u.DirectLeader)
	c.ExtAttrs = slices.Clone(u.ExtAttrs)
	return &c
}

// Org is a thread-safe organisation. Readers take RLock; the simulators call the mutators.
type Org struct {
	mu       sync.RWMutex
	Name     string
	depts    map[int]*Dept
	children map[int][]int    // sorted IDs
	users    map[string]*User // by exact userid
	lower    map[string]string
	members  map[int][]string // direct members, sorted
	nextDept int
	seq      int64
	version  int64 // bumped by every mutation, under the write lock

	cacheMu  sync.Mutex // guards the sorted-index cache, rebuilt lazily under RLock
	cacheVer int64
	sorted   []string
	rowStart []int // rowStart[i] = memberships of sorted[:i]
}

// New returns an org with only the root department.
func New(name string) *Org {
	o := &Org{Name: name, depts: map[int]*Dept{}, children: map[int][]int{}, users: map[string]*User{},
		lower: map[string]string{}, members: map[int][]string{}, nextDept: 2}
	o.depts[RootID] = &Dept{ID: RootID, Name: name, NameEn: "Company", Order: 100000000}
	return o
}

// RLock / RUnlock let a simulator read several things consistently.
func (o *Org) RLock()   { o.mu.RLock() }
func (o *Org) RUnlock() { o.mu.RUnlock() }

// Dept returns a department (caller holds RLock).
func (o *Org) Dept(id int) *Dept { return o.depts[id] }

// Children returns the direct sub-departments, sorted by ID (caller holds RLock).
func (o *Org) Children(id int) []int { return o.children[id] }

// Members returns the direct members' userids, sorted (caller holds RLock).
func (o *Org) Members(id int) []string { return o.members[id] }

// User returns a user by userid; WeCom userids are case-insensitive (caller holds RLock).
func (o *Org) User(id string) *User {
	if u := o.users[id]; u != nil {
		return u
	}
	if exact, ok := o.lower[lowerASCII(id)]; ok {
		return o.users[exact]
	}
	return nil
}

// UserByUnionID finds a user by DingTalk unionid (caller holds RLock).
func (o *Org) UserByUnionID(union string) *User {
	for _, u := range o.users {
		if u.UnionID == union {
			return u
		}
	}
	return nil
}

// Subtree returns id and all its descendants, parents before children (caller holds RLock).
func (o *Org) Subtree(id int) []int {
	if o.depts[id] == nil {
		return nil
	}
	out := []int{id}
	for i := 0; i < len(out); i++ {
		out = append(out, o.children[out[i]]...)
	}
	return out
}

// DeptIDs returns every department ID, sorted (caller holds RLock).
func (o *Org) DeptIDs() []int {
	ids := make([]int, 0, len(o.depts))
	for id := range o.depts {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

// UserIDs returns every userid, sorted (caller holds RLock). The slice is shared: do not modify it.
func (o *Org) UserIDs() []string {
	o.index()
	return o.sorted
}

// index rebuilds the sorted userids and membership offsets when the org changed.
func (o *Org) index() {
	o.cacheMu.Lock()
	defer o.cacheMu.Unlock()
	if o.sorted != nil && o.cacheVer == o.version {
		return
	}
	ids := make([]string, 0, len(o.users))
	for id := range o.users {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	starts := make([]int, len(ids)+1)
	for i, id := range ids {
		starts[i+1] = starts[i] + len(o.users[id].Depts)
	}
	o.sorted, o.rowStart, o.cacheVer = ids, starts, o.version
}

// Row is one (user, department) membership.
type Row struct {
	UserID string
	Dept   int
}

// Rows returns memberships [start, start+limit) in userid order, each user's departments in
// their order, and the total (caller holds RLock).
func (o *Org) Rows(start, limit int) ([]Row, int) {
	o.index()
	total := o.rowStart[len(o.sorted)]
	if start >= total || limit <= 0 {
		return nil, total
	}
	i := sort.SearchInts(o.rowStart, start+1) - 1 // the user holding row start
	var out []Row
	for ; i < len(o.sorted) && len(out) < limit; i++ {
		u := o.users[o.sorted[i]]
		for k, d := range u.Depts {
			if o.rowStart[i]+k >= start && len(out) < limit {
				out = append(out, Row{u.UserID, d})
			}
		}
	}
	return out, total
}

// RowsCount is the number of (user, department) memberships (caller holds RLock).
func (o *Org) RowsCount() int {
	o.index()
	return o.rowStart[len(o.sorted)]
}

// Counts returns the number of departments and users.
func (o *Org) Counts() (depts, users int) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return len(o.depts), len(o.users)
}

// Depth returns a department's depth (root = 1) (caller holds RLock).
func (o *Org) Depth(id int) int {
	d := 0
	for id != 0 && d < 1000 {
		dep := o.depts[id]
		if dep == nil {
			break
		}
		d++
		id = dep.ParentID
	}
	return d
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

// ---- mutations (each takes the write lock)

// Errors of mutations, mapped to errcodes by the simulators.
var (
	ErrDeptNotFound   = fmt.Errorf("department not found")
	ErrParentNotFound = fmt.Errorf("parent department not found")
	ErrDeptExists     = fmt.Errorf("department exists")
	ErrDeptHasMembers = fmt.Errorf("department has members")
	ErrDeptHasSubs    = fmt.Errorf("department has sub-departments")
	ErrRoot           = fmt.Errorf("cannot delete the root department")
	ErrCycle          = fmt.Errorf("department cycle")
	ErrUserExists     = fmt.Errorf("userid exists")
	ErrUserNotFound   = fmt.Errorf("userid not found")
)

// AddDept adds a department; id 0 picks the next free ID.
func (o *Org) AddDept(d Dept) (*Dept, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.addDept(d)
}

func (o *Org) addDept(d Dept) (*Dept, error) {
	o.version++
	if o.depts[d.ParentID] == nil {
		return nil, ErrParentNotFound
	}
	if d.ID == 0 {
		for o.depts[o.nextDept] != nil {
			o.nextDept++
		}
		d.ID = o.nextDept
		o.nextDept++
	} else if o.depts[d.ID] != nil {
		return nil, ErrDeptExists
	}
	for _, sib := range o.children[d.ParentID] {
		if o.depts[sib].Name == d.Name {
			return nil, ErrDeptExists
		}
	}
	nd := d
	o.depts[nd.ID] = &nd
	o.children[nd.ParentID] = insertSorted(o.children[nd.ParentID], nd.ID)
	return &nd, nil
}

// UpdateDept changes a department's name, English name, parent or order (nil = unchanged).
func (o *Org) UpdateDept(id int, name, nameEn *string, parent *int, order *uint32) (*Dept, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.version++
	d := o.depts[id]
	if d == nil {
		return nil, ErrDeptNotFound
	}
	if parent != nil && *parent != d.ParentID {
		if id == RootID || o.depts[*parent] == nil {
			return nil, ErrParentNotFound
		}
		for p := *parent; p != 0; p = o.depts[p].ParentID {
			if p == id {
				return nil, ErrCycle
			}
		}
		o.children[d.ParentID] = removeSorted(o.children[d.ParentID], id)
		d.ParentID = *parent
		o.children[d.ParentID] = insertSorted(o.children[d.ParentID], id)
	}
	if name != nil {
		d.Name = *name
	}
	if nameEn != nil {
		d.NameEn = *nameEn
	}
	if order != nil {
		d.Order = *order
	}
	return d, nil
}

// DeleteDept removes an empty leaf department.
func (o *Org) DeleteDept(id int) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.version++
	d := o.depts[id]
	switch {
	case id == RootID:
		return ErrRoot
	case d == nil:
		return ErrDeptNotFound
	case len(o.children[id]) > 0:
		return ErrDeptHasSubs
	case len(o.members[id]) > 0:
		return ErrDeptHasMembers
	}
	o.children[d.ParentID] = removeSorted(o.children[d.ParentID], id)
	delete(o.depts, id)
	delete(o.children, id)
	delete(o.members, id)
	return nil
}

// PutUser creates a user (create=true) or replaces an existing one.
func (o *Org) PutUser(u *User, create bool) (*User, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.putUser(u, create)
}

func (o *Org) putUser(u *User, create bool) (*User, error) {
	o.version++
	existing := o.User(u.UserID)
	if create && existing != nil {
		return nil, ErrUserExists
	}
	if !create && existing == nil {
		return nil, ErrUserNotFound
	}
	for _, d := range u.Depts {
		if o.depts[d] == nil {
			return nil, ErrDeptNotFound
		}
	}
	if existing != nil {
		u.UserID = existing.UserID // keep the stored case
		o.unlink(existing)
	}
	nu := u.Clone()
	if nu.MainDept == 0 && len(nu.Depts) > 0 {
		nu.MainDept = nu.Depts[0]
	}
	o.seq++
	nu.Modified = o.seq
	o.users[nu.UserID] = nu
	o.lower[lowerASCII(nu.UserID)] = nu.UserID
	for _, d := range nu.Depts {
		o.members[d] = insertSortedStr(o.members[d], nu.UserID)
	}
	return nu, nil
}

func (o *Org) unlink(u *User) {
	for _, d := range u.Depts {
		o.members[d] = removeSortedStr(o.members[d], u.UserID)
	}
}

// DeleteUser removes a user.
func (o *Org) DeleteUser(id string) (*User, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.version++
	u := o.User(id)
	if u == nil {
		return nil, ErrUserNotFound
	}
	o.unlink(u)
	delete(o.users, u.UserID)
	delete(o.lower, lowerASCII(u.UserID))
	return u, nil
}

// RenameUser changes a userid (WeCom allows it once for system-generated IDs).
func (o *Org) RenameUser(old, nw string) (*User, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.version++
	u := o.User(old)
	if u == nil {
		return nil, ErrUserNotFound
	}
	if o.User(nw) != nil {
		return nil, ErrUserExists
	}
	o.unlink(u)
	delete(o.users, u.UserID)
	delete(o.lower, lowerASCII(u.UserID))
	c := u.Clone()
	c.UserID = nw
	return o.putUser(c, true)
}

func insertSorted(s []int, v int) []int {
	i, found := slices.BinarySearch(s, v)
	if found {
		return s
	}
	return slices.Insert(s, i, v)
}

func removeSorted(s []int, v int) []int {
	if i, found := slices.BinarySearch(s, v); found {
		return slices.Delete(s, i, i+1)
	}
	return s
}

func insertSortedStr(s []string, v string) []string {
	i, found := slices.BinarySearch(s, v)
	if found {
		return s
	}
	return slices.Insert(s, i, v)
}

func removeSortedStr(s []string, v string) []string {
	if i, found := slices.BinarySearch(s, v); found {
		return slices.Delete(s, i, i+1)
	}
	return s
}

// ---- generator

var surnames = []struct{ han, py string }{
	{"王", "wang"}, {"李", "li"}, {"张", "zhang"}, {"刘", "liu"}, {"陈", "chen"}, {"杨", "yang"}, {"黄", "huang"},
	{"赵", "zhao"}, {"吴", "wu"}, {"周", "zhou"}, {"徐", "xu"}, {"孙", "sun"}, {"马", "ma"}, {"朱", "zhu"},
	{"胡", "hu"}, {"郭", "guo"}, {"何", "he"}, {"高", "gao"}, {"林", "lin"}, {"罗", "luo"}, {"郑", "zheng"},
	{"梁", "liang"}, {"谢", "xie"}, {"宋", "song"}, {"唐", "tang"}, {"许", "xu"}, {"韩", "han"}, {"冯", "feng"},
	{"邓", "deng"}, {"曹", "cao"}, {"彭", "peng"}, {"曾", "zeng"}, {"肖", "xiao"}, {"田", "tian"}, {"董", "dong"},
	{"袁", "yuan"}, {"潘", "pan"}, {"于", "yu"}, {"蒋", "jiang"}, {"蔡", "cai"}, {"余", "yu"}, {"杜", "du"},
	{"叶", "ye"}, {"程", "cheng"}, {"苏", "su"}, {"魏", "wei"}, {"吕", "lv"}, {"丁", "ding"}, {"任", "ren"},
	{"沈", "shen"}, {"欧阳", "ouyang"}, {"司马", "sima"},
}

var givenChars = []struct{ han, py string }{
	{"伟", "wei"}, {"芳", "fang"}, {"娜", "na"}, {"秀", "xiu"}, {"英", "ying"}, {"敏", "min"}, {"静", "jing"},
	{"丽", "li"}, {"强", "qiang"}, {"磊", "lei"}, {"军", "jun"}, {"洋", "yang"}, {"勇", "yong"}, {"艳", "yan"},
	{"杰", "jie"}, {"娟", "juan"}, {"涛", "tao"}, {"明", "ming"}, {"超", "chao"}, {"霞", "xia"}, {"平", "ping"},
	{"刚", "gang"}, {"桂", "gui"}, {"文", "wen"}, {"华", "hua"}, {"建", "jian"}, {"国", "guo"}, {"红", "hong"},
	{"晓", "xiao"}, {"鹏", "peng"}, {"辉", "hui"}, {"宇", "yu"}, {"婷", "ting"}, {"雪", "xue"}, {"琳", "lin"},
	{"浩", "hao"}, {"思", "si"}, {"欣", "xin"}, {"佳", "jia"}, {"子", "zi"}, {"梓", "zi"}, {"涵", "han"},
	{"一", "yi"}, {"诺", "nuo"}, {"晨", "chen"}, {"睿", "rui"}, {"嘉", "jia"}, {"怡", "yi"}, {"博", "bo"},
}

var deptNames = []struct{ zh, en string }{
	{"研发部", "R&D"}, {"产品部", "Product"}, {"市场部", "Marketing"}, {"销售部", "Sales"}, {"财务部", "Finance"},
	{"人力资源部", "HR"}, {"法务部", "Legal"}, {"运维部", "Operations"}, {"客户成功部", "Customer Success"},
	{"安全部", "Security"}, {"数据部", "Data"}, {"设计部", "Design"}, {"采购部", "Procurement"}, {"行政部", "Admin"},
	{"质量部", "Quality"}, {"测试部", "QA"}, {"平台部", "Platform"}, {"战略部", "Strategy"},
}

var regions = []string{"北京", "上海", "深圳", "杭州", "成都", "武汉", "南京", "西安", "广州", "苏州"}
var ordinals = []string{"一", "二", "三", "四", "五", "六", "七", "八", "九", "十"}
var positions = []string{"工程师", "高级工程师", "产品经理", "设计师", "销售经理", "会计", "专员", "主管", "总监", "分析师"}

// MaxDepth bounds generated department nesting (the root is depth 1).
const MaxDepth = 6

// Generate builds a reproducible organisation of n users (at least 1): the same seed and n give
// the same org. The first user is always 张三, userid zhangsan, active, in 研发部 (department 2).
func Generate(name string, n int, seed uint64) *Org {
	if n < 1 {
		n = 1
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	o := New(name)
	nDepts := max(2, min(n/20, 30000))
	depthOf := map[int]int{RootID: 1}
	var parents []int // departments that may take children
	parents = append(parents, RootID)
	used := map[int]map[string]bool{}
	// The first layer holds the well-known departments; a quarter of the departments at most, so
	// even a small org nests.
	firstLayer := max(1, min(len(deptNames), (nDepts-1)/4))
	for i := 0; i < nDepts-1; i++ {
		var parent int
		if i < firstLayer {
			parent = RootID // the first layer: the well-known departments
		} else {
			parent = parents[r.IntN(len(parents))]
		}
		var nm, en string
		for attempt := 0; ; attempt++ {
			switch depthOf[parent] {
			case 1:
				dn := deptNames[(i+attempt)%len(deptNames)]
				nm, en = dn.zh, dn.en
				if attempt >= len(deptNames) {
					nm, en = fmt.Sprintf("%s%d", dn.zh, attempt/len(deptNames)+1), fmt.Sprintf("%s %d", dn.en, attempt/len(deptNames)+1)
				}
			case 2:
				reg := regions[r.IntN(len(regions))]
				nm, en = reg+o.depts[parent].Name, o.depts[parent].NameEn+" "+reg
			default:
				k := r.IntN(len(ordinals))
				nm, en = o.depts[parent].Name+ordinals[k]+"组", fmt.Sprintf("%s team %d", o.depts[parent].NameEn, k+1)
			}
			if attempt > 3 {
				nm, en = fmt.Sprintf("%s-%d", nm, attempt), fmt.Sprintf("%s-%d", en, attempt)
			}
			if used[parent] == nil {
				used[parent] = map[string]bool{}
			}
			if !used[parent][nm] {
				used[parent][nm] = true
				break
			}
		}
		d, err := o.addDept(Dept{ParentID: parent, Name: nm, NameEn: en, Order: uint32(100000000 - i)})
		if err != nil {
			panic("simorg: generate: " + err.Error())
		}
		depthOf[d.ID] = depthOf[parent] + 1
		if depthOf[d.ID] < MaxDepth {
			parents = append(parents, d.ID)
		}
	}
	deptIDs := o.DeptIDs()[1:] // every department but the root
	seen := map[string]int{"zhangsan": 1}
	zs := &User{UserID: "zhangsan", UnionID: unionID(r), Name: "张三", Depts: []int{2}, Orders: []uint32{0}, IsLeader: []int{0},
		Position: "高级工程师", Mobile: "13800000001", Email: "zhangsan@example.com", BizMail: "zhangsan@corp.example.com", Gender: "1",
		Status: StatusActive, Alias: "Sam", JobNumber: "E000001", HiredDate: 1577836800000,
		ExtAttrs: []ExtAttr{{"工号", "E000001"}}}
	if _, err := o.putUser(zs, true); err != nil {
		panic("simorg: generate: " + err.Error())
	}
	for i := 1; i < n; i++ {
		s := surnames[r.IntN(len(surnames))]
		g1 := givenChars[r.IntN(len(givenChars))]
		name, py := s.han+g1.han, s.py+g1.py
		if r.IntN(3) > 0 {
			g2 := givenChars[r.IntN(len(givenChars))]
			name, py = name+g2.han, py+g2.py
		}
		uid := py
		if k := seen[py]; k > 0 {
			uid = fmt.Sprintf("%s%d", py, k+1)
		}
		seen[py]++
		depts := []int{deptIDs[r.IntN(len(deptIDs))]}
		if r.IntN(10) == 0 { // one in ten is in a second department
			if d2 := deptIDs[r.IntN(len(deptIDs))]; d2 != depts[0] {
				depts = append(depts, d2)
			}
		}
		status := StatusActive
		switch x := r.IntN(100); {
		case x < 4:
			status = StatusDisabled
		case x < 8:
			status = StatusNotActivated
		case x < 10:
			status = StatusExited
		}
		gender := []string{"1", "2"}[r.IntN(2)]
		u := &User{UserID: uid, UnionID: unionID(r), Name: name, Depts: depts, Orders: make([]uint32, len(depts)),
			IsLeader: make([]int, len(depts)), Position: positions[r.IntN(len(positions))],
			Mobile: fmt.Sprintf("13%09d", 100000000+i), Email: uid + "@example.com", Gender: gender, Status: status,
			JobNumber: fmt.Sprintf("E%06d", i+1), HiredDate: 1262304000000 + int64(r.IntN(500000000))*1000,
			ExtAttrs: []ExtAttr{{"工号", fmt.Sprintf("E%06d", i+1)}}}
		if _, err := o.putUser(u, true); err != nil {
			panic("simorg: generate: " + err.Error())
		}
	}
	// A leader per department that has members: its first member.
	for _, id := range deptIDs {
		if m := o.members[id]; len(m) > 0 {
			o.depts[id].Leaders = []string{m[0]}
			u := o.users[m[0]]
			for k, d := range u.Depts {
				if d == id {
					u.IsLeader[k] = 1
				}
			}
		}
	}
	return o
}

const unionAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

func unionID(r *rand.Rand) string {
	b := make([]byte, 22)
	for i := range b {
		b[i] = unionAlphabet[r.IntN(len(unionAlphabet))]
	}
	return string(b) + "iE"
}
