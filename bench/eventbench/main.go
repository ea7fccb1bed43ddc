// Command eventbench measures departure-to-revocation latency: people are removed in the WeCom
// simulator, which pushes delete_user events to a gateway over loopback HTTP; the latency runs from
// the removal to the gateway's revocation of the person's tokens. It also measures events applied
// per second for a burst.
//
//	go run ./bench/eventbench -events 1000 -rate 50
//
// With -sync-users N the organisation has N people (and a department per 20), and the driver also
// measures departures that arrive while a full sync of the source is running (a no-change re-sync
// of the N people, started after the first): each must be applied and revoked without waiting for
// the sync, and still be departed after it.
//
//	go run ./bench/eventbench -events 1000 -rate 50 -sync-users 100000 -sync-events 100
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

	"github.com/qiao-gateway/qiao/bench/benchkit"
	"github.com/qiao-gateway/qiao/demo"
	"github.com/qiao-gateway/qiao/directory/dirsync"
	"github.com/qiao-gateway/qiao/federation/dingtalk/dingtalksim"
	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
	"github.com/qiao-gateway/qiao/gateway"
)

func main() {
	n := flag.Int("events", 1000, "departures to measure")
	rate := flag.Float64("rate", 50, "departures per second for the latency run (0 = all at once)")
	syncUsers := flag.Int("sync-users", 0, "people in the organisation; with it, departures are also measured during a full sync")
	syncEvents := flag.Int("sync-events", 100, "departures during the full sync (with -sync-users)")
	flag.Parse()
	if err := run(*n, *rate, *syncUsers, *syncEvents); err != nil {
		fmt.Fprintln(os.Stderr, "eventbench:", err)
		os.Exit(1)
	}
}

func run(n int, rate float64, syncUsers, syncEvents int) error {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ws := wecomsim.NewSetup(max(3*n, syncUsers), 7, addr)
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
	t0 := time.Now()
	if _, err := gw.Sync.Run(ctx, "demo", "wecom", dirsync.Options{}); err != nil {
		return err
	}
	firstSync := time.Since(t0)
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
	// Active people to remove, with their local IDs: people of the WeCom organisation whom the
	// WeCom source synced. The demo's provisioning also pushes local-only people (李四) into that
	// organisation; their removal there is not a departure (they are the local directory's).
	o := wsim.Org()
	o.RLock()
	var candidates []string
	for _, id := range o.UserIDs() {
		if o.User(id).Status == 1 && id != "zhangsan" {
			candidates = append(candidates, id)
		}
	}
	o.RUnlock()
	var people []string
	for _, id := range candidates {
		if _, err := gw.Store.GetUserLink(ctx, "demo", "wecom", id); err == nil {
			people = append(people, id)
		}
	}
	need := 2 * n
	if syncUsers > 0 {
		need += syncEvents
	}
	if len(people) < need {
		return fmt.Errorf("only %d active people", len(people))
	}
	localID := map[string]string{}
	for _, id := range people[:need] {
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
	benchkit.EmitRow(benchkit.Row{Driver: "eventbench", Setup: "SQLite + memory", Name: "departure → revocation",
		Figure: fmt.Sprintf("p99 %v", pct(.99).Round(100*time.Microsecond)),
		Detail: fmt.Sprintf("p50 %v over %d events at %.0f/s; burst %.0f events/s", pct(.50).Round(100*time.Microsecond), n, rate, float64(n)/total.Seconds())})
	if syncUsers == 0 {
		return nil
	}

	// Departures while a full sync of the source runs (a re-sync of everyone, started now).
	reading := make(chan struct{})
	var once sync.Once
	syncDone := make(chan struct{})
	var syncRes *dirsync.Result
	var syncErr error
	var syncEnd time.Time
	t1 := time.Now()
	go func() {
		defer close(syncDone)
		syncRes, syncErr = gw.Sync.Run(ctx, "demo", "wecom", dirsync.Options{Progress: func(p dirsync.Progress) {
			if p.Phase == "read-users" {
				once.Do(func() { close(reading) })
			}
		}})
		syncEnd = time.Now()
	}()
	select {
	case <-reading:
	case <-syncDone:
		return fmt.Errorf("the full sync ended before it read users: %v", syncErr)
	}
	batch := people[2*n : 2*n+syncEvents]
	lat, total, err = measure(batch, every)
	if err != nil {
		return err
	}
	lastRevoked := t1.Add(0)
	mu.Lock()
	for _, id := range batch {
		if r := revoked[localID[id]]; r.After(lastRevoked) {
			lastRevoked = r
		}
	}
	mu.Unlock()
	<-syncDone
	if syncErr != nil {
		return fmt.Errorf("the full sync during the departures: %w", syncErr)
	}
	during := lastRevoked.Before(syncEnd)
	back := 0
	for _, id := range batch {
		if u, err := gw.Store.GetUserByUsername(ctx, "demo", id); err != nil || u.Status != "departed" {
			back++
		}
	}
	fmt.Printf("full sync of %d people: first %v, the re-sync during the departures %v (%s: %v)\n", syncUsers, firstSync.Round(time.Millisecond),
		syncEnd.Sub(t1).Round(time.Millisecond), syncRes.Task.Status, syncRes.Task.Counts)
	fmt.Printf("departure → revocation during the full sync, %d events at %.0f/s: p50 %v, p99 %v, max %v; all revoked before the sync ended: %v; brought back by the sync: %d\n",
		len(batch), rate, pct(.50).Round(100*time.Microsecond), pct(.99).Round(100*time.Microsecond), lat[len(lat)-1].Round(100*time.Microsecond), during, back)
	_ = total
	benchkit.EmitRow(benchkit.Row{Driver: "eventbench", Setup: fmt.Sprintf("SQLite + memory, %d-person sync running", syncUsers), Name: "departure → revocation during a full sync",
		Figure: fmt.Sprintf("p99 %v", pct(.99).Round(100*time.Microsecond)),
		Detail: fmt.Sprintf("p50 %v, max %v over %d events; all before the sync ended: %v; brought back by the sync: %d", pct(.50).Round(100*time.Microsecond),
			lat[len(lat)-1].Round(100*time.Microsecond), len(batch), during, back)})
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
