package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

func (c *Console) sourceRoutes() {
	m := c.mux
	base := Prefix + "/e/{ent}/sources"
	m.HandleFunc("GET "+base, c.sources)
	m.HandleFunc("GET "+base+"/new", c.sourceNew)
	m.HandleFunc("POST "+base+"/new", c.sourceCreate)
	m.HandleFunc("GET "+base+"/{id}", c.source)
	m.HandleFunc("GET "+base+"/{id}/edit", c.sourceEdit)
	m.HandleFunc("POST "+base+"/{id}/edit", c.sourceUpdate)
	m.HandleFunc("POST "+base+"/{id}/test", c.sourceTest)
	m.HandleFunc("POST "+base+"/{id}/sync", c.sourceSync)
	m.HandleFunc("POST "+base+"/{id}/auto", c.sourceAuto)
	m.HandleFunc("POST "+base+"/{id}/close", c.sourceOpenClose("close"))
	m.HandleFunc("POST "+base+"/{id}/open", c.sourceOpenClose("open"))
	m.HandleFunc("GET "+base+"/{id}/delete", c.sourceDeletePlan)
	m.HandleFunc("POST "+base+"/{id}/delete", c.sourceDelete)
	m.HandleFunc("GET "+base+"/{id}/tasks", c.tasks)
	m.HandleFunc("GET "+base+"/{id}/tasks/{task}", c.task)
	m.HandleFunc("GET "+base+"/{id}/tasks/{task}/records/{type}/{upstream}", c.record)
}

// sources lists the identity sources: status, auto sync, and their actions.
func (c *Console) sources(w http.ResponseWriter, r *http.Request) {
	ent := r.PathValue("ent")
	p, ok := c.begin(w, r, ent, "sources")
	if !ok {
		return
	}
	p.Title = "Identity sources"
	list, prob := c.get(r, ep(ent, "sources"), nil)
	if prob != nil {
		c.fail(w, r, p, prob)
		return
	}
	p.D = map[string]any{"Sources": items(list)}
	c.render(w, r, http.StatusOK, "sources.html", p)
}

// ---- the fields of a source's forms

// kindField is one input of a kind's settings: its JSON name under the kind, its label and
// whether it is a secret (a password input, answered masked).
type kindField struct {
	Name, Label string
	Secret      bool
	Advanced    bool
	Help        string
}

var wecomInputs = []kindField{
	{Name: "corp_id", Label: "Corp ID"}, {Name: "agent_id", Label: "Agent ID"}, {Name: "secret", Label: "Secret", Secret: true},
	{Name: "contact_secret", Label: "Contact sync secret", Secret: true}, {Name: "callback_domain", Label: "Callback domain"},
	{Name: "callback_token", Label: "Event token", Secret: true}, {Name: "encoding_aes_key", Label: "Event EncodingAESKey", Secret: true},
	{Name: "api_base_url", Label: "API base URL", Advanced: true}, {Name: "login_base_url", Label: "Login base URL", Advanced: true},
	{Name: "open_base_url", Label: "Open base URL", Advanced: true}, {Name: "oauth_base_url", Label: "OAuth base URL", Advanced: true},
}

var dingtalkInputs = []kindField{
	{Name: "corp_id", Label: "Corp ID"}, {Name: "app_key", Label: "AppKey"}, {Name: "app_secret", Label: "AppSecret", Secret: true},
	{Name: "agent_id", Label: "Agent ID"}, {Name: "callback_domain", Label: "Callback domain"},
	{Name: "callback_token", Label: "Event token (DingTalk)", Secret: true}, {Name: "aes_key", Label: "Event aes_key", Secret: true},
	{Name: "oapi_base_url", Label: "OAPI base URL", Advanced: true}, {Name: "api_base_url", Label: "API base URL", Advanced: true},
	{Name: "login_base_url", Label: "Login base URL", Advanced: true},
}

// selects are a kind's settings chosen from a list (their values go to the API as they are).
var kindSelects = map[string][]string{"wecom": {"login_mode"}, "dingtalk": {"edition"}}

func inputsOf(kind string) []kindField {
	switch kind {
	case "wecom":
		return wecomInputs
	case "dingtalk":
		return dingtalkInputs
	}
	return nil
}

// kindSettings is the kind's part of a write from the posted form. Creating, an empty field is
// left out (the API's default); editing, every field is sent (empty clears, a masked secret
// sent back is left as it is).
func kindSettings(r *http.Request, kind string, creating bool) map[string]any {
	out := map[string]any{}
	names := kindSelects[kind]
	for _, f := range inputsOf(kind) {
		names = append(names, f.Name)
	}
	for _, n := range names {
		v := strings.TrimSpace(r.PostFormValue(kind + "." + n))
		if v == "" && creating {
			continue
		}
		out[n] = v
	}
	return out
}

// syncSettings is the sync part of a write from the posted form, but for its lists (syncLists).
func syncSettings(r *http.Request) map[string]any {
	v := func(n string) string { return strings.TrimSpace(r.PostFormValue("sync." + n)) }
	s := map[string]any{"auto": v("auto") == "on", "user_info": v("user_info") == "on", "verify_at": v("verify_at"), "match_by": v("match_by")}
	for _, n := range []string{"cycle_hours", "delete_users_threshold", "delete_departments_threshold"} {
		if n2, err := strconv.Atoi(v(n)); err == nil {
			s[n] = n2
		} else if v(n) != "" {
			s[n] = v(n) // the API says what is wrong with it
		}
	}
	return s
}

func lines(s string) []string {
	out := []string{}
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// formOf is the form's values as posted, for showing it again beside its errors.
func formOf(r *http.Request) map[string]string {
	out := map[string]string{}
	for k, v := range r.PostForm {
		if k != "csrf" && len(v) > 0 {
			out[k] = v[0]
		}
	}
	return out
}

// formOfSource is an edit form's values from the stored source.
func formOfSource(s map[string]any) map[string]string {
	f := map[string]string{"name": str(s["name"]), "description": str(s["description"])}
	if s["authoritative"] == true {
		f["authoritative"] = "on"
	}
	kind := str(s["kind"])
	if ks, ok := s[kind].(map[string]any); ok {
		for k, v := range ks {
			f[kind+"."+k] = str(v)
		}
	}
	sy, _ := s["sync"].(map[string]any)
	for _, b := range []string{"auto", "user_info"} {
		if sy[b] == true {
			f["sync."+b] = "on"
		}
	}
	for _, n := range []string{"cycle_hours", "verify_at", "match_by", "delete_users_threshold", "delete_departments_threshold"} {
		f["sync."+n] = str(sy[n])
	}
	return f
}

// formFailed shows a form again with the API's problem: each field error beside its input, the
// rest above the form.
func (c *Console) formFailed(w http.ResponseWriter, r *http.Request, p *page, name string, prob *problem) {
	p.Errors = prob.fields()
	p.Form = formOf(r)
	p.FormError = "Check the fields marked below."
	if len(p.Errors) == 0 {
		p.FormError = ""
	}
	if len(p.Errors) == 0 || len(prob.Errors) > len(p.Errors) {
		p.D["Problem"] = prob.Detail
	}
	status := prob.Status
	if status < 400 {
		status = http.StatusBadRequest
	}
	c.render(w, r, status, name, p)
}

// ---- create

func (c *Console) newPage(w http.ResponseWriter, r *http.Request) (*page, string, bool) {
	ent := r.PathValue("ent")
	p, ok := c.begin(w, r, ent, "sources")
	if !ok {
		return nil, "", false
	}
	kind := r.URL.Query().Get("kind")
	switch kind {
	case "wecom":
		p.Title = "Create a WeCom source"
	case "dingtalk":
		p.Title = "Create a DingTalk source"
	case "local":
		p.Title = "Create a custom directory"
	default:
		kind, p.Title = "", "New identity source"
	}
	host := ""
	if u, err := url.Parse(c.ExternalURL); err == nil {
		host = u.Host
	}
	p.D = map[string]any{"Kind": kind, "Inputs": inputsOf(kind), "Host": host}
	return p, kind, true
}

func (c *Console) sourceNew(w http.ResponseWriter, r *http.Request) {
	p, kind, ok := c.newPage(w, r)
	if !ok {
		return
	}
	p.Form = map[string]string{kind + ".callback_domain": str(p.D["Host"]), "dingtalk.edition": "standard", "wecom.login_mode": "qr"}
	c.render(w, r, http.StatusOK, "source_new.html", p)
}

func (c *Console) sourceCreate(w http.ResponseWriter, r *http.Request) {
	if !c.csrf(w, r) {
		return
	}
	p, kind, ok := c.newPage(w, r)
	if !ok {
		return
	}
	if kind == "" {
		http.Redirect(w, r, p.Base()+"/sources/new", http.StatusSeeOther)
		return
	}
	id := strings.TrimSpace(r.PostFormValue("id"))
	body := map[string]any{"id": id, "kind": kind, "name": strings.TrimSpace(r.PostFormValue("name")),
		"description": strings.TrimSpace(r.PostFormValue("description"))}
	if kind != "local" {
		body[kind] = kindSettings(r, kind, true)
	}
	if _, prob := c.send(r, http.MethodPost, ep(p.Ent, "sources"), body); prob != nil {
		c.formFailed(w, r, p, "source_new.html", prob)
		return
	}
	http.Redirect(w, r, p.Base()+"/sources/"+url.PathEscape(id)+"?done=saved", http.StatusSeeOther)
}

// ---- one source

// sourcePage reads the source for its pages.
func (c *Console) sourcePage(w http.ResponseWriter, r *http.Request) (*page, map[string]any, bool) {
	ent, id := r.PathValue("ent"), r.PathValue("id")
	p, ok := c.begin(w, r, ent, "sources")
	if !ok {
		return nil, nil, false
	}
	s, prob := c.get(r, ep(ent, "sources", id), nil)
	if prob != nil {
		c.fail(w, r, p, prob)
		return nil, nil, false
	}
	p.Title = "Identity sources"
	p.D = map[string]any{"S": s, "Kind": str(s["kind"]), "Inputs": inputsOf(str(s["kind"]))}
	return p, s, true
}

func (c *Console) source(w http.ResponseWriter, r *http.Request) {
	p, _, ok := c.sourcePage(w, r)
	if !ok {
		return
	}
	c.render(w, r, http.StatusOK, "source.html", p)
}

// sourceTest runs the connectivity test and shows its checks on the source's page.
func (c *Console) sourceTest(w http.ResponseWriter, r *http.Request) {
	if !c.csrf(w, r) {
		return
	}
	p, s, ok := c.sourcePage(w, r)
	if !ok {
		return
	}
	rep, prob := c.send(r, http.MethodPost, ep(p.Ent, "sources", str(s["id"]), "test"), nil)
	if prob != nil {
		c.formFailed(w, r, p, "source.html", prob)
		return
	}
	p.D["Report"] = rep
	c.render(w, r, http.StatusOK, "source.html", p)
}

// sourceSync starts a synchronization and follows its task.
func (c *Console) sourceSync(w http.ResponseWriter, r *http.Request) {
	if !c.csrf(w, r) {
		return
	}
	ent, id := r.PathValue("ent"), r.PathValue("id")
	run, prob := c.send(r, http.MethodPost, ep(ent, "sources", id, "sync"), nil)
	if prob != nil {
		c.actionFailed(w, r, prob)
		return
	}
	task, _ := run["task"].(map[string]any)
	http.Redirect(w, r, Prefix+"/e/"+url.PathEscape(ent)+"/sources/"+url.PathEscape(id)+"/tasks/"+url.PathEscape(str(task["id"]))+"?done=sync", http.StatusSeeOther)
}

// actionFailed shows the source's page with why a button's change was refused.
func (c *Console) actionFailed(w http.ResponseWriter, r *http.Request, prob *problem) {
	if prob.Status == http.StatusUnauthorized {
		c.logon(w, r, r.PathValue("ent"))
		return
	}
	p, _, ok := c.sourcePage(w, r)
	if !ok {
		return
	}
	if prob.Status == http.StatusForbidden {
		c.fail(w, r, p, prob)
		return
	}
	c.formFailed(w, r, p, "source.html", prob)
}

// sourceAuto turns automatic synchronization on or off (the list's switch).
func (c *Console) sourceAuto(w http.ResponseWriter, r *http.Request) {
	if !c.csrf(w, r) {
		return
	}
	ent, id := r.PathValue("ent"), r.PathValue("id")
	body := map[string]any{"sync": map[string]any{"auto": r.PostFormValue("auto") == "true"}}
	if _, prob := c.send(r, http.MethodPatch, ep(ent, "sources", id), body); prob != nil {
		c.actionFailed(w, r, prob)
		return
	}
	http.Redirect(w, r, Prefix+"/e/"+url.PathEscape(ent)+"/sources?done=saved", http.StatusSeeOther)
}

func (c *Console) sourceOpenClose(verb string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !c.csrf(w, r) {
			return
		}
		ent, id := r.PathValue("ent"), r.PathValue("id")
		if _, prob := c.send(r, http.MethodPost, ep(ent, "sources", id, verb), nil); prob != nil {
			c.actionFailed(w, r, prob)
			return
		}
		done := map[string]string{"close": "closed", "open": "opened"}[verb]
		http.Redirect(w, r, Prefix+"/e/"+url.PathEscape(ent)+"/sources/"+url.PathEscape(id)+"?done="+done, http.StatusSeeOther)
	}
}

// ---- edit

func (c *Console) sourceEdit(w http.ResponseWriter, r *http.Request) {
	p, s, ok := c.sourcePage(w, r)
	if !ok {
		return
	}
	switch {
	case s["file_managed"] == true: // its page says to change it in the config file
		http.Redirect(w, r, p.Base()+"/sources/"+url.PathEscape(str(s["id"])), http.StatusSeeOther)
		return
	case !p.CanChange:
		c.fail(w, r, p, &problem{Status: http.StatusForbidden, Detail: "this identity source cannot be changed by your role"})
		return
	}
	p.Title = "Edit identity source"
	p.Form = formOfSource(s)
	if str(s["kind"]) != "local" {
		c.show(r, p, str(s["id"]), syncListsOf(s))
	}
	c.render(w, r, http.StatusOK, "source_edit.html", p)
}

func (c *Console) sourceUpdate(w http.ResponseWriter, r *http.Request) {
	if !c.csrf(w, r) {
		return
	}
	p, s, ok := c.sourcePage(w, r)
	if !ok {
		return
	}
	p.Title = "Edit identity source"
	kind := str(s["kind"])
	body := map[string]any{"name": strings.TrimSpace(r.PostFormValue("name")), "description": strings.TrimSpace(r.PostFormValue("description")),
		"authoritative": r.PostFormValue("authoritative") == "on"}
	var lists syncLists
	if kind != "local" {
		body[kind] = kindSettings(r, kind, false)
		sy := syncSettings(r)
		lists = syncListsPosted(r)
		if errs := lists.apply(sy); len(errs) > 0 {
			// The form's own errors: nothing is sent.
			c.show(r, p, str(s["id"]), lists)
			for k, v := range errs {
				errs[k] = tr(p.Lang, v)
			}
			p.Errors, p.Form, p.FormError = errs, formOf(r), "Check the fields marked below."
			c.render(w, r, http.StatusUnprocessableEntity, "source_edit.html", p)
			return
		}
		body["sync"] = sy
	}
	if _, prob := c.send(r, http.MethodPatch, ep(p.Ent, "sources", str(s["id"])), body); prob != nil {
		if kind != "local" {
			c.show(r, p, str(s["id"]), lists)
		}
		c.formFailed(w, r, p, "source_edit.html", prob)
		return
	}
	http.Redirect(w, r, p.Base()+"/sources/"+url.PathEscape(str(s["id"]))+"?done=saved", http.StatusSeeOther)
}

// ---- delete

func (c *Console) sourceDeletePlan(w http.ResponseWriter, r *http.Request) {
	p, s, ok := c.sourcePage(w, r)
	if !ok {
		return
	}
	plan, prob := c.get(r, ep(p.Ent, "sources", str(s["id"]), "deletion-plan"), nil)
	if prob != nil {
		c.fail(w, r, p, prob)
		return
	}
	p.Title = "Deleting this source"
	p.D["Plan"] = plan
	c.render(w, r, http.StatusOK, "source_delete.html", p)
}

func (c *Console) sourceDelete(w http.ResponseWriter, r *http.Request) {
	if !c.csrf(w, r) {
		return
	}
	ent, id := r.PathValue("ent"), r.PathValue("id")
	q := url.Values{"confirm": {"true"}}
	if r.PostFormValue("force") == "on" {
		q.Set("force", "true")
	}
	if _, prob := c.send(r, http.MethodDelete, ep(ent, "sources", id)+"?"+q.Encode(), nil); prob != nil {
		c.actionFailed(w, r, prob)
		return
	}
	http.Redirect(w, r, Prefix+"/e/"+url.PathEscape(ent)+"/sources?done=deleted", http.StatusSeeOther)
}
