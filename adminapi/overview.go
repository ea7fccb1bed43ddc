package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/state"
)

// Overview is what the console's first screen shows of an enterprise: logons per hour, live
// sessions, and per source its last event received and its last connectivity test.
type Overview struct {
	Logons       LogonStats       `json:"logons"`
	SessionsLive int64            `json:"sessions_live" doc:"live SSO sessions of the enterprise's people"`
	Sources      []SourceOverview `json:"sources"`
	At           time.Time        `json:"at" doc:"when this was read"`
}

// LogonStats counts logons (the broker's login.success and login.failure audit events).
type LogonStats struct {
	Since   time.Time   `json:"since" doc:"the start of the first hour counted"`
	Hours   []LogonHour `json:"hours" doc:"one per hour, oldest first; the last is the current hour so far"`
	Success int         `json:"success"`
	Failure int         `json:"failure"`
}

// LogonHour is one hour's logons.
type LogonHour struct {
	Start   time.Time `json:"start"`
	Success int       `json:"success"`
	Failure int       `json:"failure"`
}

// SourceOverview is one identity source's last event and last connectivity test.
type SourceOverview struct {
	ID        string              `json:"id"`
	Kind      string              `json:"kind"`
	LastEvent *SourceEventBrief   `json:"last_event,omitempty" doc:"the last event received from the platform; absent: none yet"`
	LastTest  *ConnectivityReport `json:"last_test,omitempty" doc:"the last connectivity test's report (kept 90 days); absent: not tested"`
}

// SourceEventBrief is an event received from a platform, without its payload.
type SourceEventBrief struct {
	ReceivedAt time.Time `json:"received_at"`
	EventType  string    `json:"event_type"`
	Status     string    `json:"status" enum:"pending,applied,failed"`
	Error      string    `json:"error,omitempty"`
}

// lastTestTTL is how long a connectivity test's report is kept for the overview.
const lastTestTTL = 90 * 24 * time.Hour

func lastTestKey(ent, src string) string { return "conntest:" + ent + ":" + src }

// saveLastTest keeps a connectivity report for the overview. It is a convenience: a failure to
// keep it does not fail the test.
func (a *API) saveLastTest(ctx context.Context, ent string, rep ConnectivityReport) {
	if a.State == nil {
		return
	}
	b, err := json.Marshal(rep)
	if err == nil {
		err = a.State.Put(context.WithoutCancel(ctx), lastTestKey(ent, rep.Source), b, lastTestTTL)
	}
	if err != nil {
		a.Log.Warn("admin api: keep the connectivity report", "enterprise", ent, "source", rep.Source, "err", err)
	}
}

func (a *API) lastTest(ctx context.Context, ent, src string) (*ConnectivityReport, error) {
	if a.State == nil {
		return nil, nil
	}
	b, err := a.State.Get(ctx, lastTestKey(ent, src))
	if errors.Is(err, state.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rep ConnectivityReport
	if json.Unmarshal(b, &rep) != nil {
		return nil, nil
	}
	return &rep, nil
}

func (a *API) registerOverview() {
	huma.Register(a.huma, huma.Operation{OperationID: "get-overview", Method: http.MethodGet, Path: "/enterprises/{ent}/overview",
		Summary: "Logons per hour, live sessions, and each source's last event and last connectivity test", Tags: []string{"enterprises"},
		Description: "Logons are the broker's login.success and login.failure audit events, per hour for the last `hours` hours (the last one is the current hour so far). " +
			"sessions_live counts the SSO sessions not yet ended or timed out. last_test is the report of the last POST …/sources/{id}/test, kept 90 days.",
		Errors: errs(http.StatusServiceUnavailable)},
		func(ctx context.Context, in *struct {
			EntPath
			Hours int `query:"hours" minimum:"1" maximum:"168" default:"24" doc:"how many hours of logons"`
		}) (*struct{ Body Overview }, error) {
			if _, err := a.authorize(ctx, in.Ent, directory.RoleAuditor); err != nil {
				return nil, err
			}
			hours := in.Hours
			if hours <= 0 {
				hours = 24
			}
			now := a.now()
			out := Overview{At: now, Sources: []SourceOverview{}}
			since := now.Truncate(time.Hour).Add(-time.Duration(hours-1) * time.Hour)
			out.Logons = LogonStats{Since: since, Hours: make([]LogonHour, hours)}
			for i := range out.Logons.Hours {
				out.Logons.Hours[i].Start = since.Add(time.Duration(i) * time.Hour)
			}
			counts, err := a.Store.CountAuditEvents(ctx, in.Ent, "login.", since, time.Hour)
			if err != nil {
				return nil, storeError(err)
			}
			for _, c := range counts {
				if c.Bucket < 0 || c.Bucket >= hours {
					continue // an event stamped in the future (a replica's clock ahead)
				}
				h := &out.Logons.Hours[c.Bucket]
				switch c.Kind {
				case "login.success":
					h.Success += c.Count
					out.Logons.Success += c.Count
				case "login.failure":
					h.Failure += c.Count
					out.Logons.Failure += c.Count
				}
			}
			if a.Sessions != nil {
				if out.SessionsLive, err = a.Sessions.CountEnterprise(ctx, in.Ent); err != nil {
					a.Log.Error("admin api: count sessions", "enterprise", in.Ent, "err", err)
					return nil, huma.Error503ServiceUnavailable("the session store cannot be read right now")
				}
			}
			srcs, err := a.Store.ListSources(ctx, in.Ent)
			if err != nil {
				return nil, storeError(err)
			}
			for _, s := range srcs {
				so := SourceOverview{ID: s.ID, Kind: string(s.Kind)}
				if s.Kind != directory.KindLocal {
					evs, err := a.Store.ListSourceEvents(ctx, in.Ent, s.ID, 1)
					if err != nil {
						return nil, storeError(err)
					}
					if len(evs) > 0 {
						e := evs[0]
						so.LastEvent = &SourceEventBrief{ReceivedAt: e.ReceivedAt, EventType: e.EventType, Status: e.Status, Error: scrubSecrets(e.Error)}
					}
				}
				if so.LastTest, err = a.lastTest(ctx, in.Ent, s.ID); err != nil {
					a.Log.Error("admin api: read the last connectivity report", "enterprise", in.Ent, "source", s.ID, "err", err)
					return nil, huma.Error503ServiceUnavailable("the state store cannot be read right now")
				}
				out.Sources = append(out.Sources, so)
			}
			return &struct{ Body Overview }{out}, nil
		})
}
