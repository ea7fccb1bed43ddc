package console

import (
	"net/http"
	"net/url"
)

// audit: the enterprise's audit log, filtered by kind (exact or a prefix such as admin.) and
// person, newest first, a page at a time.
func (c *Console) audit(w http.ResponseWriter, r *http.Request) {
	ent := r.PathValue("ent")
	p, ok := c.begin(w, r, ent, "audit")
	if !ok {
		return
	}
	p.Title = "Audit log"
	in := r.URL.Query()
	q := url.Values{"limit": {"50"}}
	for _, k := range []string{"kind", "user", "before"} {
		if v := in.Get(k); v != "" {
			q.Set(k, v)
		}
	}
	list, prob := c.get(r, ep(ent, "audit"), q)
	if prob != nil {
		if prob.Status == http.StatusUnprocessableEntity || prob.Status == http.StatusBadRequest {
			p.D = map[string]any{"Kind": in.Get("kind"), "User": in.Get("user"), "Problem": prob.Detail}
			c.render(w, r, http.StatusBadRequest, "audit.html", p)
			return
		}
		c.fail(w, r, p, prob)
		return
	}
	p.D = map[string]any{"Events": items(list), "Kind": in.Get("kind"), "User": in.Get("user")}
	if next := str(list["next_before"]); next != "" {
		nq := url.Values{"before": {next}}
		for _, k := range []string{"kind", "user"} {
			if v := in.Get(k); v != "" {
				nq.Set(k, v)
			}
		}
		p.D["Next"] = "?" + nq.Encode()
	}
	c.render(w, r, http.StatusOK, "audit.html", p)
}
