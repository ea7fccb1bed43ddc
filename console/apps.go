package console

import (
	"io"
	"net/http"
	"net/url"
	"strings"

	idpsaml "github.com/qiao-gateway/qiao/idp/saml"
)

// The apps screens: the enterprise's OIDC clients and SAML service providers, over the admin
// API's /clients and /service-providers. A secret the API generates (on creation or rotation) is
// rendered into the answer page of that POST only: never put in a redirect, a URL or a cookie.

func (c *Console) appRoutes() {
	m := c.mux
	base := Prefix + "/e/{ent}/apps"
	m.HandleFunc("GET "+base, c.apps)
	m.HandleFunc("GET "+base+"/clients/new", c.clientNew)
	m.HandleFunc("POST "+base+"/clients/new", c.clientCreate)
	m.HandleFunc("GET "+base+"/clients/{id}", c.client)
	m.HandleFunc("POST "+base+"/clients/{id}/secret", c.clientRotate)
	m.HandleFunc("POST "+base+"/clients/{id}/enable", c.appVerb("clients", "enable"))
	m.HandleFunc("POST "+base+"/clients/{id}/disable", c.appVerb("clients", "disable"))
	m.HandleFunc("GET "+base+"/saml/new", c.spNew)
	m.HandleFunc("POST "+base+"/saml/new", c.spCreate)
	m.HandleFunc("GET "+base+"/saml/{id}", c.sp)
	m.HandleFunc("POST "+base+"/saml/{id}/enable", c.appVerb("service-providers", "enable"))
	m.HandleFunc("POST "+base+"/saml/{id}/disable", c.appVerb("service-providers", "disable"))
	m.HandleFunc("POST "+base+"/saml/{id}/refresh-metadata", c.appVerb("service-providers", "refresh-metadata"))
	c.appEditRoutes()
	m.HandleFunc("GET "+Prefix+"/e/{ent}/keys", c.keys)
	m.HandleFunc("POST "+Prefix+"/e/{ent}/keys/rotate", c.keysRotate)
}

// grantChoices are the create form's grant type checkboxes: the input's name and the API's value.
var grantChoices = []struct{ Name, Value, Label string }{
	{"grant.authorization_code", "authorization_code", "Authorization code"},
	{"grant.refresh_token", "refresh_token", "Refresh token"},
	{"grant.client_credentials", "client_credentials", "Client credentials (service clients)"},
	{"grant.device_code", "urn:ietf:params:oauth:grant-type:device_code", "Device code"},
}

// apps lists the OIDC clients and SAML service providers.
func (c *Console) apps(w http.ResponseWriter, r *http.Request) {
	ent := r.PathValue("ent")
	p, ok := c.begin(w, r, ent, "apps")
	if !ok {
		return
	}
	p.Title = "Apps"
	clients, prob := c.get(r, ep(ent, "clients"), nil)
	if prob != nil {
		c.fail(w, r, p, prob)
		return
	}
	sps, prob := c.get(r, ep(ent, "service-providers"), nil)
	if prob != nil {
		c.fail(w, r, p, prob)
		return
	}
	p.D = map[string]any{"Clients": items(clients), "SPs": items(sps)}
	c.render(w, r, http.StatusOK, "apps.html", p)
}

// ---- OIDC clients

func (c *Console) clientNewPage(w http.ResponseWriter, r *http.Request) (*page, bool) {
	p, ok := c.begin(w, r, r.PathValue("ent"), "apps")
	if !ok {
		return nil, false
	}
	p.Title = "New OIDC client"
	p.D = map[string]any{"Grants": grantChoices}
	return p, true
}

func (c *Console) clientNew(w http.ResponseWriter, r *http.Request) {
	p, ok := c.clientNewPage(w, r)
	if !ok {
		return
	}
	p.Form = map[string]string{"type": "web"}
	c.render(w, r, http.StatusOK, "client_new.html", p)
}

func (c *Console) clientCreate(w http.ResponseWriter, r *http.Request) {
	if !c.csrf(w, r) {
		return
	}
	p, ok := c.clientNewPage(w, r)
	if !ok {
		return
	}
	body := map[string]any{"id": strings.TrimSpace(r.PostFormValue("id")), "type": r.PostFormValue("type"),
		"name": strings.TrimSpace(r.PostFormValue("name"))}
	if uris := lines(r.PostFormValue("redirect_uris")); len(uris) > 0 {
		body["redirect_uris"] = uris
	}
	var grants []string
	for _, g := range grantChoices {
		if r.PostFormValue(g.Name) == "on" {
			grants = append(grants, g.Value)
		}
	}
	if len(grants) > 0 { // none chosen: the API's default for the type
		body["grant_types"] = grants
	}
	out, prob := c.send(r, http.MethodPost, ep(p.Ent, "clients"), body)
	if prob != nil {
		c.formFailed(w, r, p, "client_new.html", prob)
		return
	}
	// The secret is on this answer page only.
	p.Title = "OIDC client"
	p.Flash = "Saved."
	p.D = map[string]any{"C": out, "Secret": str(out["client_secret"])}
	c.render(w, r, http.StatusCreated, "client.html", p)
}

func (c *Console) clientPage(w http.ResponseWriter, r *http.Request) (*page, map[string]any, bool) {
	ent, id := r.PathValue("ent"), r.PathValue("id")
	p, ok := c.begin(w, r, ent, "apps")
	if !ok {
		return nil, nil, false
	}
	cl, prob := c.get(r, ep(ent, "clients", id), nil)
	if prob != nil {
		c.fail(w, r, p, prob)
		return nil, nil, false
	}
	p.Title = "OIDC client"
	p.D = map[string]any{"C": cl}
	return p, cl, true
}

func (c *Console) client(w http.ResponseWriter, r *http.Request) {
	p, _, ok := c.clientPage(w, r)
	if !ok {
		return
	}
	c.render(w, r, http.StatusOK, "client.html", p)
}

// clientRotate makes a new secret and shows it on its answer page, once.
func (c *Console) clientRotate(w http.ResponseWriter, r *http.Request) {
	if !c.csrf(w, r) {
		return
	}
	ent, id := r.PathValue("ent"), r.PathValue("id")
	out, prob := c.send(r, http.MethodPost, ep(ent, "clients", id, "secret"), nil)
	if prob != nil {
		c.appActionFailed(w, r, "clients", prob)
		return
	}
	p, _, ok := c.clientPage(w, r)
	if !ok {
		return
	}
	p.Flash = "The secret is rotated: the old one no longer works."
	p.D = map[string]any{"C": out, "Secret": str(out["client_secret"])}
	c.render(w, r, http.StatusOK, "client.html", p)
}

// appVerb posts one of an app's buttons (enable, disable, refresh-metadata) and shows its page.
func (c *Console) appVerb(kind, verb string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !c.csrf(w, r) {
			return
		}
		ent, id := r.PathValue("ent"), r.PathValue("id")
		if _, prob := c.send(r, http.MethodPost, ep(ent, kind, id, verb), nil); prob != nil {
			c.appActionFailed(w, r, kind, prob)
			return
		}
		page := "/apps/clients/"
		if kind == "service-providers" {
			page = "/apps/saml/"
		}
		http.Redirect(w, r, Prefix+"/e/"+url.PathEscape(ent)+page+url.PathEscape(id)+"?done=done", http.StatusSeeOther)
	}
}

// appActionFailed shows the app's page with why a button's change was refused.
func (c *Console) appActionFailed(w http.ResponseWriter, r *http.Request, kind string, prob *problem) {
	if prob.Status == http.StatusUnauthorized {
		c.logon(w, r, r.PathValue("ent"))
		return
	}
	var p *page
	var ok bool
	name := "client.html"
	if kind == "service-providers" {
		p, _, ok = c.spPage(w, r)
		name = "sp.html"
	} else {
		p, _, ok = c.clientPage(w, r)
	}
	if !ok {
		return
	}
	if prob.Status == http.StatusForbidden {
		c.fail(w, r, p, prob)
		return
	}
	c.formFailed(w, r, p, name, prob)
}

// ---- SAML service providers

func (c *Console) spNewPage(w http.ResponseWriter, r *http.Request) (*page, bool) {
	p, ok := c.begin(w, r, r.PathValue("ent"), "apps")
	if !ok {
		return nil, false
	}
	p.Title = "New SAML service provider"
	return p, true
}

func (c *Console) spNew(w http.ResponseWriter, r *http.Request) {
	p, ok := c.spNewPage(w, r)
	if !ok {
		return
	}
	c.render(w, r, http.StatusOK, "sp_new.html", p)
}

// spCreate registers a service provider from an uploaded metadata file (read here and posted to
// the API as metadata) or a metadata URL. Without an entity ID typed, the file's is used.
func (c *Console) spCreate(w http.ResponseWriter, r *http.Request) {
	if !c.csrf(w, r) {
		return
	}
	p, ok := c.spNewPage(w, r)
	if !ok {
		return
	}
	body := map[string]any{"entity_id": strings.TrimSpace(r.PostFormValue("entity_id")), "name": strings.TrimSpace(r.PostFormValue("name"))}
	if u := strings.TrimSpace(r.PostFormValue("metadata_url")); u != "" {
		body["metadata_url"] = u
	}
	if f, _, err := r.FormFile("metadata_file"); err == nil {
		raw, err := io.ReadAll(io.LimitReader(f, 256<<10))
		_ = f.Close()
		if err != nil {
			c.formFailed(w, r, p, "sp_new.html", &problem{Status: http.StatusBadRequest, Detail: "the metadata file could not be read: " + err.Error()})
			return
		}
		body["metadata"] = string(raw)
		if body["entity_id"] == "" {
			if md, err := idpsaml.ParseMetadata(raw); err == nil {
				body["entity_id"] = md.EntityID
			}
		}
	}
	out, prob := c.send(r, http.MethodPost, ep(p.Ent, "service-providers"), body)
	if prob != nil {
		c.formFailed(w, r, p, "sp_new.html", prob)
		return
	}
	http.Redirect(w, r, p.Base()+"/apps/saml/"+url.PathEscape(str(out["id"]))+"?done=saved", http.StatusSeeOther)
}

func (c *Console) spPage(w http.ResponseWriter, r *http.Request) (*page, map[string]any, bool) {
	ent, id := r.PathValue("ent"), r.PathValue("id")
	p, ok := c.begin(w, r, ent, "apps")
	if !ok {
		return nil, nil, false
	}
	sp, prob := c.get(r, ep(ent, "service-providers", id), nil)
	if prob != nil {
		c.fail(w, r, p, prob)
		return nil, nil, false
	}
	p.Title = "SAML service provider"
	p.D = map[string]any{"SP": sp}
	return p, sp, true
}

func (c *Console) sp(w http.ResponseWriter, r *http.Request) {
	p, _, ok := c.spPage(w, r)
	if !ok {
		return
	}
	c.render(w, r, http.StatusOK, "sp.html", p)
}

// ---- signing keys

func (c *Console) keys(w http.ResponseWriter, r *http.Request) {
	ent := r.PathValue("ent")
	p, ok := c.begin(w, r, ent, "keys")
	if !ok {
		return
	}
	c.keysPage(w, r, p, http.StatusOK)
}

func (c *Console) keysPage(w http.ResponseWriter, r *http.Request, p *page, status int) {
	p.Title = "Signing keys"
	list, prob := c.get(r, ep(p.Ent, "keys"), nil)
	if prob != nil {
		c.fail(w, r, p, prob)
		return
	}
	if p.D == nil {
		p.D = map[string]any{}
	}
	p.D["Keys"] = items(list)
	c.render(w, r, status, "keys.html", p)
}

// keysRotate rotates every algorithm's key (the API allows platform operators only).
func (c *Console) keysRotate(w http.ResponseWriter, r *http.Request) {
	if !c.csrf(w, r) {
		return
	}
	ent := r.PathValue("ent")
	if _, prob := c.send(r, http.MethodPost, ep(ent, "keys", "rotate"), map[string]any{}); prob != nil {
		if prob.Status == http.StatusUnauthorized {
			c.logon(w, r, ent)
			return
		}
		p, ok := c.begin(w, r, ent, "keys")
		if !ok {
			return
		}
		if prob.Status == http.StatusForbidden {
			c.fail(w, r, p, prob)
			return
		}
		p.D = map[string]any{"Problem": prob.Detail}
		c.keysPage(w, r, p, prob.Status)
		return
	}
	http.Redirect(w, r, Prefix+"/e/"+url.PathEscape(ent)+"/keys?done=rotated", http.StatusSeeOther)
}
