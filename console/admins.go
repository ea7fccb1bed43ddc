package console

import (
	"net/http"
	"net/url"
	"strings"
)

func (c *Console) adminRoutes() {
	m := c.mux
	m.HandleFunc("GET "+Prefix+"/e/{ent}/admins", c.admins)
	m.HandleFunc("POST "+Prefix+"/e/{ent}/admins", c.adminGrant)
	m.HandleFunc("POST "+Prefix+"/e/{ent}/admins/{username}/revoke", c.adminRevoke)
}

// admins lists who holds which role; owners grant and revoke.
func (c *Console) admins(w http.ResponseWriter, r *http.Request) {
	ent := r.PathValue("ent")
	p, ok := c.begin(w, r, ent, "admins")
	if !ok {
		return
	}
	c.adminsPage(w, r, p, http.StatusOK)
}

func (c *Console) adminsPage(w http.ResponseWriter, r *http.Request, p *page, status int) {
	p.Title = "Administrators"
	list, prob := c.get(r, ep(p.Ent, "admins"), nil)
	if prob != nil {
		c.fail(w, r, p, prob)
		return
	}
	if p.D == nil {
		p.D = map[string]any{}
	}
	p.D["Grants"] = items(list)
	p.D["Roles"] = []string{"owner", "admin", "auditor"}
	c.render(w, r, status, "admins.html", p)
}

func (c *Console) adminGrant(w http.ResponseWriter, r *http.Request) {
	if !c.csrf(w, r) {
		return
	}
	ent := r.PathValue("ent")
	p, ok := c.begin(w, r, ent, "admins")
	if !ok {
		return
	}
	user := strings.TrimSpace(r.PostFormValue("username"))
	if _, prob := c.send(r, http.MethodPut, ep(ent, "admins", user), map[string]any{"role": r.PostFormValue("role")}); prob != nil {
		p.Errors, p.Form = prob.fields(), formOf(r)
		p.D = map[string]any{"Problem": prob.Detail}
		c.adminsPage(w, r, p, prob.Status)
		return
	}
	http.Redirect(w, r, Prefix+"/e/"+url.PathEscape(ent)+"/admins?done=saved", http.StatusSeeOther)
}

func (c *Console) adminRevoke(w http.ResponseWriter, r *http.Request) {
	if !c.csrf(w, r) {
		return
	}
	ent := r.PathValue("ent")
	if _, prob := c.send(r, http.MethodDelete, ep(ent, "admins", r.PathValue("username")), nil); prob != nil {
		p, ok := c.begin(w, r, ent, "admins")
		if !ok {
			return
		}
		p.D = map[string]any{"Problem": prob.Detail}
		c.adminsPage(w, r, p, prob.Status)
		return
	}
	http.Redirect(w, r, Prefix+"/e/"+url.PathEscape(ent)+"/admins?done=saved", http.StatusSeeOther)
}
