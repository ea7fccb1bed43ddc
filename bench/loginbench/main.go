// Command loginbench measures logins through the full broker + WeCom simulator path: each login
// starts at the gateway, "scans" on the simulator's QR page, returns to the gateway's callback
// (state check, code exchange over HTTP, directory resolution, session) and lands signed in.
//
//	go run ./bench/loginbench -c 50 -n 5000
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qiao-gateway/qiao/demo"
	"github.com/qiao-gateway/qiao/directory/dirsync"
	"github.com/qiao-gateway/qiao/federation/dingtalk/dingtalksim"
	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
	"github.com/qiao-gateway/qiao/gateway"
)

func main() {
	conc := flag.Int("c", 50, "concurrent browsers")
	n := flag.Int("n", 5000, "logins")
	flag.Parse()
	if err := run(*conc, *n); err != nil {
		fmt.Fprintln(os.Stderr, "loginbench:", err)
		os.Exit(1)
	}
}

func run(conc, n int) error {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ws := wecomsim.NewSetup(1000, 7, addr)
	ws.Config.RateLimits = false
	wsrv := httptest.NewServer(wecomsim.New(ws.Config))
	defer wsrv.Close()
	ds := dingtalksim.NewSetup(10, 8, addr)
	dsrv := httptest.NewServer(dingtalksim.New(ds.Config))
	defer dsrv.Close()
	dir, _ := os.MkdirTemp("", "loginbench-")
	defer os.RemoveAll(dir)
	cfg, _, err := demo.Config(addr, dir, "pw", &demo.Sims{WeCom: ws, WeComURL: wsrv.URL, DingTalk: ds, DingTalkURL: dsrv.URL})
	if err != nil {
		return err
	}
	off := false
	cfg.SyncScheduler = &off
	cfg.Enterprises[0].Sources[1].Config["rate_limit"] = "off"
	gw, err := gateway.New(ctx, cfg, gateway.NewLogger(cfg))
	if err != nil {
		return err
	}
	defer gw.Close()
	if _, err := gw.Sync.Run(ctx, "demo", "wecom", dirsync.Options{}); err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go gw.Serve(sctx, ln)
	time.Sleep(100 * time.Millisecond)
	// Log in as many different people, as real traffic does.
	o := ws.Config.Org
	o.RLock()
	var people []string
	for _, id := range o.UserIDs() {
		if o.User(id).Status == 1 {
			people = append(people, id)
		}
	}
	o.RUnlock()
	var next atomic.Int64
	base := "http://" + addr
	transport := &http.Transport{MaxIdleConnsPerHost: conc * 2}
	login := func() (time.Duration, error) {
		who := people[int(next.Add(1))%len(people)]
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		start := time.Now()
		u := base + "/login/e/demo/s/wecom"
		for i := 0; i < 6; i++ {
			resp, err := c.Get(u)
			if err != nil {
				return 0, err
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.HasSuffix(resp.Request.URL.Path, "/login/done") {
				return time.Since(start), nil
			}
			if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
				return 0, fmt.Errorf("%s answered %d", resp.Request.URL.Path, resp.StatusCode)
			}
			next, _ := resp.Request.URL.Parse(resp.Header.Get("Location"))
			if strings.Contains(next.Path, "/wwlogin/sso/login") {
				q := next.Query()
				q.Set("sim_user", who)
				next.RawQuery = q.Encode()
			}
			u = next.String()
		}
		return 0, fmt.Errorf("too many redirects")
	}
	var done atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done.Add(1) <= int64(n) {
				d, err := login()
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	wall := time.Since(t0)
	if firstErr != nil {
		return firstErr
	}
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[int(float64(len(lat)-1)*q)].Round(100 * time.Microsecond) }
	fmt.Printf("%d logins at concurrency %d through broker + WeCom simulator: %.0f logins/s, p50 %v, p99 %v\n",
		len(lat), conc, float64(len(lat))/wall.Seconds(), p(.5), p(.99))
	return nil
}
