package adminapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/qiao-gateway/qiao/directory"
)

// RoleChange grants a person of an enterprise's directory an administrator role, or (Role "")
// takes theirs away. The API and `qiao admins grant|revoke` both make it through ChangeRole, so
// the rules and the audit record are the same whoever asks.
type RoleChange struct {
	Enterprise, Username string
	Role                 directory.AdminRole // "" revokes
	// Who asks, as the audit log names them ("user:…@…", "client:…@…", "cli").
	Actor, ActorUserID       string
	IP, UserAgent, RequestID string
	// ConfigFile is what a refusal to change a file-managed grant names.
	ConfigFile string
}

// RoleRefusal says why a role change was refused.
type RoleRefusal struct {
	Reason RefusalReason
	Msg    string
}

// RefusalReason sorts the refusals: the API answers each with its own status.
type RefusalReason int

const (
	NoSuchPerson RefusalReason = iota + 1 // 422 through the API
	NoSuchGrant                           // 404
	FileManaged                           // 409
	LastOwner                             // 409
)

func (e *RoleRefusal) Error() string { return e.Msg }

// ChangeRole applies c in one transaction with its audit record: refused for a person the
// directory lacks, a grant config.yaml makes (the file owns it), or taking the last owner's role.
// It returns the grant as it now stands (nil after a revocation).
func ChangeRole(ctx context.Context, st directory.Store, c RoleChange) (*directory.AdminGrant, error) {
	if c.Role != "" && !c.Role.Valid() {
		return nil, fmt.Errorf("role %q: want owner, admin or auditor", c.Role)
	}
	if c.ConfigFile == "" {
		c.ConfigFile = "config.yaml"
	}
	var out *directory.AdminGrant
	err := st.InTx(ctx, func(tx directory.Store) error {
		cur, err := tx.GetAdminGrant(ctx, c.Enterprise, c.Username)
		if errors.Is(err, directory.ErrNotFound) {
			cur = nil
		} else if err != nil {
			return err
		}
		if c.Role == "" && cur == nil {
			return &RoleRefusal{NoSuchGrant, fmt.Sprintf("%s holds no role in enterprise %s", c.Username, c.Enterprise)}
		}
		if c.Role != "" {
			if _, err := tx.GetUserByUsername(ctx, c.Enterprise, c.Username); errors.Is(err, directory.ErrNotFound) {
				return &RoleRefusal{NoSuchPerson, fmt.Sprintf("enterprise %s has no user %q", c.Enterprise, c.Username)}
			} else if err != nil {
				return err
			}
		}
		if err := roleChangeable(ctx, tx, c, cur); err != nil {
			return err
		}
		var before, after any
		kind := "admin.revoke"
		if cur != nil {
			before = grantView(cur)
		}
		if c.Role == "" {
			if err := tx.DeleteAdminGrant(ctx, c.Enterprise, c.Username); err != nil {
				return err
			}
		} else {
			kind = "admin.grant"
			out = &directory.AdminGrant{EnterpriseID: c.Enterprise, Username: c.Username, Role: c.Role, GrantedBy: c.Actor}
			if cur != nil {
				out.CreatedAt = cur.CreatedAt
			}
			if err := tx.PutAdminGrant(ctx, out); err != nil {
				return err
			}
			after = grantView(out)
		}
		b, err := auditDetail(c.Username, before, after, nil)
		if err != nil {
			return err
		}
		return tx.AddAuditEvent(ctx, &directory.AuditEvent{EnterpriseID: c.Enterprise, Kind: kind, Actor: c.Actor, UserID: c.ActorUserID,
			IP: c.IP, UserAgent: c.UserAgent, Outcome: "ok", RequestID: c.RequestID, Detail: b})
	})
	return out, err
}

// roleChangeable refuses to change a file-managed grant, or to leave the enterprise without an
// owner.
func roleChangeable(ctx context.Context, tx directory.Store, c RoleChange, cur *directory.AdminGrant) error {
	if cur == nil {
		return nil
	}
	if cur.Managed == directory.ManagedByConfig {
		return &RoleRefusal{FileManaged, fmt.Sprintf("the %s role of %s is granted in %s (file-managed): change it there and run qiao apply", cur.Role, cur.Username, c.ConfigFile)}
	}
	if cur.Role != directory.RoleOwner || c.Role == directory.RoleOwner {
		return nil
	}
	gs, err := tx.ListAdminGrants(ctx, c.Enterprise)
	if err != nil {
		return err
	}
	owners := 0
	for _, g := range gs {
		if g.Role == directory.RoleOwner {
			owners++
		}
	}
	if owners <= 1 {
		return &RoleRefusal{LastOwner, fmt.Sprintf("%s is the last owner of enterprise %s: make someone else owner first", cur.Username, c.Enterprise)}
	}
	return nil
}
