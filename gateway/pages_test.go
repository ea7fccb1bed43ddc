package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/qiao-gateway/qiao/directory"
)

// TestAPIsKeepTheirJSON: what answers a browser with a page answers an API client (no Accept, or
// Accept: application/json) with qiao's JSON error, and the OAuth endpoints answer JSON whoever
// asks.
func TestAPIsKeepTheirJSON(t *testing.T) {
	w := newWorld(t, 10, t.TempDir(), false)
	for _, c := range []struct{ method, path, accept, code string }{
		{"GET", "/no/such/page", "", "not_found"},
		{"GET", "/no/such/page", "application/json", "not_found"},
		{"GET", "/e/nosuch/.well-known/openid-configuration", "", "unknown_enterprise"},
		{"GET", "/e/nosuch/saml/metadata", "application/json, text/html;q=0.5", "unknown_enterprise"},
		{"POST", "/e/demo/oauth/token", "text/html", "invalid_request"},
	} {
		req, _ := http.NewRequest(c.method, w.base+c.path, nil)
		if c.accept != "" {
			req.Header.Set("Accept", c.accept)
		}
		if c.method == "POST" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || body["error"] != c.code {
			t.Errorf("%s %s (Accept %q): %d %s %v, want JSON error %s", c.method, c.path, c.accept, resp.StatusCode, resp.Header.Get("Content-Type"), body, c.code)
		}
	}
}

// TestFailedSignInsAreAudited: a sign-in the person declined at the platform, a replayed
// callback and an unknown enterprise each leave a login.failure audit record — the unknown
// enterprise with what was typed.
func TestFailedSignInsAreAudited(t *testing.T) {
	w := newWorld(t, 10, t.TempDir(), false)
	failures := func(ent, reason string) []*directory.AuditEvent {
		t.Helper()
		evs, err := w.gw.Store.ListAuditEvents(w.ctx, directory.AuditQuery{EnterpriseID: ent, Kind: "login.failure"})
		if err != nil {
			t.Fatal(err)
		}
		var out []*directory.AuditEvent
		for _, e := range evs {
			if e.Reason == reason {
				out = append(out, e)
			}
		}
		return out
	}
	// scan starts a WeCom login in a fresh browser and "scans" as who; it returns the callback
	// URL the platform sent the browser to and the browser.
	scan := func(who string) (string, *http.Client) {
		jar, _ := cookiejar.New(nil)
		var callback string
		c := &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
			if strings.Contains(r.URL.Path, "/sources/wecom/callback") {
				callback = r.URL.String()
			}
			return nil
		}}
		resp, err := (&http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(w.base + "/login/e/demo/s/wecom")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		resp, err = c.Get(resp.Header.Get("Location") + "&sim_user=" + url.QueryEscape(who))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if callback == "" {
			t.Fatalf("scanning as %s never reached the callback", who)
		}
		return callback, c
	}

	scan("@deny")
	if evs := failures("demo", "declined at the platform"); len(evs) != 1 || evs[0].SourceID != "wecom" || evs[0].Outcome != "denied" {
		t.Fatalf("declined: audit %v", evs)
	}

	callback, c := scan("zhangsan")
	resp, err := c.Get(callback)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if evs := failures("demo", "unknown, used or expired state"); resp.StatusCode != 400 || len(evs) != 1 || evs[0].SourceID != "wecom" {
		t.Fatalf("replayed callback: %d, audit %v", resp.StatusCode, evs)
	}

	resp, err = http.Get(w.base + "/login/e/nosuch")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	evs := failures("nosuch", "unknown enterprise")
	if resp.StatusCode != 404 || len(evs) != 1 || !strings.Contains(string(evs[0].Detail), `nosuch`) {
		t.Fatalf("unknown enterprise: %d, audit %v", resp.StatusCode, evs)
	}
	// Typed at the entry: not a well-formed ID, so no enterprise, but what was typed, cut short.
	jar, _ := cookiejar.New(nil)
	bc := &http.Client{Jar: jar}
	resp, err = bc.Get(w.base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	i := strings.Index(string(page), `name="csrf" value="`)
	csrf := string(page)[i+len(`name="csrf" value="`):]
	csrf = csrf[:strings.Index(csrf, `"`)]
	typedID := "Bad Corp\n" + strings.Repeat("x", 200)
	resp, err = bc.PostForm(w.base+"/login", url.Values{"csrf": {csrf}, "enterprise": {typedID}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	evs = failures("", "unknown enterprise")
	if len(evs) != 1 {
		t.Fatalf("a malformed enterprise ID typed: audit %v", evs)
	}
	var d map[string]string
	_ = json.Unmarshal(evs[0].Detail, &d)
	if got := d["enterprise_typed"]; !strings.HasPrefix(got, `"bad corp\n`) || len(got) > 80 || strings.Contains(got, "\n") {
		t.Fatalf("typed enterprise recorded as %q", got)
	}
}
