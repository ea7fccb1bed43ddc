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

	"github.com/qiao-gateway/qiao/access"
	"github.com/qiao-gateway/qiao/directory"
	idpsaml "github.com/qiao-gateway/qiao/idp/saml"
	"github.com/qiao-gateway/qiao/internal/config"
)

// Options change how Apply treats objects the file no longer declares.
type Options struct {
	// Force deletes a removed object even when deletion protection would stop it (a removed
	// enterprise always needs it).
	Force bool
	// ForceHint is the command to name in a refusal ("qiao apply --force").
	ForceHint string
}

// Result says what applying changed beyond writing the declarations: what the file closed,
// disabled or, by no longer declaring it, deleted. Applying the same file again leaves it empty.
type Result struct {
	Changes []string
}

func (r *Result) add(format string, a ...any) {
	r.Changes = append(r.Changes, fmt.Sprintf(format, a...))
}

// Actor is who config-file changes are attributed to in the audit log.
const Actor = "config"

// Apply writes the enterprises, sources, clients, service providers and local users the
// config declares into the store, in one transaction: a config that breaks a rule (a sixth
// enabled source, say) changes nothing. The file owns what it declares (marked
// directory.ManagedByConfig): an object it declared before and no longer does is deleted, under
// the same plan and deletion protection as `qiao sources delete`, or the whole apply is refused
// with a one-line reason naming the object and the --force to use. Closing a source or disabling
// an app queues the access job that ends what it granted. Applying the same config twice changes
// nothing the second time; objects created another way (the admin API) are left alone.
func Apply(ctx context.Context, st directory.Store, cfg *config.Config, opts ...Options) (*Result, error) {
	var opt Options
	if len(opts) > 0 {
		opt = opts[0]
	}
	if opt.ForceHint == "" {
		opt.ForceHint = "qiao apply --force"
	}
	res := &Result{}
	err := st.InTx(ctx, func(tx directory.Store) error {
		*res = Result{}
		declared := map[string]bool{}
		for i, e := range cfg.Enterprises {
			declared[e.ID] = true
			if err := applyEnterprise(ctx, tx, e, fmt.Sprintf("enterprises[%d]", i), res, opt); err != nil {
				return err
			}
		}
		ents, err := tx.ListEnterprises(ctx)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if e.Managed != directory.ManagedByConfig || declared[e.ID] {
				continue
			}
			if !opt.Force {
				return fmt.Errorf("enterprise %s was removed from the config file; deleting it deletes its sources, people, apps and records: run %s to delete it, or declare it again", e.ID, opt.ForceHint)
			}
			if err := deleteEnterprise(ctx, tx, e.ID); err != nil {
				return fmt.Errorf("delete enterprise %s: %w", e.ID, err)
			}
			res.add("deleted enterprise %s (removed from the config file)", e.ID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

func applyEnterprise(ctx context.Context, tx directory.Store, e config.Enterprise, at string, res *Result, opt Options) error {
	name := e.Name
	if name == "" {
		name = e.ID
	}
	if err := tx.PutEnterprise(ctx, &directory.Enterprise{ID: e.ID, Name: name, Managed: directory.ManagedByConfig}); err != nil {
		return fmt.Errorf("%s: %w", at, err)
	}
	// Sources the file no longer declares go first: a removed source frees its place under the
	// enabled-source limit for one the file adds.
	if err := removeUndeclaredSources(ctx, tx, e, res, opt); err != nil {
		return err
	}
	localSource := ""
	for j, s := range e.Sources {
		src := declaredSource(e.ID, s)
		if src.Kind == directory.KindLocal && src.Enabled {
			localSource = src.ID
		}
		cur, err := tx.GetSource(ctx, e.ID, src.ID)
		if err != nil && !errors.Is(err, directory.ErrNotFound) {
			return fmt.Errorf("%s.sources[%d] (%s): %w", at, j, s.ID, err)
		}
		if err := tx.PutSource(ctx, src); err != nil {
			return fmt.Errorf("%s.sources[%d] (%s): %w", at, j, s.ID, err)
		}
		if cur != nil && cur.Enabled && !src.Enabled {
			if err := access.QueueSourceClosed(ctx, tx, e.ID, src.ID, Actor, "closed in the config file (enabled: false)"); err != nil {
				return err
			}
			res.add("closed source %s of %s: its sessions and refresh tokens end", src.ID, e.ID)
		}
	}
	if err := applyProvisioning(ctx, tx, e, at, res); err != nil {
		return err
	}
	clients := map[string]bool{}
	for j, c := range e.Clients {
		clients[c.ID] = true
		d := declaredClient(e.ID, c)
		cur, err := tx.GetClient(ctx, e.ID, c.ID)
		if err != nil && !errors.Is(err, directory.ErrNotFound) {
			return fmt.Errorf("%s.clients[%d] (%s): %w", at, j, c.ID, err)
		}
		if err := tx.PutClient(ctx, d); err != nil {
			return fmt.Errorf("%s.clients[%d] (%s): %w", at, j, c.ID, err)
		}
		if cur != nil && !cur.Disabled && d.Disabled {
			if err := access.QueueClientDisabled(ctx, tx, e.ID, c.ID, Actor, "disabled in the config file (enabled: false)"); err != nil {
				return err
			}
			res.add("disabled client %s of %s: its tokens are revoked", c.ID, e.ID)
		}
	}
	sps := map[string]bool{}
	for j, sp := range e.ServiceProviders {
		sps[sp.EntityID] = true
		d, err := declaredSP(e.ID, sp, fmt.Sprintf("%s.service_providers[%d]", at, j))
		if err != nil {
			return err
		}
		cur, err := tx.GetServiceProvider(ctx, e.ID, sp.EntityID)
		if err != nil && !errors.Is(err, directory.ErrNotFound) {
			return fmt.Errorf("%s.service_providers[%d]: %w", at, j, err)
		}
		if err := tx.PutServiceProvider(ctx, d); err != nil {
			return fmt.Errorf("%s.service_providers[%d]: %w", at, j, err)
		}
		if cur != nil && !cur.Disabled && d.Disabled {
			if err := access.QueueSPDisabled(ctx, tx, e.ID, sp.EntityID, Actor, "disabled in the config file (enabled: false)"); err != nil {
				return err
			}
			res.add("disabled service provider %s of %s: its SAML sessions end", sp.EntityID, e.ID)
		}
	}
	if err := removeUndeclaredApps(ctx, tx, e.ID, clients, sps, res); err != nil {
		return err
	}
	users := map[string]bool{}
	for j, u := range e.Users {
		users[u.Username] = true
		if err := applyUser(ctx, tx, e.ID, localSource, u); err != nil {
			return fmt.Errorf("%s.users[%d] (%s): %w", at, j, u.Username, err)
		}
	}
	if err := applyAdmins(ctx, tx, e, at, res); err != nil {
		return err
	}
	return removeUndeclaredUsers(ctx, tx, e.ID, users, res)
}

// applyAdmins writes the enterprise's declared admin grants as file-managed (a grant made through
// the API to the same person becomes the file's) and removes the file-managed grants the file no
// longer declares.
func applyAdmins(ctx context.Context, tx directory.Store, e config.Enterprise, at string, res *Result) error {
	declared := map[string]bool{}
	for j, a := range e.Admins {
		declared[a.User] = true
		cur, err := tx.GetAdminGrant(ctx, e.ID, a.User)
		if err != nil && !errors.Is(err, directory.ErrNotFound) {
			return fmt.Errorf("%s.admins[%d] (%s): %w", at, j, a.User, err)
		}
		if cur != nil && cur.Role == directory.AdminRole(a.Role) && cur.Managed == directory.ManagedByConfig {
			continue
		}
		if err := tx.PutAdminGrant(ctx, &directory.AdminGrant{EnterpriseID: e.ID, Username: a.User, Role: directory.AdminRole(a.Role),
			Managed: directory.ManagedByConfig, GrantedBy: Actor}); err != nil {
			return fmt.Errorf("%s.admins[%d] (%s): %w", at, j, a.User, err)
		}
	}
	grants, err := tx.ListAdminGrants(ctx, e.ID)
	if err != nil {
		return err
	}
	for _, g := range grants {
		if g.Managed != directory.ManagedByConfig || declared[g.Username] {
			continue
		}
		if err := tx.DeleteAdminGrant(ctx, e.ID, g.Username); err != nil {
			return err
		}
		res.add("removed the %s role of %s in %s (removed from the config file)", g.Role, g.Username, e.ID)
	}
	return nil
}

// removeUndeclaredSources deletes the file-managed sources of e the file no longer declares.
func removeUndeclaredSources(ctx context.Context, tx directory.Store, e config.Enterprise, res *Result, opt Options) error {
	declared := map[string]bool{}
	for _, s := range e.Sources {
		declared[s.ID] = true
	}
	srcs, err := tx.ListSources(ctx, e.ID)
	if err != nil {
		return err
	}
	for _, src := range srcs {
		if src.Managed != directory.ManagedByConfig || declared[src.ID] {
			continue
		}
		plan, err := access.DeleteSourceTx(ctx, tx, e.ID, src.ID, opt.Force, Actor, "removed from the config file")
		if errors.Is(err, access.ErrProtected) {
			return fmt.Errorf("source %s of enterprise %s was removed from the config file, but deletion protection stops its deletion: %s; run %s to delete it anyway, or declare it again",
				src.ID, e.ID, plan.Protection, opt.ForceHint)
		}
		if err != nil {
			return fmt.Errorf("delete source %s of %s: %w", src.ID, e.ID, err)
		}
		res.add("deleted source %s of %s (removed from the config file): %d departments, %d links; %d people depart",
			src.ID, e.ID, plan.Departments, plan.Links, len(plan.Departing))
	}
	return nil
}

// removeUndeclaredApps deletes the file-managed clients and service providers the file no
// longer declares, queuing the jobs that end what they held.
func removeUndeclaredApps(ctx context.Context, tx directory.Store, ent string, clients, sps map[string]bool, res *Result) error {
	cs, err := tx.ListClients(ctx, ent)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if c.Managed != directory.ManagedByConfig || clients[c.ID] {
			continue
		}
		if _, err := access.DeleteClientTx(ctx, tx, ent, c.ID, Actor, "removed from the config file"); err != nil {
			return fmt.Errorf("delete client %s of %s: %w", c.ID, ent, err)
		}
		res.add("deleted client %s of %s (removed from the config file)", c.ID, ent)
	}
	ss, err := tx.ListServiceProviders(ctx, ent)
	if err != nil {
		return err
	}
	for _, sp := range ss {
		if sp.Managed != directory.ManagedByConfig || sps[sp.EntityID] {
			continue
		}
		if err := access.DeleteSPTx(ctx, tx, ent, sp.EntityID, Actor, "removed from the config file"); err != nil {
			return fmt.Errorf("delete service provider %s of %s: %w", sp.EntityID, ent, err)
		}
		res.add("deleted service provider %s of %s (removed from the config file)", sp.EntityID, ent)
	}
	return nil
}

// removeUndeclaredUsers removes the local link of file-managed users the file no longer
// declares; those no other source links depart, and the job that ends their access is queued.
func removeUndeclaredUsers(ctx context.Context, tx directory.Store, ent string, declared map[string]bool, res *Result) error {
	srcs, err := tx.ListSources(ctx, ent)
	if err != nil {
		return err
	}
	var departed []string
	for _, src := range srcs {
		if src.Kind != directory.KindLocal {
			continue
		}
		lus, err := tx.SourceUsers(ctx, ent, src.ID)
		if err != nil {
			return err
		}
		for _, lu := range lus {
			u := lu.User
			if u.Managed != directory.ManagedByConfig || declared[u.Username] {
				continue
			}
			if err := tx.DeleteUserLink(ctx, ent, src.ID, lu.Link.UpstreamID); err != nil {
				return err
			}
			links, err := tx.LinksOfUser(ctx, ent, u.ID)
			if err != nil {
				return err
			}
			u.Managed = ""
			if len(links) == 0 && u.Status != directory.UserDeparted {
				u.Status = directory.UserDeparted
				departed = append(departed, u.ID)
				res.add("removed local user %s of %s (removed from the config file): departed", u.Username, ent)
			} else {
				res.add("removed local user %s of %s from the local directory (removed from the config file); other sources still link them", u.Username, ent)
			}
			if err := tx.UpdateUser(ctx, u); err != nil {
				return err
			}
			if len(links) > 0 {
				if err := access.QueueUserLeftSource(ctx, tx, ent, u.ID, src.ID, Actor, "removed from the config file"); err != nil {
					return err
				}
			}
		}
	}
	if len(departed) > 0 {
		return access.QueueUsersDeparted(ctx, tx, ent, departed, Actor, "removed from the config file")
	}
	return nil
}

// deleteEnterprise deletes an enterprise the file no longer declares (forced): its people's
// sessions end by the queued job; everything stored goes with it.
func deleteEnterprise(ctx context.Context, tx directory.Store, ent string) error {
	var ids []string
	after := ""
	for {
		us, err := tx.ListUsers(ctx, ent, after, 5000)
		if err != nil {
			return err
		}
		for _, u := range us {
			ids = append(ids, u.ID)
		}
		if len(us) < 5000 {
			break
		}
		after = us[len(us)-1].ID
	}
	if err := tx.DeleteEnterprise(ctx, ent); err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	return access.QueueUsersDeparted(ctx, tx, ent, ids, Actor, "enterprise removed from the config file")
}

func declaredSP(ent string, sp config.ServiceProvider, at string) (*directory.ServiceProvider, error) {
	xml := sp.Metadata
	if sp.MetadataFile != "" {
		b, err := os.ReadFile(sp.MetadataFile)
		if err != nil {
			return nil, fmt.Errorf("%s.metadata_file: %w", at, err)
		}
		xml = string(b)
	}
	if xml != "" {
		// Inline or file metadata is checked now, so a bad one stops the start.
		md, err := idpsaml.ParseMetadata([]byte(xml))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		if md.EntityID != sp.EntityID {
			return nil, fmt.Errorf("%s: the metadata describes %q, not entity_id %q", at, md.EntityID, sp.EntityID)
		}
	}
	d := &directory.ServiceProvider{EnterpriseID: ent, EntityID: sp.EntityID, Name: sp.Name, MetadataXML: xml,
		MetadataURL: sp.MetadataURL, NameIDFormat: sp.NameIDFormat, Attributes: sp.Attributes,
		SignResponse: boolOr(sp.SignResponse, true), SignAssertion: boolOr(sp.SignAssertion, true),
		Disabled: !boolOr(sp.Enabled, true), Managed: directory.ManagedByConfig}
	if d.NameIDFormat == "" {
		d.NameIDFormat = "persistent"
	}
	if d.Name == "" {
		d.Name = d.EntityID
	}
	return d, nil
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
		Description: s.Description, Enabled: boolOr(s.Enabled, true), Sync: sync, Config: s.Config, Secrets: s.Secrets,
		Authoritative: s.Authoritative, Managed: directory.ManagedByConfig}
}

func declaredClient(ent string, c config.Client) *directory.OIDCClient {
	d := &directory.OIDCClient{EnterpriseID: ent, ID: c.ID, Name: c.Name, Type: directory.ClientType(c.Type), Secret: c.Secret,
		AuthMethod: c.AuthMethod, RedirectURIs: c.RedirectURIs, PostLogoutRedirectURIs: c.PostLogoutRedirectURIs,
		GrantTypes: c.GrantTypes, Scopes: c.Scopes, AccessTokenFormat: c.AccessTokenFormat, IDTokenAlg: c.IDTokenAlg,
		BackchannelLogoutURI: c.BackchannelLogoutURI, AllowedOrigins: c.AllowedOrigins, Claims: c.Claims,
		Disabled: !boolOr(c.Enabled, true), Managed: directory.ManagedByConfig, LaunchURL: c.LaunchURL}
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
			PasswordHash: u.PasswordHash, Status: directory.UserActive, Managed: directory.ManagedByConfig}
		if err := tx.CreateUser(ctx, cur); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		if cur.Name != u.Name || cur.Email != u.Email || cur.Mobile != u.Mobile || cur.PasswordHash != u.PasswordHash ||
			cur.Managed != directory.ManagedByConfig {
			cur.Name, cur.Email, cur.Mobile, cur.PasswordHash = u.Name, u.Email, u.Mobile, u.PasswordHash
			cur.Managed = directory.ManagedByConfig
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
