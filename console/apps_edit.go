package console

import (
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Changing and deleting apps after their creation: an OIDC client's or a SAML service provider's
// edit form (PATCH of what the admin API lets change) and delete with a confirmation page
// (DELETE). A file-managed app is refused by the API (409) and offered no button here.

func (c *Console) appEditRoutes() {
	m := c.mux
	base := Prefix + "/e/{ent}/apps"
	m.HandleFunc("GET "+base+"/clients/{id}/edit", c.clientEdit)
	m.HandleFunc("POST "+base+"/clients/{id}/edit", c.clientUpdate)
	m.HandleFunc("GET "+base+"/clients/{id}/delete", c.appDeleteAsk("clients"))
	m.HandleFunc("POST "+base+"/clients/{id}/delete", c.appDelete("clients"))
	m.HandleFunc("GET "+base+"/saml/{id}/edit", c.spEdit)
	m.HandleFunc("POST "+base+"/saml/{id}/edit", c.spUpdate)
	m.HandleFunc("GET "+base+"/saml/{id}/delete", c.appDeleteAsk("service-providers"))
	m.HandleFunc("POST "+base+"/saml/{id}/delete", c.appDelete("service-providers"))
}

// nameidFormats are the SP edit form's NameID choices (the API's enum).
var nameidFormats = []string{"persistent", "emailAddress", "unspecified", "transient"}

// ---- OIDC clients

// formOfClient is the edit form's values from the stored client.
func formOfClient(cl map[string]any) map[string]string {
	join := func(k, sep string) string {
		var out []string
		for _, v := range list(cl[k]) {
			out = append(out, str(v))
		}
		return strings.Join(out, sep)
	}
	f := map[string]string{"name": str(cl["name"]), "redirect_uris": join("redirect_uris", "\n"),
		"post_logout_redirect_uris": join("post_logout_redirect_uris", "\n"), "scopes": join("scopes", " "),
		"allowed_origins": join("allowed_origins", "\n"), "access_token_format": str(cl["access_token_format"]),
		"id_token_alg": str(cl["id_token_alg"]), "backchannel_logout_uri": str(cl["backchannel_logout_uri"]), "launch_url": str(cl["launch_url"])}
	for _, g := range grantChoices {
		if slices.Contains(list(cl["grant_types"]), any(g.Value)) {
			f[g.Name] = "on"
		}
	}
	return f
}

func (c *Console) clientEditPage(w http.ResponseWriter, r *http.Request) (*page, map[string]any, bool) {
	p, cl, ok := c.clientPage(w, r)
	if !ok {
		return nil, nil, false
	}
	if !p.CanChange || cl["file_managed"] == true {
		c.fail(w, r, p, &problem{Status: http.StatusForbidden, Detail: "this client cannot be changed here"})
		return nil, nil, false
	}
	p.Title = "Edit OIDC client"
	p.D["Grants"] = grantChoices
	return p, cl, true
}

func (c *Console) clientEdit(w http.ResponseWriter, r *http.Request) {
	p, cl, ok := c.clientEditPage(w, r)
	if !ok {
		return
	}
	p.Form = formOfClient(cl)
	c.render(w, r, http.StatusOK, "client_edit.html", p)
}

// clientUpdate sends every field of the form: what the admin left as it was is replaced by the
// same value, so the API's answer is the whole client as the form shows it.
func (c *Console) clientUpdate(w http.ResponseWriter, r *http.Request) {
	if !c.csrf(w, r) {
		return
	}
	p, _, ok := c.clientEditPage(w, r)
	if !ok {
		return
	}
	f := r.PostFormValue
	grants := []string{}
	for _, g := range grantChoices {
		if f(g.Name) == "on" {
			grants = append(grants, g.Value)
		}
	}
	body := map[string]any{"name": strings.TrimSpace(f("name")), "redirect_uris": lines(f("redirect_uris")),
		"post_logout_redirect_uris": lines(f("post_logout_redirect_uris")), "grant_types": grants,
		"scopes": append([]string{}, strings.Fields(f("scopes"))...), "allowed_origins": lines(f("allowed_origins")),
		"backchannel_logout_uri": strings.TrimSpace(f("backchannel_logout_uri")), "launch_url": strings.TrimSpace(f("launch_url"))}
	for _, k := range []string{"access_token_format", "id_token_alg"} {
		if v := f(k); v != "" {
			body[k] = v
		}
	}
	if _, prob := c.send(r, http.MethodPatch, ep(p.Ent, "clients", r.PathValue("id")), body); prob != nil {
		if prob.Status == http.StatusUnauthorized {
			c.logon(w, r, p.Ent)
			return
		}
		c.formFailed(w, r, p, "client_edit.html", prob)
		return
	}
	http.Redirect(w, r, p.Base()+"/apps/clients/"+url.PathEscape(r.PathValue("id"))+"?done=saved", http.StatusSeeOther)
}

// ---- SAML service providers

// formOfSP is the edit form's values from the stored service provider.
func formOfSP(sp map[string]any) map[string]string {
	f := map[string]string{"name": str(sp["name"]), "metadata_url": str(sp["metadata_url"]), "nameid_format": str(sp["nameid_format"])}
	for _, b := range []string{"sign_response", "sign_assertion"} {
		if sp[b] == true {
			f[b] = "on"
		}
	}
	attrs, _ := sp["attributes"].(map[string]any)
	var ls []string
	for _, k := range sortedKeys(attrs) {
		ls = append(ls, k+"="+str(attrs[k]))
	}
	f["attributes"] = strings.Join(ls, "\n")
	return f
}

func (c *Console) spEditPage(w http.ResponseWriter, r *http.Request) (*page, map[string]any, bool) {
	p, sp, ok := c.spPage(w, r)
	if !ok {
		return nil, nil, false
	}
	if !p.CanChange || sp["file_managed"] == true {
		c.fail(w, r, p, &problem{Status: http.StatusForbidden, Detail: "this service provider cannot be changed here"})
		return nil, nil, false
	}
	p.Title = "Edit SAML service provider"
	p.D["NameIDFormats"] = nameidFormats
	return p, sp, true
}

func (c *Console) spEdit(w http.ResponseWriter, r *http.Request) {
	p, sp, ok := c.spEditPage(w, r)
	if !ok {
		return
	}
	p.Form = formOfSP(sp)
	c.render(w, r, http.StatusOK, "sp_edit.html", p)
}

// spUpdate changes the SP: name, NameID format, signing, attributes, and its metadata: a new
// file uploaded replaces what it had (URL or inline), a URL typed replaces inline metadata.
func (c *Console) spUpdate(w http.ResponseWriter, r *http.Request) {
	if !c.csrf(w, r) {
		return
	}
	p, sp, ok := c.spEditPage(w, r)
	if !ok {
		return
	}
	f := r.PostFormValue
	body := map[string]any{"name": strings.TrimSpace(f("name")), "sign_response": f("sign_response") == "on", "sign_assertion": f("sign_assertion") == "on"}
	if v := f("nameid_format"); v != "" {
		body["nameid_format"] = v
	}
	attrs := map[string]string{}
	for _, l := range lines(f("attributes")) {
		k, v, found := strings.Cut(l, "=")
		if !found || strings.TrimSpace(k) == "" {
			p.Errors = map[string]string{"attributes": "each line is NAME=FIELD"}
			p.Form = formOf(r)
			p.FormError = "Check the fields marked below."
			c.render(w, r, http.StatusBadRequest, "sp_edit.html", p)
			return
		}
		attrs[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	body["attributes"] = attrs
	if file, _, err := r.FormFile("metadata_file"); err == nil {
		raw, err := io.ReadAll(io.LimitReader(file, 256<<10))
		_ = file.Close()
		if err != nil {
			c.formFailed(w, r, p, "sp_edit.html", &problem{Status: http.StatusBadRequest, Detail: "the metadata file could not be read: " + err.Error()})
			return
		}
		body["metadata"] = string(raw)
	} else if u := strings.TrimSpace(f("metadata_url")); u != "" && u != str(sp["metadata_url"]) {
		body["metadata_url"] = u
	}
	if _, prob := c.send(r, http.MethodPatch, ep(p.Ent, "service-providers", r.PathValue("id")), body); prob != nil {
		if prob.Status == http.StatusUnauthorized {
			c.logon(w, r, p.Ent)
			return
		}
		c.formFailed(w, r, p, "sp_edit.html", prob)
		return
	}
	http.Redirect(w, r, p.Base()+"/apps/saml/"+url.PathEscape(r.PathValue("id"))+"?done=saved", http.StatusSeeOther)
}

// ---- delete

// appDeleteAsk shows what deleting the app does and asks to confirm.
func (c *Console) appDeleteAsk(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var p *page
		var app map[string]any
		var ok bool
		if kind == "clients" {
			p, app, ok = c.clientPage(w, r)
		} else {
			p, app, ok = c.spPage(w, r)
		}
		if !ok {
			return
		}
		if !p.CanChange || app["file_managed"] == true {
			c.fail(w, r, p, &problem{Status: http.StatusForbidden, Detail: "this app cannot be deleted here"})
			return
		}
		p.Title = "Delete this app"
		p.D["Kind"], p.D["App"] = kind, app
		c.render(w, r, http.StatusOK, "app_delete.html", p)
	}
}

// appDelete deletes the app and goes back to the list.
func (c *Console) appDelete(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !c.csrf(w, r) {
			return
		}
		ent, id := r.PathValue("ent"), r.PathValue("id")
		if _, prob := c.send(r, http.MethodDelete, ep(ent, kind, id), nil); prob != nil {
			c.appActionFailed(w, r, kind, prob)
			return
		}
		http.Redirect(w, r, Prefix+"/e/"+url.PathEscape(ent)+"/apps?done=app-deleted", http.StatusSeeOther)
	}
}
