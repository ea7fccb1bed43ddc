package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/qiao-gateway/qiao/directory"
)

// AccessTokenInfo is what a live access token of this provider grants.
type AccessTokenInfo struct {
	Enterprise string
	Client     string
	Subject    string // the user's ID, or the client's for client_credentials
	User       bool   // false for a client_credentials token
	Scopes     []string
	Audience   []string // the client, and the resource servers inside qiao its scopes are for
	IssuedAt   time.Time
	Expires    time.Time
}

// ErrInvalidAccessToken: the token is not one this provider issued, or no longer live.
var ErrInvalidAccessToken = errors.New("invalid access token")

// VerifyAccessToken checks an access token this provider issued — opaque or JWT — the way its
// userinfo and introspection endpoints do: known and unexpired (a JWT's signature and issuer
// verified), of a grant not revoked, its client enabled and not disabled since it was issued,
// and its user, if any, still active through the source they logged in with. The token names
// its enterprise. For resource servers inside qiao (the admin API).
func (p *Provider) VerifyAccessToken(ctx context.Context, token string) (*AccessTokenInfo, error) {
	if token == "" || len(token) > 8192 {
		return nil, ErrInvalidAccessToken
	}
	var id, subject, ent string
	if plain, err := p.op.Crypto().Decrypt(token); err == nil {
		// Opaque: the encrypted "token ID:subject"; the stored token names its enterprise.
		tid, sub, ok := strings.Cut(plain, ":")
		if !ok {
			return nil, ErrInvalidAccessToken
		}
		b, err := p.State.Get(ctx, atKey(tid))
		if err != nil {
			return nil, ErrInvalidAccessToken
		}
		var at accessToken
		if json.Unmarshal(b, &at) != nil {
			return nil, ErrInvalidAccessToken
		}
		id, subject, ent = tid, sub, at.Enterprise
	} else {
		// A JWT: its issuer names the enterprise, whose issuer it is then verified against.
		var claims zoidc.AccessTokenClaims
		if _, err := zoidc.ParseToken(token, &claims); err != nil {
			return nil, ErrInvalidAccessToken
		}
		prefix := strings.TrimRight(p.ExternalURL, "/") + "/e/"
		ent = strings.TrimPrefix(claims.Issuer, prefix)
		if !strings.HasPrefix(claims.Issuer, prefix) || !directory.ValidID(ent) {
			return nil, ErrInvalidAccessToken
		}
		ictx := op.ContextWithIssuer(ctx, p.issuer(ent))
		verified, err := op.VerifyAccessToken[*zoidc.AccessTokenClaims](ictx, token, p.op.AccessTokenVerifier(ictx))
		if err != nil {
			return nil, ErrInvalidAccessToken
		}
		id, subject = verified.JWTID, verified.Subject
	}
	if !directory.ValidID(ent) {
		return nil, ErrInvalidAccessToken
	}
	ctx = context.WithValue(ctx, ctxKey{}, &reqInfo{enterprise: ent})
	at, err := p.st.accessTokenByID(ctx, id, subject)
	if err != nil {
		return nil, ErrInvalidAccessToken
	}
	return &AccessTokenInfo{Enterprise: at.Enterprise, Client: at.Client, Subject: at.Subject, User: at.User,
		Scopes: append([]string(nil), at.Scopes...), Audience: at.audience(), IssuedAt: at.IssuedAt, Expires: at.Expires}, nil
}
