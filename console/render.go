package console

import (
	"bytes"
	"context"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/qiao-gateway/qiao/internal/httpx"
	"github.com/qiao-gateway/qiao/pages"
)

// page is what every console page renders: the layout's parts and the page's own data (D).
type page struct {
	Lang, Title, Active string
	// Ent is the enterprise the page is about; Role the caller's role in it (owner, admin,
	// auditor); CanChange whether that role may change things (the API decides either way:
	// the console only leaves out buttons the API would refuse).
	Ent, EntName, Role string
	CanChange, IsOwner bool
	Operator           bool
	Me                 map[string]any
	Ents               []map[string]any
	CSRF               string
	// Path is the page's own path and query (the language switch links back to it).
	Path      string
	Flash     string
	FormError string
	Errors    map[string]string
	Form      map[string]string
	Ref       string
	D         map[string]any
}

// Err is the error message beside a form field.
func (p *page) Err(field string) string { return p.Errors[field] }

// Val is a form field's value as posted (after an error) or as stored.
func (p *page) Val(field string) string { return p.Form[field] }

// Switch is the page's address in the other language.
func (p *page) Switch() string {
	other := en
	if p.Lang == en {
		other = zh
	}
	u, err := url.Parse(p.Path)
	if err != nil {
		return Prefix + "/?lang=" + other
	}
	q := u.Query()
	q.Set("lang", other)
	u.RawQuery = q.Encode()
	return u.String()
}

// OtherLang names the other language in itself.
func (p *page) OtherLang() string {
	if p.Lang == en {
		return "中文"
	}
	return "English"
}

// Base is the enterprise's console path.
func (p *page) Base() string { return Prefix + "/e/" + url.PathEscape(p.Ent) }

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	if p.Lang == "" {
		p.Lang = lang(r)
	}
	p.CSRF = c.Pages.CSRF(w, r)
	p.Path = r.URL.RequestURI()
	if p.D == nil {
		p.D = map[string]any{}
	}
	if f := r.URL.Query().Get("done"); f != "" && p.Flash == "" {
		if msg, ok := flashes[f]; ok {
			p.Flash = msg
		}
	}
	var buf bytes.Buffer
	if err := c.templates(p.Lang).ExecuteTemplate(&buf, name, p); err != nil {
		c.Log.Error("console: render", "page", name, "err", err)
		http.Error(w, "console: the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// flashes are the messages a change's redirect names (?done=…).
var flashes = map[string]string{
	"saved": "Saved.", "closed": "The source is closed: nobody can log on through it.", "opened": "The source is open.",
	"deleted": "The source is deleted.", "sync": "Synchronization started.", "done": "Done.",
	"rotated": "The signing keys are rotated: the old ones stay published until they expire.",
}

func (c *Console) templates(l string) *template.Template {
	if l == en {
		return c.tmplEN
	}
	return c.tmplZH
}

// ---- who is calling, and where

// begin reads who the caller is and which enterprises they administer, for the layout. Without a
// session it sends the browser to the enterprise's normal logon, which comes back here; it
// answers false when it already wrote the response.
func (c *Console) begin(w http.ResponseWriter, r *http.Request, ent, active string) (*page, bool) {
	p := &page{Lang: lang(r), Ent: ent, Active: active}
	me, prob := c.get(r, "/me", nil)
	if prob != nil {
		if prob.Status == http.StatusUnauthorized {
			c.logon(w, r, ent)
			return nil, false
		}
		c.fail(w, r, p, prob)
		return nil, false
	}
	p.Me = me
	p.Operator, _ = me["operator"].(bool)
	list, prob := c.get(r, "/enterprises", nil)
	if prob != nil {
		c.fail(w, r, p, prob)
		return nil, false
	}
	for _, e := range items(list) {
		p.Ents = append(p.Ents, e)
		if e["id"] == ent {
			p.EntName, _ = e["name"].(string)
			p.Role, _ = e["role"].(string)
		}
	}
	if ent != "" && p.Role == "" {
		// Not theirs, or no such enterprise: the API's one answer for both.
		c.fail(w, r, p, &problem{Status: http.StatusNotFound, Detail: "no enterprise " + ent})
		return nil, false
	}
	p.CanChange = p.Role == "owner" || p.Role == "admin"
	p.IsOwner = p.Role == "owner"
	return p, true
}

// logon sends the browser to the normal logon of the enterprise (or the enterprise entry), which
// returns to the page asked for.
func (c *Console) logon(w http.ResponseWriter, r *http.Request, ent string) {
	ret := r.URL.RequestURI()
	if r.Method != http.MethodGet {
		ret = Prefix + "/"
	}
	to := "/login?" + url.Values{"return": {ret}}.Encode()
	if ent != "" {
		to = "/login/e/" + url.PathEscape(ent) + "?" + url.Values{"return": {ret}}.Encode()
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// fail renders the API's problem as the console's error page, with the request ID as the
// reference that matches the log line and the audit event.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, p *page, prob *problem) {
	if p == nil {
		p = &page{}
	}
	if p.Lang == "" {
		p.Lang = lang(r)
	}
	status := prob.Status
	if status < 400 {
		status = http.StatusBadGateway
	}
	heading := "Something went wrong"
	message := ""
	switch status {
	case http.StatusNotFound:
		heading, message = "Not found", "There is nothing here, or you hold no administrator role in this enterprise."
	case http.StatusForbidden:
		heading, message = "Not allowed", "Your role does not allow this."
	case http.StatusServiceUnavailable:
		heading, message = "Service unavailable", "The service is unavailable; try again shortly."
	}
	p.Title = heading
	p.Ref = httpx.RequestID(r.Context())
	p.D = map[string]any{"Heading": heading, "Message": message, "Detail": prob.Detail, "Status": status}
	c.render(w, r, status, "error.html", p)
}

// csrf checks a console form's double-submit token (the gateway's forms' own) and, when the
// browser says, that the post comes from this origin. It writes the error page when it fails.
func (c *Console) csrf(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 256<<10)
	ok := r.ParseMultipartForm(256<<10) == nil || r.ParseForm() == nil
	ok = ok && pages.CSRFOK(r)
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		ok = false
	}
	if !ok {
		c.fail(w, r, nil, &problem{Status: http.StatusForbidden, Detail: "The page expired; please try again."})
		return false
	}
	// Mark the request checked in place (handlers hold this same *http.Request), so call lets its
	// changes through; a handler that forgot this check fails closed instead of changing anything.
	*r = *r.WithContext(context.WithValue(r.Context(), csrfChecked{}, true))
	return true
}

// csrfChecked marks a request whose console CSRF token csrf accepted.
type csrfChecked struct{}

// ---- generic JSON helpers for templates and handlers

func items(m map[string]any) []map[string]any {
	var out []map[string]any
	l, _ := m["items"].([]any)
	for _, v := range l {
		if e, ok := v.(map[string]any); ok {
			out = append(out, e)
		}
	}
	return out
}

func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	default:
		b, _ := jsonMarshal(x)
		return strings.Trim(string(b), `"`)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
