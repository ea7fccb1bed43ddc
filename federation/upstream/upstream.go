// Package upstream is the HTTP plumbing every platform connector shares: a token cache per
// credential that refreshes before expiry with one fetch in flight, client-side rate limits at the
// platforms' published figures, bounded retries with jittered backoff, and a list of egress
// proxies tried in order (for trusted-IP setups).
package upstream

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/qiao-gateway/qiao/federation"
)

// Token is an access token and its expiry.
type Token struct {
	Value   string
	Expires time.Time
}

// TokenCache caches one token per key (corp + secret) and refreshes it a margin before expiry;
// concurrent callers share one fetch.
type TokenCache struct {
	mu     sync.Mutex
	tokens map[string]Token
	group  singleflight.Group
	margin time.Duration
	now    func() time.Time
}

// NewTokenCache returns a cache that refreshes margin before expiry.
func NewTokenCache(margin time.Duration) *TokenCache {
	return &TokenCache{tokens: map[string]Token{}, margin: margin, now: time.Now}
}

// Get returns the cached token for key, or fetches one.
func (c *TokenCache) Get(ctx context.Context, key string, fetch func(context.Context) (Token, error)) (string, error) {
	c.mu.Lock()
	t, ok := c.tokens[key]
	c.mu.Unlock()
	if ok && c.now().Add(c.margin).Before(t.Expires) {
		return t.Value, nil
	}
	v, err, _ := c.group.Do(key, func() (any, error) {
		// Another caller may have refreshed while we waited.
		c.mu.Lock()
		t, ok := c.tokens[key]
		c.mu.Unlock()
		if ok && c.now().Add(c.margin).Before(t.Expires) {
			return t.Value, nil
		}
		nt, err := fetch(context.WithoutCancel(ctx))
		if err != nil {
			return "", err
		}
		c.mu.Lock()
		c.tokens[key] = nt
		c.mu.Unlock()
		return nt.Value, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// Invalidate drops key's token (after the platform said it is invalid or expired), unless the
// cache already holds a newer one than stale.
func (c *TokenCache) Invalidate(key, stale string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.tokens[key]; ok && t.Value == stale {
		delete(c.tokens, key)
	}
}

// Limiter holds one token-bucket limiter per API name.
type Limiter struct {
	mu    sync.Mutex
	per   map[string]*rate.Limiter
	limit rate.Limit
	burst int
}

// NewLimiter allows limit calls per second per API, with burst. limit <= 0 means unlimited.
func NewLimiter(limit float64, burst int) *Limiter {
	return &Limiter{per: map[string]*rate.Limiter{}, limit: rate.Limit(limit), burst: burst}
}

var (
	limitersMu sync.Mutex
	limiters   = map[string]*Limiter{}
)

// LimiterFor returns the process-wide limiter of a credential (e.g. a corp ID or an AppKey): the
// platforms count calls per corp or per app, and connectors are opened per login and per event,
// so a limiter per client would not limit anything.
func LimiterFor(key string, limit float64, burst int) *Limiter {
	k := fmt.Sprintf("%s\x00%g\x00%d", key, limit, burst)
	limitersMu.Lock()
	defer limitersMu.Unlock()
	l := limiters[k]
	if l == nil {
		l = NewLimiter(limit, burst)
		limiters[k] = l
	}
	return l
}

// Wait blocks until api may be called.
func (l *Limiter) Wait(ctx context.Context, api string) error {
	if l == nil || l.limit <= 0 {
		return nil
	}
	l.mu.Lock()
	lim := l.per[api]
	if lim == nil {
		lim = rate.NewLimiter(l.limit, l.burst)
		l.per[api] = lim
	}
	l.mu.Unlock()
	return lim.Wait(ctx)
}

// Backoff is a bounded retry schedule with full jitter.
type Backoff struct {
	Base     time.Duration
	Max      time.Duration
	Attempts int // total attempts, the first included
}

// Delay returns the wait before retry number n (1-based).
func (b Backoff) Delay(n int) time.Duration {
	d := b.Base << (n - 1)
	if d > b.Max || d <= 0 {
		d = b.Max
	}
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

// Sleep waits d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Transports are shared per proxy list: each holds a connection pool, and connectors are opened per
// login and per event, so a transport per client would start every call on a cold connection.
var (
	transportsMu sync.Mutex
	transports   = map[string]http.RoundTripper{}
)

// NewHTTPClient returns a client for a connector: direct, or through the given HTTPS/HTTP proxies
// ("https://user:pass@host:port"), tried in order when one cannot be reached.
func NewHTTPClient(timeout time.Duration, proxies []string) (*http.Client, error) {
	return NewHTTPClientTLS(timeout, proxies, nil)
}

// NewHTTPClientTLS is NewHTTPClient trusting roots (nil: the system's) for the platform's HTTPS:
// tests reach a simulator served over TLS through a CONNECT proxy.
func NewHTTPClientTLS(timeout time.Duration, proxies []string, roots *x509.CertPool) (*http.Client, error) {
	key := strings.Join(proxies, "\x00")
	if roots != nil {
		key += fmt.Sprintf("\x00roots:%p", roots)
	}
	transportsMu.Lock()
	defer transportsMu.Unlock()
	if rt, ok := transports[key]; ok {
		return &http.Client{Timeout: timeout, Transport: rt}, nil
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 32
	if roots != nil {
		base.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	var rt http.RoundTripper = base
	if len(proxies) > 0 {
		var rts []http.RoundTripper
		for i, p := range proxies {
			u, err := url.Parse(strings.TrimSpace(p))
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, fmt.Errorf("proxy %d is not an http(s)://[user:pass@]host:port URL", i+1)
			}
			t := base.Clone()
			t.Proxy = http.ProxyURL(u)
			rts = append(rts, t)
		}
		rt = &failover{rts: rts}
	}
	transports[key] = rt
	return &http.Client{Timeout: timeout, Transport: rt}, nil
}

// Caller performs a connector's HTTP exchanges: each waits for the API's rate limit, and transport
// failures and 5xx answers are retried with backoff. Business errors (errcodes) are the
// connector's to interpret.
type Caller struct {
	Platform string // for error messages: WeCom, DingTalk
	HTTP     *http.Client
	Limiter  *Limiter
	Backoff  Backoff
	// Unlimited names APIs the platform does not rate-limit (WeCom: auth/getuserinfo with a valid
	// code), which the client must not throttle either.
	Unlimited map[string]bool
	calls     atomic.Int64
}

// Calls is the number of HTTP requests made.
func (c *Caller) Calls() int64 { return c.calls.Load() }

// Do sends one request (retrying as above) and returns the final status and body.
func (c *Caller) Do(ctx context.Context, api, method, fullURL string, body []byte, header http.Header) (int, []byte, error) {
	for attempt := 1; ; attempt++ {
		if !c.Unlimited[api] {
			if err := c.Limiter.Wait(ctx, api); err != nil {
				return 0, nil, err
			}
		}
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, fullURL, rd)
		if err != nil {
			return 0, nil, err
		}
		for k, v := range header {
			req.Header[k] = v
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		c.calls.Add(1)
		resp, err := c.HTTP.Do(req)
		status := 0
		var data []byte
		if err == nil {
			status = resp.StatusCode
			data, err = io.ReadAll(io.LimitReader(resp.Body, 64<<20))
			resp.Body.Close()
		}
		if err == nil && status < 500 {
			return status, data, nil
		}
		if ctx.Err() != nil {
			return 0, nil, ctx.Err()
		}
		if attempt >= c.Backoff.Attempts {
			if err == nil {
				err = fmt.Errorf("HTTP %d", status)
			}
			// Say where and why; the URL without its query, which carries the access token (as
			// does the *url.Error's own message, hence its cause alone).
			cause := err
			var ue *url.Error
			if errors.As(err, &ue) {
				cause = ue.Err
			}
			where := fullURL
			if u, perr := url.Parse(fullURL); perr == nil {
				where = u.Scheme + "://" + u.Host + u.Path
			}
			return 0, nil, &federation.Error{Platform: c.Platform, API: api,
				Message: fmt.Sprintf("%s unreachable after %d attempts: %v", where, attempt, cause), Err: err}
		}
		if err := Sleep(ctx, c.Backoff.Delay(attempt)); err != nil {
			return 0, nil, err
		}
	}
}

// failover tries each proxy in order while the failure is reaching the proxy itself.
type failover struct{ rts []http.RoundTripper }

func (f *failover) RoundTrip(req *http.Request) (*http.Response, error) {
	var last error
	for _, rt := range f.rts {
		if req.Body != nil && req.GetBody != nil && last != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
		resp, err := rt.RoundTrip(req)
		if err == nil {
			return resp, nil
		}
		last = err
		// Try the next proxy only when this one could not be reached ("proxyconnect" wraps the
		// dial to the proxy); an answer from the proxy is not a reason to go elsewhere.
		var op *net.OpError
		if !errors.As(err, &op) || (op.Op != "dial" && op.Op != "proxyconnect") {
			return nil, err
		}
	}
	return nil, fmt.Errorf("every egress proxy failed: %w", last)
}
