package adminapi

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"

	"github.com/qiao-gateway/qiao/access"
	"github.com/qiao-gateway/qiao/broker"
	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/httpx"
	"github.com/qiao-gateway/qiao/internal/password"
	"github.com/qiao-gateway/qiao/session"
)

// The directory: departments and people, and what an administrator does to a person.

// DepartmentNode is a department of a source's org chart, with its sub-departments.
type DepartmentNode struct {
	UpstreamID string            `json:"upstream_id" doc:"the platform's department ID"`
	ParentID   string            `json:"parent_id,omitempty" doc:"the parent's upstream ID; empty for a root"`
	Name       string            `json:"name"`
	Order      int64             `json:"order"`
	Children   []*DepartmentNode `json:"children,omitempty" doc:"absent for a department without sub-departments"`
}

// SourceDepartments is one source's org chart.
type SourceDepartments struct {
	Source      string            `json:"source"`
	Name        string            `json:"name"`
	Kind        string            `json:"kind"`
	Count       int               `json:"count" doc:"departments of the source"`
	Departments []*DepartmentNode `json:"departments" doc:"the roots: departments without a parent, or whose parent is out of the synchronized scope"`
}

// PersonSummary is a person as the people search lists them.
type PersonSummary struct {
	ID          string    `json:"id" doc:"stable for the person's life: the OIDC sub and SAML persistent NameID"`
	Username    string    `json:"username"`
	Name        string    `json:"name"`
	Email       string    `json:"email,omitempty"`
	Mobile      string    `json:"mobile,omitempty"`
	Status      string    `json:"status" enum:"active,disabled,inactive,departed"`
	FileManaged bool      `json:"file_managed" doc:"declared in the config file (a local user): change them there"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// PersonLink is a person's identity at one source.
type PersonLink struct {
	Source      string             `json:"source"`
	SourceName  string             `json:"source_name"`
	SourceKind  string             `json:"source_kind"`
	UpstreamID  string             `json:"upstream_id" doc:"the platform's user ID"`
	UnionID     string             `json:"union_id,omitempty"`
	Departments []PersonDepartment `json:"departments"`
	UpdatedAt   time.Time          `json:"updated_at"`
}

// PersonDepartment is a department a link lists.
type PersonDepartment struct {
	UpstreamID string `json:"upstream_id"`
	Name       string `json:"name,omitempty" doc:"empty when the department is not in the directory (out of scope)"`
}

// PersonSession is a live SSO session of a person (never its cookie).
type PersonSession struct {
	SID              string     `json:"sid,omitempty" doc:"the session's name to apps (ID token sid, SAML SessionIndex)"`
	Source           string     `json:"source,omitempty" doc:"the identity source of the logon"`
	AMR              string     `json:"amr,omitempty" doc:"how the person logged on"`
	LoggedInAt       *time.Time `json:"logged_in_at,omitempty"`
	StartedAt        time.Time  `json:"started_at"`
	Clients          []string   `json:"clients" doc:"OIDC clients it gave tokens to"`
	ServiceProviders []string   `json:"service_providers" doc:"SAML service providers it gave assertions to"`
}

// PersonAuditEvent is an audit event about a person.
type PersonAuditEvent struct {
	ID        int64           `json:"id"`
	At        time.Time       `json:"at"`
	Kind      string          `json:"kind"`
	Actor     string          `json:"actor,omitempty"`
	Source    string          `json:"source,omitempty"`
	IP        string          `json:"ip,omitempty"`
	UserAgent string          `json:"user_agent,omitempty"`
	Outcome   string          `json:"outcome,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	RequestID string          `json:"request_id,omitempty"`
	Detail    json.RawMessage `json:"detail,omitempty"`
}

// Person is one person: their links, live sessions, recent logons and audit.
type Person struct {
	PersonSummary
	Attributes   map[string]string  `json:"attributes" doc:"extended fields"`
	DepartedBy   string             `json:"departed_by,omitempty" doc:"the source whose removal of the person made them depart"`
	HasPassword  bool               `json:"has_password" doc:"a local password is set (it is never shown)"`
	Locked       bool               `json:"locked" doc:"password logon is locked after repeated failures (POST …/unlock)"`
	Links        []PersonLink       `json:"links"`
	Sessions     []PersonSession    `json:"sessions"`
	RecentLogons []PersonAuditEvent `json:"recent_logons" doc:"the last 20 login.* events"`
	RecentAudit  []PersonAuditEvent `json:"recent_audit" doc:"the last 20 audit events about the person"`
}

// PersonAccessEnded is what ending a person's access did.
type PersonAccessEnded struct {
	Sessions      int `json:"sessions" doc:"SSO sessions ended"`
	RefreshTokens int `json:"refresh_tokens" doc:"refresh tokens revoked"`
}

// PersonStatusChange answers disable and enable.
type PersonStatusChange struct {
	Person PersonSummary      `json:"person"`
	Ended  *PersonAccessEnded `json:"ended,omitempty" doc:"disable: the access it ended"`
}

type PersonPath struct {
	Ent string `path:"ent" maxLength:"63" doc:"enterprise ID"`
	ID  string `path:"id" maxLength:"128" doc:"the person's ID or username"`
}

type peoplePage struct {
	Items      []PersonSummary `json:"items"`
	NextCursor string          `json:"next_cursor,omitempty" doc:"pass as cursor for the next page; absent on the last"`
}

func personSummary(u *directory.User) PersonSummary {
	return PersonSummary{ID: u.ID, Username: u.Username, Name: u.Name, Email: u.Email, Mobile: u.Mobile, Status: string(u.Status),
		FileManaged: u.Managed == directory.ManagedByConfig, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

func personAudit(e *directory.AuditEvent) PersonAuditEvent {
	v := PersonAuditEvent{ID: e.ID, At: e.At, Kind: e.Kind, Actor: e.Actor, Source: e.SourceID, IP: e.IP, UserAgent: e.UserAgent,
		Outcome: e.Outcome, Reason: e.Reason, RequestID: e.RequestID}
	if json.Valid(e.Detail) && len(e.Detail) > 0 {
		v.Detail = e.Detail
	}
	return v
}

// The cursor is opaque to callers: the last username of the page, encoded.
func encodeCursor(username string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(username))
}

func decodeCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) == 0 || !utf8.Valid(b) {
		return "", invalid("query.cursor", "not a cursor this API gave")
	}
	return string(b), nil
}

// personOf reads a person of ent by ID or username (404 otherwise).
func (a *API) personOf(ctx context.Context, st directory.Store, ent, id string) (*directory.User, error) {
	u, err := st.GetUser(ctx, ent, id)
	if errors.Is(err, directory.ErrNotFound) {
		u, err = st.GetUserByUsername(ctx, ent, id)
	}
	if errors.Is(err, directory.ErrNotFound) {
		return nil, huma.Error404NotFound(fmt.Sprintf("enterprise %s has no user %q", ent, id))
	}
	if err != nil {
		return nil, storeError(err)
	}
	return u, nil
}

// auditPerson records a change to a person: the event's user is the person changed (as the
// access lifecycle's are), the actor the administrator.
func (a *API) auditPerson(ctx context.Context, tx directory.Store, p *principal, u *directory.User, kind string, before, after any) error {
	b, err := auditDetail(u.Username, before, after, nil)
	if err != nil {
		return err
	}
	return tx.AddAuditEvent(ctx, &directory.AuditEvent{EnterpriseID: u.EnterpriseID, Kind: kind, Actor: p.actor(), UserID: u.ID, IP: p.ip,
		UserAgent: p.ua, Outcome: "ok", RequestID: httpx.RequestID(ctx), Detail: b})
}

// locked reports whether the broker's password lockout holds the person (any of their local
// logon names).
func (a *API) locked(ctx context.Context, ent string, names []string) bool {
	for _, n := range names {
		if b, err := a.State.Get(ctx, password.LockoutKey(ent, n)); err == nil {
			if c, _ := strconv.Atoi(string(b)); c >= broker.MaxUserFailures {
				return true
			}
		}
	}
	return false
}

// logonNames are the names a person types into a local source's password form: their username
// and their local links' upstream IDs.
func (a *API) logonNames(ctx context.Context, u *directory.User) ([]string, bool, error) {
	names := []string{u.Username}
	links, err := a.Store.LinksOfUser(ctx, u.EnterpriseID, u.ID)
	if err != nil {
		return nil, false, err
	}
	local := false
	for _, l := range links {
		src, err := a.Store.GetSource(ctx, u.EnterpriseID, l.SourceID)
		if err != nil {
			continue
		}
		if src.Kind == directory.KindLocal {
			local = true
			if !slices.Contains(names, l.UpstreamID) {
				names = append(names, l.UpstreamID)
			}
		}
	}
	return names, local, nil
}

func (a *API) registerPeople() {
	tags := []string{"directory"}
	huma.Register(a.huma, huma.Operation{OperationID: "list-departments", Method: http.MethodGet, Path: "/enterprises/{ent}/departments",
		Summary: "The departments of each identity source, as trees", Tags: tags, Errors: errs()},
		func(ctx context.Context, in *struct {
			EntPath
			Source string `query:"source" maxLength:"63" doc:"only this source's"`
		}) (*struct {
			Body struct {
				Items []SourceDepartments `json:"items"`
			}
		}, error) {
			if _, err := a.authorize(ctx, in.Ent, directory.RoleAuditor); err != nil {
				return nil, err
			}
			var srcs []*directory.IdentitySource
			if in.Source != "" {
				src, err := a.sourceOf(ctx, a.Store, in.Ent, in.Source)
				if err != nil {
					return nil, err
				}
				srcs = []*directory.IdentitySource{src}
			} else {
				var err error
				if srcs, err = a.Store.ListSources(ctx, in.Ent); err != nil {
					return nil, storeError(err)
				}
			}
			out := &struct {
				Body struct {
					Items []SourceDepartments `json:"items"`
				}
			}{}
			out.Body.Items = []SourceDepartments{}
			for _, src := range srcs {
				ds, err := a.Store.ListDepartments(ctx, in.Ent, src.ID)
				if err != nil {
					return nil, storeError(err)
				}
				out.Body.Items = append(out.Body.Items, SourceDepartments{Source: src.ID, Name: src.Name, Kind: string(src.Kind), Count: len(ds), Departments: departmentTree(ds)})
			}
			return out, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "list-users", Method: http.MethodGet, Path: "/enterprises/{ent}/users",
		Summary: "Search the people of the directory",
		Description: "q matches a prefix of the name, username or email (ignoring the case of ASCII letters), or a whole mobile number. " +
			"Ordered by username, paged by the opaque cursor. A department is one of a source's: name the source too; " +
			"subdepartments=true adds the people of every department below it.",
		Tags: tags, Errors: errs(http.StatusUnprocessableEntity)},
		func(ctx context.Context, in *struct {
			EntPath
			Q          string `query:"q" maxLength:"200" doc:"name, username or email prefix, or mobile number"`
			Source     string `query:"source" maxLength:"63" doc:"people linked to this source"`
			Department string `query:"department" maxLength:"128" doc:"people in this upstream department of the source"`
			SubDeps    bool   `query:"subdepartments" doc:"with department: also the people of the departments below it"`
			Status     string `query:"status" enum:"active,disabled,inactive,departed" doc:"people in this status"`
			Cursor     string `query:"cursor" maxLength:"400" doc:"next_cursor of the previous page"`
			Limit      int    `query:"limit" minimum:"1" maximum:"200" default:"50"`
		}) (*struct{ Body peoplePage }, error) {
			if _, err := a.authorize(ctx, in.Ent, directory.RoleAuditor); err != nil {
				return nil, err
			}
			q := directory.UserSearch{EnterpriseID: in.Ent, Text: in.Q, SourceID: in.Source, DepartmentID: in.Department,
				SubDepartments: in.SubDeps, Status: directory.UserStatus(in.Status), Limit: in.Limit + 1}
			if in.Department != "" && in.Source == "" {
				return nil, invalid("query.department", "a department is one of a source's: name the source too")
			}
			if in.Source != "" {
				if _, err := a.sourceOf(ctx, a.Store, in.Ent, in.Source); err != nil {
					return nil, err
				}
			}
			if in.Cursor != "" {
				after, err := decodeCursor(in.Cursor)
				if err != nil {
					return nil, err
				}
				q.After = after
			}
			us, err := a.Store.SearchUsers(ctx, q)
			if err != nil {
				return nil, storeError(err)
			}
			out := &struct{ Body peoplePage }{}
			out.Body.Items = []PersonSummary{}
			for i, u := range us {
				if i == in.Limit {
					out.Body.NextCursor = encodeCursor(us[i-1].Username)
					break
				}
				out.Body.Items = append(out.Body.Items, personSummary(u))
			}
			return out, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "get-user", Method: http.MethodGet, Path: "/enterprises/{ent}/users/{id}",
		Summary: "A person: links per source, live sessions, recent logons and audit", Tags: tags, Errors: errs()},
		func(ctx context.Context, in *PersonPath) (*struct{ Body Person }, error) {
			if _, err := a.authorize(ctx, in.Ent, directory.RoleAuditor); err != nil {
				return nil, err
			}
			u, err := a.personOf(ctx, a.Store, in.Ent, in.ID)
			if err != nil {
				return nil, err
			}
			v, err := a.person(ctx, u)
			if err != nil {
				return nil, err
			}
			return &struct{ Body Person }{*v}, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "end-user-sessions", Method: http.MethodPost, Path: "/enterprises/{ent}/users/{id}/end-sessions",
		Summary: "End a person's SSO sessions and revoke their refresh tokens",
		Description: "Every session ends (its apps are told: back-channel and SAML logout) and every refresh token is revoked; the person " +
			"may log on again.", Tags: tags, Errors: errs()},
		func(ctx context.Context, in *PersonPath) (*struct{ Body PersonAccessEnded }, error) {
			p, err := a.authorize(ctx, in.Ent, directory.RoleAdmin)
			if err != nil {
				return nil, err
			}
			u, err := a.personOf(ctx, a.Store, in.Ent, in.ID)
			if err != nil {
				return nil, err
			}
			ended, err := a.endAccess(ctx, p, u, "sessions ended by an administrator")
			if err != nil {
				return nil, err
			}
			if err := a.auditPerson(ctx, a.Store, p, u, "admin.user.end-sessions", nil, ended); err != nil {
				return nil, storeError(err)
			}
			return &struct{ Body PersonAccessEnded }{*ended}, nil
		})

	setStatus := func(id, path, summary, desc string, to directory.UserStatus) {
		huma.Register(a.huma, huma.Operation{OperationID: id, Method: http.MethodPost, Path: path, Summary: summary, Description: desc,
			Tags: tags, Errors: errs(http.StatusConflict)},
			func(ctx context.Context, in *PersonPath) (*struct{ Body PersonStatusChange }, error) {
				p, err := a.authorize(ctx, in.Ent, directory.RoleAdmin)
				if err != nil {
					return nil, err
				}
				u, err := a.personOf(ctx, a.Store, in.Ent, in.ID)
				if err != nil {
					return nil, err
				}
				unlock, err := a.lock(ctx, "user "+in.Ent+"/"+u.ID)
				if err != nil {
					return nil, err
				}
				defer unlock()
				changed := false
				err = a.Store.InTx(ctx, func(tx directory.Store) error {
					cur, err := a.personOf(ctx, tx, in.Ent, u.ID)
					if err != nil {
						return err
					}
					u = cur
					if cur.Status == to {
						return nil
					}
					if cur.Managed == directory.ManagedByConfig {
						return huma.Error409Conflict(fmt.Sprintf("user %s is declared in %s (file-managed): change them there and run qiao apply", cur.Username, a.ConfigFile))
					}
					if cur.Status == directory.UserDeparted || cur.Status == directory.UserInactive {
						return huma.Error409Conflict(fmt.Sprintf("user %s is %s: only an active person can be disabled, and only a disabled one enabled", cur.Username, cur.Status))
					}
					before := personSummary(cur)
					cur.Status = to
					if err := tx.UpdateUser(ctx, cur); err != nil {
						return storeError(err)
					}
					changed = true
					kind := "admin.user.enable"
					if to == directory.UserDisabled {
						kind = "admin.user.disable"
					}
					return a.auditPerson(ctx, tx, p, cur, kind, map[string]string{"status": before.Status}, map[string]string{"status": string(to)})
				})
				if err != nil {
					return nil, err
				}
				out := &struct{ Body PersonStatusChange }{PersonStatusChange{Person: personSummary(u)}}
				if to == directory.UserDisabled && changed {
					ended, err := a.endAccess(ctx, p, u, "disabled by an administrator")
					if err != nil {
						return nil, err
					}
					out.Body.Ended = ended
				}
				return out, nil
			})
	}
	setStatus("disable-user", "/enterprises/{ent}/users/{id}/disable", "Disable a person: they cannot log on, and their access ends",
		"Their sessions end and their refresh tokens are revoked. 409 for a person the config file declares, or one departed or not activated. "+
			"A synchronized person's status follows the platform at its next sync: disable them there too.", directory.UserDisabled)
	setStatus("enable-user", "/enterprises/{ent}/users/{id}/enable", "Enable a disabled person",
		"409 for a person the config file declares, or one departed or not activated.", directory.UserActive)

	huma.Register(a.huma, huma.Operation{OperationID: "unlock-user", Method: http.MethodPost, Path: "/enterprises/{ent}/users/{id}/unlock",
		Summary: "Lift the password lockout of a person (after repeated failed logons)", Tags: tags, Errors: errs()},
		func(ctx context.Context, in *PersonPath) (*struct {
			Body struct {
				WasLocked bool `json:"was_locked"`
			}
		}, error) {
			p, err := a.authorize(ctx, in.Ent, directory.RoleAdmin)
			if err != nil {
				return nil, err
			}
			u, err := a.personOf(ctx, a.Store, in.Ent, in.ID)
			if err != nil {
				return nil, err
			}
			names, _, err := a.logonNames(ctx, u)
			if err != nil {
				return nil, storeError(err)
			}
			was := a.locked(ctx, in.Ent, names)
			for _, n := range names {
				if err := a.State.Delete(ctx, password.LockoutKey(in.Ent, n)); err != nil {
					return nil, huma.Error503ServiceUnavailable("the state store does not answer")
				}
			}
			if err := a.auditPerson(ctx, a.Store, p, u, "admin.user.unlock", map[string]bool{"locked": was}, map[string]bool{"locked": false}); err != nil {
				return nil, storeError(err)
			}
			out := &struct {
				Body struct {
					WasLocked bool `json:"was_locked"`
				}
			}{}
			out.Body.WasLocked = was
			return out, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "set-user-password", Method: http.MethodPut, Path: "/enterprises/{ent}/users/{id}/password",
		Summary: "Set the local password of a person of a local directory", MaxBodyBytes: MaxBody, Tags: tags, DefaultStatus: http.StatusNoContent,
		Description: "Stored as an argon2id hash; never returned, and not in the audit log. 409 for a person without a local source's link, " +
			"or one the config file declares.",
		Errors: errs(http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)},
		func(ctx context.Context, in *struct {
			PersonPath
			Body struct {
				Password string `json:"password" minLength:"8" maxLength:"1024" doc:"the new password (write-only)"`
			}
		}) (*struct{}, error) {
			p, err := a.authorize(ctx, in.Ent, directory.RoleAdmin)
			if err != nil {
				return nil, err
			}
			u, err := a.personOf(ctx, a.Store, in.Ent, in.ID)
			if err != nil {
				return nil, err
			}
			_, local, err := a.logonNames(ctx, u)
			if err != nil {
				return nil, storeError(err)
			}
			if !local {
				return nil, huma.Error409Conflict(fmt.Sprintf("user %s has no account in a local directory: their password is their platform's", u.Username))
			}
			hash, err := password.Hash(in.Body.Password, password.Default)
			if err != nil {
				return nil, invalid("body.password", "cannot be used as a password")
			}
			unlock, err := a.lock(ctx, "user "+in.Ent+"/"+u.ID)
			if err != nil {
				return nil, err
			}
			defer unlock()
			err = a.Store.InTx(ctx, func(tx directory.Store) error {
				cur, err := a.personOf(ctx, tx, in.Ent, u.ID)
				if err != nil {
					return err
				}
				if cur.Managed == directory.ManagedByConfig {
					return huma.Error409Conflict(fmt.Sprintf("user %s is declared in %s (file-managed): set password_hash there and run qiao apply", cur.Username, a.ConfigFile))
				}
				had := cur.PasswordHash != ""
				cur.PasswordHash = hash
				if err := tx.UpdateUser(ctx, cur); err != nil {
					return storeError(err)
				}
				return a.auditPerson(ctx, tx, p, cur, "admin.user.password", map[string]bool{"has_password": had}, map[string]bool{"has_password": true})
			})
			if err != nil {
				return nil, err
			}
			return nil, nil
		})
}

// endAccess ends a person's sessions and refresh tokens through the access lifecycle (which
// records user.revoke with the administrator as actor).
func (a *API) endAccess(ctx context.Context, p *principal, u *directory.User, why string) (*PersonAccessEnded, error) {
	if a.Access == nil {
		return nil, huma.Error503ServiceUnavailable("ending access is not available")
	}
	s, t, err := a.Access.EndUserCounted(context.WithoutCancel(ctx), u.EnterpriseID, u.ID, access.Reason{Actor: p.actor(), Text: why})
	if err != nil {
		a.Log.Error("admin API: end a person's access", "enterprise", u.EnterpriseID, "user", u.ID, "err", err)
		return nil, huma.Error503ServiceUnavailable("ending the person's access failed part way; retry")
	}
	return &PersonAccessEnded{Sessions: s, RefreshTokens: t}, nil
}

// person is the full view of a person.
func (a *API) person(ctx context.Context, u *directory.User) (*Person, error) {
	v := &Person{PersonSummary: personSummary(u), Attributes: u.Attributes, DepartedBy: u.DepartedBy, HasPassword: u.PasswordHash != "",
		Links: []PersonLink{}, Sessions: []PersonSession{}, RecentLogons: []PersonAuditEvent{}, RecentAudit: []PersonAuditEvent{}}
	if v.Attributes == nil {
		v.Attributes = map[string]string{}
	}
	links, err := a.Store.LinksOfUser(ctx, u.EnterpriseID, u.ID)
	if err != nil {
		return nil, storeError(err)
	}
	names := []string{u.Username}
	for _, l := range links {
		src, err := a.Store.GetSource(ctx, u.EnterpriseID, l.SourceID)
		if err != nil {
			return nil, storeError(err)
		}
		if src.Kind == directory.KindLocal && !slices.Contains(names, l.UpstreamID) {
			names = append(names, l.UpstreamID)
		}
		pl := PersonLink{Source: src.ID, SourceName: src.Name, SourceKind: string(src.Kind), UpstreamID: l.UpstreamID, UnionID: l.UnionID,
			Departments: []PersonDepartment{}, UpdatedAt: l.UpdatedAt}
		for _, d := range l.Departments {
			pd := PersonDepartment{UpstreamID: d}
			if dep, err := a.Store.GetDepartment(ctx, u.EnterpriseID, src.ID, d); err == nil {
				pd.Name = dep.Name
			}
			pl.Departments = append(pl.Departments, pd)
		}
		v.Links = append(v.Links, pl)
	}
	v.Locked = a.locked(ctx, u.EnterpriseID, names)
	if a.Sessions != nil {
		err := a.Sessions.EachUserSession(ctx, u.EnterpriseID, u.ID, func(s *session.Session) bool {
			ps := PersonSession{SID: s.SID, Source: s.Source, AMR: s.AMR, StartedAt: s.Created, Clients: []string{}, ServiceProviders: []string{}}
			if t := s.LoginTime(); !t.IsZero() {
				ps.LoggedInAt = &t
			}
			ps.Clients = append(ps.Clients, s.RPs...)
			for _, sp := range s.SPs {
				ps.ServiceProviders = append(ps.ServiceProviders, sp.EntityID)
			}
			v.Sessions = append(v.Sessions, ps)
			return false
		})
		if err != nil {
			return nil, huma.Error503ServiceUnavailable("the session store does not answer")
		}
		slices.SortFunc(v.Sessions, func(x, y PersonSession) int { return y.StartedAt.Compare(x.StartedAt) })
	}
	logons, err := a.Store.ListAuditEvents(ctx, directory.AuditQuery{EnterpriseID: u.EnterpriseID, UserID: u.ID, Kind: "login.", Limit: 20})
	if err != nil {
		return nil, storeError(err)
	}
	for _, e := range logons {
		v.RecentLogons = append(v.RecentLogons, personAudit(e))
	}
	evs, err := a.Store.ListAuditEvents(ctx, directory.AuditQuery{EnterpriseID: u.EnterpriseID, UserID: u.ID, Limit: 20})
	if err != nil {
		return nil, storeError(err)
	}
	for _, e := range evs {
		v.RecentAudit = append(v.RecentAudit, personAudit(e))
	}
	return v, nil
}

// departmentTree nests a source's departments under their parents; a department whose parent is
// not in the directory (out of the synchronized scope) is a root. Siblings are in the
// platform's order, then by name.
func departmentTree(ds []*directory.Department) []*DepartmentNode {
	nodes := make(map[string]*DepartmentNode, len(ds))
	for _, d := range ds {
		nodes[d.UpstreamID] = &DepartmentNode{UpstreamID: d.UpstreamID, ParentID: d.ParentID, Name: d.Name, Order: d.Order, Children: []*DepartmentNode{}}
	}
	roots := []*DepartmentNode{}
	for _, d := range ds {
		n := nodes[d.UpstreamID]
		if parent, ok := nodes[d.ParentID]; ok && d.ParentID != d.UpstreamID {
			parent.Children = append(parent.Children, n)
		} else {
			roots = append(roots, n)
		}
	}
	var sortAll func([]*DepartmentNode)
	sortAll = func(ns []*DepartmentNode) {
		slices.SortFunc(ns, func(x, y *DepartmentNode) int {
			return cmp.Or(cmp.Compare(x.Order, y.Order), cmp.Compare(x.Name, y.Name), cmp.Compare(x.UpstreamID, y.UpstreamID))
		})
		for _, n := range ns {
			sortAll(n.Children)
		}
	}
	sortAll(roots)
	return roots
}
