package sqlstore

import (
	"context"
	"time"

	"github.com/qiao-gateway/qiao/directory"
)

// PutAdminGrant implements directory.Store.
func (s *Store) PutAdminGrant(ctx context.Context, g *directory.AdminGrant) error {
	now := s.now()
	if g.CreatedAt.IsZero() {
		g.CreatedAt = now
	}
	g.UpdatedAt = now
	_, err := s.q.ExecContext(ctx, `INSERT INTO admin_grants (enterprise_id, username, role, managed, granted_by, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (enterprise_id, username) DO UPDATE SET role = excluded.role, managed = excluded.managed,
		granted_by = excluded.granted_by, updated_at = excluded.updated_at`,
		g.EnterpriseID, g.Username, string(g.Role), g.Managed, g.GrantedBy, ms(g.CreatedAt), ms(g.UpdatedAt))
	return mapErr(err, "put admin grant")
}

const grantCols = `enterprise_id, username, role, managed, granted_by, created_at, updated_at`

func scanGrant(sc interface{ Scan(...any) error }) (*directory.AdminGrant, error) {
	var g directory.AdminGrant
	var role string
	var c, u int64
	if err := sc.Scan(&g.EnterpriseID, &g.Username, &role, &g.Managed, &g.GrantedBy, &c, &u); err != nil {
		return nil, err
	}
	g.Role, g.CreatedAt, g.UpdatedAt = directory.AdminRole(role), fromMS(c), fromMS(u)
	return &g, nil
}

// GetAdminGrant implements directory.Store.
func (s *Store) GetAdminGrant(ctx context.Context, ent, username string) (*directory.AdminGrant, error) {
	g, err := scanGrant(s.q.QueryRowContext(ctx, `SELECT `+grantCols+` FROM admin_grants WHERE enterprise_id = $1 AND username = $2`, ent, username))
	if err != nil {
		return nil, mapErr(err, "get admin grant")
	}
	return g, nil
}

// ListAdminGrants implements directory.Store, by username.
func (s *Store) ListAdminGrants(ctx context.Context, ent string) ([]*directory.AdminGrant, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT `+grantCols+` FROM admin_grants WHERE enterprise_id = $1 ORDER BY username`, ent)
	if err != nil {
		return nil, mapErr(err, "list admin grants")
	}
	defer rows.Close()
	var out []*directory.AdminGrant
	for rows.Next() {
		g, err := scanGrant(rows)
		if err != nil {
			return nil, mapErr(err, "list admin grants")
		}
		out = append(out, g)
	}
	return out, mapErr(rows.Err(), "list admin grants")
}

// DeleteAdminGrant implements directory.Store.
func (s *Store) DeleteAdminGrant(ctx context.Context, ent, username string) error {
	res, err := s.q.ExecContext(ctx, `DELETE FROM admin_grants WHERE enterprise_id = $1 AND username = $2`, ent, username)
	return expectOne(res, err, "delete admin grant")
}

// AddOperator implements directory.Store.
func (s *Store) AddOperator(ctx context.Context, o *directory.Operator) error {
	if o.CreatedAt.IsZero() {
		o.CreatedAt = s.now()
	}
	_, err := s.q.ExecContext(ctx, `INSERT INTO operators (enterprise_id, username, granted_by, created_at) VALUES ($1, $2, $3, $4)`,
		o.EnterpriseID, o.Username, o.GrantedBy, ms(o.CreatedAt))
	return mapErr(err, "add operator")
}

func scanOperator(sc interface{ Scan(...any) error }) (*directory.Operator, error) {
	var o directory.Operator
	var c int64
	if err := sc.Scan(&o.EnterpriseID, &o.Username, &o.GrantedBy, &c); err != nil {
		return nil, err
	}
	o.CreatedAt = fromMS(c)
	return &o, nil
}

// GetOperator implements directory.Store.
func (s *Store) GetOperator(ctx context.Context, ent, username string) (*directory.Operator, error) {
	o, err := scanOperator(s.q.QueryRowContext(ctx, `SELECT enterprise_id, username, granted_by, created_at FROM operators
		WHERE enterprise_id = $1 AND username = $2`, ent, username))
	if err != nil {
		return nil, mapErr(err, "get operator")
	}
	return o, nil
}

// ListOperators implements directory.Store.
func (s *Store) ListOperators(ctx context.Context) ([]*directory.Operator, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT enterprise_id, username, granted_by, created_at FROM operators ORDER BY enterprise_id, username`)
	if err != nil {
		return nil, mapErr(err, "list operators")
	}
	defer rows.Close()
	var out []*directory.Operator
	for rows.Next() {
		o, err := scanOperator(rows)
		if err != nil {
			return nil, mapErr(err, "list operators")
		}
		out = append(out, o)
	}
	return out, mapErr(rows.Err(), "list operators")
}

// DeleteOperator implements directory.Store.
func (s *Store) DeleteOperator(ctx context.Context, ent, username string) error {
	res, err := s.q.ExecContext(ctx, `DELETE FROM operators WHERE enterprise_id = $1 AND username = $2`, ent, username)
	return expectOne(res, err, "delete operator")
}

// AddSetupToken implements directory.Store.
func (s *Store) AddSetupToken(ctx context.Context, t *directory.SetupToken) error {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.now()
	}
	_, err := s.q.ExecContext(ctx, `INSERT INTO setup_tokens (hash, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
		t.Hash, t.CreatedBy, ms(t.CreatedAt), ms(t.ExpiresAt))
	return mapErr(err, "add setup token")
}

// TakeSetupToken implements directory.Store: one DELETE ... RETURNING, so of concurrent takes
// one gets the row. Expired tokens are swept on the way.
func (s *Store) TakeSetupToken(ctx context.Context, hash string, now time.Time) (*directory.SetupToken, error) {
	var t directory.SetupToken
	var c, e int64
	err := s.q.QueryRowContext(ctx, `DELETE FROM setup_tokens WHERE hash = $1 AND expires_at > $2 RETURNING hash, created_by, created_at, expires_at`,
		hash, ms(now)).Scan(&t.Hash, &t.CreatedBy, &c, &e)
	if _, derr := s.q.ExecContext(ctx, `DELETE FROM setup_tokens WHERE expires_at <= $1`, ms(now)); derr != nil && err == nil {
		return nil, mapErr(derr, "sweep setup tokens")
	}
	if err != nil {
		return nil, mapErr(err, "take setup token")
	}
	t.CreatedAt, t.ExpiresAt = fromMS(c), fromMS(e)
	return &t, nil
}
