package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/qiao-gateway/qiao/directory"
)

// ---- refresh tokens

const rtCols = `id, family_id, enterprise_id, client_id, user_id, scopes, amr, auth_time, expires_at, created_at, rotated_at, revoked_at, source_id, session_id`

// CreateRefreshToken implements directory.Store.
func (s *Store) CreateRefreshToken(ctx context.Context, t *directory.RefreshToken) error {
	if t.ID == "" || t.FamilyID == "" {
		return &directory.FieldError{Field: "id", Reason: "refresh token needs an ID and a family ID"}
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.now()
	}
	_, err := s.q.ExecContext(ctx, `INSERT INTO refresh_tokens (`+rtCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		t.ID, t.FamilyID, t.EnterpriseID, t.ClientID, t.UserID, jsonText(nonNil(t.Scopes)), jsonText(nonNil(t.AMR)),
		ms(t.AuthTime), ms(t.ExpiresAt), ms(t.CreatedAt), ms(t.RotatedAt), ms(t.RevokedAt), t.SourceID, t.SessionID)
	return mapErr(err, "create refresh token")
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// GetRefreshToken implements directory.Store.
func (s *Store) GetRefreshToken(ctx context.Context, id string) (*directory.RefreshToken, error) {
	var t directory.RefreshToken
	var scopes, amr string
	var at, exp, cr, rot, rev int64
	err := s.q.QueryRowContext(ctx, `SELECT `+rtCols+` FROM refresh_tokens WHERE id = $1`, id).
		Scan(&t.ID, &t.FamilyID, &t.EnterpriseID, &t.ClientID, &t.UserID, &scopes, &amr, &at, &exp, &cr, &rot, &rev, &t.SourceID, &t.SessionID)
	if err != nil {
		return nil, mapErr(err, "refresh token")
	}
	if err := unjson(scopes, &t.Scopes, "token scopes"); err != nil {
		return nil, err
	}
	if err := unjson(amr, &t.AMR, "token amr"); err != nil {
		return nil, err
	}
	t.AuthTime, t.ExpiresAt, t.CreatedAt, t.RotatedAt, t.RevokedAt = fromMS(at), fromMS(exp), fromMS(cr), fromMS(rot), fromMS(rev)
	return &t, nil
}

// RotateRefreshToken implements directory.Store. On PostgreSQL it is one statement (the update
// and the insert of the successor in one data-modifying WITH, atomic as any statement is): no
// BEGIN and COMMIT round trips. SQLite has no data-modifying WITH; there it is a transaction, which
// the single writer makes cheap.
func (s *Store) RotateRefreshToken(ctx context.Context, id string, at time.Time, next *directory.RefreshToken) error {
	if next == nil || next.ID == "" || next.FamilyID == "" {
		return &directory.FieldError{Field: "id", Reason: "the successor needs an ID and a family ID"}
	}
	if next.CreatedAt.IsZero() {
		next.CreatedAt = s.now()
	}
	var n int
	if s.dialect == Postgres {
		t := next
		res, err := s.q.ExecContext(ctx, `WITH spent AS (
  UPDATE refresh_tokens SET rotated_at = $15 WHERE id = $16 AND rotated_at = 0 AND revoked_at = 0 RETURNING id)
INSERT INTO refresh_tokens (`+rtCols+`)
SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::bigint, $9::bigint, $10::bigint, $11::bigint, $12::bigint, $13::text, $14::text FROM spent`,
			t.ID, t.FamilyID, t.EnterpriseID, t.ClientID, t.UserID, jsonText(nonNil(t.Scopes)), jsonText(nonNil(t.AMR)),
			ms(t.AuthTime), ms(t.ExpiresAt), ms(t.CreatedAt), ms(t.RotatedAt), ms(t.RevokedAt), t.SourceID, t.SessionID, ms(at), id)
		if n, err = rowsAffected(res, err, "rotate refresh token"); err != nil {
			return err
		}
	} else {
		err := s.InTx(ctx, func(tx directory.Store) error {
			txs := tx.(*Store)
			res, err := txs.q.ExecContext(ctx, `UPDATE refresh_tokens SET rotated_at = $2 WHERE id = $1 AND rotated_at = 0 AND revoked_at = 0`, id, ms(at))
			if n, err = rowsAffected(res, err, "rotate refresh token"); err != nil || n == 0 {
				return err
			}
			return txs.CreateRefreshToken(ctx, next)
		})
		if err != nil {
			return err
		}
	}
	if n == 0 {
		if _, gerr := s.GetRefreshToken(ctx, id); gerr != nil {
			return gerr
		}
		return fmt.Errorf("refresh token already used or revoked: %w", directory.ErrConflict)
	}
	return nil
}

func rowsAffected(res interface{ RowsAffected() (int64, error) }, err error, what string) (int, error) {
	if err != nil {
		return 0, mapErr(err, what)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return int(n), nil
}

// RevokeRefreshFamily implements directory.Store.
func (s *Store) RevokeRefreshFamily(ctx context.Context, familyID string, at time.Time) (int, error) {
	res, err := s.q.ExecContext(ctx, `UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at = 0`, familyID, ms(at))
	return rowsAffected(res, err, "revoke refresh family")
}

// RevokeUserRefreshTokens implements directory.Store.
func (s *Store) RevokeUserRefreshTokens(ctx context.Context, ent, userID string, at time.Time) (int, error) {
	res, err := s.q.ExecContext(ctx, `UPDATE refresh_tokens SET revoked_at = $3 WHERE enterprise_id = $1 AND user_id = $2 AND revoked_at = 0`, ent, userID, ms(at))
	return rowsAffected(res, err, "revoke user refresh tokens")
}

// RevokeUserSourceRefreshTokens implements directory.Store.
func (s *Store) RevokeUserSourceRefreshTokens(ctx context.Context, ent, userID, sourceID string, at time.Time) (int, error) {
	res, err := s.q.ExecContext(ctx, `UPDATE refresh_tokens SET revoked_at = $4 WHERE enterprise_id = $1 AND user_id = $2 AND source_id = $3 AND revoked_at = 0`,
		ent, userID, sourceID, ms(at))
	return rowsAffected(res, err, "revoke user source refresh tokens")
}

// RevokeSourceRefreshTokens implements directory.Store.
func (s *Store) RevokeSourceRefreshTokens(ctx context.Context, ent, sourceID string, at time.Time) (int, error) {
	res, err := s.q.ExecContext(ctx, `UPDATE refresh_tokens SET revoked_at = $3 WHERE enterprise_id = $1 AND source_id = $2 AND revoked_at = 0`,
		ent, sourceID, ms(at))
	return rowsAffected(res, err, "revoke source refresh tokens")
}

// CountSourceRefreshTokens implements directory.Store.
func (s *Store) CountSourceRefreshTokens(ctx context.Context, ent, sourceID string) (int, error) {
	var n int
	err := s.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM refresh_tokens WHERE enterprise_id = $1 AND source_id = $2
		AND revoked_at = 0 AND rotated_at = 0 AND expires_at > $3`, ent, sourceID, ms(s.now())).Scan(&n)
	return n, mapErr(err, "count source refresh tokens")
}

// RevokeClientRefreshTokens implements directory.Store.
func (s *Store) RevokeClientRefreshTokens(ctx context.Context, ent, clientID string, at time.Time) (int, error) {
	res, err := s.q.ExecContext(ctx, `UPDATE refresh_tokens SET revoked_at = $3 WHERE enterprise_id = $1 AND client_id = $2 AND revoked_at = 0`,
		ent, clientID, ms(at))
	return rowsAffected(res, err, "revoke client refresh tokens")
}

// RefreshTokenClients implements directory.Store.
func (s *Store) RefreshTokenClients(ctx context.Context, ent, userID string, now time.Time) ([]string, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT DISTINCT client_id FROM refresh_tokens
		WHERE enterprise_id = $1 AND user_id = $2 AND revoked_at = 0 AND rotated_at = 0 AND expires_at > $3 ORDER BY client_id`, ent, userID, ms(now))
	if err != nil {
		return nil, mapErr(err, "refresh token clients")
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("refresh token clients: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// DeleteExpiredRefreshTokens implements directory.Store.
func (s *Store) DeleteExpiredRefreshTokens(ctx context.Context, before time.Time) (int, error) {
	res, err := s.q.ExecContext(ctx, `DELETE FROM refresh_tokens WHERE expires_at < $1`, ms(before))
	return rowsAffected(res, err, "delete expired refresh tokens")
}

// ---- sync tasks and records

const taskCols = `id, enterprise_id, source_id, trigger_, status, dry_run, read_mode, counts, reason, started_at, finished_at`

// CreateSyncTask implements directory.Store.
func (s *Store) CreateSyncTask(ctx context.Context, t *directory.SyncTask) error {
	if t.ID == "" {
		t.ID = uuid.Must(uuid.NewV7()).String()
	}
	if t.StartedAt.IsZero() {
		t.StartedAt = s.now()
	}
	if t.Status == "" {
		t.Status = directory.TaskRunning
	}
	counts := t.Counts
	if counts == nil {
		counts = map[string]int{}
	}
	_, err := s.q.ExecContext(ctx, `INSERT INTO sync_tasks (`+taskCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		t.ID, t.EnterpriseID, t.SourceID, string(t.Trigger), string(t.Status), b2i(t.DryRun), t.ReadMode, jsonText(counts), t.Reason,
		ms(t.StartedAt), ms(t.FinishedAt))
	return mapErr(err, "create sync task")
}

// FinishSyncTask implements directory.Store: it records the final status, counts and reason.
func (s *Store) FinishSyncTask(ctx context.Context, t *directory.SyncTask) error {
	if t.FinishedAt.IsZero() {
		t.FinishedAt = s.now()
	}
	counts := t.Counts
	if counts == nil {
		counts = map[string]int{}
	}
	res, err := s.q.ExecContext(ctx, `UPDATE sync_tasks SET status = $2, read_mode = $3, counts = $4, reason = $5, finished_at = $6 WHERE id = $1`,
		t.ID, string(t.Status), t.ReadMode, jsonText(counts), t.Reason, ms(t.FinishedAt))
	return expectOne(res, err, "finish sync task "+t.ID)
}

// InterruptSyncTasks implements directory.Store.
func (s *Store) InterruptSyncTasks(ctx context.Context, ent, src string, events bool, at time.Time, reason string) (int, error) {
	kind := `trigger_ <> $6`
	if events {
		kind = `trigger_ = $6`
	}
	res, err := s.q.ExecContext(ctx, `UPDATE sync_tasks SET status = $1, reason = $2, finished_at = $3
		WHERE enterprise_id = $4 AND source_id = $5 AND status = $7 AND `+kind,
		string(directory.TaskFailed), reason, ms(at), ent, src, string(directory.TriggerEvent), string(directory.TaskRunning))
	if err != nil {
		return 0, fmt.Errorf("interrupt sync tasks of %s/%s: %w", ent, src, err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func scanTask(sc interface{ Scan(...any) error }) (*directory.SyncTask, error) {
	var t directory.SyncTask
	var trig, status, counts string
	var dry, st, fin int64
	if err := sc.Scan(&t.ID, &t.EnterpriseID, &t.SourceID, &trig, &status, &dry, &t.ReadMode, &counts, &t.Reason, &st, &fin); err != nil {
		return nil, err
	}
	t.Trigger, t.Status, t.DryRun = directory.Trigger(trig), directory.TaskStatus(status), dry != 0
	t.StartedAt, t.FinishedAt = fromMS(st), fromMS(fin)
	if err := unjson(counts, &t.Counts, "task counts"); err != nil {
		return nil, err
	}
	return &t, nil
}

// GetSyncTask implements directory.Store.
func (s *Store) GetSyncTask(ctx context.Context, id string) (*directory.SyncTask, error) {
	t, err := scanTask(s.q.QueryRowContext(ctx, `SELECT `+taskCols+` FROM sync_tasks WHERE id = $1`, id))
	if err != nil {
		return nil, mapErr(err, "sync task "+id)
	}
	return t, nil
}

// ListSyncTasks implements directory.Store, newest first.
func (s *Store) ListSyncTasks(ctx context.Context, ent, src string, limit int) ([]*directory.SyncTask, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	rows, err := s.q.QueryContext(ctx, `SELECT `+taskCols+` FROM sync_tasks WHERE enterprise_id = $1 AND ($2 = '' OR source_id = $2)
		ORDER BY started_at DESC, id DESC LIMIT $3`, ent, src, limit)
	if err != nil {
		return nil, mapErr(err, "list sync tasks")
	}
	defer rows.Close()
	var out []*directory.SyncTask
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, mapErr(err, "list sync tasks")
		}
		out = append(out, t)
	}
	return out, mapErr(rows.Err(), "list sync tasks")
}

// AddSyncRecords implements directory.Store. Records go in multi-row INSERTs, so a task of 100k
// objects costs hundreds of statements, not 100k.
func (s *Store) AddSyncRecords(ctx context.Context, recs []*directory.SyncRecord) error {
	const perStmt = 100 // 11 parameters each: well under both dialects' parameter limits
	now := s.now()
	return s.InTx(ctx, func(tx directory.Store) error {
		t := tx.(*Store)
		for start := 0; start < len(recs); start += perStmt {
			end := min(start+perStmt, len(recs))
			var b strings.Builder
			b.WriteString(`INSERT INTO sync_records (task_id, object_type, upstream_id, action, upstream, local_before, local_after, error, created_at) VALUES `)
			args := make([]any, 0, (end-start)*11)
			for i, r := range recs[start:end] {
				if i > 0 {
					b.WriteString(", ")
				}
				n := len(args)
				// A staged upstream record ($n+10, $n+11) is taken from sync_staging.
				fmt.Fprintf(&b, "($%d, $%d, $%d, $%d, COALESCE((SELECT upstream FROM sync_staging WHERE task_id = $%d AND seq = $%d), $%d), $%d, $%d, $%d, $%d)",
					n+1, n+2, n+3, n+4, n+10, n+11, n+5, n+6, n+7, n+8, n+9)
				if r.CreatedAt.IsZero() {
					r.CreatedAt = now
				}
				args = append(args, r.TaskID, r.ObjectType, r.UpstreamID, r.Action, rawText(r.Upstream), rawText(r.LocalBefore),
					rawText(r.LocalAfter), r.Error, ms(r.CreatedAt))
				task, seq := staged(r.Staged, r.Upstream)
				args = append(args, task, seq)
			}
			if _, err := t.q.ExecContext(ctx, b.String(), args...); err != nil {
				return mapErr(err, "add sync records")
			}
		}
		return nil
	})
}

// ListSyncRecords implements directory.Store, oldest first.
func (s *Store) ListSyncRecords(ctx context.Context, q directory.RecordQuery) ([]*directory.SyncRecord, error) {
	limit := q.Limit
	if limit <= 0 || limit > 5000 {
		limit = 5000
	}
	rows, err := s.q.QueryContext(ctx, `SELECT id, task_id, object_type, upstream_id, action, upstream, local_before, local_after, error, created_at
		FROM sync_records WHERE task_id = $1 AND ($2 = '' OR action = $2) AND ($3 = '' OR object_type = $3)
		AND ($4 = '' OR upstream_id = $4) AND id > $5 ORDER BY id LIMIT $6`,
		q.TaskID, q.Action, q.ObjectType, q.UpstreamID, q.AfterID, limit)
	if err != nil {
		return nil, mapErr(err, "list sync records")
	}
	defer rows.Close()
	var out []*directory.SyncRecord
	for rows.Next() {
		var r directory.SyncRecord
		var up, before, after string
		var c int64
		if err := rows.Scan(&r.ID, &r.TaskID, &r.ObjectType, &r.UpstreamID, &r.Action, &up, &before, &after, &r.Error, &c); err != nil {
			return nil, mapErr(err, "list sync records")
		}
		r.Upstream, r.LocalBefore, r.LocalAfter, r.CreatedAt = textRaw(up), textRaw(before), textRaw(after), fromMS(c)
		out = append(out, &r)
	}
	return out, mapErr(rows.Err(), "list sync records")
}

// DeleteSyncTasksBefore implements directory.Store (record retention); records go with their task.
func (s *Store) DeleteSyncTasksBefore(ctx context.Context, before time.Time) (int, error) {
	var n int
	err := s.InTx(ctx, func(tx directory.Store) error {
		t := tx.(*Store)
		if _, err := t.q.ExecContext(ctx, `DELETE FROM sync_records WHERE task_id IN (SELECT id FROM sync_tasks WHERE started_at < $1)`, ms(before)); err != nil {
			return mapErr(err, "delete old sync records")
		}
		res, err := t.q.ExecContext(ctx, `DELETE FROM sync_tasks WHERE started_at < $1`, ms(before))
		n, err = rowsAffected(res, err, "delete old sync tasks")
		return err
	})
	return n, err
}

// ---- audit

// AddAuditEvent implements directory.Store.
func (s *Store) AddAuditEvent(ctx context.Context, e *directory.AuditEvent) error {
	if e.At.IsZero() {
		e.At = s.now()
	}
	_, err := s.q.ExecContext(ctx, `INSERT INTO audit_events (at, enterprise_id, kind, actor, user_id, source_id, ip, user_agent, outcome, reason, request_id, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		ms(e.At), e.EnterpriseID, e.Kind, e.Actor, e.UserID, e.SourceID, e.IP, e.UserAgent, e.Outcome, e.Reason, e.RequestID, rawText(e.Detail))
	return mapErr(err, "add audit event")
}

// ListAuditEvents implements directory.Store, newest first.
func (s *Store) ListAuditEvents(ctx context.Context, q directory.AuditQuery) ([]*directory.AuditEvent, error) {
	limit := q.Limit
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	before := q.BeforeID
	if before <= 0 {
		before = 1<<63 - 1
	}
	kindExact, kindPrefix := q.Kind, ""
	if strings.HasSuffix(q.Kind, ".") {
		kindExact, kindPrefix = "", q.Kind
	}
	rows, err := s.q.QueryContext(ctx, `SELECT id, at, enterprise_id, kind, actor, user_id, source_id, ip, user_agent, outcome, reason, request_id, detail
		FROM audit_events WHERE enterprise_id = $1 AND ($2 = '' OR kind = $2) AND ($3 = '' OR substr(kind, 1, length($3)) = $3)
		AND ($4 = '' OR user_id = $4) AND id < $5 ORDER BY id DESC LIMIT $6`,
		q.EnterpriseID, kindExact, kindPrefix, q.UserID, before, limit)
	if err != nil {
		return nil, mapErr(err, "list audit events")
	}
	defer rows.Close()
	var out []*directory.AuditEvent
	for rows.Next() {
		var e directory.AuditEvent
		var at int64
		var detail string
		if err := rows.Scan(&e.ID, &at, &e.EnterpriseID, &e.Kind, &e.Actor, &e.UserID, &e.SourceID, &e.IP, &e.UserAgent, &e.Outcome, &e.Reason, &e.RequestID, &detail); err != nil {
			return nil, mapErr(err, "list audit events")
		}
		e.At, e.Detail = fromMS(at), textRaw(detail)
		out = append(out, &e)
	}
	return out, mapErr(rows.Err(), "list audit events")
}

// CountAuditEvents implements directory.Store.
func (s *Store) CountAuditEvents(ctx context.Context, ent, kind string, since time.Time, bucket time.Duration) ([]directory.AuditCount, error) {
	if bucket < time.Millisecond {
		return nil, fmt.Errorf("count audit events: bucket %v is shorter than a millisecond", bucket)
	}
	kindExact, kindPrefix := kind, ""
	if strings.HasSuffix(kind, ".") {
		kindExact, kindPrefix = "", kind
	}
	rows, err := s.q.QueryContext(ctx, `SELECT kind, (at - $4) / $5 AS b, count(*) FROM audit_events
		WHERE enterprise_id = $1 AND ($2 = '' OR kind = $2) AND ($3 = '' OR substr(kind, 1, length($3)) = $3) AND at >= $4
		GROUP BY kind, b ORDER BY b, kind`, ent, kindExact, kindPrefix, ms(since), bucket.Milliseconds())
	if err != nil {
		return nil, mapErr(err, "count audit events")
	}
	defer rows.Close()
	var out []directory.AuditCount
	for rows.Next() {
		var c directory.AuditCount
		if err := rows.Scan(&c.Kind, &c.Bucket, &c.Count); err != nil {
			return nil, mapErr(err, "count audit events")
		}
		out = append(out, c)
	}
	return out, mapErr(rows.Err(), "count audit events")
}

// TouchedByEvents implements directory.Store.
func (s *Store) TouchedByEvents(ctx context.Context, ent, src string, startedFrom, finishedFrom time.Time) (depts, users []string, err error) {
	rows, err := s.q.QueryContext(ctx, `SELECT DISTINCT r.object_type, r.upstream_id FROM sync_tasks t JOIN sync_records r ON r.task_id = t.id
		WHERE t.enterprise_id = $1 AND t.source_id = $2 AND t.trigger_ = $3 AND t.started_at >= $4 AND (t.finished_at >= $5 OR t.finished_at = 0)
		AND r.action <> $6`, ent, src, string(directory.TriggerEvent), ms(startedFrom), ms(finishedFrom), "unchanged")
	if err != nil {
		return nil, nil, mapErr(err, "objects touched by events")
	}
	defer rows.Close()
	for rows.Next() {
		var typ, id string
		if err := rows.Scan(&typ, &id); err != nil {
			return nil, nil, mapErr(err, "objects touched by events")
		}
		if typ == "department" {
			depts = append(depts, id)
		} else {
			users = append(users, id)
		}
	}
	return depts, users, mapErr(rows.Err(), "objects touched by events")
}
