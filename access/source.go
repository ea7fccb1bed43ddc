package access

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/qiao-gateway/qiao/directory"
)

// ErrProtected is returned when a deletion would remove more than the source's deletion
// protection allows; the caller may force it.
var ErrProtected = errors.New("deletion protection")

// QueueSourceClosed records, in tx, that a source was closed: the job that ends what it granted
// runs once tx commits. Call it in the transaction that stored the source as closed.
func QueueSourceClosed(ctx context.Context, tx directory.Store, ent, sourceID, actor, reason string) error {
	return tx.AddAccessJob(ctx, &directory.AccessJob{EnterpriseID: ent, Kind: directory.JobSourceClosed, Object: sourceID,
		Actor: actor, Reason: reason})
}

// SetSourceEnabled opens or closes a source. Closing queues the job that ends every session and
// refresh token obtained through it; they are refused from the moment the change commits
// (directory.ActiveThrough). Opening lets its kept events apply. It reports whether it changed.
func SetSourceEnabled(ctx context.Context, st directory.Store, ent, sourceID string, enabled bool, actor, reason string) (bool, error) {
	changed := false
	err := st.InTx(ctx, func(tx directory.Store) error {
		src, err := tx.GetSource(ctx, ent, sourceID)
		if err != nil {
			return err
		}
		if src.Enabled == enabled {
			return nil
		}
		src.Enabled, changed = enabled, true
		if err := tx.PutSource(ctx, src); err != nil {
			return err
		}
		if !enabled {
			return QueueSourceClosed(ctx, tx, ent, sourceID, actor, reason)
		}
		return nil
	})
	return changed, err
}

// SourceDeletion is what deleting a source does: shown first, then applied.
type SourceDeletion struct {
	EnterpriseID string
	SourceID     string
	Kind         directory.SourceKind
	Departments  int
	Links        int
	// Departing are the people the source alone links: they depart. Leaving keep other links and
	// lose only what this source granted.
	Departing []*directory.User
	Leaving   []*directory.User
	// RefreshTokens live that began with a login through the source (they are revoked).
	RefreshTokens int
	// Sessions live that were opened through it (-1 when the session store was not asked).
	Sessions int
	// Protection is why deletion protection stops this deletion ("" when it does not).
	Protection string
}

// PlanSourceDeletion works out what deleting the source would do, without changing anything.
// sessions, when not nil, counts the live SSO sessions that would end.
func PlanSourceDeletion(ctx context.Context, st directory.Store, sessions SessionCounter, ent, sourceID string) (*SourceDeletion, error) {
	src, err := st.GetSource(ctx, ent, sourceID)
	if err != nil {
		return nil, err
	}
	p := &SourceDeletion{EnterpriseID: ent, SourceID: src.ID, Kind: src.Kind, Sessions: -1}
	depts, err := st.ListDepartments(ctx, ent, src.ID)
	if err != nil {
		return nil, err
	}
	p.Departments = len(depts)
	lus, err := st.SourceUsers(ctx, ent, src.ID)
	if err != nil {
		return nil, err
	}
	p.Links = len(lus)
	for _, lu := range lus {
		links, err := st.LinksOfUser(ctx, ent, lu.User.ID)
		if err != nil {
			return nil, err
		}
		if len(links) <= 1 {
			if lu.User.Status != directory.UserDeparted {
				p.Departing = append(p.Departing, lu.User)
			}
		} else {
			p.Leaving = append(p.Leaving, lu.User)
		}
	}
	if p.RefreshTokens, err = st.CountSourceRefreshTokens(ctx, ent, src.ID); err != nil {
		return nil, err
	}
	if sessions != nil {
		p.Sessions = 0
		for _, lu := range lus {
			n, err := sessions.CountUserSource(ctx, ent, lu.User.ID, src.ID)
			if err != nil {
				return nil, err
			}
			p.Sessions += n
		}
	}
	switch {
	case len(p.Departing) > src.Sync.DeleteUsers:
		p.Protection = fmt.Sprintf("%d people would depart, more than the source's limit of %d (sync.delete_users)", len(p.Departing), src.Sync.DeleteUsers)
	case p.Departments > src.Sync.DeleteDepts:
		p.Protection = fmt.Sprintf("%d departments would be removed, more than the source's limit of %d (sync.delete_depts)", p.Departments, src.Sync.DeleteDepts)
	}
	return p, nil
}

// SessionCounter counts a person's live sessions opened through a source.
type SessionCounter interface {
	CountUserSource(ctx context.Context, ent, uid, source string) (int, error)
}

type deletedSource struct {
	Departed []string `json:"departed"`
	Left     []string `json:"left"`
}

// DeleteSource deletes a source in one transaction: its departments and links go, the people it
// alone linked depart, and the job that ends what it granted is queued. Deletion protection
// refuses with ErrProtected unless force. The plan is worked out again inside the transaction,
// so what is applied is what was checked.
func DeleteSource(ctx context.Context, st directory.Store, ent, sourceID string, force bool, actor, reason string) (*SourceDeletion, error) {
	var plan *SourceDeletion
	err := st.InTx(ctx, func(tx directory.Store) error {
		var err error
		plan, err = DeleteSourceTx(ctx, tx, ent, sourceID, force, actor, reason)
		return err
	})
	return plan, err
}

// DeleteSourceTx is DeleteSource inside the caller's transaction. On ErrProtected it returns
// the plan, whose Protection says why.
func DeleteSourceTx(ctx context.Context, tx directory.Store, ent, sourceID string, force bool, actor, reason string) (*SourceDeletion, error) {
	plan, err := PlanSourceDeletion(ctx, tx, nil, ent, sourceID)
	if err != nil {
		return nil, err
	}
	if plan.Protection != "" && !force {
		return plan, fmt.Errorf("%w: deleting source %s/%s: %s", ErrProtected, ent, sourceID, plan.Protection)
	}
	payload := deletedSource{}
	for _, u := range plan.Departing {
		u.Status = directory.UserDeparted
		if err := tx.UpdateUser(ctx, u); err != nil {
			return nil, fmt.Errorf("depart %s: %w", u.Username, err)
		}
		payload.Departed = append(payload.Departed, u.ID)
	}
	for _, u := range plan.Leaving {
		payload.Left = append(payload.Left, u.ID)
	}
	if err := tx.DeleteSource(ctx, ent, sourceID); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(payload)
	err = tx.AddAccessJob(ctx, &directory.AccessJob{EnterpriseID: ent, Kind: directory.JobSourceDeleted, Object: sourceID,
		Actor: actor, Reason: reason, Payload: b})
	return plan, err
}

// QueueUsersDeparted queues, in tx, the job that ends the access of people who were just made to
// depart (removed from the config file, their enterprise deleted).
func QueueUsersDeparted(ctx context.Context, tx directory.Store, ent string, userIDs []string, actor, reason string) error {
	b, _ := json.Marshal(deletedSource{Departed: userIDs})
	return tx.AddAccessJob(ctx, &directory.AccessJob{EnterpriseID: ent, Kind: directory.JobUsersDeparted, Object: fmt.Sprintf("%d people", len(userIDs)),
		Actor: actor, Reason: reason, Payload: b})
}

// QueueUserLeftSource queues, in tx, the job that ends what one source granted a person it no
// longer links (other sources still do).
func QueueUserLeftSource(ctx context.Context, tx directory.Store, ent, userID, sourceID, actor, reason string) error {
	b, _ := json.Marshal(deletedSource{Left: []string{userID}})
	return tx.AddAccessJob(ctx, &directory.AccessJob{EnterpriseID: ent, Kind: directory.JobUserLeftSource, Object: sourceID,
		Actor: actor, Reason: reason, Payload: b})
}

// fanOut runs f for each ID with a few workers: ending 10,000 people's sessions one state-store
// round trip after another would take seconds on Redis.
func fanOut(ids []string, f func(id string) (int, error)) (int, error) {
	var total atomic.Int64
	var mu sync.Mutex
	var errs []error
	work := make(chan string)
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				n, err := f(id)
				total.Add(int64(n))
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	if len(errs) > 3 {
		errs = append(errs[:3], fmt.Errorf("and %d more", len(errs)-3))
	}
	return int(total.Load()), errors.Join(errs...)
}

// endSource ends what a closed source granted: every SSO session opened through it (each
// one's participants told: back-channel and SOAP logout) and every refresh token begun there.
func (s *Service) endSource(ctx context.Context, ent, sourceID string) (map[string]int, error) {
	var errs []error
	tokens, err := s.Store.RevokeSourceRefreshTokens(ctx, ent, sourceID, s.now())
	if err != nil {
		errs = append(errs, fmt.Errorf("revoke refresh tokens: %w", err))
	}
	lus, err := s.Store.SourceUsers(ctx, ent, sourceID)
	if err != nil {
		errs = append(errs, fmt.Errorf("list the source's people: %w", err))
	}
	ids := make([]string, len(lus))
	for i, lu := range lus {
		ids[i] = lu.User.ID
	}
	sessions, err := fanOut(ids, func(uid string) (int, error) { return s.Sessions.RevokeUserSource(ctx, ent, uid, sourceID) })
	if err != nil {
		errs = append(errs, fmt.Errorf("end sessions: %w", err))
	}
	return map[string]int{"users": len(ids), "sessions": sessions, "refresh_tokens": tokens}, joinErrs(errs)
}

// endDeletedSource ends what a deleted source granted: everything of the people it departed,
// and what it alone granted the people other sources still link.
func (s *Service) endDeletedSource(ctx context.Context, j *directory.AccessJob) (map[string]int, error) {
	var p deletedSource
	if err := json.Unmarshal(j.Payload, &p); err != nil && len(j.Payload) > 0 {
		return nil, fmt.Errorf("job payload: %w", err)
	}
	ent, sourceID := j.EnterpriseID, j.Object
	var errs []error
	var tokens atomic.Int64
	if j.Kind == directory.JobSourceDeleted {
		n, err := s.Store.RevokeSourceRefreshTokens(ctx, ent, sourceID, s.now())
		if err != nil {
			errs = append(errs, fmt.Errorf("revoke refresh tokens: %w", err))
		}
		tokens.Add(int64(n))
	}
	departedSessions, err := fanOut(p.Departed, func(uid string) (int, error) {
		n, err := s.Sessions.RevokeUser(ctx, ent, uid)
		holders, _ := s.Store.RefreshTokenClients(ctx, ent, uid, s.now())
		m, terr := s.Store.RevokeUserRefreshTokens(ctx, ent, uid, s.now())
		tokens.Add(int64(m))
		for _, h := range s.Holders {
			h.UserDeparted(ctx, ent, uid, holders)
		}
		return n, errors.Join(err, terr)
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("end departed people's access: %w", err))
	}
	leftSessions, err := fanOut(p.Left, func(uid string) (int, error) {
		n, err := s.Sessions.RevokeUserSource(ctx, ent, uid, sourceID)
		if j.Kind == directory.JobUserLeftSource {
			m, terr := s.Store.RevokeUserSourceRefreshTokens(ctx, ent, uid, sourceID, s.now())
			tokens.Add(int64(m))
			err = errors.Join(err, terr)
		}
		return n, err
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("end sessions: %w", err))
	}
	return map[string]int{"departed": len(p.Departed), "left": len(p.Left), "sessions": departedSessions + leftSessions,
		"refresh_tokens": int(tokens.Load())}, joinErrs(errs)
}
