package oidc

import (
	"context"
	"fmt"
	"slices"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/qiao-gateway/qiao/directory"
)

// ScopeGroups releases the person's department paths and groups.
const ScopeGroups = "groups"

// Claims qiao adds beyond the standard ones.
const (
	ClaimEnterprise  = "enterprise_id"
	ClaimDepartments = "departments" // paths such as "/总部/研发部", one per department the person is in
	ClaimGroups      = "groups"
	ClaimSource      = "idp" // the identity source the person logged in through
)

// userClaims fills ui with what the scopes release about a directory user.
func (p *Provider) userClaims(ctx context.Context, ent, uid, clientID string, scopes []string, ui *zoidc.UserInfo) error {
	u := info(ctx).user // read by this request's check that the person is still active
	if u == nil || u.ID != uid || u.EnterpriseID != ent {
		var err error
		if u, err = p.Store.GetUser(ctx, ent, uid); err != nil {
			return fmt.Errorf("user %s: %w", uid, err)
		}
	}
	ui.Subject = u.ID
	ui.AppendClaims(ClaimEnterprise, ent)
	if slices.Contains(scopes, zoidc.ScopeProfile) {
		ui.Name = u.Name
		ui.PreferredUsername = u.Username
		ui.UpdatedAt = zoidc.FromTime(u.UpdatedAt)
		if c, err := p.lookupClient(ctx, ent, clientID); err == nil {
			for name, field := range c.Claims {
				if v := u.Field(field); v != "" {
					ui.AppendClaims(name, v)
				}
			}
		}
	}
	if slices.Contains(scopes, zoidc.ScopeEmail) && u.Email != "" {
		// The directory's email is what the enterprise's admins entered; qiao did not verify it.
		ui.Email, ui.EmailVerified = u.Email, false
	}
	if slices.Contains(scopes, zoidc.ScopePhone) && u.Mobile != "" {
		ui.PhoneNumber = u.Mobile
	}
	if slices.Contains(scopes, ScopeGroups) {
		depts, err := directory.DepartmentPaths(ctx, p.Store, ent, uid)
		if err != nil {
			return err
		}
		ui.AppendClaims(ClaimDepartments, depts)
		names, err := directory.GroupNames(ctx, p.Store, ent, uid)
		if err != nil {
			return err
		}
		ui.AppendClaims(ClaimGroups, names)
	}
	return nil
}
