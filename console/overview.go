package console

import (
	"net/http"
	"net/url"
)

// overview: each source's status, its last sync and the problems its settings show.
func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	ent := r.PathValue("ent")
	p, ok := c.begin(w, r, ent, "overview")
	if !ok {
		return
	}
	p.Title = "Overview"
	srcs, prob := c.get(r, ep(ent, "sources"), nil)
	if prob != nil {
		c.fail(w, r, p, prob)
		return
	}
	var rows []map[string]any
	for _, s := range items(srcs) {
		row := map[string]any{"S": s}
		if s["kind"] != "local" {
			id, _ := s["id"].(string)
			if ts, prob := c.get(r, ep(ent, "sources", id, "sync", "tasks"), url.Values{"limit": {"1"}}); prob == nil {
				if l := items(ts); len(l) > 0 {
					row["Last"] = l[0]
				}
			}
		}
		rows = append(rows, row)
	}
	p.D = map[string]any{"Rows": rows}
	c.render(w, r, http.StatusOK, "overview.html", p)
}
