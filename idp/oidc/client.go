package oidc

import (
	"net/url"
	"slices"
	"time"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/qiao-gateway/qiao/directory"
)

// client adapts a directory client to op.Client.
type client struct {
	c        *directory.OIDCClient
	loginURL string
}

var _ op.Client = (*client)(nil)

func (c *client) GetID() string                    { return c.c.ID }
func (c *client) RedirectURIs() []string           { return c.c.RedirectURIs }
func (c *client) PostLogoutRedirectURIs() []string { return c.c.PostLogoutRedirectURIs }

func (c *client) ApplicationType() op.ApplicationType {
	if c.c.Type == directory.ClientNative {
		// RFC 8252: loopback redirects match on any port, custom schemes are allowed.
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}

func (c *client) AuthMethod() zoidc.AuthMethod {
	switch c.c.AuthMethod {
	case "none":
		return zoidc.AuthMethodNone
	case "client_secret_post":
		return zoidc.AuthMethodPost
	case "private_key_jwt":
		return zoidc.AuthMethodPrivateKeyJWT
	}
	return zoidc.AuthMethodBasic
}

func (c *client) ResponseTypes() []zoidc.ResponseType {
	return []zoidc.ResponseType{zoidc.ResponseTypeCode}
}

func (c *client) GrantTypes() []zoidc.GrantType {
	out := make([]zoidc.GrantType, 0, len(c.c.GrantTypes))
	for _, g := range c.c.GrantTypes {
		out = append(out, zoidc.GrantType(g))
	}
	return out
}

func (c *client) LoginURL(id string) string { return c.loginURL + url.QueryEscape(id) }

func (c *client) AccessTokenType() op.AccessTokenType {
	if c.c.AccessTokenFormat == "jwt" {
		return op.AccessTokenTypeJWT
	}
	return op.AccessTokenTypeBearer
}

func (c *client) IDTokenLifetime() time.Duration { return time.Hour }

// DevMode stays off: it would loosen redirect URI checks.
func (c *client) DevMode() bool { return false }

func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IsScopeAllowed admits scopes beyond the standard ones when the client lists them.
func (c *client) IsScopeAllowed(scope string) bool {
	return scope == ScopeGroups || slices.Contains(c.c.Scopes, scope)
}

// IDTokenUserinfoClaimsAssertion puts the profile claims in the ID token too: the SASE client and
// most apps read only the ID token.
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }

func (c *client) ClockSkew() time.Duration { return 0 }
