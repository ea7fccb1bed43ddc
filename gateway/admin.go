package gateway

import (
	"context"
	"log/slog"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/config"
)

// OpenForChange opens the configured durable store for a command that changes what it holds
// (qiao apps disable): only a store serve or apply has already set up, at this qiao's schema —
// nothing is created, migrated or generated — and not the config's declarations applied. What
// the change owes (ending sessions, revoking tokens) is queued as an access job, which the
// serving replicas run.
func OpenForChange(ctx context.Context, cfg *config.Config, log *slog.Logger) (directory.Store, error) {
	ro, _, err := openStore(ctx, cfg, log, true)
	if err != nil {
		return nil, err
	}
	_ = ro.Close()
	st, _, err := openStore(ctx, cfg, log, false)
	if err != nil {
		return nil, err
	}
	return st, nil
}
