package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/qiao-gateway/qiao/directory"
)

const eventCols = `id, enterprise_id, source_id, dedupe_key, event_type, payload, received_at, status, attempts, applied_at, task_id, error`

// AddSourceEvent implements directory.Store.
func (s *Store) AddSourceEvent(ctx context.Context, e *directory.SourceEvent) (bool, error) {
	if e.ReceivedAt.IsZero() {
		e.ReceivedAt = s.now()
	}
	if e.Status == "" {
		e.Status = directory.EventPending
	}
	var id int64
	err := s.q.QueryRowContext(ctx, `INSERT INTO source_events (enterprise_id, source_id, dedupe_key, event_type, payload, received_at, status)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (enterprise_id, source_id, dedupe_key) DO NOTHING RETURNING id`,
		e.EnterpriseID, e.SourceID, e.DedupeKey, e.EventType, rawText(e.Payload), ms(e.ReceivedAt), e.Status).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil // the dedupe key exists: a repeated delivery
	}
	if err != nil {
		return false, mapErr(err, "add source event")
	}
	e.ID = id
	return true, nil
}

func scanEvent(sc interface{ Scan(...any) error }) (*directory.SourceEvent, error) {
	var e directory.SourceEvent
	var payload string
	var rec, app int64
	if err := sc.Scan(&e.ID, &e.EnterpriseID, &e.SourceID, &e.DedupeKey, &e.EventType, &payload, &rec, &e.Status, &e.Attempts, &app, &e.TaskID, &e.Error); err != nil {
		return nil, err
	}
	e.Payload, e.ReceivedAt, e.AppliedAt = textRaw(payload), fromMS(rec), fromMS(app)
	return &e, nil
}

// ClaimSourceEvents implements directory.Store with a conditional UPDATE per event, so two
// replicas never claim the same one.
func (s *Store) ClaimSourceEvents(ctx context.Context, now, claimUntil time.Time, limit int) ([]*directory.SourceEvent, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT `+eventCols+` FROM source_events WHERE status = 'pending' AND claimed_until < $1
		AND EXISTS (SELECT 1 FROM identity_sources src WHERE src.enterprise_id = source_events.enterprise_id
			AND src.id = source_events.source_id AND src.enabled = 1)
		ORDER BY id LIMIT $2`,
		ms(now), limit)
	if err != nil {
		return nil, mapErr(err, "list pending events")
	}
	var cand []*directory.SourceEvent
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			rows.Close()
			return nil, mapErr(err, "list pending events")
		}
		cand = append(cand, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, mapErr(err, "list pending events")
	}
	var out []*directory.SourceEvent
	for _, e := range cand {
		res, err := s.q.ExecContext(ctx, `UPDATE source_events SET claimed_until = $2, attempts = attempts + 1
			WHERE id = $1 AND status = 'pending' AND claimed_until < $3`, e.ID, ms(claimUntil), ms(now))
		if err != nil {
			return nil, mapErr(err, "claim event")
		}
		if n, _ := res.RowsAffected(); n == 1 {
			e.Attempts++
			out = append(out, e)
		}
	}
	return out, nil
}

// FinishSourceEvent implements directory.Store.
func (s *Store) FinishSourceEvent(ctx context.Context, e *directory.SourceEvent) error {
	if e.Status != directory.EventPending && e.AppliedAt.IsZero() {
		e.AppliedAt = s.now()
	}
	res, err := s.q.ExecContext(ctx, `UPDATE source_events SET status = $2, applied_at = $3, task_id = $4, error = $5, claimed_until = 0 WHERE id = $1`,
		e.ID, e.Status, ms(e.AppliedAt), e.TaskID, e.Error)
	return expectOne(res, err, fmt.Sprintf("finish event %d", e.ID))
}

// ListSourceEvents implements directory.Store.
func (s *Store) ListSourceEvents(ctx context.Context, ent, src string, limit int) ([]*directory.SourceEvent, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	rows, err := s.q.QueryContext(ctx, `SELECT `+eventCols+` FROM source_events WHERE enterprise_id = $1 AND source_id = $2 ORDER BY id DESC LIMIT $3`, ent, src, limit)
	if err != nil {
		return nil, mapErr(err, "list source events")
	}
	defer rows.Close()
	var out []*directory.SourceEvent
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, mapErr(err, "list source events")
		}
		out = append(out, e)
	}
	return out, mapErr(rows.Err(), "list source events")
}
