package console

import (
	"net/http"
	"net/url"

	"github.com/qiao-gateway/qiao/directory"
)

func (c *Console) routes() {
	m := c.mux
	m.HandleFunc("GET "+Prefix+"/{$}", c.root)
	m.HandleFunc("GET "+Prefix+"/e/{ent}/{$}", c.overview)
	c.sourceRoutes()
	c.peopleRoutes()
	c.adminRoutes()
	c.appRoutes()
	c.provisionRoutes()
	m.HandleFunc("GET "+Prefix+"/e/{ent}/audit", c.audit)
	m.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, nil, &problem{Status: http.StatusNotFound, Detail: "no console page at " + r.URL.Path})
	})
}

// root sends the caller to an enterprise they administer: the one chosen in the switcher, their
// own, or the first they hold a role in.
func (c *Console) root(w http.ResponseWriter, r *http.Request) {
	p, ok := c.begin(w, r, "", "")
	if !ok {
		return
	}
	want := r.URL.Query().Get("e")
	own, _ := p.Me["enterprise"].(string)
	var first string
	for _, e := range p.Ents {
		id, _ := e["id"].(string)
		if first == "" {
			first = id
		}
		if id == want || (want == "" && id == own) {
			first = id
			break
		}
	}
	if want != "" && directory.ValidID(want) && first != want {
		c.fail(w, r, p, &problem{Status: http.StatusNotFound, Detail: "no enterprise " + want})
		return
	}
	if first == "" {
		p.Title = "Not allowed"
		p.D = map[string]any{"Heading": "Not allowed", "Message": "You hold no administrator role in any enterprise. Ask an owner to grant you one.", "Status": http.StatusForbidden}
		c.render(w, r, http.StatusForbidden, "error.html", p)
		return
	}
	http.Redirect(w, r, Prefix+"/e/"+url.PathEscape(first)+"/", http.StatusSeeOther)
}
