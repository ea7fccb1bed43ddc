package adminapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"

	"github.com/qiao-gateway/qiao/access"
	"github.com/qiao-gateway/qiao/directory"
)

// EnterpriseDeletionPlan is what deleting an enterprise does (or did).
type EnterpriseDeletionPlan struct {
	Enterprise       string `json:"enterprise"`
	Sources          int    `json:"sources"`
	People           int    `json:"people" doc:"they all depart: their sessions and tokens end"`
	Clients          int    `json:"clients" doc:"OIDC clients"`
	ServiceProviders int    `json:"service_providers"`
	Admins           int    `json:"admins" doc:"role grants"`
	Deleted          bool   `json:"deleted"`
}

type EnterpriseWrite struct {
	Name string `json:"name" minLength:"1" maxLength:"100"`
}

// operator returns the caller if they are a platform operator.
func (a *API) operator(ctx context.Context) (*principal, error) {
	p := principalOf(ctx)
	if p == nil {
		return nil, huma.Error401Unauthorized("log on first")
	}
	if !p.operator {
		return nil, huma.Error403Forbidden("only a platform operator may do this")
	}
	return p, nil
}

// enterpriseOperator returns the caller if they are an operator, answering as authorize does for
// an enterprise they hold no role in (404) or one they do hold a role in (403).
func (a *API) enterpriseOperator(ctx context.Context, ent string) (*principal, *directory.Enterprise, error) {
	p, err := a.authorize(ctx, ent, directory.RoleAuditor)
	if err != nil {
		return nil, nil, err
	}
	if !p.operator {
		return nil, nil, huma.Error403Forbidden("only a platform operator may do this")
	}
	e, err := a.Store.GetEnterprise(ctx, ent)
	if errors.Is(err, directory.ErrNotFound) {
		return nil, nil, errNoEnterprise(ent)
	}
	if err != nil {
		return nil, nil, storeError(err)
	}
	return p, e, nil
}

func (a *API) enterpriseFileManaged(e *directory.Enterprise) error {
	if e.Managed == directory.ManagedByConfig {
		return huma.Error409Conflict(fmt.Sprintf("enterprise %s is declared in %s (file-managed): change it there and run qiao apply", e.ID, a.ConfigFile))
	}
	return nil
}

// planEnterpriseDeletion counts what deleting ent removes, and the IDs of its people.
func planEnterpriseDeletion(ctx context.Context, st directory.Store, ent string) (EnterpriseDeletionPlan, []string, error) {
	plan := EnterpriseDeletionPlan{Enterprise: ent}
	srcs, err := st.ListSources(ctx, ent)
	if err != nil {
		return plan, nil, err
	}
	cs, err := st.ListClients(ctx, ent)
	if err != nil {
		return plan, nil, err
	}
	sps, err := st.ListServiceProviders(ctx, ent)
	if err != nil {
		return plan, nil, err
	}
	gs, err := st.ListAdminGrants(ctx, ent)
	if err != nil {
		return plan, nil, err
	}
	var ids []string
	for after := ""; ; {
		us, err := st.ListUsers(ctx, ent, after, 5000)
		if err != nil {
			return plan, nil, err
		}
		for _, u := range us {
			ids = append(ids, u.ID)
		}
		if len(us) < 5000 {
			break
		}
		after = us[len(us)-1].ID
	}
	plan.Sources, plan.Clients, plan.ServiceProviders, plan.Admins, plan.People = len(srcs), len(cs), len(sps), len(gs), len(ids)
	return plan, ids, nil
}

func (a *API) registerEnterprises() {
	tags := []string{"enterprises"}
	huma.Register(a.huma, huma.Operation{OperationID: "create-enterprise", Method: http.MethodPost, Path: "/enterprises",
		Summary: "Create an enterprise (operators)", DefaultStatus: http.StatusCreated, MaxBodyBytes: MaxBody, Tags: tags,
		Description: "An empty enterprise: add its identity sources and grant its owner (PUT …/admins/{username} once the person is in its directory).",
		Errors:      errs(http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)},
		func(ctx context.Context, in *struct {
			Body struct {
				ID   string `json:"id" pattern:"^[a-z0-9][a-z0-9_-]{0,62}$" doc:"lowercase letters, digits, - and _: it appears in every URL of the enterprise"`
				Name string `json:"name" minLength:"1" maxLength:"100"`
			}
		}) (*struct {
			Location string `header:"Location"`
			Body     Enterprise
		}, error) {
			p, err := a.operator(ctx)
			if err != nil {
				return nil, err
			}
			if !utf8.ValidString(in.Body.Name) {
				return nil, invalid("body.name", "must be UTF-8")
			}
			e := &directory.Enterprise{ID: in.Body.ID, Name: in.Body.Name}
			unlock, err := a.lock(ctx, "enterprise "+e.ID)
			if err != nil {
				return nil, err
			}
			defer unlock()
			err = a.Store.InTx(ctx, func(tx directory.Store) error {
				if _, err := tx.GetEnterprise(ctx, e.ID); err == nil {
					return huma.Error409Conflict(fmt.Sprintf("enterprise %q exists", e.ID))
				} else if !errors.Is(err, directory.ErrNotFound) {
					return storeError(err)
				}
				if err := tx.PutEnterprise(ctx, e); err != nil {
					return storeError(err)
				}
				return a.audit(ctx, tx, p, e.ID, "admin.enterprise.create", "", e.ID, nil, Enterprise{ID: e.ID, Name: e.Name, Role: "owner"}, nil)
			})
			if err != nil {
				return nil, err
			}
			return &struct {
				Location string `header:"Location"`
				Body     Enterprise
			}{Prefix + "/enterprises/" + e.ID + "/admins", Enterprise{ID: e.ID, Name: e.Name, Role: string(directory.RoleOwner)}}, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "update-enterprise", Method: http.MethodPatch, Path: "/enterprises/{ent}",
		Summary: "Rename an enterprise (operators)", MaxBodyBytes: MaxBody, Tags: tags, Description: "A file-managed enterprise is 409.",
		Errors: errs(http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)},
		func(ctx context.Context, in *struct {
			EntPath
			Body EnterpriseWrite
		}) (*struct{ Body Enterprise }, error) {
			p, _, err := a.enterpriseOperator(ctx, in.Ent)
			if err != nil {
				return nil, err
			}
			unlock, err := a.lock(ctx, "enterprise "+in.Ent)
			if err != nil {
				return nil, err
			}
			defer unlock()
			var out *directory.Enterprise
			err = a.Store.InTx(ctx, func(tx directory.Store) error {
				cur, err := tx.GetEnterprise(ctx, in.Ent)
				if err != nil {
					return storeError(err)
				}
				if err := a.enterpriseFileManaged(cur); err != nil {
					return err
				}
				next := *cur
				next.Name = in.Body.Name
				if err := tx.PutEnterprise(ctx, &next); err != nil {
					return storeError(err)
				}
				out = &next
				return a.audit(ctx, tx, p, in.Ent, "admin.enterprise.update", "", in.Ent, Enterprise{ID: cur.ID, Name: cur.Name, Role: "owner"},
					Enterprise{ID: next.ID, Name: next.Name, Role: "owner"}, nil)
			})
			if err != nil {
				return nil, err
			}
			return &struct{ Body Enterprise }{Enterprise{ID: out.ID, Name: out.Name, Role: string(directory.RoleOwner)}}, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "plan-enterprise-deletion", Method: http.MethodGet, Path: "/enterprises/{ent}/deletion-plan",
		Summary: "What deleting the enterprise would remove (operators)", Tags: tags, Errors: errs()},
		func(ctx context.Context, in *EntPath) (*struct{ Body EnterpriseDeletionPlan }, error) {
			if _, _, err := a.enterpriseOperator(ctx, in.Ent); err != nil {
				return nil, err
			}
			plan, _, err := planEnterpriseDeletion(ctx, a.Store, in.Ent)
			if err != nil {
				return nil, storeError(err)
			}
			return &struct{ Body EnterpriseDeletionPlan }{plan}, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "delete-enterprise", Method: http.MethodDelete, Path: "/enterprises/{ent}",
		Summary: "Delete an enterprise and everything it holds (operators)", Tags: tags,
		Description: "Read GET …/deletion-plan first, then confirm=true. Its sources, people, apps and grants go in one transaction; the job ending " +
			"its people's sessions and tokens is queued. A file-managed enterprise, or the one the operator logs on through, is 409. " +
			"The audit event is written to the operator's own enterprise.",
		Errors: errs(http.StatusBadRequest, http.StatusConflict)},
		func(ctx context.Context, in *struct {
			EntPath
			Confirm bool `query:"confirm" doc:"must be true: you read the deletion plan"`
		}) (*struct{ Body EnterpriseDeletionPlan }, error) {
			p, _, err := a.enterpriseOperator(ctx, in.Ent)
			if err != nil {
				return nil, err
			}
			if !in.Confirm {
				return nil, huma.Error400BadRequest("add confirm=true once you have read GET " + Prefix + "/enterprises/" + in.Ent + "/deletion-plan")
			}
			if in.Ent == p.enterprise {
				return nil, huma.Error409Conflict("you log on through enterprise " + in.Ent + ": another operator must delete it")
			}
			unlock, err := a.lock(ctx, "enterprise "+in.Ent)
			if err != nil {
				return nil, err
			}
			defer unlock()
			var plan EnterpriseDeletionPlan
			err = a.Store.InTx(ctx, func(tx directory.Store) error {
				cur, err := tx.GetEnterprise(ctx, in.Ent)
				if err != nil {
					return storeError(err)
				}
				if err := a.enterpriseFileManaged(cur); err != nil {
					return err
				}
				var ids []string
				if plan, ids, err = planEnterpriseDeletion(ctx, tx, in.Ent); err != nil {
					return storeError(err)
				}
				if err := tx.DeleteEnterprise(ctx, in.Ent); err != nil {
					return storeError(err)
				}
				if len(ids) > 0 {
					if err := access.QueueUsersDeparted(ctx, tx, in.Ent, ids, p.actor(), "enterprise deleted through the admin API"); err != nil {
						return storeError(err)
					}
				}
				plan.Deleted = true
				return a.audit(ctx, tx, p, p.enterprise, "admin.enterprise.delete", "", in.Ent, Enterprise{ID: cur.ID, Name: cur.Name, Role: "owner"}, nil,
					map[string]any{"plan": plan})
			})
			if err != nil {
				return nil, err
			}
			a.notifyAccess()
			return &struct{ Body EnterpriseDeletionPlan }{plan}, nil
		})
}
