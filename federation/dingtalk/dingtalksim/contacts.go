package dingtalksim

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"

	"github.com/qiao-gateway/qiao/federation/simorg"
)

func (s *Sim) deptVisible(a *App, id int) bool {
	if len(a.VisibleDepts) == 0 {
		return s.cfg.Org.Dept(id) != nil
	}
	o := s.cfg.Org
	for id != 0 {
		if slices.Contains(a.VisibleDepts, id) {
			return true
		}
		d := o.Dept(id)
		if d == nil {
			return false
		}
		id = d.ParentID
	}
	return false
}

func (s *Sim) userVisible(a *App, u *simorg.User) bool {
	if !present(u) {
		return false
	}
	for _, d := range u.Depts {
		if s.deptVisible(a, d) {
			return true
		}
	}
	return false
}

// deptArg reads dept_id (required unless optional) and checks it exists and, when scoped, is in
// the app's scope.
func (s *Sim) deptArg(w http.ResponseWriter, c *cred, b map[string]any, optional, scoped bool) (int, bool) {
	id, given, good := intField(b, "dept_id")
	if !good || (!given && !optional) {
		s.oapiErr(w, 40035, "参数非法: dept_id")
		return 0, false
	}
	if !given {
		id = simorg.RootID
	}
	o := s.cfg.Org
	if o.Dept(int(id)) == nil {
		s.oapiErr(w, 60003, "")
		return 0, false
	}
	if scoped && !s.deptVisible(c.app, int(id)) {
		s.oapiErr(w, 50004, "")
		return 0, false
	}
	return int(id), true
}

func (s *Sim) listsub(w http.ResponseWriter, r *http.Request, c *cred, b map[string]any) {
	o := s.cfg.Org
	o.RLock()
	defer o.RUnlock()
	id, good := s.deptArg(w, c, b, true, true)
	if !good {
		return
	}
	en := strField(b, "language") == "en_US"
	out := []map[string]any{}
	for _, child := range o.Children(id) {
		d := o.Dept(child)
		name := d.Name
		if en && d.NameEn != "" {
			name = d.NameEn
		}
		out = append(out, map[string]any{"dept_id": d.ID, "name": name, "parent_id": d.ParentID, "create_dept_group": false, "auto_add_user": true})
	}
	oapiOK(w, out)
}

// listsubid is one level and not limited by the contact scope.
func (s *Sim) listsubid(w http.ResponseWriter, r *http.Request, c *cred, b map[string]any) {
	o := s.cfg.Org
	o.RLock()
	defer o.RUnlock()
	id, good := s.deptArg(w, c, b, false, false)
	if !good {
		return
	}
	oapiOK(w, map[string]any{"dept_id_list": nonNil(o.Children(id))})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (s *Sim) deptGet(w http.ResponseWriter, r *http.Request, c *cred, b map[string]any) {
	o := s.cfg.Org
	o.RLock()
	defer o.RUnlock()
	id, good := s.deptArg(w, c, b, false, true)
	if !good {
		return
	}
	d := o.Dept(id)
	total := 0
	for _, sub := range o.Subtree(id) {
		total += len(o.Members(sub))
	}
	res := map[string]any{"dept_id": d.ID, "name": d.Name, "source_identifier": "", "create_dept_group": false,
		"auto_add_user": true, "from_union_org": false, "tags": "", "order": d.Order, "dept_group_chat_id": "",
		"group_contain_sub_dept": false, "org_dept_owner": "", "dept_manager_userid_list": nonNil(d.Leaders),
		"outer_dept": false, "hide_dept": false, "code": "", "member_count": total, "owning_member_count": len(o.Members(id))}
	if d.ID != simorg.RootID {
		res["parent_id"] = d.ParentID
	}
	oapiOK(w, res)
}

func (s *Sim) userArg(w http.ResponseWriter, c *cred, b map[string]any) (*simorg.User, bool) {
	id := strField(b, "userid")
	if id == "" {
		s.oapiErr(w, 40035, "参数非法: userid")
		return nil, false
	}
	u := s.cfg.Org.User(id)
	if u == nil || !present(u) || u.UserID != id { // DingTalk userids are exact
		s.oapiErr(w, 33012, "")
		return nil, false
	}
	if !s.userVisible(c.app, u) {
		s.oapiErr(w, 50002, "")
		return nil, false
	}
	return u, true
}

func (s *Sim) listParentByUser(w http.ResponseWriter, r *http.Request, c *cred, b map[string]any) {
	o := s.cfg.Org
	o.RLock()
	defer o.RUnlock()
	u, good := s.userArg(w, c, b)
	if !good {
		return
	}
	chains := []map[string]any{}
	for _, d := range u.Depts {
		var chain []int // leaf first, ending at the root
		for id := d; id != 0; id = o.Dept(id).ParentID {
			chain = append(chain, id)
		}
		chains = append(chains, map[string]any{"parent_dept_id_list": chain})
	}
	oapiOK(w, map[string]any{"parent_list": chains})
}

// userListID lists direct members; not limited by the contact scope.
func (s *Sim) userListID(w http.ResponseWriter, r *http.Request, c *cred, b map[string]any) {
	o := s.cfg.Org
	o.RLock()
	defer o.RUnlock()
	id, good := s.deptArg(w, c, b, false, false)
	if !good {
		return
	}
	ids := []string{}
	for _, uid := range o.Members(id) {
		if present(o.User(uid)) {
			ids = append(ids, uid)
		}
	}
	oapiOK(w, map[string]any{"userid_list": ids})
}

// page reads cursor and size (≤ 100) and returns the direct members' slice.
func (s *Sim) page(w http.ResponseWriter, c *cred, b map[string]any, required bool, sizeCode int) ([]*simorg.User, int, bool, bool) {
	id, good := s.deptArg(w, c, b, false, true)
	if !good {
		return nil, 0, false, false
	}
	cursor, cGiven, cOK := intField(b, "cursor")
	size, sGiven, sOK := intField(b, "size")
	if !cOK || cursor < 0 || (required && !cGiven) {
		s.oapiErr(w, 40035, "参数非法: cursor")
		return nil, 0, false, false
	}
	if !sOK || (required && !sGiven) || (sGiven && (size < 1 || size > 100)) {
		s.oapiErr(w, sizeCode, "")
		return nil, 0, false, false
	}
	if !sGiven {
		size = 100
	}
	switch strField(b, "order_field") {
	case "", "entry_asc", "entry_desc", "modify_asc", "modify_desc", "custom":
	default:
		s.oapiErr(w, 40035, "参数非法: order_field")
		return nil, 0, false, false
	}
	limited, good := boolField(b, "contain_access_limit")
	if !good {
		s.oapiErr(w, 40035, "参数非法: contain_access_limit")
		return nil, 0, false, false
	}
	o := s.cfg.Org
	var members []*simorg.User
	for _, uid := range o.Members(id) {
		if u := o.User(uid); present(u) && (limited || !slices.Contains(s.cfg.AccessLimited, uid)) {
			members = append(members, u)
		}
	}
	switch strField(b, "order_field") {
	case "entry_asc":
		slices.SortStableFunc(members, func(a, b *simorg.User) int { return cmp64(a.HiredDate, b.HiredDate) })
	case "entry_desc":
		slices.SortStableFunc(members, func(a, b *simorg.User) int { return cmp64(b.HiredDate, a.HiredDate) })
	case "modify_asc":
		slices.SortStableFunc(members, func(a, b *simorg.User) int { return cmp64(a.Modified, b.Modified) })
	case "modify_desc":
		slices.SortStableFunc(members, func(a, b *simorg.User) int { return cmp64(b.Modified, a.Modified) })
	}
	start := min(int(cursor), len(members))
	end := min(start+int(size), len(members))
	return members[start:end], end, end < len(members), true
}

func cmp64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *Sim) userListSimple(w http.ResponseWriter, r *http.Request, c *cred, b map[string]any) {
	o := s.cfg.Org
	o.RLock()
	defer o.RUnlock()
	users, next, more, good := s.page(w, c, b, false, 40069)
	if !good {
		return
	}
	list := []map[string]any{}
	for _, u := range users {
		list = append(list, map[string]any{"userid": u.UserID, "name": u.Name})
	}
	res := map[string]any{"has_more": more, "list": list}
	if more {
		res["next_cursor"] = next
	}
	oapiOK(w, res)
}

func (s *Sim) userJSON(a *App, u *simorg.User, full bool) map[string]any {
	leader := false
	var leaderIn []map[string]any
	var orders []map[string]any
	for i, d := range u.Depts {
		l := i < len(u.IsLeader) && u.IsLeader[i] == 1
		leader = leader || l
		leaderIn = append(leaderIn, map[string]any{"dept_id": d, "leader": l})
		var ord uint32
		if i < len(u.Orders) {
			ord = u.Orders[i]
		}
		orders = append(orders, map[string]any{"dept_id": d, "order": ord})
	}
	ext := map[string]string{}
	for _, e := range u.ExtAttrs {
		ext[e.Name] = e.Value
	}
	extJSON, _ := json.Marshal(ext)
	m := map[string]any{"userid": u.UserID, "unionid": u.UnionID, "name": u.Name, "avatar": u.Avatar, "hide_mobile": false,
		"telephone": u.Telephone, "job_number": u.JobNumber, "title": u.Position, "dept_id_list": nonNil(u.Depts),
		"hired_date": u.HiredDate, "active": u.Status == simorg.StatusActive, "admin": false, "boss": false,
		"leader": leader, "exclusive_account": false}
	if a.MobilePerm {
		m["mobile"], m["state_code"] = u.Mobile, "86"
	}
	if a.EmailPerm {
		// Only when non-empty, as documented.
		for k, v := range map[string]string{"email": u.Email, "org_email": u.BizMail, "work_place": u.Address, "extension": string(extJSON)} {
			if v != "" && v != "{}" {
				m[k] = v
			}
		}
	}
	if full {
		m["dept_order_list"] = orders
		m["leader_in_dept"] = leaderIn
		m["role_list"] = []any{}
		m["real_authed"] = true
		m["senior"] = false
		m["union_emp_ext"] = map[string]any{}
		if len(u.DirectLeader) > 0 {
			m["manager_userid"] = u.DirectLeader[0]
		}
	} else {
		m["dept_order"] = 0
	}
	return m
}

func (s *Sim) userList(w http.ResponseWriter, r *http.Request, c *cred, b map[string]any) {
	o := s.cfg.Org
	o.RLock()
	defer o.RUnlock()
	users, next, more, good := s.page(w, c, b, true, 40035)
	if !good {
		return
	}
	list := []map[string]any{}
	for _, u := range users {
		list = append(list, s.userJSON(c.app, u, false))
	}
	res := map[string]any{"has_more": more, "list": list}
	if more {
		res["next_cursor"] = next
	}
	oapiOK(w, res)
}

func (s *Sim) userGet(w http.ResponseWriter, r *http.Request, c *cred, b map[string]any) {
	o := s.cfg.Org
	o.RLock()
	defer o.RUnlock()
	u, good := s.userArg(w, c, b)
	if !good {
		return
	}
	oapiOK(w, s.userJSON(c.app, u, true))
}

func (s *Sim) getByUnionID(w http.ResponseWriter, r *http.Request, c *cred, b map[string]any) {
	union := strField(b, "unionid")
	if union == "" {
		s.oapiErr(w, 40035, "参数非法: unionid")
		return
	}
	if ext, ok := s.externals.Load(union); ok {
		oapiOK(w, map[string]any{"contact_type": 1, "userid": ext})
		return
	}
	o := s.cfg.Org
	o.RLock()
	defer o.RUnlock()
	u := o.UserByUnionID(union)
	if u == nil || !present(u) {
		s.oapiErr(w, 60121, "")
		return
	}
	oapiOK(w, map[string]any{"contact_type": 0, "userid": u.UserID})
}

func (s *Sim) userCount(w http.ResponseWriter, r *http.Request, c *cred, b map[string]any) {
	only, good := boolField(b, "only_active")
	if _, given := b["only_active"]; !given || !good {
		s.oapiErr(w, 40035, "参数非法: only_active")
		return
	}
	o := s.cfg.Org
	o.RLock()
	defer o.RUnlock()
	n := 0
	for _, id := range o.UserIDs() {
		u := o.User(id)
		if present(u) && (!only || u.Status == simorg.StatusActive) {
			n++
		}
	}
	oapiOK(w, map[string]any{"count": n})
}

// h5UserInfo exchanges an in-app free-login code (5 minutes, single use).
func (s *Sim) h5UserInfo(w http.ResponseWriter, r *http.Request, c *cred, b map[string]any) {
	code := strField(b, "code")
	uid, found := s.jsCodes.Take(code, s.cfg.Now())
	if code == "" || !found {
		s.oapiErr(w, 40078, "")
		return
	}
	o := s.cfg.Org
	o.RLock()
	defer o.RUnlock()
	u := o.User(uid)
	if u == nil || !present(u) {
		s.oapiErr(w, 40078, "")
		return
	}
	oapiOK(w, map[string]any{"userid": u.UserID, "device_id": "dev" + strconv.Itoa(len(u.UserID)), "sys": false, "sys_level": 0,
		"associated_unionid": "", "unionid": u.UnionID, "name": u.Name})
}
