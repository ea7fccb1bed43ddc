package dingtalk

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/upstream"
)

// Reader reads a DingTalk directory: departments by listsub recursion from the scope roots, each
// one's order from v2/department/get (listsub carries none), users by v2/user/list pages of 100
// per department. DingTalk has no whole-tree call, so a full read costs at least three calls per
// department.
type Reader struct {
	c *Client
}

// Reader returns a directory reader.
func (c *Client) Reader() *Reader { return &Reader{c: c} }

var _ federation.DirectoryReader = (*Reader)(nil)

// Info implements federation.DirectoryReader.
func (r *Reader) Info() federation.ReadInfo {
	return federation.ReadInfo{Mode: "v2/department/listsub+get+v2/user/list", Calls: int(r.c.Calls())}
}

type dDept struct {
	DeptID   int64  `json:"dept_id"`
	Name     string `json:"name"`
	ParentID int64  `json:"parent_id"`
	Order    int64  `json:"order"` // v2/department/get only
}

// Departments implements federation.DirectoryReader.
func (r *Reader) Departments(ctx context.Context, roots []string) ([]federation.Dept, error) {
	if len(roots) == 0 {
		roots = []string{"1"}
	}
	var out []federation.Dept
	seen := map[string]bool{}
	for _, root := range roots {
		id, err := strconv.ParseInt(root, 10, 64)
		if err != nil {
			return nil, &federation.Error{Platform: "DingTalk", API: "v2/department/get", Message: "scope department " + strconv.Quote(root) + " is not a DingTalk department ID"}
		}
		var top json.RawMessage
		if err := r.c.OAPI(ctx, "v2/department/get", map[string]any{"dept_id": id}, &top); err != nil {
			return nil, err
		}
		var d dDept
		if err := json.Unmarshal(top, &d); err != nil {
			return nil, &federation.Error{Platform: "DingTalk", API: "v2/department/get", Message: "malformed department: " + err.Error()}
		}
		// Breadth first, a level at a time, readAhead departments' children read at once; the
		// order is the one a queue read one by one would give.
		level := []federation.Dept{{ID: root, Name: d.Name, Order: d.Order, Raw: top}}
		for len(level) > 0 {
			var cur, next []federation.Dept
			for _, d := range level {
				if !seen[d.ID] {
					seen[d.ID] = true
					out = append(out, d)
					cur = append(cur, d)
				}
			}
			err := upstream.Ordered(ctx, len(cur), readAhead, func(ctx context.Context, i int, emit func([]federation.Dept) error) error {
				children, err := r.children(ctx, cur[i].ID)
				if err != nil {
					return err
				}
				return emit(children)
			}, func(children []federation.Dept) error {
				next = append(next, children...)
				return nil
			})
			if err != nil {
				return nil, err
			}
			level = next
		}
	}
	return out, nil
}

// children reads a department's subdepartments, each with its detail: listsub has no order; the
// detail has (and the event path reads the same).
func (r *Reader) children(ctx context.Context, parent string) ([]federation.Dept, error) {
	var subs []json.RawMessage
	pid, _ := strconv.ParseInt(parent, 10, 64)
	if err := r.c.OAPI(ctx, "v2/department/listsub", map[string]any{"dept_id": pid}, &subs); err != nil {
		return nil, err
	}
	out := make([]federation.Dept, 0, len(subs))
	for _, raw := range subs {
		var s dDept
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, &federation.Error{Platform: "DingTalk", API: "v2/department/listsub", Message: "malformed department: " + err.Error()}
		}
		d, err := r.Department(ctx, strconv.FormatInt(s.DeptID, 10))
		if err != nil {
			return nil, err
		}
		d.ParentID = parent
		out = append(out, d)
	}
	return out, nil
}

type dUser struct {
	UserID     string  `json:"userid"`
	UnionID    string  `json:"unionid"`
	Name       string  `json:"name"`
	Mobile     string  `json:"mobile"`
	Email      string  `json:"email"`
	OrgEmail   string  `json:"org_email"`
	Title      string  `json:"title"`
	JobNumber  string  `json:"job_number"`
	Telephone  string  `json:"telephone"`
	WorkPlace  string  `json:"work_place"`
	Remark     string  `json:"remark"`
	DeptIDList []int64 `json:"dept_id_list"`
	Extension  string  `json:"extension"`
	Active     bool    `json:"active"`
	HiredDate  int64   `json:"hired_date"`
}

func toUser(u dUser, raw json.RawMessage) federation.User {
	attrs := map[string]string{"userid": u.UserID, "unionid": u.UnionID, "name": u.Name, "mobile": u.Mobile, "email": u.Email,
		"org_email": u.OrgEmail, "position": u.Title, "title": u.Title, "job_number": u.JobNumber, "telephone": u.Telephone,
		"work_place": u.WorkPlace, "remark": u.Remark}
	if u.Extension != "" {
		var ext map[string]any
		if json.Unmarshal([]byte(u.Extension), &ext) == nil {
			for k, v := range ext {
				if s, ok := v.(string); ok {
					attrs["ext."+k] = s
				}
			}
		}
	}
	depts := make([]string, len(u.DeptIDList))
	for i, d := range u.DeptIDList {
		depts[i] = strconv.FormatInt(d, 10)
	}
	st := federation.StatusActive
	if !u.Active {
		st = federation.StatusInactive
	}
	return federation.User{UserID: u.UserID, UnionID: u.UnionID, Status: st, Depts: depts, Attrs: attrs, Raw: raw}
}

// Users implements federation.DirectoryReader.
func (r *Reader) Users(ctx context.Context, depts []federation.Dept, fn func(federation.User) error) error {
	inScope := make(map[string]bool, len(depts))
	for _, d := range depts {
		inScope[d.ID] = true
	}
	seen := map[string]bool{}
	return upstream.Ordered(ctx, len(depts), readAhead, func(ctx context.Context, i int, emit func([]listedUser) error) error {
		id, _ := strconv.ParseInt(depts[i].ID, 10, 64)
		cursor := int64(0)
		for {
			var page struct {
				HasMore    bool              `json:"has_more"`
				NextCursor int64             `json:"next_cursor"`
				List       []json.RawMessage `json:"list"`
			}
			// contain_access_limit: without it access-limited employees (访问受限) are left out,
			// and a sync would take them for gone.
			body := map[string]any{"dept_id": id, "cursor": cursor, "size": 100, "contain_access_limit": true}
			if err := r.c.OAPI(ctx, "v2/user/list", body, &page); err != nil {
				return err
			}
			users := make([]listedUser, len(page.List))
			for j, raw := range page.List {
				if err := upstream.DecodeJSON(raw, &users[j].u); err != nil {
					return &federation.Error{Platform: "DingTalk", API: "v2/user/list", Message: "malformed user: " + err.Error()}
				}
				users[j].raw = raw
			}
			if err := emit(users); err != nil {
				return err
			}
			if !page.HasMore {
				return nil
			}
			cursor = page.NextCursor
		}
	}, func(users []listedUser) error {
		for _, m := range users {
			if seen[m.u.UserID] {
				continue
			}
			seen[m.u.UserID] = true
			fu := toUser(m.u, m.raw)
			kept := fu.Depts[:0:0]
			for _, dd := range fu.Depts {
				if inScope[dd] {
					kept = append(kept, dd)
				}
			}
			fu.Depts = kept
			if err := fn(fu); err != nil {
				return err
			}
		}
		return nil
	})
}

// readAhead is how many departments are read at once: a full read waits for the platform once
// per readAhead departments. The client's rate limiter still holds every call to the app's
// per-API limit.
const readAhead = 4

// listedUser is one member of a v2/user/list page, decoded where the page was fetched.
type listedUser struct {
	u   dUser
	raw json.RawMessage
}

// User reads one user (events re-read the users they name).
func (r *Reader) User(ctx context.Context, userid string) (federation.User, error) {
	var raw json.RawMessage
	if err := r.c.OAPI(ctx, "v2/user/get", map[string]any{"userid": userid}, &raw); err != nil {
		return federation.User{}, err
	}
	var u dUser
	if err := json.Unmarshal(raw, &u); err != nil {
		return federation.User{}, &federation.Error{Platform: "DingTalk", API: "v2/user/get", Message: "malformed user: " + err.Error()}
	}
	return toUser(u, raw), nil
}

// Department reads one department.
func (r *Reader) Department(ctx context.Context, id string) (federation.Dept, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return federation.Dept{}, &federation.Error{Platform: "DingTalk", API: "v2/department/get", Message: "not a department ID: " + id}
	}
	var raw json.RawMessage
	if err := r.c.OAPI(ctx, "v2/department/get", map[string]any{"dept_id": n}, &raw); err != nil {
		return federation.Dept{}, err
	}
	var d dDept
	if err := json.Unmarshal(raw, &d); err != nil {
		return federation.Dept{}, &federation.Error{Platform: "DingTalk", API: "v2/department/get", Message: "malformed department: " + err.Error()}
	}
	parent := ""
	if d.ParentID != 0 {
		parent = strconv.FormatInt(d.ParentID, 10)
	}
	return federation.Dept{ID: id, ParentID: parent, Name: d.Name, Order: d.Order, Raw: raw}, nil
}
