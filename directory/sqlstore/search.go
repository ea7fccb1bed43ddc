package sqlstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/qiao-gateway/qiao/directory"
)

// prefixEnd is an upper bound of every string that starts with a prefix: the prefix followed by
// the greatest code point. "prefix <= col < prefixEnd" is a range an ordinary B-tree index scans
// in byte order (SQLite's BINARY collation; COLLATE "C" in PostgreSQL), where LIKE would need a
// pattern the planner can see and its escaping.
func prefixEnd(p string) string { return p + "\U0010FFFF" }

// SearchUsers implements directory.Store. Every value is a bound parameter; only the shape of
// the statement (which conditions apply) depends on the query. Migration 00007 indexes each
// condition: (enterprise_id, name), (enterprise_id, username), (enterprise_id, email) in byte
// order, and the existing (enterprise_id, mobile).
func (s *Store) SearchUsers(ctx context.Context, q directory.UserSearch) ([]*directory.User, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	if limit > 1000 {
		limit = 1000
	}
	c := ""
	if s.dialect == Postgres {
		c = ` COLLATE "C"`
	}
	args := []any{q.EnterpriseID}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	where := []string{"u.enterprise_id = $1"}
	from := "users u"
	if q.Text != "" {
		// SQLite: one indexed lookup per column, their union the candidates, joined to the
		// people: with an OR of the four, or an IN of their union, SQLite (without statistics)
		// walks the whole username index for the ORDER BY instead.
		lo, hi := arg(q.Text), arg(prefixEnd(q.Text))
		if s.dialect == Postgres {
			// PostgreSQL ORs the four index scans into one bitmap; the union joined to the people
			// measured 64 ms p50 for a surname (a thousand candidates), the OR 3 ms.
			var or []string
			for _, col := range []string{"u.name", "u.username", "u.email"} {
				or = append(or, fmt.Sprintf("(%s%s >= %s AND %s%s < %s)", col, c, lo, col, c, hi))
			}
			or = append(or, "u.mobile = "+lo)
			where = append(where, "("+strings.Join(or, " OR ")+")")
		}
		var union []string
		for _, col := range []string{"name", "username", "email"} {
			union = append(union, fmt.Sprintf("SELECT id FROM users WHERE enterprise_id = $1 AND %s%s >= %s AND %s%s < %s", col, c, lo, col, c, hi))
		}
		union = append(union, "SELECT id FROM users WHERE enterprise_id = $1 AND mobile = "+lo)
		if s.dialect != Postgres {
			from = "(" + strings.Join(union, " UNION ") + ") m JOIN users u ON u.id = m.id"
		}
	}
	if q.Status != "" {
		where = append(where, "u.status = "+arg(string(q.Status)))
	}
	if q.After != "" {
		where = append(where, "u.username"+c+" > "+arg(q.After))
	}
	if q.SourceID != "" {
		link := "l.enterprise_id = u.enterprise_id AND l.user_id = u.id AND l.source_id = " + arg(q.SourceID)
		if q.DepartmentID != "" {
			d := arg(q.DepartmentID)
			if s.dialect == Postgres {
				link += " AND jsonb_exists(l.departments::jsonb, " + d + ")"
			} else {
				link += " AND EXISTS (SELECT 1 FROM json_each(l.departments) j WHERE j.value = " + d + ")"
			}
		}
		where = append(where, "EXISTS (SELECT 1 FROM user_links l WHERE "+link+")")
	} else if q.DepartmentID != "" {
		return nil, &directory.FieldError{Field: "department", Reason: "a department is one of a source's: name the source too"}
	}
	order := "u.username" + c
	if q.Text != "" && s.dialect == SQLite {
		// SQLite without statistics could still walk the username index for the ORDER BY; a
		// unary + (a no-op on the value) keeps the index out of it, so the candidates drive.
		order = "+u.username"
	}
	cols := "u." + strings.ReplaceAll(userCols, ", ", ", u.")
	stmt := `SELECT ` + cols + ` FROM ` + from + ` WHERE ` + strings.Join(where, " AND ") + ` ORDER BY ` + order + ` LIMIT ` + arg(limit)
	return s.queryUsers(ctx, stmt, args...)
}
