// Command streambench measures departure-to-revocation latency over DingTalk Stream mode: people
// are removed in the DingTalk simulator, which pushes user_leave_org over the gateway's Stream
// connection (a WebSocket the gateway dialled out); the latency runs from the removal to the
// gateway's revocation of the person's access. It also measures a burst, and the latency of
// departures made while the connection is being dropped and re-established.
//
//	go run ./bench/streambench -events 500 -rate 50
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
	n := flag.Int("events", 500, "departures to measure (per run)")
	rate := flag.Float64("rate", 50, "departures per second for the latency runs (0 = all at once)")
	drops := flag.Int("drops", 5, "connection drops during the third run (0: no third run)")
	flag.Parse()
	if err := run(*n, *rate, *drops); err != nil {
		fmt.Fprintln(os.Stderr, "streambench:", err)
		os.Exit(1)
	}
}

func run(n int, rate float64, drops int) error {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ds := dingtalksim.NewSetup(3*n*3/2+20, 9, addr) // some people are not active
	ds.Config.RateLimits = false
	dsim := dingtalksim.New(ds.Config)
	dsim.SetEventsOverStream(true)
	dsrv := httptest.NewServer(dsim)
	defer dsrv.Close()
	defer dsim.Close()
	ws := wecomsim.NewSetup(10, 7, addr)
	wsrv := httptest.NewServer(wecomsim.New(ws.Config))
	defer wsrv.Close()
	dir, _ := os.MkdirTemp("", "streambench-")
	defer os.RemoveAll(dir)
	cfg, _, err := demo.Config(addr, dir, "pw", &demo.Sims{WeCom: ws, WeComURL: wsrv.URL, DingTalk: ds, DingTalkURL: dsrv.URL})
	if err != nil {
		return err
	}
	off := false
	cfg.SyncScheduler = &off
	for i := range cfg.Enterprises[0].Sources {
		if s := &cfg.Enterprises[0].Sources[i]; s.Kind == "dingtalk" {
			s.Config["events"] = "stream"
			s.Config["rate_limit"] = "off"
			s.Sync.DeleteUsers = new(int)
			*s.Sync.DeleteUsers = 1 << 30
		}
	}
	// Reconnections after a drop: the defaults' first backoff (1 s) is what production does.
	gw, err := gateway.New(ctx, cfg, gateway.NewLogger(cfg))
	if err != nil {
		return err
	}
	defer gw.Close()
	if _, err := gw.Sync.Run(ctx, "demo", "dingtalk", dirsync.Options{}); err != nil {
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
	connected := func() bool {
		cs := dsim.StreamStatus().Connections
		return len(cs) == 1 && !cs[0].Closing
	}
	if err := waitFor(connected, 30*time.Second); err != nil {
		return fmt.Errorf("the gateway did not open a Stream connection: %w", err)
	}
	o := dsim.Org()
	o.RLock()
	var people []string
	for _, id := range o.UserIDs() {
		if o.User(id).Status == 1 && id != "zhangsan" {
			people = append(people, id)
		}
	}
	o.RUnlock()
	if len(people) < 3*n {
		return fmt.Errorf("only %d active people", len(people))
	}
	localID := map[string]string{}
	for _, id := range people[:3*n] {
		u, err := gw.Store.GetUserByUsername(ctx, "demo", id)
		if err != nil {
			return err
		}
		localID[id] = u.ID
	}
	measure := func(batch []string, every time.Duration, during func(i int)) ([]time.Duration, time.Duration, error) {
		start := map[string]time.Time{}
		t0 := time.Now()
		for i, id := range batch {
			if every > 0 {
				time.Sleep(time.Until(t0.Add(time.Duration(i) * every)))
			}
			if during != nil {
				during(i)
			}
			start[id] = time.Now()
			req, _ := http.NewRequest("DELETE", dsrv.URL+"/_sim/users/"+id, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return nil, 0, err
			}
			resp.Body.Close()
		}
		err := waitFor(func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, id := range batch {
				if _, ok := revoked[localID[id]]; !ok {
					return false
				}
			}
			return true
		}, 2*time.Minute)
		if err != nil {
			return nil, 0, fmt.Errorf("not every departure revoked within 2 minutes: %w", err)
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
	pct := func(lat []time.Duration, p float64) time.Duration {
		return lat[int(float64(len(lat)-1)*p)].Round(100 * time.Microsecond)
	}
	lat, _, err := measure(people[:n], every, nil)
	if err != nil {
		return err
	}
	fmt.Printf("departure → revocation over Stream, %d events at %.0f/s: p50 %v, p99 %v, max %v\n", n, rate, pct(lat, .5), pct(lat, .99), pct(lat, 1))
	benchkit.EmitRow(benchkit.Row{Driver: "streambench", Setup: "SQLite + memory, DingTalk Stream", Name: "departure → revocation over Stream",
		Figure: fmt.Sprintf("p99 %v", pct(lat, .99)), Detail: fmt.Sprintf("p50 %v, max %v over %d events at %.0f/s", pct(lat, .5), pct(lat, 1), n, rate)})
	_, total, err := measure(people[n:2*n], 0, nil)
	if err != nil {
		return err
	}
	fmt.Printf("burst of %d departures over Stream: all applied and revoked in %v: %.0f events/s\n", n, total.Round(time.Millisecond), float64(n)/total.Seconds())
	if drops == 0 {
		return nil
	}
	// Departures while the connection is dropped every n/drops events: those pushed meanwhile
	// wait for the reconnection (backoff from 1 s) and are pushed again.
	batch := people[2*n : 3*n]
	step := max(n/drops, 1)
	lat, _, err = measure(batch, every, func(i int) {
		if i > 0 && i%step == 0 {
			dsim.StreamDrop()
		}
	})
	if err != nil {
		return err
	}
	st := dsim.StreamStatus()
	fmt.Printf("departure → revocation with %d connection drops, %d events at %.0f/s: p50 %v, p99 %v, max %v (connections opened: %d, unacknowledged left: %d)\n",
		drops, n, rate, pct(lat, .5), pct(lat, .99), pct(lat, 1), st.Opened, st.Pending)
	benchkit.EmitRow(benchkit.Row{Driver: "streambench", Setup: "SQLite + memory, DingTalk Stream", Name: "departure → revocation over Stream with drops",
		Figure: fmt.Sprintf("p99 %v", pct(lat, .99)), Detail: fmt.Sprintf("p50 %v, max %v over %d events at %.0f/s, %d drops", pct(lat, .5), pct(lat, 1), n, rate, drops)})
	return nil
}

func waitFor(f func() bool, ceiling time.Duration) error {
	deadline := time.Now().Add(ceiling)
	for !f() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", ceiling)
		}
		time.Sleep(2 * time.Millisecond)
	}
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
