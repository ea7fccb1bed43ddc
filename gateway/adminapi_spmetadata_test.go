package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/qiao-gateway/qiao/adminapi"
)

// TestAdminAPISPMetadataURL: a service provider registered by metadata URL is fetched when it is
// given, and the API says how that and later fetches went — what the metadata says when it is
// good, the reason when it is not — while logons keep the last good copy.
func TestAdminAPISPMetadataURL(t *testing.T) {
	a := newAdminWorld(t)
	owner := a.sessionOf("demo", "zhao-owner")
	sp := newTestSP(t, "mdurl", false, false)
	var broken atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/samlmetadata+xml")
		_, _ = w.Write([]byte(sp.metadata()))
	}))
	defer srv.Close()

	body, _ := json.Marshal(map[string]string{"entity_id": sp.entity, "metadata_url": srv.URL + "/md"})
	r := a.call(owner, "POST", "/enterprises/demo/service-providers", string(body))
	fetch, _ := r.json(t)["metadata_fetch"].(map[string]any)
	if r.status != 201 || fetch == nil || fetch["ok"] != true || fetch["fetched_at"] == nil || !strings.Contains(string(r.body), sp.acs) {
		t.Fatalf("create by URL: %d %s", r.status, r.body)
	}
	id := adminapi.SPID(sp.entity)
	if r := a.call(a.sessionOf("demo", "li-auditor"), "GET", "/enterprises/demo/service-providers/"+id, ""); r.status != 200 || !strings.Contains(string(r.body), `"ok":true`) {
		t.Fatalf("get: %d %s", r.status, r.body)
	}

	// The URL starts failing: a refresh says why, and keeps when it last went well.
	broken.Store(true)
	r = a.call(owner, "POST", "/enterprises/demo/service-providers/"+id+"/refresh-metadata", "")
	fetch, _ = r.json(t)["metadata_fetch"].(map[string]any)
	if r.status != 200 || fetch == nil || fetch["ok"] != false || !strings.Contains(fetch["error"].(string), "503") || fetch["last_good_at"] == nil {
		t.Fatalf("refresh of a failing URL: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "GET", "/enterprises/demo/service-providers", ""); r.status != 200 || !strings.Contains(string(r.body), `"ok":false`) {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	broken.Store(false)
	if r := a.call(owner, "POST", "/enterprises/demo/service-providers/"+id+"/refresh-metadata", ""); r.status != 200 || !strings.Contains(string(r.body), `"ok":true`) {
		t.Fatalf("refresh after recovery: %d %s", r.status, r.body)
	}
	// An SP with inline metadata has nothing to fetch; an auditor may not ask.
	if r := a.call(a.sessionOf("demo", "li-auditor"), "POST", "/enterprises/demo/service-providers/"+id+"/refresh-metadata", ""); r.status != 403 {
		t.Fatalf("auditor refresh: %d %s", r.status, r.body)
	}
	inline := newTestSP(t, "mdinline", false, false)
	body, _ = json.Marshal(map[string]string{"entity_id": inline.entity, "metadata": inline.metadata()})
	if r := a.call(owner, "POST", "/enterprises/demo/service-providers", string(body)); r.status != 201 || r.json(t)["metadata_fetch"] != nil {
		t.Fatalf("inline create: %d %s", r.status, r.body)
	}
	if r := a.call(owner, "POST", "/enterprises/demo/service-providers/"+adminapi.SPID(inline.entity)+"/refresh-metadata", ""); r.status != 409 {
		t.Fatalf("refresh of inline metadata: %d %s", r.status, r.body)
	}
}
