package wecomsim

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"

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
