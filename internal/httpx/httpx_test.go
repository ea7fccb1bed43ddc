package httpx

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestObservePanicsBecome500AndQueriesAreNotLogged(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("kaboom") })
	mux.HandleFunc("GET /ok", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("fine")) })
	h := WithRequestID(Observe(log, m, ClientIP(nil), SecurityHeaders(true, mux)))

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/boom?code=SECRETCODE", nil))
	if rec.Code != 500 {
		t.Fatalf("panic status = %d", rec.Code)
	}
	var body ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error != "internal_error" || body.RequestID == "" ||
		body.RequestID != rec.Header().Get("X-Request-Id") {
		t.Fatalf("panic body = %s (%v)", rec.Body, err)
	}
	if strings.Contains(logs.String(), "SECRETCODE") {
		t.Fatal("query string logged")
	}
	if !strings.Contains(logs.String(), "kaboom") {
		t.Fatal("panic not logged")
	}

	rec = httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/ok", nil)
	req.Header.Set("X-Request-Id", "abcdefgh-1234")
	h.ServeHTTP(rec, req)
	if rec.Header().Get("X-Request-Id") != "abcdefgh-1234" {
		t.Fatal("well-formed incoming request ID not kept")
	}
	for _, hdr := range []string{"X-Content-Type-Options", "X-Frame-Options", "Content-Security-Policy", "Strict-Transport-Security"} {
		if rec.Header().Get(hdr) == "" {
			t.Errorf("missing %s", hdr)
		}
	}
	rec = httptest.NewRecorder()
	req = httptest.NewRequest("GET", "/ok", nil)
	req.Header.Set("X-Request-Id", "bad id\nwith newline")
	h.ServeHTTP(rec, req)
	if rec.Header().Get("X-Request-Id") == "bad id\nwith newline" {
		t.Fatal("malformed request ID echoed")
	}
	if n := testutil.CollectAndCount(reg, "qiao_http_request_duration_seconds"); n != 2 {
		t.Fatalf("%d metric series, want 2 (GET /boom 500, GET /ok 200)", n)
	}
}

func TestClientIP(t *testing.T) {
	_, lan, _ := net.ParseCIDR("10.0.0.0/8")
	ip := ClientIP([]*net.IPNet{lan})
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = "10.1.1.1:4000"
	req.Header.Set("X-Forwarded-For", "203.0.113.9, 198.51.100.7, 10.2.2.2")
	if got := ip(req); got != "198.51.100.7" {
		t.Fatalf("via trusted proxy = %s", got)
	}
	req.RemoteAddr = "192.0.2.1:4000"
	if got := ip(req); got != "192.0.2.1" {
		t.Fatalf("untrusted peer's XFF believed: %s", got)
	}
}
