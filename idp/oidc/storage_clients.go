package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/qiao-gateway/qiao/directory"
)

// ---- clients

func (s *storage) client(ctx context.Context, id string) (*client, error) {
	ent := s.ent(ctx)
	if ent == "" || !directory.ValidID(id) {
		return nil, errors.New("unknown client")
	}
	c, err := s.p.lookupClient(ctx, ent, id)
	if err != nil {
		return nil, err
	}
	return &client{c: c, loginURL: "/e/" + ent + "/authorize/continue?id="}, nil
}

// errClientDisabled: to every endpoint a disabled client is an unknown one.
var errClientDisabled = fmt.Errorf("the client is disabled: %w", directory.ErrNotFound)

// lookupClient reads an enabled client, through the cache. A disabled one is an error and is not
// cached, so enabling it again takes effect at once; disabling it takes effect when the cached
// copy goes — at once in the process that runs the access job (ClientEnded), within the cache's
// TTL in the others.
func (p *Provider) lookupClient(ctx context.Context, ent, id string) (*directory.OIDCClient, error) {
	return p.clientCache.get(ctx, ent+"/"+id, func(ctx context.Context) (*directory.OIDCClient, error) {
		c, err := p.Store.GetClient(ctx, ent, id)
		if err == nil && c.Disabled {
			return nil, errClientDisabled
		}
		return c, err
	})
}

// ClientChanged forgets this process's cached copy of a client an administrator just changed
// (a rotated secret, new redirect URIs), so the change holds here at once; other replicas read it
// again within the cache's TTL (10 s).
func (p *Provider) ClientChanged(ent, id string) {
	p.clientCache.forget(ent + "/" + id)
	p.originCache.forget(ent)
}

func clientEndedKey(ent, id string) string { return "oidc:client_ended:" + ent + ":" + id }

// ClientEnded implements access.ClientEnder: the client was disabled or deleted at `at`. This
// process forgets its cached copy, and every token issued to it until then — opaque or JWT access
// tokens, authorization codes — is refused from now on, on every replica, whatever becomes of the
// client (enabled again, or a new client with its ID). Its refresh tokens are the access job's.
func (p *Provider) ClientEnded(ctx context.Context, ent, id string, at time.Time) error {
	p.clientCache.forget(ent + "/" + id)
	p.originCache.forget(ent)
	// Access tokens and codes live AccessTTL at most; the marker outlives them all.
	if err := p.State.Put(ctx, clientEndedKey(ent, id), []byte(strconv.FormatInt(at.UnixNano(), 10)), p.AccessTTL+time.Minute); err != nil {
		return fmt.Errorf("refuse the tokens of client %s/%s: %w", ent, id, err)
	}
	return nil
}

// clientEndedSince says whether a token or code issued to the client at issued predates the
// client's disabling or deletion.
func (s *storage) clientEndedSince(ctx context.Context, clientID string, issued time.Time) bool {
	b, err := s.p.State.Get(ctx, clientEndedKey(s.ent(ctx), clientID))
	return endedBefore(b, err, issued)
}

// endedBefore reads a client's ended marker (b, or err when there is none) against the time a
// token or code was issued.
func endedBefore(b []byte, err error, issued time.Time) bool {
	if err != nil {
		return false
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	return err != nil || !issued.After(time.Unix(0, n))
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
	aud := []string{id}
	for _, sc := range scopes {
		if r := s.p.ScopeAudiences[sc]; r != "" && !slices.Contains(aud, r) {
			aud = append(aud, r)
		}
	}
	return &clientRequest{clientID: id, scopes: scopes, audience: aud}, nil
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
