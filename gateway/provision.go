package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/lease"
	"github.com/qiao-gateway/qiao/directory/provision"
	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/wecom"
)

// LeaseProvisionScheduler is the lease of the provisioning reconciles (initial and cyclic): one
// replica runs them at a time.
const LeaseProvisionScheduler = "provision-scheduler"

// initProvision builds outbound provisioning (directory/provision).
func (g *Gateway) initProvision() {
	g.Provision = &provision.Service{Store: g.Store, State: g.State, Log: g.Log, Open: OpenProvisionWriter, Notify: make(chan struct{}, 1)}
}

// runProvision works the outbox on every replica (its claims give each item to one) and runs the
// reconciles under a lease: at once (a new target's initial push), then every minute.
func (g *Gateway) runProvision(ctx context.Context, holder string) {
	g.goBackground(func() { g.Provision.RunOutbox(ctx) })
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		err := lease.Run(ctx, g.Store, LeaseProvisionScheduler, holder, 10*time.Minute, func(ctx context.Context, _ *lease.Lease) error {
			g.Provision.Schedule(ctx)
			return nil
		})
		if err != nil && !errors.Is(err, lease.ErrHeld) && ctx.Err() == nil {
			g.Log.Warn("provisioning scheduler", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// OpenProvisionWriter opens the writer of a provisioning target: WeCom's contact write API.
func OpenProvisionWriter(t *directory.ProvisionTarget) (federation.DirectoryWriter, error) {
	if t.Kind != directory.KindWeCom {
		return nil, fmt.Errorf("qiao provisions WeCom only, not %q", t.Kind)
	}
	s, err := wecom.WriterSettings(t.Config, t.Secrets)
	if err != nil {
		return nil, err
	}
	return wecom.NewWriter(s)
}
