package declare

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/config"
)

// applyProvisioning writes the enterprise's declared provisioning target (file-managed), or
// removes a file-managed one the file no longer declares; one made through the admin API stays.
// It runs before the users are applied, so that a person the file adds is queued for the push.
func applyProvisioning(ctx context.Context, tx directory.Store, e config.Enterprise, at string, res *Result) error {
	ps, ok := tx.(directory.ProvisionStore)
	if !ok {
		if e.Provisioning != nil {
			return fmt.Errorf("%s.provisioning: this store cannot keep a provisioning target", at)
		}
		return nil
	}
	cur, err := ps.GetProvisionTarget(ctx, e.ID)
	if errors.Is(err, directory.ErrNotFound) {
		cur, err = nil, nil
	}
	if err != nil {
		return fmt.Errorf("%s.provisioning: %w", at, err)
	}
	if e.Provisioning == nil {
		if cur != nil && cur.Managed == directory.ManagedByConfig {
			if err := ps.DeleteProvisionTarget(ctx, e.ID); err != nil {
				return fmt.Errorf("%s.provisioning: %w", at, err)
			}
			res.add("removed the provisioning target of %s (removed from the config file); what it created in WeCom stays there", e.ID)
		}
		return nil
	}
	t := DeclaredTarget(e.ID, *e.Provisioning)
	if cur != nil {
		t.CreatedAt = cur.CreatedAt
	}
	if err := ps.PutProvisionTarget(ctx, t); err != nil {
		return fmt.Errorf("%s.provisioning: %w", at, err)
	}
	return nil
}

// DeclaredTarget is the stored form of a declared provisioning target.
func DeclaredTarget(ent string, p config.Provisioning) *directory.ProvisionTarget {
	s := directory.DefaultProvisionSettings()
	if p.RootDepartment != "" {
		s.RootDepartment = p.RootDepartment
	}
	s.DefaultDepartment = p.DefaultDepartment
	if p.Scope != "" {
		s.Scope = p.Scope
	}
	s.Sources, s.Departments = p.Sources, p.Departments
	if p.UserIDField != "" {
		s.UserIDField = p.UserIDField
	}
	s.FieldMap = maps.Clone(p.FieldMap)
	if p.Departure != "" {
		s.Departure = p.Departure
	}
	s.CycleHours = p.CycleHours
	if p.DeleteUsers != nil {
		s.DeleteUsers = *p.DeleteUsers
	}
	if p.DeleteDepts != nil {
		s.DeleteDepts = *p.DeleteDepts
	}
	cfg := map[string]string{"corp_id": p.CorpID}
	for k, v := range map[string]string{"api_base_url": p.APIBaseURL, "proxies": p.Proxies, "proxy_username": p.ProxyUsername, "rate_limit": p.RateLimit} {
		if v != "" {
			cfg[k] = v
		}
	}
	return &directory.ProvisionTarget{EnterpriseID: ent, Kind: directory.SourceKind(p.Kind), Enabled: boolOr(p.Enabled, true), AutoPush: boolOr(p.AutoPush, true),
		Settings: s, Config: cfg, Secrets: maps.Clone(p.Secrets), Managed: directory.ManagedByConfig}
}
