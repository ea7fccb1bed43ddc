package gateway

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/qiao-gateway/qiao/broker"
	"github.com/qiao-gateway/qiao/declare"
	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/sqlstore"
	idpoidc "github.com/qiao-gateway/qiao/idp/oidc"
	idpsaml "github.com/qiao-gateway/qiao/idp/saml"
	"github.com/qiao-gateway/qiao/internal/config"
	"github.com/qiao-gateway/qiao/internal/secretbox"
)

// ReadOnly is a look at what a gateway has stored, for commands that only read (qiao apps,
// sources, sync tasks and records). Opening it changes nothing: no migrations, no config applied,
// no keys or master key generated, and the database connection refuses writes.
type ReadOnly struct {
	// Config is the configuration given, its external URL replaced by the one the gateway serving
	// from the same data directory recorded (Running), if any: the URLs shown are the gateway's.
	Config *config.Config
	// Running is what that gateway recorded; nil when none has.
	Running *Running
	// ConfigURL is the external URL the configuration given sets, when Running differs from it.
	ConfigURL string
	Store     directory.Store
	// The rooms whose derived facts (issuer, entity ID, callback-domain check) the commands show;
	// they hold no backends.
	Broker *broker.Broker
	OIDC   *idpoidc.Provider
	SAML   *idpsaml.Provider
}

// OpenReadOnly opens the configured durable store read-only.
func OpenReadOnly(ctx context.Context, cfg *config.Config, log *slog.Logger) (*ReadOnly, error) {
	st, _, err := openStore(ctx, cfg, log, true)
	if err != nil {
		return nil, err
	}
	ro := &ReadOnly{Config: cfg, Store: st}
	run, err := ReadRunning(cfg.DataDir)
	if err != nil {
		st.Close()
		return nil, &StartError{err, ""}
	}
	if run != nil {
		ro.Running = run
		if run.ExternalURL != cfg.ExternalURL {
			c := *cfg
			c.ExternalURL = run.ExternalURL
			ro.Config = &c
			if cfg.ExternalURLSet() {
				ro.ConfigURL = cfg.ExternalURL
			}
		}
	}
	u := ro.Config.ExternalURL
	ro.Broker, ro.OIDC, ro.SAML = &broker.Broker{ExternalURL: u}, &idpoidc.Provider{ExternalURL: u}, &idpsaml.Provider{ExternalURL: u}
	return ro, nil
}

// Close closes the store.
func (r *ReadOnly) Close() error { return r.Store.Close() }

// Apply opens the configured store (creating and migrating it, and the master key, when needed)
// and writes the enterprises the config declares into it: what qiao serve does at start, without
// serving. It returns what the file closed, disabled or deleted; force deletes what the file
// no longer declares even past deletion protection. The access jobs it queues run in the
// serving replicas within a second.
func Apply(ctx context.Context, cfg *config.Config, log *slog.Logger, force bool) (*declare.Result, error) {
	st, _, err := openStore(ctx, cfg, log, false)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return applyDeclared(ctx, st, cfg, log, declare.Options{Force: force, ForceHint: "qiao apply --force"})
}

// openStore opens the master key and the durable store: read-only (nothing created, migrated or
// generated) or for writing; its errors say what to do.
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger, readOnly bool) (*sqlstore.Store, *secretbox.Box, error) {
	if err := checkDataDir(cfg, readOnly); err != nil {
		return nil, nil, err
	}
	box, err := masterKey(cfg, log, !readOnly)
	if err != nil {
		return nil, nil, err
	}
	open := sqlstore.Open
	if readOnly {
		open = sqlstore.OpenReadOnly
	}
	st, err := open(ctx, cfg.Storage, box)
	if err != nil {
		fix := "check the storage setting and that the database server is running"
		switch {
		case errors.Is(err, sqlstore.ErrNoDatabase), errors.Is(err, sqlstore.ErrSchemaBehind):
			fix = "start qiao serve, or run qiao apply, once with this configuration"
		case errors.Is(err, sqlstore.ErrWrongMasterKey):
			fix = "start with the master key this database was created with (master_key, QIAO_MASTER_KEY or DATA_DIR/master.key)"
		}
		return nil, nil, &StartError{fmt.Errorf("cannot open the durable store: %w", err), fix}
	}
	return st, box, nil
}

// checkDataDir says plainly what is wrong with the data directory, when qiao keeps anything there
// (the generated master key, the SQLite database): for a command that only looks, that it does not
// exist or holds nothing yet; for one that writes, that it cannot be created or written.
func checkDataDir(cfg *config.Config, readOnly bool) error {
	// Only SQLite keeps anything there (PostgreSQL needs master_key set): the master key when it is
	// not set, and the database file's directory.
	_, src, err := sqlstore.ParseDSN(cfg.Storage)
	if err != nil || !strings.HasPrefix(cfg.Storage, "sqlite:") || src == ":memory:" || src == "" {
		return nil
	}
	var dirs []string
	if cfg.MasterKey == "" {
		dirs = append(dirs, cfg.DataDir)
	}
	if d := filepath.Dir(src); len(dirs) == 0 || filepath.Clean(d) != filepath.Clean(dirs[0]) {
		dirs = append(dirs, d)
	}
	for _, dir := range dirs {
		if readOnly {
			st, err := os.Stat(dir)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				return &StartError{fmt.Errorf("no data directory %s", dir),
					"give the --data (or data_dir, QIAO_DATA) qiao serve runs with; qiao serve or qiao apply sets a new one up"}
			case err != nil:
				return &StartError{fmt.Errorf("data directory %s: %w", dir, err), ""}
			case !st.IsDir():
				return &StartError{fmt.Errorf("data directory %s is not a directory", dir), ""}
			}
			continue
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return &StartError{fmt.Errorf("cannot create the data directory %s: %w", dir, unwrapPath(err)),
				"create it writable by the user qiao runs as (uid " + strconv.Itoa(os.Getuid()) + "), or choose another with --data or QIAO_DATA"}
		}
		f, err := os.CreateTemp(dir, ".qiao-write-check-*")
		if err != nil {
			return &StartError{fmt.Errorf("the data directory %s is not writable: %w", dir, unwrapPath(err)),
				"make it writable by the user qiao runs as (uid " + strconv.Itoa(os.Getuid()) + "), or choose another with --data or QIAO_DATA"}
		}
		f.Close()
		os.Remove(f.Name())
	}
	if readOnly && cfg.MasterKey == "" {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "master.key")); errors.Is(err, fs.ErrNotExist) {
			return &StartError{fmt.Errorf("nothing has been set up in the data directory %s yet (no master.key)", cfg.DataDir),
				"start qiao serve or run qiao apply with it first"}
		}
	}
	return nil
}

// unwrapPath drops the *fs.PathError's repetition of the path the message already names.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// applyDeclared writes the config's declarations into st, all or nothing, and logs what the file
// closed, disabled or deleted.
func applyDeclared(ctx context.Context, st directory.Store, cfg *config.Config, log *slog.Logger, opt declare.Options) (*declare.Result, error) {
	res, err := declare.Apply(ctx, st, cfg, opt)
	if err != nil {
		return nil, &StartError{fmt.Errorf("cannot apply the enterprises declared in the config: %w", err), "fix the config; nothing was changed"}
	}
	for _, c := range res.Changes {
		log.Warn("config: " + c)
	}
	return res, nil
}
