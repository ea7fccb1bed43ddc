package access

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/session"
)

// jobApp says, in an app job's audit event, which kind of app its object names.
var jobApp = map[string]string{
	directory.JobClientDisabled: "oidc_client",
	directory.JobClientDeleted:  "oidc_client",
	directory.JobSPDisabled:     "saml_sp",
	directory.JobSPDeleted:      "saml_sp",
}

// ClientEnder is the OpenID Provider as disabling or deleting a client needs it.
type ClientEnder interface {
	// ClientEnded: the client was disabled or deleted at `at`. Forget any copy of it this process
	// holds, and refuse the access tokens and codes issued to it until then.
	ClientEnded(ctx context.Context, enterpriseID, clientID string, at time.Time) error
}

// SPEnder is the SAML IdP as disabling or deleting a service provider needs it.
type SPEnder interface {
	// SPEnded: forget any copy of the SP this process holds, and return tell, which tells the SP
	// that one session it served no longer includes it (a SOAP LogoutRequest, when its metadata
	// has that binding) and reports whether it was told. last is the SP's record when it was
	// deleted, nil when it is still registered.
	SPEnded(ctx context.Context, enterpriseID, entityID string, last *directory.ServiceProvider) (tell func(context.Context, *session.Session) bool)
}

// SessionWalker visits a person's live SSO sessions; a session fn changed (returns true) is
// stored, with the lifetime it had left.
type SessionWalker interface {
	EachUserSession(ctx context.Context, enterpriseID, userID string, fn func(*session.Session) bool) error
}

// QueueClientDisabled records, in tx, that an OIDC client was disabled: the job that revokes its
// tokens runs once tx commits. Call it in the transaction that stored the client as disabled.
func QueueClientDisabled(ctx context.Context, tx directory.Store, ent, clientID, actor, reason string) error {
	return tx.AddAccessJob(ctx, &directory.AccessJob{EnterpriseID: ent, Kind: directory.JobClientDisabled, Object: clientID,
		Actor: actor, Reason: reason})
}

// QueueSPDisabled records, in tx, that a SAML service provider was disabled: the job that ends
// its SAML sessions runs once tx commits. Call it in the transaction that stored it as disabled.
func QueueSPDisabled(ctx context.Context, tx directory.Store, ent, entityID, actor, reason string) error {
	return tx.AddAccessJob(ctx, &directory.AccessJob{EnterpriseID: ent, Kind: directory.JobSPDisabled, Object: entityID,
		Actor: actor, Reason: reason})
}

// SetClientEnabled enables or disables an OIDC client and reports whether it changed. A disabled
// client is unknown to every endpoint from the moment the change commits (within the OpenID
// Provider's client cache TTL on a replica that had it cached), and the job that revokes its
// refresh tokens and refuses its access tokens is queued. Tokens revoked stay revoked when the
// client is enabled again.
func SetClientEnabled(ctx context.Context, st directory.Store, ent, clientID string, enabled bool, actor, reason string) (bool, error) {
	changed := false
	err := st.InTx(ctx, func(tx directory.Store) error {
		c, err := tx.GetClient(ctx, ent, clientID)
		if err != nil {
			return err
		}
		if c.Disabled == !enabled {
			return nil
		}
		c.Disabled, changed = !enabled, true
		if err := tx.PutClient(ctx, c); err != nil {
			return err
		}
		if !enabled {
			return QueueClientDisabled(ctx, tx, ent, clientID, actor, reason)
		}
		return nil
	})
	return changed, err
}

// SetSPEnabled enables or disables a SAML service provider and reports whether it changed. A
// disabled SP is refused at SSO from the moment the change commits (within the IdP's SP cache
// TTL on a replica that had it cached), and the job that ends its SAML sessions is queued.
func SetSPEnabled(ctx context.Context, st directory.Store, ent, entityID string, enabled bool, actor, reason string) (bool, error) {
	changed := false
	err := st.InTx(ctx, func(tx directory.Store) error {
		sp, err := tx.GetServiceProvider(ctx, ent, entityID)
		if err != nil {
			return err
		}
		if sp.Disabled == !enabled {
			return nil
		}
		sp.Disabled, changed = !enabled, true
		if err := tx.PutServiceProvider(ctx, sp); err != nil {
			return err
		}
		if !enabled {
			return QueueSPDisabled(ctx, tx, ent, entityID, actor, reason)
		}
		return nil
	})
	return changed, err
}

// deletedClient is a client deletion's job payload.
type deletedClient struct {
	RefreshTokens int `json:"refresh_tokens"`
}

// DeleteClient deletes an OIDC client in one transaction: its refresh tokens are revoked and go
// with it, and the job that refuses its access tokens is queued. It returns how many refresh
// tokens it revoked.
func DeleteClient(ctx context.Context, st directory.Store, ent, clientID, actor, reason string) (int, error) {
	n := 0
	err := st.InTx(ctx, func(tx directory.Store) error {
		var err error
		n, err = DeleteClientTx(ctx, tx, ent, clientID, actor, reason)
		return err
	})
	return n, err
}

// DeleteClientTx is DeleteClient inside the caller's transaction.
func DeleteClientTx(ctx context.Context, tx directory.Store, ent, clientID, actor, reason string) (int, error) {
	n, err := tx.RevokeClientRefreshTokens(ctx, ent, clientID, time.Now())
	if err != nil {
		return 0, err
	}
	if err := tx.DeleteClient(ctx, ent, clientID); err != nil {
		return 0, err
	}
	b, _ := json.Marshal(deletedClient{RefreshTokens: n})
	return n, tx.AddAccessJob(ctx, &directory.AccessJob{EnterpriseID: ent, Kind: directory.JobClientDeleted, Object: clientID,
		Actor: actor, Reason: reason, Payload: b})
}

// DeleteSP deletes a SAML service provider in one transaction and queues the job that ends its
// SAML sessions (the job keeps the SP's record: its metadata says where to send the logouts).
func DeleteSP(ctx context.Context, st directory.Store, ent, entityID, actor, reason string) error {
	return st.InTx(ctx, func(tx directory.Store) error { return DeleteSPTx(ctx, tx, ent, entityID, actor, reason) })
}

// DeleteSPTx is DeleteSP inside the caller's transaction.
func DeleteSPTx(ctx context.Context, tx directory.Store, ent, entityID, actor, reason string) error {
	sp, err := tx.GetServiceProvider(ctx, ent, entityID)
	if err != nil {
		return err
	}
	if err := tx.DeleteServiceProvider(ctx, ent, entityID); err != nil {
		return err
	}
	b, err := json.Marshal(sp)
	if err != nil {
		return fmt.Errorf("service provider %s: %w", entityID, err)
	}
	return tx.AddAccessJob(ctx, &directory.AccessJob{EnterpriseID: ent, Kind: directory.JobSPDeleted, Object: entityID,
		Actor: actor, Reason: reason, Payload: b})
}

// endClient ends what a disabled or deleted client holds: its refresh tokens are revoked (a
// deletion revoked and removed them in its transaction) and the OpenID Provider refuses the access
// tokens issued to it. No relying party is told: the client itself is the one that ended.
func (s *Service) endClient(ctx context.Context, j *directory.AccessJob) (map[string]int, error) {
	ent, id := j.EnterpriseID, j.Object
	now := s.now()
	var errs []error
	tokens := 0
	if j.Kind == directory.JobClientDeleted {
		var p deletedClient
		if err := json.Unmarshal(j.Payload, &p); err != nil && len(j.Payload) > 0 {
			errs = append(errs, fmt.Errorf("job payload: %w", err))
		}
		tokens = p.RefreshTokens
	} else {
		n, err := s.Store.RevokeClientRefreshTokens(ctx, ent, id, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("revoke refresh tokens: %w", err))
		}
		tokens = n
	}
	if s.OIDC == nil {
		errs = append(errs, errors.New("no OpenID Provider to refuse the client's access tokens"))
	} else if err := s.OIDC.ClientEnded(ctx, ent, id, now); err != nil {
		errs = append(errs, err)
	}
	return map[string]int{"refresh_tokens": tokens}, joinErrs(errs)
}

// endServiceProvider ends the SAML sessions of a disabled or deleted service provider: every SSO
// session that served it loses it (the person's SSO session goes on), and the SP is sent a SOAP
// LogoutRequest for each when its metadata has that binding.
func (s *Service) endServiceProvider(ctx context.Context, j *directory.AccessJob) (map[string]int, error) {
	ent, entity := j.EnterpriseID, j.Object
	if s.SAML == nil || s.UserSessions == nil {
		return nil, errors.New("no SAML IdP or session store to end the service provider's sessions")
	}
	var last *directory.ServiceProvider
	if j.Kind == directory.JobSPDeleted && len(j.Payload) > 0 {
		last = &directory.ServiceProvider{}
		if err := json.Unmarshal(j.Payload, last); err != nil {
			return nil, fmt.Errorf("job payload: %w", err)
		}
	}
	tell := s.SAML.SPEnded(ctx, ent, entity, last)
	ids, err := s.userIDs(ctx, ent)
	if err != nil {
		return nil, fmt.Errorf("list the enterprise's people: %w", err)
	}
	var told atomic.Int64
	sessions, err := fanOut(ids, func(uid string) (int, error) {
		n := 0
		err := s.UserSessions.EachUserSession(ctx, ent, uid, func(v *session.Session) bool {
			i := slices.IndexFunc(v.SPs, func(sp session.SP) bool { return sp.EntityID == entity })
			if i < 0 {
				return false
			}
			if tell(ctx, v) {
				told.Add(1)
			}
			v.SPs = slices.Delete(v.SPs, i, i+1)
			n++
			return true
		})
		return n, err
	})
	if err != nil {
		err = fmt.Errorf("end sessions: %w", err)
	}
	return map[string]int{"sessions": sessions, "soap_logouts": int(told.Load())}, err
}

// userIDs lists the IDs of every person of an enterprise.
func (s *Service) userIDs(ctx context.Context, ent string) ([]string, error) {
	var ids []string
	after := ""
	for {
		us, err := s.Store.ListUsers(ctx, ent, after, 1000)
		if err != nil {
			return nil, err
		}
		for _, u := range us {
			ids = append(ids, u.ID)
		}
		if len(us) < 1000 {
			return ids, nil
		}
		after = us[len(us)-1].ID
	}
}
