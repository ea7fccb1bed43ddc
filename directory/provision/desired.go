// Package provision pushes an enterprise's directory into a platform (outbound provisioning, the
// seeds' "synchronize from IDaaS to WeCom"): the outbox worker that pushes each change within
// seconds, the full reconcile (read the target under its root department, plan, protect, apply,
// record), and the rules that keep it from looping back into the organisation it came from.
//
// It is state-based: an outbox row names an object (a person, a department), and the pusher reads
// that object as it is now and makes the target match it. Replaying a row after a crash therefore
// pushes the current state again, and what qiao created at the target is remembered
// (directory.ProvisionedObject) — written before the create call, so that a create repeated after
// a crash between the call and its answer recognises the object as its own (create → "exists" →
// update) instead of failing, while an object that someone else created is never taken over,
// changed or deleted.
package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/federation"
)

// userIDPattern is WeCom's userid rule (upstream-apis.md §1.1).
var userIDPattern = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z_\-@.]{0,63}$`)

// deptNameIllegal are the characters WeCom refuses in department names (§1.4).
const deptNameIllegal = "\\:*?\"<>|"

// problem is a push that cannot succeed with the data as it is: the item is parked with Message.
type problem struct {
	Code    int
	Message string
}

func (p *problem) Error() string { return p.Message }

// scope is what a target pushes, resolved against the enterprise's sources.
type scope struct {
	t *directory.ProvisionTarget
	// pushed sources contribute their people and departments; own sources are of the target's own
	// organisation (same platform, same corp): what came from there is never pushed back.
	pushed, own map[string]bool
	subtrees    map[string]bool // scope departments: "SOURCE/ID" roots
	depts       map[string]*directory.Department
	st          directory.Store
}

func deptKey(source, id string) string { return source + "/" + id }

func splitKey(key string) (string, string) {
	src, id, _ := strings.Cut(key, "/")
	return src, id
}

func loadScope(ctx context.Context, st directory.Store, t *directory.ProvisionTarget) (*scope, error) {
	srcs, err := st.ListSources(ctx, t.EnterpriseID)
	if err != nil {
		return nil, fmt.Errorf("list sources: %w", err)
	}
	sc := &scope{t: t, pushed: map[string]bool{}, own: map[string]bool{}, subtrees: map[string]bool{}, depts: map[string]*directory.Department{}, st: st}
	for _, s := range srcs {
		if s.Kind == t.Kind && s.Config["corp_id"] != "" && s.Config["corp_id"] == t.Config["corp_id"] {
			sc.own[s.ID] = true
			continue
		}
		switch t.Settings.Scope {
		case directory.ProvisionScopeSources:
			sc.pushed[s.ID] = slices.Contains(t.Settings.Sources, s.ID)
		default:
			sc.pushed[s.ID] = true
		}
	}
	for _, d := range t.Settings.Departments {
		sc.subtrees[d] = true
	}
	return sc, nil
}

// dept reads a local department (nil when gone), cached for the batch.
func (sc *scope) dept(ctx context.Context, key string) (*directory.Department, error) {
	if d, ok := sc.depts[key]; ok {
		return d, nil
	}
	src, id := splitKey(key)
	d, err := sc.st.GetDepartment(ctx, sc.t.EnterpriseID, src, id)
	if errors.Is(err, directory.ErrNotFound) {
		d, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	sc.depts[key] = d
	return d, nil
}

// deptInScope reports whether a local department is pushed.
func (sc *scope) deptInScope(ctx context.Context, d *directory.Department) (bool, error) {
	if d == nil || !sc.pushed[d.SourceID] {
		return false, nil
	}
	if sc.t.Settings.Scope != directory.ProvisionScopeDepartments {
		return true, nil
	}
	for cur, n := d, 0; cur != nil && n < 64; n++ {
		if sc.subtrees[deptKey(cur.SourceID, cur.UpstreamID)] {
			return true, nil
		}
		if cur.ParentID == "" {
			break
		}
		var err error
		if cur, err = sc.dept(ctx, deptKey(cur.SourceID, cur.ParentID)); err != nil {
			return false, err
		}
	}
	return false, nil
}

// desiredDept is a department as the target should hold it; parentKey is "" under the root.
func (sc *scope) desiredDept(d *directory.Department) (name string, parentKey string, err error) {
	name = d.Name
	if n := len([]rune(name)); n < 1 || n > 32 {
		return "", "", &problem{60001, fmt.Sprintf("department %q: WeCom department names are 1–32 characters", name)}
	}
	if strings.ContainsAny(name, deptNameIllegal) {
		return "", "", &problem{60009, fmt.Sprintf(`department %q: WeCom refuses the characters \ : * ? " < > | in names`, name)}
	}
	// A source's top departments (no parent, or a parent outside the chosen subtrees) go under the
	// target's root department.
	if d.ParentID != "" && (sc.t.Settings.Scope != directory.ProvisionScopeDepartments || !sc.subtrees[deptKey(d.SourceID, d.UpstreamID)]) {
		parentKey = deptKey(d.SourceID, d.ParentID)
	}
	return name, parentKey, nil
}

// wantUser is a person as the target should hold them, with the local departments they belong in
// (before mapping to the target's IDs).
type wantUser struct {
	user  federation.WriteUser
	depts []string // local department keys; none: the root (or the default department)
}

// Reasons a person is not pushed.
const (
	reasonGone     = "the person is no longer in the directory"
	reasonScope    = "the person is outside what the target pushes"
	reasonOwn      = "the person came from the target's own organisation (an identity source of the same corp): never pushed back"
	reasonDeparted = "the person departed"
)

// desiredUser reads a person and says how the target should hold them: (nil, reason) when they
// should not be there. managed says whether qiao created them at the target.
func (sc *scope) desiredUser(ctx context.Context, userID string, managed bool) (*wantUser, string, *directory.User, error) {
	ent := sc.t.EnterpriseID
	u, err := sc.st.GetUser(ctx, ent, userID)
	if errors.Is(err, directory.ErrNotFound) {
		return nil, reasonGone, nil, nil
	}
	if err != nil {
		return nil, "", nil, err
	}
	links, err := sc.st.LinksOfUser(ctx, ent, userID)
	if err != nil {
		return nil, "", nil, err
	}
	var pushed []*directory.UserLink
	for _, l := range links {
		// A person qiao did not create who is also known to the target's own organisation came
		// from there; one qiao created and the inbound sync then linked is still qiao's to push.
		if sc.own[l.SourceID] && !managed {
			return nil, reasonOwn, u, nil
		}
		if sc.pushed[l.SourceID] {
			pushed = append(pushed, l)
		}
	}
	if len(pushed) == 0 {
		return nil, reasonScope, u, nil
	}
	w := &wantUser{}
	for _, l := range pushed {
		for _, d := range l.Departments {
			key := deptKey(l.SourceID, d)
			dep, err := sc.dept(ctx, key)
			if err != nil {
				return nil, "", nil, err
			}
			in, err := sc.deptInScope(ctx, dep)
			if err != nil {
				return nil, "", nil, err
			}
			if in && !slices.Contains(w.depts, key) {
				w.depts = append(w.depts, key)
			}
		}
	}
	if sc.t.Settings.Scope == directory.ProvisionScopeDepartments && len(w.depts) == 0 {
		return nil, reasonScope, u, nil
	}
	if u.Status == directory.UserDeparted {
		return nil, reasonDeparted, u, nil
	}
	uid, err := sc.userID(u)
	if err != nil {
		return nil, "", u, err
	}
	w.user = federation.WriteUser{UserID: uid, Enabled: u.Status != directory.UserDisabled}
	fields := map[string]string{"name": "name", "mobile": "mobile", "email": "email"}
	for k, v := range sc.t.Settings.FieldMap {
		fields[k] = v
	}
	for target, local := range fields {
		v := localField(u, local)
		switch {
		case target == "name":
			w.user.Name = v
		case target == "mobile":
			w.user.Mobile = v
		case target == "email":
			w.user.Email = v
		case target == "position":
			w.user.Position = v
		case target == "gender":
			w.user.Gender = v
		case target == "telephone":
			w.user.Telephone = v
		case target == "alias":
			w.user.Alias = v
		case strings.HasPrefix(target, "ext."):
			if w.user.ExtAttrs == nil {
				w.user.ExtAttrs = map[string]string{}
			}
			w.user.ExtAttrs[strings.TrimPrefix(target, "ext.")] = v
		}
	}
	if w.user.Name == "" {
		w.user.Name = u.Username
	}
	if w.user.Mobile == "" && w.user.Email == "" {
		return nil, "", u, &problem{60129, fmt.Sprintf("%s has neither a mobile number nor an email address: WeCom needs one of them (60129)", u.Username)}
	}
	return w, "", u, nil
}

func localField(u *directory.User, f string) string {
	switch f {
	case "name":
		return u.Name
	case "email":
		return u.Email
	case "mobile":
		return u.Mobile
	case "username":
		return u.Username
	case "":
		return ""
	}
	if n, ok := strings.CutPrefix(f, "ext."); ok {
		return u.Attributes[n]
	}
	return ""
}

func (sc *scope) userID(u *directory.User) (string, error) {
	var id string
	switch f := sc.t.Settings.UserIDField; f {
	case "", "username":
		id = u.Username
	case "email_local":
		id, _, _ = strings.Cut(u.Email, "@")
	default:
		id = localField(u, f)
	}
	if !userIDPattern.MatchString(id) {
		return "", &problem{40003, fmt.Sprintf("%s: %q cannot be a WeCom userid (1–64 of A-Z a-z 0-9 _ - @ . starting with a letter or digit); choose another userid field", u.Username, id)}
	}
	return id, nil
}

// localView is what a record shows of the local object.
func localView(u *directory.User, d *directory.Department) json.RawMessage {
	var v any
	switch {
	case u != nil:
		v = map[string]any{"id": u.ID, "username": u.Username, "name": u.Name, "email": u.Email, "mobile": u.Mobile, "status": u.Status}
	case d != nil:
		v = map[string]any{"source": d.SourceID, "id": d.UpstreamID, "parent_id": d.ParentID, "name": d.Name}
	default:
		return nil
	}
	b, _ := json.Marshal(v)
	return b
}
