package sqlstore

import (
	"context"

	"github.com/qiao-gateway/qiao/directory"
)

// ---- groups

// PutGroup implements directory.Store; the member list is replaced.
func (s *Store) PutGroup(ctx context.Context, g *directory.Group) error {
	if !directory.ValidID(g.ID) {
		return &directory.FieldError{Field: "id", Reason: "must be 1-63 lowercase letters, digits, '-' or '_'"}
	}
	return s.InTx(ctx, func(tx directory.Store) error {
		t := tx.(*Store)
		_, err := t.q.ExecContext(ctx, `INSERT INTO groups_ (enterprise_id, id, name, description) VALUES ($1, $2, $3, $4)
			ON CONFLICT (enterprise_id, id) DO UPDATE SET name = excluded.name, description = excluded.description`,
			g.EnterpriseID, g.ID, g.Name, g.Description)
		if err != nil {
			return mapErr(err, "put group "+g.ID)
		}
		if _, err := t.q.ExecContext(ctx, `DELETE FROM group_members WHERE enterprise_id = $1 AND group_id = $2`, g.EnterpriseID, g.ID); err != nil {
			return mapErr(err, "put group members")
		}
		seen := map[string]bool{}
		for _, m := range g.Members {
			if seen[m] {
				continue
			}
			seen[m] = true
			if _, err := t.q.ExecContext(ctx, `INSERT INTO group_members (enterprise_id, group_id, user_id) VALUES ($1, $2, $3)`,
				g.EnterpriseID, g.ID, m); err != nil {
				return mapErr(err, "add member "+m+" to group "+g.ID)
			}
		}
		return nil
	})
}

func (s *Store) groupMembers(ctx context.Context, ent, id string) ([]string, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT user_id FROM group_members WHERE enterprise_id = $1 AND group_id = $2 ORDER BY user_id`, ent, id)
	if err != nil {
		return nil, mapErr(err, "group members")
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return nil, mapErr(err, "group members")
		}
		out = append(out, m)
	}
	return out, mapErr(rows.Err(), "group members")
}

// GetGroup implements directory.Store.
func (s *Store) GetGroup(ctx context.Context, ent, id string) (*directory.Group, error) {
	var g directory.Group
	err := s.q.QueryRowContext(ctx, `SELECT enterprise_id, id, name, description FROM groups_ WHERE enterprise_id = $1 AND id = $2`, ent, id).
		Scan(&g.EnterpriseID, &g.ID, &g.Name, &g.Description)
	if err != nil {
		return nil, mapErr(err, "group "+id)
	}
	if g.Members, err = s.groupMembers(ctx, ent, id); err != nil {
		return nil, err
	}
	return &g, nil
}

func (s *Store) queryGroups(ctx context.Context, q string, args ...any) ([]*directory.Group, error) {
	rows, err := s.q.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, mapErr(err, "list groups")
	}
	var out []*directory.Group
	for rows.Next() {
		var g directory.Group
		if err := rows.Scan(&g.EnterpriseID, &g.ID, &g.Name, &g.Description); err != nil {
			rows.Close()
			return nil, mapErr(err, "list groups")
		}
		out = append(out, &g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, mapErr(err, "list groups")
	}
	for _, g := range out {
		if g.Members, err = s.groupMembers(ctx, g.EnterpriseID, g.ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ListGroups implements directory.Store.
func (s *Store) ListGroups(ctx context.Context, ent string) ([]*directory.Group, error) {
	return s.queryGroups(ctx, `SELECT enterprise_id, id, name, description FROM groups_ WHERE enterprise_id = $1 ORDER BY id`, ent)
}

// GroupsOfUser implements directory.Store.
func (s *Store) GroupsOfUser(ctx context.Context, ent, userID string) ([]*directory.Group, error) {
	return s.queryGroups(ctx, `SELECT g.enterprise_id, g.id, g.name, g.description FROM groups_ g
		JOIN group_members m ON m.enterprise_id = g.enterprise_id AND m.group_id = g.id
		WHERE g.enterprise_id = $1 AND m.user_id = $2 ORDER BY g.id`, ent, userID)
}

// DeleteGroup implements directory.Store.
func (s *Store) DeleteGroup(ctx context.Context, ent, id string) error {
	res, err := s.q.ExecContext(ctx, `DELETE FROM groups_ WHERE enterprise_id = $1 AND id = $2`, ent, id)
	return expectOne(res, err, "delete group "+id)
}
