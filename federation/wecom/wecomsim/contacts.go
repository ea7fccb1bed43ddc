package wecomsim

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/qiao-gateway/qiao/federation/simorg"
)

// ---- departments

func deptJSON(d *simorg.Dept, full bool) map[string]any {
	parent := d.ParentID
	m := map[string]any{"id": d.ID, "parentid": parent, "order": d.Order}
	if full {
		m["name"] = d.Name
		m["name_en"] = d.NameEn
		m["department_leader"] = nonNil(d.Leaders)
	}
	return m
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// listDepts answers department/list and department/simplelist: the subtree of ?id (recursive), or
// every visible department.
func (s *Sim) listDepts(w http.ResponseWriter, r *http.Request, c *cred, full bool, key string) {
	id, given, err := queryInt(r, "id")
	if err != nil {
		s.errJSON(w, r, 40058, "invalid id")
		return
	}
	o := s.cfg.Org
	o.RLock()
	defer o.RUnlock()
	var ids []int
	if given {
		if o.Dept(id) == nil {
			s.errJSON(w, r, 60003, "")
			return
		}
		if !s.deptVisible(c, id) {
			s.errJSON(w, r, 60011, "")
			return
		}
		ids = o.Subtree(id)
	} else {
		for _, d := range o.DeptIDs() {
			if s.deptVisible(c, d) {
				ids = append(ids, d)
			}
		}
	}
	out := make([]map[string]any, 0, len(ids))
	for _, d := range ids {
		out = append(out, deptJSON(o.Dept(d), full))
	}
	ok(w, "ok", map[string]any{key: out})
}

func (s *Sim) departmentList(w http.ResponseWriter, r *http.Request, c *cred) {
	s.listDepts(w, r, c, true, "department")
}

func (s *Sim) departmentSimplelist(w http.ResponseWriter, r *http.Request, c *cred) {
	s.listDepts(w, r, c, false, "department_id")
}

func (s *Sim) departmentGet(w http.ResponseWriter, r *http.Request, c *cred) {
	id, given, err := queryInt(r, "id")
	if !given || err != nil {
		s.errJSON(w, r, 40058, "id missing or invalid")
		return
	}
	o := s.cfg.Org
	o.RLock()
	defer o.RUnlock()
	d := o.Dept(id)
	if d == nil {
		s.errJSON(w, r, 60003, "")
		return
	}
	if !s.deptVisible(c, id) {
		s.errJSON(w, r, 60011, "")
		return
	}
	ok(w, "ok", map[string]any{"department": deptJSON(d, true)})
}

// ---- users

// sensitive are withheld from post-2022-06-20 apps (upstream-apis.md §1.3.1).
var sensitive = []string{"avatar", "thumb_avatar", "mobile", "email", "biz_mail", "qr_code", "address"}

func (s *Sim) userJSON(c *cred, u *simorg.User) map[string]any {
	o := s.cfg.Org
	var depts []int
	var orders []uint32
	var leader []int
	for i, d := range u.Depts {
		if s.deptVisible(c, d) || c.app == nil {
			depts = append(depts, d)
			orders = append(orders, at(u.Orders, i))
			leader = append(leader, at(u.IsLeader, i))
		}
	}
	var leaders []string
	for _, l := range u.DirectLeader {
		if lu := o.User(l); lu != nil && s.userVisible(c, lu) {
			leaders = append(leaders, l)
		}
	}
	attrs := make([]map[string]any, 0, len(u.ExtAttrs))
	for _, a := range u.ExtAttrs {
		attrs = append(attrs, map[string]any{"type": 0, "name": a.Name, "text": map[string]string{"value": a.Value}})
	}
	m := map[string]any{
		"userid": u.UserID, "name": u.Name, "department": nonNil(depts), "order": nonNil(orders), "position": u.Position,
		"mobile": u.Mobile, "gender": u.Gender, "email": u.Email, "biz_mail": u.BizMail, "is_leader_in_dept": nonNil(leader),
		"direct_leader": nonNil(leaders), "avatar": u.Avatar, "thumb_avatar": u.Avatar, "telephone": u.Telephone,
		"alias": u.Alias, "address": u.Address, "extattr": map[string]any{"attrs": attrs}, "status": u.Status,
		"qr_code":           "https://open.work.weixin.qq.com/wwopen/userQRCode?vcode=" + u.UserID,
		"external_position": "", "external_profile": map[string]any{"external_corp_name": o.Name, "external_attr": []any{}},
	}
	if slices.Contains(depts, u.MainDept) {
		m["main_department"] = u.MainDept
	}
	if c.app != nil && c.app.Post2022 {
		for _, f := range sensitive {
			delete(m, f)
		}
		m["gender"] = "0" // "not obtainable" reads as undefined
	}
	return m
}

func at[T any](s []T, i int) T {
	var zero T
	if i < len(s) {
		return s[i]
	}
	return zero
}

// deptMembers returns the visible users directly in dept (or in its subtree with fetch_child=1).
func (s *Sim) deptMembers(w http.ResponseWriter, r *http.Request, c *cred) ([]*simorg.User, bool) {
	id, given, err := queryInt(r, "department_id")
	if !given || err != nil {
		s.errJSON(w, r, 40058, "department_id missing or invalid")
		return nil, false
	}
	o := s.cfg.Org
	if o.Dept(id) == nil {
		s.errJSON(w, r, 60003, "")
		return nil, false
	}
	if !s.deptVisible(c, id) {
		s.errJSON(w, r, 60011, "")
		return nil, false
	}
	depts := []int{id}
	if r.URL.Query().Get("fetch_child") == "1" {
		depts = o.Subtree(id)
	}
	seen := map[string]bool{}
	var out []*simorg.User
	for _, d := range depts {
		for _, uid := range o.Members(d) {
			if seen[uid] {
				continue
			}
			seen[uid] = true
			if u := o.User(uid); u != nil && s.userVisible(c, u) {
				out = append(out, u)
			}
		}
	}
	return out, true
}

func (s *Sim) userSimplelist(w http.ResponseWriter, r *http.Request, c *cred) {
	o := s.cfg.Org
	o.RLock()
	defer o.RUnlock()
	users, good := s.deptMembers(w, r, c)
	if !good {
		return
	}
	out := make([]map[string]any, 0, len(users))
	for _, u := range users {
		full := s.userJSON(c, u)
		out = append(out, map[string]any{"userid": u.UserID, "name": u.Name, "department": full["department"]})
	}
	ok(w, "ok", map[string]any{"userlist": out})
}

func (s *Sim) userList(w http.ResponseWriter, r *http.Request, c *cred) {
	o := s.cfg.Org
	o.RLock()
	defer o.RUnlock()
	users, good := s.deptMembers(w, r, c)
	if !good {
		return
	}
	out := make([]map[string]any, 0, len(users))
	for _, u := range users {
		m := s.userJSON(c, u)
		m["english_name"] = u.Alias
		out = append(out, m)
	}
	ok(w, "ok", map[string]any{"userlist": out})
}

func (s *Sim) userGet(w http.ResponseWriter, r *http.Request, c *cred) {
	id := r.URL.Query().Get("userid")
	if id == "" {
		s.errJSON(w, r, 41009, "")
		return
	}
	o := s.cfg.Org
	o.RLock()
	defer o.RUnlock()
	u := o.User(id)
	if u == nil {
		s.errJSON(w, r, 60111, "invalid string value `"+id+"`. userid not found")
		return
	}
	if !s.userVisible(c, u) {
		s.errJSON(w, r, 60011, "")
		return
	}
	ok(w, "ok", s.userJSON(c, u))
}

// userListID pages (userid, department) rows with an opaque cursor; contact-sync secret only.
func (s *Sim) userListID(w http.ResponseWriter, r *http.Request, c *cred) {
	var body struct {
		Cursor string      `json:"cursor"`
		Limit  json.Number `json:"limit"`
	}
	if err := decodeBody(r, &body); err != nil {
		s.errJSON(w, r, 40058, "Warning: wrong json format.")
		return
	}
	limit := 10000
	if body.Limit != "" {
		n, err := strconv.Atoi(string(body.Limit))
		if err != nil || n < 1 || n > 10000 {
			s.errJSON(w, r, 40058, "limit must be 1-10000")
			return
		}
		limit = n
	}
	start := 0
	if body.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(body.Cursor)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(b), "c:"))
		if err != nil || err2 != nil || !strings.HasPrefix(string(b), "c:") || n < 0 {
			s.errJSON(w, r, 50100, "")
			return
		}
		start = n
	}
	o := s.cfg.Org
	o.RLock()
	defer o.RUnlock()
	type row struct {
		UserID     string `json:"userid"`
		Department int    `json:"department"`
	}
	page, total := o.Rows(start, limit)
	rows := make([]row, 0, len(page))
	for _, r := range page {
		rows = append(rows, row{r.UserID, r.Dept})
	}
	next := ""
	if start+len(rows) < total {
		next = encodeCursor(start + len(rows))
	}
	ok(w, "ok", map[string]any{"next_cursor": next, "dept_user": nonNil(rows)})
}

// encodeCursor makes the opaque list_id cursor for a row offset.
func encodeCursor(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("c:" + strconv.Itoa(offset)))
}

// ---- writes

var (
	useridRe    = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z_\-@.]{0,63}$`)
	mobileRe    = regexp.MustCompile(`^(\+\d{1,4}-)?\d{6,15}$`)
	emailRe     = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
	telephoneRe = regexp.MustCompile(`^[0-9\-+,]{0,32}$`)
)

const deptNameIllegal = "\\:*?\"<>|"

func validDeptName(name string) int {
	if n := utf8.RuneCountInString(name); n < 1 || n > 32 {
		return 60001
	}
	if strings.ContainsAny(name, deptNameIllegal) {
		return 60009
	}
	return 0
}

type deptBody struct {
	ID       *json.Number `json:"id"`
	Name     *string      `json:"name"`
	NameEn   *string      `json:"name_en"`
	ParentID *json.Number `json:"parentid"`
	Order    *json.Number `json:"order"`
}

func num(n *json.Number) (int64, bool) {
	if n == nil {
		return 0, false
	}
	v, err := n.Int64()
	return v, err == nil
}

func (s *Sim) departmentCreate(w http.ResponseWriter, r *http.Request, c *cred) {
	var b deptBody
	if err := decodeBody(r, &b); err != nil {
		s.errJSON(w, r, 40058, "Warning: wrong json format.")
		return
	}
	if b.Name == nil {
		s.errJSON(w, r, 60001, "")
		return
	}
	if code := validDeptName(*b.Name); code != 0 {
		s.errJSON(w, r, code, "")
		return
	}
	if b.NameEn != nil {
		if code := validDeptName(*b.NameEn); code != 0 {
			s.errJSON(w, r, code, "")
			return
		}
	}
	parent, good := num(b.ParentID)
	if !good || parent < 1 || parent > 1<<31-1 {
		s.errJSON(w, r, 60124, "")
		return
	}
	d := simorg.Dept{ParentID: int(parent), Name: *b.Name}
	if b.NameEn != nil {
		d.NameEn = *b.NameEn
	}
	if b.ID != nil {
		id, good := num(b.ID)
		if !good || id <= 1 || id > 1<<31-1 {
			s.errJSON(w, r, 60123, "")
			return
		}
		d.ID = int(id)
	}
	if b.Order != nil {
		o, good := num(b.Order)
		if !good || o < 0 || o >= 1<<32 {
			s.errJSON(w, r, 40058, "invalid order")
			return
		}
		d.Order = uint32(o)
	}
	nd, err := s.cfg.Org.AddDept(d)
	if err != nil {
		s.errJSON(w, r, orgErrCode(err), "")
		return
	}
	ok(w, "created", map[string]any{"id": nd.ID})
}

func orgErrCode(err error) int {
	switch {
	case errors.Is(err, simorg.ErrParentNotFound):
		return 60004
	case errors.Is(err, simorg.ErrDeptExists):
		return 60008
	case errors.Is(err, simorg.ErrDeptNotFound):
		return 60003
	case errors.Is(err, simorg.ErrCycle):
		return 60010
	case errors.Is(err, simorg.ErrRoot):
		return 60007
	case errors.Is(err, simorg.ErrDeptHasMembers):
		return 60005
	case errors.Is(err, simorg.ErrDeptHasSubs):
		return 60006
	case errors.Is(err, simorg.ErrUserExists):
		return 60102
	case errors.Is(err, simorg.ErrUserNotFound):
		return 60111
	}
	return -1
}

func (s *Sim) departmentUpdate(w http.ResponseWriter, r *http.Request, c *cred) {
	var b deptBody
	if err := decodeBody(r, &b); err != nil {
		s.errJSON(w, r, 40058, "Warning: wrong json format.")
		return
	}
	id, good := num(b.ID)
	if !good {
		s.errJSON(w, r, 60003, "")
		return
	}
	for _, n := range []*string{b.Name, b.NameEn} {
		if n != nil {
			if code := validDeptName(*n); code != 0 {
				s.errJSON(w, r, code, "")
				return
			}
		}
	}
	var parent *int
	if b.ParentID != nil {
		p, good := num(b.ParentID)
		if !good {
			s.errJSON(w, r, 60124, "")
			return
		}
		pi := int(p)
		parent = &pi
	}
	var order *uint32
	if b.Order != nil {
		o, good := num(b.Order)
		if !good || o < 0 || o >= 1<<32 {
			s.errJSON(w, r, 40058, "invalid order")
			return
		}
		ou := uint32(o)
		order = &ou
	}
	if _, err := s.cfg.Org.UpdateDept(int(id), b.Name, b.NameEn, parent, order); err != nil {
		s.errJSON(w, r, orgErrCode(err), "")
		return
	}
	ok(w, "updated", nil)
}

func (s *Sim) departmentDelete(w http.ResponseWriter, r *http.Request, c *cred) {
	id, given, err := queryInt(r, "id")
	if !given || err != nil {
		s.errJSON(w, r, 60003, "")
		return
	}
	if err := s.cfg.Org.DeleteDept(id); err != nil {
		s.errJSON(w, r, orgErrCode(err), "")
		return
	}
	ok(w, "deleted", nil)
}

// UserBody is the user/create and user/update request body (and the control API's user shape).
type UserBody struct {
	UserID         string         `json:"userid"`
	NewUserID      string         `json:"new_userid,omitempty"`
	Name           *string        `json:"name,omitempty"`
	Alias          *string        `json:"alias,omitempty"`
	Mobile         *string        `json:"mobile,omitempty"`
	Department     []int          `json:"department,omitempty"`
	Order          []uint32       `json:"order,omitempty"`
	Position       *string        `json:"position,omitempty"`
	Gender         *string        `json:"gender,omitempty"`
	Email          *string        `json:"email,omitempty"`
	BizMail        *string        `json:"biz_mail,omitempty"`
	IsLeaderInDept []int          `json:"is_leader_in_dept,omitempty"`
	DirectLeader   []string       `json:"direct_leader,omitempty"`
	Enable         *int           `json:"enable,omitempty"`
	Telephone      *string        `json:"telephone,omitempty"`
	Address        *string        `json:"address,omitempty"`
	MainDepartment *int           `json:"main_department,omitempty"`
	Status         *int           `json:"status,omitempty"` // control API only: 1, 2, 4, 5
	ExtAttr        *extAttrBody   `json:"extattr,omitempty"`
	ToInvite       *bool          `json:"to_invite,omitempty"`
	Extra          map[string]any `json:"-"`
}

type extAttrBody struct {
	Attrs []struct {
		Type int    `json:"type"`
		Name string `json:"name"`
		Text *struct {
			Value string `json:"value"`
		} `json:"text,omitempty"`
	} `json:"attrs"`
}

// apply validates b onto u (a copy) and returns the errcode of the first problem.
func (s *Sim) apply(b *UserBody, u *simorg.User, create bool) int {
	o := s.cfg.Org
	if b.Name != nil {
		if n := utf8.RuneCountInString(*b.Name); n < 1 || n > 64 {
			return 60112
		}
		u.Name = *b.Name
	} else if create {
		return 60112
	}
	if b.Alias != nil {
		if utf8.RuneCountInString(*b.Alias) > 64 {
			return 40058
		}
		u.Alias = *b.Alias
	}
	if b.Department != nil || create {
		if len(b.Department) == 0 {
			return 60127
		}
		if len(b.Department) > 100 {
			return 60110
		}
		o.RLock()
		for _, d := range b.Department {
			if o.Dept(d) == nil {
				o.RUnlock()
				return 60003
			}
		}
		o.RUnlock()
		u.Depts = slices.Clone(b.Department)
		u.Orders = make([]uint32, len(u.Depts))
		u.IsLeader = make([]int, len(u.Depts))
		if u.MainDept != 0 && !slices.Contains(u.Depts, u.MainDept) {
			u.MainDept = u.Depts[0]
		}
	}
	if b.Order != nil {
		if len(b.Order) != len(u.Depts) {
			return 40058
		}
		u.Orders = slices.Clone(b.Order)
	}
	if b.IsLeaderInDept != nil {
		if len(b.IsLeaderInDept) != len(u.Depts) {
			return 60132
		}
		u.IsLeader = slices.Clone(b.IsLeaderInDept)
	}
	if b.Position != nil {
		if utf8.RuneCountInString(*b.Position) > 128 {
			return 40058
		}
		u.Position = *b.Position
	}
	if b.Gender != nil {
		if *b.Gender != "1" && *b.Gender != "2" && *b.Gender != "0" {
			return 40058
		}
		u.Gender = *b.Gender
	}
	o.RLock()
	defer o.RUnlock()
	if b.Mobile != nil {
		if *b.Mobile != "" && !mobileRe.MatchString(*b.Mobile) {
			return 60103
		}
		for _, id := range o.UserIDs() {
			if other := o.User(id); *b.Mobile != "" && other.Mobile == *b.Mobile && !strings.EqualFold(id, u.UserID) {
				return 60104
			}
		}
		u.Mobile = *b.Mobile
	}
	if b.Email != nil {
		if *b.Email != "" && (len(*b.Email) < 6 || len(*b.Email) > 64 || !emailRe.MatchString(*b.Email)) {
			return 60105
		}
		for _, id := range o.UserIDs() {
			if other := o.User(id); *b.Email != "" && other.Email == *b.Email && !strings.EqualFold(id, u.UserID) {
				return 60106
			}
		}
		u.Email = *b.Email
	}
	if create && u.Mobile == "" && u.Email == "" {
		return 60129
	}
	if b.BizMail != nil {
		u.BizMail = *b.BizMail
	}
	if b.DirectLeader != nil {
		if len(b.DirectLeader) > 5 {
			return 40058
		}
		u.DirectLeader = slices.Clone(b.DirectLeader)
	}
	if b.Telephone != nil {
		if !telephoneRe.MatchString(*b.Telephone) {
			return 40058
		}
		u.Telephone = *b.Telephone
	}
	if b.Address != nil {
		if utf8.RuneCountInString(*b.Address) > 128 {
			return 40058
		}
		u.Address = *b.Address
	}
	if b.MainDepartment != nil {
		if !slices.Contains(u.Depts, *b.MainDepartment) {
			return 40058
		}
		u.MainDept = *b.MainDepartment
	}
	if b.Enable != nil {
		switch *b.Enable {
		case 0:
			u.Status = simorg.StatusDisabled
		case 1:
			if u.Status == simorg.StatusDisabled || u.Status == 0 {
				u.Status = simorg.StatusActive
			}
		default:
			return 40058
		}
	}
	if b.Status != nil {
		switch *b.Status {
		case simorg.StatusActive, simorg.StatusDisabled, simorg.StatusNotActivated, simorg.StatusExited:
			u.Status = *b.Status
		default:
			return 40058
		}
	}
	if u.Status == 0 {
		u.Status = simorg.StatusActive
		if b.ToInvite == nil || *b.ToInvite {
			u.Status = simorg.StatusNotActivated // invited, not yet activated
		}
	}
	if b.ExtAttr != nil {
		u.ExtAttrs = nil
		for _, a := range b.ExtAttr.Attrs {
			if a.Type == 0 && a.Text != nil {
				u.ExtAttrs = append(u.ExtAttrs, simorg.ExtAttr{Name: a.Name, Value: a.Text.Value})
			}
		}
	}
	return 0
}

// putUser validates and stores a user; it returns the stored user (nil on error, written to w).
func (s *Sim) putUser(w http.ResponseWriter, r *http.Request, b *UserBody, create bool) (*simorg.User, *simorg.User) {
	if b.UserID == "" {
		s.errJSON(w, r, 41009, "")
		return nil, nil
	}
	o := s.cfg.Org
	var u, before *simorg.User
	o.RLock()
	cur := o.User(b.UserID)
	o.RUnlock()
	if create {
		if !useridRe.MatchString(b.UserID) {
			s.errJSON(w, r, 40003, "")
			return nil, nil
		}
		if cur != nil {
			s.errJSON(w, r, 60102, "")
			return nil, nil
		}
		u = &simorg.User{UserID: b.UserID, Gender: "0"}
	} else {
		if cur == nil {
			s.errJSON(w, r, 60111, "")
			return nil, nil
		}
		before = cur.Clone()
		u = cur.Clone()
	}
	if code := s.apply(b, u, create); code != 0 {
		s.errJSON(w, r, code, "")
		return nil, nil
	}
	stored, err := o.PutUser(u, create)
	if err != nil {
		s.errJSON(w, r, orgErrCode(err), "")
		return nil, nil
	}
	return before, stored
}

func (s *Sim) userCreate(w http.ResponseWriter, r *http.Request, c *cred) {
	var b UserBody
	if err := decodeBody(r, &b); err != nil {
		s.errJSON(w, r, 40058, "Warning: wrong json format.")
		return
	}
	if _, u := s.putUser(w, r, &b, true); u != nil {
		ok(w, "created", nil)
	}
}

func (s *Sim) userUpdate(w http.ResponseWriter, r *http.Request, c *cred) {
	var b UserBody
	if err := decodeBody(r, &b); err != nil {
		s.errJSON(w, r, 40058, "Warning: wrong json format.")
		return
	}
	if b.NewUserID != "" {
		if !useridRe.MatchString(b.NewUserID) {
			s.errJSON(w, r, 40003, "")
			return
		}
		if _, err := s.cfg.Org.RenameUser(b.UserID, b.NewUserID); err != nil {
			s.errJSON(w, r, orgErrCode(err), "")
			return
		}
		b.UserID = b.NewUserID
	}
	if _, u := s.putUser(w, r, &b, false); u != nil {
		ok(w, "updated", nil)
	}
}

func (s *Sim) userDelete(w http.ResponseWriter, r *http.Request, c *cred) {
	id := r.URL.Query().Get("userid")
	if id == "" {
		s.errJSON(w, r, 41009, "")
		return
	}
	if _, err := s.cfg.Org.DeleteUser(id); err != nil {
		s.errJSON(w, r, orgErrCode(err), "")
		return
	}
	ok(w, "deleted", nil)
}

func (s *Sim) userBatchDelete(w http.ResponseWriter, r *http.Request, c *cred) {
	var b struct {
		UserIDList []string `json:"useridlist"`
	}
	if err := decodeBody(r, &b); err != nil {
		s.errJSON(w, r, 40058, "Warning: wrong json format.")
		return
	}
	if len(b.UserIDList) == 0 {
		s.errJSON(w, r, 40031, "")
		return
	}
	if len(b.UserIDList) > 200 {
		s.errJSON(w, r, 40032, "")
		return
	}
	o := s.cfg.Org
	o.RLock()
	for _, id := range b.UserIDList {
		if o.User(id) == nil {
			o.RUnlock()
			s.errJSON(w, r, 40031, "invalid userid "+id)
			return
		}
	}
	o.RUnlock()
	for _, id := range b.UserIDList {
		_, _ = o.DeleteUser(id)
	}
	ok(w, "deleted", nil)
}
