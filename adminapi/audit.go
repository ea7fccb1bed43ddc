package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/qiao-gateway/qiao/directory"
)

// AuditEntry is an event of the audit log.
type AuditEntry struct {
	ID        string          `json:"id" doc:"also the cursor: before=ID reads older events"`
	At        time.Time       `json:"at"`
	Kind      string          `json:"kind" doc:"login.success, admin.source.update, …"`
	Actor     string          `json:"actor,omitempty"`
	UserID    string          `json:"user_id,omitempty"`
	SourceID  string          `json:"source_id,omitempty"`
	IP        string          `json:"ip,omitempty"`
	UserAgent string          `json:"user_agent,omitempty"`
	Outcome   string          `json:"outcome,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	RequestID string          `json:"request_id,omitempty"`
	Detail    json.RawMessage `json:"detail,omitempty" doc:"what changed, secrets masked"`
}

// AuditPage is a page of the audit log, newest first.
type AuditPage struct {
	Items      []AuditEntry `json:"items"`
	NextBefore string       `json:"next_before,omitempty" doc:"pass as before= for the next (older) page; absent on the last"`
}

// auditScan bounds how many stored events one request reads looking for matches of a time filter.
const auditScan = 5000

func (a *API) registerAudit() {
	huma.Register(a.huma, huma.Operation{OperationID: "list-audit", Method: http.MethodGet, Path: "/enterprises/{ent}/audit",
		Summary: "Query the enterprise's audit log, newest first", Tags: []string{"audit"},
		Description: "Filters: kind (exact, or a prefix ending in \".\": admin., login.), user (username or user ID), since/until (RFC 3339). " +
			"Paged by before (next_before of the previous page). A page may hold fewer than limit events while more remain: follow next_before until it is absent.",
		Errors: errs(http.StatusUnprocessableEntity)},
		func(ctx context.Context, in *struct {
			EntPath
			Kind   string    `query:"kind" maxLength:"100"`
			User   string    `query:"user" maxLength:"128" doc:"username or user ID"`
			Since  time.Time `query:"since" doc:"events at or after (RFC 3339)"`
			Until  time.Time `query:"until" doc:"events before (RFC 3339)"`
			Before string    `query:"before" maxLength:"20" pattern:"^[0-9]*$" doc:"cursor: events older than this ID"`
			Limit  int       `query:"limit" minimum:"1" maximum:"500" default:"100"`
		}) (*struct{ Body AuditPage }, error) {
			if _, err := a.authorize(ctx, in.Ent, directory.RoleAuditor); err != nil {
				return nil, err
			}
			q := directory.AuditQuery{EnterpriseID: in.Ent, Kind: in.Kind}
			if in.Before != "" {
				id, err := strconv.ParseInt(in.Before, 10, 64)
				if err != nil || id <= 0 {
					return nil, invalid("query.before", "must be the next_before of a previous page")
				}
				q.BeforeID = id
			}
			if in.User != "" {
				q.UserID = in.User
				if u, err := a.Store.GetUserByUsername(ctx, in.Ent, in.User); err == nil {
					q.UserID = u.ID
				} else if !errors.Is(err, directory.ErrNotFound) {
					return nil, storeError(err)
				}
			}
			if !in.Since.IsZero() && !in.Until.IsZero() && !in.Since.Before(in.Until) {
				return nil, invalid("query.since", "must be before until")
			}
			page := AuditPage{Items: []AuditEntry{}}
			q.Limit = in.Limit + 1
			if !in.Since.IsZero() || !in.Until.IsZero() {
				q.Limit = 500
			}
		scan:
			for scanned := 0; ; {
				evs, err := a.Store.ListAuditEvents(ctx, q)
				if err != nil {
					return nil, storeError(err)
				}
				for _, ev := range evs {
					if len(page.Items) == in.Limit {
						// ev is older than the page's last event: there is more.
						page.NextBefore = page.Items[len(page.Items)-1].ID
						break scan
					}
					scanned++
					if !in.Since.IsZero() && ev.At.Before(in.Since) {
						break scan // newest first: nothing older matches
					}
					if !in.Until.IsZero() && !ev.At.Before(in.Until) {
						continue
					}
					page.Items = append(page.Items, auditView(ev))
				}
				if len(evs) < q.Limit {
					break // the end of the log
				}
				q.BeforeID = evs[len(evs)-1].ID
				if scanned >= auditScan {
					page.NextBefore = strconv.FormatInt(q.BeforeID, 10)
					break
				}
			}
			return &struct{ Body AuditPage }{page}, nil
		})
}

func auditView(ev *directory.AuditEvent) AuditEntry {
	e := AuditEntry{ID: strconv.FormatInt(ev.ID, 10), At: ev.At, Kind: ev.Kind, Actor: ev.Actor, UserID: ev.UserID, SourceID: ev.SourceID,
		IP: ev.IP, UserAgent: ev.UserAgent, Outcome: ev.Outcome, Reason: ev.Reason, RequestID: ev.RequestID}
	if len(ev.Detail) > 0 && json.Valid(ev.Detail) {
		e.Detail = ev.Detail
	}
	return e
}
