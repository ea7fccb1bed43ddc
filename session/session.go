// Package session is the SSO session both protocols share: who logged in, how and when, and which
// relying parties and service providers it has served — so that ending it can tell each of them.
package session

import (
	"context"
	"slices"
	"time"
)

// Session is one browser's SSO session.
type Session struct {
	// ID is the cookie's secret; it is not shown to apps (SID names the session to them).
	ID      string    `json:"-"`
	Created time.Time `json:"c"` // when the session (this ID) began: the absolute timeout runs from it

	Enterprise string `json:"ent"`
	User       string `json:"uid"` // the directory user's ID
	Source     string `json:"src,omitempty"`
	AMR        string `json:"amr,omitempty"`
	AuthTime   int64  `json:"auth_ms,omitempty"` // when the person logged in, Unix milliseconds
	SID        string `json:"sid,omitempty"`     // the login's name to apps (ID token sid, SAML SessionIndex)

	RPs []string `json:"rps,omitempty"` // OIDC clients that received tokens in the session
	SPs []SP     `json:"sps,omitempty"` // SAML service providers that received assertions
}

// SP is a service provider the session served, with what it was given: its LogoutRequest must
// name that NameID (a transient one cannot be derived again) and may name that SessionIndex.
type SP struct {
	EntityID     string `json:"entity"`
	NameID       string `json:"name_id,omitempty"`
	SessionIndex string `json:"index,omitempty"`
}

// LoginTime is when the person logged in (zero when unknown).
func (s *Session) LoginTime() time.Time {
	if s.AuthTime == 0 {
		return time.Time{}
	}
	return time.UnixMilli(s.AuthTime)
}

// AddRP records an OIDC client; it reports whether the session changed.
func (s *Session) AddRP(clientID string) bool {
	if slices.Contains(s.RPs, clientID) {
		return false
	}
	s.RPs = append(s.RPs, clientID)
	return true
}

// ServedSP is the record of the service provider entityID, if the session served it.
func (s *Session) ServedSP(entityID string) (SP, bool) {
	for _, sp := range s.SPs {
		if sp.EntityID == entityID {
			return sp, true
		}
	}
	return SP{}, false
}

// AddSP records what a service provider was given, replacing an earlier record of it; it reports
// whether the session changed.
func (s *Session) AddSP(sp SP) bool {
	for i, old := range s.SPs {
		if old.EntityID == sp.EntityID {
			if old == sp {
				return false
			}
			s.SPs[i] = sp
			return true
		}
	}
	s.SPs = append(s.SPs, sp)
	return true
}

// Participant is a protocol that gives the session to apps and must hear when it ends.
type Participant interface {
	// SessionEnded is told of every session a logout or a revocation ends, so the protocol can
	// tell its apps over the back channel. ctx outlives the request that ended the session.
	SessionEnded(ctx context.Context, s *Session)
	// LogoutHop is where a browser whose session s just ended goes before next: the protocol's
	// apps that must hear of it in the browser, or next itself when there are none.
	LogoutHop(ctx context.Context, s *Session, next string) string
}
