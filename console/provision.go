package console

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
)

// The provisioning screens: an enterprise's push of its directory into WeCom — the target's
// settings (read-only here: config.yaml or the API change them), its outbox, the connectivity
// test, push now (a full reconcile, or a dry run), the tasks (a running one followed live), what
// each push did to an object, and the parked objects with a retry.

func (c *Console) provisionRoutes() {
	m := c.mux
	base := Prefix + "/e/{ent}/provisioning"
	m.HandleFunc("GET "+base, c.provisioning)
	m.HandleFunc("POST "+base+"/test", c.provisionTest)
	m.HandleFunc("POST "+base+"/push", c.provisionPush)
	m.HandleFunc("POST "+base+"/retry", c.provisionRetry)
	m.HandleFunc("GET "+base+"/records", c.provisionRecords)
	m.HandleFunc("GET "+base+"/records/{id}", c.provisionRecord)
	m.HandleFunc("GET "+base+"/tasks/{task}", c.provisionTask)
}

// getList reads an API answer that is a JSON array.
func (c *Console) getList(r *http.Request, path string, q url.Values) ([]map[string]any, *problem) {
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	a, p := c.call(r, http.MethodGet, path, nil)
	if p != nil {
		return nil, p
	}
	var out []map[string]any
	d := json.NewDecoder(bytes.NewReader(a.body))
	d.UseNumber()
	if err := d.Decode(&out); err != nil {
		return nil, &problem{Status: http.StatusBadGateway, Detail: "the admin API's answer is not a JSON list"}
	}
	return out, nil
}

// provisionPage reads the target, its tasks and its parked objects for the provisioning page.
// An enterprise without a target gets the page saying how to make one (status 200: nothing is
// wrong with asking).
func (c *Console) provisionPage(w http.ResponseWriter, r *http.Request) (*page, bool) {
	ent := r.PathValue("ent")
	p, ok := c.begin(w, r, ent, "provisioning")
	if !ok {
		return nil, false
	}
	p.Title = "Provisioning"
	p.D = map[string]any{}
	t, prob := c.get(r, ep(ent, "provisioning"), nil)
	if prob != nil {
		if prob.Status == http.StatusNotFound {
			p.D["NoTarget"] = true
			return p, true
		}
		c.fail(w, r, p, prob)
		return nil, false
	}
	p.D["T"] = t
	var secrets []string
	if s, ok := t["secrets"].(map[string]any); ok {
		secrets = sortedKeys(s)
	}
	p.D["Secrets"] = secrets
	var fieldMap [][2]string
	if fm, ok := t["field_map"].(map[string]any); ok {
		for _, k := range sortedKeys(fm) {
			fieldMap = append(fieldMap, [2]string{k, str(fm[k])})
		}
	}
	p.D["FieldMap"] = fieldMap
	tasks, prob := c.getList(r, ep(ent, "provisioning", "tasks"), url.Values{"limit": {"20"}})
	if prob != nil {
		c.fail(w, r, p, prob)
		return nil, false
	}
	parked, prob := c.getList(r, ep(ent, "provisioning", "parked"), nil)
	if prob != nil {
		c.fail(w, r, p, prob)
		return nil, false
	}
	p.D["Tasks"], p.D["Parked"] = tasks, parked
	return p, true
}

// provisioning is the enterprise's provisioning page.
func (c *Console) provisioning(w http.ResponseWriter, r *http.Request) {
	p, ok := c.provisionPage(w, r)
	if !ok {
		return
	}
	c.render(w, r, http.StatusOK, "provision.html", p)
}

// provisionTest runs the connectivity test and shows its answer on the page.
func (c *Console) provisionTest(w http.ResponseWriter, r *http.Request) {
	if !c.csrf(w, r) {
		return
	}
	rep, prob := c.send(r, http.MethodPost, ep(r.PathValue("ent"), "provisioning", "test"), nil)
	if prob != nil {
		c.provisionFailed(w, r, prob)
		return
	}
	p, ok := c.provisionPage(w, r)
	if !ok {
		return
	}
	p.D["Report"] = rep
	c.render(w, r, http.StatusOK, "provision.html", p)
}

// provisionPush starts a full reconcile (or a dry run) and follows its task.
func (c *Console) provisionPush(w http.ResponseWriter, r *http.Request) {
	if !c.csrf(w, r) {
		return
	}
	ent := r.PathValue("ent")
	q := url.Values{}
	if r.PostFormValue("dry_run") == "true" {
		q.Set("dry_run", "true")
	}
	path := ep(ent, "provisioning", "push")
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	task, prob := c.send(r, http.MethodPost, path, nil)
	if prob != nil {
		c.provisionFailed(w, r, prob)
		return
	}
	http.Redirect(w, r, Prefix+"/e/"+url.PathEscape(ent)+"/provisioning/tasks/"+url.PathEscape(str(task["id"]))+"?done=push", http.StatusSeeOther)
}

// provisionRetry puts one parked object (or every one) back in the outbox.
func (c *Console) provisionRetry(w http.ResponseWriter, r *http.Request) {
	if !c.csrf(w, r) {
		return
	}
	ent := r.PathValue("ent")
	body := map[string]any{}
	if typ, key := r.PostFormValue("object_type"), r.PostFormValue("object_key"); typ != "" || key != "" {
		body["objects"] = []map[string]string{{"object_type": typ, "object_key": key}}
	}
	if _, prob := c.send(r, http.MethodPost, ep(ent, "provisioning", "parked", "retry"), body); prob != nil {
		c.provisionFailed(w, r, prob)
		return
	}
	http.Redirect(w, r, Prefix+"/e/"+url.PathEscape(ent)+"/provisioning?done=retried", http.StatusSeeOther)
}

// provisionFailed shows the provisioning page with why a button's change was refused.
func (c *Console) provisionFailed(w http.ResponseWriter, r *http.Request, prob *problem) {
	if prob.Status == http.StatusUnauthorized {
		c.logon(w, r, r.PathValue("ent"))
		return
	}
	p, ok := c.provisionPage(w, r)
	if !ok {
		return
	}
	if prob.Status == http.StatusForbidden {
		c.fail(w, r, p, prob)
		return
	}
	p.D["Problem"] = prob.Detail
	status := prob.Status
	if status < 400 {
		status = http.StatusBadGateway
	}
	c.render(w, r, status, "provision.html", p)
}

// provisionTask is one reconcile: its status (followed live while it runs) and what it did to
// each object, a page at a time.
func (c *Console) provisionTask(w http.ResponseWriter, r *http.Request) {
	ent := r.PathValue("ent")
	p, ok := c.begin(w, r, ent, "provisioning")
	if !ok {
		return
	}
	taskID := r.PathValue("task")
	t, prob := c.get(r, ep(ent, "provisioning", "tasks", taskID), nil)
	if prob != nil {
		c.fail(w, r, p, prob)
		return
	}
	p.Title = "Provisioning task"
	p.D = map[string]any{"Task": t, "TaskAPI": "/api/v1" + ep(ent, "provisioning", "tasks", taskID)}
	if !c.provisionRecordList(w, r, p, taskID) {
		return
	}
	c.render(w, r, http.StatusOK, "provision_task.html", p)
}

// provisionRecords is what every push did (incremental pushes and reconciles), newest first.
func (c *Console) provisionRecords(w http.ResponseWriter, r *http.Request) {
	ent := r.PathValue("ent")
	p, ok := c.begin(w, r, ent, "provisioning")
	if !ok {
		return
	}
	p.Title = "Push records"
	p.D = map[string]any{}
	if !c.provisionRecordList(w, r, p, "") {
		return
	}
	c.render(w, r, http.StatusOK, "provision_task.html", p)
}

const recordPage = 100

// provisionRecordList reads a page of records (of a task, or of all pushes) into p.D.
func (c *Console) provisionRecordList(w http.ResponseWriter, r *http.Request, p *page, taskID string) bool {
	q := url.Values{"limit": {strconv.Itoa(recordPage)}}
	if taskID != "" {
		q.Set("task", taskID)
	}
	if b, err := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64); err == nil && b > 0 {
		q.Set("before", strconv.FormatInt(b, 10))
	}
	recs, prob := c.getList(r, ep(p.Ent, "provisioning", "records"), q)
	if prob != nil {
		c.fail(w, r, p, prob)
		return false
	}
	for _, rec := range recs {
		rec["localobj"] = jsonObj(rec["local"])
	}
	p.D["Records"] = recs
	if len(recs) == recordPage {
		p.D["Next"] = "?" + url.Values{"before": {str(recs[len(recs)-1]["id"])}}.Encode()
	}
	return true
}

// provisionRecord is what a push did to one object: the local data beside WeCom before and
// after, the fields that changed highlighted, and the platform's errcode.
func (c *Console) provisionRecord(w http.ResponseWriter, r *http.Request) {
	ent := r.PathValue("ent")
	p, ok := c.begin(w, r, ent, "provisioning")
	if !ok {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		c.fail(w, r, p, &problem{Status: http.StatusNotFound, Detail: "no push record " + r.PathValue("id")})
		return
	}
	// The API lists records newest first below an ID: the first below id+1 is id, if it exists.
	q := url.Values{"before": {strconv.FormatInt(id+1, 10)}, "limit": {"1"}}
	if t := r.URL.Query().Get("task"); t != "" {
		q.Set("task", t)
	}
	recs, prob := c.getList(r, ep(ent, "provisioning", "records"), q)
	if prob != nil {
		c.fail(w, r, p, prob)
		return
	}
	if len(recs) == 0 || str(recs[0]["id"]) != strconv.FormatInt(id, 10) {
		c.fail(w, r, p, &problem{Status: http.StatusNotFound, Detail: "no push record " + r.PathValue("id")})
		return
	}
	rec := recs[0]
	local := jsonObj(rec["local"])
	var localRows [][2]string
	for _, k := range sortedKeys(local) {
		localRows = append(localRows, [2]string{k, flat(local[k])})
	}
	// The rows are the fields qiao writes (after, or before for a removal); WeCom's other fields
	// as read (its QR code, status…) are listed apart. A field is changed when WeCom had it and it
	// differs (WeCom answers department IDs as numbers where qiao sends strings: the same value),
	// or when nothing was there before.
	before, after := jsonObj(rec["before"]), jsonObj(rec["after"])
	written := after
	if written == nil {
		written = before
	}
	var rows []fieldRow
	for _, k := range sortedKeys(written) {
		b, hasB := before[k]
		a := after[k]
		ch := before == nil || after == nil || (hasB && flat(canon(b)) != flat(canon(a)))
		rows = append(rows, fieldRow{Field: k, Before: flat(b), After: flat(a), Changed: ch})
	}
	var others [][2]string
	if after != nil {
		for _, k := range sortedKeys(before) {
			if _, ok := after[k]; !ok {
				others = append(others, [2]string{k, flat(before[k])})
			}
		}
	}
	p.Title = "Push record"
	p.D = map[string]any{"Record": rec, "Local": localRows, "Remote": rows, "Others": others, "HasBefore": rec["before"] != nil, "HasAfter": rec["after"] != nil}
	c.render(w, r, http.StatusOK, "provision_record.html", p)
}

// canon is a JSON value with numbers as strings, for comparing what WeCom answers with what qiao
// sent.
func canon(v any) any {
	switch x := v.(type) {
	case json.Number:
		return x.String()
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = canon(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = canon(e)
		}
		return out
	}
	return v
}

// jsonObj is a record's JSON object field (decoded as a map already, or absent).
func jsonObj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}
