// Package simorg is the organisation the platform simulators serve: departments and users as both
// platforms model them, a reproducible generator (Chinese names, nested departments, people in
// several departments, a mix of statuses) and the mutations the simulators' control APIs make.
// It knows no platform's wire format; wecomsim and dingtalksim render it their own way.
package simorg

import (
	"fmt"
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
