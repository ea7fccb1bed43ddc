package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/qiao-gateway/qiao/directory"
)

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Only maps, slices and structs of plain types reach here.
		panic("sqlstore: marshal: " + err.Error())
	}
	return string(b)
}

func rawText(r json.RawMessage) string {
	if len(r) == 0 {
		return ""
	}
	return string(r)
}

func textRaw(s string) json.RawMessage {
	if s == "" || s == "null" {
		return nil
	}
	return json.RawMessage(s)
}

func unjson(s string, v any, what string) error {
	if s == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	return nil
}

// ---- enterprises

// PutEnterprise implements directory.Store.
func (s *Store) PutEnterprise(ctx context.Context, e *directory.Enterprise) error {
	if !directory.ValidID(e.ID) {
		return &directory.FieldError{Field: "id", Reason: "must be 1-63 lowercase letters, digits, '-' or '_'"}
	}
	now := s.now()
	if e.CreatedAt.IsZero() {
		e.CreatedAt = now
	}
	e.UpdatedAt = now
	_, err := s.q.ExecContext(ctx, `INSERT INTO enterprises (id, name, managed, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, managed = excluded.managed, updated_at = excluded.updated_at`,
		e.ID, e.Name, e.Managed, ms(e.CreatedAt), ms(e.UpdatedAt))
	return mapErr(err, "put enterprise "+e.ID)
}

// GetEnterprise implements directory.Store.
func (s *Store) GetEnterprise(ctx context.Context, id string) (*directory.Enterprise, error) {
	var e directory.Enterprise
	var c, u int64
	err := s.q.QueryRowContext(ctx, `SELECT id, name, managed, created_at, updated_at FROM enterprises WHERE id = $1`, id).
		Scan(&e.ID, &e.Name, &e.Managed, &c, &u)
	if err != nil {
		return nil, mapErr(err, "enterprise "+id)
	}
	e.CreatedAt, e.UpdatedAt = fromMS(c), fromMS(u)
	return &e, nil
}

// ListEnterprises implements directory.Store.
func (s *Store) ListEnterprises(ctx context.Context) ([]*directory.Enterprise, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT id, name, managed, created_at, updated_at FROM enterprises ORDER BY id`)
	if err != nil {
		return nil, mapErr(err, "list enterprises")
	}
	defer rows.Close()
	var out []*directory.Enterprise
	for rows.Next() {
		var e directory.Enterprise
		var c, u int64
		if err := rows.Scan(&e.ID, &e.Name, &e.Managed, &c, &u); err != nil {
			return nil, mapErr(err, "list enterprises")
		}
		e.CreatedAt, e.UpdatedAt = fromMS(c), fromMS(u)
		out = append(out, &e)
	}
	return out, mapErr(rows.Err(), "list enterprises")
}

// DeleteEnterprise implements directory.Store; everything the enterprise owns goes with it.
func (s *Store) DeleteEnterprise(ctx context.Context, id string) error {
	return s.InTx(ctx, func(tx directory.Store) error {
		t := tx.(*Store)
		// Rows without a foreign key to the enterprise are removed explicitly.
		for _, q := range []string{
			`DELETE FROM refresh_tokens WHERE enterprise_id = $1`,
			`DELETE FROM sync_tasks WHERE enterprise_id = $1`,
		} {
			if _, err := t.q.ExecContext(ctx, q, id); err != nil {
				return mapErr(err, "delete enterprise "+id)
			}
		}
		res, err := t.q.ExecContext(ctx, `DELETE FROM enterprises WHERE id = $1`, id)
		return expectOne(res, err, "delete enterprise "+id)
	})
}

// ---- identity sources

func sourceAAD(ent, id string) []byte { return []byte("source/" + ent + "/" + id) }

// PutSource implements directory.Store.
func (s *Store) PutSource(ctx context.Context, src *directory.IdentitySource) error {
	if err := src.Validate(); err != nil {
		return err
	}
	return s.InTx(ctx, func(tx directory.Store) error {
		t := tx.(*Store)
		if t.dialect == Postgres {
			// Serialize source writes of one enterprise so the enabled-source limits hold under
			// concurrent admins. (SQLite transactions are already serialized by _txlock=immediate.)
			if _, err := t.q.ExecContext(ctx, `SELECT id FROM enterprises WHERE id = $1 FOR UPDATE`, src.EnterpriseID); err != nil {
				return mapErr(err, "lock enterprise")
			}
		}
		if src.Enabled {
			var enabled, custom int
			err := t.q.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN kind = 'local' THEN 1 ELSE 0 END), 0)
				FROM identity_sources WHERE enterprise_id = $1 AND enabled = 1 AND id <> $2`,
				src.EnterpriseID, src.ID).Scan(&enabled, &custom)
			if err != nil {
				return mapErr(err, "count sources")
			}
			if enabled+1 > directory.MaxEnabledSources {
				return fmt.Errorf("enterprise %s already has %d enabled identity sources: %w", src.EnterpriseID, enabled, directory.ErrLimit)
			}
			if src.Kind == directory.KindLocal && custom+1 > directory.MaxEnabledCustomSources {
				return fmt.Errorf("enterprise %s already has an enabled custom directory: %w", src.EnterpriseID, directory.ErrLimit)
			}
		}
		now := t.now()
		if src.CreatedAt.IsZero() {
			src.CreatedAt = now
		}
		src.UpdatedAt = now
		var sealed []byte
		if len(src.Secrets) > 0 {
			sealed = t.box.Seal([]byte(jsonText(src.Secrets)), sourceAAD(src.EnterpriseID, src.ID))
		}
		cfg := src.Config
		if cfg == nil {
			cfg = map[string]string{}
		}
		_, err := t.q.ExecContext(ctx, `INSERT INTO identity_sources
			(enterprise_id, id, kind, name, description, enabled, sync, config, secrets, created_at, updated_at, managed, authoritative)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
			ON CONFLICT (enterprise_id, id) DO UPDATE SET kind = excluded.kind, name = excluded.name,
			description = excluded.description, enabled = excluded.enabled, sync = excluded.sync,
			config = excluded.config, secrets = excluded.secrets, updated_at = excluded.updated_at,
			managed = excluded.managed, authoritative = excluded.authoritative`,
			src.EnterpriseID, src.ID, string(src.Kind), src.Name, src.Description, b2i(src.Enabled),
			jsonText(src.Sync), jsonText(cfg), sealed, ms(src.CreatedAt), ms(src.UpdatedAt), src.Managed, optBool(src.Authoritative))
		return mapErr(err, "put source "+src.ID)
	})
}

const sourceCols = `enterprise_id, id, kind, name, description, enabled, sync, config, secrets, created_at, updated_at, managed, authoritative`

// optBool stores a tri-state flag: NULL when unset.
func optBool(b *bool) any {
	if b == nil {
		return nil
	}
	return b2i(*b)
}

func (s *Store) scanSource(sc interface{ Scan(...any) error }) (*directory.IdentitySource, error) {
	var src directory.IdentitySource
	var kind, syncJSON, cfgJSON string
	var enabled, c, u int64
	var auth sql.NullInt64
	var sealed []byte
	if err := sc.Scan(&src.EnterpriseID, &src.ID, &kind, &src.Name, &src.Description, &enabled, &syncJSON, &cfgJSON, &sealed, &c, &u,
		&src.Managed, &auth); err != nil {
		return nil, err
	}
	if auth.Valid {
		a := auth.Int64 != 0
		src.Authoritative = &a
	}
	src.Kind = directory.SourceKind(kind)
	src.Enabled = enabled != 0
	src.CreatedAt, src.UpdatedAt = fromMS(c), fromMS(u)
	if err := unjson(syncJSON, &src.Sync, "source sync settings"); err != nil {
		return nil, err
	}
	if err := unjson(cfgJSON, &src.Config, "source config"); err != nil {
		return nil, err
	}
	if len(sealed) > 0 {
		pt, err := s.box.Open(sealed, sourceAAD(src.EnterpriseID, src.ID))
		if err != nil {
			return nil, fmt.Errorf("secrets of source %s/%s: %w", src.EnterpriseID, src.ID, err)
		}
		if err := json.Unmarshal(pt, &src.Secrets); err != nil {
			return nil, fmt.Errorf("secrets of source %s/%s: %w", src.EnterpriseID, src.ID, err)
		}
	}
	return &src, nil
}

// GetSource implements directory.Store.
func (s *Store) GetSource(ctx context.Context, ent, id string) (*directory.IdentitySource, error) {
	src, err := s.scanSource(s.q.QueryRowContext(ctx, `SELECT `+sourceCols+` FROM identity_sources WHERE enterprise_id = $1 AND id = $2`, ent, id))
	if err != nil {
		return nil, mapErr(err, "source "+ent+"/"+id)
	}
	return src, nil
}

// ListSources implements directory.Store.
func (s *Store) ListSources(ctx context.Context, ent string) ([]*directory.IdentitySource, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT `+sourceCols+` FROM identity_sources WHERE enterprise_id = $1 ORDER BY id`, ent)
	if err != nil {
		return nil, mapErr(err, "list sources")
	}
	defer rows.Close()
	var out []*directory.IdentitySource
	for rows.Next() {
		src, err := s.scanSource(rows)
		if err != nil {
			return nil, mapErr(err, "list sources")
		}
		out = append(out, src)
	}
	return out, mapErr(rows.Err(), "list sources")
}

// DeleteSource implements directory.Store; its departments and user links go with it.
func (s *Store) DeleteSource(ctx context.Context, ent, id string) error {
	res, err := s.q.ExecContext(ctx, `DELETE FROM identity_sources WHERE enterprise_id = $1 AND id = $2`, ent, id)
	return expectOne(res, err, "delete source "+ent+"/"+id)
}

// ---- departments

// PutDepartment implements directory.Store.
func (s *Store) PutDepartment(ctx context.Context, d *directory.Department) error {
	d.UpdatedAt = s.now()
	_, err := s.q.ExecContext(ctx, `INSERT INTO departments
		(enterprise_id, source_id, upstream_id, parent_id, name, sort_order, extra, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (enterprise_id, source_id, upstream_id) DO UPDATE SET parent_id = excluded.parent_id,
		name = excluded.name, sort_order = excluded.sort_order, extra = excluded.extra, updated_at = excluded.updated_at`,
		d.EnterpriseID, d.SourceID, d.UpstreamID, d.ParentID, d.Name, d.Order, rawText(d.Extra), ms(d.UpdatedAt))
	return mapErr(err, "put department "+d.UpstreamID)
}

const deptCols = `enterprise_id, source_id, upstream_id, parent_id, name, sort_order, extra, updated_at`

func scanDept(sc interface{ Scan(...any) error }) (*directory.Department, error) {
	var d directory.Department
	var extra string
	var u int64
	if err := sc.Scan(&d.EnterpriseID, &d.SourceID, &d.UpstreamID, &d.ParentID, &d.Name, &d.Order, &extra, &u); err != nil {
		return nil, err
	}
	d.Extra = textRaw(extra)
	d.UpdatedAt = fromMS(u)
	return &d, nil
}

// GetDepartment implements directory.Store.
func (s *Store) GetDepartment(ctx context.Context, ent, src, id string) (*directory.Department, error) {
	d, err := scanDept(s.q.QueryRowContext(ctx, `SELECT `+deptCols+` FROM departments
		WHERE enterprise_id = $1 AND source_id = $2 AND upstream_id = $3`, ent, src, id))
	if err != nil {
		return nil, mapErr(err, "department "+id)
	}
	return d, nil
}

// ListDepartments implements directory.Store.
func (s *Store) ListDepartments(ctx context.Context, ent, src string) ([]*directory.Department, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT `+deptCols+` FROM departments
		WHERE enterprise_id = $1 AND source_id = $2 ORDER BY upstream_id`, ent, src)
	if err != nil {
		return nil, mapErr(err, "list departments")
	}
	defer rows.Close()
	var out []*directory.Department
	for rows.Next() {
		d, err := scanDept(rows)
		if err != nil {
			return nil, mapErr(err, "list departments")
		}
		out = append(out, d)
	}
	return out, mapErr(rows.Err(), "list departments")
}

// DeleteDepartment implements directory.Store.
func (s *Store) DeleteDepartment(ctx context.Context, ent, src, id string) error {
	res, err := s.q.ExecContext(ctx, `DELETE FROM departments WHERE enterprise_id = $1 AND source_id = $2 AND upstream_id = $3`, ent, src, id)
	return expectOne(res, err, "delete department "+id)
}

// ---- users

const userCols = `id, enterprise_id, username, name, email, mobile, status, password_hash, attributes, created_at, updated_at, managed, departed_by`

func scanUser(sc interface{ Scan(...any) error }) (*directory.User, error) {
	var u directory.User
	var status, attrs string
	var c, up int64
	if err := sc.Scan(&u.ID, &u.EnterpriseID, &u.Username, &u.Name, &u.Email, &u.Mobile, &status, &u.PasswordHash, &attrs, &c, &up, &u.Managed, &u.DepartedBy); err != nil {
		return nil, err
	}
	u.Status = directory.UserStatus(status)
	u.CreatedAt, u.UpdatedAt = fromMS(c), fromMS(up)
	if err := unjson(attrs, &u.Attributes, "user attributes"); err != nil {
		return nil, err
	}
	return &u, nil
}

func validStatus(st directory.UserStatus) bool {
	switch st {
	case directory.UserActive, directory.UserDisabled, directory.UserInactive, directory.UserDeparted:
		return true
	}
	return false
}

// userRow is one row of an INSERT INTO users (userCols), its values from newUserRow.
const userRow = `($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`

// newUserRow checks a new user and fills in what creating one sets (ID, status, times), and
// returns the values of its userRow.
func newUserRow(u *directory.User, now time.Time) ([]any, error) {
	if u.Username == "" {
		return nil, &directory.FieldError{Field: "username", Reason: "required"}
	}
	if u.Status == "" {
		u.Status = directory.UserActive
	}
	if !validStatus(u.Status) {
		return nil, &directory.FieldError{Field: "status", Reason: fmt.Sprintf("unknown status %q", u.Status)}
	}
	if u.ID == "" {
		u.ID = uuid.Must(uuid.NewV7()).String()
	}
	u.CreatedAt, u.UpdatedAt = now, now
	attrs := u.Attributes
	if attrs == nil {
		attrs = map[string]string{}
	}
	return []any{u.ID, u.EnterpriseID, u.Username, u.Name, u.Email, u.Mobile, string(u.Status), u.PasswordHash, jsonText(attrs), ms(now), ms(now), u.Managed, u.DepartedBy}, nil
}

// CreateUser implements directory.Store.
func (s *Store) CreateUser(ctx context.Context, u *directory.User) error {
	args, err := newUserRow(u, s.now())
	if err != nil {
		return err
	}
	_, err = s.q.ExecContext(ctx, `INSERT INTO users (`+userCols+`) VALUES `+userRow, args...)
	return mapErr(err, "create user "+u.Username)
}

// bulkRows is how many rows one multi-row INSERT of a bulk write carries: 500 users are 6,500
// parameters, within both servers' limits (SQLite 32,766, PostgreSQL 65,535).
const bulkRows = 500

var paramRef = regexp.MustCompile(`\$(\d+)`)

// bulkStmts holds the full-size (bulkRows) multi-row statements insertRows has written, by their
// parts: nearly all of a sync's batches are full, and the statement was written anew for each. A
// shorter one (the last of a sync) is written each time, not kept: its sizes are many.
var bulkStmts sync.Map // bulkStmt -> string

type bulkStmt struct {
	head, row, tail string
	cols, rows      int
}

// text is the statement: head, rows copies of row (each numbering its parameters on from the
// last), tail.
func (b bulkStmt) text() string {
	if q, ok := bulkStmts.Load(b); ok {
		return q.(string)
	}
	var q strings.Builder
	q.WriteString(b.head)
	for r := 0; r < b.rows; r++ {
		if r > 0 {
			q.WriteString(", ")
		}
		q.WriteString(paramRef.ReplaceAllStringFunc(b.row, func(ref string) string {
			n, _ := strconv.Atoi(ref[1:])
			return "$" + strconv.Itoa(n+r*b.cols)
		}))
	}
	q.WriteString(b.tail)
	if b.rows == bulkRows {
		bulkStmts.Store(b, q.String())
	}
	return q.String()
}

// insertRows runs head + rows + tail for args, bulkRows rows to a statement: row is one row's
// VALUES with its parameters numbered from $1, each row has cols of args, and every further row
// numbers its parameters on from the last. what names the rows for errors.
func (s *Store) insertRows(ctx context.Context, head, row, tail string, cols int, args []any, what string) error {
	for len(args) > 0 {
		chunk := args[:min(len(args), bulkRows*cols)]
		args = args[len(chunk):]
		q := bulkStmt{head: head, row: row, tail: tail, cols: cols, rows: len(chunk) / cols}.text()
		if _, err := s.q.ExecContext(ctx, q, chunk...); err != nil {
			return mapErr(err, fmt.Sprintf("%s (%d of them)", what, len(chunk)/cols))
		}
	}
	return nil
}

// CreateUsers implements directory.BulkUserWriter: CreateUser for each, bulkRows to a statement
// on PostgreSQL, where each statement is a round trip. SQLite runs in the process and keeps its
// one-row statements prepared; a 100k first sync there took four times as long with multi-row
// INSERTs, so it writes one row at a time.
func (s *Store) CreateUsers(ctx context.Context, users []*directory.User) error {
	if s.dialect != Postgres {
		for _, u := range users {
			if err := s.CreateUser(ctx, u); err != nil {
				return err
			}
		}
		return nil
	}
	now := s.now()
	args := make([]any, 0, 13*len(users))
	for _, u := range users {
		row, err := newUserRow(u, now)
		if err != nil {
			return err
		}
		args = append(args, row...)
	}
	return s.insertRows(ctx, `INSERT INTO users (`+userCols+`) VALUES `, userRow, "", 13, args, "create users")
}

// UpdateUser implements directory.Store. The ID and enterprise never change.
func (s *Store) UpdateUser(ctx context.Context, u *directory.User) error {
	if !validStatus(u.Status) {
		return &directory.FieldError{Field: "status", Reason: fmt.Sprintf("unknown status %q", u.Status)}
	}
	u.UpdatedAt = s.now()
	attrs := u.Attributes
	if attrs == nil {
		attrs = map[string]string{}
	}
	res, err := s.q.ExecContext(ctx, `UPDATE users SET username = $3, name = $4, email = $5, mobile = $6, status = $7,
		password_hash = $8, attributes = $9, updated_at = $10, managed = $11, departed_by = $12 WHERE enterprise_id = $1 AND id = $2`,
		u.EnterpriseID, u.ID, u.Username, u.Name, u.Email, u.Mobile, string(u.Status), u.PasswordHash, jsonText(attrs), ms(u.UpdatedAt), u.Managed, u.DepartedBy)
	return expectOne(res, err, "update user "+u.ID)
}

// GetUser implements directory.Store.
func (s *Store) GetUser(ctx context.Context, ent, id string) (*directory.User, error) {
	u, err := scanUser(s.q.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE enterprise_id = $1 AND id = $2`, ent, id))
	if err != nil {
		return nil, mapErr(err, "user "+id)
	}
	return u, nil
}

// GetUserByUsername implements directory.Store.
func (s *Store) GetUserByUsername(ctx context.Context, ent, username string) (*directory.User, error) {
	u, err := scanUser(s.q.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE enterprise_id = $1 AND username = $2`, ent, username))
	if err != nil {
		return nil, mapErr(err, "user "+username)
	}
	return u, nil
}

// FindUsers implements directory.Store.
func (s *Store) FindUsers(ctx context.Context, ent, field, value string) ([]*directory.User, error) {
	if field != "email" && field != "mobile" {
		return nil, fmt.Errorf("find users: unsupported field %q", field)
	}
	if value == "" {
		return nil, nil
	}
	return s.queryUsers(ctx, `SELECT `+userCols+` FROM users WHERE enterprise_id = $1 AND `+field+` = $2 ORDER BY id`, ent, value)
}

// ListUsers implements directory.Store.
func (s *Store) ListUsers(ctx context.Context, ent, after string, limit int) ([]*directory.User, error) {
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	return s.queryUsers(ctx, `SELECT `+userCols+` FROM users WHERE enterprise_id = $1 AND id > $2 ORDER BY id LIMIT $3`, ent, after, limit)
}

func (s *Store) queryUsers(ctx context.Context, q string, args ...any) ([]*directory.User, error) {
	rows, err := s.q.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, mapErr(err, "list users")
	}
	defer rows.Close()
	var out []*directory.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, mapErr(err, "list users")
		}
		out = append(out, u)
	}
	return out, mapErr(rows.Err(), "list users")
}

// DeleteUser implements directory.Store; the user's links, group memberships and refresh tokens go
// with them.
func (s *Store) DeleteUser(ctx context.Context, ent, id string) error {
	return s.InTx(ctx, func(tx directory.Store) error {
		t := tx.(*Store)
		if _, err := t.q.ExecContext(ctx, `DELETE FROM refresh_tokens WHERE enterprise_id = $1 AND user_id = $2`, ent, id); err != nil {
			return mapErr(err, "delete user tokens")
		}
		res, err := t.q.ExecContext(ctx, `DELETE FROM users WHERE enterprise_id = $1 AND id = $2`, ent, id)
		return expectOne(res, err, "delete user "+id)
	})
}

// ---- user links

const linkCols = `enterprise_id, source_id, upstream_id, union_id, user_id, departments, upstream, updated_at, sync_hash`

func scanLink(sc interface{ Scan(...any) error }) (*directory.UserLink, error) {
	var l directory.UserLink
	var depts, up string
	var u int64
	if err := sc.Scan(&l.EnterpriseID, &l.SourceID, &l.UpstreamID, &l.UnionID, &l.UserID, &depts, &up, &u, &l.SyncHash); err != nil {
		return nil, err
	}
	if err := unjson(depts, &l.Departments, "link departments"); err != nil {
		return nil, err
	}
	l.Upstream = textRaw(up)
	l.UpdatedAt = fromMS(u)
	return &l, nil
}

// linkRow is one row of an INSERT INTO user_links (linkCols), its values from linkValues: a
// staged upstream record ($10, $11) is taken from sync_staging, not from memory. linkUpsert
// updates a link that exists.
const (
	linkRow    = `($1, $2, $3, $4, $5, $6, COALESCE((SELECT upstream FROM sync_staging WHERE task_id = $10 AND seq = $11), $7), $8, $9)`
	linkUpsert = ` ON CONFLICT (enterprise_id, source_id, upstream_id) DO UPDATE SET union_id = excluded.union_id,
		user_id = excluded.user_id, departments = excluded.departments, upstream = excluded.upstream,
		updated_at = excluded.updated_at, sync_hash = excluded.sync_hash`
)

// linkValues sets the link's update time to now and returns the values of its linkRow.
func linkValues(l *directory.UserLink, now time.Time) []any {
	l.UpdatedAt = now
	depts := l.Departments
	if depts == nil {
		depts = []string{}
	}
	task, seq := staged(l.Staged, l.Upstream)
	return []any{l.EnterpriseID, l.SourceID, l.UpstreamID, l.UnionID, l.UserID, jsonText(depts), rawText(l.Upstream), ms(l.UpdatedAt), l.SyncHash, task, seq}
}

// PutUserLink implements directory.Store.
func (s *Store) PutUserLink(ctx context.Context, l *directory.UserLink) error {
	_, err := s.q.ExecContext(ctx, `INSERT INTO user_links (`+linkCols+`) VALUES `+linkRow+linkUpsert, linkValues(l, s.now())...)
	return mapErr(err, "put user link "+l.UpstreamID)
}

// PutUserLinks implements directory.BulkUserWriter: PutUserLink for each, bulkRows to a
// statement on PostgreSQL (one row at a time on SQLite, as CreateUsers). One statement must not
// name a link twice (PostgreSQL refuses to update a row twice in one INSERT … ON CONFLICT): the
// caller's links are distinct.
func (s *Store) PutUserLinks(ctx context.Context, links []*directory.UserLink) error {
	if s.dialect != Postgres {
		for _, l := range links {
			if err := s.PutUserLink(ctx, l); err != nil {
				return err
			}
		}
		return nil
	}
	now := s.now()
	args := make([]any, 0, 11*len(links))
	for _, l := range links {
		args = append(args, linkValues(l, now)...)
	}
	return s.insertRows(ctx, `INSERT INTO user_links (`+linkCols+`) VALUES `, linkRow, linkUpsert, 11, args, "put user links")
}

// GetUserLink implements directory.Store.
func (s *Store) GetUserLink(ctx context.Context, ent, src, upstreamID string) (*directory.UserLink, error) {
	l, err := scanLink(s.q.QueryRowContext(ctx, `SELECT `+linkCols+` FROM user_links
		WHERE enterprise_id = $1 AND source_id = $2 AND upstream_id = $3`, ent, src, upstreamID))
	if err != nil {
		return nil, mapErr(err, "user link "+upstreamID)
	}
	return l, nil
}

func (s *Store) queryLinks(ctx context.Context, q string, args ...any) ([]*directory.UserLink, error) {
	rows, err := s.q.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, mapErr(err, "list user links")
	}
	defer rows.Close()
	var out []*directory.UserLink
	for rows.Next() {
		l, err := scanLink(rows)
		if err != nil {
			return nil, mapErr(err, "list user links")
		}
		out = append(out, l)
	}
	return out, mapErr(rows.Err(), "list user links")
}

// ListUserLinks implements directory.Store.
func (s *Store) ListUserLinks(ctx context.Context, ent, src string) ([]*directory.UserLink, error) {
	return s.queryLinks(ctx, `SELECT `+linkCols+` FROM user_links WHERE enterprise_id = $1 AND source_id = $2 ORDER BY upstream_id`, ent, src)
}

// LinksOfUser implements directory.Store.
func (s *Store) LinksOfUser(ctx context.Context, ent, userID string) ([]*directory.UserLink, error) {
	// Sorted here, not by the query: with ORDER BY source_id SQLite walks the enterprise's every
	// link in (enterprise, source) order instead of looking the user up by user_links_user.
	links, err := s.queryLinks(ctx, `SELECT `+linkCols+` FROM user_links WHERE enterprise_id = $1 AND user_id = $2`, ent, userID)
	slices.SortFunc(links, func(a, b *directory.UserLink) int { return strings.Compare(a.SourceID, b.SourceID) })
	return links, err
}

// DeleteUserLink implements directory.Store.
func (s *Store) DeleteUserLink(ctx context.Context, ent, src, upstreamID string) error {
	res, err := s.q.ExecContext(ctx, `DELETE FROM user_links WHERE enterprise_id = $1 AND source_id = $2 AND upstream_id = $3`, ent, src, upstreamID)
	return expectOne(res, err, "delete user link "+upstreamID)
}

// SourceUsers implements directory.Store.
func (s *Store) SourceUsers(ctx context.Context, ent, src string) ([]directory.LinkedUser, error) {
	cols := "l." + strings.ReplaceAll(linkCols, ", ", ", l.") + ", u." + strings.ReplaceAll(userCols, ", ", ", u.")
	rows, err := s.q.QueryContext(ctx, `SELECT `+cols+` FROM user_links l JOIN users u ON u.id = l.user_id
		WHERE l.enterprise_id = $1 AND l.source_id = $2 ORDER BY l.upstream_id`, ent, src)
	if err != nil {
		return nil, mapErr(err, "source users")
	}
	defer rows.Close()
	var out []directory.LinkedUser
	for rows.Next() {
		var l directory.UserLink
		var u directory.User
		var depts, up, status, attrs string
		var lu, c, uu int64
		if err := rows.Scan(&l.EnterpriseID, &l.SourceID, &l.UpstreamID, &l.UnionID, &l.UserID, &depts, &up, &lu, &l.SyncHash,
			&u.ID, &u.EnterpriseID, &u.Username, &u.Name, &u.Email, &u.Mobile, &status, &u.PasswordHash, &attrs, &c, &uu, &u.Managed, &u.DepartedBy); err != nil {
			return nil, mapErr(err, "source users")
		}
		if err := unjson(depts, &l.Departments, "link departments"); err != nil {
			return nil, err
		}
		if err := unjson(attrs, &u.Attributes, "user attributes"); err != nil {
			return nil, err
		}
		l.Upstream, l.UpdatedAt = textRaw(up), fromMS(lu)
		u.Status, u.CreatedAt, u.UpdatedAt = directory.UserStatus(status), fromMS(c), fromMS(uu)
		out = append(out, directory.LinkedUser{Link: &l, User: &u})
	}
	return out, mapErr(rows.Err(), "source users")
}

// SourceLinkStates implements directory.Store: two narrow columns of each link and one of its
// user, nothing decoded.
func (s *Store) SourceLinkStates(ctx context.Context, ent, src string) ([]directory.LinkState, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT l.upstream_id, l.user_id, l.sync_hash, u.updated_at FROM user_links l
		JOIN users u ON u.id = l.user_id WHERE l.enterprise_id = $1 AND l.source_id = $2`, ent, src)
	if err != nil {
		return nil, mapErr(err, "source link states")
	}
	defer rows.Close()
	var out []directory.LinkState
	for rows.Next() {
		var st directory.LinkState
		var up int64
		if err := rows.Scan(&st.UpstreamID, &st.UserID, &st.SyncHash, &up); err != nil {
			return nil, mapErr(err, "source link states")
		}
		st.UserUpdatedAt = fromMS(up)
		out = append(out, st)
	}
	return out, mapErr(rows.Err(), "source link states")
}

// UserAccess implements directory.AccessReader: the user, their source's state and their link to
// it in one statement (so in one snapshot).
func (s *Store) UserAccess(ctx context.Context, ent, uid, source string) (directory.UserAccess, error) {
	var enabled, linked int64
	row := s.q.QueryRowContext(ctx, `SELECT `+userCols+`,
		COALESCE((SELECT enabled FROM identity_sources WHERE enterprise_id = $1 AND id = $3), -1),
		CASE WHEN EXISTS (SELECT 1 FROM user_links WHERE enterprise_id = $1 AND user_id = $2 AND source_id = $3) THEN 1 ELSE 0 END
		FROM users WHERE enterprise_id = $1 AND id = $2`, ent, uid, source)
	u, err := scanUser(withExtra{row, []any{&enabled, &linked}})
	if err != nil {
		return directory.UserAccess{}, mapErr(err, "user "+uid)
	}
	return directory.UserAccess{User: u, SourceFound: enabled >= 0, SourceEnabled: enabled > 0, Linked: linked == 1}, nil
}

// withExtra scans a row's leading columns into what the caller asks for and the rest into extra.
type withExtra struct {
	row   interface{ Scan(...any) error }
	extra []any
}

func (w withExtra) Scan(dest ...any) error { return w.row.Scan(append(dest, w.extra...)...) }
