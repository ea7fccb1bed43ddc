package directory

import (
	"context"
	"time"
)

// AdminRole is what an administrator of one enterprise may do through the admin API.
type AdminRole string

// Administrator roles, from most to least powerful. An owner does what an admin does and grants
// roles; an admin changes the enterprise's configuration; an auditor only reads.
const (
	RoleOwner   AdminRole = "owner"
	RoleAdmin   AdminRole = "admin"
	RoleAuditor AdminRole = "auditor"
)

// Valid reports whether r is one of the roles.
func (r AdminRole) Valid() bool { return r == RoleOwner || r == RoleAdmin || r == RoleAuditor }

// Rank orders the roles: owner 3, admin 2, auditor 1, anything else 0.
func (r AdminRole) Rank() int {
	switch r {
	case RoleOwner:
		return 3
	case RoleAdmin:
		return 2
	case RoleAuditor:
		return 1
	}
	return 0
}

// AdminGrant gives a person of an enterprise's directory a role in that enterprise. The person is
// named by username (what config.yaml names): a grant may precede the sync that brings the
// person, and only an active user of the enterprise is ever authorised by it.
type AdminGrant struct {
	EnterpriseID string
	Username     string
	Role         AdminRole
	Managed      string // ManagedByConfig when config.yaml declares it
	GrantedBy    string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Operator is a platform operator: a person (of their own enterprise's directory) who may act in
// every enterprise.
type Operator struct {
	EnterpriseID string
	Username     string
	GrantedBy    string
	CreatedAt    time.Time
}

// SetupToken is a one-time operator setup link, stored by its hash.
type SetupToken struct {
	Hash      string // SHA-256 of the token, hex
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// AdminStore holds who administers what. It is part of Store.
type AdminStore interface {
	// PutAdminGrant creates or replaces the grant of (enterprise, username).
	PutAdminGrant(ctx context.Context, g *AdminGrant) error
	GetAdminGrant(ctx context.Context, enterpriseID, username string) (*AdminGrant, error)
	ListAdminGrants(ctx context.Context, enterpriseID string) ([]*AdminGrant, error)
	DeleteAdminGrant(ctx context.Context, enterpriseID, username string) error

	// AddOperator makes a person a platform operator (ErrConflict when they are one).
	AddOperator(ctx context.Context, o *Operator) error
	GetOperator(ctx context.Context, enterpriseID, username string) (*Operator, error)
	ListOperators(ctx context.Context) ([]*Operator, error)
	DeleteOperator(ctx context.Context, enterpriseID, username string) error

	// AddSetupToken stores a one-time operator setup token (by hash).
	AddSetupToken(ctx context.Context, t *SetupToken) error
	// TakeSetupToken deletes and returns the unexpired token with that hash: of concurrent takes,
	// one gets it. ErrNotFound when there is none (never issued, used, or expired).
	TakeSetupToken(ctx context.Context, hash string, now time.Time) (*SetupToken, error)
}
