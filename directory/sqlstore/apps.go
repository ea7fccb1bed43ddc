package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/qiao-gateway/qiao/directory"
)

// ---- OIDC clients

type clientSettings struct {
	AuthMethod             string            `json:"auth_method"`
	RedirectURIs           []string          `json:"redirect_uris"`
	PostLogoutRedirectURIs []string          `json:"post_logout_redirect_uris"`
	GrantTypes             []string          `json:"grant_types"`
	Scopes                 []string          `json:"scopes"`
	AccessTokenFormat      string            `json:"access_token_format"`
	IDTokenAlg             string            `json:"id_token_alg"`
	BackchannelLogoutURI   string            `json:"backchannel_logout_uri"`
	AllowedOrigins         []string          `json:"allowed_origins"`
	JWKS                   json.RawMessage   `json:"jwks,omitempty"`
	Claims                 map[string]string `json:"claims,omitempty"`
	LaunchURL              string            `json:"launch_url,omitempty"`
}

func clientAAD(ent, id string) []byte { return []byte("client/" + ent + "/" + id) }

// PutClient implements directory.Store.
func (s *Store) PutClient(ctx context.Context, c *directory.OIDCClient) error {
	if !directory.ValidID(c.ID) {
		return &directory.FieldError{Field: "id", Reason: "must be 1-63 lowercase letters, digits, '-' or '_'"}
	}
	switch c.Type {
	case directory.ClientNative, directory.ClientWeb, directory.ClientService:
	default:
		return &directory.FieldError{Field: "type", Reason: fmt.Sprintf("unknown client type %q (want native, web or service)", c.Type)}
	}
	now := s.now()
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	c.UpdatedAt = now
	var sealed []byte
	if c.Secret != "" {
		sealed = s.box.Seal([]byte(c.Secret), clientAAD(c.EnterpriseID, c.ID))
	}
	set := clientSettings{c.AuthMethod, c.RedirectURIs, c.PostLogoutRedirectURIs, c.GrantTypes, c.Scopes,
		c.AccessTokenFormat, c.IDTokenAlg, c.BackchannelLogoutURI, c.AllowedOrigins, c.JWKS, c.Claims, c.LaunchURL}
	_, err := s.q.ExecContext(ctx, `INSERT INTO oidc_clients (enterprise_id, id, name, type, secret, settings, created_at, updated_at, disabled, managed)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (enterprise_id, id) DO UPDATE SET name = excluded.name, type = excluded.type, secret = excluded.secret,
		settings = excluded.settings, updated_at = excluded.updated_at, disabled = excluded.disabled, managed = excluded.managed`,
		c.EnterpriseID, c.ID, c.Name, string(c.Type), sealed, jsonText(set), ms(c.CreatedAt), ms(c.UpdatedAt), b2i(c.Disabled), c.Managed)
	return mapErr(err, "put client "+c.ID)
}

func (s *Store) scanClient(sc interface{ Scan(...any) error }) (*directory.OIDCClient, error) {
	var c directory.OIDCClient
	var typ, set string
	var sealed []byte
	var cr, up, disabled int64
	if err := sc.Scan(&c.EnterpriseID, &c.ID, &c.Name, &typ, &sealed, &set, &cr, &up, &disabled, &c.Managed); err != nil {
		return nil, err
	}
	c.Disabled = disabled != 0
	c.Type = directory.ClientType(typ)
	c.CreatedAt, c.UpdatedAt = fromMS(cr), fromMS(up)
	var cs clientSettings
	if err := unjson(set, &cs, "client settings"); err != nil {
		return nil, err
	}
	c.AuthMethod, c.RedirectURIs, c.PostLogoutRedirectURIs, c.GrantTypes, c.Scopes = cs.AuthMethod, cs.RedirectURIs, cs.PostLogoutRedirectURIs, cs.GrantTypes, cs.Scopes
	c.AccessTokenFormat, c.IDTokenAlg, c.BackchannelLogoutURI, c.AllowedOrigins, c.JWKS = cs.AccessTokenFormat, cs.IDTokenAlg, cs.BackchannelLogoutURI, cs.AllowedOrigins, cs.JWKS
	c.Claims, c.LaunchURL = cs.Claims, cs.LaunchURL
	if len(sealed) > 0 {
		pt, err := s.box.Open(sealed, clientAAD(c.EnterpriseID, c.ID))
		if err != nil {
			return nil, fmt.Errorf("secret of client %s/%s: %w", c.EnterpriseID, c.ID, err)
		}
		c.Secret = string(pt)
	}
	return &c, nil
}

const clientCols = `enterprise_id, id, name, type, secret, settings, created_at, updated_at, disabled, managed`

// GetClient implements directory.Store.
func (s *Store) GetClient(ctx context.Context, ent, id string) (*directory.OIDCClient, error) {
	c, err := s.scanClient(s.q.QueryRowContext(ctx, `SELECT `+clientCols+` FROM oidc_clients WHERE enterprise_id = $1 AND id = $2`, ent, id))
	if err != nil {
		return nil, mapErr(err, "client "+id)
	}
	return c, nil
}

// ListClients implements directory.Store.
func (s *Store) ListClients(ctx context.Context, ent string) ([]*directory.OIDCClient, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT `+clientCols+` FROM oidc_clients WHERE enterprise_id = $1 ORDER BY id`, ent)
	if err != nil {
		return nil, mapErr(err, "list clients")
	}
	defer rows.Close()
	var out []*directory.OIDCClient
	for rows.Next() {
		c, err := s.scanClient(rows)
		if err != nil {
			return nil, mapErr(err, "list clients")
		}
		out = append(out, c)
	}
	return out, mapErr(rows.Err(), "list clients")
}

// DeleteClient implements directory.Store; the client's refresh tokens go with it.
func (s *Store) DeleteClient(ctx context.Context, ent, id string) error {
	return s.InTx(ctx, func(tx directory.Store) error {
		t := tx.(*Store)
		if _, err := t.q.ExecContext(ctx, `DELETE FROM refresh_tokens WHERE enterprise_id = $1 AND client_id = $2`, ent, id); err != nil {
			return mapErr(err, "delete client tokens")
		}
		res, err := t.q.ExecContext(ctx, `DELETE FROM oidc_clients WHERE enterprise_id = $1 AND id = $2`, ent, id)
		return expectOne(res, err, "delete client "+id)
	})
}

// ---- SAML service providers

type spSettings struct {
	NameIDFormat  string            `json:"nameid_format"`
	Attributes    map[string]string `json:"attributes"`
	SignResponse  bool              `json:"sign_response"`
	SignAssertion bool              `json:"sign_assertion"`
}

// PutServiceProvider implements directory.Store.
func (s *Store) PutServiceProvider(ctx context.Context, sp *directory.ServiceProvider) error {
	if strings.TrimSpace(sp.EntityID) == "" {
		return &directory.FieldError{Field: "entity_id", Reason: "required"}
	}
	now := s.now()
	if sp.CreatedAt.IsZero() {
		sp.CreatedAt = now
	}
	sp.UpdatedAt = now
	set := spSettings{sp.NameIDFormat, sp.Attributes, sp.SignResponse, sp.SignAssertion}
	_, err := s.q.ExecContext(ctx, `INSERT INTO saml_service_providers
		(enterprise_id, entity_id, name, metadata_xml, metadata_url, settings, created_at, updated_at, disabled, managed)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (enterprise_id, entity_id) DO UPDATE SET name = excluded.name, metadata_xml = excluded.metadata_xml,
		metadata_url = excluded.metadata_url, settings = excluded.settings, updated_at = excluded.updated_at,
		disabled = excluded.disabled, managed = excluded.managed`,
		sp.EnterpriseID, sp.EntityID, sp.Name, sp.MetadataXML, sp.MetadataURL, jsonText(set), ms(sp.CreatedAt), ms(sp.UpdatedAt),
		b2i(sp.Disabled), sp.Managed)
	return mapErr(err, "put service provider "+sp.EntityID)
}

func scanSP(sc interface{ Scan(...any) error }) (*directory.ServiceProvider, error) {
	var sp directory.ServiceProvider
	var set string
	var c, u, disabled int64
	if err := sc.Scan(&sp.EnterpriseID, &sp.EntityID, &sp.Name, &sp.MetadataXML, &sp.MetadataURL, &set, &c, &u, &disabled, &sp.Managed); err != nil {
		return nil, err
	}
	sp.Disabled = disabled != 0
	var ss spSettings
	if err := unjson(set, &ss, "service provider settings"); err != nil {
		return nil, err
	}
	sp.NameIDFormat, sp.Attributes, sp.SignResponse, sp.SignAssertion = ss.NameIDFormat, ss.Attributes, ss.SignResponse, ss.SignAssertion
	sp.CreatedAt, sp.UpdatedAt = fromMS(c), fromMS(u)
	return &sp, nil
}

const spCols = `enterprise_id, entity_id, name, metadata_xml, metadata_url, settings, created_at, updated_at, disabled, managed`

// GetServiceProvider implements directory.Store.
func (s *Store) GetServiceProvider(ctx context.Context, ent, entityID string) (*directory.ServiceProvider, error) {
	sp, err := scanSP(s.q.QueryRowContext(ctx, `SELECT `+spCols+` FROM saml_service_providers WHERE enterprise_id = $1 AND entity_id = $2`, ent, entityID))
	if err != nil {
		return nil, mapErr(err, "service provider "+entityID)
	}
	return sp, nil
}

// ListServiceProviders implements directory.Store.
func (s *Store) ListServiceProviders(ctx context.Context, ent string) ([]*directory.ServiceProvider, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT `+spCols+` FROM saml_service_providers WHERE enterprise_id = $1 ORDER BY entity_id`, ent)
	if err != nil {
		return nil, mapErr(err, "list service providers")
	}
	defer rows.Close()
	var out []*directory.ServiceProvider
	for rows.Next() {
		sp, err := scanSP(rows)
		if err != nil {
			return nil, mapErr(err, "list service providers")
		}
		out = append(out, sp)
	}
	return out, mapErr(rows.Err(), "list service providers")
}

// DeleteServiceProvider implements directory.Store.
func (s *Store) DeleteServiceProvider(ctx context.Context, ent, entityID string) error {
	res, err := s.q.ExecContext(ctx, `DELETE FROM saml_service_providers WHERE enterprise_id = $1 AND entity_id = $2`, ent, entityID)
	return expectOne(res, err, "delete service provider "+entityID)
}
