// Package pgtemp makes throwaway PostgreSQL databases on a server, for tests and load drivers that
// must not share one database.
package pgtemp

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the pgx database/sql driver
)

// Create makes a fresh database on the server base names (a postgres:// DSN), its name starting
// with prefix, and returns its DSN (base's user, host and options) and a function that drops it.
func Create(base, prefix string) (dsn string, drop func(), err error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, fmt.Errorf("postgres DSN: %w", err)
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		return "", nil, err
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := prefix + "_" + hex.EncodeToString(b)
	if _, err := admin.Exec(`CREATE DATABASE ` + name); err != nil {
		admin.Close()
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	u.Path = "/" + name
	return u.String(), func() {
		_, _ = admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`)
		admin.Close()
	}, nil
}

// New is Create for a test or benchmark: a failure fails it, and the database is dropped when it
// ends.
func New(tb testing.TB, base, prefix string) string {
	tb.Helper()
	dsn, drop, err := Create(base, prefix)
	if err != nil {
		tb.Fatalf("PostgreSQL at %s: %v", base, err)
	}
	tb.Cleanup(drop)
	return dsn
}
