package oidc

import (
	"context"
	"errors"
	"slices"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/keys"
)

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
	resp.Audience = at.audience()
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
	if alg != keys.ES256 && alg != keys.EdDSA {
		alg = keys.RS256
	}
	k, err := s.p.Keys.Signing(alg)
	if err != nil {
		return nil, err
	}
	return signingKey{k}, nil
}

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	var out []op.Key
	for _, k := range s.p.Keys.Published() {
		if slices.Contains(keys.TokenAlgs, k.Alg) {
			out = append(out, publicKey{k})
		}
	}
	return out, nil
}

func (s *storage) Health(ctx context.Context) error { return s.p.Store.Ping(ctx) }
