package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/config"
	"github.com/qiao-gateway/qiao/keys"
)

// keysReloadEvery is how often a replica looks for a rotation made by another (or by qiao keys
// rotate): every replica signs with the new keys within this.
const keysReloadEvery = 15 * time.Second

// openKeys loads the signing keys from the database every replica shares, making the first set
// when there is none — from cfg.KeysDir's files when a gateway kept its keys there before
// (imported once; the files are left as they are).
func openKeys(ctx context.Context, st directory.Store, cfg *config.Config) (*keys.Manager, error) {
	m, err := keys.OpenStore(ctx, st, cfg.KeysDir, keys.WithGrace(cfg.KeyRotationGrace.D()))
	if err != nil {
		return nil, &StartError{err, ""}
	}
	return m, nil
}

// ErrNoKeys means no gateway has made the signing keys yet.
var ErrNoKeys = keys.ErrNoKeys

// OpenKeys opens the configured store and its signing keys for qiao keys: existing (list,
// export) opens the store read-only and makes nothing (ErrNoKeys when there are none yet);
// otherwise (rotate) it opens it for writing and makes the first set if there is none, reporting
// made. close releases the store.
func OpenKeys(ctx context.Context, cfg *config.Config, log *slog.Logger, existing bool) (m *keys.Manager, made bool, closeFn func(), err error) {
	st, _, err := openStore(ctx, cfg, log, existing)
	if err != nil {
		return nil, false, nil, err
	}
	opts := []keys.Option{keys.WithGrace(cfg.KeyRotationGrace.D())}
	if existing {
		m, err = keys.OpenStoreExisting(ctx, st, opts...)
	} else if m, err = keys.OpenStoreExisting(ctx, st, opts...); errors.Is(err, keys.ErrNoKeys) {
		made = true
		m, err = keys.OpenStore(ctx, st, cfg.KeysDir, opts...)
	}
	if err != nil {
		st.Close()
		return nil, false, nil, fmt.Errorf("signing keys: %w", err)
	}
	return m, made, func() { st.Close() }, nil
}
