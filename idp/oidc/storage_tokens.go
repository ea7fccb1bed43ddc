package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/state"
)

// ---- tokens

func (s *storage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	id, at, b, err := s.newAccessToken(ctx, req)
	if err != nil {
		return "", time.Time{}, err
	}
	if err := s.p.State.Put(ctx, atKey(id), b, s.p.AccessTTL); err != nil {
		return "", time.Time{}, fmt.Errorf("store access token: %w", err)
	}
	return id, at.Expires, nil
}

// newAccessToken makes the record of an access token for req: its ID, the record and its encoding.
func (s *storage) newAccessToken(ctx context.Context, req op.TokenRequest) (string, *accessToken, []byte, error) {
	now := s.p.now()
	at := accessToken{Enterprise: s.ent(ctx), Subject: req.GetSubject(), Scopes: req.GetScopes(), IssuedAt: now, Expires: now.Add(s.p.AccessTTL)}
	switch r := req.(type) {
	case granted:
		g := r.grant()
		at.Client, at.User, at.Grant, at.Source, at.AMR, at.AuthTime = g.Client, true, g.Family, g.Source, g.AMR, g.AuthTime
	case *clientRequest:
		at.Client = r.clientID
		if len(r.audience) > 1 {
			at.Audience = r.audience
		}
	default:
		return "", nil, nil, fmt.Errorf("unexpected token request %T", req)
	}
	b, err := json.Marshal(at)
	if err != nil {
		return "", nil, nil, fmt.Errorf("encode access token: %w", err)
	}
	return newID(18), &at, b, nil
}

// CreateAccessAndRefreshTokens issues a person's tokens. A refresh rotates: the presented token is
// spent and its successor stored atomically (one statement on PostgreSQL); if another request
// spent it first, this is a replay and the whole family goes. Then, in one state round trip, the
// access token is stored and the grant's revocation marker read.
func (s *storage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	now := s.p.now()
	gr, ok := req.(granted)
	if !ok {
		return "", "", time.Time{}, fmt.Errorf("unexpected refresh token request %T", req)
	}
	g := gr.grant()
	rt := &directory.RefreshToken{EnterpriseID: s.ent(ctx), ExpiresAt: now.Add(s.p.RefreshTTL), CreatedAt: now, FamilyID: g.Family,
		ClientID: g.Client, UserID: g.User, Scopes: g.Scopes, AMR: g.AMR, AuthTime: g.AuthTime, SourceID: g.Source, SessionID: g.SID}
	value := newID(32)
	rt.ID = hashToken(value)
	if r, ok := req.(*refreshRequest); ok {
		err := s.p.Store.RotateRefreshToken(ctx, r.rt.ID, now, rt)
		if errors.Is(err, directory.ErrConflict) {
			s.revokeGrant(ctx, r.rt.FamilyID, "refresh token reused")
			return "", "", time.Time{}, zoidc.ErrInvalidGrant().WithDescription("refresh token already used")
		}
		if err != nil {
			return "", "", time.Time{}, fmt.Errorf("rotate refresh token: %w", err)
		}
	} else if err := s.p.Store.CreateRefreshToken(ctx, rt); err != nil {
		return "", "", time.Time{}, fmt.Errorf("store refresh token: %w", err)
	}
	id, at, b, err := s.newAccessToken(ctx, req)
	if err != nil {
		return "", "", time.Time{}, err
	}
	// The marker is read after the refresh token was stored: a concurrent second redemption of the
	// code (or a reuse) that revoked the grant while this one was being made either finds the new
	// refresh token when it revokes the family, or is seen here. An access token stored for a
	// revoked grant is refused by that same marker.
	put, revoked := state.PutOp(atKey(id), b, s.p.AccessTTL), state.Get(revokedKey(rt.FamilyID))
	if err := state.Batch(ctx, s.p.State, put, revoked); err != nil {
		return "", "", time.Time{}, fmt.Errorf("store access token: %w", err)
	}
	if put.Err != nil {
		return "", "", time.Time{}, fmt.Errorf("store access token: %w", put.Err)
	}
	if revoked.Err == nil {
		_, _ = s.p.Store.RevokeRefreshFamily(ctx, rt.FamilyID, now)
		return "", "", time.Time{}, zoidc.ErrInvalidGrant().WithDescription("the grant was revoked")
	}
	return id, value, at.Expires, nil
}

// revokeGrant ends every token of one grant (an authorization code's tokens and its refresh
// family): refresh tokens in the store, access tokens by a marker their checks consult.
func (s *storage) revokeGrant(ctx context.Context, grant, reason string) {
	if grant == "" {
		return
	}
	ctx = context.WithoutCancel(ctx)
	_ = s.p.State.Put(ctx, revokedKey(grant), []byte(reason), s.p.AccessTTL+time.Minute)
	n, err := s.p.Store.RevokeRefreshFamily(ctx, grant, s.p.now())
	if err != nil {
		s.p.Log.Error("revoke grant", "err", err)
	}
	s.p.Log.Warn("grant revoked", "enterprise", s.ent(ctx), "reason", reason, "refresh_tokens", n)
	detail, _ := json.Marshal(map[string]any{"refresh_tokens": n})
	_ = s.p.Store.AddAuditEvent(ctx, &directory.AuditEvent{EnterpriseID: s.ent(ctx), Kind: "oidc.grant_revoked", Actor: "oidc",
		Outcome: "revoked", Reason: reason, Detail: detail})
}

func (s *storage) grantRevoked(ctx context.Context, grant string) bool {
	if grant == "" {
		return false
	}
	_, err := s.p.State.Get(ctx, revokedKey(grant))
	return err == nil
}

func (s *storage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	rt, err := s.refreshToken(ctx, token)
	if err != nil {
		return nil, err
	}
	// Only the client the token was issued to (authenticated before the library asks) may spend it
	// or, by presenting it again, revoke its family.
	if rt.ClientID != info(ctx).authClient {
		return nil, op.ErrInvalidRefreshToken
	}
	if !rt.RotatedAt.IsZero() {
		s.revokeGrant(ctx, rt.FamilyID, "rotated refresh token presented again")
		return nil, op.ErrInvalidRefreshToken
	}
	if err := s.activeUser(ctx, rt.UserID, rt.SourceID); err != nil {
		return nil, op.ErrInvalidRefreshToken
	}
	return &refreshRequest{rt: rt, current: rt.Scopes}, nil
}

// refreshToken finds a refresh token of this enterprise that is neither revoked nor expired
// (rotated ones are returned: the caller decides what reuse means).
func (s *storage) refreshToken(ctx context.Context, token string) (*directory.RefreshToken, error) {
	if token == "" || len(token) > 256 {
		return nil, op.ErrInvalidRefreshToken
	}
	rt, err := s.p.Store.GetRefreshToken(ctx, hashToken(token))
	if err != nil || rt.EnterpriseID != s.ent(ctx) || !rt.RevokedAt.IsZero() || !s.p.now().Before(rt.ExpiresAt) {
		return nil, op.ErrInvalidRefreshToken
	}
	return rt, nil
}

func (s *storage) GetRefreshTokenInfo(ctx context.Context, clientID, token string) (string, string, error) {
	rt, err := s.refreshToken(ctx, token)
	if err != nil || rt.ClientID != clientID {
		return "", "", op.ErrInvalidRefreshToken
	}
	return rt.UserID, rt.ID, nil
}

func (s *storage) RevokeToken(ctx context.Context, tokenOrID, userID, clientID string) *zoidc.Error {
	rt, err := s.p.Store.GetRefreshToken(ctx, tokenOrID) // the library passes a refresh token's ID
	if err != nil && len(tokenOrID) <= 256 {
		rt, err = s.p.Store.GetRefreshToken(ctx, hashToken(tokenOrID)) // or the token itself, hinted as an access token
	}
	if err == nil && rt.EnterpriseID == s.ent(ctx) {
		if rt.ClientID != clientID {
			return zoidc.ErrInvalidClient().WithDescription("the token was issued to another client")
		}
		s.revokeGrant(ctx, rt.FamilyID, "revoked by the client")
		return nil
	}
	b, err := s.p.State.Get(ctx, atKey(tokenOrID))
	if err != nil {
		return nil // RFC 7009: an unknown or expired token is not an error
	}
	var at accessToken
	if json.Unmarshal(b, &at) != nil || at.Enterprise != s.ent(ctx) {
		return nil
	}
	if at.Client != clientID {
		return zoidc.ErrInvalidClient().WithDescription("the token was issued to another client")
	}
	if err := s.p.State.Delete(ctx, atKey(tokenOrID)); err != nil {
		return zoidc.ErrServerError().WithParent(err)
	}
	return nil
}

// accessTokenByID returns a live access token: known, of this enterprise, its grant not revoked,
// its client enabled since it was issued, and its user still active.
func (s *storage) accessTokenByID(ctx context.Context, id, subject string) (*accessToken, error) {
	b, err := s.p.State.Get(ctx, atKey(id))
	if err != nil {
		return nil, errors.New("token unknown or expired")
	}
	var at accessToken
	if err := json.Unmarshal(b, &at); err != nil {
		return nil, errors.New("token unreadable")
	}
	if at.Enterprise != s.ent(ctx) || (subject != "" && at.Subject != subject) || !s.p.now().Before(at.Expires) {
		return nil, errors.New("token not valid here")
	}
	if s.grantRevoked(ctx, at.Grant) {
		return nil, errors.New("token revoked")
	}
	// Its client must still be there and enabled, and not have been disabled since it was issued.
	if _, err := s.client(ctx, at.Client); err != nil || s.clientEndedSince(ctx, at.Client, at.IssuedAt) {
		return nil, errors.New("the token's client is disabled or deleted")
	}
	if at.User {
		if err := s.activeUser(ctx, at.Subject, at.Source); err != nil {
			return nil, err
		}
	}
	return &at, nil
}

// activeUser checks that the person may still use what a login through source granted
// (directory.ActiveThrough): active, and the source still open and still linking them.
// The user read is kept for the request: the claims of the tokens it issues come from it.
func (s *storage) activeUser(ctx context.Context, uid, source string) error {
	u, err := directory.ActiveThrough(ctx, s.p.Store, s.ent(ctx), uid, source)
	if err == nil {
		info(ctx).user = u
	}
	return err
}
