package console

import (
	"context"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestEveryTextIsTranslated: every {{t "…"}} of the templates, every label of the forms and
// every flash message has its Chinese.
func TestEveryTextIsTranslated(t *testing.T) {
	lit := regexp.MustCompile(`\{\{-?\s*t\s+"([^"]+)"`)
	var missing []string
	err := fs.WalkDir(templateFiles, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(templateFiles, path)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
			if _, ok := zhText[m[1]]; !ok {
				missing = append(missing, path+": "+m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var more []string
	for _, f := range append(append([]kindField{}, wecomInputs...), dingtalkInputs...) {
		more = append(more, f.Label)
	}
	for _, f := range flashes {
		more = append(more, f)
	}
	more = append(more, recordActions...)
	for _, g := range grantChoices {
		more = append(more, g.Label)
	}
	more = append(more, "The secret is rotated: the old one no longer works.")
	for _, s := range more {
		if _, ok := zhText[s]; !ok {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("no Chinese for:\n%s", strings.Join(missing, "\n"))
	}
}

// TestTemplatesParse: both languages' template sets parse.
func TestTemplatesParse(t *testing.T) {
	c := &Console{}
	if err := c.Init(); err != nil {
		t.Fatal(err)
	}
}

// TestProblemFields: an API field error lands beside the form's input of the same JSON path;
// an item of a list beside the list.
func TestProblemFields(t *testing.T) {
	p := &problem{}
	p.Errors = append(p.Errors, struct {
		Message  string `json:"message"`
		Location string `json:"location"`
	}{"bad", "body.wecom.corp_id"}, struct {
		Message  string `json:"message"`
		Location string `json:"location"`
	}{"must be name", "body.sync.field_mappings[0].local"}, struct {
		Message  string `json:"message"`
		Location string `json:"location"`
	}{"whole", "body"})
	f := p.fields()
	if f["wecom.corp_id"] != "bad" || f["sync.field_mappings"] != "must be name" || len(f) != 2 {
		t.Fatalf("fields %v", f)
	}
}

// A change reaches the admin API only from a handler that passed the console's CSRF check: a
// handler that forgot it fails closed (403) and the API is never called.
func TestUncheckedChangeNeverReachesTheAPI(t *testing.T) {
	called := 0
	c := &Console{API: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called++
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"items":[]}`))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	r := httptest.NewRequest(http.MethodPost, Prefix+"/e/demo/keys/rotate", nil)
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if _, p := c.send(r, m, "/enterprises/demo/keys/rotate", nil); p == nil || p.Status != http.StatusForbidden {
			t.Fatalf("%s without the CSRF check: problem %+v, want 403", m, p)
		}
	}
	if called != 0 {
		t.Fatalf("the API was called %d times for unchecked changes", called)
	}
	if _, p := c.get(r, "/enterprises/demo/keys", nil); p != nil || called != 1 {
		t.Fatalf("a read needs no CSRF check: problem %+v, calls %d", p, called)
	}
	checked := r.WithContext(context.WithValue(r.Context(), csrfChecked{}, true))
	if _, p := c.send(checked, http.MethodPost, "/enterprises/demo/keys/rotate", nil); p != nil || called != 2 {
		t.Fatalf("a checked change: problem %+v, calls %d", p, called)
	}
}
