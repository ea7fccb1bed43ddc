package sqlstore

import (
	"context"
	"fmt"
	"strings"
)

// RawRows returns every row of a table as text, columns joined by '|'. The conformance suite uses
// it to check that secrets are not stored in plaintext.
func (s *Store) RawRows(ctx context.Context, table string) ([]string, error) {
	switch table {
	case "identity_sources", "oidc_clients", "users":
	default:
		return nil, fmt.Errorf("raw rows of %q not allowed", table)
	}
	rows, err := s.q.QueryContext(ctx, `SELECT * FROM `+table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			switch v := v.(type) {
			case []byte:
				parts[i] = string(v)
			default:
				parts[i] = fmt.Sprint(v)
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	return out, rows.Err()
}
