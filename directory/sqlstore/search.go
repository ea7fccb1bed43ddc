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

// foldASCII lowers the ASCII letters only, as SQLite's lower() does.
func foldASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// SearchUsers implements directory.Store. Every value is a bound parameter; only the shape of
// the statement (which conditions apply) depends on the query. Migration 00011 indexes each
// condition: (enterprise_id, lower(name|username|email)) in byte order, the existing
// (enterprise_id, mobile), and departments by parent for the department-and-below filter.
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
		// Case is ignored for the ASCII letters (all SQLite's lower() folds; PostgreSQL's lower()
		// folds more, and so does strings.ToLower for it). Migration 00011 indexes lower(column).
		t := foldASCII(q.Text)
		if s.dialect == Postgres {
			t = strings.ToLower(q.Text)
		}
		lo, hi, mobile := arg(t), arg(prefixEnd(t)), arg(q.Text)
		if s.dialect == Postgres {
			// PostgreSQL ORs the four index scans into one bitmap; the union joined to the people
			// measured 64 ms p50 for a surname (a thousand candidates), the OR 3 ms.
			var or []string
			for _, col := range []string{"u.name", "u.username", "u.email"} {
				e := "lower(" + col + ")" + c
				or = append(or, fmt.Sprintf("(%s >= %s AND %s < %s)", e, lo, e, hi))
			}
			or = append(or, "u.mobile = "+mobile)
			where = append(where, "("+strings.Join(or, " OR ")+")")
		} else {
			// SQLite: one indexed lookup per column, their union the candidates, joined to the
			// people: with an OR of the four, or an IN of their union, SQLite (without statistics)
			// walks the whole username index for the ORDER BY instead.
			var union []string
			for _, col := range []string{"name", "username", "email"} {
				union = append(union, fmt.Sprintf("SELECT id FROM users WHERE enterprise_id = $1 AND lower(%s) >= %s AND lower(%s) < %s", col, lo, col, hi))
			}
			union = append(union, "SELECT id FROM users WHERE enterprise_id = $1 AND mobile = "+mobile)
			from = "(" + strings.Join(union, " UNION ") + ") m JOIN users u ON u.id = m.id"
		}
	}
	with := ""
	if q.Status != "" {
		where = append(where, "u.status = "+arg(string(q.Status)))
	}
	if q.After != "" {
		where = append(where, "u.username"+c+" > "+arg(q.After))
	}
	if q.SourceID != "" {
		srcArg := arg(q.SourceID)
		link := "l.enterprise_id = u.enterprise_id AND l.user_id = u.id AND l.source_id = " + srcArg
		if q.DepartmentID != "" {
			d := arg(q.DepartmentID)
			switch {
			case q.SubDepartments:
				// The department and every one below it in the source's tree (a cycle the
				// platform should never send ends when UNION finds nothing new).
				with = "WITH RECURSIVE sub(id) AS (SELECT CAST(" + d + " AS TEXT) UNION SELECT dp.upstream_id FROM departments dp JOIN sub ON dp.parent_id = sub.id" +
					" WHERE dp.enterprise_id = $1 AND dp.source_id = " + srcArg + ") "
				if s.dialect == Postgres {
					link += " AND jsonb_exists_any(l.departments::jsonb, ARRAY(SELECT id FROM sub))"
				} else {
					link += " AND EXISTS (SELECT 1 FROM json_each(l.departments) j WHERE j.value IN (SELECT id FROM sub))"
				}
			case s.dialect == Postgres:
				link += " AND jsonb_exists(l.departments::jsonb, " + d + ")"
			default:
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
	stmt := with + `SELECT ` + cols + ` FROM ` + from + ` WHERE ` + strings.Join(where, " AND ") + ` ORDER BY ` + order + ` LIMIT ` + arg(limit)
	return s.queryUsers(ctx, stmt, args...)
}
