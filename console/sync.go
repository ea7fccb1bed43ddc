package console

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
)

// tasks lists a source's sync tasks, newest first.
func (c *Console) tasks(w http.ResponseWriter, r *http.Request) {
	p, s, ok := c.sourcePage(w, r)
	if !ok {
		return
	}
	list, prob := c.get(r, ep(p.Ent, "sources", str(s["id"]), "sync", "tasks"), url.Values{"limit": {"50"}})
	if prob != nil {
		c.fail(w, r, p, prob)
		return
	}
	p.Title = "Sync tasks"
	p.D["Tasks"] = items(list)
	c.render(w, r, http.StatusOK, "tasks.html", p)
}

var recordActions = []string{"create", "update", "move", "delete", "unchanged", "skip", "error"}

// task is one task: its status (followed live while it runs) and what it did to each object,
// filtered by action and object type, a page at a time.
func (c *Console) task(w http.ResponseWriter, r *http.Request) {
	p, s, ok := c.sourcePage(w, r)
	if !ok {
		return
	}
	id, taskID := str(s["id"]), r.PathValue("task")
	t, prob := c.get(r, ep(p.Ent, "sources", id, "sync", "tasks", taskID), nil)
	if prob != nil {
		c.fail(w, r, p, prob)
		return
	}
	q := url.Values{"limit": {"100"}}
	in := r.URL.Query()
	action, otype := in.Get("action"), in.Get("object_type")
	if slices.Contains(recordActions, action) {
		q.Set("action", action)
	} else {
		action = ""
	}
	if otype == "user" || otype == "department" {
		q.Set("object_type", otype)
	} else {
		otype = ""
	}
	if a := in.Get("after"); a != "" {
		q.Set("after", a)
	}
	recs, prob := c.get(r, ep(p.Ent, "sources", id, "sync", "tasks", taskID, "records"), q)
	if prob != nil {
		c.fail(w, r, p, prob)
		return
	}
	p.Title = "Task"
	p.D["Task"], p.D["Records"], p.D["Action"], p.D["Type"], p.D["Actions"] = t, items(recs), action, otype, recordActions
	p.D["TaskAPI"] = "/api/v1" + ep(p.Ent, "sources", id, "sync", "tasks", taskID)
	if next := str(recs["next_after"]); next != "" {
		nq := url.Values{"after": {next}}
		if action != "" {
			nq.Set("action", action)
		}
		if otype != "" {
			nq.Set("object_type", otype)
		}
		p.D["Next"] = "?" + nq.Encode()
	}
	c.render(w, r, http.StatusOK, "task.html", p)
}

// fieldRow is one field of a record's local person or department, before and after.
type fieldRow struct {
	Field, Before, After string
	Changed              bool
}

// record is what a task did to one object: the upstream data as read beside the local object
// before and after, the fields that changed highlighted.
func (c *Console) record(w http.ResponseWriter, r *http.Request) {
	p, s, ok := c.sourcePage(w, r)
	if !ok {
		return
	}
	q := url.Values{"object_type": {r.PathValue("type")}, "upstream_id": {r.PathValue("upstream")}, "limit": {"1"}}
	recs, prob := c.get(r, ep(p.Ent, "sources", str(s["id"]), "sync", "tasks", r.PathValue("task"), "records"), q)
	if prob != nil {
		c.fail(w, r, p, prob)
		return
	}
	l := items(recs)
	if len(l) == 0 {
		c.fail(w, r, p, &problem{Status: http.StatusNotFound, Detail: "the task has no record of " + r.PathValue("type") + " " + r.PathValue("upstream")})
		return
	}
	rec := l[0]
	up, _ := rec["upstream"].(map[string]any)
	before, _ := rec["local_before"].(map[string]any)
	after, _ := rec["local_after"].(map[string]any)
	var upRows [][2]string
	for _, k := range sortedKeys(up) {
		upRows = append(upRows, [2]string{k, flat(up[k])})
	}
	keys := map[string]bool{}
	for k := range before {
		keys[k] = true
	}
	for k := range after {
		keys[k] = true
	}
	var rows []fieldRow
	for _, k := range sortedKeys(keys) {
		b, a := flat(before[k]), flat(after[k])
		rows = append(rows, fieldRow{Field: k, Before: b, After: a, Changed: b != a})
	}
	p.Title = "Record"
	p.D["Record"], p.D["Upstream"], p.D["Local"], p.D["TaskID"] = rec, upRows, rows, r.PathValue("task")
	c.render(w, r, http.StatusOK, "record.html", p)
}

// flat shows a JSON value on one line: strings as they are, the rest as compact JSON.
func flat(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return string(bytes.TrimSpace(buf.Bytes()))
}
