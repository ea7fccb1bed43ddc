package adminapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/conditional"

	"github.com/qiao-gateway/qiao/access"
	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/connectors"
	"github.com/qiao-gateway/qiao/federation/wecom"
)

// SyncSettings are how and what a source synchronizes. On a write an omitted field is left as
// it is.
type SyncSettings struct {
	Auto                       *bool           `json:"auto,omitempty" doc:"synchronize every cycle_hours"`
	UserInfo                   *bool           `json:"user_info,omitempty" doc:"synchronize user information (false: departments only)"`
	CycleHours                 *int            `json:"cycle_hours,omitempty" minimum:"1" maximum:"24" doc:"1-24"`
	VerifyAt                   *string         `json:"verify_at,omitempty" maxLength:"5" doc:"daily full verification at HH:MM local time; empty: none"`
	Scope                      *[]string       `json:"scope,omitempty" maxItems:"1000" doc:"upstream department IDs whose subtrees are synchronized; empty: the whole org"`
	MatchBy                    *string         `json:"match_by,omitempty" enum:"userid,email,mobile" doc:"how a new upstream user is matched to an existing local one"`
	DeleteUsersThreshold       *int            `json:"delete_users_threshold,omitempty" minimum:"0" maximum:"10000000" doc:"deletion protection: cancel a task removing more users"`
	DeleteDepartmentsThreshold *int            `json:"delete_departments_threshold,omitempty" minimum:"0" maximum:"10000000" doc:"... or more departments"`
	FieldMappings              *[]FieldMapping `json:"field_mappings,omitempty" maxItems:"100"`
	ExtendedFields             *[]string       `json:"extended_fields,omitempty" maxItems:"100" doc:"extended fields filled from the upstream attribute of the same name"`
}

// FieldMapping maps an upstream attribute to name, email, mobile or ext.NAME.
type FieldMapping struct {
	Upstream string `json:"upstream" minLength:"1" maxLength:"128"`
	Local    string `json:"local" minLength:"1" maxLength:"128" doc:"name, email, mobile or ext.NAME"`
}

// ConsoleValues are what to paste into the platform's console for the source.
type ConsoleValues struct {
	LoginCallbackURL      string `json:"login_callback_url" doc:"the login's redirect URI"`
	EventRequestURL       string `json:"event_request_url" doc:"the event callback's Request URL"`
	CallbackDomain        string `json:"callback_domain" doc:"register as the app's trusted (WeCom) or redirect (DingTalk) domain"`
	HomepageURL           string `json:"homepage_url" doc:"the app's homepage: logs on through this source"`
	DomainVerificationURL string `json:"domain_verification_url,omitempty" doc:"where the WeCom domain ownership file is served"`
	Problem               string `json:"problem,omitempty" doc:"why logins through the source cannot work as configured"`
}

// Source is an identity source as the API shows it: secrets masked.
type Source struct {
	ID            string            `json:"id"`
	Kind          string            `json:"kind"`
	Name          string            `json:"name"`
	Description   string            `json:"description" doc:"shown as the logon title"`
	Enabled       bool              `json:"enabled" doc:"false: closed, no logon through it"`
	Authoritative bool              `json:"authoritative" doc:"a person it removes departs entirely"`
	FileManaged   bool              `json:"file_managed" doc:"declared in the config file: read-only through the API"`
	Sync          SyncSettings      `json:"sync"`
	WeCom         *WeComSettings    `json:"wecom,omitempty"`
	DingTalk      *DingTalkSettings `json:"dingtalk,omitempty"`
	Console       *ConsoleValues    `json:"console,omitempty"`
	CreatedAt     time.Time         `json:"created_at"`
	UpdatedAt     time.Time         `json:"updated_at"`
}

// SourceCreate is a new source.
type SourceCreate struct {
	ID            string            `json:"id" pattern:"^[a-z0-9][a-z0-9_-]{0,62}$" doc:"lowercase letters, digits, - and _: it appears in the callback URLs"`
	Kind          string            `json:"kind" enum:"local,wecom,dingtalk"`
	Name          string            `json:"name" minLength:"2" maxLength:"100" doc:"2-100 characters: Chinese characters, letters, digits, - and _"`
	Description   string            `json:"description,omitempty" maxLength:"200"`
	Enabled       *bool             `json:"enabled,omitempty" doc:"default true"`
	Authoritative *bool             `json:"authoritative,omitempty" doc:"default: true for a platform, false for local"`
	Sync          *SyncSettings     `json:"sync,omitempty"`
	WeCom         *WeComSettings    `json:"wecom,omitempty"`
	DingTalk      *DingTalkSettings `json:"dingtalk,omitempty"`
}

// SourceUpdate changes a source: what it names is replaced, what it omits stays.
type SourceUpdate struct {
	Name          *string           `json:"name,omitempty" minLength:"2" maxLength:"100"`
	Description   *string           `json:"description,omitempty" maxLength:"200"`
	Authoritative *bool             `json:"authoritative,omitempty"`
	Sync          *SyncSettings     `json:"sync,omitempty"`
	WeCom         *WeComSettings    `json:"wecom,omitempty"`
	DingTalk      *DingTalkSettings `json:"dingtalk,omitempty"`
}

// PersonRef names a person.
type PersonRef struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Name     string `json:"name"`
}

// DeletionPlan is what deleting a source does (or did).
type DeletionPlan struct {
	Source         string      `json:"source"`
	Kind           string      `json:"kind"`
	Departments    int         `json:"departments"`
	Links          int         `json:"links"`
	DepartingCount int         `json:"departing_count" doc:"people only this source links: they depart"`
	Departing      []PersonRef `json:"departing" doc:"the first 100 of them"`
	LeavingCount   int         `json:"leaving_count" doc:"people other sources still link: they lose what this source granted"`
	Leaving        []PersonRef `json:"leaving"`
	RefreshTokens  int         `json:"refresh_tokens"`
	Sessions       int         `json:"sessions"`
	Protection     string      `json:"protection,omitempty" doc:"why deletion protection stops it (force=true deletes anyway)"`
	Deleted        bool        `json:"deleted"`
}

type EntPath struct {
	Ent string `path:"ent" maxLength:"63" doc:"enterprise ID"`
}

type SourcePath struct {
	Ent string `path:"ent" maxLength:"63" doc:"enterprise ID"`
	ID  string `path:"id" maxLength:"63" doc:"source ID"`
}

type sourceOut struct {
	ETag     string `header:"ETag"`
	Location string `header:"Location"`
	Body     Source
}

type sourceList struct {
	Body struct {
		Items []Source `json:"items"`
	}
}

// etag is a strong validator of everything stored about the source.
func etag(s *directory.IdentitySource) string {
	b, _ := json.Marshal([]any{s.Kind, s.Name, s.Description, s.Enabled, s.Authoritative, s.Sync, s.Config, s.Secrets, s.Managed, s.UpdatedAt.UnixMilli()})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:12])
}

func quoted(e string) string { return `"` + e + `"` }

func (a *API) view(s *directory.IdentitySource) Source {
	v := Source{ID: s.ID, Kind: string(s.Kind), Name: s.Name, Description: s.Description, Enabled: s.Enabled,
		Authoritative: directory.IsAuthoritative(s), FileManaged: s.Managed == directory.ManagedByConfig, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
	ss := s.Sync
	scope := []string{}
	if !ss.ScopeAll {
		scope = append(scope, ss.ScopeDeptIDs...)
	}
	fm := []FieldMapping{}
	for _, m := range ss.FieldMappings {
		fm = append(fm, FieldMapping{Upstream: m.Upstream, Local: m.Local})
	}
	ext := append([]string{}, ss.ExtendedFields...)
	v.Sync = SyncSettings{Auto: &ss.Auto, UserInfo: &ss.UserInfo, CycleHours: &ss.CycleHours, VerifyAt: &ss.VerifyAt, Scope: &scope,
		MatchBy: &ss.MatchBy, DeleteUsersThreshold: &ss.DeleteUsers, DeleteDepartmentsThreshold: &ss.DeleteDepts, FieldMappings: &fm, ExtendedFields: &ext}
	switch s.Kind {
	case directory.KindWeCom:
		v.WeCom = &WeComSettings{}
		viewSettings(v.WeCom, wecomFields, s.Config, s.Secrets)
	case directory.KindDingTalk:
		v.DingTalk = &DingTalkSettings{}
		viewSettings(v.DingTalk, dingtalkFields, s.Config, s.Secrets)
	}
	if s.Kind != directory.KindLocal {
		base := a.ExternalURL + "/e/" + url.PathEscape(s.EnterpriseID) + "/sources/" + url.PathEscape(s.ID)
		host := ""
		if u, err := url.Parse(a.ExternalURL); err == nil {
			host = u.Host
		}
		c := &ConsoleValues{LoginCallbackURL: base + "/callback", EventRequestURL: base + "/events", CallbackDomain: host,
			HomepageURL: a.ExternalURL + "/login?" + url.Values{"enterprise": {s.EnterpriseID}, "idp_hint": {s.ID}}.Encode()}
		if f := s.Config["domain_verify_file"]; s.Kind == directory.KindWeCom && wecom.IsDomainVerifyFile(f) {
			c.DomainVerificationURL = a.ExternalURL + "/" + f
		}
		if a.CheckCallbackDomain != nil {
			if err := a.CheckCallbackDomain(s); err != nil {
				c.Problem = err.Error()
			}
		}
		v.Console = c
	}
	return v
}

// sourceOf reads a source of ent (404 when there is none).
func (a *API) sourceOf(ctx context.Context, st directory.Store, ent, id string) (*directory.IdentitySource, error) {
	src, err := st.GetSource(ctx, ent, id)
	if errors.Is(err, directory.ErrNotFound) {
		return nil, huma.Error404NotFound(fmt.Sprintf("enterprise %s has no identity source %q", ent, id))
	}
	if err != nil {
		return nil, storeError(err)
	}
	return src, nil
}

// fileManaged refuses to change what the config file declares.
func (a *API) fileManaged(src *directory.IdentitySource) error {
	if src.Managed == directory.ManagedByConfig {
		return huma.Error409Conflict(fmt.Sprintf("identity source %s is declared in %s (file-managed): change it there and run qiao apply", src.ID, a.ConfigFile))
	}
	return nil
}

// invalid is a 422 naming the field at fault.
func invalid(location, msg string) error {
	return huma.NewError(http.StatusUnprocessableEntity, "validation failed", &huma.ErrorDetail{Message: msg, Location: location})
}

var syncFieldPaths = map[string]string{
	"sync.cycle_hours": "body.sync.cycle_hours", "sync.verify_at": "body.sync.verify_at", "sync.match_by": "body.sync.match_by",
	"sync.delete_users": "body.sync.delete_users_threshold", "sync.delete_depts": "body.sync.delete_departments_threshold",
	"sync.scope_dept_ids": "body.sync.scope",
}

// checkSource applies the directory's rules and the kind's connector checks to a source about to
// be stored, as 422s naming the field of the write.
func checkSource(src *directory.IdentitySource) error {
	if err := src.Validate(); err != nil {
		var fe *directory.FieldError
		if errors.As(err, &fe) {
			loc := "body." + fe.Field
			if p, ok := syncFieldPaths[fe.Field]; ok {
				loc = p
			}
			return invalid(loc, fe.Reason)
		}
		return invalid("body", err.Error())
	}
	for i, m := range src.Sync.FieldMappings {
		switch {
		case m.Local == "name", m.Local == "email", m.Local == "mobile", strings.HasPrefix(m.Local, "ext.") && len(m.Local) > 4:
		default:
			return invalid(fmt.Sprintf("body.sync.field_mappings[%d].local", i), "must be name, email, mobile or ext.NAME")
		}
	}
	if src.Kind == directory.KindLocal {
		return nil
	}
	if _, ok := federation.LookupKind(string(src.Kind)); !ok {
		return invalid("body.kind", fmt.Sprintf("%q is not a kind this build links", src.Kind))
	}
	if _, err := connectors.Open(string(src.Kind), src.Config, src.Secrets); err != nil {
		var se *federation.SettingError
		if errors.As(err, &se) {
			return invalid(fieldOfKey(src.Kind, se.Key), se.Reason)
		}
		return invalid(fieldOfKey(src.Kind, ""), err.Error())
	}
	return nil
}

// applyWrite merges the parts of a write every source has: sync settings and kind settings.
func applyWrite(src *directory.IdentitySource, sync *SyncSettings, wc *WeComSettings, dt *DingTalkSettings) error {
	if wc != nil && src.Kind != directory.KindWeCom {
		return invalid("body.wecom", "only a wecom source has these settings")
	}
	if dt != nil && src.Kind != directory.KindDingTalk {
		return invalid("body.dingtalk", "only a dingtalk source has these settings")
	}
	if src.Config == nil {
		src.Config = map[string]string{}
	}
	if src.Secrets == nil {
		src.Secrets = map[string]string{}
	}
	if wc != nil {
		applySettings(wc, wecomFields, src.Config, src.Secrets)
	}
	if dt != nil {
		applySettings(dt, dingtalkFields, src.Config, src.Secrets)
	}
	if sync == nil {
		return nil
	}
	s := &src.Sync
	set := func(dst *bool, v *bool) {
		if v != nil {
			*dst = *v
		}
	}
	set(&s.Auto, sync.Auto)
	set(&s.UserInfo, sync.UserInfo)
	if sync.CycleHours != nil {
		s.CycleHours = *sync.CycleHours
	}
	if sync.VerifyAt != nil {
		s.VerifyAt = *sync.VerifyAt
	}
	if sync.Scope != nil {
		s.ScopeAll, s.ScopeDeptIDs = len(*sync.Scope) == 0, append([]string(nil), *sync.Scope...)
		for i, id := range s.ScopeDeptIDs {
			if id == "" || len(id) > 64 {
				return invalid(fmt.Sprintf("body.sync.scope[%d]", i), "must be an upstream department ID")
			}
		}
	}
	if sync.MatchBy != nil {
		s.MatchBy = *sync.MatchBy
	}
	if sync.DeleteUsersThreshold != nil {
		s.DeleteUsers = *sync.DeleteUsersThreshold
	}
	if sync.DeleteDepartmentsThreshold != nil {
		s.DeleteDepts = *sync.DeleteDepartmentsThreshold
	}
	if sync.FieldMappings != nil {
		s.FieldMappings = nil
		for _, m := range *sync.FieldMappings {
			s.FieldMappings = append(s.FieldMappings, directory.FieldMapping{Upstream: m.Upstream, Local: m.Local})
		}
	}
	if sync.ExtendedFields != nil {
		s.ExtendedFields = append([]string(nil), *sync.ExtendedFields...)
	}
	return nil
}

// putSource stores src, turning the enabled-source limits into a 409 with the reason.
func putSource(ctx context.Context, tx directory.Store, src *directory.IdentitySource) error {
	err := tx.PutSource(ctx, src)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, directory.ErrLimit):
		return huma.Error409Conflict(fmt.Sprintf("%v (at most %d enabled identity sources, and at most %d enabled custom directory)",
			err, directory.MaxEnabledSources, directory.MaxEnabledCustomSources))
	}
	var fe *directory.FieldError
	if errors.As(err, &fe) {
		return checkSource(src)
	}
	return storeError(err)
}

func clone(src *directory.IdentitySource) *directory.IdentitySource {
	c := *src
	c.Config, c.Secrets = maps.Clone(src.Config), maps.Clone(src.Secrets)
	c.Sync.ScopeDeptIDs = append([]string(nil), src.Sync.ScopeDeptIDs...)
	c.Sync.FieldMappings = append([]directory.FieldMapping(nil), src.Sync.FieldMappings...)
	c.Sync.ExtendedFields = append([]string(nil), src.Sync.ExtendedFields...)
	return &c
}

func (a *API) registerSources() {
	tags := []string{"identity sources"}
	huma.Register(a.huma, huma.Operation{OperationID: "list-sources", Method: http.MethodGet, Path: "/enterprises/{ent}/sources",
		Summary: "List an enterprise's identity sources", Tags: tags, Errors: errs()},
		func(ctx context.Context, in *EntPath) (*sourceList, error) {
			if _, err := a.authorize(ctx, in.Ent, directory.RoleAuditor); err != nil {
				return nil, err
			}
			srcs, err := a.Store.ListSources(ctx, in.Ent)
			if err != nil {
				return nil, storeError(err)
			}
			out := &sourceList{}
			out.Body.Items = []Source{}
			for _, s := range srcs {
				out.Body.Items = append(out.Body.Items, a.view(s))
			}
			return out, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "get-source", Method: http.MethodGet, Path: "/enterprises/{ent}/sources/{id}",
		Summary: "Get an identity source", Description: "Secrets are masked. The ETag guards updates (If-Match).", Tags: tags, Errors: errs()},
		func(ctx context.Context, in *SourcePath) (*sourceOut, error) {
			if _, err := a.authorize(ctx, in.Ent, directory.RoleAuditor); err != nil {
				return nil, err
			}
			src, err := a.sourceOf(ctx, a.Store, in.Ent, in.ID)
			if err != nil {
				return nil, err
			}
			return &sourceOut{ETag: quoted(etag(src)), Body: a.view(src)}, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "create-source", Method: http.MethodPost, Path: "/enterprises/{ent}/sources",
		Summary: "Create an identity source", DefaultStatus: http.StatusCreated, MaxBodyBytes: MaxBody, Tags: tags,
		Description: "409 when the ID is taken or the enterprise would have more than 5 enabled sources or more than 1 enabled custom (local) directory.",
		Errors:      errs(http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)},
		func(ctx context.Context, in *struct {
			EntPath
			Body SourceCreate
		}) (*sourceOut, error) {
			p, err := a.authorize(ctx, in.Ent, directory.RoleAdmin)
			if err != nil {
				return nil, err
			}
			b := in.Body
			src := &directory.IdentitySource{EnterpriseID: in.Ent, ID: b.ID, Kind: directory.SourceKind(b.Kind), Name: b.Name,
				Description: b.Description, Enabled: b.Enabled == nil || *b.Enabled, Authoritative: b.Authoritative, Sync: directory.DefaultSyncSettings()}
			if err := applyWrite(src, b.Sync, b.WeCom, b.DingTalk); err != nil {
				return nil, err
			}
			if err := checkSource(src); err != nil {
				return nil, err
			}
			unlock, err := a.lock(ctx, "source "+in.Ent+"/"+b.ID)
			if err != nil {
				return nil, err
			}
			defer unlock()
			err = a.Store.InTx(ctx, func(tx directory.Store) error {
				if _, err := tx.GetSource(ctx, in.Ent, b.ID); err == nil {
					return huma.Error409Conflict(fmt.Sprintf("enterprise %s already has an identity source %q", in.Ent, b.ID))
				} else if !errors.Is(err, directory.ErrNotFound) {
					return storeError(err)
				}
				if err := putSource(ctx, tx, src); err != nil {
					return err
				}
				return a.audit(ctx, tx, p, in.Ent, "admin.source.create", src.ID, src.ID, nil, a.view(src), nil)
			})
			if err != nil {
				return nil, err
			}
			return &sourceOut{ETag: quoted(etag(src)), Location: Prefix + "/enterprises/" + in.Ent + "/sources/" + src.ID, Body: a.view(src)}, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "update-source", Method: http.MethodPatch, Path: "/enterprises/{ent}/sources/{id}",
		Summary: "Change an identity source", MaxBodyBytes: MaxBody, Tags: tags,
		Description: "What the body names is replaced; what it omits stays (a secret too: omit it or send its masked value to keep it, \"\" to clear it). " +
			"If-Match with the source's ETag makes the change conditional (412 when it changed meanwhile). A file-managed source is 409.",
		Errors: errs(http.StatusBadRequest, http.StatusConflict, http.StatusPreconditionFailed, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)},
		func(ctx context.Context, in *struct {
			SourcePath
			conditional.Params
			Body SourceUpdate
		}) (*sourceOut, error) {
			p, err := a.authorize(ctx, in.Ent, directory.RoleAdmin)
			if err != nil {
				return nil, err
			}
			unlock, err := a.lock(ctx, "source "+in.Ent+"/"+in.ID)
			if err != nil {
				return nil, err
			}
			defer unlock()
			var out *directory.IdentitySource
			err = a.Store.InTx(ctx, func(tx directory.Store) error {
				cur, err := a.sourceOf(ctx, tx, in.Ent, in.ID)
				if err != nil {
					return err
				}
				if err := a.precondition(&in.Params, cur); err != nil {
					return err
				}
				if err := a.fileManaged(cur); err != nil {
					return err
				}
				src := clone(cur)
				b := in.Body
				if b.Name != nil {
					src.Name = *b.Name
				}
				if b.Description != nil {
					src.Description = *b.Description
				}
				if b.Authoritative != nil {
					v := *b.Authoritative
					src.Authoritative = &v
				}
				if err := applyWrite(src, b.Sync, b.WeCom, b.DingTalk); err != nil {
					return err
				}
				if err := checkSource(src); err != nil {
					return err
				}
				if err := putSource(ctx, tx, src); err != nil {
					return err
				}
				out = src
				return a.audit(ctx, tx, p, in.Ent, "admin.source.update", src.ID, src.ID, a.view(cur), a.view(src), nil)
			})
			if err != nil {
				return nil, err
			}
			return &sourceOut{ETag: quoted(etag(out)), Body: a.view(out)}, nil
		})

	for _, open := range []bool{true, false} {
		verb, summary := "close", "Close an identity source: no logon through it; its sessions and refresh tokens end (their job is queued); its events wait"
		if open {
			verb, summary = "open", "Open (enable) an identity source: 409 past the enabled-source limits"
		}
		huma.Register(a.huma, huma.Operation{OperationID: verb + "-source", Method: http.MethodPost, Path: "/enterprises/{ent}/sources/{id}/" + verb,
			Summary: summary, Tags: tags, Errors: errs(http.StatusConflict, http.StatusPreconditionFailed)},
			func(ctx context.Context, in *struct {
				SourcePath
				conditional.Params
			}) (*sourceOut, error) {
				p, err := a.authorize(ctx, in.Ent, directory.RoleAdmin)
				if err != nil {
					return nil, err
				}
				unlock, err := a.lock(ctx, "source "+in.Ent+"/"+in.ID)
				if err != nil {
					return nil, err
				}
				defer unlock()
				var out *directory.IdentitySource
				changed := false
				err = a.Store.InTx(ctx, func(tx directory.Store) error {
					cur, err := a.sourceOf(ctx, tx, in.Ent, in.ID)
					if err != nil {
						return err
					}
					if err := a.precondition(&in.Params, cur); err != nil {
						return err
					}
					if err := a.fileManaged(cur); err != nil {
						return err
					}
					changed, err = access.SetSourceEnabled(ctx, tx, in.Ent, in.ID, open, p.actor(), verb+"d through the admin API")
					if errors.Is(err, directory.ErrLimit) {
						return huma.Error409Conflict(fmt.Sprintf("%v (at most %d enabled identity sources, and at most %d enabled custom directory)",
							err, directory.MaxEnabledSources, directory.MaxEnabledCustomSources))
					}
					if err != nil {
						return storeError(err)
					}
					if out, err = tx.GetSource(ctx, in.Ent, in.ID); err != nil {
						return storeError(err)
					}
					if !changed {
						return nil
					}
					return a.audit(ctx, tx, p, in.Ent, "admin.source."+verb, in.ID, in.ID, a.view(cur), a.view(out), nil)
				})
				if err != nil {
					return nil, err
				}
				if changed && !open {
					a.notifyAccess()
				}
				return &sourceOut{ETag: quoted(etag(out)), Body: a.view(out)}, nil
			})
	}

	huma.Register(a.huma, huma.Operation{OperationID: "plan-source-deletion", Method: http.MethodGet, Path: "/enterprises/{ent}/sources/{id}/deletion-plan",
		Summary: "What deleting the source would do", Description: "Departments and links removed, who departs, who loses what it granted, the refresh tokens and sessions that end, and whether deletion protection stops it.",
		Tags: tags, Errors: errs()},
		func(ctx context.Context, in *SourcePath) (*struct{ Body DeletionPlan }, error) {
			if _, err := a.authorize(ctx, in.Ent, directory.RoleAuditor); err != nil {
				return nil, err
			}
			if _, err := a.sourceOf(ctx, a.Store, in.Ent, in.ID); err != nil {
				return nil, err
			}
			plan, err := access.PlanSourceDeletion(ctx, a.Store, a.Sessions, in.Ent, in.ID)
			if err != nil {
				return nil, storeError(err)
			}
			return &struct{ Body DeletionPlan }{planView(plan, false)}, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "delete-source", Method: http.MethodDelete, Path: "/enterprises/{ent}/sources/{id}",
		Summary: "Delete an identity source", Tags: tags,
		Description: "Read GET …/deletion-plan first, then confirm=true. Deletion protection (the source's thresholds) refuses with 409 unless force=true. " +
			"Its departments and links go in one transaction; the people it alone linked depart; the job ending their sessions and tokens is queued.",
		Errors: errs(http.StatusBadRequest, http.StatusConflict, http.StatusPreconditionFailed, http.StatusUnprocessableEntity)},
		func(ctx context.Context, in *struct {
			SourcePath
			conditional.Params
			Confirm bool `query:"confirm" doc:"must be true: you read the deletion plan"`
			Force   bool `query:"force" doc:"delete past deletion protection"`
		}) (*struct{ Body DeletionPlan }, error) {
			p, err := a.authorize(ctx, in.Ent, directory.RoleAdmin)
			if err != nil {
				return nil, err
			}
			if !in.Confirm {
				return nil, huma.Error400BadRequest("add confirm=true once you have read GET " + Prefix + "/enterprises/" + in.Ent + "/sources/" + in.ID + "/deletion-plan")
			}
			unlock, err := a.lock(ctx, "source "+in.Ent+"/"+in.ID)
			if err != nil {
				return nil, err
			}
			defer unlock()
			var plan *access.SourceDeletion
			err = a.Store.InTx(ctx, func(tx directory.Store) error {
				cur, err := a.sourceOf(ctx, tx, in.Ent, in.ID)
				if err != nil {
					return err
				}
				if err := a.precondition(&in.Params, cur); err != nil {
					return err
				}
				if err := a.fileManaged(cur); err != nil {
					return err
				}
				plan, err = access.DeleteSourceTx(ctx, tx, in.Ent, in.ID, in.Force, p.actor(), "deleted through the admin API")
				if errors.Is(err, access.ErrProtected) {
					return huma.Error409Conflict("deletion protection: " + plan.Protection + "; add force=true to delete anyway")
				}
				if err != nil {
					return storeError(err)
				}
				pv := planView(plan, true)
				return a.audit(ctx, tx, p, in.Ent, "admin.source.delete", in.ID, in.ID, a.view(cur), nil, map[string]any{"plan": pv, "force": in.Force})
			})
			if err != nil {
				return nil, err
			}
			a.notifyAccess()
			return &struct{ Body DeletionPlan }{planView(plan, true)}, nil
		})
}

func planView(p *access.SourceDeletion, deleted bool) DeletionPlan {
	refs := func(us []*directory.User) []PersonRef {
		out := []PersonRef{}
		for i, u := range us {
			if i == 100 {
				break
			}
			out = append(out, PersonRef{ID: u.ID, Username: u.Username, Name: u.Name})
		}
		return out
	}
	return DeletionPlan{Source: p.SourceID, Kind: string(p.Kind), Departments: p.Departments, Links: p.Links,
		DepartingCount: len(p.Departing), Departing: refs(p.Departing), LeavingCount: len(p.Leaving), Leaving: refs(p.Leaving),
		RefreshTokens: p.RefreshTokens, Sessions: max(p.Sessions, 0), Protection: p.Protection, Deleted: deleted}
}

// precondition applies If-Match / If-None-Match / If-Unmodified-Since to the stored source: 412
// when the source changed since the caller read it.
func (a *API) precondition(p *conditional.Params, cur *directory.IdentitySource) error {
	if !p.HasConditionalParams() {
		return nil
	}
	if err := p.PreconditionFailed(etag(cur), cur.UpdatedAt); err != nil {
		return err
	}
	return nil
}

func (a *API) notifyAccess() {
	if a.AccessNotify == nil {
		return
	}
	select {
	case a.AccessNotify <- struct{}{}:
	default:
	}
}
