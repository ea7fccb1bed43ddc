package dirsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/federation"
)

// upUser is an upstream user reduced to what the plan needs.
type upUser struct {
	UserID  string
	UnionID string
	Depts   []string
	Raw     json.RawMessage
	m       mapped
	hash    string              // upstreamHash
	staged  directory.StagedRef // where Raw is staged (then nil)
	spooled spoolRef            // where Raw is spooled (then nil)
}

// newUpUser maps an upstream user to local terms and fingerprints the result.
func newUpUser(src *directory.IdentitySource, u *federation.User) *upUser {
	m := mapUser(src, u)
	return &upUser{UserID: u.UserID, UnionID: u.UnionID, Depts: u.Depts, Raw: u.Raw, m: m, hash: upstreamHash(&m, u.UnionID, u.Depts)}
}

// plan compares the upstream snapshot with the local copy of the source. With only set (an event),
// it compares just those upstream users: departments are not diffed and only the named users can
// be removed.
func (e *Engine) plan(ctx context.Context, src *directory.IdentitySource, depts []federation.Dept, up map[string]*upUser, order []string, only map[string]bool) (*Plan, error) {
	ent := src.EnterpriseID
	p := &Plan{Unchanged: map[string]int{}}
	if only != nil {
		return p, e.planUsers(ctx, src, p, up, order, only)
	}
	localDepts, err := e.Store.ListDepartments(ctx, ent, src.ID)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*directory.Department, len(localDepts))
	for _, d := range localDepts {
		byID[d.UpstreamID] = d
	}
	seenDept := make(map[string]bool, len(depts))
	for i := range depts {
		d := &depts[i]
		seenDept[d.ID] = true
		after := &directory.Department{EnterpriseID: ent, SourceID: src.ID, UpstreamID: d.ID, ParentID: d.ParentID, Name: d.Name, Order: d.Order, Extra: d.Raw}
		cur := byID[d.ID]
		switch {
		case cur == nil:
			p.Depts = append(p.Depts, DeptChange{Action: ActCreate, Upstream: d, After: after})
		case cur.ParentID != d.ParentID:
			p.Depts = append(p.Depts, DeptChange{Action: ActMove, Upstream: d, Before: cur, After: after})
		case cur.Name != d.Name || cur.Order != d.Order:
			p.Depts = append(p.Depts, DeptChange{Action: ActUpdate, Upstream: d, Before: cur, After: after})
		default:
			p.Unchanged["department"]++
		}
	}
	for _, d := range localDepts {
		if !seenDept[d.UpstreamID] {
			p.Depts = append(p.Depts, DeptChange{Action: ActDelete, Before: d})
			p.DeptDeletes++
		}
	}
	if !src.Sync.UserInfo {
		return p, nil // structure only
	}
	return p, e.planUsers(ctx, src, p, up, order, nil)
}

// planUsers plans the users of up. A full sync (only nil) first reads the source's links in brief
// and counts unchanged, without loading or comparing them, the linked users whose fingerprint
// says they are as the source's last apply left them (fingerprint.go).
func (e *Engine) planUsers(ctx context.Context, src *directory.IdentitySource, p *Plan, up map[string]*upUser, order []string, only map[string]bool) error {
	p.Authoritative = directory.IsAuthoritative(src)
	ent := src.EnterpriseID
	var linked []directory.LinkedUser
	var known *knownLinks
	var err error
	switch {
	case only == nil:
		if known, err = e.loadKnownLinks(ctx, ent, src.ID); err != nil {
			return err
		}
		for id, u := range up {
			known.same(id, u.hash)
		}
		// Load only the linked users that are to be compared (changed upstream or locally) or
		// removed (linked, not read).
		need := map[string]bool{}
		for id := range known.byUp {
			if !known.unchanged[id] {
				need[id] = true
			}
		}
		if linked, err = e.sourceUsersFor(ctx, ent, src.ID, need); err != nil {
			return err
		}
	default:
		for id := range only {
			l, err := e.Store.GetUserLink(ctx, ent, src.ID, id)
			if errors.Is(err, directory.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			u, err := e.Store.GetUser(ctx, ent, l.UserID)
			if err != nil {
				return err
			}
			linked = append(linked, directory.LinkedUser{Link: l, User: u})
		}
	}
	byUp := make(map[string]directory.LinkedUser, len(linked))
	linkedUser := make(map[string]bool, len(linked))
	for _, lu := range linked {
		byUp[lu.Link.UpstreamID] = lu
		linkedUser[lu.User.ID] = true
	}
	seenUp := make(map[string]bool, len(up))
	if known != nil {
		for _, l := range known.byUp {
			linkedUser[l.userID] = true // not to be matched to a new upstream user
		}
		for id := range known.unchanged {
			seenUp[id] = true
		}
		if len(known.unchanged) > 0 {
			p.Unchanged["user"] += len(known.unchanged)
		}
	}
	// Users of the enterprise not linked to this source, for identity matching.
	var byUsername map[string]*directory.User
	var byField map[string][]*directory.User
	loadOthers := func() error {
		if byUsername != nil {
			return nil
		}
		byUsername, byField = map[string]*directory.User{}, map[string][]*directory.User{}
		after := ""
		for {
			page, err := e.Store.ListUsers(ctx, ent, after, 5000)
			if err != nil {
				return err
			}
			if len(page) == 0 {
				return nil
			}
			for _, u := range page {
				if linkedUser[u.ID] {
					continue
				}
				byUsername[u.Username] = u
				if u.Email != "" {
					byField["email:"+u.Email] = append(byField["email:"+u.Email], u)
				}
				if u.Mobile != "" {
					byField["mobile:"+u.Mobile] = append(byField["mobile:"+u.Mobile], u)
				}
			}
			after = page[len(page)-1].ID
		}
	}
	claimed := map[string]string{} // local user ID -> upstream ID that claimed it in this plan
	usernames := map[string]bool{}
	if p.Users == nil {
		// Room for everyone read and not found unchanged: grown by doubling, a 100k first sync's
		// plan had each old array and its copy in the heap at once.
		n := len(order)
		if known != nil {
			n -= len(known.unchanged)
		}
		p.Users = make([]UserChange, 0, max(n, 0))
	}
	for _, id := range order {
		u := up[id]
		seenUp[id] = true
		if known != nil && known.unchanged[id] {
			continue
		}
		if !validUserID(src.Kind, u.UserID) {
			p.Users = append(p.Users, UserChange{Action: ActError, UpstreamID: u.UserID, Upstream: u.Raw, staged: u.staged, spooled: u.spooled,
				Error: fmt.Sprintf("userid %q breaks the platform's userid rules; skipped", u.UserID)})
			continue
		}
		m := u.m
		link := &directory.UserLink{EnterpriseID: ent, SourceID: src.ID, UpstreamID: u.UserID, UnionID: u.UnionID,
			Departments: u.Depts, Upstream: u.Raw, Staged: u.staged}
		if cur, ok := byUp[u.UserID]; ok {
			after := apply(cur.User, m, src.ID)
			link.UserID = cur.User.ID
			userChanged := !sameUser(cur.User, after)
			deptsChanged := !sameStrings(cur.Link.Departments, u.Depts)
			linkChanged := deptsChanged || cur.Link.UnionID != u.UnionID
			switch {
			case !userChanged && !linkChanged:
				p.Unchanged["user"]++
				continue
			case !userChanged && deptsChanged:
				p.Users = append(p.Users, UserChange{Action: ActMove, UpstreamID: u.UserID, Upstream: u.Raw, staged: u.staged, spooled: u.spooled, Before: cur.User, After: cur.User, LinkBefore: cur.Link, LinkAfter: link, hash: u.hash})
			default:
				ch := UserChange{Action: ActUpdate, UpstreamID: u.UserID, Upstream: u.Raw, staged: u.staged, spooled: u.spooled, Before: cur.User, After: after, LinkBefore: cur.Link, LinkAfter: link, hash: u.hash}
				if cur.User.Status == directory.UserActive && after.Status != directory.UserActive {
					ch.Departs = true
					if after.Status == directory.UserDeparted {
						p.UserDeletes++
					}
				}
				p.Users = append(p.Users, ch)
			}
			continue
		}
		// A new upstream user: link to an existing local user by the configured identifier.
		var candidates []*directory.User
		if only != nil {
			// An event names few users: look them up instead of loading the enterprise.
			if candidates, err = e.matchCandidates(ctx, src, m, linkedUser); err != nil {
				return err
			}
			byUsername = map[string]*directory.User{}
			if len(candidates) == 0 {
				if cu, err := e.Store.GetUserByUsername(ctx, ent, m.Username); err == nil {
					byUsername[cu.Username] = cu // taken: the new user gets a suffixed username
				}
			}
		} else {
			if err := loadOthers(); err != nil {
				return err
			}
			switch src.Sync.MatchBy {
			case "email":
				if m.Email != "" {
					candidates = byField["email:"+m.Email]
				}
			case "mobile":
				if m.Mobile != "" {
					candidates = byField["mobile:"+m.Mobile]
				}
			default:
				if cu := byUsername[m.Username]; cu != nil {
					candidates = []*directory.User{cu}
				}
			}
		}
		if len(candidates) > 1 {
			ids := make([]string, len(candidates))
			for i, c := range candidates {
				ids[i] = c.Username
			}
			p.Users = append(p.Users, UserChange{Action: ActError, UpstreamID: u.UserID, Upstream: u.Raw, staged: u.staged, spooled: u.spooled,
				Error: fmt.Sprintf("ambiguous match by %s: local users %s all match; fix the duplicates or match by another field", src.Sync.MatchBy, strings.Join(ids, ", "))})
			continue
		}
		if len(candidates) == 1 {
			cu := candidates[0]
			if other, dup := claimed[cu.ID]; dup {
				p.Users = append(p.Users, UserChange{Action: ActError, UpstreamID: u.UserID, Upstream: u.Raw, staged: u.staged, spooled: u.spooled,
					Error: fmt.Sprintf("local user %s is matched by both %s and %s upstream; skipped", cu.Username, other, u.UserID)})
				continue
			}
			claimed[cu.ID] = u.UserID
			after := apply(cu, m, src.ID)
			after.Username = cu.Username // a matched user keeps their username
			link.UserID = cu.ID
			p.Users = append(p.Users, UserChange{Action: ActUpdate, UpstreamID: u.UserID, Upstream: u.Raw, staged: u.staged, spooled: u.spooled, Before: cu, After: after, LinkAfter: link, hash: u.hash})
			continue
		}
		nu := &directory.User{EnterpriseID: ent, Username: m.Username, Name: m.Name, Email: m.Email, Mobile: m.Mobile, Status: m.Status, Attributes: m.Attrs}
		if byUsername[nu.Username] != nil || usernames[nu.Username] {
			nu.Username = m.Username + "@" + src.ID
		}
		usernames[nu.Username] = true
		p.Users = append(p.Users, UserChange{Action: ActCreate, UpstreamID: u.UserID, Upstream: u.Raw, staged: u.staged, spooled: u.spooled, After: nu, LinkAfter: link, hash: u.hash})
	}
	for _, lu := range linked {
		if seenUp[lu.Link.UpstreamID] {
			continue
		}
		after := *lu.User
		after.Status = directory.UserDeparted
		p.Users = append(p.Users, UserChange{Action: ActDelete, UpstreamID: lu.Link.UpstreamID, Before: lu.User, After: &after,
			LinkBefore: lu.Link, DropLink: true, Departs: lu.User.Status == directory.UserActive})
		p.UserDeletes++
	}
	return nil
}

// matchCandidates finds the local users an upstream user may link to, excluding users already
// linked to this source.
func (e *Engine) matchCandidates(ctx context.Context, src *directory.IdentitySource, m mapped, linked map[string]bool) ([]*directory.User, error) {
	ent := src.EnterpriseID
	var found []*directory.User
	switch src.Sync.MatchBy {
	case "email", "mobile":
		v := m.Email
		if src.Sync.MatchBy == "mobile" {
			v = m.Mobile
		}
		us, err := e.Store.FindUsers(ctx, ent, src.Sync.MatchBy, v)
		if err != nil {
			return nil, err
		}
		found = us
	default:
		u, err := e.Store.GetUserByUsername(ctx, ent, m.Username)
		if err != nil && !errors.Is(err, directory.ErrNotFound) {
			return nil, err
		}
		if u != nil {
			found = []*directory.User{u}
		}
	}
	var out []*directory.User
	for _, u := range found {
		links, err := e.Store.LinksOfUser(ctx, ent, u.ID)
		if err != nil {
			return nil, err
		}
		mine := linked[u.ID]
		for _, l := range links {
			mine = mine || l.SourceID == src.ID
		}
		if !mine {
			out = append(out, u)
		}
	}
	return out, nil
}

// apply returns a copy of cur with the mapped upstream fields of source srcID. A person an
// authoritative source removed stays departed whatever other sources say; that source linking
// them again brings them back.
func apply(cur *directory.User, m mapped, srcID string) *directory.User {
	after := *cur
	after.Name, after.Email, after.Mobile, after.Status = m.Name, m.Email, m.Mobile, m.Status
	if m.KeepEmail {
		after.Email = cur.Email
	}
	if m.KeepMobile {
		after.Mobile = cur.Mobile
	}
	switch cur.DepartedBy {
	case "":
	case srcID:
		after.DepartedBy = ""
	default:
		after.Status = directory.UserDeparted
	}
	attrs := map[string]string{}
	for k, v := range cur.Attributes {
		attrs[k] = v
	}
	for k, v := range m.Attrs {
		attrs[k] = v
	}
	after.Attributes = attrs
	return &after
}

func sameUser(a, b *directory.User) bool {
	if a.Name != b.Name || a.Email != b.Email || a.Mobile != b.Mobile || a.Status != b.Status || a.Username != b.Username ||
		a.DepartedBy != b.DepartedBy {
		return false
	}
	if len(a.Attributes) != len(b.Attributes) {
		return false
	}
	for k, v := range a.Attributes {
		if b.Attributes[k] != v {
			return false
		}
	}
	return true
}
