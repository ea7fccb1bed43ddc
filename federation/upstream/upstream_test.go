package upstream

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestTokenCacheOneFetchInFlight(t *testing.T) {
	c := NewTokenCache(time.Minute)
	var fetches atomic.Int32
	fetch := func(context.Context) (Token, error) {
		fetches.Add(1)
		time.Sleep(50 * time.Millisecond)
		return Token{Value: "tok", Expires: time.Now().Add(2 * time.Hour)}, nil
	}
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v, err := c.Get(context.Background(), "corp/secret", fetch); err != nil || v != "tok" {
				t.Errorf("Get = %q, %v", v, err)
			}
		}()
	}
	wg.Wait()
	if fetches.Load() != 1 {
		t.Fatalf("%d fetches for 50 concurrent callers, want 1", fetches.Load())
	}
	// Inside the refresh margin the token is fetched again.
	c2 := NewTokenCache(time.Minute)
	n := 0
	soon := func(context.Context) (Token, error) {
		n++
		return Token{Value: "t", Expires: time.Now().Add(30 * time.Second)}, nil
	}
	c2.Get(context.Background(), "k", soon)
	c2.Get(context.Background(), "k", soon)
	if n != 2 {
		t.Fatalf("a token expiring within the margin was reused (%d fetches)", n)
	}
	// Invalidate drops only the stale value.
	c.Invalidate("corp/secret", "other")
	if v, _ := c.Get(context.Background(), "corp/secret", fetch); v != "tok" || fetches.Load() != 1 {
		t.Fatal("Invalidate with another value dropped the token")
	}
	c.Invalidate("corp/secret", "tok")
	c.Get(context.Background(), "corp/secret", fetch)
	if fetches.Load() != 2 {
		t.Fatal("Invalidate did not force a refetch")
	}
	failing := func(context.Context) (Token, error) { return Token{}, errors.New("refused") }
	if _, err := NewTokenCache(time.Minute).Get(context.Background(), "x", failing); err == nil {
		t.Fatal("fetch error swallowed")
	}
}

func TestLimiter(t *testing.T) {
	l := NewLimiter(20, 1)
	start := time.Now()
	for i := 0; i < 11; i++ {
		if err := l.Wait(context.Background(), "api"); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 450*time.Millisecond {
		t.Fatalf("11 calls at 20/s took %v", d)
	}
	if err := NewLimiter(0, 0).Wait(context.Background(), "api"); err != nil {
		t.Fatal("an unlimited limiter blocked")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	slow := NewLimiter(0.001, 1)
	slow.Wait(context.Background(), "a")
	if err := slow.Wait(ctx, "a"); err == nil {
		t.Fatal("Wait ignored a cancelled context")
	}
}

func TestBackoffIsBounded(t *testing.T) {
	b := Backoff{Base: 100 * time.Millisecond, Max: time.Second, Attempts: 5}
	for n := 1; n < 40; n++ {
		if d := b.Delay(n); d <= 0 || d > time.Second {
			t.Fatalf("Delay(%d) = %v", n, d)
		}
	}
}

// TestProxiesTriedInOrder: the first proxy cannot be reached, the second (which wants a user and
// password) forwards the call.
func TestProxiesTriedInOrder(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "from origin") }))
	defer origin.Close()
	var proxied atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte("egress:s3cret"))
		if r.Header.Get("Proxy-Authorization") != want {
			w.WriteHeader(http.StatusProxyAuthRequired)
			return
		}
		proxied.Add(1)
		req, _ := http.NewRequest(r.Method, r.URL.String(), r.Body)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	defer proxy.Close()
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	hostPort := strings.TrimPrefix(proxy.URL, "http://")
	c, err := NewHTTPClient(5*time.Second, []string{"http://egress:s3cret@" + deadAddr, "http://egress:s3cret@" + hostPort})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(origin.URL + "/cgi-bin/gettoken")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "from origin" || proxied.Load() != 1 {
		t.Fatalf("through the proxies: %q (proxied %d)", body, proxied.Load())
	}
	// Every proxy down: a clear error.
	c, _ = NewHTTPClient(time.Second, []string{"http://" + deadAddr})
	if _, err := c.Get(origin.URL); err == nil || !strings.Contains(err.Error(), "every egress proxy failed") {
		t.Fatalf("all proxies down: %v", err)
	}
	if _, err := NewHTTPClient(time.Second, []string{"socks5://x:1"}); err == nil {
		t.Fatal("a non-http proxy URL accepted")
	}
}

func TestLimiterIsSharedPerCredential(t *testing.T) {
	first, second := LimiterFor("corp-a", 10, 1), LimiterFor("corp-a", 10, 1)
	if first != second {
		t.Fatal("two clients of one credential got separate limiters")
	}
	if first == LimiterFor("corp-b", 10, 1) {
		t.Fatal("two credentials share a limiter")
	}
}

// An upstream that cannot be reached is reported with where (the URL without its query, which
// holds the access token) and why.
func TestUnreachableSaysWhereAndWhy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	c := &Caller{Platform: "WeCom", HTTP: &http.Client{Timeout: time.Second}, Backoff: Backoff{Base: time.Millisecond, Max: time.Millisecond, Attempts: 2}}
	_, _, err = c.Do(context.Background(), "user/list", "GET", "http://"+addr+"/cgi-bin/user/list?access_token=SECRET-TOKEN&department_id=1", nil, nil)
	if err == nil {
		t.Fatal("an unreachable upstream answered")
	}
	msg := err.Error()
	for _, want := range []string{"WeCom user/list: http://" + addr + "/cgi-bin/user/list unreachable after 2 attempts: ", "refused"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "SECRET-TOKEN") {
		t.Errorf("error %q shows the access token", msg)
	}
}
