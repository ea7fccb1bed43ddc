package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"sync"
)

// stmtCache keeps SQLite statements prepared: modernc.org/sqlite parses and plans a statement on
// every ExecContext/QueryContext without one (about a tenth of the token endpoint's CPU at
// concurrency 64). database/sql prepares a cached *sql.Stmt once per connection and reuses it;
// inside a transaction the statement is bound to the transaction's connection (Tx.StmtContext,
// which reuses that connection's prepared copy). PostgreSQL needs none: pgx caches prepared
// statements per connection itself.
type stmtCache struct {
	db *sql.DB
	mu sync.RWMutex
	m  map[string]*sql.Stmt
}

const (
	// maxCachedStmts bounds the cache: the store's statements are a fixed set; the few built at
	// run time (people search variants) fill it no further than this.
	maxCachedStmts = 256
	// maxCachedLen leaves out the long multi-row INSERTs (sync records), whose texts vary with
	// the batch and are run once per hundred rows anyway.
	maxCachedLen = 2000
)

func newStmtCache(db *sql.DB) *stmtCache { return &stmtCache{db: db, m: map[string]*sql.Stmt{}} }

// get returns the prepared statement of query, preparing it on first use; nil when query is not
// cached (too long, several statements, the cache full, or the prepare failed: the caller then
// runs it unprepared and meets any error there).
func (c *stmtCache) get(ctx context.Context, query string) *sql.Stmt {
	if c == nil || len(query) > maxCachedLen || strings.Contains(query, ";") {
		return nil
	}
	c.mu.RLock()
	st, ok := c.m[query]
	c.mu.RUnlock()
	if ok {
		return st
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st
	}
	if len(c.m) >= maxCachedStmts {
		return nil
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	c.m[query] = st
	return st
}

func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		_ = st.Close()
	}
	c.m = map[string]*sql.Stmt{}
}

// txStmts binds cached statements to one transaction, once per statement text: Tx.StmtContext
// keeps every statement it returns until the transaction ends, so a sync's apply of 100k writes
// would otherwise hold 100k of them.
type txStmts struct {
	tx    *sql.Tx
	cache *stmtCache
	mu    sync.Mutex
	m     map[string]*sql.Stmt
}

func (t *txStmts) get(ctx context.Context, query string) *sql.Stmt {
	st := t.cache.get(ctx, query)
	if st == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if ts, ok := t.m[query]; ok {
		return ts
	}
	if t.m == nil {
		t.m = map[string]*sql.Stmt{}
	}
	ts := t.tx.StmtContext(ctx, st)
	t.m[query] = ts
	return ts
}

// cachedDB runs statements through the cache, outside transactions.
type cachedDB struct {
	*sql.DB
	cache *stmtCache
}

func (c cachedDB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := c.cache.get(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return c.DB.ExecContext(ctx, query, args...)
}

func (c cachedDB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := c.cache.get(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return c.DB.QueryContext(ctx, query, args...)
}

func (c cachedDB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := c.cache.get(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.DB.QueryRowContext(ctx, query, args...)
}

// cachedTx runs statements through the cache inside one transaction.
type cachedTx struct {
	*sql.Tx
	stmts *txStmts
}

func (c cachedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := c.stmts.get(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return c.Tx.ExecContext(ctx, query, args...)
}

func (c cachedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := c.stmts.get(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return c.Tx.QueryContext(ctx, query, args...)
}

func (c cachedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := c.stmts.get(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.Tx.QueryRowContext(ctx, query, args...)
}
