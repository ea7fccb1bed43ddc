package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/dirsync"
)

// SyncTask is one run of a source's synchronization.
type SyncTask struct {
	ID         string         `json:"id"`
	Source     string         `json:"source"`
	Trigger    string         `json:"trigger" doc:"manual, schedule, verification, event or consent"`
	Status     string         `json:"status" doc:"running, succeeded, failed or cancelled"`
	DryRun     bool           `json:"dry_run"`
	ReadMode   string         `json:"read_mode,omitempty" doc:"how the upstream was read"`
	Counts     map[string]int `json:"counts" doc:"objects by action: create, update, move, delete, unchanged, skip, error"`
	Reason     string         `json:"reason,omitempty" doc:"why it failed or was cancelled"`
	StartedAt  time.Time      `json:"started_at"`
	FinishedAt *time.Time     `json:"finished_at,omitempty"`
}

// PlannedChange is one change a dry run found.
type PlannedChange struct {
	Action     string `json:"action"`
	ObjectType string `json:"object_type" doc:"user or department"`
	UpstreamID string `json:"upstream_id"`
	Name       string `json:"name,omitempty"`
	Error      string `json:"error,omitempty"`
}

// SyncRun is the answer to a run: the task (its status running unless wait=true), or a dry
// run's plan.
type SyncRun struct {
	Task    *SyncTask       `json:"task,omitempty"`
	DryRun  bool            `json:"dry_run"`
	Status  string          `json:"status" doc:"a dry run: succeeded, cancelled (deletion protection) or failed; else the task's"`
	Reason  string          `json:"reason,omitempty"`
	Counts  map[string]int  `json:"counts,omitempty"`
	Changes []PlannedChange `json:"changes,omitempty" doc:"a dry run's first 200 changes"`
}

// SyncRecord is what a task did to one object.
type SyncRecord struct {
	ID          int64           `json:"id"`
	ObjectType  string          `json:"object_type"`
	UpstreamID  string          `json:"upstream_id"`
	Action      string          `json:"action"`
	Upstream    json.RawMessage `json:"upstream,omitempty" doc:"the upstream data as read"`
	LocalBefore json.RawMessage `json:"local_before,omitempty"`
	LocalAfter  json.RawMessage `json:"local_after,omitempty"`
	Error       string          `json:"error,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
}

func taskView(t *directory.SyncTask) *SyncTask {
	v := &SyncTask{ID: t.ID, Source: t.SourceID, Trigger: string(t.Trigger), Status: string(t.Status), DryRun: t.DryRun, ReadMode: t.ReadMode,
		Counts: t.Counts, Reason: t.Reason, StartedAt: t.StartedAt}
	if v.Counts == nil {
		v.Counts = map[string]int{}
	}
	if !t.FinishedAt.IsZero() {
		f := t.FinishedAt
		v.FinishedAt = &f
	}
	return v
}

type TaskPath struct {
	Ent  string `path:"ent" maxLength:"63"`
	ID   string `path:"id" maxLength:"63"`
	Task string `path:"task" maxLength:"64"`
}

// taskOf reads a task of the source (404 for another source's or enterprise's).
func (a *API) taskOf(ctx context.Context, ent, src, id string) (*directory.SyncTask, error) {
	t, err := a.Store.GetSyncTask(ctx, id)
	if errors.Is(err, directory.ErrNotFound) || (err == nil && (t.EnterpriseID != ent || t.SourceID != src)) {
		return nil, huma.Error404NotFound(fmt.Sprintf("source %s of %s has no sync task %q", src, ent, id))
	}
	if err != nil {
		return nil, storeError(err)
	}
	return t, nil
}

func (a *API) registerSync() {
	tags := []string{"sync"}
	huma.Register(a.huma, huma.Operation{OperationID: "run-sync", Method: http.MethodPost, Path: "/enterprises/{ent}/sources/{id}/sync",
		Summary: "Synchronize the source now, or preview (dry run)",
		Description: "A run records a task and answers 202 with it while it runs (follow it at …/sync/tasks/{task}); wait=true answers when it is done. " +
			"A dry run reads the upstream and plans, changes nothing and records nothing. 409 when the source is closed (a dry run still previews), " +
			"is the local directory, or a task of it is running.",
		Tags: tags, DefaultStatus: http.StatusAccepted, Errors: errs(http.StatusConflict, http.StatusUnprocessableEntity),
		Responses: map[string]*huma.Response{"200": {Description: "the dry run's plan, or the finished task (wait=true)",
			Content: map[string]*huma.MediaType{"application/json": {Schema: &huma.Schema{Ref: "#/components/schemas/SyncRun"}}}}}},
		func(ctx context.Context, in *struct {
			SourcePath
			DryRun bool `query:"dry_run" doc:"plan only"`
			Wait   bool `query:"wait" doc:"answer once the task is done"`
		}) (*struct {
			Status   int
			Location string `header:"Location"`
			Body     SyncRun
		}, error) {
			p, err := a.authorize(ctx, in.Ent, directory.RoleAdmin)
			if err != nil {
				return nil, err
			}
			src, err := a.sourceOf(ctx, a.Store, in.Ent, in.ID)
			if err != nil {
				return nil, err
			}
			if src.Kind == directory.KindLocal {
				return nil, huma.Error409Conflict("source " + src.ID + " is the enterprise's own directory: there is nothing upstream to synchronize")
			}
			if !src.Enabled && !in.DryRun {
				return nil, huma.Error409Conflict("source " + src.ID + " is closed: open it to synchronize, or preview with dry_run=true")
			}
			type out = struct {
				Status   int
				Location string `header:"Location"`
				Body     SyncRun
			}
			if in.DryRun {
				res, err := a.Sync.Run(ctx, in.Ent, in.ID, dirsync.Options{Trigger: directory.TriggerManual, DryRun: true})
				if res == nil || res.Plan == nil {
					if err == nil {
						err = errors.New("no plan")
					}
					return &out{Status: http.StatusOK, Body: SyncRun{DryRun: true, Status: string(directory.TaskFailed), Reason: err.Error()}}, nil
				}
				run := SyncRun{DryRun: true, Status: string(directory.TaskSucceeded), Counts: res.Plan.Counts(), Changes: changesOf(res.Plan, 200)}
				if err != nil {
					run.Status, run.Reason = string(directory.TaskFailed), err.Error()
				} else if res.Plan.UserDeletes > src.Sync.DeleteUsers || res.Plan.DeptDeletes > src.Sync.DeleteDepts {
					run.Status = string(directory.TaskCancelled)
					run.Reason = fmt.Sprintf("deletion protection: the task would remove %d users (threshold %d) and %d departments (threshold %d)",
						res.Plan.UserDeletes, src.Sync.DeleteUsers, res.Plan.DeptDeletes, src.Sync.DeleteDepts)
				}
				return &out{Status: http.StatusOK, Body: run}, nil
			}
			// The task is recorded before the first progress report, while this run holds the
			// source's lock: the source's newest task is this one.
			started := make(chan *directory.SyncTask, 1)
			done := make(chan error, 1)
			once := false
			report := func(dirsync.Progress) {
				if once {
					return
				}
				once = true
				ts, _ := a.Store.ListSyncTasks(context.WithoutCancel(ctx), in.Ent, in.ID, 1)
				if len(ts) > 0 {
					started <- ts[0]
				} else {
					started <- nil
				}
			}
			a.bg.Add(1)
			go func() {
				defer a.bg.Done()
				_, err := a.Sync.Run(context.WithoutCancel(ctx), in.Ent, in.ID, dirsync.Options{Trigger: directory.TriggerManual, Progress: report})
				done <- err
			}()
			var task *directory.SyncTask
			select {
			case task = <-started:
			case err := <-done:
				// It ended before it began: busy, or the source changed meanwhile.
				if errors.Is(err, dirsync.ErrBusy) {
					return nil, huma.Error409Conflict("a sync task of source " + in.ID + " is already running")
				}
				return nil, huma.Error409Conflict(strings.TrimPrefix(fmt.Sprint(err), "sync: "))
			}
			if task == nil {
				return nil, storeError(errors.New("the started task was not found"))
			}
			if err := a.audit(ctx, a.Store, p, in.Ent, "admin.sync.run", in.ID, in.ID, nil, nil, map[string]any{"task": task.ID}); err != nil {
				a.Log.Error("admin API: audit a sync run", "err", err)
			}
			status := http.StatusAccepted
			if in.Wait {
				select {
				case <-done:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				if t, err := a.Store.GetSyncTask(ctx, task.ID); err == nil {
					task = t
				}
				status = http.StatusOK
			}
			return &out{Status: status, Location: Prefix + "/enterprises/" + in.Ent + "/sources/" + in.ID + "/sync/tasks/" + task.ID,
				Body: SyncRun{Task: taskView(task), Status: string(task.Status), Reason: task.Reason, Counts: task.Counts}}, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "list-sync-tasks", Method: http.MethodGet, Path: "/enterprises/{ent}/sources/{id}/sync/tasks",
		Summary: "The source's recent sync tasks, newest first", Tags: tags, Errors: errs()},
		func(ctx context.Context, in *struct {
			SourcePath
			Limit int `query:"limit" minimum:"1" maximum:"200" default:"50"`
		}) (*struct {
			Body struct {
				Items []*SyncTask `json:"items"`
			}
		}, error) {
			if _, err := a.authorize(ctx, in.Ent, directory.RoleAuditor); err != nil {
				return nil, err
			}
			if _, err := a.sourceOf(ctx, a.Store, in.Ent, in.ID); err != nil {
				return nil, err
			}
			ts, err := a.Store.ListSyncTasks(ctx, in.Ent, in.ID, in.Limit)
			if err != nil {
				return nil, storeError(err)
			}
			out := &struct {
				Body struct {
					Items []*SyncTask `json:"items"`
				}
			}{}
			out.Body.Items = []*SyncTask{}
			for _, t := range ts {
				out.Body.Items = append(out.Body.Items, taskView(t))
			}
			return out, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "get-sync-task", Method: http.MethodGet, Path: "/enterprises/{ent}/sources/{id}/sync/tasks/{task}",
		Summary: "A sync task: status and counts", Tags: tags, Errors: errs()},
		func(ctx context.Context, in *TaskPath) (*struct{ Body *SyncTask }, error) {
			if _, err := a.authorize(ctx, in.Ent, directory.RoleAuditor); err != nil {
				return nil, err
			}
			t, err := a.taskOf(ctx, in.Ent, in.ID, in.Task)
			if err != nil {
				return nil, err
			}
			return &struct{ Body *SyncTask }{taskView(t)}, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "list-sync-records", Method: http.MethodGet, Path: "/enterprises/{ent}/sources/{id}/sync/tasks/{task}/records",
		Summary: "What a task did to each object", Description: "Filter by action, object type and upstream ID; page with after=next_after.", Tags: tags, Errors: errs()},
		func(ctx context.Context, in *struct {
			TaskPath
			Action     string `query:"action" enum:"create,update,move,delete,unchanged,skip,error"`
			ObjectType string `query:"object_type" enum:"user,department"`
			UpstreamID string `query:"upstream_id" maxLength:"128"`
			After      int64  `query:"after" minimum:"0"`
			Limit      int    `query:"limit" minimum:"1" maximum:"1000" default:"100"`
		}) (*struct {
			Body struct {
				Items     []SyncRecord `json:"items"`
				NextAfter int64        `json:"next_after,omitempty" doc:"pass as after for the next page; absent on the last"`
			}
		}, error) {
			if _, err := a.authorize(ctx, in.Ent, directory.RoleAuditor); err != nil {
				return nil, err
			}
			if _, err := a.taskOf(ctx, in.Ent, in.ID, in.Task); err != nil {
				return nil, err
			}
			recs, err := a.Store.ListSyncRecords(ctx, directory.RecordQuery{TaskID: in.Task, Action: in.Action, ObjectType: in.ObjectType,
				UpstreamID: in.UpstreamID, AfterID: in.After, Limit: in.Limit})
			if err != nil {
				return nil, storeError(err)
			}
			out := &struct {
				Body struct {
					Items     []SyncRecord `json:"items"`
					NextAfter int64        `json:"next_after,omitempty" doc:"pass as after for the next page; absent on the last"`
				}
			}{}
			out.Body.Items = []SyncRecord{}
			for _, r := range recs {
				out.Body.Items = append(out.Body.Items, SyncRecord{ID: r.ID, ObjectType: r.ObjectType, UpstreamID: r.UpstreamID, Action: r.Action,
					Upstream: r.Upstream, LocalBefore: r.LocalBefore, LocalAfter: r.LocalAfter, Error: r.Error, CreatedAt: r.CreatedAt})
			}
			if len(recs) == in.Limit && len(recs) > 0 {
				out.Body.NextAfter = recs[len(recs)-1].ID
			}
			return out, nil
		})
}

// changesOf lists a plan's first n changes.
func changesOf(p *dirsync.Plan, n int) []PlannedChange {
	out := []PlannedChange{}
	for _, d := range p.Depts {
		if len(out) == n {
			return out
		}
		c := PlannedChange{Action: d.Action, ObjectType: "department"}
		switch {
		case d.Upstream != nil:
			c.UpstreamID, c.Name = d.Upstream.ID, d.Upstream.Name
		case d.Before != nil:
			c.UpstreamID, c.Name = d.Before.UpstreamID, d.Before.Name
		}
		out = append(out, c)
	}
	for _, u := range p.Users {
		if len(out) == n {
			return out
		}
		c := PlannedChange{Action: u.Action, ObjectType: "user", UpstreamID: u.UpstreamID, Error: u.Error}
		switch {
		case u.After != nil:
			c.Name = u.After.Name
		case u.Before != nil:
			c.Name = u.Before.Name
		}
		out = append(out, c)
	}
	return out
}
