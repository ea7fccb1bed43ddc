package gateway

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/qiao-gateway/qiao/internal/httpx"
	"github.com/qiao-gateway/qiao/pages"
)

// Failure behaviour of a serving replica. A watcher pings the durable store and the state store
// every healthEvery; while either does not answer (two pings in a row failed), every request except the operations endpoints
// is refused at once with 503 and Retry-After (in the caller's format: an OAuth error at the token
// endpoint, a problem document under /api/, a product page for a browser, qiao's JSON error
// otherwise) instead of waiting on a database that is not there, and /readyz says 503 so the load
// balancer prefers the other replicas. When the backend answers again the replica serves again;
// nothing restarts. From SIGTERM on, /readyz says 503 (draining) while in-flight requests finish.

const (
	healthEvery   = time.Second
	healthTimeout = 2 * time.Second
	retryAfter    = "5" // seconds
)

// health is what the watcher last saw; the zero value (not watching: a gateway built but not
// serving, as in tests) lets everything through.
type health struct {
	storeDown, stateDown, draining atomic.Bool
	storeFails, stateFails         int // consecutive failed pings (the watcher's own)
}

func (h *health) down() bool { return h.storeDown.Load() || h.stateDown.Load() }

// watchHealth pings both backends every healthEvery until ctx ends, then marks the replica
// draining.
func (g *Gateway) watchHealth(ctx context.Context) {
	t := time.NewTicker(healthEvery)
	defer t.Stop()
	for {
		g.checkHealth(ctx)
		select {
		case <-ctx.Done():
			g.health.draining.Store(true)
			return
		case <-t.C:
		}
	}
}

func (g *Gateway) checkHealth(ctx context.Context) {
	check := func(name string, ping func(context.Context) error, flag *atomic.Bool, fails *int) {
		pctx, cancel := context.WithTimeout(ctx, healthTimeout)
		err := ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		// Down after two failed pings in a row: one slow answer on a loaded machine, or one stale
		// pooled connection after the backend restarted, is not an outage.
		if err != nil {
			*fails++
		} else {
			*fails = 0
		}
		down := *fails >= 2
		if was := flag.Swap(down); was != down {
			if down {
				g.Log.Error("backend unreachable: refusing requests with 503 until it answers", "backend", name, "err", err)
			} else {
				g.Log.Info("backend answers again: serving", "backend", name)
			}
		}
	}
	check("store", g.Store.Ping, &g.health.storeDown, &g.health.storeFails)
	check("state", g.State.Ping, &g.health.stateDown, &g.health.stateFails)
}

// failFast refuses requests while a backend is down (see above); the operations endpoints and
// static files always pass.
func (g *Gateway) failFast(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.health.down() || operational(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		unavailable(w, r, g.Broker.Pages)
	})
}

func operational(path string) bool {
	switch path {
	case "/healthz", "/readyz", "/metrics":
		return true
	}
	return strings.HasPrefix(path, "/static/")
}

// unavailable answers 503 in the caller's format.
func unavailable(w http.ResponseWriter, r *http.Request, rend *pages.Renderer) {
	w.Header().Set("Retry-After", retryAfter)
	const msg = "the service is temporarily unavailable; retry shortly"
	switch {
	case strings.HasSuffix(r.URL.Path, "/oauth/token"), strings.HasSuffix(r.URL.Path, "/oauth/introspect"), strings.HasSuffix(r.URL.Path, "/revoke"):
		httpx.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable", "error_description": msg})
	case strings.HasPrefix(r.URL.Path, "/api/"):
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"` + msg + `","request_id":"` +
			httpx.RequestID(r.Context()) + `"}` + "\n"))
	default:
		rend.StoreUnavailable(w, r)
	}
}

// readyz answers 200 only when the durable store and the state store both answer and the replica
// is not draining.
func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"store": "ok", "state": "ok"}
	ok := true
	if err := g.Store.Ping(ctx); err != nil {
		checks["store"], ok = "unreachable", false
		g.Log.Warn("readiness: durable store unreachable", "err", err)
	}
	if err := g.State.Ping(ctx); err != nil {
		checks["state"], ok = "unreachable", false
		g.Log.Warn("readiness: state store unreachable", "err", err)
	}
	// What the watcher last saw counts too: until it has seen the backend answer again this
	// replica still refuses requests, so it is not ready either.
	if g.health.storeDown.Load() {
		checks["store"], ok = "unreachable", false
	}
	if g.health.stateDown.Load() {
		checks["state"], ok = "unreachable", false
	}
	if g.health.draining.Load() {
		checks["serving"], ok = "draining", false
	}
	status := http.StatusOK
	if !ok {
		w.Header().Set("Retry-After", retryAfter)
		status = http.StatusServiceUnavailable
	}
	httpx.WriteJSON(w, status, map[string]any{"ready": ok, "checks": checks})
}

// drain starts a graceful stop: /readyz says 503 at once, and for drain_delay the replica goes on
// accepting requests, so a load balancer that checks /readyz stops sending it new ones before its
// listener closes (a request that reaches a closed listener fails at the balancer).
func (g *Gateway) drain() {
	g.health.draining.Store(true)
	if d := g.Config.DrainDelay.D(); d > 0 {
		g.Log.Info("draining: /readyz says 503 while still serving", "for", d.String())
		time.Sleep(d)
	}
}
