package oidc

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/state"
	"github.com/qiao-gateway/qiao/keys"
)

// storage is op.Storage over the directory (clients, users, refresh tokens) and the state store
// (auth requests, codes, access tokens). Every call is scoped to the enterprise of the issuer the
// request came in on: a token of one enterprise is unknown to another's endpoints.
type storage struct{ p *Provider }

var (
	_ op.Storage                        = (*storage)(nil)
	_ op.ClientCredentialsStorage       = (*storage)(nil)
	_ op.CanTerminateSessionFromRequest = (*storage)(nil)
	_ op.CanSetUserinfoFromRequest      = (*storage)(nil)
)

// State store keys. Codes are keyed by enterprise too: a code presented at another enterprise's
// token endpoint is unknown there, and can be neither taken nor used to revoke anything.
func arKey(id string) string              { return "oidc:ar:" + id }
func codeKey(ent, code string) string     { return "oidc:code:" + ent + ":" + hashToken(code) }
func usedCodeKey(ent, code string) string { return "oidc:usedcode:" + ent + ":" + hashToken(code) }
func atKey(id string) string              { return "oidc:at:" + id }
func revokedKey(grant string) string      { return "oidc:revoked:" + grant }

// accessToken is an issued access token (opaque or JWT alike: both carry its ID).
type accessToken struct {
	Enterprise string    `json:"ent"`
	Client     string    `json:"client"`
	Subject    string    `json:"sub"`
	User       bool      `json:"user"` // false for client_credentials
	Scopes     []string  `json:"scopes"`
	Grant      string    `json:"grant,omitempty"`
	Source     string    `json:"src,omitempty"`
	AMR        []string  `json:"amr,omitempty"`
	AuthTime   time.Time `json:"auth_time,omitzero"`
	IssuedAt   time.Time `json:"iat"`
	Expires    time.Time `json:"exp"`
}

func (s *storage) ent(ctx context.Context) string { return info(ctx).enterprise }

// ---- authorization requests and codes

func (s *storage) CreateAuthRequest(ctx context.Context, req *zoidc.AuthRequest, hintSub string) (op.AuthRequest, error) {
	if req.ResponseType != zoidc.ResponseTypeCode {
		e := zoidc.ErrInvalidRequest().WithDescription("only the authorization code flow (response_type=code) is supported")
		e.ErrorType = "unsupported_response_type" // RFC 6749 §4.1.2.1; the library has no constructor for it
		return nil, e
	}
	if req.ResponseMode != "" && req.ResponseMode != zoidc.ResponseModeQuery && req.ResponseMode != zoidc.ResponseModeFormPost {
		return nil, zoidc.ErrInvalidRequest().WithDescription("response_mode must be query or form_post")
	}
	if !slices.Contains(req.Scopes, zoidc.ScopeOpenID) {
		return nil, zoidc.ErrInvalidScope().WithDescription("the openid scope is required")
	}
	// The library would accept plain and a missing method (which means plain); only S256 is safe.
	if req.CodeChallenge != "" && req.CodeChallengeMethod != zoidc.CodeChallengeMethodS256 {
		return nil, zoidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	}
	if req.CodeChallenge == "" && req.CodeChallengeMethod != "" {
		return nil, zoidc.ErrInvalidRequest().WithDescription("code_challenge_method without code_challenge")
	}
	c, err := s.client(ctx, req.ClientID)
	if err != nil {
		return nil, zoidc.ErrInvalidClient()
	}
	if c.AuthMethod() == zoidc.AuthMethodNone && req.CodeChallenge == "" {
		return nil, zoidc.ErrInvalidRequest().WithDescription("PKCE (code_challenge with method S256) is required for this client")
	}
	if !slices.Contains(c.GrantTypes(), zoidc.GrantTypeCode) {
		return nil, zoidc.ErrUnauthorizedClient().WithDescription("this client may not use the authorization code flow")
	}
	ar := &authRequest{
		ID: newID(24), Enterprise: s.ent(ctx), ClientID: req.ClientID, RedirectURI: req.RedirectURI, State: req.State,
		Nonce: req.Nonce, Scopes: req.Scopes, ResponseType: string(req.ResponseType), ResponseMode: string(req.ResponseMode),
		Prompt: req.Prompt, MaxAge: req.MaxAge, LoginHint: req.LoginHint, ACRValues: req.ACRValues, HintSubject: hintSub,
		CodeChallenge: req.CodeChallenge, CodeChallengeMethod: string(req.CodeChallengeMethod), CreatedAt: s.p.now(),
	}
	for _, l := range req.UILocales {
		ar.UILocales = append(ar.UILocales, l.String())
	}
	if r := info(ctx).r; r != nil {
		if h := r.Form.Get("idp_hint"); directory.ValidID(h) {
			ar.IDPHint = h
		}
	}
	if err := s.saveAuthRequest(ctx, ar, s.p.AuthRequestTTL); err != nil {
		return nil, err
	}
	return ar, nil
}

func (s *storage) saveAuthRequest(ctx context.Context, ar *authRequest, ttl time.Duration) error {
	b, err := json.Marshal(ar)
	if err != nil {
		return fmt.Errorf("encode auth request: %w", err)
	}
	if err := s.p.State.Put(ctx, arKey(ar.ID), b, ttl); err != nil {
		return fmt.Errorf("save auth request: %w", err)
	}
	return nil
}

func (s *storage) loadAuthRequest(ctx context.Context, id string) (*authRequest, error) {
	if id == "" || len(id) > 64 {
		return nil, errors.New("unknown authorization request")
	}
	b, err := s.p.State.Get(ctx, arKey(id))
	if err != nil {
		return nil, fmt.Errorf("authorization request %s: %w", id, err)
	}
	var ar authRequest
	if err := json.Unmarshal(b, &ar); err != nil {
		return nil, fmt.Errorf("decode auth request: %w", err)
	}
	if ar.Enterprise != s.ent(ctx) {
		return nil, errors.New("unknown authorization request")
	}
	return &ar, nil
}

func (s *storage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	ar, err := s.loadAuthRequest(ctx, id)
	if err != nil {
		return nil, zoidc.ErrInvalidRequest().WithDescription("the authorization request expired or is unknown; start the sign-in again").WithParent(err)
	}
	return ar, nil
}

func (s *storage) SaveAuthCode(ctx context.Context, id, code string) error {
	if err := s.p.State.Put(ctx, codeKey(s.ent(ctx), code), []byte(id), s.p.CodeTTL); err != nil {
		return fmt.Errorf("save code: %w", err)
	}
	return nil
}

// redeemedCode is the tombstone of a redeemed code: whose it was, and the grant it started.
type redeemedCode struct {
	Client        string `json:"client"`
	Grant         string `json:"grant"`
	CodeChallenge string `json:"cc,omitempty"`
}

// AuthRequestByCode takes the code atomically: of two concurrent redemptions exactly one gets the
// request. A code presented again finds the tombstone and revokes whatever the first redemption
// issued (RFC 6749 §4.1.2).
//
// The library asks for the code before it authenticates the client, so the provider authenticates
// the client first (authenticateClient) and the code is taken, or its grant revoked, only for the
// client it was issued to, with the PKCE verifier that goes with it: whoever merely holds a leaked
// code can neither burn it nor revoke its tokens.
func (s *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	if code == "" || len(code) > 512 {
		return nil, errors.New("malformed code")
	}
	i := info(ctx)
	if i.authClient == "" {
		return nil, errors.New("the client was not authenticated before the code was presented")
	}
	verifier := ""
	if i.r != nil {
		verifier = i.r.PostForm.Get("code_verifier")
	}
	ent := s.ent(ctx)
	id, err := s.p.State.Get(ctx, codeKey(ent, code))
	if errors.Is(err, state.ErrNotFound) {
		return nil, s.codePresentedAgain(ctx, code, i.authClient, verifier)
	}
	if err != nil {
		return nil, fmt.Errorf("read code: %w", err)
	}
	ar, err := s.loadAuthRequest(ctx, string(id))
	if err != nil {
		return nil, err
	}
	if ar.ClientID != i.authClient {
		return nil, errors.New("the code was issued to another client")
	}
	if ar.CodeChallenge != "" && !pkceMatches(ar.CodeChallenge, verifier) {
		return nil, errors.New("the code_verifier does not match the code_challenge")
	}
	if _, err := s.p.State.Take(ctx, codeKey(ent, code)); errors.Is(err, state.ErrNotFound) {
		return nil, s.codePresentedAgain(ctx, code, i.authClient, verifier) // a concurrent redemption won
	} else if err != nil {
		return nil, fmt.Errorf("take code: %w", err)
	}
	tomb, _ := json.Marshal(redeemedCode{Client: ar.ClientID, Grant: ar.ID, CodeChallenge: ar.CodeChallenge})
	if err := s.p.State.Put(ctx, usedCodeKey(ent, code), tomb, s.p.AccessTTL+s.p.CodeTTL); err != nil {
		return nil, fmt.Errorf("remember redeemed code: %w", err)
	}
	if !ar.IsDone {
		return nil, errors.New("the authorization request has no completed login")
	}
	return ar, nil
}

// codePresentedAgain handles a code that is not (or no longer) there: if it was redeemed, and the
// client presenting it again is the one it was issued to (with its PKCE verifier), the grant is
// revoked. It returns the error for the token request.
func (s *storage) codePresentedAgain(ctx context.Context, code, client, verifier string) error {
	b, err := s.p.State.Get(ctx, usedCodeKey(s.ent(ctx), code))
	if err != nil {
		return errors.New("unknown or expired code")
	}
	var t redeemedCode
	if json.Unmarshal(b, &t) != nil || t.Client != client || (t.CodeChallenge != "" && !pkceMatches(t.CodeChallenge, verifier)) {
		return errors.New("unknown or expired code")
	}
	s.revokeGrant(ctx, t.Grant, "authorization code redeemed twice")
	return errors.New("code already redeemed; the tokens it issued are revoked")
}

// pkceMatches checks a code_verifier against an S256 code_challenge (RFC 7636 §4.6); a verifier
// that is not 43–128 unreserved characters matches nothing.
func pkceMatches(challenge, verifier string) bool {
	if !validPKCEValue(verifier) {
		return false
	}
	h := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(h[:])), []byte(challenge)) == 1
}

func (s *storage) DeleteAuthRequest(ctx context.Context, id string) error {
	return s.p.State.Delete(ctx, arKey(id))
}

// ---- tokens

func (s *storage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	now := s.p.now()
	at := accessToken{Enterprise: s.ent(ctx), Subject: req.GetSubject(), Scopes: req.GetScopes(), IssuedAt: now, Expires: now.Add(s.p.AccessTTL)}
	switch r := req.(type) {
	case granted:
		g := r.grant()
		at.Client, at.User, at.Grant, at.Source, at.AMR, at.AuthTime = g.Client, true, g.Family, g.Source, g.AMR, g.AuthTime
	case *clientRequest:
		at.Client = r.clientID
	default:
		return "", time.Time{}, fmt.Errorf("unexpected token request %T", req)
	}
	id := newID(18)
	b, _ := json.Marshal(at)
	if err := s.p.State.Put(ctx, atKey(id), b, s.p.AccessTTL); err != nil {
		return "", time.Time{}, fmt.Errorf("store access token: %w", err)
	}
	return id, at.Expires, nil
}

func (s *storage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	now := s.p.now()
	gr, ok := req.(granted)
	if !ok {
		return "", "", time.Time{}, fmt.Errorf("unexpected refresh token request %T", req)
	}
	if r, ok := req.(*refreshRequest); ok {
		// Rotation: the presented token is spent; if another request spent it first, this is a
		// replay and the whole family goes.
		if err := s.p.Store.RotateRefreshToken(ctx, r.rt.ID, now); err != nil {
			if errors.Is(err, directory.ErrConflict) {
				s.revokeGrant(ctx, r.rt.FamilyID, "refresh token reused")
				return "", "", time.Time{}, zoidc.ErrInvalidGrant().WithDescription("refresh token already used")
			}
			return "", "", time.Time{}, fmt.Errorf("rotate refresh token: %w", err)
		}
	}
	g := gr.grant()
	rt := &directory.RefreshToken{EnterpriseID: s.ent(ctx), ExpiresAt: now.Add(s.p.RefreshTTL), CreatedAt: now, FamilyID: g.Family,
		ClientID: g.Client, UserID: g.User, Scopes: g.Scopes, AMR: g.AMR, AuthTime: g.AuthTime, SourceID: g.Source, SessionID: g.SID}
	value := newID(32)
	rt.ID = hashToken(value)
	if err := s.p.Store.CreateRefreshToken(ctx, rt); err != nil {
		return "", "", time.Time{}, fmt.Errorf("store refresh token: %w", err)
	}
	// A concurrent second redemption of the code may have revoked the grant while this one was
	// being made: honour it.
	if s.grantRevoked(ctx, rt.FamilyID) {
		_, _ = s.p.Store.RevokeRefreshFamily(ctx, rt.FamilyID, now)
		return "", "", time.Time{}, zoidc.ErrInvalidGrant().WithDescription("the grant was revoked")
	}
	id, exp, err := s.CreateAccessToken(ctx, req)
	if err != nil {
		return "", "", time.Time{}, err
	}
	return id, value, exp, nil
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
	if err := s.activeUser(ctx, rt.UserID); err != nil {
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
// and its user still active.
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
	if at.User {
		if err := s.activeUser(ctx, at.Subject); err != nil {
			return nil, err
		}
	}
	return &at, nil
}

func (s *storage) activeUser(ctx context.Context, uid string) error {
	u, err := s.p.Store.GetUser(ctx, s.ent(ctx), uid)
	if err != nil {
		return fmt.Errorf("user %s: %w", uid, err)
	}
	if u.Status != directory.UserActive {
		return fmt.Errorf("user %s is %s", uid, u.Status)
	}
	return nil
}

// ---- sessions

func (s *storage) TerminateSession(ctx context.Context, userID, clientID string) error {
	_, err := s.TerminateSessionFromRequest(ctx, &op.EndSessionRequest{UserID: userID, ClientID: clientID})
	return err
}

// TerminateSessionFromRequest ends the browser's SSO session when it belongs to the user the
// id_token_hint names (or the person confirmed the logout on our page).
func (s *storage) TerminateSessionFromRequest(ctx context.Context, esr *op.EndSessionRequest) (string, error) {
	i := info(ctx)
	redirect := esr.RedirectURI
	if redirect == "" || redirect == s.p.defaultLogoutRedirect {
		redirect = "/e/" + i.enterprise + "/logged-out"
	}
	if i.r == nil || i.w == nil {
		return redirect, nil
	}
	sess, err := s.p.Sessions.Load(i.r)
	if err != nil || sess == nil {
		return redirect, nil
	}
	if sess.Enterprise != i.enterprise || (esr.UserID != "" && esr.UserID != sess.User) {
		return redirect, nil
	}
	if esr.IDTokenHintClaims == nil && !i.confirmed {
		return redirect, nil
	}
	if err := s.p.Sessions.End(i.w, i.r, sess); err != nil {
		return "", fmt.Errorf("end session: %w", err)
	}
	// SAML service providers of the session are logged out in the browser on the way.
	return s.p.Sessions.LogoutHops(ctx, sess, redirect), nil
}

// ---- clients

func (s *storage) client(ctx context.Context, id string) (*client, error) {
	ent := s.ent(ctx)
	if ent == "" || !directory.ValidID(id) {
		return nil, errors.New("unknown client")
	}
	c, err := s.p.clientCache.get(ctx, ent+"/"+id, func(ctx context.Context) (*directory.OIDCClient, error) {
		return s.p.Store.GetClient(ctx, ent, id)
	})
	if err != nil {
		return nil, err
	}
	return &client{c: c, loginURL: "/e/" + ent + "/authorize/continue?id="}, nil
}

func (s *storage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.client(ctx, id)
	if err != nil {
		return nil, zoidc.ErrInvalidClient().WithDescription("unknown client").WithParent(err)
	}
	// The ID token's algorithm is the client's choice; SigningKey reads it from here.
	info(ctx).alg = c.c.IDTokenAlg
	return c, nil
}

func (s *storage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	c, err := s.client(ctx, id)
	if err != nil {
		return zoidc.ErrInvalidClient().WithDescription("unknown client")
	}
	if !secretOK(c.c, secret) {
		return zoidc.ErrInvalidClient().WithDescription("client authentication failed")
	}
	info(ctx).alg = c.c.IDTokenAlg
	return nil
}

func (s *storage) ClientCredentials(ctx context.Context, id, secret string) (op.Client, error) {
	c, err := s.client(ctx, id)
	if err != nil {
		return nil, zoidc.ErrInvalidClient().WithDescription("client authentication failed")
	}
	if c.c.AuthMethod == "private_key_jwt" {
		// Only by its assertion, which the provider checked before the library saw the request.
		if info(ctx).assertedClient != id {
			return nil, zoidc.ErrInvalidClient().WithDescription("this client authenticates with private_key_jwt")
		}
	} else if !secretOK(c.c, secret) {
		return nil, zoidc.ErrInvalidClient().WithDescription("client authentication failed")
	}
	if !slices.Contains(c.GrantTypes(), zoidc.GrantTypeClientCredentials) {
		return nil, zoidc.ErrUnauthorizedClient().WithDescription("this client may not use client_credentials")
	}
	info(ctx).alg = c.c.IDTokenAlg
	return c, nil
}

func (s *storage) ClientCredentialsTokenRequest(ctx context.Context, id string, scopes []string) (op.TokenRequest, error) {
	c, err := s.client(ctx, id)
	if err != nil {
		return nil, zoidc.ErrInvalidClient()
	}
	for _, sc := range scopes {
		if !c.IsScopeAllowed(sc) {
			return nil, zoidc.ErrInvalidScope().WithDescription("scope %q is not allowed for this client", sc)
		}
	}
	return &clientRequest{clientID: id, scopes: scopes}, nil
}

// GetKeyByIDAndClientID finds a key of a private_key_jwt client's registered JWKS.
func (s *storage) GetKeyByIDAndClientID(ctx context.Context, keyID, clientID string) (*jose.JSONWebKey, error) {
	c, err := s.client(ctx, clientID)
	if err != nil || len(c.c.JWKS) == 0 {
		return nil, zoidc.ErrInvalidClient().WithDescription("no keys registered for this client")
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(c.c.JWKS, &set); err != nil {
		return nil, fmt.Errorf("client %s jwks: %w", clientID, err)
	}
	for _, k := range set.Keys {
		if k.KeyID == keyID || (keyID == "" && len(set.Keys) == 1) {
			k := k
			return &k, nil
		}
	}
	return nil, zoidc.ErrInvalidClient().WithDescription("unknown key id")
}

func (s *storage) ValidateJWTProfileScopes(ctx context.Context, userID string, scopes []string) ([]string, error) {
	return nil, zoidc.ErrUnsupportedGrantType()
}

// ---- claims

func (s *storage) SetUserinfoFromScopes(ctx context.Context, ui *zoidc.UserInfo, userID, clientID string, scopes []string) error {
	return s.p.userClaims(ctx, s.ent(ctx), userID, clientID, scopes, ui)
}

// SetUserinfoFromRequest adds what belongs to the login rather than the person: the identity
// source and the session ID.
func (s *storage) SetUserinfoFromRequest(ctx context.Context, ui *zoidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if gr, ok := req.(granted); ok {
		g := gr.grant()
		if g.Source != "" {
			ui.AppendClaims(ClaimSource, g.Source)
		}
		if g.SID != "" {
			ui.AppendClaims("sid", g.SID)
		}
	}
	return nil
}

func (s *storage) SetUserinfoFromToken(ctx context.Context, ui *zoidc.UserInfo, tokenID, subject, origin string) error {
	at, err := s.accessTokenByID(ctx, tokenID, subject)
	if err != nil {
		return err
	}
	if !at.User {
		return errors.New("a client_credentials token has no user")
	}
	if origin != "" {
		c, err := s.client(ctx, at.Client)
		if err != nil || !slices.Contains(c.c.AllowedOrigins, origin) {
			return errors.New("origin not allowed for this client")
		}
	}
	if err := s.p.userClaims(ctx, at.Enterprise, at.Subject, at.Client, at.Scopes, ui); err != nil {
		return err
	}
	if at.Source != "" {
		ui.AppendClaims(ClaimSource, at.Source)
	}
	return nil
}

func (s *storage) SetIntrospectionFromToken(ctx context.Context, resp *zoidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	at, err := s.accessTokenByID(ctx, tokenID, subject)
	if err != nil {
		return err
	}
	// RFC 7662 §4: a client learns about its own tokens; only service clients (the resource
	// servers) may introspect tokens issued to other clients. Anything else reads as inactive.
	if clientID != at.Client {
		caller, err := s.client(ctx, clientID)
		if err != nil || caller.c.Type != directory.ClientService {
			return errors.New("this client may not introspect another client's tokens")
		}
	}
	resp.Active = true
	resp.Scope = at.Scopes
	resp.ClientID = at.Client
	resp.TokenType = "Bearer"
	resp.Subject = at.Subject
	resp.Audience = []string{at.Client}
	resp.Expiration = zoidc.FromTime(at.Expires)
	resp.IssuedAt = zoidc.FromTime(at.IssuedAt)
	resp.Issuer = s.p.issuer(at.Enterprise)
	resp.JWTID = tokenID
	if at.User {
		resp.AuthenticationMethodsReferences = at.AMR
		if !at.AuthTime.IsZero() {
			resp.AuthTime = zoidc.FromTime(at.AuthTime)
		}
		if u, err := s.p.Store.GetUser(ctx, at.Enterprise, at.Subject); err == nil {
			resp.Username = u.Username
		}
	}
	return nil
}

func (s *storage) GetPrivateClaimsFromScopes(ctx context.Context, userID, clientID string, scopes []string) (map[string]any, error) {
	return map[string]any{"enterprise_id": s.ent(ctx)}, nil
}

// ---- keys (from memory: the library asks on every token)

type signingKey struct{ k *keys.Key }

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm {
	return jose.SignatureAlgorithm(k.k.Alg)
}
func (k signingKey) Key() any   { return k.k.Signer }
func (k signingKey) ID() string { return k.k.ID }

type publicKey struct{ k *keys.Key }

func (k publicKey) ID() string                         { return k.k.ID }
func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.SignatureAlgorithm(k.k.Alg) }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return k.k.Public() }

func (s *storage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	alg := info(ctx).alg
	if alg != keys.ES256 {
		alg = keys.RS256
	}
	k, err := s.p.Keys.Signing(alg)
	if err != nil {
		return nil, err
	}
	return signingKey{k}, nil
}

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256, jose.ES256}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	var out []op.Key
	for _, k := range s.p.Keys.Published() {
		if k.Alg == keys.RS256 || k.Alg == keys.ES256 {
			out = append(out, publicKey{k})
		}
	}
	return out, nil
}

func (s *storage) Health(ctx context.Context) error { return s.p.Store.Ping(ctx) }
