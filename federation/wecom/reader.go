package wecom

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/qiao-gateway/qiao/federation"
)

// Reader reads a WeCom directory. With the contact-sync secret it sees the whole corp, else the
// app's visibility scope. It prefers department/list + user/list (one call per department); when
// the secret may not call them (the 2022-08-15 rule, 48002) it falls back to
// department/simplelist + user/list_id, which carry no names.
type Reader struct {
	c          *Client
	secret     string
	restricted bool
	mode       string
}

// Reader returns a directory reader.
func (c *Client) Reader() *Reader {
	secret := c.s.ContactSecret
	if secret == "" {
		secret = c.s.Secret
	}
	return &Reader{c: c, secret: secret}
}

var _ federation.DirectoryReader = (*Reader)(nil)

// Info implements federation.DirectoryReader.
func (r *Reader) Info() federation.ReadInfo {
	return federation.ReadInfo{Mode: r.mode, Calls: int(r.c.Calls())}
}

type wDept struct {
	ID       int64  `json:"id"`
	ParentID int64  `json:"parentid"`
	Name     string `json:"name"`
	Order    int64  `json:"order"`
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
			var fe *federation.Error
			if errors.As(err, &fe) && fe.Code == 48002 {
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
				name = "部门" + id // simplelist carries no names
			}
			out = append(out, federation.Dept{ID: id, ParentID: parent, Name: name, Order: d.Order, Raw: raw})
		}
	}
	if r.restricted {
		r.mode = "department/simplelist+user/list_id"
	} else {
		r.mode = "department/list+user/list"
	}
	return out, nil
}

type wUser struct {
	UserID         string   `json:"userid"`
	Name           string   `json:"name"`
	Department     []int64  `json:"department"`
	Position       string   `json:"position"`
	Mobile         string   `json:"mobile"`
	Gender         string   `json:"gender"`
	Email          string   `json:"email"`
	BizMail        string   `json:"biz_mail"`
	Status         int      `json:"status"`
	Alias          string   `json:"alias"`
	EnglishName    string   `json:"english_name"`
	Telephone      string   `json:"telephone"`
	Address        string   `json:"address"`
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
	attrs := map[string]string{"userid": u.UserID, "name": u.Name, "position": u.Position, "mobile": u.Mobile, "gender": u.Gender,
		"email": u.Email, "biz_mail": u.BizMail, "alias": u.Alias, "english_name": u.EnglishName, "telephone": u.Telephone,
		"address": u.Address}
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
	seen := map[string]bool{}
	if r.restricted {
		return r.usersByListID(ctx, inScope, fn)
	}
	for _, d := range depts {
		var resp struct {
			UserList []json.RawMessage `json:"userlist"`
		}
		if err := r.c.Call(ctx, "user/list", http.MethodGet, url.Values{"department_id": {d.ID}}, nil, r.secret, &resp); err != nil {
			return err
		}
		for _, raw := range resp.UserList {
			var u wUser
			if err := json.Unmarshal(raw, &u); err != nil {
				return &federation.Error{Platform: "WeCom", API: "user/list", Message: "malformed user: " + err.Error()}
			}
			if seen[u.UserID] {
				continue
			}
			seen[u.UserID] = true
			fu := toUser(u, raw)
			fu.Depts = filter(fu.Depts, inScope)
			if err := fn(fu); err != nil {
				return err
			}
		}
	}
	return nil
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

// usersByListID pages (userid, department) rows; the restricted secret gets no other fields.
func (r *Reader) usersByListID(ctx context.Context, inScope map[string]bool, fn func(federation.User) error) error {
	members := map[string][]string{}
	var order []string
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
			d := strconv.FormatInt(row.Department, 10)
			if !inScope[d] {
				continue
			}
			if _, ok := members[row.UserID]; !ok {
				order = append(order, row.UserID)
			}
			members[row.UserID] = append(members[row.UserID], d)
		}
		if resp.NextCursor == "" {
			break
		}
		cursor = resp.NextCursor
	}
	for _, id := range order {
		// Without user/get, status is unknown: a listed member is taken as active.
		u := federation.User{UserID: id, Status: federation.StatusActive, Depts: members[id], Attrs: map[string]string{"userid": id, "name": id}}
		if err := fn(u); err != nil {
			return err
		}
	}
	return nil
}

// User reads one user (events re-read the users they name).
func (r *Reader) User(ctx context.Context, userid string) (federation.User, error) {
	var raw json.RawMessage
	if err := r.c.Call(ctx, "user/get", http.MethodGet, url.Values{"userid": {userid}}, nil, r.secret, &raw); err != nil {
		return federation.User{}, err
	}
	var u wUser
	if err := json.Unmarshal(raw, &u); err != nil {
		return federation.User{}, &federation.Error{Platform: "WeCom", API: "user/get", Message: "malformed user: " + err.Error()}
	}
	return toUser(u, raw), nil
}

// Department reads one department.
func (r *Reader) Department(ctx context.Context, id string) (federation.Dept, error) {
	var resp struct {
		Department json.RawMessage `json:"department"`
	}
	if err := r.c.Call(ctx, "department/get", http.MethodGet, url.Values{"id": {id}}, nil, r.secret, &resp); err != nil {
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
