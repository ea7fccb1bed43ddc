package wecom

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/upstream"
)

// Read modes, as the task records them.
const (
	ModeFull       = "department/list+user/list"
	ModeIDOnly     = "department/simplelist+user/list_id"
	ModeIDAppNames = "department/simplelist+user/list_id, names from the app secret"
)

// Reader reads a WeCom directory. With the contact-sync secret it sees the whole corp, else the
// app's visibility scope. It prefers department/list + user/list (one call per department).
// When the contact-sync secret may not call them — the 2022-08-15 rule for IPs newly added to
// 通讯录同步, errcode 48009 today (48002 on older answers) — it falls back to
// department/simplelist + user/list_id, which carry no names; if the app's secret is configured
// too, the names and fields it can see (its visibility scope) are read with it, while who exists
// and in which departments still comes from the contact-sync secret.
type Reader struct {
	c          *Client
	secret     string
	appSecret  string // the app's secret when the contact-sync secret is the main one
	restricted bool
	mode       string
	appDepts   map[string]json.RawMessage // department/list of the app secret, by ID (restricted mode)
}

// Reader returns a directory reader.
func (c *Client) Reader() *Reader {
	if c.s.ContactSecret == "" {
		return &Reader{c: c, secret: c.s.Secret}
	}
	return &Reader{c: c, secret: c.s.ContactSecret, appSecret: c.s.Secret}
}

var _ federation.DirectoryReader = (*Reader)(nil)

// Info implements federation.DirectoryReader.
func (r *Reader) Info() federation.ReadInfo {
	return federation.ReadInfo{Mode: r.mode, Calls: int(r.c.Calls())}
}

// contactRestricted reports whether err is the platform refusing the full read APIs to the
// contact-sync secret: 48009 "api forbidden for contact assistant" (what new IPs get since
// 2022-08-15) or 48002.
func contactRestricted(err error) bool {
	var fe *federation.Error
	return errors.As(err, &fe) && (fe.Code == 48009 || fe.Code == 48002)
}

// hasCode reports whether err is an upstream errcode among codes.
func hasCode(err error, codes ...int) bool {
	var fe *federation.Error
	return errors.As(err, &fe) && slices.Contains(codes, fe.Code)
}

type wDept struct {
	ID       int64  `json:"id"`
	ParentID int64  `json:"parentid"`
	Name     string `json:"name"`
	Order    int64  `json:"order"`
}

// placeholder is the name of a department read without names.
func placeholder(id string) string { return "部门" + id }

// loadAppDepts reads the app secret's departments (its visibility scope) once, for their names.
func (r *Reader) loadAppDepts(ctx context.Context) error {
	if r.appSecret == "" || r.appDepts != nil {
		return nil
	}
	var resp struct {
		Department []json.RawMessage `json:"department"`
	}
	if err := r.c.Call(ctx, "department/list", http.MethodGet, nil, nil, r.appSecret, &resp); err != nil {
		return err
	}
	r.appDepts = make(map[string]json.RawMessage, len(resp.Department))
	for _, raw := range resp.Department {
		var d wDept
		if err := json.Unmarshal(raw, &d); err != nil {
			return &federation.Error{Platform: "WeCom", API: "department/list", Message: "malformed department: " + err.Error()}
		}
		r.appDepts[strconv.FormatInt(d.ID, 10)] = raw
	}
	return nil
}

func (r *Reader) setMode() {
	switch {
	case !r.restricted:
		r.mode = ModeFull
	case r.appSecret != "":
		r.mode = ModeIDAppNames
	default:
		r.mode = ModeIDOnly
	}
}

// Departments implements federation.DirectoryReader.
func (r *Reader) Departments(ctx context.Context, roots []string) ([]federation.Dept, error) {
	if len(roots) == 0 {
		roots = []string{""}
	}
	var out []federation.Dept
	seen := map[string]bool{}
	for _, root := range roots {
		q := url.Values{}
		if root != "" {
			q.Set("id", root)
		}
		var raws []json.RawMessage
		var err error
		if !r.restricted {
			var resp struct {
				Department []json.RawMessage `json:"department"`
			}
			err = r.c.Call(ctx, "department/list", http.MethodGet, q, nil, r.secret, &resp)
			raws = resp.Department
			if contactRestricted(err) {
				r.restricted = true
			} else if err != nil {
				return nil, err
			}
		}
		if r.restricted {
			var resp struct {
				DepartmentID []json.RawMessage `json:"department_id"`
			}
			if err := r.c.Call(ctx, "department/simplelist", http.MethodGet, q, nil, r.secret, &resp); err != nil {
				return nil, err
			}
			raws = resp.DepartmentID
			if err := r.loadAppDepts(ctx); err != nil {
				return nil, err
			}
		}
		for i, raw := range raws {
			var d wDept
			if err := json.Unmarshal(raw, &d); err != nil {
				return nil, &federation.Error{Platform: "WeCom", API: "department/list", Message: "malformed department: " + err.Error()}
			}
			id := strconv.FormatInt(d.ID, 10)
			if seen[id] {
				continue
			}
			seen[id] = true
			parent := strconv.FormatInt(d.ParentID, 10)
			if d.ParentID == 0 || (i == 0 && root != "") {
				parent = "" // the root of what was read
			}
			name := d.Name
			if r.restricted {
				name = r.restrictedName(id)
			}
			out = append(out, federation.Dept{ID: id, ParentID: parent, Name: name, Order: d.Order, Raw: raw})
		}
	}
	r.setMode()
	return out, nil
}

// restrictedName is a department's name in the restricted mode: the app secret's, where it sees
// the department.
func (r *Reader) restrictedName(id string) string {
	if raw, ok := r.appDepts[id]; ok {
		var d wDept
		if json.Unmarshal(raw, &d) == nil && d.Name != "" {
			return d.Name
		}
	}
	return placeholder(id)
}

type wUser struct {
	UserID     string  `json:"userid"`
	Name       string  `json:"name"`
	Department []int64 `json:"department"`
	Position   string  `json:"position"`
	// Withheld from apps created after 2022-06-20 (the key is absent, not empty): nil means
	// "not returned", so sync keeps what qiao knows (a consented login, say) instead of erasing it.
	Mobile         *string  `json:"mobile"`
	Gender         string   `json:"gender"`
	Email          *string  `json:"email"`
	BizMail        *string  `json:"biz_mail"`
	Status         int      `json:"status"`
	Alias          string   `json:"alias"`
	EnglishName    string   `json:"english_name"`
	Telephone      string   `json:"telephone"`
	Address        *string  `json:"address"`
	MainDepartment int64    `json:"main_department"`
	DirectLeader   []string `json:"direct_leader"`
	ExtAttr        struct {
		Attrs []struct {
			Type int    `json:"type"`
			Name string `json:"name"`
			Text struct {
				Value string `json:"value"`
			} `json:"text"`
			Web struct {
				URL string `json:"url"`
			} `json:"web"`
		} `json:"attrs"`
	} `json:"extattr"`
}

func statusOf(code int) federation.UserStatus {
	switch code {
	case 1:
		return federation.StatusActive
	case 2:
		return federation.StatusDisabled
	case 4:
		return federation.StatusInactive
	case 5:
		return federation.StatusExited
	}
	return federation.StatusInactive
}

func toUser(u wUser, raw json.RawMessage) federation.User {
	attrs := map[string]string{"userid": u.UserID, "name": u.Name, "position": u.Position, "gender": u.Gender,
		"alias": u.Alias, "english_name": u.EnglishName, "telephone": u.Telephone}
	for k, v := range map[string]*string{"mobile": u.Mobile, "email": u.Email, "biz_mail": u.BizMail, "address": u.Address} {
		if v != nil {
			attrs[k] = *v
		}
	}
	if u.MainDepartment != 0 {
		attrs["main_department"] = strconv.FormatInt(u.MainDepartment, 10)
	}
	for _, a := range u.ExtAttr.Attrs {
		v := a.Text.Value
		if a.Type == 1 {
			v = a.Web.URL
		}
		attrs["ext."+a.Name] = v
	}
	depts := make([]string, len(u.Department))
	for i, d := range u.Department {
		depts[i] = strconv.FormatInt(d, 10)
	}
	return federation.User{UserID: u.UserID, Status: statusOf(u.Status), Depts: depts, Attrs: attrs, Raw: raw}
}

// Users implements federation.DirectoryReader.
func (r *Reader) Users(ctx context.Context, depts []federation.Dept, fn func(federation.User) error) error {
	inScope := make(map[string]bool, len(depts))
	for _, d := range depts {
		inScope[d.ID] = true
	}
	if r.restricted {
		return r.usersByListID(ctx, depts, inScope, fn)
	}
	seen := map[string]bool{}
	return r.userLists(ctx, depts, r.secret, func(u wUser, raw json.RawMessage) error {
		if seen[u.UserID] {
			return nil
		}
		seen[u.UserID] = true
		fu := toUser(u, raw)
		fu.Depts = filter(fu.Depts, inScope)
		return fn(fu)
	})
}

// readAhead is how many departments' user/list calls are in flight at once: a full read waits
// for the platform once per readAhead departments, well inside WeCom's per-API limits.
const readAhead = 4

// listedUser is one member of a user/list answer, decoded where the answer was fetched.
type listedUser struct {
	u   wUser
	raw json.RawMessage
}

// userLists calls user/list with secret for each department, readAhead at a time, and calls fn
// for each member in department order.
func (r *Reader) userLists(ctx context.Context, depts []federation.Dept, secret string, fn func(wUser, json.RawMessage) error) error {
	return upstream.Ordered(ctx, len(depts), readAhead, func(ctx context.Context, i int, emit func([]listedUser) error) error {
		var resp struct {
			apiError
			UserList []json.RawMessage `json:"userlist"`
		}
		if err := r.c.Call(ctx, "user/list", http.MethodGet, url.Values{"department_id": {depts[i].ID}}, nil, secret, &resp); err != nil {
			return err
		}
		page := make([]listedUser, len(resp.UserList))
		for j, raw := range resp.UserList {
			if err := upstream.DecodeJSON(raw, &page[j].u); err != nil {
				return &federation.Error{Platform: "WeCom", API: "user/list", Message: "malformed user: " + err.Error()}
			}
			page[j].raw = raw
		}
		return emit(page)
	}, func(page []listedUser) error {
		for _, m := range page {
			if err := fn(m.u, m.raw); err != nil {
				return err
			}
		}
		return nil
	})
}

func filter(ids []string, keep map[string]bool) []string {
	out := ids[:0:0]
	for _, id := range ids {
		if keep[id] {
			out = append(out, id)
		}
	}
	return out
}

// listID pages user/list_id (one row per user and department) with the contact-sync secret,
// calling fn for each row.
func (r *Reader) listID(ctx context.Context, fn func(userid, dept string)) error {
	cursor := ""
	for {
		body := map[string]any{"limit": 10000}
		if cursor != "" {
			body["cursor"] = cursor
		}
		var resp struct {
			NextCursor string `json:"next_cursor"`
			DeptUser   []struct {
				UserID     string `json:"userid"`
				Department int64  `json:"department"`
			} `json:"dept_user"`
		}
		if err := r.c.Call(ctx, "user/list_id", http.MethodPost, nil, body, r.secret, &resp); err != nil {
			return err
		}
		for _, row := range resp.DeptUser {
			fn(row.UserID, strconv.FormatInt(row.Department, 10))
		}
		if resp.NextCursor == "" {
			return nil
		}
		cursor = resp.NextCursor
	}
}

// idOnlyUser is a member known only by its ID: without user/get, status is unknown and a listed
// member is taken as active.
func idOnlyUser(id string, depts []string) federation.User {
	return federation.User{UserID: id, Status: federation.StatusActive, Depts: depts, Attrs: map[string]string{"userid": id, "name": id}}
}

// usersByListID reads who is in which department from user/list_id; with the app secret, the
// fields of the members it can see come from its user/list.
func (r *Reader) usersByListID(ctx context.Context, depts []federation.Dept, inScope map[string]bool, fn func(federation.User) error) error {
	members := map[string][]string{}
	var order []string
	err := r.listID(ctx, func(id, d string) {
		if !inScope[d] {
			return
		}
		if _, ok := members[id]; !ok {
			order = append(order, id)
		}
		members[id] = append(members[id], d)
	})
	if err != nil {
		return err
	}
	named := map[string]federation.User{}
	if r.appSecret != "" {
		var visible []federation.Dept
		for _, d := range depts {
			if _, ok := r.appDepts[d.ID]; ok {
				visible = append(visible, d)
			}
		}
		err := r.userLists(ctx, visible, r.appSecret, func(u wUser, raw json.RawMessage) error {
			if _, ok := members[u.UserID]; ok {
				named[u.UserID] = toUser(u, raw)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, id := range order {
		u, ok := named[id]
		if !ok {
			u = idOnlyUser(id, nil)
		}
		u.Depts = members[id] // the contact-sync secret sees every department
		if err := fn(u); err != nil {
			return err
		}
	}
	return nil
}

// User reads one user (events re-read the users they name). In the restricted mode it finds the
// user's departments in user/list_id (a pass over the corp's rows, 10,000 a call) and its fields
// with the app secret's user/get where the app sees it.
func (r *Reader) User(ctx context.Context, userid string) (federation.User, error) {
	if !r.restricted {
		u, err := r.userGet(ctx, userid, r.secret)
		if !contactRestricted(err) {
			return u, err
		}
		r.restricted = true
	}
	var depts []string
	err := r.listID(ctx, func(id, d string) {
		if strings.EqualFold(id, userid) { // userids compare case-insensitively
			userid = id
			depts = append(depts, d)
		}
	})
	if err != nil {
		return federation.User{}, err
	}
	if depts == nil {
		return federation.User{}, &federation.Error{Platform: "WeCom", API: "user/list_id", Message: "userid " + userid + " not listed", Err: federation.ErrNotFound}
	}
	if r.appSecret != "" {
		u, err := r.userGet(ctx, userid, r.appSecret)
		switch {
		case err == nil:
			u.Depts = depts
			return u, nil
		case !hasCode(err, 60011, 60111):
			return federation.User{}, err
		}
		// outside the app's visibility scope: IDs only
	}
	return idOnlyUser(userid, depts), nil
}

func (r *Reader) userGet(ctx context.Context, userid, secret string) (federation.User, error) {
	var raw json.RawMessage
	if err := r.c.Call(ctx, "user/get", http.MethodGet, url.Values{"userid": {userid}}, nil, secret, &raw); err != nil {
		return federation.User{}, err
	}
	var u wUser
	if err := json.Unmarshal(raw, &u); err != nil {
		return federation.User{}, &federation.Error{Platform: "WeCom", API: "user/get", Message: "malformed user: " + err.Error()}
	}
	return toUser(u, raw), nil
}

// Department reads one department; in the restricted mode from department/simplelist, named by
// the app secret's department/get where the app sees it.
func (r *Reader) Department(ctx context.Context, id string) (federation.Dept, error) {
	if !r.restricted {
		d, err := r.departmentGet(ctx, id, r.secret)
		if !contactRestricted(err) {
			return d, err
		}
		r.restricted = true
	}
	var resp struct {
		DepartmentID []json.RawMessage `json:"department_id"`
	}
	if err := r.c.Call(ctx, "department/simplelist", http.MethodGet, url.Values{"id": {id}}, nil, r.secret, &resp); err != nil {
		return federation.Dept{}, err
	}
	for _, raw := range resp.DepartmentID {
		var d wDept
		if err := json.Unmarshal(raw, &d); err != nil {
			return federation.Dept{}, &federation.Error{Platform: "WeCom", API: "department/simplelist", Message: "malformed department: " + err.Error()}
		}
		if strconv.FormatInt(d.ID, 10) != id {
			continue // the subtree below it
		}
		out := federation.Dept{ID: id, Name: placeholder(id), Order: d.Order, Raw: raw}
		if d.ParentID != 0 {
			out.ParentID = strconv.FormatInt(d.ParentID, 10)
		}
		if r.appSecret != "" {
			named, err := r.departmentGet(ctx, id, r.appSecret)
			switch {
			case err == nil:
				out.Name = named.Name
			case !hasCode(err, 60011, 60003):
				return federation.Dept{}, err
			}
		}
		return out, nil
	}
	return federation.Dept{}, &federation.Error{Platform: "WeCom", API: "department/simplelist", Message: "department " + id + " not listed", Err: federation.ErrNotFound}
}

func (r *Reader) departmentGet(ctx context.Context, id, secret string) (federation.Dept, error) {
	var resp struct {
		Department json.RawMessage `json:"department"`
	}
	if err := r.c.Call(ctx, "department/get", http.MethodGet, url.Values{"id": {id}}, nil, secret, &resp); err != nil {
		return federation.Dept{}, err
	}
	var d wDept
	if err := json.Unmarshal(resp.Department, &d); err != nil {
		return federation.Dept{}, &federation.Error{Platform: "WeCom", API: "department/get", Message: "malformed department: " + err.Error()}
	}
	parent := strconv.FormatInt(d.ParentID, 10)
	if d.ParentID == 0 {
		parent = ""
	}
	return federation.Dept{ID: strconv.FormatInt(d.ID, 10), ParentID: parent, Name: d.Name, Order: d.Order, Raw: resp.Department}, nil
}
