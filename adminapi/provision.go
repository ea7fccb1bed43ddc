package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/provision"
)

// ProvisioningTarget is an enterprise's outbound provisioning target as the API shows it: the
// secrets only as set or not.
type ProvisioningTarget struct {
	Kind              string              `json:"kind" enum:"wecom"`
	Enabled           bool                `json:"enabled"`
	AutoPush          bool                `json:"auto_push" doc:"push every change as it happens (else only reconciles push)"`
	CorpID            string              `json:"corp_id"`
	APIBaseURL        string              `json:"api_base_url,omitempty"`
	RootDepartment    string              `json:"root_department" doc:"the WeCom department qiao's organisation is created under"`
	DefaultDepartment string              `json:"default_department,omitempty" doc:"when set, every pushed person goes into this WeCom department"`
	Scope             string              `json:"scope" enum:"all,sources,departments"`
	Sources           []string            `json:"sources,omitempty"`
	Departments       []string            `json:"departments,omitempty" doc:"SOURCE/DEPARTMENT_ID subtrees (scope departments)"`
	UserIDField       string              `json:"userid_field" doc:"username, email_local, mobile or ext.NAME"`
	FieldMap          map[string]string   `json:"field_map,omitempty" doc:"WeCom field → local field"`
	Proxies           string              `json:"proxies,omitempty" doc:"host1:port1,host2:port2, tried in order"`
	ProxyUsername     string              `json:"proxy_username,omitempty"`
	Departure         string              `json:"departure" enum:"delete,disable"`
	CycleHours        int                 `json:"cycle_hours" minimum:"0" maximum:"168" doc:"full reconcile period; 0 none"`
	DeleteUsers       int                 `json:"delete_users_threshold" minimum:"0"`
	DeleteDepts       int                 `json:"delete_departments_threshold" minimum:"0"`
	Secrets           map[string]string   `json:"secrets" doc:"contact_secret, proxy_password: shown as •••• when set; never returned"`
	Managed           string              `json:"managed,omitempty" doc:"config when config.yaml declares it (change it there)"`
	Status            *ProvisioningStatus `json:"status,omitempty"`
}

// ProvisioningStatus is the outbox and what qiao manages at the target.
type ProvisioningStatus struct {
	Pending  int            `json:"pending" doc:"changes waiting to be pushed"`
	Parked   int            `json:"parked" doc:"objects that keep failing (see …/provisioning/parked)"`
	Managed  map[string]int `json:"managed" doc:"objects qiao created at the target, by type"`
	LastTask *ProvisionTask `json:"last_task,omitempty"`
}

// ProvisioningInput changes a target. Secrets are write-only: omitted ones keep their value.
type ProvisioningInput struct {
	Enabled           *bool             `json:"enabled,omitempty"`
	AutoPush          *bool             `json:"auto_push,omitempty"`
	CorpID            string            `json:"corp_id" minLength:"1" maxLength:"64"`
	APIBaseURL        string            `json:"api_base_url,omitempty" maxLength:"512"`
	RootDepartment    string            `json:"root_department,omitempty" pattern:"^[1-9][0-9]{0,9}$"`
	DefaultDepartment string            `json:"default_department,omitempty" pattern:"^([1-9][0-9]{0,9})?$"`
	Scope             string            `json:"scope,omitempty" enum:"all,sources,departments"`
	Sources           []string          `json:"sources,omitempty" maxItems:"50"`
	Departments       []string          `json:"departments,omitempty" maxItems:"500"`
	UserIDField       string            `json:"userid_field,omitempty" pattern:"^(username|email_local|mobile|ext\\..{1,64})$"`
	FieldMap          map[string]string `json:"field_map,omitempty"`
	Proxies           string            `json:"proxies,omitempty" maxLength:"1024"`
	ProxyUsername     string            `json:"proxy_username,omitempty" maxLength:"128"`
	Departure         string            `json:"departure,omitempty" enum:"delete,disable"`
	CycleHours        int               `json:"cycle_hours,omitempty" minimum:"0" maximum:"168"`
	DeleteUsers       *int              `json:"delete_users_threshold,omitempty" minimum:"0"`
	DeleteDepts       *int              `json:"delete_departments_threshold,omitempty" minimum:"0"`
	Secrets           map[string]string `json:"secrets,omitempty" doc:"contact_secret, proxy_password"`
}

// ProvisionTask is a reconcile.
type ProvisionTask struct {
	ID         string         `json:"id"`
	Trigger    string         `json:"trigger" doc:"initial, manual or schedule"`
	Status     string         `json:"status" doc:"running, succeeded, failed or cancelled"`
	DryRun     bool           `json:"dry_run"`
	Counts     map[string]int `json:"counts" doc:"objects by action (create, update, move, rename, disable, delete, adopt, error, planned-*) and unmanaged"`
	Reason     string         `json:"reason,omitempty"`
	Calls      int64          `json:"calls" doc:"WeCom API calls made"`
	StartedAt  time.Time      `json:"started_at"`
	FinishedAt *time.Time     `json:"finished_at,omitempty"`
}

// ProvisionRecord is what a push did to one object.
type ProvisionRecord struct {
	ID         int64           `json:"id"`
	TaskID     string          `json:"task_id,omitempty" doc:"empty for an incremental push"`
	ObjectType string          `json:"object_type" doc:"user or department"`
	LocalKey   string          `json:"local_key" doc:"the user ID, or SOURCE/DEPARTMENT_ID"`
	RemoteID   string          `json:"remote_id,omitempty" doc:"the WeCom userid or department ID"`
	Action     string          `json:"action"`
	Local      json.RawMessage `json:"local,omitempty"`
	Before     json.RawMessage `json:"before,omitempty" doc:"WeCom before the push (a reconcile: as read; a push: as last pushed)"`
	After      json.RawMessage `json:"after,omitempty"`
	ErrCode    int             `json:"errcode,omitempty"`
	Error      string          `json:"error,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
}

// ParkedItem is an object that keeps failing.
type ParkedItem struct {
	ObjectType string    `json:"object_type"`
	ObjectKey  string    `json:"object_key" doc:"the user ID, or SOURCE/DEPARTMENT_ID"`
	Username   string    `json:"username,omitempty" doc:"a person's username (empty when the person is gone)"`
	Name       string    `json:"name,omitempty" doc:"the person's or department's name"`
	Attempts   int       `json:"attempts"`
	ErrCode    int       `json:"errcode,omitempty"`
	Error      string    `json:"error"`
	Since      time.Time `json:"since"`
}

func ptaskView(t *directory.ProvisionTask) *ProvisionTask {
	v := &ProvisionTask{ID: t.ID, Trigger: t.Trigger, Status: string(t.Status), DryRun: t.DryRun, Counts: t.Counts, Reason: t.Reason, Calls: t.Calls, StartedAt: t.StartedAt}
	if v.Counts == nil {
		v.Counts = map[string]int{}
	}
	if !t.FinishedAt.IsZero() {
		f := t.FinishedAt
		v.FinishedAt = &f
	}
	return v
}

func targetView(t *directory.ProvisionTarget) ProvisioningTarget {
	s := t.Settings
	v := ProvisioningTarget{Kind: string(t.Kind), Enabled: t.Enabled, AutoPush: t.AutoPush, CorpID: t.Config["corp_id"], APIBaseURL: t.Config["api_base_url"],
		RootDepartment: s.RootDepartment, DefaultDepartment: s.DefaultDepartment, Scope: s.Scope, Sources: s.Sources, Departments: s.Departments,
		UserIDField: s.UserIDField, FieldMap: s.FieldMap, Proxies: t.Config["proxies"], ProxyUsername: t.Config["proxy_username"], Departure: s.Departure,
		CycleHours: s.CycleHours, DeleteUsers: s.DeleteUsers, DeleteDepts: s.DeleteDepts, Secrets: map[string]string{}, Managed: t.Managed}
	for k, val := range t.Secrets {
		if val != "" {
			v.Secrets[k] = "••••"
		}
	}
	return v
}

type ProvisioningPath struct {
	Ent string `path:"ent" maxLength:"63"`
}

// provisioner authorizes the caller for ent at the role need, then gives the provisioning service
// and store (503 when this gateway has none): every provisioning endpoint's first step.
func (a *API) provisioner(ctx context.Context, ent string, need directory.AdminRole) (*principal, *provision.Service, directory.ProvisionStore, error) {
	p, err := a.authorize(ctx, ent, need)
	if err != nil {
		return nil, nil, nil, err
	}
	ps, ok := a.Store.(directory.ProvisionStore)
	if a.Provision == nil || !ok {
		return nil, nil, nil, huma.Error503ServiceUnavailable("provisioning is not available on this gateway")
	}
	return p, a.Provision, ps, nil
}

func (a *API) targetOf(ctx context.Context, ps directory.ProvisionStore, ent string) (*directory.ProvisionTarget, error) {
	t, err := ps.GetProvisionTarget(ctx, ent)
	if errors.Is(err, directory.ErrNotFound) {
		return nil, huma.Error404NotFound("enterprise " + ent + " has no provisioning target (PUT …/provisioning creates one)")
	}
	if err != nil {
		return nil, storeError(err)
	}
	return t, nil
}

func (a *API) registerProvisioning() {
	tags := []string{"provisioning"}
	huma.Register(a.huma, huma.Operation{OperationID: "get-provisioning", Method: http.MethodGet, Path: "/enterprises/{ent}/provisioning",
		Summary: "The provisioning target (push into WeCom) and its status", Tags: tags, Errors: errs()},
		func(ctx context.Context, in *ProvisioningPath) (*struct{ Body ProvisioningTarget }, error) {
			_, svc, ps, err := a.provisioner(ctx, in.Ent, directory.RoleAuditor)
			if err != nil {
				return nil, err
			}
			t, err := a.targetOf(ctx, ps, in.Ent)
			if err != nil {
				return nil, err
			}
			v := targetView(t)
			st, err := svc.StatusOf(ctx, in.Ent)
			if err != nil {
				return nil, storeError(err)
			}
			v.Status = &ProvisioningStatus{Pending: st.Pending, Parked: st.Parked, Managed: st.Managed}
			if st.LastTask != nil {
				v.Status.LastTask = ptaskView(st.LastTask)
			}
			return &struct{ Body ProvisioningTarget }{v}, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "put-provisioning", Method: http.MethodPut, Path: "/enterprises/{ent}/provisioning",
		Summary:     "Create or change the provisioning target",
		Description: "Secrets are write-only: an omitted secret keeps its value. 409 when config.yaml declares the target.",
		Tags:        tags, Errors: errs(http.StatusConflict, http.StatusUnprocessableEntity)},
		func(ctx context.Context, in *struct {
			ProvisioningPath
			Body ProvisioningInput
		}) (*struct{ Body ProvisioningTarget }, error) {
			p, _, ps, err := a.provisioner(ctx, in.Ent, directory.RoleAdmin)
			if err != nil {
				return nil, err
			}
			unlock, err := a.lock(ctx, "provisioning/"+in.Ent)
			if err != nil {
				return nil, err
			}
			defer unlock()
			cur, err := ps.GetProvisionTarget(ctx, in.Ent)
			if err != nil && !errors.Is(err, directory.ErrNotFound) {
				return nil, storeError(err)
			}
			if cur != nil && cur.Managed == directory.ManagedByConfig {
				return nil, huma.Error409Conflict("the provisioning target of " + in.Ent + " is declared in " + a.ConfigFile + ": change it there")
			}
			t, err := a.buildTarget(ctx, in.Ent, cur, &in.Body)
			if err != nil {
				return nil, err
			}
			var before any
			if cur != nil {
				before = targetView(cur)
			}
			after := targetView(t)
			if err := a.Store.InTx(ctx, func(tx directory.Store) error {
				if err := tx.(directory.ProvisionStore).PutProvisionTarget(ctx, t); err != nil {
					return err
				}
				return a.audit(ctx, tx, p, in.Ent, "provisioning.update", "", "provisioning", before, after, nil)
			}); err != nil {
				return nil, storeError(err)
			}
			return &struct{ Body ProvisioningTarget }{after}, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "test-provisioning", Method: http.MethodPost, Path: "/enterprises/{ent}/provisioning/test",
		Summary: "Test the target: token, egress IP, write permission, root department", Tags: tags, Errors: errs()},
		func(ctx context.Context, in *ProvisioningPath) (*struct {
			Body struct {
				OK     bool   `json:"ok"`
				Detail string `json:"detail"`
			}
		}, error) {
			_, svc, ps, err := a.provisioner(ctx, in.Ent, directory.RoleAdmin)
			if err != nil {
				return nil, err
			}
			t, err := a.targetOf(ctx, ps, in.Ent)
			if err != nil {
				return nil, err
			}
			out := &struct {
				Body struct {
					OK     bool   `json:"ok"`
					Detail string `json:"detail"`
				}
			}{}
			tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := svc.Test(tctx, t); err != nil {
				out.Body.Detail = scrubSecrets(err.Error())
				return out, nil
			}
			out.Body.OK, out.Body.Detail = true, "the contact-sync secret gets a token, may write contacts from this gateway's address, and root department "+t.Settings.RootDepartment+" exists"
			return out, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "push-provisioning", Method: http.MethodPost, Path: "/enterprises/{ent}/provisioning/push",
		Summary:     "Push now: a full reconcile (or a dry run)",
		Description: "Answers 202 with the task while it runs; follow it at …/provisioning/tasks. force=true goes past deletion protection.",
		Tags:        tags, DefaultStatus: http.StatusAccepted, Errors: errs(http.StatusConflict)},
		func(ctx context.Context, in *struct {
			ProvisioningPath
			DryRun bool `query:"dry_run"`
			Force  bool `query:"force"`
		}) (*struct{ Body ProvisionTask }, error) {
			p, svc, ps, err := a.provisioner(ctx, in.Ent, directory.RoleAdmin)
			if err != nil {
				return nil, err
			}
			if _, err := a.targetOf(ctx, ps, in.Ent); err != nil {
				return nil, err
			}
			t, err := svc.StartReconcile(ctx, in.Ent, provision.ReconcileOptions{DryRun: in.DryRun, Force: in.Force})
			if err != nil {
				return nil, huma.Error409Conflict(err.Error())
			}
			_ = a.audit(ctx, a.Store, p, in.Ent, "provisioning.push", "", "provisioning", nil, nil, map[string]any{"task": t.ID, "dry_run": in.DryRun, "force": in.Force})
			return &struct{ Body ProvisionTask }{*ptaskView(t)}, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "list-provisioning-tasks", Method: http.MethodGet, Path: "/enterprises/{ent}/provisioning/tasks",
		Summary: "Reconcile tasks, newest first", Tags: tags, Errors: errs()},
		func(ctx context.Context, in *struct {
			ProvisioningPath
			Limit int `query:"limit" minimum:"1" maximum:"200" default:"20"`
		}) (*struct{ Body []ProvisionTask }, error) {
			_, _, ps, err := a.provisioner(ctx, in.Ent, directory.RoleAuditor)
			if err != nil {
				return nil, err
			}
			ts, err := ps.ListProvisionTasks(ctx, in.Ent, in.Limit)
			if err != nil {
				return nil, storeError(err)
			}
			out := []ProvisionTask{}
			for _, t := range ts {
				out = append(out, *ptaskView(t))
			}
			return &struct{ Body []ProvisionTask }{out}, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "get-provisioning-task", Method: http.MethodGet, Path: "/enterprises/{ent}/provisioning/tasks/{task}",
		Summary: "One reconcile task (follow a running one here)", Tags: tags, Errors: errs()},
		func(ctx context.Context, in *struct {
			ProvisioningPath
			Task string `path:"task" maxLength:"64"`
		}) (*struct{ Body ProvisionTask }, error) {
			_, _, ps, err := a.provisioner(ctx, in.Ent, directory.RoleAuditor)
			if err != nil {
				return nil, err
			}
			t, err := ps.GetProvisionTask(ctx, in.Task)
			if errors.Is(err, directory.ErrNotFound) || (err == nil && t.EnterpriseID != in.Ent) {
				return nil, huma.Error404NotFound("no provisioning task " + in.Task)
			}
			if err != nil {
				return nil, storeError(err)
			}
			return &struct{ Body ProvisionTask }{*ptaskView(t)}, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "list-provisioning-records", Method: http.MethodGet, Path: "/enterprises/{ent}/provisioning/records",
		Summary: "What pushes did, newest first (of one task, or all)", Tags: tags, Errors: errs()},
		func(ctx context.Context, in *struct {
			ProvisioningPath
			Task   string `query:"task" maxLength:"64"`
			Before int64  `query:"before" minimum:"0" doc:"records older than this ID"`
			Limit  int    `query:"limit" minimum:"1" maximum:"500" default:"100"`
		}) (*struct{ Body []ProvisionRecord }, error) {
			_, _, ps, err := a.provisioner(ctx, in.Ent, directory.RoleAuditor)
			if err != nil {
				return nil, err
			}
			rs, err := ps.ListProvisionRecords(ctx, directory.ProvisionRecordQuery{EnterpriseID: in.Ent, TaskID: in.Task, BeforeID: in.Before, Limit: in.Limit})
			if err != nil {
				return nil, storeError(err)
			}
			out := []ProvisionRecord{}
			for _, r := range rs {
				out = append(out, ProvisionRecord{ID: r.ID, TaskID: r.TaskID, ObjectType: r.ObjectType, LocalKey: r.LocalKey, RemoteID: r.RemoteID, Action: r.Action,
					Local: r.Local, Before: r.Before, After: r.After, ErrCode: r.ErrCode, Error: r.Error, CreatedAt: r.CreatedAt})
			}
			return &struct{ Body []ProvisionRecord }{out}, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "list-provisioning-parked", Method: http.MethodGet, Path: "/enterprises/{ent}/provisioning/parked",
		Summary: "Objects that keep failing, with the platform's errcode and what to do", Tags: tags, Errors: errs()},
		func(ctx context.Context, in *ProvisioningPath) (*struct{ Body []ParkedItem }, error) {
			_, _, ps, err := a.provisioner(ctx, in.Ent, directory.RoleAuditor)
			if err != nil {
				return nil, err
			}
			items, err := ps.ListOutbox(ctx, in.Ent, directory.OutboxParked, 500)
			if err != nil {
				return nil, storeError(err)
			}
			out := []ParkedItem{}
			for _, it := range items {
				v := ParkedItem{ObjectType: it.ObjectType, ObjectKey: it.ObjectKey, Attempts: it.Attempts, ErrCode: it.ErrCode, Error: it.Error, Since: it.CreatedAt}
				v.Username, v.Name = ParkedName(ctx, a.Store, in.Ent, it.ObjectType, it.ObjectKey)
				out = append(out, v)
			}
			return &struct{ Body []ParkedItem }{out}, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "retry-provisioning-parked", Method: http.MethodPost, Path: "/enterprises/{ent}/provisioning/parked/retry",
		Summary:     "Push parked objects again",
		Description: "Puts the named parked objects (or every parked object when none is named) back in the outbox, due now, their attempts reset. Answers how many.",
		Tags:        tags, Errors: errs(http.StatusUnprocessableEntity)},
		func(ctx context.Context, in *struct {
			ProvisioningPath
			Body *struct {
				Objects []ParkedRef `json:"objects,omitempty" maxItems:"500" doc:"empty: every parked object"`
			} `required:"false"`
		}) (*struct {
			Body struct {
				Retried int `json:"retried"`
			}
		}, error) {
			p, svc, ps, err := a.provisioner(ctx, in.Ent, directory.RoleAdmin)
			if err != nil {
				return nil, err
			}
			if _, err := a.targetOf(ctx, ps, in.Ent); err != nil {
				return nil, err
			}
			items, err := ps.ListOutbox(ctx, in.Ent, directory.OutboxParked, 500)
			if err != nil {
				return nil, storeError(err)
			}
			want := map[ParkedRef]bool{}
			if in.Body != nil {
				for _, o := range in.Body.Objects {
					want[o] = true
				}
			}
			out := &struct {
				Body struct {
					Retried int `json:"retried"`
				}
			}{}
			var retried []ParkedRef
			for _, it := range items {
				ref := ParkedRef{ObjectType: it.ObjectType, ObjectKey: it.ObjectKey}
				if len(want) > 0 && !want[ref] {
					continue
				}
				it.Status, it.Attempts, it.NextAt = directory.OutboxPending, 0, time.Time{}
				if err := ps.RetryOutbox(ctx, it); err != nil {
					return nil, storeError(err)
				}
				retried = append(retried, ref)
			}
			out.Body.Retried = len(retried)
			if len(retried) > 0 {
				svc.Wake()
				_ = a.audit(ctx, a.Store, p, in.Ent, "provisioning.retry", "", "provisioning", nil, nil, map[string]any{"objects": retried})
			}
			return out, nil
		})
}

// ParkedRef names a parked object.
type ParkedRef struct {
	ObjectType string `json:"object_type" enum:"user,department"`
	ObjectKey  string `json:"object_key" minLength:"1" maxLength:"300"`
}

// ParkedName is what a person sees of an outbox object: a person's username and name (their
// internal ID names nobody to an admin), a department's name; empty when it is gone.
func ParkedName(ctx context.Context, st directory.Store, ent, typ, key string) (username, name string) {
	switch typ {
	case directory.ProvisionUser:
		if u, err := st.GetUser(ctx, ent, key); err == nil {
			return u.Username, u.Name
		}
	case directory.ProvisionDepartment:
		if src, id, ok := strings.Cut(key, "/"); ok {
			if d, err := st.GetDepartment(ctx, ent, src, id); err == nil {
				return "", d.Name
			}
		}
	}
	return "", ""
}

// buildTarget applies an input to the current target (nil: a new one) and checks it.
func (a *API) buildTarget(ctx context.Context, ent string, cur *directory.ProvisionTarget, in *ProvisioningInput) (*directory.ProvisionTarget, error) {
	t := &directory.ProvisionTarget{EnterpriseID: ent, Kind: directory.KindWeCom, Enabled: true, AutoPush: true, Settings: directory.DefaultProvisionSettings(),
		Config: map[string]string{}, Secrets: map[string]string{}}
	if cur != nil {
		t.CreatedAt, t.Enabled, t.AutoPush = cur.CreatedAt, cur.Enabled, cur.AutoPush
		t.Secrets = maps.Clone(cur.Secrets)
		if t.Secrets == nil {
			t.Secrets = map[string]string{}
		}
	}
	if in.Enabled != nil {
		t.Enabled = *in.Enabled
	}
	if in.AutoPush != nil {
		t.AutoPush = *in.AutoPush
	}
	for k, v := range map[string]string{"corp_id": in.CorpID, "api_base_url": in.APIBaseURL, "proxies": in.Proxies, "proxy_username": in.ProxyUsername} {
		if v != "" {
			t.Config[k] = v
		}
	}
	s := &t.Settings
	if in.RootDepartment != "" {
		s.RootDepartment = in.RootDepartment
	}
	s.DefaultDepartment = in.DefaultDepartment
	if in.Scope != "" {
		s.Scope = in.Scope
	}
	s.Sources, s.Departments, s.FieldMap, s.CycleHours = in.Sources, in.Departments, in.FieldMap, in.CycleHours
	if in.UserIDField != "" {
		s.UserIDField = in.UserIDField
	}
	if in.Departure != "" {
		s.Departure = in.Departure
	}
	if in.DeleteUsers != nil {
		s.DeleteUsers = *in.DeleteUsers
	}
	if in.DeleteDepts != nil {
		s.DeleteDepts = *in.DeleteDepts
	}
	for k, v := range in.Secrets {
		if k != "contact_secret" && k != "proxy_password" {
			return nil, huma.Error422UnprocessableEntity("secrets." + k + " is not a provisioning secret (contact_secret, proxy_password)")
		}
		t.Secrets[k] = v
	}
	if t.Secrets["contact_secret"] == "" {
		return nil, huma.Error422UnprocessableEntity("secrets.contact_secret is required: only the contact-sync (通讯录同步) secret, with edit permission, may write contacts")
	}
	switch s.Scope {
	case directory.ProvisionScopeSources:
		if len(s.Sources) == 0 {
			return nil, huma.Error422UnprocessableEntity("scope sources needs at least one source")
		}
		for _, id := range s.Sources {
			if _, err := a.Store.GetSource(ctx, ent, id); err != nil {
				return nil, huma.Error422UnprocessableEntity(fmt.Sprintf("sources: %q is not a source of %s", id, ent))
			}
		}
	case directory.ProvisionScopeDepartments:
		if len(s.Departments) == 0 {
			return nil, huma.Error422UnprocessableEntity("scope departments needs at least one SOURCE/DEPARTMENT_ID")
		}
	}
	if a.Provision != nil && a.Provision.Open != nil {
		if _, err := a.Provision.Open(t); err != nil {
			return nil, huma.Error422UnprocessableEntity(scrubSecrets(err.Error()))
		}
	}
	return t, nil
}
