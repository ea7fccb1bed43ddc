package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// overview: logons of the last 24 hours as a chart, live sessions, and per source its status,
// last sync, last event received and the problems its settings and last connectivity test show.
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
	ov, prob := c.get(r, ep(ent, "overview"), url.Values{"hours": {"24"}})
	if prob != nil {
		c.fail(w, r, p, prob)
		return
	}
	per := map[string]map[string]any{}
	for _, so := range list(ov["sources"]) {
		if m, ok := so.(map[string]any); ok {
			per[str(m["id"])] = m
		}
	}
	var rows []map[string]any
	for _, s := range items(srcs) {
		id, _ := s["id"].(string)
		row := map[string]any{"S": s, "O": per[id]}
		if s["kind"] != "local" {
			if ts, prob := c.get(r, ep(ent, "sources", id, "sync", "tasks"), url.Values{"limit": {"1"}}); prob == nil {
				if l := items(ts); len(l) > 0 {
					row["Last"] = l[0]
				}
			}
		}
		rows = append(rows, row)
	}
	logons, _ := ov["logons"].(map[string]any)
	p.D = map[string]any{"Rows": rows, "Logons": logons, "Sessions": str(ov["sessions_live"]), "Chart": logonChart(logons)}
	c.render(w, r, http.StatusOK, "overview.html", p)
}

// chartBar is one hour of the logon chart: a bar of successful logons with the failed ones on
// top, in SVG user units (presentation attributes: no style, so the CSP holds).
type chartBar struct {
	X, Width               int
	OKY, OKH, FailY, FailH int
	Success, Failure       int64
	Hour                   string // the hour's start, local time
	Tick                   bool   // label the axis under this bar
}

// chart is the logon chart's geometry.
type chart struct {
	Width, Height, Base int
	Max                 int64
	Bars                []chartBar
}

const (
	chartBarW   = 18
	chartGap    = 4
	chartPlot   = 100 // the tallest bar's height
	chartTop    = 6
	chartLabels = 18 // room under the bars for the hours
)

// logonChart lays out the API's logons per hour as bars scaled to the busiest hour.
func logonChart(logons map[string]any) chart {
	hours := list(logons["hours"])
	ch := chart{Width: len(hours) * (chartBarW + chartGap), Height: chartTop + chartPlot + chartLabels, Base: chartTop + chartPlot}
	num := func(v any) int64 { n, _ := strconv.ParseInt(str(v), 10, 64); return n }
	for _, h := range hours {
		m, _ := h.(map[string]any)
		if t := num(m["success"]) + num(m["failure"]); t > ch.Max {
			ch.Max = t
		}
	}
	scale := func(n int64) int {
		if ch.Max == 0 || n == 0 {
			return 0
		}
		px := int(n * chartPlot / ch.Max)
		if px < 2 {
			px = 2 // one logon stays visible beside a busy hour
		}
		return px
	}
	for i, h := range hours {
		m, _ := h.(map[string]any)
		b := chartBar{X: i*(chartBarW+chartGap) + chartGap/2, Width: chartBarW, Success: num(m["success"]), Failure: num(m["failure"])}
		b.OKH, b.FailH = scale(b.Success), scale(b.Failure)
		b.OKY = ch.Base - b.OKH
		b.FailY = b.OKY - b.FailH
		if t, err := time.Parse(time.RFC3339Nano, str(m["start"])); err == nil {
			b.Hour = t.Local().Format("15:04")
			b.Tick = t.Local().Hour()%6 == 0
		}
		ch.Bars = append(ch.Bars, b)
	}
	return ch
}

// String describes the chart for its title (screen readers, tooltips).
func (b chartBar) String() string {
	return fmt.Sprintf("%s: %d ✓ %d ✗", b.Hour, b.Success, b.Failure)
}
