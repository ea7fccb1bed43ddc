package adminapi

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/qiao-gateway/qiao/access"
	"github.com/qiao-gateway/qiao/directory"
	idpoidc "github.com/qiao-gateway/qiao/idp/oidc"
	idpsaml "github.com/qiao-gateway/qiao/idp/saml"
)

// ---- OIDC clients

// Client is an OIDC client (relying party) of the enterprise's OpenID Provider, with what its
// owner configures it with. The secret is never shown again after create or rotate.
type Client struct {
	ID                     string            `json:"id"`
	Name                   string            `json:"name"`
	Type                   string            `json:"type" enum:"native,web,service"`
	AuthMethod             string            `json:"auth_method"`
	RedirectURIs           []string          `json:"redirect_uris"`
	PostLogoutRedirectURIs []string          `json:"post_logout_redirect_uris"`
	GrantTypes             []string          `json:"grant_types"`
	Scopes                 []string          `json:"scopes"`
	AccessTokenFormat      string            `json:"access_token_format"`
	IDTokenAlg             string            `json:"id_token_alg"`
	BackchannelLogoutURI   string            `json:"backchannel_logout_uri"`
	AllowedOrigins         []string          `json:"allowed_origins" doc:"CORS origins of browser apps"`
	Claims                 map[string]string `json:"claims" doc:"extra claim name → directory field, released with the profile scope"`
	LaunchURL              string            `json:"launch_url" doc:"where the portal opens the app; empty: not in the portal"`
	HasJWKS                bool              `json:"has_jwks" doc:"public keys are configured for private_key_jwt"`
	Secret                 string            `json:"secret,omitempty" doc:"masked (••••1a2b)"`
	Enabled                bool              `json:"enabled"`
	FileManaged            bool              `json:"file_managed" doc:"declared in the config file: read-only through the API"`
	Issuer                 string            `json:"issuer"`
	DiscoveryURL           string            `json:"discovery_url"`
	CreatedAt              time.Time         `json:"created_at"`
	UpdatedAt              time.Time         `json:"updated_at"`
}

// ClientWithSecret is a client as create and rotate answer it: the only time its secret is shown.
type ClientWithSecret struct {
	Client
	ClientSecret string `json:"client_secret,omitempty" doc:"the generated secret, shown this once"`
}

// ClientCreate is a new OIDC client.
type ClientCreate struct {
	ID                     string            `json:"id" pattern:"^[a-z0-9][a-z0-9_-]{0,62}$"`
	Name                   string            `json:"name,omitempty" maxLength:"100"`
	Type                   string            `json:"type" enum:"native,web,service"`
	AuthMethod             string            `json:"auth_method,omitempty" enum:"none,client_secret_basic,client_secret_post,private_key_jwt" doc:"default: none for native, client_secret_basic otherwise"`
	RedirectURIs           []string          `json:"redirect_uris,omitempty" maxItems:"50" doc:"absolute URIs without a fragment"`
	PostLogoutRedirectURIs []string          `json:"post_logout_redirect_uris,omitempty" maxItems:"50"`
	GrantTypes             []string          `json:"grant_types,omitempty" maxItems:"4" enum:"authorization_code,refresh_token,client_credentials,urn:ietf:params:oauth:grant-type:device_code" doc:"default: client_credentials for service, authorization_code and refresh_token otherwise; the device flow (RFC 8628) by its URN"`
	Scopes                 []string          `json:"scopes,omitempty" maxItems:"50"`
	AccessTokenFormat      string            `json:"access_token_format,omitempty" enum:"opaque,jwt"`
	IDTokenAlg             string            `json:"id_token_alg,omitempty" enum:"RS256,ES256,EdDSA"`
	BackchannelLogoutURI   string            `json:"backchannel_logout_uri,omitempty" maxLength:"2048"`
	AllowedOrigins         []string          `json:"allowed_origins,omitempty" maxItems:"50"`
	Claims                 map[string]string `json:"claims,omitempty" maxProperties:"50"`
	LaunchURL              string            `json:"launch_url,omitempty" maxLength:"2048"`
	JWKS                   string            `json:"jwks,omitempty" maxLength:"32768" doc:"the client's public JSON Web Key Set, for private_key_jwt"`
	Enabled                *bool             `json:"enabled,omitempty" doc:"default true"`
}

// ClientUpdate changes a client: what it names is replaced, what it omits stays.
type ClientUpdate struct {
	Name                   *string            `json:"name,omitempty" maxLength:"100"`
	RedirectURIs           *[]string          `json:"redirect_uris,omitempty" maxItems:"50"`
	PostLogoutRedirectURIs *[]string          `json:"post_logout_redirect_uris,omitempty" maxItems:"50"`
	GrantTypes             *[]string          `json:"grant_types,omitempty" maxItems:"4" enum:"authorization_code,refresh_token,client_credentials,urn:ietf:params:oauth:grant-type:device_code"`
	Scopes                 *[]string          `json:"scopes,omitempty" maxItems:"50"`
	AccessTokenFormat      *string            `json:"access_token_format,omitempty" enum:"opaque,jwt"`
	IDTokenAlg             *string            `json:"id_token_alg,omitempty" enum:"RS256,ES256,EdDSA"`
	BackchannelLogoutURI   *string            `json:"backchannel_logout_uri,omitempty" maxLength:"2048"`
	AllowedOrigins         *[]string          `json:"allowed_origins,omitempty" maxItems:"50"`
	Claims                 *map[string]string `json:"claims,omitempty" maxProperties:"50"`
	LaunchURL              *string            `json:"launch_url,omitempty" maxLength:"2048"`
	JWKS                   *string            `json:"jwks,omitempty" maxLength:"32768"`
}

type ClientPath struct {
	Ent string `path:"ent" maxLength:"63" doc:"enterprise ID"`
	ID  string `path:"id" maxLength:"63" doc:"client ID"`
}

func (a *API) issuerOf(ent string) string { return a.ExternalURL + "/e/" + url.PathEscape(ent) }

func (a *API) clientView(c *directory.OIDCClient) Client {
	v := Client{ID: c.ID, Name: c.Name, Type: string(c.Type), AuthMethod: c.AuthMethod, RedirectURIs: orEmpty(c.RedirectURIs),
		PostLogoutRedirectURIs: orEmpty(c.PostLogoutRedirectURIs), GrantTypes: orEmpty(c.GrantTypes), Scopes: orEmpty(c.Scopes),
		AccessTokenFormat: c.AccessTokenFormat, IDTokenAlg: c.IDTokenAlg, BackchannelLogoutURI: c.BackchannelLogoutURI,
		AllowedOrigins: orEmpty(c.AllowedOrigins), Claims: maps.Clone(c.Claims), LaunchURL: c.LaunchURL, HasJWKS: len(c.JWKS) > 0,
		Enabled: !c.Disabled, FileManaged: c.Managed == directory.ManagedByConfig, Issuer: a.issuerOf(c.EnterpriseID),
		DiscoveryURL: a.issuerOf(c.EnterpriseID) + "/.well-known/openid-configuration", CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
	if v.Claims == nil {
		v.Claims = map[string]string{}
	}
	if c.Secret != "" {
		v.Secret = mask(c.Secret)
	}
	return v
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}

// newSecret is a client secret: 32 random bytes, base64url.
func newSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func absoluteURL(loc, s string, web bool) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Fragment != "" || (web && (u.Scheme != "https" && u.Scheme != "http" || u.Host == "")) {
		what := "an absolute URI without a fragment"
		if web {
			what = "an absolute http(s) URL without a fragment"
		}
		return invalid(loc, fmt.Sprintf("%q must be %s", s, what))
	}
	return nil
}

func directoryField(f string) bool {
	switch {
	case f == "id", f == "username", f == "name", f == "email", f == "mobile", f == "departments", f == "groups", f == "enterprise":
		return true
	}
	return strings.HasPrefix(f, "ext.") && len(f) > 4
}

// reservedClaims are the claims the OpenID Provider sets; a client's extra claims may not name them.
var reservedClaims = []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "auth_time", "nonce", "acr", "amr", "azp", "sid", "at_hash", "c_hash",
	"scope", "client_id", "name", "preferred_username", "updated_at", "email", "email_verified", "phone_number", "enterprise_id", "departments", "groups"}

// checkClient applies the config file's rules for a client to one about to be stored.
func checkClient(c *directory.OIDCClient) error {
	if c.Type != directory.ClientNative && c.AuthMethod == "none" {
		return invalid("body.auth_method", "only a native client authenticates with none")
	}
	if c.AuthMethod == "private_key_jwt" {
		var set struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(c.JWKS, &set); err != nil || len(set.Keys) == 0 {
			return invalid("body.jwks", "a private_key_jwt client needs its public keys as a JSON Web Key Set")
		}
	}
	if c.Type == directory.ClientService && (slices.Contains(c.GrantTypes, "authorization_code") || slices.Contains(c.GrantTypes, "refresh_token") ||
		slices.Contains(c.GrantTypes, idpoidc.GrantDeviceCode)) {
		return invalid("body.grant_types", "a service client has no people's logons: client_credentials only")
	}
	if c.Type != directory.ClientService && slices.Contains(c.GrantTypes, "client_credentials") {
		return invalid("body.grant_types", "client_credentials is for service clients")
	}
	for i, u := range c.RedirectURIs {
		if err := absoluteURL(fmt.Sprintf("body.redirect_uris[%d]", i), u, false); err != nil {
			return err
		}
	}
	for i, u := range c.PostLogoutRedirectURIs {
		if err := absoluteURL(fmt.Sprintf("body.post_logout_redirect_uris[%d]", i), u, false); err != nil {
			return err
		}
	}
	if c.BackchannelLogoutURI != "" {
		if err := absoluteURL("body.backchannel_logout_uri", c.BackchannelLogoutURI, true); err != nil {
			return err
		}
	}
	if c.LaunchURL != "" {
		if err := absoluteURL("body.launch_url", c.LaunchURL, true); err != nil {
			return err
		}
	}
	for i, o := range c.AllowedOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return invalid(fmt.Sprintf("body.allowed_origins[%d]", i), fmt.Sprintf("%q must be an origin: scheme://host[:port]", o))
		}
		c.AllowedOrigins[i] = u.Scheme + "://" + u.Host
	}
	for i, s := range c.Scopes {
		if s == "" || len(s) > 128 || strings.ContainsAny(s, " \t\r\n\"\\") {
			return invalid(fmt.Sprintf("body.scopes[%d]", i), "a scope is 1-128 characters without spaces or quotes")
		}
	}
	for name, f := range c.Claims {
		if name == "" || len(name) > 64 || strings.ContainsAny(name, " \t\r\n\"") {
			return invalid("body.claims", fmt.Sprintf("%q is not a claim name", name))
		}
		if slices.Contains(reservedClaims, name) {
			return invalid("body.claims."+name, fmt.Sprintf("%q is a claim the OpenID Provider sets itself", name))
		}
		// The OpenID Provider releases these under the profile scope from User.Field: departments
		// and groups come with the groups scope instead.
		if !directoryField(f) || f == "departments" || f == "groups" {
			return invalid("body.claims."+name, fmt.Sprintf("%q must be id, username, name, email, mobile, enterprise or ext.NAME", f))
		}
	}
	return nil
}

// clientOf reads a client of ent (404 when there is none).
func (a *API) clientOf(ctx context.Context, st directory.Store, ent, id string) (*directory.OIDCClient, error) {
	c, err := st.GetClient(ctx, ent, id)
	if errors.Is(err, directory.ErrNotFound) {
		return nil, huma.Error404NotFound(fmt.Sprintf("enterprise %s has no OIDC client %q", ent, id))
	}
	if err != nil {
		return nil, storeError(err)
	}
	return c, nil
}

func (a *API) clientFileManaged(c *directory.OIDCClient) error {
	if c.Managed == directory.ManagedByConfig {
		return huma.Error409Conflict(fmt.Sprintf("OIDC client %s is declared in %s (file-managed): change it there and run qiao apply", c.ID, a.ConfigFile))
	}
	return nil
}

func cloneClient(c *directory.OIDCClient) *directory.OIDCClient {
	d := *c
	d.RedirectURIs, d.PostLogoutRedirectURIs = slices.Clone(c.RedirectURIs), slices.Clone(c.PostLogoutRedirectURIs)
	d.GrantTypes, d.Scopes, d.AllowedOrigins = slices.Clone(c.GrantTypes), slices.Clone(c.Scopes), slices.Clone(c.AllowedOrigins)
	d.Claims, d.JWKS = maps.Clone(c.Claims), slices.Clone(c.JWKS)
	return &d
}

// changeClient runs fn on the stored client in a transaction, refusing a file-managed one, and
// audits the change as kind.
func (a *API) changeClient(ctx context.Context, ent, id, kind string, fn func(tx directory.Store, cur *directory.OIDCClient) (*directory.OIDCClient, bool, error)) (*directory.OIDCClient, error) {
	p, err := a.authorize(ctx, ent, directory.RoleAdmin)
	if err != nil {
		return nil, err
	}
	unlock, err := a.lock(ctx, "client "+ent+"/"+id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out *directory.OIDCClient
	err = a.Store.InTx(ctx, func(tx directory.Store) error {
		cur, err := a.clientOf(ctx, tx, ent, id)
		if err != nil {
			return err
		}
		if err := a.clientFileManaged(cur); err != nil {
			return err
		}
		next, changed, err := fn(tx, cur)
		if err != nil {
			return err
		}
		if out, err = tx.GetClient(ctx, ent, id); err != nil {
			if next == nil && errors.Is(err, directory.ErrNotFound) {
				out = cur
				return a.audit(ctx, tx, p, ent, kind, "", id, a.clientView(cur), nil, nil)
			}
			return storeError(err)
		}
		if !changed {
			return nil
		}
		return a.audit(ctx, tx, p, ent, kind, "", id, a.clientView(cur), a.clientView(out), nil)
	})
	if err == nil && a.ClientChanged != nil {
		a.ClientChanged(ent, id)
	}
	return out, err
}

func (a *API) registerApps() {
	tags := []string{"apps"}
	type clientList struct {
		Body struct {
			Items []Client `json:"items"`
		}
	}
	huma.Register(a.huma, huma.Operation{OperationID: "list-clients", Method: http.MethodGet, Path: "/enterprises/{ent}/clients",
		Summary: "List the OIDC clients of the enterprise's OpenID Provider", Tags: tags, Errors: errs()},
		func(ctx context.Context, in *EntPath) (*clientList, error) {
			if _, err := a.authorize(ctx, in.Ent, directory.RoleAuditor); err != nil {
				return nil, err
			}
			cs, err := a.Store.ListClients(ctx, in.Ent)
			if err != nil {
				return nil, storeError(err)
			}
			out := &clientList{}
			out.Body.Items = []Client{}
			for _, c := range cs {
				out.Body.Items = append(out.Body.Items, a.clientView(c))
			}
			return out, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "get-client", Method: http.MethodGet, Path: "/enterprises/{ent}/clients/{id}",
		Summary: "Get an OIDC client (secret masked)", Tags: tags, Errors: errs()},
		func(ctx context.Context, in *ClientPath) (*struct{ Body Client }, error) {
			if _, err := a.authorize(ctx, in.Ent, directory.RoleAuditor); err != nil {
				return nil, err
			}
			c, err := a.clientOf(ctx, a.Store, in.Ent, in.ID)
			if err != nil {
				return nil, err
			}
			return &struct{ Body Client }{a.clientView(c)}, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "create-client", Method: http.MethodPost, Path: "/enterprises/{ent}/clients",
		Summary: "Create an OIDC client", DefaultStatus: http.StatusCreated, MaxBodyBytes: MaxBody, Tags: tags,
		Description: "A web or service client (other than private_key_jwt) gets a generated secret, answered in client_secret this once; it is never shown again.",
		Errors:      errs(http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)},
		func(ctx context.Context, in *struct {
			EntPath
			Body ClientCreate
		}) (*struct {
			Location string `header:"Location"`
			Body     ClientWithSecret
		}, error) {
			p, err := a.authorize(ctx, in.Ent, directory.RoleAdmin)
			if err != nil {
				return nil, err
			}
			b := in.Body
			c := &directory.OIDCClient{EnterpriseID: in.Ent, ID: b.ID, Name: b.Name, Type: directory.ClientType(b.Type), AuthMethod: b.AuthMethod,
				RedirectURIs: b.RedirectURIs, PostLogoutRedirectURIs: b.PostLogoutRedirectURIs, GrantTypes: b.GrantTypes, Scopes: b.Scopes,
				AccessTokenFormat: b.AccessTokenFormat, IDTokenAlg: b.IDTokenAlg, BackchannelLogoutURI: b.BackchannelLogoutURI,
				AllowedOrigins: b.AllowedOrigins, Claims: b.Claims, LaunchURL: b.LaunchURL, Disabled: b.Enabled != nil && !*b.Enabled}
			if b.JWKS != "" {
				c.JWKS = json.RawMessage(b.JWKS)
			}
			if c.Name == "" {
				c.Name = c.ID
			}
			if c.AuthMethod == "" {
				c.AuthMethod = "client_secret_basic"
				if c.Type == directory.ClientNative {
					c.AuthMethod = "none"
				}
			}
			if len(c.GrantTypes) == 0 {
				c.GrantTypes = []string{"authorization_code", "refresh_token"}
				if c.Type == directory.ClientService {
					c.GrantTypes = []string{"client_credentials"}
				}
			}
			if c.AccessTokenFormat == "" {
				c.AccessTokenFormat = "opaque"
			}
			if c.IDTokenAlg == "" {
				c.IDTokenAlg = "RS256"
			}
			if err := checkClient(c); err != nil {
				return nil, err
			}
			secret := ""
			if c.AuthMethod == "client_secret_basic" || c.AuthMethod == "client_secret_post" {
				if secret, err = newSecret(); err != nil {
					return nil, huma.Error500InternalServerError("no randomness for the secret")
				}
				c.Secret = secret
			}
			unlock, err := a.lock(ctx, "client "+in.Ent+"/"+b.ID)
			if err != nil {
				return nil, err
			}
			defer unlock()
			err = a.Store.InTx(ctx, func(tx directory.Store) error {
				if _, err := tx.GetClient(ctx, in.Ent, b.ID); err == nil {
					return huma.Error409Conflict(fmt.Sprintf("enterprise %s already has an OIDC client %q", in.Ent, b.ID))
				} else if !errors.Is(err, directory.ErrNotFound) {
					return storeError(err)
				}
				if err := tx.PutClient(ctx, c); err != nil {
					return storeError(err)
				}
				return a.audit(ctx, tx, p, in.Ent, "admin.client.create", "", c.ID, nil, a.clientView(c), nil)
			})
			if err != nil {
				return nil, err
			}
			return &struct {
				Location string `header:"Location"`
				Body     ClientWithSecret
			}{Location: Prefix + "/enterprises/" + in.Ent + "/clients/" + c.ID, Body: ClientWithSecret{Client: a.clientView(c), ClientSecret: secret}}, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "update-client", Method: http.MethodPatch, Path: "/enterprises/{ent}/clients/{id}",
		Summary: "Change an OIDC client", MaxBodyBytes: MaxBody, Tags: tags,
		Description: "What the body names is replaced; what it omits stays. A file-managed client is 409.",
		Errors:      errs(http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)},
		func(ctx context.Context, in *struct {
			ClientPath
			Body ClientUpdate
		}) (*struct{ Body Client }, error) {
			out, err := a.changeClient(ctx, in.Ent, in.ID, "admin.client.update", func(tx directory.Store, cur *directory.OIDCClient) (*directory.OIDCClient, bool, error) {
				c, b := cloneClient(cur), in.Body
				setStr := func(dst *string, v *string) {
					if v != nil {
						*dst = *v
					}
				}
				setList := func(dst *[]string, v *[]string) {
					if v != nil {
						*dst = slices.Clone(*v)
					}
				}
				setStr(&c.Name, b.Name)
				setList(&c.RedirectURIs, b.RedirectURIs)
				setList(&c.PostLogoutRedirectURIs, b.PostLogoutRedirectURIs)
				setList(&c.GrantTypes, b.GrantTypes)
				setList(&c.Scopes, b.Scopes)
				setStr(&c.AccessTokenFormat, b.AccessTokenFormat)
				setStr(&c.IDTokenAlg, b.IDTokenAlg)
				setStr(&c.BackchannelLogoutURI, b.BackchannelLogoutURI)
				setList(&c.AllowedOrigins, b.AllowedOrigins)
				setStr(&c.LaunchURL, b.LaunchURL)
				if b.Claims != nil {
					c.Claims = maps.Clone(*b.Claims)
				}
				if b.JWKS != nil {
					c.JWKS = json.RawMessage(*b.JWKS)
					if *b.JWKS == "" {
						c.JWKS = nil
					}
				}
				if c.Name == "" {
					c.Name = c.ID
				}
				if len(c.GrantTypes) == 0 {
					return nil, false, invalid("body.grant_types", "a client needs at least one grant type")
				}
				if err := checkClient(c); err != nil {
					return nil, false, err
				}
				if err := tx.PutClient(ctx, c); err != nil {
					return nil, false, storeError(err)
				}
				return c, true, nil
			})
			if err != nil {
				return nil, err
			}
			return &struct{ Body Client }{a.clientView(out)}, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "rotate-client-secret", Method: http.MethodPost, Path: "/enterprises/{ent}/clients/{id}/secret",
		Summary: "Rotate an OIDC client's secret", Tags: tags,
		Description: "A new secret is generated and answered in client_secret this once; the old one stops working at once on this replica, within 10 seconds on others (their client cache).",
		Errors:      errs(http.StatusConflict)},
		func(ctx context.Context, in *ClientPath) (*struct{ Body ClientWithSecret }, error) {
			secret := ""
			out, err := a.changeClient(ctx, in.Ent, in.ID, "admin.client.rotate_secret", func(tx directory.Store, cur *directory.OIDCClient) (*directory.OIDCClient, bool, error) {
				if cur.AuthMethod != "client_secret_basic" && cur.AuthMethod != "client_secret_post" {
					return nil, false, huma.Error409Conflict(fmt.Sprintf("client %s authenticates with %s: it has no secret", cur.ID, cur.AuthMethod))
				}
				c := cloneClient(cur)
				var err error
				if secret, err = newSecret(); err != nil {
					return nil, false, huma.Error500InternalServerError("no randomness for the secret")
				}
				c.Secret = secret
				if err := tx.PutClient(ctx, c); err != nil {
					return nil, false, storeError(err)
				}
				return c, true, nil
			})
			if err != nil {
				return nil, err
			}
			return &struct{ Body ClientWithSecret }{ClientWithSecret{Client: a.clientView(out), ClientSecret: secret}}, nil
		})

	for _, enable := range []bool{true, false} {
		verb, summary := "disable", "Disable an OIDC client: its requests are refused and the job revoking its tokens is queued"
		if enable {
			verb, summary = "enable", "Enable an OIDC client again (tokens revoked stay revoked)"
		}
		huma.Register(a.huma, huma.Operation{OperationID: verb + "-client", Method: http.MethodPost, Path: "/enterprises/{ent}/clients/{id}/" + verb,
			Summary: summary, Tags: tags, Errors: errs(http.StatusConflict)},
			func(ctx context.Context, in *ClientPath) (*struct{ Body Client }, error) {
				changed := false
				out, err := a.changeClient(ctx, in.Ent, in.ID, "admin.client."+verb, func(tx directory.Store, cur *directory.OIDCClient) (*directory.OIDCClient, bool, error) {
					p := principalOf(ctx)
					var err error
					changed, err = access.SetClientEnabled(ctx, tx, in.Ent, in.ID, enable, p.actor(), verb+"d through the admin API")
					if err != nil {
						return nil, false, storeError(err)
					}
					return cur, changed, nil
				})
				if err != nil {
					return nil, err
				}
				if changed && !enable {
					a.notifyAccess()
				}
				return &struct{ Body Client }{a.clientView(out)}, nil
			})
	}

	huma.Register(a.huma, huma.Operation{OperationID: "delete-client", Method: http.MethodDelete, Path: "/enterprises/{ent}/clients/{id}",
		Summary: "Delete an OIDC client: its refresh tokens are revoked with it and its access tokens refused", Tags: tags,
		DefaultStatus: http.StatusNoContent, Errors: errs(http.StatusConflict)},
		func(ctx context.Context, in *ClientPath) (*struct{}, error) {
			_, err := a.changeClient(ctx, in.Ent, in.ID, "admin.client.delete", func(tx directory.Store, cur *directory.OIDCClient) (*directory.OIDCClient, bool, error) {
				if _, err := access.DeleteClientTx(ctx, tx, in.Ent, in.ID, principalOf(ctx).actor(), "deleted through the admin API"); err != nil {
					return nil, false, storeError(err)
				}
				return nil, true, nil
			})
			if err != nil {
				return nil, err
			}
			a.notifyAccess()
			return nil, nil
		})

	a.registerServiceProviders()
}

// ---- SAML service providers

// ServiceProvider is a SAML service provider of the enterprise's IdP, with the IdP's values its
// owner configures it with.
type ServiceProvider struct {
	ID            string            `json:"id" doc:"the entity ID, base64url: the {id} of its path"`
	EntityID      string            `json:"entity_id"`
	Name          string            `json:"name"`
	MetadataURL   string            `json:"metadata_url,omitempty" doc:"fetched when given, on first use, and hourly"`
	MetadataFetch *MetadataFetch    `json:"metadata_fetch,omitempty" doc:"with metadata_url: how its last fetch went"`
	ACS           []string          `json:"acs,omitempty" doc:"assertion consumer services, from inline metadata"`
	Encrypted     bool              `json:"encrypted" doc:"the metadata has an encryption key: assertions are encrypted"`
	SignsRequests bool              `json:"signs_requests"`
	Problem       string            `json:"problem,omitempty" doc:"why the inline metadata cannot be used"`
	NameIDFormat  string            `json:"nameid_format" enum:"persistent,emailAddress,unspecified,transient"`
	Attributes    map[string]string `json:"attributes" doc:"SAML attribute name → directory field"`
	SignResponse  bool              `json:"sign_response"`
	SignAssertion bool              `json:"sign_assertion"`
	Enabled       bool              `json:"enabled"`
	FileManaged   bool              `json:"file_managed"`
	IdPMetadata   string            `json:"idp_metadata_url" doc:"the IdP's entity ID and metadata URL"`
	IdPSSO        string            `json:"idp_sso_url"`
	IdPSLO        string            `json:"idp_slo_url"`
	LaunchURL     string            `json:"launch_url" doc:"IdP-initiated logon into the SP"`
	CreatedAt     time.Time         `json:"created_at"`
	UpdatedAt     time.Time         `json:"updated_at"`
}

// SPCreate is a new SAML service provider: its metadata inline or at a URL.
type SPCreate struct {
	EntityID      string            `json:"entity_id" minLength:"1" maxLength:"1024"`
	Name          string            `json:"name,omitempty" maxLength:"100"`
	Metadata      string            `json:"metadata,omitempty" maxLength:"200000" doc:"the SP's metadata XML"`
	MetadataURL   string            `json:"metadata_url,omitempty" maxLength:"2048" doc:"or where to fetch it"`
	NameIDFormat  string            `json:"nameid_format,omitempty" enum:"persistent,emailAddress,unspecified,transient" doc:"default persistent"`
	Attributes    map[string]string `json:"attributes,omitempty" maxProperties:"50"`
	SignResponse  *bool             `json:"sign_response,omitempty" doc:"default true"`
	SignAssertion *bool             `json:"sign_assertion,omitempty" doc:"default true"`
	Enabled       *bool             `json:"enabled,omitempty" doc:"default true"`
}

// SPUpdate changes a service provider: what it names is replaced, what it omits stays.
type SPUpdate struct {
	Name          *string            `json:"name,omitempty" maxLength:"100"`
	Metadata      *string            `json:"metadata,omitempty" maxLength:"200000" doc:"replaces a metadata URL"`
	MetadataURL   *string            `json:"metadata_url,omitempty" maxLength:"2048" doc:"replaces inline metadata"`
	NameIDFormat  *string            `json:"nameid_format,omitempty" enum:"persistent,emailAddress,unspecified,transient"`
	Attributes    *map[string]string `json:"attributes,omitempty" maxProperties:"50"`
	SignResponse  *bool              `json:"sign_response,omitempty"`
	SignAssertion *bool              `json:"sign_assertion,omitempty"`
}

type SPPath struct {
	Ent string `path:"ent" maxLength:"63" doc:"enterprise ID"`
	ID  string `path:"id" maxLength:"1400" doc:"the SP's id: its entity ID, base64url without padding"`
}

// SPBody is the largest SP write (inline metadata).
const SPBody = 256 << 10

// SPID is the path ID of an entity ID.
func SPID(entityID string) string { return base64.RawURLEncoding.EncodeToString([]byte(entityID)) }

func (a *API) spView(sp *directory.ServiceProvider) ServiceProvider {
	base := a.ExternalURL + "/e/" + url.PathEscape(sp.EnterpriseID) + "/saml"
	v := ServiceProvider{ID: SPID(sp.EntityID), EntityID: sp.EntityID, Name: sp.Name, MetadataURL: sp.MetadataURL, NameIDFormat: sp.NameIDFormat,
		Attributes: maps.Clone(sp.Attributes), SignResponse: sp.SignResponse, SignAssertion: sp.SignAssertion, Enabled: !sp.Disabled,
		FileManaged: sp.Managed == directory.ManagedByConfig, IdPMetadata: base + "/metadata", IdPSSO: base + "/sso", IdPSLO: base + "/slo",
		LaunchURL: base + "/launch?sp=" + url.QueryEscape(sp.EntityID), CreatedAt: sp.CreatedAt, UpdatedAt: sp.UpdatedAt}
	if v.Attributes == nil {
		v.Attributes = map[string]string{}
	}
	if sp.MetadataXML != "" {
		if sum, err := idpsaml.Summarize([]byte(sp.MetadataXML)); err != nil {
			v.Problem = err.Error()
		} else {
			v.ACS, v.Encrypted, v.SignsRequests = sum.ACS, sum.Encrypted, sum.SignsRequests
		}
	}
	return v
}

// checkSP applies the config file's rules for a service provider.
func checkSP(sp *directory.ServiceProvider) error {
	if (sp.MetadataXML == "") == (sp.MetadataURL == "") {
		return invalid("body.metadata", "give exactly one of metadata or metadata_url")
	}
	if sp.MetadataURL != "" {
		if u, err := url.Parse(sp.MetadataURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return invalid("body.metadata_url", fmt.Sprintf("%q must be an http(s) URL", sp.MetadataURL))
		}
	}
	if sp.MetadataXML != "" {
		md, err := idpsaml.ParseMetadata([]byte(sp.MetadataXML))
		if err != nil {
			return invalid("body.metadata", err.Error())
		}
		if md.EntityID != sp.EntityID {
			return invalid("body.metadata", fmt.Sprintf("the metadata describes %q, not entity_id %q", md.EntityID, sp.EntityID))
		}
		if _, err := idpsaml.Summarize([]byte(sp.MetadataXML)); err != nil {
			return invalid("body.metadata", err.Error())
		}
	}
	for name, f := range sp.Attributes {
		if name == "" || len(name) > 256 {
			return invalid("body.attributes", fmt.Sprintf("%q is not an attribute name", name))
		}
		if !directoryField(f) {
			return invalid("body.attributes."+name, fmt.Sprintf("%q must be id, username, name, email, mobile, departments, groups, enterprise or ext.NAME", f))
		}
	}
	return nil
}

// spOf reads a service provider by its path ID (404 when there is none).
func (a *API) spOf(ctx context.Context, st directory.Store, ent, id string) (*directory.ServiceProvider, error) {
	eid, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(eid) == 0 {
		return nil, huma.Error404NotFound(fmt.Sprintf("enterprise %s has no service provider %q (the id is its entity ID, base64url)", ent, id))
	}
	sp, err := st.GetServiceProvider(ctx, ent, string(eid))
	if errors.Is(err, directory.ErrNotFound) {
		return nil, huma.Error404NotFound(fmt.Sprintf("enterprise %s has no service provider %q", ent, string(eid)))
	}
	if err != nil {
		return nil, storeError(err)
	}
	return sp, nil
}

// changeSP runs fn on the stored SP in a transaction, refusing a file-managed one, and audits.
func (a *API) changeSP(ctx context.Context, ent, id, kind string, fn func(tx directory.Store, cur *directory.ServiceProvider) (deleted, changed bool, err error)) (*directory.ServiceProvider, error) {
	p, err := a.authorize(ctx, ent, directory.RoleAdmin)
	if err != nil {
		return nil, err
	}
	unlock, err := a.lock(ctx, "sp "+ent+"/"+id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out *directory.ServiceProvider
	err = a.Store.InTx(ctx, func(tx directory.Store) error {
		cur, err := a.spOf(ctx, tx, ent, id)
		if err != nil {
			return err
		}
		if cur.Managed == directory.ManagedByConfig {
			return huma.Error409Conflict(fmt.Sprintf("service provider %s is declared in %s (file-managed): change it there and run qiao apply", cur.EntityID, a.ConfigFile))
		}
		deleted, changed, err := fn(tx, cur)
		if err != nil {
			return err
		}
		if deleted {
			out = cur
			return a.audit(ctx, tx, p, ent, kind, "", cur.EntityID, a.spView(cur), nil, nil)
		}
		if out, err = tx.GetServiceProvider(ctx, ent, cur.EntityID); err != nil {
			return storeError(err)
		}
		if !changed {
			return nil
		}
		return a.audit(ctx, tx, p, ent, kind, "", cur.EntityID, a.spView(cur), a.spView(out), nil)
	})
	return out, err
}

func (a *API) registerServiceProviders() {
	tags := []string{"apps"}
	type spList struct {
		Body struct {
			Items []ServiceProvider `json:"items"`
		}
	}
	huma.Register(a.huma, huma.Operation{OperationID: "list-service-providers", Method: http.MethodGet, Path: "/enterprises/{ent}/service-providers",
		Summary: "List the SAML service providers of the enterprise's IdP", Tags: tags, Errors: errs()},
		func(ctx context.Context, in *EntPath) (*spList, error) {
			if _, err := a.authorize(ctx, in.Ent, directory.RoleAuditor); err != nil {
				return nil, err
			}
			sps, err := a.Store.ListServiceProviders(ctx, in.Ent)
			if err != nil {
				return nil, storeError(err)
			}
			out := &spList{}
			out.Body.Items = []ServiceProvider{}
			for _, sp := range sps {
				out.Body.Items = append(out.Body.Items, a.withMetadata(ctx, sp, a.spView(sp), false))
			}
			return out, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "get-service-provider", Method: http.MethodGet, Path: "/enterprises/{ent}/service-providers/{id}",
		Summary: "Get a SAML service provider", Tags: tags, Errors: errs()},
		func(ctx context.Context, in *SPPath) (*struct{ Body ServiceProvider }, error) {
			if _, err := a.authorize(ctx, in.Ent, directory.RoleAuditor); err != nil {
				return nil, err
			}
			sp, err := a.spOf(ctx, a.Store, in.Ent, in.ID)
			if err != nil {
				return nil, err
			}
			return &struct{ Body ServiceProvider }{a.withMetadata(ctx, sp, a.spView(sp), false)}, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "create-service-provider", Method: http.MethodPost, Path: "/enterprises/{ent}/service-providers",
		Summary: "Create a SAML service provider", DefaultStatus: http.StatusCreated, MaxBodyBytes: SPBody, Tags: tags,
		Description: "Exactly one of metadata (inline XML, checked now: its entity ID must be entity_id) or metadata_url (fetched now: metadata_fetch says how it went; a failure does not refuse the SP).",
		Errors:      errs(http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)},
		func(ctx context.Context, in *struct {
			EntPath
			Body SPCreate
		}) (*struct {
			Location string `header:"Location"`
			Body     ServiceProvider
		}, error) {
			p, err := a.authorize(ctx, in.Ent, directory.RoleAdmin)
			if err != nil {
				return nil, err
			}
			b := in.Body
			sp := &directory.ServiceProvider{EnterpriseID: in.Ent, EntityID: strings.TrimSpace(b.EntityID), Name: b.Name, MetadataXML: b.Metadata,
				MetadataURL: b.MetadataURL, NameIDFormat: b.NameIDFormat, Attributes: b.Attributes, SignResponse: b.SignResponse == nil || *b.SignResponse,
				SignAssertion: b.SignAssertion == nil || *b.SignAssertion, Disabled: b.Enabled != nil && !*b.Enabled}
			if sp.EntityID == "" {
				return nil, invalid("body.entity_id", "required: the SP's entity ID, as its metadata says")
			}
			if sp.NameIDFormat == "" {
				sp.NameIDFormat = "persistent"
			}
			if sp.Name == "" {
				sp.Name = sp.EntityID
			}
			if err := checkSP(sp); err != nil {
				return nil, err
			}
			unlock, err := a.lock(ctx, "sp "+in.Ent+"/"+SPID(sp.EntityID))
			if err != nil {
				return nil, err
			}
			defer unlock()
			err = a.Store.InTx(ctx, func(tx directory.Store) error {
				if _, err := tx.GetServiceProvider(ctx, in.Ent, sp.EntityID); err == nil {
					return huma.Error409Conflict(fmt.Sprintf("enterprise %s already has a service provider %q", in.Ent, sp.EntityID))
				} else if !errors.Is(err, directory.ErrNotFound) {
					return storeError(err)
				}
				if err := tx.PutServiceProvider(ctx, sp); err != nil {
					return storeError(err)
				}
				return a.audit(ctx, tx, p, in.Ent, "admin.sp.create", "", sp.EntityID, nil, a.spView(sp), nil)
			})
			if err != nil {
				return nil, err
			}
			return &struct {
				Location string `header:"Location"`
				Body     ServiceProvider
			}{Prefix + "/enterprises/" + in.Ent + "/service-providers/" + SPID(sp.EntityID), a.withMetadata(ctx, sp, a.spView(sp), true)}, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "update-service-provider", Method: http.MethodPatch, Path: "/enterprises/{ent}/service-providers/{id}",
		Summary: "Change a SAML service provider", MaxBodyBytes: SPBody, Tags: tags,
		Description: "What the body names is replaced; what it omits stays. Inline metadata replaces a URL and the reverse. A file-managed SP is 409.",
		Errors:      errs(http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)},
		func(ctx context.Context, in *struct {
			SPPath
			Body SPUpdate
		}) (*struct{ Body ServiceProvider }, error) {
			out, err := a.changeSP(ctx, in.Ent, in.ID, "admin.sp.update", func(tx directory.Store, cur *directory.ServiceProvider) (bool, bool, error) {
				sp := *cur
				sp.Attributes = maps.Clone(cur.Attributes)
				b := in.Body
				if b.Name != nil {
					sp.Name = *b.Name
				}
				if b.Metadata != nil && b.MetadataURL != nil && *b.Metadata != "" && *b.MetadataURL != "" {
					return false, false, invalid("body.metadata", "give exactly one of metadata or metadata_url")
				}
				if b.Metadata != nil && *b.Metadata != "" {
					sp.MetadataXML, sp.MetadataURL = *b.Metadata, ""
				}
				if b.MetadataURL != nil && *b.MetadataURL != "" {
					sp.MetadataXML, sp.MetadataURL = "", *b.MetadataURL
				}
				if b.NameIDFormat != nil {
					sp.NameIDFormat = *b.NameIDFormat
				}
				if b.Attributes != nil {
					sp.Attributes = maps.Clone(*b.Attributes)
				}
				if b.SignResponse != nil {
					sp.SignResponse = *b.SignResponse
				}
				if b.SignAssertion != nil {
					sp.SignAssertion = *b.SignAssertion
				}
				if sp.Name == "" {
					sp.Name = sp.EntityID
				}
				if err := checkSP(&sp); err != nil {
					return false, false, err
				}
				if err := tx.PutServiceProvider(ctx, &sp); err != nil {
					return false, false, storeError(err)
				}
				return false, true, nil
			})
			if err != nil {
				return nil, err
			}
			return &struct{ Body ServiceProvider }{a.withMetadata(ctx, out, a.spView(out), in.Body.MetadataURL != nil && *in.Body.MetadataURL != "")}, nil
		})

	for _, enable := range []bool{true, false} {
		verb, summary := "disable", "Disable a SAML service provider: refused at SSO; the job ending its SAML sessions is queued"
		if enable {
			verb, summary = "enable", "Enable a SAML service provider again"
		}
		huma.Register(a.huma, huma.Operation{OperationID: verb + "-service-provider", Method: http.MethodPost, Path: "/enterprises/{ent}/service-providers/{id}/" + verb,
			Summary: summary, Tags: tags, Errors: errs(http.StatusConflict)},
			func(ctx context.Context, in *SPPath) (*struct{ Body ServiceProvider }, error) {
				changed := false
				out, err := a.changeSP(ctx, in.Ent, in.ID, "admin.sp."+verb, func(tx directory.Store, cur *directory.ServiceProvider) (bool, bool, error) {
					var err error
					changed, err = access.SetSPEnabled(ctx, tx, in.Ent, cur.EntityID, enable, principalOf(ctx).actor(), verb+"d through the admin API")
					if err != nil {
						return false, false, storeError(err)
					}
					return false, changed, nil
				})
				if err != nil {
					return nil, err
				}
				if changed && !enable {
					a.notifyAccess()
				}
				return &struct{ Body ServiceProvider }{a.spView(out)}, nil
			})
	}

	huma.Register(a.huma, huma.Operation{OperationID: "delete-service-provider", Method: http.MethodDelete, Path: "/enterprises/{ent}/service-providers/{id}",
		Summary: "Delete a SAML service provider: the job ending its SAML sessions is queued", Tags: tags,
		DefaultStatus: http.StatusNoContent, Errors: errs(http.StatusConflict)},
		func(ctx context.Context, in *SPPath) (*struct{}, error) {
			_, err := a.changeSP(ctx, in.Ent, in.ID, "admin.sp.delete", func(tx directory.Store, cur *directory.ServiceProvider) (bool, bool, error) {
				if err := access.DeleteSPTx(ctx, tx, in.Ent, cur.EntityID, principalOf(ctx).actor(), "deleted through the admin API"); err != nil {
					return false, false, storeError(err)
				}
				return true, true, nil
			})
			if err != nil {
				return nil, err
			}
			a.notifyAccess()
			return nil, nil
		})
}
