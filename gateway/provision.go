package gateway

import (
	"fmt"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/provision"
	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/wecom"
)

// initProvision builds outbound provisioning (directory/provision): its worker runs in Serve, one
// per process; the outbox's claims keep replicas from pushing an item twice.
func (g *Gateway) initProvision() {
	g.Provision = &provision.Service{Store: g.Store, Log: g.Log, Open: OpenProvisionWriter, Notify: make(chan struct{}, 1)}
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
