package sqlstore

import (
	"context"
	"time"

	"github.com/qiao-gateway/qiao/directory"
)

const jobCols = `id, enterprise_id, kind, object, actor, reason, payload, created_at, status, attempts, finished_at, result, error`

// AddAccessJob implements directory.Store.
func (s *Store) AddAccessJob(ctx context.Context, j *directory.AccessJob) error {
	if j.CreatedAt.IsZero() {
		j.CreatedAt = s.now()
	}
	if j.Status == "" {
		j.Status = directory.EventPending
	}
	err := s.q.QueryRowContext(ctx, `INSERT INTO access_jobs (enterprise_id, kind, object, actor, reason, payload, created_at, status)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
		j.EnterpriseID, j.Kind, j.Object, j.Actor, j.Reason, rawText(j.Payload), ms(j.CreatedAt), j.Status).Scan(&j.ID)
	return mapErr(err, "add access job")
}

func scanJob(sc interface{ Scan(...any) error }) (*directory.AccessJob, error) {
	var j directory.AccessJob
	var payload, result string
	var created, finished int64
	if err := sc.Scan(&j.ID, &j.EnterpriseID, &j.Kind, &j.Object, &j.Actor, &j.Reason, &payload, &created, &j.Status, &j.Attempts,
		&finished, &result, &j.Error); err != nil {
		return nil, err
	}
	j.Payload, j.Result, j.CreatedAt, j.FinishedAt = textRaw(payload), textRaw(result), fromMS(created), fromMS(finished)
	return &j, nil
}

func (s *Store) queryJobs(ctx context.Context, q string, args ...any) ([]*directory.AccessJob, error) {
	rows, err := s.q.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, mapErr(err, "list access jobs")
	}
	defer rows.Close()
	var out []*directory.AccessJob
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, mapErr(err, "list access jobs")
		}
		out = append(out, j)
	}
	return out, mapErr(rows.Err(), "list access jobs")
}

// ClaimAccessJobs implements directory.Store with a conditional UPDATE per job, so two replicas
// never claim the same one.
func (s *Store) ClaimAccessJobs(ctx context.Context, now, claimUntil time.Time, limit int) ([]*directory.AccessJob, error) {
	cand, err := s.queryJobs(ctx, `SELECT `+jobCols+` FROM access_jobs WHERE status = 'pending' AND claimed_until < $1 ORDER BY id LIMIT $2`,
		ms(now), limit)
	if err != nil {
		return nil, err
	}
	var out []*directory.AccessJob
	for _, j := range cand {
		res, err := s.q.ExecContext(ctx, `UPDATE access_jobs SET claimed_until = $2, attempts = attempts + 1
			WHERE id = $1 AND status = 'pending' AND claimed_until < $3`, j.ID, ms(claimUntil), ms(now))
		if err != nil {
			return nil, mapErr(err, "claim access job")
		}
		if n, _ := res.RowsAffected(); n == 1 {
			j.Attempts++
			out = append(out, j)
		}
	}
	return out, nil
}

// FinishAccessJob implements directory.Store.
func (s *Store) FinishAccessJob(ctx context.Context, j *directory.AccessJob) error {
	if j.Status != directory.EventPending && j.FinishedAt.IsZero() {
		j.FinishedAt = s.now()
	}
	res, err := s.q.ExecContext(ctx, `UPDATE access_jobs SET status = $2, finished_at = $3, result = $4, error = $5, claimed_until = 0 WHERE id = $1`,
		j.ID, j.Status, ms(j.FinishedAt), rawText(j.Result), j.Error)
	return expectOne(res, err, "finish access job")
}

// ListAccessJobs implements directory.Store.
func (s *Store) ListAccessJobs(ctx context.Context, ent string, limit int) ([]*directory.AccessJob, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	return s.queryJobs(ctx, `SELECT `+jobCols+` FROM access_jobs WHERE enterprise_id = $1 ORDER BY id DESC LIMIT $2`, ent, limit)
}
