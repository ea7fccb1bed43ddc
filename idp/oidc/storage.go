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

	"github.com/zitadel/oidc/v3/pkg/op"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/state"
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
	Audience   []string  `json:"aud,omitempty"` // absent: the client alone
	Grant      string    `json:"grant,omitempty"`
	Source     string    `json:"src,omitempty"`
	AMR        []string  `json:"amr,omitempty"`
	AuthTime   time.Time `json:"auth_time,omitzero"`
	IssuedAt   time.Time `json:"iat"`
	Expires    time.Time `json:"exp"`
}

// audience is who the token is for: the client, and any resource server its scopes named.
func (at *accessToken) audience() []string {
	if len(at.Audience) > 0 {
		return append([]string(nil), at.Audience...)
	}
	return []string{at.Client}
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
	info(ctx).ar = ar
	return ar, nil
}

// SaveAuthCode stores the completed authorization request itself under its code, so that the
// exchange reads it in the round trip that reads the code.
func (s *storage) SaveAuthCode(ctx context.Context, id, code string) error {
	ar := info(ctx).ar
	if ar == nil || ar.ID != id {
		var err error
		if ar, err = s.loadAuthRequest(ctx, id); err != nil {
			return fmt.Errorf("save code: %w", err)
		}
	}
	b, err := json.Marshal(ar)
	if err != nil {
		return fmt.Errorf("encode auth request: %w", err)
	}
	if err := s.p.State.Put(ctx, codeKey(s.ent(ctx), code), b, s.p.CodeTTL); err != nil {
		return fmt.Errorf("save code: %w", err)
	}
	return nil
}

// codeRequest decodes the authorization request stored under a code: the request itself, or the
// request's ID, as earlier versions stored it.
func (s *storage) codeRequest(ctx context.Context, b []byte) (*authRequest, error) {
	if len(b) == 0 || b[0] != '{' {
		return s.loadAuthRequest(ctx, string(b))
	}
	var ar authRequest
	if err := json.Unmarshal(b, &ar); err != nil {
		return nil, fmt.Errorf("decode the code's auth request: %w", err)
	}
	if ar.Enterprise != s.ent(ctx) {
		return nil, errors.New("unknown authorization request")
	}
	return &ar, nil
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
	ck, ek := codeKey(ent, code), clientEndedKey(ent, i.authClient)
	// One round trip reads the code's request and the client's ended marker, unless the client's
	// authentication already read them with its failure counters.
	rec, ended := i.codeRead, i.endedRead
	if rec == nil || ended == nil || rec.Key != ck || ended.Key != ek {
		rec, ended = state.Get(ck), state.Get(ek)
		if err := state.Batch(ctx, s.p.State, rec, ended); err != nil {
			return nil, fmt.Errorf("read code: %w", err)
		}
	}
	if errors.Is(rec.Err, state.ErrNotFound) {
		return nil, s.codePresentedAgain(ctx, code, i.authClient, verifier)
	}
	if rec.Err != nil {
		return nil, fmt.Errorf("read code: %w", rec.Err)
	}
	ar, err := s.codeRequest(ctx, rec.Val)
	if err != nil {
		return nil, err
	}
	if ar.ClientID != i.authClient {
		return nil, errors.New("the code was issued to another client")
	}
	if endedBefore(ended.Val, ended.Err, ar.CreatedAt) {
		return nil, errors.New("the client was disabled or deleted after this request")
	}
	if ar.CodeChallenge != "" && !pkceMatches(ar.CodeChallenge, verifier) {
		return nil, errors.New("the code_verifier does not match the code_challenge")
	}
	// One round trip takes the code, leaves its tombstone and deletes the request. Concurrent
	// redemptions all write the same tombstone (it is made of the request); only the one whose
	// take read the code goes on.
	tomb, _ := json.Marshal(redeemedCode{Client: ar.ClientID, Grant: ar.ID, CodeChallenge: ar.CodeChallenge})
	take, put := state.TakeOp(ck), state.PutOp(usedCodeKey(ent, code), tomb, s.p.AccessTTL+s.p.CodeTTL)
	if err := state.Batch(ctx, s.p.State, take, put, state.DeleteOp(arKey(ar.ID))); err != nil {
		return nil, fmt.Errorf("take code: %w", err)
	}
	if errors.Is(take.Err, state.ErrNotFound) {
		return nil, s.codePresentedAgain(ctx, code, i.authClient, verifier) // a concurrent redemption won
	} else if take.Err != nil {
		return nil, fmt.Errorf("take code: %w", take.Err)
	}
	if put.Err != nil {
		return nil, fmt.Errorf("remember redeemed code: %w", put.Err)
	}
	i.arDeleted = ar.ID
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
	if info(ctx).arDeleted == id {
		return nil // deleted with the code it was redeemed by
	}
	return s.p.State.Delete(ctx, arKey(id))
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
