package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// problemAt reports whether a problem-details answer names the field at loc.
func problemAt(t *testing.T, r response, status int, loc string) bool {
	t.Helper()
	if r.status != status || r.header.Get("Content-Type") != "application/problem+json" {
		return false
	}
	if loc == "" {
		return true
	}
	var p struct {
		Errors []struct {
			Location string `json:"location"`
			Value    any    `json:"value"`
		} `json:"errors"`
	}
	_ = json.Unmarshal(r.body, &p)
	for _, e := range p.Errors {
		if e.Location == loc {
			return true
		}
	}
	return false
}

// The seeds' rules on identity sources, and hostile input: each a clear 4xx naming the field,
// nothing stored.
func TestAdminAPISourceRulesAndHostileInput(t *testing.T) {
	a := newAdminWorld(t)
	owner := a.sessionOf("demo", "zhangsan")
	st := a.gw.Store
	count := func() int {
		srcs, _ := st.ListSources(a.ctx, "demo")
		return len(srcs)
	}
	n := count()
	body := func(mut func(m map[string]any)) string {
		var m map[string]any
		_ = json.Unmarshal([]byte(a.wecomSource("w2", "企业微信二")), &m)
		mut(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	for _, tc := range []struct {
		name, body string
		status     int
		loc        string
	}{
		{"a one-character name", body(func(m map[string]any) { m["name"] = "企" }), 422, "body.name"},
		{"a 101-character name", body(func(m map[string]any) { m["name"] = strings.Repeat("源", 101) }), 422, "body.name"},
		{"a name with a space", body(func(m map[string]any) { m["name"] = "企业 微信" }), 422, "body.name"},
		{"a name with punctuation", body(func(m map[string]any) { m["name"] = "wecom!" }), 422, "body.name"},
		{"cycle 0", body(func(m map[string]any) { m["sync"] = map[string]any{"cycle_hours": 0} }), 422, "body.sync.cycle_hours"},
		{"cycle 25", body(func(m map[string]any) { m["sync"] = map[string]any{"cycle_hours": 25} }), 422, "body.sync.cycle_hours"},
		{"a cycle as text", body(func(m map[string]any) { m["sync"] = map[string]any{"cycle_hours": "four"} }), 422, "body.sync.cycle_hours"},
		{"a bad verification time", body(func(m map[string]any) { m["sync"] = map[string]any{"verify_at": "25:00"} }), 422, "body.sync.verify_at"},
		{"a negative threshold", body(func(m map[string]any) { m["sync"] = map[string]any{"delete_users_threshold": -1} }), 422, "body.sync.delete_users_threshold"},
		{"a mapping to an unknown field", body(func(m map[string]any) {
			m["sync"] = map[string]any{"field_mappings": []map[string]string{{"upstream": "position", "local": "password"}}}
		}), 422, "body.sync.field_mappings[0].local"},
		{"an unknown kind", body(func(m map[string]any) { m["kind"] = "feishu" }), 422, "body.kind"},
		{"an uppercase ID", body(func(m map[string]any) { m["id"] = "WeCom2" }), 422, "body.id"},
		{"no corp ID", body(func(m map[string]any) { delete(m["wecom"].(map[string]any), "corp_id") }), 422, "body.wecom.corp_id"},
		{"no secret at all", body(func(m map[string]any) {
			w := m["wecom"].(map[string]any)
			delete(w, "secret")
			delete(w, "contact_secret")
		}), 422, "body.wecom.secret"},
		{"DingTalk settings on a WeCom source", body(func(m map[string]any) { m["dingtalk"] = map[string]any{"app_key": "x"} }), 422, "body.dingtalk"},
		{"a bad login mode", body(func(m map[string]any) { m["wecom"].(map[string]any)["login_mode"] = "sms" }), 422, "body.wecom.login_mode"},
		{"an unknown field", body(func(m map[string]any) { m["bogus"] = 1 }), 422, "body.bogus"},
		{"an unknown WeCom setting", body(func(m map[string]any) { m["wecom"].(map[string]any)["corpid"] = "x" }), 422, "body.wecom.corpid"},
		{"a secret of the wrong type", body(func(m map[string]any) { m["wecom"].(map[string]any)["secret"] = 12345678901234567 }), 422, "body.wecom.secret"},
		{"malformed JSON", `{"id": "w2", "kind": "wecom", `, 400, ""},
		{"an oversized body", body(func(m map[string]any) { m["description"] = strings.Repeat("x", 70<<10) }), 413, ""},
		{"a list instead of an object", `[1,2,3]`, 422, ""},
	} {
		r := a.call(owner, "POST", "/enterprises/demo/sources", tc.body)
		if !problemAt(t, r, tc.status, tc.loc) {
			t.Errorf("%s: %d %s, want %d at %q", tc.name, r.status, r.body, tc.status, tc.loc)
		}
		if strings.Contains(string(r.body), "12345678901234567") {
			t.Errorf("%s: the error echoes the secret sent: %s", tc.name, r.body)
		}
	}
	if r := a.call(owner, "GET", "/enterprises/demo/sources?injected=1", ""); !problemAt(t, r, 422, "query.injected") {
		t.Errorf("an unknown query parameter: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "GET", "/enterprises/demo/sources/wecom/sync/tasks/x'%20OR%201=1--/records", ""); r.status != 404 {
		t.Errorf("an injected task ID: %d %s", r.status, r.body)
	}
	if got := count(); got != n {
		t.Fatalf("refused writes stored %d sources", got-n)
	}
	if ev := a.auditOf("demo", "admin."); len(ev) != 0 {
		t.Fatalf("refused writes were audited as changes: %+v", ev)
	}

	// A good one: Chinese name, secrets masked on the way out, console values to paste.
	r := a.call(owner, "POST", "/enterprises/demo/sources", a.wecomSource("w2", "企业微信_二-2"))
	if r.status != 201 || r.header.Get("ETag") == "" || r.header.Get("Location") != "/api/v1/enterprises/demo/sources/w2" {
		t.Fatalf("create: %d %s %v", r.status, r.body, r.header)
	}
	stored, _ := st.GetSource(a.ctx, "demo", "w2")
	got := r.json(t)
	wc := got["wecom"].(map[string]any)
	secret := stored.Secrets["secret"]
	if wc["secret"] != "••••"+secret[len(secret)-4:] || strings.Contains(string(r.body), secret) || strings.Contains(string(r.body), stored.Secrets["encoding_aes_key"]) {
		t.Fatalf("secrets not masked: %s", r.body)
	}
	console := got["console"].(map[string]any)
	if console["login_callback_url"] != a.base+"/e/demo/sources/w2/callback" || console["event_request_url"] != a.base+"/e/demo/sources/w2/events" ||
		console["callback_domain"] != strings.TrimPrefix(a.base, "http://") || console["problem"] != nil {
		t.Fatalf("console values: %v", console)
	}
	if ev := a.auditOf("demo", "admin.source.create"); len(ev) != 1 || strings.Contains(string(ev[0].Detail), secret) || !strings.Contains(string(ev[0].Detail), "••••") {
		t.Fatalf("create audit = %+v", ev)
	}
	etag := r.header.Get("ETag")

	// Secrets are write-only: omitted or sent back masked they stay; "" clears an optional one.
	r = a.call(owner, "PATCH", "/enterprises/demo/sources/w2", `{"description":"新标题","wecom":{"secret":"`+wc["secret"].(string)+`"}}`, "If-Match", etag)
	if r.status != 200 {
		t.Fatalf("update with the masked secret: %d %s", r.status, r.body)
	}
	after, _ := st.GetSource(a.ctx, "demo", "w2")
	if after.Secrets["secret"] != secret || after.Description != "新标题" || after.Secrets["contact_secret"] != stored.Secrets["contact_secret"] {
		t.Fatalf("secrets after an update that did not change them: %v", after.Secrets)
	}
	// The old ETag no longer matches: 412, nothing changed.
	if r2 := a.call(owner, "PATCH", "/enterprises/demo/sources/w2", `{"description":"lost update"}`, "If-Match", etag); r2.status != http.StatusPreconditionFailed {
		t.Fatalf("a stale If-Match: %d %s", r2.status, r2.body)
	}
	if cur, _ := st.GetSource(a.ctx, "demo", "w2"); cur.Description != "新标题" {
		t.Fatalf("a 412 changed the source: %q", cur.Description)
	}
	r = a.call(owner, "PATCH", "/enterprises/demo/sources/w2", `{"wecom":{"contact_secret":"","secret":"a-new-app-secret-0123456789"},"sync":{"cycle_hours":6}}`, "If-Match", r.header.Get("ETag"))
	if r.status != 200 {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	after, _ = st.GetSource(a.ctx, "demo", "w2")
	if _, has := after.Secrets["contact_secret"]; has || after.Secrets["secret"] != "a-new-app-secret-0123456789" || after.Sync.CycleHours != 6 || !after.Sync.Auto {
		t.Fatalf("after clearing contact_secret and setting cycle 6: %v %+v", after.Secrets, after.Sync)
	}
	if r := a.call(owner, "PATCH", "/enterprises/demo/sources/w2", `{"wecom":{"secret":""}}`); !problemAt(t, r, 422, "body.wecom.secret") {
		t.Fatalf("clearing the only secret: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "PATCH", "/enterprises/demo/sources/w2", `{"sync":{"cycle_hours":30}}`); !problemAt(t, r, 422, "body.sync.cycle_hours") {
		t.Fatalf("cycle 30 on update: %d %s", r.status, r.body)
	}
	if cur, _ := st.GetSource(a.ctx, "demo", "w2"); cur.Sync.CycleHours != 6 || cur.Secrets["secret"] == "" {
		t.Fatalf("a refused update changed the source: %+v", cur.Sync)
	}

	// The file's objects are read-only here: 409 naming the file.
	for _, c := range []struct{ method, path, body string }{
		{"PATCH", "/enterprises/demo/sources/wecom", `{"description":"x"}`},
		{"POST", "/enterprises/demo/sources/wecom/close", ""},
		{"DELETE", "/enterprises/demo/sources/wecom?confirm=true", ""},
	} {
		if r := a.call(owner, c.method, c.path, c.body); r.status != 409 || !strings.Contains(string(r.body), "config.yaml") {
			t.Errorf("%s %s of a file-managed source: %d %s", c.method, c.path, r.status, r.body)
		}
	}
	if r := a.call(owner, "PUT", "/enterprises/demo/admins/li-auditor", `{"role":"admin"}`); r.status != 409 || !strings.Contains(string(r.body), "config.yaml") {
		t.Errorf("a file-managed grant: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "PUT", "/enterprises/demo/admins/nobody-here", `{"role":"admin"}`); !problemAt(t, r, 422, "path.username") {
		t.Errorf("a grant to nobody: %d %s", r.status, r.body)
	}

	// The quotas: at most five enabled sources, at most one enabled custom directory.
	if r := a.call(owner, "POST", "/enterprises/demo/sources", `{"id":"local2","kind":"local","name":"本地二"}`); r.status != 409 || !strings.Contains(string(r.body), "custom directory") {
		t.Fatalf("a second enabled custom directory: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "POST", "/enterprises/demo/sources", `{"id":"local2","kind":"local","name":"本地二","enabled":false}`); r.status != 201 {
		t.Fatalf("a closed second custom directory: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "POST", "/enterprises/demo/sources/local2/open", ""); r.status != 409 || !strings.Contains(string(r.body), "custom directory") {
		t.Fatalf("opening a second custom directory: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "POST", "/enterprises/demo/sources", a.wecomSource("w3", "企业微信三")); r.status != 201 {
		t.Fatalf("a fifth enabled source: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "POST", "/enterprises/demo/sources", a.wecomSource("w4", "企业微信四")); r.status != 409 || !strings.Contains(string(r.body), "5 enabled") {
		t.Fatalf("a sixth enabled source: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "POST", "/enterprises/demo/sources", a.wecomSource("w3", "企业微信三")); r.status != 409 {
		t.Fatalf("an ID taken: %d %s", r.status, r.body)
	}

	// Deletion: plan first, confirm, deletion protection unless forced.
	restore, _ := json.Marshal(map[string]any{"wecom": map[string]string{"secret": secret, "contact_secret": stored.Secrets["contact_secret"]}})
	if r := a.call(owner, "PATCH", "/enterprises/demo/sources/w2", string(restore)); r.status != 200 {
		t.Fatalf("restore the secrets: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "POST", "/enterprises/demo/sources/w2/sync?wait=true", ""); r.status != 200 || r.json(t)["status"] != "succeeded" {
		t.Fatalf("sync w2: %d %s", r.status, r.body)
	}
	a.call(owner, "PATCH", "/enterprises/demo/sources/w2", `{"sync":{"delete_departments_threshold":0}}`)
	plan := a.call(owner, "GET", "/enterprises/demo/sources/w2/deletion-plan", "")
	if p := plan.json(t); plan.status != 200 || p["protection"] == nil || p["links"].(float64) == 0 || p["deleted"] != false {
		t.Fatalf("deletion plan: %d %s", plan.status, plan.body)
	}
	if r := a.call(owner, "DELETE", "/enterprises/demo/sources/w2", ""); r.status != 400 || !strings.Contains(string(r.body), "confirm=true") {
		t.Fatalf("delete without confirm: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "DELETE", "/enterprises/demo/sources/w2?confirm=true", ""); r.status != 409 || !strings.Contains(string(r.body), "force=true") {
		t.Fatalf("delete past protection: %d %s", r.status, r.body)
	}
	if _, err := st.GetSource(a.ctx, "demo", "w2"); err != nil {
		t.Fatal("a refused deletion deleted the source")
	}
	if r := a.call(owner, "DELETE", "/enterprises/demo/sources/w2?confirm=true&force=true", ""); r.status != 200 || r.json(t)["deleted"] != true {
		t.Fatalf("forced delete: %d %s", r.status, r.body)
	}
	if _, err := st.GetSource(a.ctx, "demo", "w2"); err == nil {
		t.Fatal("the source is still there")
	}
	if ev := a.auditOf("demo", "admin.source.delete"); len(ev) != 1 || !strings.Contains(string(ev[0].Detail), `"force":true`) {
		t.Fatalf("delete audit = %+v", ev)
	}
}
