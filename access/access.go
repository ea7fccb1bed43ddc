// Package access is the access lifecycle: the one place that ends what lets a person keep using
// the apps once they may no longer — their SSO sessions, their refresh tokens, and the relying
// parties' own sessions (OIDC back-channel logout, SAML SOAP logout) — and records that it did.
// Sync and events call it when a person departs upstream, is disabled or leaves a source; closing,
// deleting a source or disabling an app queue an access job (directory.AccessJob) in the change's
// transaction, which ProcessJobs runs. The gateway only constructs it.
package access

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/qiao-gateway/qiao/directory"
)

// Sessions ends the SSO sessions of a person. Ending each session tells the protocols that took
// part in it (they register as session participants), so their relying parties hear at once.
type Sessions interface {
	RevokeUser(ctx context.Context, enterpriseID, userID string) (int, error)
	RevokeUserSource(ctx context.Context, enterpriseID, userID, sourceID string) (int, error)
}

// TokenHolders hear that a person's refresh tokens were revoked: relying parties that held one
// but were not in any live session (an app that only refreshes) still learn the person is gone.
type TokenHolders interface {
	UserDeparted(ctx context.Context, enterpriseID, userID string, clients []string)
}

// Service ends access.
type Service struct {
	Store    directory.Store
	Sessions Sessions
	Holders  []TokenHolders
	// What disabling or deleting an app tells: the OpenID Provider, the SAML IdP, and the session
	// store whose sessions lose a service provider.
	OIDC         ClientEnder
	SAML         SPEnder
	UserSessions SessionWalker
	Now          func() time.Time
	Log          *slog.Logger
}

func (s *Service) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

// Reason says why access ended, for the audit record.
type Reason struct {
	Actor string // who ended it: "sync", "event", an administrator's ID
	Text  string
}

// Departed is the reason sync and events give.
var Departed = Reason{Actor: "sync", Text: "user departed, disabled or removed upstream"}

// EndUser ends a person's access everywhere, in this order: their SSO sessions (each one's
// participants told), then their refresh tokens (their holders told), then the audit record.
// Each step runs even when an earlier one failed, so a failure leaves as little access as
// possible; the errors are returned together.
func (s *Service) EndUser(ctx context.Context, enterpriseID, userID string, why Reason) error {
	_, _, err := s.EndUserCounted(ctx, enterpriseID, userID, why)
	return err
}

// EndUserCounted is EndUser, and says how many sessions it ended and refresh tokens it revoked.
func (s *Service) EndUserCounted(ctx context.Context, enterpriseID, userID string, why Reason) (sessions, tokens int, err error) {
	var errs []error
	sessions, err = s.Sessions.RevokeUser(ctx, enterpriseID, userID)
	if err != nil {
		errs = append(errs, fmt.Errorf("end sessions: %w", err))
	}
	now := s.now()
	holders, err := s.Store.RefreshTokenClients(ctx, enterpriseID, userID, now)
	if err != nil {
		errs = append(errs, fmt.Errorf("list refresh token holders: %w", err))
	}
	tokens, err = s.Store.RevokeUserRefreshTokens(ctx, enterpriseID, userID, now)
	if err != nil {
		errs = append(errs, fmt.Errorf("revoke refresh tokens: %w", err))
	}
	for _, h := range s.Holders {
		h.UserDeparted(ctx, enterpriseID, userID, holders)
	}
	return sessions, tokens, s.audit(ctx, &directory.AuditEvent{EnterpriseID: enterpriseID, Kind: "user.revoke", UserID: userID}, why, sessions, tokens, errs)
}

// audit records what ending access did (ev carries who and where) and returns the steps' errors
// with the audit's own.
func (s *Service) audit(ctx context.Context, ev *directory.AuditEvent, why Reason, sessions, tokens int, errs []error) error {
	ev.Actor, ev.Reason, ev.Outcome = why.Actor, why.Text, "ok"
	if len(errs) > 0 {
		ev.Outcome = "error"
	}
	ev.Detail, _ = json.Marshal(map[string]int{"sessions": sessions, "refresh_tokens": tokens})
	if err := s.Store.AddAuditEvent(ctx, ev); err != nil {
		errs = append(errs, fmt.Errorf("audit: %w", err))
	}
	return errors.Join(errs...)
}

// LeftSource is the reason sync and events give when a person's link to one source is removed
// while other sources still know them.
var LeftSource = Reason{Actor: "sync", Text: "user removed from the login source"}

// EndUserSource ends what one identity source granted a person who is no longer linked to it
// (removed upstream while other sources still know them): the SSO sessions opened through it
// (each one's participants told) and the refresh tokens whose grant began with a login through
// it, with an audit record. What other sources granted stays.
func (s *Service) EndUserSource(ctx context.Context, enterpriseID, userID, sourceID string, why Reason) error {
	var errs []error
	sessions, err := s.Sessions.RevokeUserSource(ctx, enterpriseID, userID, sourceID)
	if err != nil {
		errs = append(errs, fmt.Errorf("end sessions: %w", err))
	}
	tokens, err := s.Store.RevokeUserSourceRefreshTokens(ctx, enterpriseID, userID, sourceID, s.now())
	if err != nil {
		errs = append(errs, fmt.Errorf("revoke refresh tokens: %w", err))
	}
	return s.audit(ctx, &directory.AuditEvent{EnterpriseID: enterpriseID, Kind: "user.revoke_source", UserID: userID, SourceID: sourceID},
		why, sessions, tokens, errs)
}

// UserDeparted implements dirsync.Access: the person can no longer log on at all.
func (s *Service) UserDeparted(ctx context.Context, enterpriseID, userID string) error {
	return s.EndUser(ctx, enterpriseID, userID, Departed)
}

// UserLeftSource implements dirsync.Access: the person's link to the source is gone.
func (s *Service) UserLeftSource(ctx context.Context, enterpriseID, userID, sourceID string) error {
	return s.EndUserSource(ctx, enterpriseID, userID, sourceID, LeftSource)
}
