package saml

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/qiao-gateway/qiao/internal/state"
)

// MetadataStatus is how the last fetch of a service provider's metadata URL went. It is kept in
// the state store, so an administrator reads the same answer from any replica.
type MetadataStatus struct {
	URL       string    `json:"url"`
	FetchedAt time.Time `json:"fetched_at"`
	OK        bool      `json:"ok"`
	// Error says why the fetch or the metadata failed; SSO goes on with the last good copy
	// (LastGoodAt) a replica holds, if any.
	Error      string           `json:"error,omitempty"`
	LastGoodAt time.Time        `json:"last_good_at,omitzero"`
	Summary    *MetadataSummary `json:"summary,omitempty"`
}

const mdStatusTTL = 30 * 24 * time.Hour

func mdStatusKey(ent, entityID string) string { return "saml:md_status:" + ent + "\x00" + entityID }

// recordFetch keeps how a fetch of url went: err nil with raw the metadata, or the failure.
func (p *Provider) recordFetch(ctx context.Context, ent, entityID, url string, raw []byte, err error) {
	if p.State == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	st := MetadataStatus{URL: url, FetchedAt: p.now(), OK: err == nil}
	if prev, _ := p.MetadataStatus(ctx, ent, entityID); prev != nil && prev.URL == url {
		st.LastGoodAt, st.Summary = prev.LastGoodAt, prev.Summary
	}
	if err != nil {
		st.Error = err.Error()
	} else {
		st.LastGoodAt = st.FetchedAt
		st.Summary, _ = Summarize(raw)
	}
	b, _ := json.Marshal(st)
	if perr := p.State.Put(ctx, mdStatusKey(ent, entityID), b, mdStatusTTL); perr != nil {
		p.Log.Warn("SAML SP metadata: keep the fetch status", "enterprise", ent, "sp", entityID, "err", perr)
	}
}

// MetadataStatus is the last fetch of the SP's metadata URL (nil when it was never fetched).
func (p *Provider) MetadataStatus(ctx context.Context, ent, entityID string) (*MetadataStatus, error) {
	b, err := p.State.Get(ctx, mdStatusKey(ent, entityID))
	if errors.Is(err, state.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the metadata status of %s: %w", entityID, err)
	}
	var st MetadataStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, nil // an unreadable record is as good as none: the next fetch rewrites it
	}
	return &st, nil
}

// RefreshMetadata fetches the SP's metadata URL now (an administrator asked, or just gave it)
// and answers how it went. A failure keeps this replica's last good copy in use.
func (p *Provider) RefreshMetadata(ctx context.Context, ent, entityID string) (*MetadataStatus, error) {
	key := ent + "\x00" + entityID
	p.sps.mu.Lock()
	if c := p.sps.m[key]; c != nil {
		stale := *c
		stale.checked, stale.fetched = time.Time{}, time.Time{}
		p.sps.m[key] = &stale
	}
	p.sps.mu.Unlock()
	if _, err := p.serviceProvider(ctx, ent, entityID); errors.Is(err, ErrUnknownSP) {
		return nil, err
	}
	return p.MetadataStatus(ctx, ent, entityID)
}
