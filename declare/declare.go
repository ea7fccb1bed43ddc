// Package declare writes what the config file declares (enterprises, identity sources, OIDC
// clients, SAML service providers, local users) into the durable store, in one transaction. It is
// what qiao serve does at start and qiao apply does alone.
package declare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/qiao-gateway/qiao/directory"
	idpsaml "github.com/qiao-gateway/qiao/idp/saml"
	"github.com/qiao-gateway/qiao/internal/config"
)

// Apply writes the enterprises, sources, clients, service providers and local users the
// config declares into the store, in one transaction: a config that breaks a rule (a sixth
// enabled source, say) changes nothing. Applying the same config twice changes nothing the second
// time; objects created through the admin API are left alone.
func Apply(ctx context.Context, st directory.Store, cfg *config.Config) error {
	return st.InTx(ctx, func(tx directory.Store) error {
		for i, e := range cfg.Enterprises {
			at := fmt.Sprintf("enterprises[%d]", i)
			name := e.Name
			if name == "" {
				name = e.ID
			}
			if err := tx.PutEnterprise(ctx, &directory.Enterprise{ID: e.ID, Name: name}); err != nil {
				return fmt.Errorf("%s: %w", at, err)
			}
			localSource := ""
			for j, s := range e.Sources {
				src := declaredSource(e.ID, s)
				if src.Kind == directory.KindLocal && src.Enabled {
					localSource = src.ID
				}
				if err := tx.PutSource(ctx, src); err != nil {
					return fmt.Errorf("%s.sources[%d] (%s): %w", at, j, s.ID, err)
				}
			}
			for j, c := range e.Clients {
				if err := tx.PutClient(ctx, declaredClient(e.ID, c)); err != nil {
					return fmt.Errorf("%s.clients[%d] (%s): %w", at, j, c.ID, err)
				}
			}
			for j, sp := range e.ServiceProviders {
				xml := sp.Metadata
				if sp.MetadataFile != "" {
					b, err := os.ReadFile(sp.MetadataFile)
					if err != nil {
						return fmt.Errorf("%s.service_providers[%d].metadata_file: %w", at, j, err)
					}
					xml = string(b)
				}
				if xml != "" {
					// Inline or file metadata is checked now, so a bad one stops the start.
					md, err := idpsaml.ParseMetadata([]byte(xml))
					if err != nil {
						return fmt.Errorf("%s.service_providers[%d]: %w", at, j, err)
					}
					if md.EntityID != sp.EntityID {
						return fmt.Errorf("%s.service_providers[%d]: the metadata describes %q, not entity_id %q", at, j, md.EntityID, sp.EntityID)
					}
				}
				d := &directory.ServiceProvider{EnterpriseID: e.ID, EntityID: sp.EntityID, Name: sp.Name, MetadataXML: xml,
					MetadataURL: sp.MetadataURL, NameIDFormat: sp.NameIDFormat, Attributes: sp.Attributes,
					SignResponse: boolOr(sp.SignResponse, true), SignAssertion: boolOr(sp.SignAssertion, true)}
				if d.NameIDFormat == "" {
					d.NameIDFormat = "persistent"
				}
				if d.Name == "" {
					d.Name = d.EntityID
				}
				if err := tx.PutServiceProvider(ctx, d); err != nil {
					return fmt.Errorf("%s.service_providers[%d]: %w", at, j, err)
				}
			}
			for j, u := range e.Users {
				if err := applyUser(ctx, tx, e.ID, localSource, u); err != nil {
					return fmt.Errorf("%s.users[%d] (%s): %w", at, j, u.Username, err)
				}
			}
		}
		return nil
	})
}

func boolOr(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

func declaredSource(ent string, s config.Source) *directory.IdentitySource {
	sync := directory.DefaultSyncSettings()
	sync.Auto = boolOr(s.Sync.Auto, sync.Auto)
	sync.UserInfo = boolOr(s.Sync.UserInfo, sync.UserInfo)
	if s.Sync.CycleHours != 0 {
		sync.CycleHours = s.Sync.CycleHours
	}
	sync.VerifyAt = s.Sync.VerifyAt
	if len(s.Sync.Scope) > 0 {
		sync.ScopeAll, sync.ScopeDeptIDs = false, s.Sync.Scope
	}
	if s.Sync.MatchBy != "" {
		sync.MatchBy = s.Sync.MatchBy
	}
	if s.Sync.DeleteUsers != nil {
		sync.DeleteUsers = *s.Sync.DeleteUsers
	}
	if s.Sync.DeleteDepts != nil {
		sync.DeleteDepts = *s.Sync.DeleteDepts
	}
	for _, m := range s.Sync.FieldMappings {
		sync.FieldMappings = append(sync.FieldMappings, directory.FieldMapping{Upstream: m.Upstream, Local: m.Local})
	}
	sync.ExtendedFields = s.Sync.ExtendedFields
	name := s.Name
	if name == "" {
		name = s.ID
	}
	return &directory.IdentitySource{EnterpriseID: ent, ID: s.ID, Kind: directory.SourceKind(s.Kind), Name: name,
		Description: s.Description, Enabled: boolOr(s.Enabled, true), Sync: sync, Config: s.Config, Secrets: s.Secrets}
}

func declaredClient(ent string, c config.Client) *directory.OIDCClient {
	d := &directory.OIDCClient{EnterpriseID: ent, ID: c.ID, Name: c.Name, Type: directory.ClientType(c.Type), Secret: c.Secret,
		AuthMethod: c.AuthMethod, RedirectURIs: c.RedirectURIs, PostLogoutRedirectURIs: c.PostLogoutRedirectURIs,
		GrantTypes: c.GrantTypes, Scopes: c.Scopes, AccessTokenFormat: c.AccessTokenFormat, IDTokenAlg: c.IDTokenAlg,
		BackchannelLogoutURI: c.BackchannelLogoutURI, AllowedOrigins: c.AllowedOrigins, Claims: c.Claims}
	if c.JWKS != "" {
		d.JWKS = json.RawMessage(c.JWKS)
	}
	if d.Name == "" {
		d.Name = c.ID
	}
	if d.AuthMethod == "" {
		switch d.Type {
		case directory.ClientNative:
			d.AuthMethod = "none"
		default:
			d.AuthMethod = "client_secret_basic"
		}
	}
	if len(d.GrantTypes) == 0 {
		switch d.Type {
		case directory.ClientService:
			d.GrantTypes = []string{"client_credentials"}
		default:
			d.GrantTypes = []string{"authorization_code", "refresh_token"}
		}
	}
	if d.AccessTokenFormat == "" {
		d.AccessTokenFormat = "opaque"
	}
	if d.IDTokenAlg == "" {
		d.IDTokenAlg = "RS256"
	}
	return d
}

func applyUser(ctx context.Context, tx directory.Store, ent, localSource string, u config.User) error {
	cur, err := tx.GetUserByUsername(ctx, ent, u.Username)
	switch {
	case errors.Is(err, directory.ErrNotFound):
		cur = &directory.User{EnterpriseID: ent, Username: u.Username, Name: u.Name, Email: u.Email, Mobile: u.Mobile,
			PasswordHash: u.PasswordHash, Status: directory.UserActive}
		if err := tx.CreateUser(ctx, cur); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		if cur.Name != u.Name || cur.Email != u.Email || cur.Mobile != u.Mobile || cur.PasswordHash != u.PasswordHash {
			cur.Name, cur.Email, cur.Mobile, cur.PasswordHash = u.Name, u.Email, u.Mobile, u.PasswordHash
			if err := tx.UpdateUser(ctx, cur); err != nil {
				return err
			}
		}
	}
	if localSource == "" {
		return nil
	}
	if _, err := tx.GetUserLink(ctx, ent, localSource, u.Username); errors.Is(err, directory.ErrNotFound) {
		return tx.PutUserLink(ctx, &directory.UserLink{EnterpriseID: ent, SourceID: localSource, UpstreamID: u.Username, UserID: cur.ID})
	} else if err != nil {
		return err
	}
	return nil
}
