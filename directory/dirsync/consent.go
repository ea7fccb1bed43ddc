package dirsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/state"
)

// ConsentExtended are the consented fields kept as extended fields (User.Attributes), under the
// names the connector gives them: claim and attribute mappings release them as "ext.biz_mail",
// "ext.avatar" and "ext.gender".
var ConsentExtended = []string{"biz_mail", "avatar", "gender"}

// Consent keeps what a person disclosed with their consent at login (federation.Identity.Attrs of
// a consented login, WeCom's auth/getuserdetail): mobile and email (biz_mail when there is no
// email) into the directory user linked to upstreamID at src, and ConsentExtended as extended
// fields. A value the login did not disclose never clears a kept one. The change is recorded as a
// sync's is: a task with trigger consent and read mode "<kind>-consent" (wecom-consent), and one
// user record with what was disclosed and the user before and after.
//
// It returns the task, or nil when nothing changed (a repeated login with the same fields writes
// nothing) or the user is not active (a refused login keeps nothing). ErrBusy means a sync task
// of the source is running: nothing is kept this time; the person's next login brings it again.
func (e *Engine) Consent(ctx context.Context, src *directory.IdentitySource, upstreamID string, attrs map[string]string) (*directory.SyncTask, error) {
	ent := src.EnterpriseID
	readMode := string(src.Kind) + "-consent"
	if _, after, err := e.consentChange(ctx, e.Store, src, upstreamID, attrs); err != nil || after == nil {
		return nil, err
	}
	// A sync task of the source plans from what it read and applies later: the lock keeps this
	// write out of that gap.
	ttl := e.LockTTL
	if ttl == 0 {
		ttl = 2 * time.Minute
	}
	lease, err := e.State.Lock(ctx, "sync:"+ent+"/"+src.ID, ttl)
	if errors.Is(err, state.ErrLocked) {
		return nil, fmt.Errorf("consent %s/%s: %w", ent, src.ID, ErrBusy)
	}
	if err != nil {
		return nil, fmt.Errorf("consent: take the source's lock: %w", err)
	}
	defer func() { _ = lease.Release(context.WithoutCancel(ctx)) }()
	// Events apply under the apply lock only; this write waits for one that is running.
	applyLease, err := e.lockApply(ctx, ent, src.ID, ttl, eventLockWait)
	if err != nil {
		return nil, fmt.Errorf("consent %s/%s: %w", ent, src.ID, err)
	}
	defer func() { _ = applyLease.Release(context.WithoutCancel(ctx)) }()

	var task *directory.SyncTask
	err = e.Store.InTx(ctx, func(tx directory.Store) error {
		cur, after, err := e.consentChange(ctx, tx, src, upstreamID, attrs)
		if err != nil || after == nil {
			return err
		}
		now := e.now()
		t := &directory.SyncTask{EnterpriseID: ent, SourceID: src.ID, Trigger: directory.TriggerConsent, Status: directory.TaskSucceeded,
			ReadMode: readMode, Counts: map[string]int{ActUpdate: 1}, StartedAt: now, FinishedAt: now}
		if err := tx.CreateSyncTask(ctx, t); err != nil {
			return fmt.Errorf("record the task: %w", err)
		}
		if err := tx.UpdateUser(ctx, after.User); err != nil {
			return fmt.Errorf("user %s: %w", upstreamID, err)
		}
		rec := &directory.SyncRecord{TaskID: t.ID, ObjectType: "user", UpstreamID: upstreamID, Action: ActUpdate,
			Upstream: consentJSON(readMode, upstreamID, attrs), LocalBefore: linkJSON(cur.User, cur.Link), LocalAfter: linkJSON(after.User, after.Link)}
		if err := tx.AddSyncRecords(ctx, []*directory.SyncRecord{rec}); err != nil {
			return err
		}
		task = t
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("consent %s/%s %s: %w", ent, src.ID, upstreamID, err)
	}
	return task, nil
}

// consentChange reads the user linked to upstreamID and returns them with the consented fields
// applied; after is nil when that changes nothing or the user is not active.
func (e *Engine) consentChange(ctx context.Context, st directory.Store, src *directory.IdentitySource, upstreamID string, attrs map[string]string) (cur, after *directory.LinkedUser, err error) {
	link, err := st.GetUserLink(ctx, src.EnterpriseID, src.ID, upstreamID)
	if err != nil {
		return nil, nil, err
	}
	u, err := st.GetUser(ctx, src.EnterpriseID, link.UserID)
	if err != nil {
		return nil, nil, err
	}
	cur = &directory.LinkedUser{Link: link, User: u}
	if u.Status != directory.UserActive {
		return cur, nil, nil
	}
	nu := *u
	nu.Attributes = maps.Clone(u.Attributes)
	if nu.Attributes == nil {
		nu.Attributes = map[string]string{}
	}
	set := func(to *string, v string) {
		if v != "" {
			*to = v
		}
	}
	set(&nu.Mobile, attrs["mobile"])
	email := attrs["email"]
	if email == "" {
		email = attrs["biz_mail"]
	}
	set(&nu.Email, email)
	for _, k := range ConsentExtended {
		if v := attrs[k]; v != "" {
			nu.Attributes[k] = v
		}
	}
	if sameUser(u, &nu) {
		return cur, nil, nil
	}
	return cur, &directory.LinkedUser{Link: link, User: &nu}, nil
}

// consentJSON is a consent record's upstream side: the fields kept, as the login disclosed them,
// and where they came from.
func consentJSON(readMode, upstreamID string, attrs map[string]string) json.RawMessage {
	m := map[string]string{"source": readMode, "userid": upstreamID}
	for _, k := range append([]string{"mobile", "email"}, ConsentExtended...) {
		if v := attrs[k]; v != "" {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	return b
}
