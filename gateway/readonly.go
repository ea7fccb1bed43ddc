package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

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
	Config *config.Config
	Store  directory.Store
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
	return &ReadOnly{Config: cfg, Store: st, Broker: &broker.Broker{ExternalURL: cfg.ExternalURL},
		OIDC: &idpoidc.Provider{ExternalURL: cfg.ExternalURL}, SAML: &idpsaml.Provider{ExternalURL: cfg.ExternalURL}}, nil
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
