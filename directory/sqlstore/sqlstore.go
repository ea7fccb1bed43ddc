// Package sqlstore is the directory.Store on database/sql: SQLite through modernc.org/sqlite (the
// embedded default) and PostgreSQL through pgx. Each dialect has its own migrations, applied with
// goose at open; the queries are shared ($n placeholders work in both).
package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/config"
	"github.com/qiao-gateway/qiao/internal/secretbox"
)

//go:embed migrations
var migrations embed.FS

// Dialect names the SQL backend.
type Dialect string

// Supported dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// ErrWrongMasterKey means the database was created under a different master key: its secrets
// cannot be decrypted.
var ErrWrongMasterKey = errors.New("the master key does not match the one this database was created with")

type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Store implements directory.Store.
type Store struct {
	db      *sql.DB
	q       querier
	box     *secretbox.Box
	dialect Dialect
	inTx    bool
	now     func() time.Time
	n       *counter
	gate    writeGate  // SQLite: one writer at a time, queued in the process
	stmts   *stmtCache // SQLite files: prepared statements kept (nil: none)
}

// writeGate queues an SQLite database's writers in the process: one transaction or write
// statement at a time holds it, the others wait their turn on a channel. Without it they queue in
// SQLite's busy handler, which sleeps and retries (up to 100 ms a try), so a burst of writers
// finishes in no order with latencies of a second; with it each waits only for those ahead of it.
// A writer that cannot get in within busyWait goes on without it and meets SQLite's own lock
// (busy_timeout) as before: another process, or a transaction that writes through the Store it
// was begun from, is never worse off than without the gate.
type writeGate chan struct{}

const busyWait = 10 * time.Second

var gates sync.Map // SQLite file -> writeGate: every Store of one file in this process shares it

func sqliteGate(file string) writeGate {
	if abs, err := filepath.Abs(file); err == nil {
		file = abs
	}
	g, _ := gates.LoadOrStore(file, make(writeGate, 1))
	return g.(writeGate)
}

// enter waits for the gate and returns what leaves it (nil gate: nothing to wait for).
func (g writeGate) enter(ctx context.Context) func() {
	if g == nil {
		return func() {}
	}
	select {
	case g <- struct{}{}:
		return func() { <-g }
	default:
	}
	t := time.NewTimer(busyWait)
	defer t.Stop()
	select {
	case g <- struct{}{}:
		return func() { <-g }
	case <-ctx.Done():
	case <-t.C:
	}
	return func() {}
}

// Counts are the statements and transactions a Store (and the transactions it began) has run
// since it was opened: load drivers report them per operation.
type Counts struct{ Statements, Transactions int64 }

type counter struct{ stmts, txs atomic.Int64 }

// counted counts the statements run through q.
type counted struct {
	q querier
	n *counter
}

func (c counted) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	c.n.stmts.Add(1)
	return c.q.ExecContext(ctx, query, args...)
}

// gated runs an SQLite Store's statements outside transactions: an Exec is a write (an implicit
// transaction) and waits at the gate; queries (reads, and the few INSERT/DELETE … RETURNING,
// which hold SQLite's lock until their rows are read) go straight through.
type gated struct {
	counted
	gate writeGate
}

func (g gated) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	leave := g.gate.enter(ctx)
	defer leave()
	return g.counted.ExecContext(ctx, query, args...)
}

func (c counted) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	c.n.stmts.Add(1)
	return c.q.QueryContext(ctx, query, args...)
}

func (c counted) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	c.n.stmts.Add(1)
	return c.q.QueryRowContext(ctx, query, args...)
}

// Counts reports the statements and explicit transactions run so far.
func (s *Store) Counts() Counts {
	return Counts{Statements: s.n.stmts.Load(), Transactions: s.n.txs.Load()}
}

var _ directory.Store = (*Store)(nil)

// ParseDSN splits a storage DSN ("sqlite://path", "sqlite:path", "postgres://...") into the dialect
// and the driver's data source name.
func ParseDSN(dsn string) (Dialect, string, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		if _, err := url.Parse(dsn); err != nil {
			return "", "", fmt.Errorf("bad postgres DSN: %w", err)
		}
		return Postgres, dsn, nil
	case strings.HasPrefix(dsn, "sqlite://"):
		return SQLite, strings.TrimPrefix(dsn, "sqlite://"), nil
	case strings.HasPrefix(dsn, "sqlite:"):
		return SQLite, strings.TrimPrefix(dsn, "sqlite:"), nil
	}
	return "", "", fmt.Errorf("unsupported storage DSN %q (want sqlite://PATH or postgres://...)", config.RedactDSN(dsn))
}

// ErrNoDatabase means a read-only open found no database: nothing has created it yet.
var ErrNoDatabase = errors.New("no database yet")

// ErrSchemaBehind means a read-only open found a database this qiao would migrate first.
var ErrSchemaBehind = errors.New("the database schema is older than this qiao")

// Open connects, applies pending migrations and checks the master key.
func Open(ctx context.Context, dsn string, box *secretbox.Box) (*Store, error) {
	return open(ctx, dsn, box, false)
}

// OpenReadOnly connects without changing anything: no migrations, no directories created, and
// the connection itself refuses writes (SQLite mode=ro; PostgreSQL
// default_transaction_read_only). It is for commands that only look.
func OpenReadOnly(ctx context.Context, dsn string, box *secretbox.Box) (*Store, error) {
	return open(ctx, dsn, box, true)
}

func open(ctx context.Context, dsn string, box *secretbox.Box, readOnly bool) (*Store, error) {
	dialect, src, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	var db *sql.DB
	switch dialect {
	case SQLite:
		if src == "" {
			return nil, errors.New("sqlite DSN names no file")
		}
		// temp_store(MEMORY): a statement that fires triggers (the provisioning outbox's) keeps a
		// statement journal; in a temporary file it cost a write syscall per page changed.
		dsn := "file:" + src + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
			"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_pragma=temp_store(MEMORY)&_txlock=immediate"
		switch {
		case readOnly:
			if _, err := os.Stat(src); err != nil {
				return nil, fmt.Errorf("%w at %s: %v", ErrNoDatabase, src, err)
			}
			dsn = "file:" + src + "?mode=ro&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
		case src != ":memory:":
			if err := os.MkdirAll(filepath.Dir(src), 0o700); err != nil {
				return nil, fmt.Errorf("create database directory: %w", err)
			}
		}
		// WAL lets readers run beside the writer; busy_timeout waits for the writer instead of
		// failing; _txlock=immediate takes the write lock at BEGIN so two transactions never
		// deadlock upgrading read locks.
		db, err = sql.Open("sqlite", dsn)
		if err != nil {
			return nil, fmt.Errorf("open sqlite: %w", err)
		}
		if src == ":memory:" {
			db.SetMaxOpenConns(1)
		} else {
			// Idle connections kept, with their prepared statements: a connection closed after a
			// burst is reopened (pragmas and all) at the next one.
			db.SetMaxIdleConns(16)
		}
	case Postgres:
		if readOnly {
			src = withParam(src, "default_transaction_read_only", "on")
		}
		db, err = sql.Open("pgx", src)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		// As many kept idle as may be open: with fewer, a burst's extra connections were closed
		// on release and dialled again at the next one (about 22 new backends a second under a
		// tokenbench run at concurrency 32, each a fork on the server and its statements prepared
		// again). Idle ones still go after five quiet minutes.
		db.SetMaxOpenConns(32)
		db.SetMaxIdleConns(32)
		db.SetConnMaxIdleTime(5 * time.Minute)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to %s database %s: %w", dialect, config.RedactDSN(dsn), err)
	}
	n := &counter{}
	s := &Store{db: db, q: counted{db, n}, box: box, dialect: dialect, now: time.Now, n: n}
	if dialect == SQLite && !readOnly {
		s.gate = make(writeGate, 1) // an in-memory database is this Store's alone
		if src != ":memory:" {
			s.gate = sqliteGate(src)
		}
		s.q = gated{counted{db, n}, s.gate}
		if src != ":memory:" && !readOnly {
			// Not for an in-memory database: its one connection is the transaction's while one
			// runs, and preparing a statement for the cache would wait for it forever.
			s.stmts = newStmtCache(db)
			s.q = gated{counted{cachedDB{db, s.stmts}, n}, s.gate}
		}
	}
	migrate := s.migrate
	if readOnly {
		migrate = s.checkMigrated
	}
	if err := migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.checkMasterKey(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if !readOnly {
		if err := s.syncOutboxTriggers(ctx); err != nil { // provision.go
			db.Close()
			return nil, err
		}
	}
	return s, nil
}

// withParam adds a connection parameter to a PostgreSQL URL DSN (pgx passes unknown ones to the
// server as run-time settings).
func withParam(dsn, k, v string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.String()
}

// checkMigrated refuses a database with pending migrations, which a read-only open cannot apply.
func (s *Store) checkMigrated(ctx context.Context) error {
	p, err := s.migrations(nil)
	if err != nil {
		return err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoDatabase, err)
	}
	for _, m := range st {
		if m.State != goose.StateApplied {
			return fmt.Errorf("%w (migration %d is not applied): start qiao serve or run qiao apply once", ErrSchemaBehind, m.Source.Version)
		}
	}
	return nil
}

func (s *Store) migrations(opts []goose.ProviderOption) (*goose.Provider, error) {
	sub, err := fs.Sub(migrations, "migrations/"+string(s.dialect))
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	gd := goose.DialectSQLite3
	if s.dialect == Postgres {
		gd = goose.DialectPostgres
	}
	p, err := goose.NewProvider(gd, s.db, sub, append(opts, goose.WithDisableGlobalRegistry(true))...)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return p, nil
}

func (s *Store) migrate(ctx context.Context) error {
	var opts []goose.ProviderOption
	if s.dialect == Postgres {
		// Replicas starting together must not migrate concurrently.
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := s.migrations(opts)
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

const masterKeyCheck = "qiao master key check"

// checkMasterKey stores a sealed known value on first open and checks it on every later open, so a
// wrong master key stops the start instead of surfacing as undecryptable secrets at 2 a.m.
func (s *Store) checkMasterKey(ctx context.Context) error {
	aad := []byte("meta/master_key_check")
	var sealed []byte
	err := s.q.QueryRowContext(ctx, `SELECT v FROM meta WHERE k = 'master_key_check'`).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		_, err = s.q.ExecContext(ctx, `INSERT INTO meta (k, v) VALUES ('master_key_check', $1) ON CONFLICT (k) DO NOTHING`,
			s.box.Seal([]byte(masterKeyCheck), aad))
		if err != nil {
			return fmt.Errorf("store master key check: %w", err)
		}
		return s.checkMasterKey(ctx)
	}
	if err != nil {
		return fmt.Errorf("read master key check: %w", err)
	}
	if pt, err := s.box.Open(sealed, aad); err != nil || string(pt) != masterKeyCheck {
		return ErrWrongMasterKey
	}
	return nil
}

// Dialect reports the backend in use.
func (s *Store) Dialect() Dialect { return s.dialect }

// DB exposes the connection pool (for tests and maintenance commands).
func (s *Store) DB() *sql.DB { return s.db }

// Ping implements directory.Store.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Close implements directory.Store.
func (s *Store) Close() error {
	if s.inTx {
		return nil
	}
	s.stmts.close()
	return s.db.Close()
}

// InTx implements directory.Store. Nested calls join the outer transaction.
func (s *Store) InTx(ctx context.Context, fn func(tx directory.Store) error) (err error) {
	if s.inTx {
		return fn(s)
	}
	leave := s.gate.enter(ctx)
	defer leave()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	s.n.txs.Add(1)
	txs := *s
	txs.q = counted{tx, s.n}
	if s.stmts != nil {
		txs.q = counted{cachedTx{tx, &txStmts{tx: tx, cache: s.stmts}}, s.n}
	}
	txs.inTx = true
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
	}()
	if err := fn(&txs); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// mapErr turns driver constraint errors into the directory's errors.
func mapErr(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, directory.ErrNotFound)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return fmt.Errorf("%s: %w", what, directory.ErrConflict)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%s: a referenced object does not exist: %w", what, directory.ErrNotFound)
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505":
			return fmt.Errorf("%s: %w", what, directory.ErrConflict)
		case "23503":
			return fmt.Errorf("%s: a referenced object does not exist: %w", what, directory.ErrNotFound)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

func expectOne(res sql.Result, err error, what string) error {
	if err != nil {
		return mapErr(err, what)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, directory.ErrNotFound)
	}
	return nil
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
