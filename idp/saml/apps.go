package saml

import (
	"context"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/session"
)

// spLogoutsAtOnce bounds the SOAP logouts in flight for one ended service provider: ending it
// may mean thousands of sessions, and the SP should not get them all at once.
const spLogoutsAtOnce = 8

// SPEnded implements access.SPEnder: the service provider entityID of ent was disabled or deleted.
// This process forgets its cached copy at once (other replicas read its row again within
// spRecheck). The returned tell sends the SP, for one session it served, a signed LogoutRequest
// over SOAP when its metadata has a SOAP SingleLogoutService — in the background, a few at a time,
// retried and audited as saml.backchannel_logout like SessionEnded's — and reports whether one is
// on its way. An SP that hears logouts only through the browser cannot be told. last is the SP's
// record as it was deleted (its metadata says where to send); a disabled SP is still registered
// and read from the store.
func (p *Provider) SPEnded(ctx context.Context, ent, entityID string, last *directory.ServiceProvider) func(context.Context, *session.Session) bool {
	p.sps.mu.Lock()
	delete(p.sps.m, ent+"\x00"+entityID)
	p.sps.mu.Unlock()
	sp, err := p.serviceProvider(ctx, ent, entityID)
	if err != nil && last != nil && last.EntityID == entityID {
		raw := []byte(last.MetadataXML)
		if last.MetadataURL != "" {
			raw, err = p.fetchMetadata(ctx, last.MetadataURL)
		} else {
			err = nil
		}
		if err == nil {
			sp, err = parseSP(last, raw)
		}
	}
	if err != nil {
		p.Log.Warn("SAML service provider ended; its sessions cannot be logged out over SOAP", "enterprise", ent, "sp", entityID, "err", err)
		return func(context.Context, *session.Session) bool { return false }
	}
	slots := make(chan struct{}, spLogoutsAtOnce)
	return func(ctx context.Context, v *session.Session) bool {
		served, ok := v.ServedSP(entityID)
		if !ok || v.Enterprise != ent || v.User == "" {
			return false
		}
		t, ok, err := sloTargetOf(sp, served, func() (*directory.User, error) { return p.Store.GetUser(ctx, ent, v.User) })
		if err != nil || !ok || t.SOAP == "" {
			return false
		}
		uid, sid := v.User, served.SessionIndex
		if sid == "" {
			sid = v.SID
		}
		p.bg.Add(1)
		go func() {
			defer p.bg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			p.soapLogout(context.WithoutCancel(ctx), ent, uid, sid, t)
		}()
		return true
	}
}
