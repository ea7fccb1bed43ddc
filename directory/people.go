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
	if !src.Enabled {
		return nil, fmt.Errorf("source %s is closed", source)
	}
	links, err := st.LinksOfUser(ctx, ent, uid)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", uid, err)
	}
	for _, l := range links {
		if l.SourceID == source {
			return u, nil
		}
	}
	return nil, fmt.Errorf("user %s is no longer linked to source %s", uid, source)
}
