// Package console is qiao's admin web console at /console/: server-rendered pages (html/template,
// zh-CN and English) over the admin API.
//
// Every read and change goes through the admin API's own handler, in process: the console
// forwards the browser's SSO session cookie, and after its own CSRF check (the double-submit
// token every console form carries) adds the API's CSRF header. So who may see or change what,
// how input is validated and what is audited are exactly the API's; the console only renders its
// JSON, and its RFC 9457 problems become messages beside the form fields they name.
//
// No build step and no inline script or style: the templates and the small first-party script
// and stylesheet are embedded, and the gateway's Content-Security-Policy applies unchanged.
package console

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/qiao-gateway/qiao/adminapi"
	"github.com/qiao-gateway/qiao/internal/httpx"
	"github.com/qiao-gateway/qiao/pages"
)

// Prefix is where the console is mounted.
const Prefix = "/console"

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static/*
var staticFiles embed.FS

// Console serves the admin console. Fill the fields, call Init once, then serve Handler at
// Prefix+"/".
type Console struct {
	// API is the admin API's handler (adminapi.API.Handler), served at adminapi.Prefix.
	API http.Handler
	// Pages gives the double-submit CSRF token the gateway's forms share.
	Pages       *pages.Renderer
	ExternalURL string
	Log         *slog.Logger

	tmplZH, tmplEN *template.Template
	mux            *http.ServeMux
}

// Init parses the templates and builds the routes.
func (c *Console) Init() error {
	if c.Log == nil {
		c.Log = slog.Default()
	}
	c.ExternalURL = strings.TrimRight(c.ExternalURL, "/")
	// One parse per language: the wording function is bound at parse time.
	for _, l := range []string{zh, en} {
		t, err := template.New("").Funcs(funcs(l)).ParseFS(templateFiles, "templates/*.html")
		if err != nil {
			return fmt.Errorf("console: parse templates: %w", err)
		}
		if l == zh {
			c.tmplZH = t
		} else {
			c.tmplEN = t
		}
	}
	c.mux = http.NewServeMux()
	sub, _ := fs.Sub(staticFiles, "static")
	c.mux.Handle("GET "+Prefix+"/static/", http.StripPrefix(Prefix+"/static/", httpx.StaticFiles(sub)))
	c.routes()
	return nil
}

// Handler serves the console.
func (c *Console) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The gateway's Content-Security-Policy (no inline script or style) applies as it is.
		if l := r.URL.Query().Get("lang"); l == "zh-CN" || l == "en" {
			http.SetCookie(w, &http.Cookie{Name: langCookie, Value: l, Path: Prefix + "/", MaxAge: 365 * 24 * 3600, HttpOnly: true,
				Secure: strings.HasPrefix(c.ExternalURL, "https://"), SameSite: http.SameSiteLaxMode})
			// This answer is in the new language too: the browser's earlier choice, which it
			// still sends, is dropped (r.Cookie would find it first).
			cookies := r.Cookies()
			r.Header.Del("Cookie")
			for _, c := range cookies {
				if c.Name != langCookie {
					r.AddCookie(c)
				}
			}
			r.AddCookie(&http.Cookie{Name: langCookie, Value: l})
		}
		c.mux.ServeHTTP(w, r)
	})
}

// ---- calling the admin API in process

// problem is an RFC 9457 problem the API answered.
type problem struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Errors []struct {
		Message  string `json:"message"`
		Location string `json:"location"`
	} `json:"errors"`
}

// fields maps the problem's field errors to form field names: an error at body.wecom.corp_id
// belongs beside the input named wecom.corp_id.
func (p *problem) fields() map[string]string {
	out := map[string]string{}
	for _, e := range p.Errors {
		f := strings.TrimPrefix(e.Location, "body.")
		f, _, _ = strings.Cut(f, "[") // a list's item belongs to the list's field
		if f == "body" || f == "" {
			continue
		}
		if _, ok := out[f]; !ok {
			out[f] = e.Message
		}
	}
	return out
}

func (p *problem) Error() string { return fmt.Sprintf("%d %s", p.Status, p.Detail) }

// answer is the API's reply.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// recorder is the ResponseWriter an in-process API call writes to.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(s int) {
	if r.status == 0 {
		r.status = s
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

// call sends one request to the admin API as the browser's caller: the same cookies, client
// address, user agent and request ID (so the audit log names the console's request). path is
// below /api/v1. An unsafe method must come from a handler that already checked the console's
// CSRF token: only then does it carry the API's CSRF header and a same-origin Origin.
func (c *Console) call(r *http.Request, method, path string, body any) (*answer, *problem) {
	unsafe := method != http.MethodGet && method != http.MethodHead
	if unsafe && r.Context().Value(csrfChecked{}) == nil {
		return nil, &problem{Status: http.StatusForbidden, Detail: "The page expired; please try again."}
	}
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, &problem{Status: http.StatusInternalServerError, Detail: err.Error()}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(r.Context(), method, adminapi.Prefix+path, rd)
	if err != nil {
		return nil, &problem{Status: http.StatusBadRequest, Detail: err.Error()}
	}
	req.RemoteAddr, req.Host = r.RemoteAddr, r.Host
	for _, h := range []string{"Cookie", "User-Agent", "X-Forwarded-For", "X-Real-Ip", "Forwarded"} {
		if v := r.Header.Values(h); len(v) > 0 {
			req.Header[h] = v
		}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if unsafe {
		req.Header.Set(adminapi.CSRFHeader, "1")
		req.Header.Set("Origin", c.ExternalURL)
	}
	rec := &recorder{header: http.Header{}}
	c.API.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	a := &answer{status: rec.status, header: rec.header, body: rec.body.Bytes()}
	if a.status >= 400 {
		p := &problem{}
		if json.Unmarshal(a.body, p) != nil || p.Status == 0 {
			p = &problem{Status: a.status, Detail: strings.TrimSpace(string(a.body))}
		}
		return a, p
	}
	return a, nil
}

// get reads a JSON answer of the API into a generic value the templates walk.
func (c *Console) get(r *http.Request, path string, q url.Values) (map[string]any, *problem) {
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	a, p := c.call(r, http.MethodGet, path, nil)
	if p != nil {
		return nil, p
	}
	return decode(a.body)
}

// send makes a change through the API and decodes its answer (nil for 204).
func (c *Console) send(r *http.Request, method, path string, body any) (map[string]any, *problem) {
	a, p := c.call(r, method, path, body)
	if p != nil {
		return nil, p
	}
	if len(a.body) == 0 {
		return map[string]any{}, nil
	}
	return decode(a.body)
}

func decode(b []byte) (map[string]any, *problem) {
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return nil, &problem{Status: http.StatusBadGateway, Detail: "the admin API's answer is not JSON"}
	}
	return m, nil
}

func ep(ent string, more ...string) string {
	p := "/enterprises/" + url.PathEscape(ent)
	for _, m := range more {
		p += "/" + url.PathEscape(m)
	}
	return p
}
