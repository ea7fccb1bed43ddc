package directory

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Field reads one of a user's fields by the name admins use in claim and attribute mappings: id,
// username, name, email, mobile, enterprise, or ext.NAME for an extended field. Unknown names
// read as "".
func (u *User) Field(name string) string {
	switch name {
	case "id":
		return u.ID
	case "username":
		return u.Username
	case "name":
		return u.Name
	case "email":
		return u.Email
	case "mobile":
		return u.Mobile
	case "enterprise":
		return u.EnterpriseID
	}
	if ext, ok := strings.CutPrefix(name, "ext."); ok {
		return u.Attributes[ext]
	}
	return ""
}

// DepartmentPaths gives the path from the root ("/总部/研发部") of every department a user is in,
// across their sources, sorted and without repeats.
func DepartmentPaths(ctx context.Context, st Store, ent, uid string) ([]string, error) {
	links, err := st.LinksOfUser(ctx, ent, uid)
	if err != nil {
		return nil, fmt.Errorf("links of %s: %w", uid, err)
	}
	paths := []string{}
	for _, l := range links {
		for _, id := range l.Departments {
			var names []string
			for cur, depth := id, 0; cur != "" && depth < 64; depth++ {
				d, err := st.GetDepartment(ctx, ent, l.SourceID, cur)
				if err != nil {
					break
				}
				names = append(names, d.Name)
				cur = d.ParentID
			}
			if len(names) == 0 {
				continue
			}
			slices.Reverse(names)
			if path := "/" + strings.Join(names, "/"); !slices.Contains(paths, path) {
				paths = append(paths, path)
			}
		}
	}
	sort.Strings(paths)
	return paths, nil
}

// GroupNames gives the sorted names of the groups a user is in.
func GroupNames(ctx context.Context, st Store, ent, uid string) ([]string, error) {
	gs, err := st.GroupsOfUser(ctx, ent, uid)
	if err != nil {
		return nil, fmt.Errorf("groups of %s: %w", uid, err)
	}
	names := make([]string, 0, len(gs))
	for _, g := range gs {
		names = append(names, g.Name)
	}
	sort.Strings(names)
	return names, nil
}

// ActiveThrough checks that a person may still use what a login through source granted: they are
// active, and, when the source is named, it is still open and still links them. A person removed
// from one source keeps what other sources granted, not what that one did; a closed source's
// sessions and tokens are refused from the moment it closes, before any revocation has run.
// It returns the user when they may.
func ActiveThrough(ctx context.Context, st Store, ent, uid, source string) (*User, error) {
	if ac, ok := st.(AccessReader); ok && source != "" {
		a, err := ac.UserAccess(ctx, ent, uid, source)
		if err != nil {
			return nil, fmt.Errorf("user %s: %w", uid, err)
		}
		return a.check(uid, source)
	}
	u, err := st.GetUser(ctx, ent, uid)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", uid, err)
	}
	if u.Status != UserActive {
		return nil, fmt.Errorf("user %s is %s", uid, u.Status)
	}
	if source == "" {
		return u, nil
	}
	src, err := st.GetSource(ctx, ent, source)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", source, err)
	}
	a := UserAccess{User: u, SourceFound: true, SourceEnabled: src.Enabled}
	links, err := st.LinksOfUser(ctx, ent, uid)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", uid, err)
	}
	for _, l := range links {
		if l.SourceID == source {
			a.Linked = true
		}
	}
	return a.check(uid, source)
}

// UserAccess is what ActiveThrough decides on: the user, whether the source exists and is enabled,
// and whether it links the user.
type UserAccess struct {
	User                       *User
	SourceFound, SourceEnabled bool
	Linked                     bool
}

func (a UserAccess) check(uid, source string) (*User, error) {
	switch {
	case a.User.Status != UserActive:
		return nil, fmt.Errorf("user %s is %s", uid, a.User.Status)
	case !a.SourceFound:
		return nil, fmt.Errorf("source %s: %w", source, ErrNotFound)
	case !a.SourceEnabled:
		return nil, fmt.Errorf("source %s is closed", source)
	case !a.Linked:
		return nil, fmt.Errorf("user %s is no longer linked to source %s", uid, source)
	}
	return a.User, nil
}

// AccessReader is a Store that reads what ActiveThrough needs (the user, their source's state and
// their link to it) in one query, at one point in time; ActiveThrough uses it when the store has
// it. A user that does not exist is ErrNotFound.
type AccessReader interface {
	UserAccess(ctx context.Context, ent, uid, source string) (UserAccess, error)
}
