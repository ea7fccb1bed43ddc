// Command eventbench measures departure-to-revocation latency: people are removed in the WeCom
// simulator, which pushes delete_user events to a gateway over loopback HTTP; the latency runs from
// the removal to the gateway's revocation of the person's tokens. It also measures events applied
// per second for a burst.
//
//	go run ./bench/eventbench -events 1000 -rate 50
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/qiao-gateway/qiao/demo"
	"github.com/qiao-gateway/qiao/directory/dirsync"
	"github.com/qiao-gateway/qiao/federation/dingtalk/dingtalksim"
	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
	"github.com/qiao-gateway/qiao/gateway"
)

func main() {
	n := flag.Int("events", 1000, "departures to measure")
	rate := flag.Float64("rate", 50, "departures per second for the latency run (0 = all at once)")
	flag.Parse()
	if err := run(*n, *rate); err != nil {
		fmt.Fprintln(os.Stderr, "eventbench:", err)
		os.Exit(1)
	}
}

func run(n int, rate float64) error {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ws := wecomsim.NewSetup(3*n, 7, addr)
	ws.Config.RateLimits = false
	wsim := wecomsim.New(ws.Config)
	wsrv := httptest.NewServer(wsim)
	defer wsrv.Close()
	ds := dingtalksim.NewSetup(10, 8, addr)
	dsrv := httptest.NewServer(dingtalksim.New(ds.Config))
	defer dsrv.Close()
	dir, _ := os.MkdirTemp("", "eventbench-")
	defer os.RemoveAll(dir)
	cfg, _, err := demo.Config(addr, dir, "pw", &demo.Sims{WeCom: ws, WeComURL: wsrv.URL, DingTalk: ds, DingTalkURL: dsrv.URL})
	if err != nil {
		return err
	}
	off := false
	cfg.SyncScheduler = &off
	cfg.Enterprises[0].Sources[1].Sync.DeleteUsers = new(int)
	*cfg.Enterprises[0].Sources[1].Sync.DeleteUsers = 1 << 30
	cfg.Enterprises[0].Sources[1].Config["rate_limit"] = "off"
	gw, err := gateway.New(ctx, cfg, gateway.NewLogger(cfg))
	if err != nil {
		return err
	}
	defer gw.Close()
	if _, err := gw.Sync.Run(ctx, "demo", "wecom", dirsync.Options{}); err != nil {
		return err
	}
	var mu sync.Mutex
	revoked := map[string]time.Time{}
	gw.Sync.Access = &timedAccess{Access: gw.Sync.Access, at: func(uid string) {
		mu.Lock()
		revoked[uid] = time.Now()
		mu.Unlock()
	}}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go gw.Serve(sctx, ln)
	time.Sleep(100 * time.Millisecond)
	resp, err := http.Post(wsrv.URL+"/_sim/callback", "application/json", strings.NewReader(`{"url":"http://`+addr+`/e/demo/sources/wecom/events"}`))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		return fmt.Errorf("register callback: %s", resp.Status)
	}
	// Active people to remove, with their local IDs.
	o := wsim.Org()
	o.RLock()
	var people []string
	for _, id := range o.UserIDs() {
		if o.User(id).Status == 1 && id != "zhangsan" {
			people = append(people, id)
		}
	}
	o.RUnlock()
	if len(people) < 2*n {
		return fmt.Errorf("only %d active people", len(people))
	}
	localID := map[string]string{}
	for _, id := range people[:2*n] {
		u, err := gw.Store.GetUserByUsername(ctx, "demo", id)
		if err != nil {
			return err
		}
		localID[id] = u.ID
	}
	measure := func(batch []string, every time.Duration) ([]time.Duration, time.Duration, error) {
		start := map[string]time.Time{}
		t0 := time.Now()
		for i, id := range batch {
			if every > 0 {
				time.Sleep(time.Until(t0.Add(time.Duration(i) * every)))
			}
			start[id] = time.Now()
			req, _ := http.NewRequest("DELETE", wsrv.URL+"/_sim/users/"+id, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return nil, 0, err
			}
			resp.Body.Close()
		}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			mu.Lock()
			done := 0
			for _, id := range batch {
				if _, ok := revoked[localID[id]]; ok {
					done++
				}
			}
			mu.Unlock()
			if done == len(batch) {
				break
			}
			if time.Now().After(deadline) {
				return nil, 0, fmt.Errorf("only %d of %d departures revoked within 2 minutes", done, len(batch))
			}
			time.Sleep(5 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		var lat []time.Duration
		last := t0
		for _, id := range batch {
			r := revoked[localID[id]]
			lat = append(lat, r.Sub(start[id]))
			if r.After(last) {
				last = r
			}
		}
		slices.Sort(lat)
		return lat, last.Sub(t0), nil
	}
	every := time.Duration(0)
	if rate > 0 {
		every = time.Duration(float64(time.Second) / rate)
	}
	lat, _, err := measure(people[:n], every)
	if err != nil {
		return err
	}
	pct := func(p float64) time.Duration { return lat[int(float64(len(lat)-1)*p)] }
	fmt.Printf("departure → revocation over %d events at %.0f/s: p50 %v, p99 %v, max %v\n", n, rate,
		pct(.50).Round(100*time.Microsecond), pct(.99).Round(100*time.Microsecond), lat[len(lat)-1].Round(100*time.Microsecond))
	_, total, err := measure(people[n:2*n], 0)
	if err != nil {
		return err
	}
	fmt.Printf("burst of %d departures: all applied and revoked in %v: %.0f events/s\n", n, total.Round(time.Millisecond), float64(n)/total.Seconds())
	return nil
}

// timedAccess notes when each departure reached the access lifecycle.
type timedAccess struct {
	dirsync.Access
	at func(uid string)
}

func (t *timedAccess) UserDeparted(ctx context.Context, ent, uid string) error {
	t.at(uid)
	return t.Access.UserDeparted(ctx, ent, uid)
}
