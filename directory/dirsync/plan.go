// Package dirsync is the directory synchronization engine (DESIGN.md "Sync"): it reads a source's
// upstream snapshot through a federation.DirectoryReader, maps fields, computes a plan against the
// local copy of that source, refuses plans that delete too much, and applies the rest in one
// transaction with a record of every change.
package dirsync

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/federation"
)

// Actions of a plan.
const (
	ActCreate    = "create"
	ActUpdate    = "update"
	ActMove      = "move"
	ActDelete    = "delete"
	ActUnchanged = "unchanged"
	ActSkip      = "skip"
	ActError     = "error"
)

// DeptChange is a planned department change.
type DeptChange struct {
	Action   string
	Upstream *federation.Dept
	Before   *directory.Department
	After    *directory.Department
}

// UserChange is a planned user change.
type UserChange struct {
	Action     string
	UpstreamID string
	Upstream   json.RawMessage // the upstream record as read; nil when a full sync staged it in the store
	Before     *directory.User
	After      *directory.User
	LinkBefore *directory.UserLink
	LinkAfter  *directory.UserLink
	// Departs is set when the change takes the user out of "active" (departure, disabling,
	// removal): their sessions and tokens are revoked after the apply.
	Departs bool
	// DropLink removes the link instead of writing it (the upstream user is gone).
	DropLink bool
	Error    string
	hash     string              // the upstream fingerprint, for the link's SyncHash
	staged   directory.StagedRef // with Upstream nil: where the upstream record is staged
	spooled  spoolRef            // with Upstream nil: where the upstream record is spooled
}

// Plan is what a task will do.
type Plan struct {
	spool       *spool // where the upstream records of changes with spooled set are
	Depts       []DeptChange
	Users       []UserChange
	Unchanged   map[string]int // objects with nothing to do, by type
	DeptDeletes int
	UserDeletes int // removals and departures
	// Authoritative: the source is authoritative, so a person it removes departs entirely even
	// when other sources still link them.
	Authoritative bool
	// Deferred counts the changes a full sync dropped because an event of the source changed the
	// object after the sync began (counted as skip).
	Deferred int
}

// Counts returns the plan's counts by action (records of both object types).
func (p *Plan) Counts() map[string]int {
	c := map[string]int{}
	for _, d := range p.Depts {
		c[d.Action]++
	}
	for _, u := range p.Users {
		c[u.Action]++
	}
	for _, n := range p.Unchanged {
		c[ActUnchanged] += n
	}
	if p.Deferred > 0 {
		c[ActSkip] += p.Deferred
	}
	return c
}

// Empty reports whether the plan changes nothing.
func (p *Plan) Empty() bool { return len(p.Depts) == 0 && len(p.Users) == 0 }

// mapped is an upstream user in local terms.
type mapped struct {
	Username string
	Name     string
	Email    string
	Mobile   string
	Status   directory.UserStatus
	Attrs    map[string]string
	// KeepEmail, KeepMobile: the upstream did not return the field (withheld from the app, not
	// emptied): the local value stays.
	KeepEmail, KeepMobile bool
}

func statusOf(s federation.UserStatus) directory.UserStatus {
	switch s {
	case federation.StatusActive:
		return directory.UserActive
	case federation.StatusDisabled:
		return directory.UserDisabled
	case federation.StatusExited:
		return directory.UserDeparted
	}
	return directory.UserInactive
}

// mapUser applies the kind's default mapping (its reader knows what it names its attributes;
// an unregistered kind's zero Kind gives the standard one), then the source's field mappings.
func mapUser(src *directory.IdentitySource, u *federation.User) mapped {
	kind, _ := federation.LookupKind(string(src.Kind))
	table := kind.Mapping()
	attrs := map[string]string{}
	for _, m := range src.Sync.FieldMappings {
		if name, ok := strings.CutPrefix(m.Local, "ext."); ok {
			attrs[name] = u.Attrs[m.Upstream]
			continue
		}
		table[m.Local] = m.Upstream
	}
	// Extended fields named without a mapping take the upstream attribute of the same name
	// (ext.<name> first, then <name>).
	for _, f := range src.Sync.ExtendedFields {
		if _, done := attrs[f]; done {
			continue
		}
		if v, ok := u.Attrs["ext."+f]; ok {
			attrs[f] = v
		} else if v, ok := u.Attrs[f]; ok {
			attrs[f] = v
		}
	}
	for k, v := range attrs {
		if v == "" {
			delete(attrs, k)
		}
	}
	m := mapped{Username: u.Attrs[table["username"]], Name: u.Attrs[table["name"]], Email: u.Attrs[table["email"]],
		Mobile: u.Attrs[table["mobile"]], Status: statusOf(u.Status), Attrs: attrs}
	_, hasEmail := u.Attrs[table["email"]]
	_, hasMobile := u.Attrs[table["mobile"]]
	m.KeepEmail, m.KeepMobile = !hasEmail, !hasMobile
	if m.Username == "" {
		m.Username = u.UserID
	}
	if m.Name == "" {
		m.Name = m.Username
	}
	return m
}

// Upstream userid rules (upstream-apis.md §1.1: WeCom userids are 1-64 of [0-9A-Za-z_-@.],
// starting alphanumeric; DingTalk's are looser but within the same alphabet).
var (
	wecomUserID = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z_\-@.]{0,63}$`)
	anyUserID   = regexp.MustCompile(`^[0-9A-Za-z_\-@.$]{1,64}$`)
)

func validUserID(kind directory.SourceKind, id string) bool {
	if kind == directory.KindWeCom {
		return wecomUserID.MatchString(id)
	}
	return anyUserID.MatchString(id)
}

// userJSON is the record form of a local user (never the password hash).
func userJSON(u *directory.User) json.RawMessage { return linkJSON(u, nil) }

// linkJSON is the record form of a local user and, when given, their link.
func linkJSON(u *directory.User, l *directory.UserLink) json.RawMessage {
	if u == nil {
		return nil
	}
	m := map[string]any{"id": u.ID, "username": u.Username, "name": u.Name, "email": u.Email, "mobile": u.Mobile,
		"status": u.Status, "attributes": u.Attributes}
	if l != nil {
		m["upstream_id"], m["departments"] = l.UpstreamID, l.Departments
	}
	b, _ := json.Marshal(m)
	return b
}

func deptJSON(d *directory.Department) json.RawMessage {
	if d == nil {
		return nil
	}
	b, _ := json.Marshal(map[string]any{"id": d.UpstreamID, "parent_id": d.ParentID, "name": d.Name, "order": d.Order})
	return b
}

func sameStrings(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
