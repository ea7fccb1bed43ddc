package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/qiao-gateway/qiao/broker"
	"github.com/qiao-gateway/qiao/pages"
	"github.com/qiao-gateway/qiao/templates"
)

// While a backend is down every request but the operations endpoints is refused at once with 503
// and Retry-After, in the caller's format; when it answers again requests pass.
func TestFailFastWhileABackendIsDown(t *testing.T) {
	tpl, err := templates.Parse()
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{Broker: &broker.Broker{Pages: &pages.Renderer{Templates: tpl}}}
	served := 0
	h := g.failFast(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served++ }))
	do := func(method, path, accept string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, nil)
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	if do("POST", "/e/acme/oauth/token", "").Code != 200 || served != 1 {
		t.Fatal("a healthy replica refused a request")
	}
	g.health.storeDown.Store(true)
	w := do("POST", "/e/acme/oauth/token", "")
	var oauth map[string]string
	_ = json.Unmarshal(w.Body.Bytes(), &oauth)
	if w.Code != 503 || w.Header().Get("Retry-After") == "" || oauth["error"] != "temporarily_unavailable" {
		t.Fatalf("token endpoint: %d %q %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	w = do("GET", "/api/v1/enterprises", "application/json")
	var problem map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &problem)
	if w.Code != 503 || w.Header().Get("Content-Type") != "application/problem+json" || problem["status"] != 503.0 {
		t.Fatalf("admin API: %d %s %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	w = do("GET", "/login?enterprise=acme", "text/html")
	if w.Code != 503 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") || !strings.Contains(w.Body.String(), "服务暂时不可用") {
		t.Fatalf("browser: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/static/qiao.css"} {
		if do("GET", p, "").Code != 200 {
			t.Fatalf("%s refused while a backend is down", p)
		}
	}
	if served != 5 {
		t.Fatalf("%d requests reached the handler, want 5", served)
	}
	g.health.storeDown.Store(false)
	if do("POST", "/e/acme/oauth/token", "").Code != 200 {
		t.Fatal("refused after the backend answered again")
	}
}
