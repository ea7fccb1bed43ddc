package console

import (
	"net/http"
	"net/url"
	"slices"
)

func (c *Console) peopleRoutes() {
	m := c.mux
	m.HandleFunc("GET "+Prefix+"/e/{ent}/people", c.people)
	m.HandleFunc("GET "+Prefix+"/e/{ent}/people/{id}", c.person)
	m.HandleFunc("POST "+Prefix+"/e/{ent}/people/{id}/{verb}", c.personAction)
}

var personStatuses = []string{"active", "disabled", "inactive", "departed"}

// people: the departments of each source as trees, and the people search beside them.
func (c *Console) people(w http.ResponseWriter, r *http.Request) {
	ent := r.PathValue("ent")
	p, ok := c.begin(w, r, ent, "people")
	if !ok {
		return
	}
	p.Title = "Employees"
	depts, prob := c.get(r, ep(ent, "departments"), nil)
	if prob != nil {
		c.fail(w, r, p, prob)
		return
	}
	in := r.URL.Query()
	q := url.Values{"limit": {"50"}}
	for _, k := range []string{"q", "source", "department", "cursor"} {
		if v := in.Get(k); v != "" {
			q.Set(k, v)
		}
	}
	if st := in.Get("status"); slices.Contains(personStatuses, st) {
		q.Set("status", st)
	}
	list, prob := c.get(r, ep(ent, "users"), q)
	if prob != nil {
		c.fail(w, r, p, prob)
		return
	}
	p.D = map[string]any{"Trees": items(depts), "People": items(list), "Q": in.Get("q"), "Status": q.Get("status"), "Statuses": personStatuses,
		"Source": q.Get("source"), "Department": q.Get("department")}
	if next := str(list["next_cursor"]); next != "" {
		nq := url.Values{}
		for k, v := range q {
			if k != "limit" {
				nq[k] = v
			}
		}
		nq.Set("cursor", next)
		p.D["Next"] = "?" + nq.Encode()
	}
	c.render(w, r, http.StatusOK, "people.html", p)
}

// person: links per source, live sessions, recent logons, and what an administrator may do.
func (c *Console) person(w http.ResponseWriter, r *http.Request) {
	ent := r.PathValue("ent")
	p, ok := c.begin(w, r, ent, "people")
	if !ok {
		return
	}
	u, prob := c.get(r, ep(ent, "users", r.PathValue("id")), nil)
	if prob != nil {
		c.fail(w, r, p, prob)
		return
	}
	p.Title = "Employees"
	p.D = map[string]any{"U": u}
	c.render(w, r, http.StatusOK, "person.html", p)
}

// personAction ends the person's sessions, disables, enables or unlocks them.
func (c *Console) personAction(w http.ResponseWriter, r *http.Request) {
	if !c.csrf(w, r) {
		return
	}
	ent, id, verb := r.PathValue("ent"), r.PathValue("id"), r.PathValue("verb")
	if !slices.Contains([]string{"end-sessions", "disable", "enable", "unlock"}, verb) {
		c.fail(w, r, nil, &problem{Status: http.StatusNotFound, Detail: "no such action " + verb})
		return
	}
	if _, prob := c.send(r, http.MethodPost, ep(ent, "users", id, verb), nil); prob != nil {
		if prob.Status == http.StatusUnauthorized {
			c.logon(w, r, ent)
			return
		}
		p, ok := c.begin(w, r, ent, "people")
		if ok {
			c.fail(w, r, p, prob)
		}
		return
	}
	http.Redirect(w, r, Prefix+"/e/"+url.PathEscape(ent)+"/people/"+url.PathEscape(id)+"?done=done", http.StatusSeeOther)
}
