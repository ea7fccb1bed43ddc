package sqlstore

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/qiao-gateway/qiao/directory"
)

var _ directory.ProvisionStore = (*Store)(nil)

func targetAAD(ent string) []byte { return []byte("provision-target/" + ent) }

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// PutProvisionTarget implements directory.ProvisionStore; the secrets are sealed.
func (s *Store) PutProvisionTarget(ctx context.Context, t *directory.ProvisionTarget) error {
	now := s.now()
	if t.CreatedAt.IsZero() {
		t.CreatedAt = now
	}
	t.UpdatedAt = now
	var sealed []byte
	if len(t.Secrets) > 0 {
		sealed = s.box.Seal([]byte(jsonText(t.Secrets)), targetAAD(t.EnterpriseID))
	}
	_, err := s.q.ExecContext(ctx, `INSERT INTO provision_targets (enterprise_id, kind, enabled, auto_push, settings, config, secrets, managed, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (enterprise_id) DO UPDATE SET kind = excluded.kind, enabled = excluded.enabled, auto_push = excluded.auto_push,
			settings = excluded.settings, config = excluded.config, secrets = excluded.secrets, managed = excluded.managed, updated_at = excluded.updated_at`,
		t.EnterpriseID, string(t.Kind), boolInt(t.Enabled), boolInt(t.AutoPush), jsonText(t.Settings), jsonText(t.Config), sealed, t.Managed,
		ms(t.CreatedAt), ms(t.UpdatedAt))
	if err != nil {
		return mapErr(err, "put provisioning target")
	}
	return s.syncOutboxTriggers(ctx)
}

const targetCols = `enterprise_id, kind, enabled, auto_push, settings, config, secrets, managed, created_at, updated_at`

func (s *Store) scanTarget(sc interface{ Scan(...any) error }) (*directory.ProvisionTarget, error) {
	var t directory.ProvisionTarget
	var kind, settings, cfg string
	var enabled, auto, c, u int64
	var sealed []byte
	if err := sc.Scan(&t.EnterpriseID, &kind, &enabled, &auto, &settings, &cfg, &sealed, &t.Managed, &c, &u); err != nil {
		return nil, mapErr(err, "get provisioning target")
	}
	t.Kind, t.Enabled, t.AutoPush, t.CreatedAt, t.UpdatedAt = directory.SourceKind(kind), enabled != 0, auto != 0, fromMS(c), fromMS(u)
	if err := json.Unmarshal([]byte(settings), &t.Settings); err != nil {
		return nil, fmt.Errorf("provisioning settings of %s: %w", t.EnterpriseID, err)
	}
	if err := json.Unmarshal([]byte(cfg), &t.Config); err != nil {
		return nil, fmt.Errorf("provisioning config of %s: %w", t.EnterpriseID, err)
	}
	if len(sealed) > 0 {
		pt, err := s.box.Open(sealed, targetAAD(t.EnterpriseID))
		if err != nil {
			return nil, fmt.Errorf("provisioning secrets of %s: %w", t.EnterpriseID, err)
		}
		if err := json.Unmarshal(pt, &t.Secrets); err != nil {
			return nil, fmt.Errorf("provisioning secrets of %s: %w", t.EnterpriseID, err)
		}
	}
	return &t, nil
}

// GetProvisionTarget implements directory.ProvisionStore.
func (s *Store) GetProvisionTarget(ctx context.Context, ent string) (*directory.ProvisionTarget, error) {
	return s.scanTarget(s.q.QueryRowContext(ctx, `SELECT `+targetCols+` FROM provision_targets WHERE enterprise_id = $1`, ent))
}

// ListProvisionTargets implements directory.ProvisionStore.
func (s *Store) ListProvisionTargets(ctx context.Context) ([]*directory.ProvisionTarget, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT `+targetCols+` FROM provision_targets ORDER BY enterprise_id`)
	if err != nil {
		return nil, mapErr(err, "list provisioning targets")
	}
	defer rows.Close()
	var out []*directory.ProvisionTarget
	for rows.Next() {
		t, err := s.scanTarget(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, mapErr(rows.Err(), "list provisioning targets")
}

// DeleteProvisionTarget implements directory.ProvisionStore: the target, its outbox and what it
// remembers of the objects it created go.
func (s *Store) DeleteProvisionTarget(ctx context.Context, ent string) error {
	return s.InTx(ctx, func(tx directory.Store) error {
		t := tx.(*Store)
		res, err := t.q.ExecContext(ctx, `DELETE FROM provision_targets WHERE enterprise_id = $1`, ent)
		if err != nil {
			return mapErr(err, "delete provisioning target")
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("provisioning target of %s: %w", ent, directory.ErrNotFound)
		}
		for _, q := range []string{`DELETE FROM provision_outbox WHERE enterprise_id = $1`, `DELETE FROM provision_objects WHERE enterprise_id = $1`} {
			if _, err := t.q.ExecContext(ctx, q, ent); err != nil {
				return mapErr(err, "delete provisioning target")
			}
		}
		return t.syncOutboxTriggers(ctx)
	})
}

// AddOutboxItem implements directory.ProvisionStore.
func (s *Store) AddOutboxItem(ctx context.Context, ent, typ, key string) error {
	_, err := s.q.ExecContext(ctx, `INSERT INTO provision_outbox (enterprise_id, object_type, object_key, created_at) VALUES ($1, $2, $3, $4)`,
		ent, typ, key, ms(s.now()))
	return mapErr(err, "add outbox item")
}

const outboxCols = `id, enterprise_id, object_type, object_key, created_at, status, attempts, next_at, errcode, error`

func (s *Store) queryOutbox(ctx context.Context, q string, args ...any) ([]*directory.OutboxItem, error) {
	rows, err := s.q.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, mapErr(err, "list outbox")
	}
	defer rows.Close()
	var out []*directory.OutboxItem
	for rows.Next() {
		var it directory.OutboxItem
		var c, next int64
		if err := rows.Scan(&it.ID, &it.EnterpriseID, &it.ObjectType, &it.ObjectKey, &c, &it.Status, &it.Attempts, &next, &it.ErrCode, &it.Error); err != nil {
			return nil, mapErr(err, "list outbox")
		}
		it.CreatedAt, it.NextAt = fromMS(c), fromMS(next)
		out = append(out, &it)
	}
	return out, mapErr(rows.Err(), "list outbox")
}

// ClaimOutbox implements directory.ProvisionStore with one conditional UPDATE marked by a fresh
// claim token: the outer claimed_until test is re-checked on rows another claimer changed first
// (PostgreSQL's READ COMMITTED), so no item goes to two.
func (s *Store) ClaimOutbox(ctx context.Context, now, claimUntil time.Time, limit int) ([]*directory.OutboxItem, error) {
	claim := rand.Text()
	_, err := s.q.ExecContext(ctx, `UPDATE provision_outbox SET claimed_until = $1, claim = $2
		WHERE claimed_until < $3 AND status = 'pending' AND id IN (
			SELECT id FROM provision_outbox WHERE status = 'pending' AND next_at <= $3 AND claimed_until < $3 ORDER BY id LIMIT $4)`,
		ms(claimUntil), claim, ms(now), limit)
	if err != nil {
		return nil, mapErr(err, "claim outbox")
	}
	return s.queryOutbox(ctx, `SELECT `+outboxCols+` FROM provision_outbox WHERE claim = $1 ORDER BY id`, claim)
}

// DoneOutbox implements directory.ProvisionStore.
func (s *Store) DoneOutbox(ctx context.Context, items []*directory.OutboxItem) error {
	if len(items) == 0 {
		return nil
	}
	return s.InTx(ctx, func(tx directory.Store) error {
		t := tx.(*Store)
		for _, it := range items {
			if _, err := t.q.ExecContext(ctx, `DELETE FROM provision_outbox WHERE id = $1`, it.ID); err != nil {
				return mapErr(err, "finish outbox item")
			}
			if _, err := t.q.ExecContext(ctx, `DELETE FROM provision_outbox WHERE enterprise_id = $1 AND object_type = $2 AND object_key = $3 AND status = 'parked' AND id < $4`,
				it.EnterpriseID, it.ObjectType, it.ObjectKey, it.ID); err != nil {
				return mapErr(err, "finish outbox item")
			}
		}
		return nil
	})
}

// RetryOutbox implements directory.ProvisionStore.
func (s *Store) RetryOutbox(ctx context.Context, it *directory.OutboxItem) error {
	_, err := s.q.ExecContext(ctx, `UPDATE provision_outbox SET status = $1, attempts = $2, next_at = $3, errcode = $4, error = $5, claimed_until = 0, claim = ''
		WHERE id = $6`, it.Status, it.Attempts, ms(it.NextAt), it.ErrCode, it.Error, it.ID)
	return mapErr(err, "retry outbox item")
}

// ListOutbox implements directory.ProvisionStore.
func (s *Store) ListOutbox(ctx context.Context, ent, status string, limit int) ([]*directory.OutboxItem, error) {
	return s.queryOutbox(ctx, `SELECT `+outboxCols+` FROM provision_outbox WHERE enterprise_id = $1 AND status = $2 ORDER BY id LIMIT $3`, ent, status, limit)
}

// CountOutbox implements directory.ProvisionStore.
func (s *Store) CountOutbox(ctx context.Context, ent string) (map[string]int, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT status, COUNT(*) FROM provision_outbox WHERE enterprise_id = $1 GROUP BY status`, ent)
	if err != nil {
		return nil, mapErr(err, "count outbox")
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, mapErr(err, "count outbox")
		}
		out[st] = n
	}
	return out, mapErr(rows.Err(), "count outbox")
}

// PutProvisionedObject implements directory.ProvisionStore.
func (s *Store) PutProvisionedObject(ctx context.Context, o *directory.ProvisionedObject) error {
	o.UpdatedAt = s.now()
	_, err := s.q.ExecContext(ctx, `INSERT INTO provision_objects (enterprise_id, object_type, local_key, remote_id, state, pushed, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (enterprise_id, object_type, local_key) DO UPDATE SET remote_id = excluded.remote_id, state = excluded.state,
			pushed = excluded.pushed, updated_at = excluded.updated_at`,
		o.EnterpriseID, o.ObjectType, o.LocalKey, o.RemoteID, o.State, rawText(o.Pushed), ms(o.UpdatedAt))
	return mapErr(err, "put provisioned object")
}

const objectCols = `enterprise_id, object_type, local_key, remote_id, state, pushed, updated_at`

func scanObject(sc interface{ Scan(...any) error }) (*directory.ProvisionedObject, error) {
	var o directory.ProvisionedObject
	var pushed string
	var u int64
	if err := sc.Scan(&o.EnterpriseID, &o.ObjectType, &o.LocalKey, &o.RemoteID, &o.State, &pushed, &u); err != nil {
		return nil, err
	}
	o.Pushed, o.UpdatedAt = textRaw(pushed), fromMS(u)
	return &o, nil
}

// GetProvisionedObject implements directory.ProvisionStore.
func (s *Store) GetProvisionedObject(ctx context.Context, ent, typ, key string) (*directory.ProvisionedObject, error) {
	o, err := scanObject(s.q.QueryRowContext(ctx, `SELECT `+objectCols+` FROM provision_objects WHERE enterprise_id = $1 AND object_type = $2 AND local_key = $3`, ent, typ, key))
	return o, mapErr(err, "get provisioned object")
}

// ListProvisionedObjects implements directory.ProvisionStore.
func (s *Store) ListProvisionedObjects(ctx context.Context, ent, typ string) ([]*directory.ProvisionedObject, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT `+objectCols+` FROM provision_objects WHERE enterprise_id = $1 AND object_type = $2 ORDER BY local_key`, ent, typ)
	if err != nil {
		return nil, mapErr(err, "list provisioned objects")
	}
	defer rows.Close()
	var out []*directory.ProvisionedObject
	for rows.Next() {
		o, err := scanObject(rows)
		if err != nil {
			return nil, mapErr(err, "list provisioned objects")
		}
		out = append(out, o)
	}
	return out, mapErr(rows.Err(), "list provisioned objects")
}

// DeleteProvisionedObject implements directory.ProvisionStore.
func (s *Store) DeleteProvisionedObject(ctx context.Context, ent, typ, key string) error {
	_, err := s.q.ExecContext(ctx, `DELETE FROM provision_objects WHERE enterprise_id = $1 AND object_type = $2 AND local_key = $3`, ent, typ, key)
	return mapErr(err, "delete provisioned object")
}

// CreateProvisionTask implements directory.ProvisionStore.
func (s *Store) CreateProvisionTask(ctx context.Context, t *directory.ProvisionTask) error {
	if t.ID == "" {
		t.ID = uuid.Must(uuid.NewV7()).String()
	}
	if t.StartedAt.IsZero() {
		t.StartedAt = s.now()
	}
	if t.Status == "" {
		t.Status = directory.TaskRunning
	}
	_, err := s.q.ExecContext(ctx, `INSERT INTO provision_tasks (id, enterprise_id, trigger_, status, dry_run, counts, reason, calls, started_at, finished_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, t.ID, t.EnterpriseID, t.Trigger, string(t.Status), boolInt(t.DryRun), jsonText(t.Counts),
		t.Reason, t.Calls, ms(t.StartedAt), ms(t.FinishedAt))
	return mapErr(err, "create provisioning task")
}

// FinishProvisionTask implements directory.ProvisionStore.
func (s *Store) FinishProvisionTask(ctx context.Context, t *directory.ProvisionTask) error {
	if t.FinishedAt.IsZero() {
		t.FinishedAt = s.now()
	}
	_, err := s.q.ExecContext(ctx, `UPDATE provision_tasks SET status = $1, counts = $2, reason = $3, calls = $4, finished_at = $5 WHERE id = $6`,
		string(t.Status), jsonText(t.Counts), t.Reason, t.Calls, ms(t.FinishedAt), t.ID)
	return mapErr(err, "finish provisioning task")
}

// InterruptProvisionTasks implements directory.ProvisionStore.
func (s *Store) InterruptProvisionTasks(ctx context.Context, ent string, at time.Time, reason string) (int, error) {
	res, err := s.q.ExecContext(ctx, `UPDATE provision_tasks SET status = $1, reason = $2, finished_at = $3 WHERE enterprise_id = $4 AND status = $5`,
		string(directory.TaskFailed), reason, ms(at), ent, string(directory.TaskRunning))
	if err != nil {
		return 0, fmt.Errorf("interrupt provisioning tasks of %s: %w", ent, err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

const ptaskCols = `id, enterprise_id, trigger_, status, dry_run, counts, reason, calls, started_at, finished_at`

func scanPTask(sc interface{ Scan(...any) error }) (*directory.ProvisionTask, error) {
	var t directory.ProvisionTask
	var status, counts string
	var dry, st, fin int64
	if err := sc.Scan(&t.ID, &t.EnterpriseID, &t.Trigger, &status, &dry, &counts, &t.Reason, &t.Calls, &st, &fin); err != nil {
		return nil, err
	}
	t.Status, t.DryRun, t.StartedAt, t.FinishedAt = directory.TaskStatus(status), dry != 0, fromMS(st), fromMS(fin)
	_ = json.Unmarshal([]byte(counts), &t.Counts)
	return &t, nil
}

// GetProvisionTask implements directory.ProvisionStore.
func (s *Store) GetProvisionTask(ctx context.Context, id string) (*directory.ProvisionTask, error) {
	t, err := scanPTask(s.q.QueryRowContext(ctx, `SELECT `+ptaskCols+` FROM provision_tasks WHERE id = $1`, id))
	return t, mapErr(err, "get provisioning task")
}

// ListProvisionTasks implements directory.ProvisionStore, newest first.
func (s *Store) ListProvisionTasks(ctx context.Context, ent string, limit int) ([]*directory.ProvisionTask, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT `+ptaskCols+` FROM provision_tasks WHERE enterprise_id = $1 ORDER BY started_at DESC, id DESC LIMIT $2`, ent, limit)
	if err != nil {
		return nil, mapErr(err, "list provisioning tasks")
	}
	defer rows.Close()
	var out []*directory.ProvisionTask
	for rows.Next() {
		t, err := scanPTask(rows)
		if err != nil {
			return nil, mapErr(err, "list provisioning tasks")
		}
		out = append(out, t)
	}
	return out, mapErr(rows.Err(), "list provisioning tasks")
}

// AddProvisionRecords implements directory.ProvisionStore.
func (s *Store) AddProvisionRecords(ctx context.Context, recs []*directory.ProvisionRecord) error {
	if len(recs) == 0 {
		return nil
	}
	now := s.now()
	return s.InTx(ctx, func(tx directory.Store) error {
		t := tx.(*Store)
		for _, r := range recs {
			if r.CreatedAt.IsZero() {
				r.CreatedAt = now
			}
			if err := t.q.QueryRowContext(ctx, `INSERT INTO provision_records (enterprise_id, task_id, object_type, local_key, remote_id, action, local, before_, after_, errcode, error, created_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id`,
				r.EnterpriseID, r.TaskID, r.ObjectType, r.LocalKey, r.RemoteID, r.Action, rawText(r.Local), rawText(r.Before), rawText(r.After),
				r.ErrCode, r.Error, ms(r.CreatedAt)).Scan(&r.ID); err != nil {
				return mapErr(err, "add provisioning record")
			}
		}
		return nil
	})
}

// ListProvisionRecords implements directory.ProvisionStore, newest first.
func (s *Store) ListProvisionRecords(ctx context.Context, q directory.ProvisionRecordQuery) ([]*directory.ProvisionRecord, error) {
	where := []string{"enterprise_id = $1"}
	args := []any{q.EnterpriseID}
	if q.TaskID != "" {
		args = append(args, q.TaskID)
		where = append(where, fmt.Sprintf("task_id = $%d", len(args)))
	}
	if q.BeforeID > 0 {
		args = append(args, q.BeforeID)
		where = append(where, fmt.Sprintf("id < $%d", len(args)))
	}
	if q.Limit <= 0 || q.Limit > 1000 {
		q.Limit = 100
	}
	args = append(args, q.Limit)
	rows, err := s.q.QueryContext(ctx, `SELECT id, enterprise_id, task_id, object_type, local_key, remote_id, action, local, before_, after_, errcode, error, created_at
		FROM provision_records WHERE `+strings.Join(where, " AND ")+fmt.Sprintf(" ORDER BY id DESC LIMIT $%d", len(args)), args...)
	if err != nil {
		return nil, mapErr(err, "list provisioning records")
	}
	defer rows.Close()
	var out []*directory.ProvisionRecord
	for rows.Next() {
		var r directory.ProvisionRecord
		var local, before, after string
		var c int64
		if err := rows.Scan(&r.ID, &r.EnterpriseID, &r.TaskID, &r.ObjectType, &r.LocalKey, &r.RemoteID, &r.Action, &local, &before, &after, &r.ErrCode, &r.Error, &c); err != nil {
			return nil, mapErr(err, "list provisioning records")
		}
		r.Local, r.Before, r.After, r.CreatedAt = textRaw(local), textRaw(before), textRaw(after), fromMS(c)
		out = append(out, &r)
	}
	return out, mapErr(rows.Err(), "list provisioning records")
}

// The outbox triggers exist only while some enterprise has a provisioning target: a statement
// that fires a trigger keeps a statement journal (SQLite) and runs the trigger's probe, which
// cost bulk writes about half again as long (provisionbench -trigger-cost) — a database where no
// one provisions pays nothing. They are created with the first target and dropped with the last
// (and at open, when none is left); their text is the migration's (00008_provisioning.sql).
var triggerRe = regexp.MustCompile(`(?s)CREATE TRIGGER (\w+) AFTER .*? ON (\w+)\b.*?(?:END;|\(\);)`)

func (s *Store) outboxTriggers() (creates, drops []string, err error) {
	b, err := fs.ReadFile(migrations, "migrations/"+string(s.dialect)+"/00008_provisioning.sql")
	if err != nil {
		return nil, nil, err
	}
	up, _, _ := strings.Cut(string(b), "-- +goose Down")
	for _, m := range triggerRe.FindAllStringSubmatch(up, -1) {
		switch s.dialect {
		case Postgres:
			creates = append(creates, strings.Replace(m[0], "CREATE TRIGGER", "CREATE OR REPLACE TRIGGER", 1))
			drops = append(drops, "DROP TRIGGER IF EXISTS "+m[1]+" ON "+m[2])
		default:
			creates = append(creates, strings.Replace(m[0], "CREATE TRIGGER", "CREATE TRIGGER IF NOT EXISTS", 1))
			drops = append(drops, "DROP TRIGGER IF EXISTS "+m[1])
		}
	}
	if len(creates) == 0 {
		return nil, nil, fmt.Errorf("no outbox triggers in the %s migration", s.dialect)
	}
	return creates, drops, nil
}

// syncOutboxTriggers creates the outbox triggers when a target exists and drops them when none
// does.
func (s *Store) syncOutboxTriggers(ctx context.Context) error {
	var targets, triggers int
	if err := s.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM provision_targets`).Scan(&targets); err != nil {
		return mapErr(err, "count provisioning targets")
	}
	q := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'provision\_%' ESCAPE '\'`
	if s.dialect == Postgres {
		q = `SELECT COUNT(*) FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE 'provision\_%'`
	}
	if err := s.q.QueryRowContext(ctx, q).Scan(&triggers); err != nil {
		return mapErr(err, "count outbox triggers")
	}
	creates, drops, err := s.outboxTriggers()
	if err != nil {
		return err
	}
	var stmts []string
	switch {
	case targets > 0 && triggers < len(creates):
		stmts = creates
	case targets == 0 && triggers > 0:
		stmts = drops
	default:
		return nil
	}
	for _, st := range stmts {
		if _, err := s.q.ExecContext(ctx, st); err != nil {
			return mapErr(err, "outbox triggers")
		}
	}
	return nil
}
