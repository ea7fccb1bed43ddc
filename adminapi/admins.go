package adminapi

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/httpx"
)

// Me is who the caller is and what they may administer.
type Me struct {
	Actor      string `json:"actor" doc:"as the audit log names them: user:USERNAME@ENTERPRISE or client:CLIENT@ENTERPRISE"`
	Kind       string `json:"kind" enum:"user,client"`
	Enterprise string `json:"enterprise" doc:"the enterprise whose directory or OpenID Provider vouches for them"`
	Name       string `json:"name" doc:"username or client ID"`
	Operator   bool   `json:"operator" doc:"a platform operator: owner of every enterprise"`
	Role       string `json:"role,omitempty" doc:"their role in their enterprise"`
}

// Enterprise is an enterprise the caller may see.
type Enterprise struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	FileManaged bool   `json:"file_managed"`
	Role        string `json:"role" doc:"the caller's role in it"`
}

// AdminGrant is a person's role in an enterprise.
type AdminGrant struct {
	Username    string    `json:"username"`
	Role        string    `json:"role" enum:"owner,admin,auditor"`
	FileManaged bool      `json:"file_managed" doc:"granted in the config file: change it there"`
	GrantedBy   string    `json:"granted_by"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func grantView(g *directory.AdminGrant) AdminGrant {
	return AdminGrant{Username: g.Username, Role: string(g.Role), FileManaged: g.Managed == directory.ManagedByConfig, GrantedBy: g.GrantedBy,
		CreatedAt: g.CreatedAt, UpdatedAt: g.UpdatedAt}
}

// Operator is a platform operator.
type Operator struct {
	Enterprise string    `json:"enterprise"`
	Username   string    `json:"username"`
	CreatedAt  time.Time `json:"created_at"`
}

type GrantPath struct {
	Ent      string `path:"ent" maxLength:"63"`
	Username string `path:"username" maxLength:"128"`
}

func (a *API) registerMe() {
	huma.Register(a.huma, huma.Operation{OperationID: "get-me", Method: http.MethodGet, Path: "/me", Summary: "Who the caller is",
		Tags: []string{"access"}, Errors: errs()},
		func(ctx context.Context, _ *struct{}) (*struct{ Body Me }, error) {
			p := principalOf(ctx)
			if p == nil {
				return nil, huma.Error401Unauthorized("log on first")
			}
			role, _, err := a.roleIn(ctx, p, p.enterprise)
			if err != nil {
				return nil, storeError(err)
			}
			return &struct{ Body Me }{Me{Actor: p.actor(), Kind: p.kind, Enterprise: p.enterprise, Name: p.name, Operator: p.operator, Role: string(role)}}, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "list-enterprises", Method: http.MethodGet, Path: "/enterprises",
		Summary: "The enterprises the caller administers (every one for an operator)", Tags: []string{"access"}, Errors: errs()},
		func(ctx context.Context, _ *struct{}) (*struct {
			Body struct {
				Items []Enterprise `json:"items"`
			}
		}, error) {
			p := principalOf(ctx)
			if p == nil {
				return nil, huma.Error401Unauthorized("log on first")
			}
			ents, err := a.Store.ListEnterprises(ctx)
			if err != nil {
				return nil, storeError(err)
			}
			out := &struct {
				Body struct {
					Items []Enterprise `json:"items"`
				}
			}{}
			out.Body.Items = []Enterprise{}
			for _, e := range ents {
				role, _, err := a.roleIn(ctx, p, e.ID)
				if err != nil {
					return nil, storeError(err)
				}
				if role != "" {
					out.Body.Items = append(out.Body.Items, Enterprise{ID: e.ID, Name: e.Name, FileManaged: e.Managed == directory.ManagedByConfig, Role: string(role)})
				}
			}
			return out, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "operator-setup", Method: http.MethodGet, Path: "/operator-setup",
		Summary: "Follow a one-time operator setup link (qiao admins bootstrap)", Tags: []string{"access"},
		Description: "Without a session this sends the browser to log on first and come back (303). With one, the link (single use, short-lived) " +
			"makes the person logged on a platform operator. 410 when the link is unknown, used or expired.",
		Errors: []int{http.StatusGone, http.StatusTooManyRequests, http.StatusServiceUnavailable},
		Responses: map[string]*huma.Response{"303": {Description: "not logged on: log on, then come back",
			Headers: map[string]*huma.Param{"Location": {Schema: &huma.Schema{Type: "string"}}}}}},
		func(ctx context.Context, in *struct {
			Token string `query:"token" maxLength:"128" required:"true"`
		}) (*struct {
			Status   int
			Location string `header:"Location"`
			Body     *Operator
		}, error) {
			type out = struct {
				Status   int
				Location string `header:"Location"`
				Body     *Operator
			}
			p := principalOf(ctx)
			if p == nil || p.kind != "user" {
				back := Prefix + "/operator-setup?" + url.Values{"token": {in.Token}}.Encode()
				return &out{Status: http.StatusSeeOther, Location: "/login?" + url.Values{"return": {back}}.Encode()}, nil
			}
			op, err := a.takeSetup(ctx, p, in.Token)
			if err != nil {
				return nil, err
			}
			return &out{Status: http.StatusOK, Body: &Operator{Enterprise: op.EnterpriseID, Username: op.Username, CreatedAt: op.CreatedAt}}, nil
		})
}

// takeSetup spends a setup link's token and makes p, a person logged on, a platform operator.
// A 410 (unknown, used or expired) counts as a failed authentication.
func (a *API) takeSetup(ctx context.Context, p *principal, token string) (*directory.Operator, error) {
	var op *directory.Operator
	err := a.Store.InTx(ctx, func(tx directory.Store) error {
		t, err := tx.TakeSetupToken(ctx, hashToken(token), a.now())
		if errors.Is(err, directory.ErrNotFound) {
			return huma.Error410Gone("this setup link is unknown, used or expired: run qiao admins bootstrap again")
		}
		if err != nil {
			return storeError(err)
		}
		op = &directory.Operator{EnterpriseID: p.enterprise, Username: p.name, GrantedBy: "setup link by " + t.CreatedBy}
		if err := tx.AddOperator(ctx, op); err != nil && !errors.Is(err, directory.ErrConflict) {
			return storeError(err)
		}
		return a.audit(ctx, tx, p, p.enterprise, "admin.operator.grant", "", p.name, nil, Operator{Enterprise: p.enterprise, Username: p.name}, nil)
	})
	if err != nil {
		var se huma.StatusError
		if errors.As(err, &se) && se.GetStatus() == http.StatusGone {
			a.failed(ctx, p.ip)
		}
		return nil, err
	}
	return op, nil
}

func (a *API) registerAdmins() {
	tags := []string{"access"}
	huma.Register(a.huma, huma.Operation{OperationID: "list-admins", Method: http.MethodGet, Path: "/enterprises/{ent}/admins",
		Summary: "Who administers the enterprise", Tags: tags, Errors: errs()},
		func(ctx context.Context, in *EntPath) (*struct {
			Body struct {
				Items []AdminGrant `json:"items"`
			}
		}, error) {
			if _, err := a.authorize(ctx, in.Ent, directory.RoleAuditor); err != nil {
				return nil, err
			}
			gs, err := a.Store.ListAdminGrants(ctx, in.Ent)
			if err != nil {
				return nil, storeError(err)
			}
			out := &struct {
				Body struct {
					Items []AdminGrant `json:"items"`
				}
			}{}
			out.Body.Items = []AdminGrant{}
			for _, g := range gs {
				out.Body.Items = append(out.Body.Items, grantView(g))
			}
			return out, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "grant-admin", Method: http.MethodPut, Path: "/enterprises/{ent}/admins/{username}",
		Summary: "Grant a person of the enterprise's directory a role (owners)", MaxBodyBytes: MaxBody, Tags: tags,
		Description: "422 when the enterprise's directory has no such person; 409 for a grant the config file makes, or taking the last owner's role.",
		Errors:      errs(http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)},
		func(ctx context.Context, in *struct {
			GrantPath
			Body struct {
				Role string `json:"role" enum:"owner,admin,auditor"`
			}
		}) (*struct{ Body AdminGrant }, error) {
			p, err := a.authorize(ctx, in.Ent, directory.RoleOwner)
			if err != nil {
				return nil, err
			}
			unlock, err := a.lock(ctx, "admins of "+in.Ent)
			if err != nil {
				return nil, err
			}
			defer unlock()
			g, err := ChangeRole(ctx, a.Store, a.roleChange(ctx, p, in.Ent, in.Username, directory.AdminRole(in.Body.Role)))
			if err != nil {
				return nil, roleError(err)
			}
			return &struct{ Body AdminGrant }{grantView(g)}, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "revoke-admin", Method: http.MethodDelete, Path: "/enterprises/{ent}/admins/{username}",
		Summary: "Take a person's role (owners)", Tags: tags, DefaultStatus: http.StatusNoContent, Errors: errs(http.StatusConflict)},
		func(ctx context.Context, in *GrantPath) (*struct{}, error) {
			p, err := a.authorize(ctx, in.Ent, directory.RoleOwner)
			if err != nil {
				return nil, err
			}
			unlock, err := a.lock(ctx, "admins of "+in.Ent)
			if err != nil {
				return nil, err
			}
			defer unlock()
			if _, err := ChangeRole(ctx, a.Store, a.roleChange(ctx, p, in.Ent, in.Username, "")); err != nil {
				return nil, roleError(err)
			}
			return nil, nil
		})
}

// roleChange is a change of role the caller p asks for.
func (a *API) roleChange(ctx context.Context, p *principal, ent, username string, role directory.AdminRole) RoleChange {
	c := RoleChange{Enterprise: ent, Username: username, Role: role, Actor: p.actor(), IP: p.ip, UserAgent: p.ua,
		RequestID: httpx.RequestID(ctx), ConfigFile: a.ConfigFile}
	if p.kind == "user" && p.enterprise == ent {
		c.ActorUserID = p.userID
	}
	return c
}

// roleError answers a refused role change with its status.
func roleError(err error) error {
	var r *RoleRefusal
	if !errors.As(err, &r) {
		return storeError(err)
	}
	switch r.Reason {
	case NoSuchPerson:
		return invalid("path.username", r.Msg)
	case NoSuchGrant:
		return huma.Error404NotFound(r.Msg)
	default:
		return huma.Error409Conflict(r.Msg)
	}
}

// NewSetupToken stores a one-time operator setup token and returns it (the link is
// {external_url}/api/v1/operator-setup?token=TOKEN). Only its hash is kept.
func NewSetupToken(ctx context.Context, st directory.Store, ttl time.Duration, createdBy string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	tok := base64.RawURLEncoding.EncodeToString(b)
	now := time.Now()
	if err := st.AddSetupToken(ctx, &directory.SetupToken{Hash: hashToken(tok), CreatedBy: createdBy, CreatedAt: now, ExpiresAt: now.Add(ttl)}); err != nil {
		return "", err
	}
	return tok, nil
}

// SetupURL is the operator setup link of a token.
func SetupURL(externalURL, token string) string {
	return externalURL + Prefix + "/operator-setup?" + url.Values{"token": {token}}.Encode()
}
