package gateway

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/demo"
	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/lease"
	"github.com/qiao-gateway/qiao/federation/dingtalk/dingtalksim"
	"github.com/qiao-gateway/qiao/internal/config"
	"github.com/qiao-gateway/qiao/internal/pgtemp"
	"github.com/qiao-gateway/qiao/session"
)

// fastStreams makes reconnections and takeovers quick enough for tests.
func fastStreams(t *testing.T) {
	SetStreamTimings(StreamTimings{Scan: 100 * time.Millisecond, LeaseTTL: 3 * time.Second, Retry: 200 * time.Millisecond,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond})
	t.Cleanup(func() {
		SetStreamTimings(StreamTimings{Scan: 5 * time.Second, LeaseTTL: 15 * time.Second, Retry: 2 * time.Second, MinBackoff: time.Second, MaxBackoff: time.Minute})
	})
}

// streamSource configures the world's DingTalk source for Stream events.
func streamSource(c *config.Config) {
	for i := range c.Enterprises[0].Sources {
		if s := &c.Enterprises[0].Sources[i]; s.Kind == "dingtalk" {
			s.Config["events"] = "stream"
		}
	}
}

// dingTalkOnly returns active DingTalk people not linked to WeCom: leaving DingTalk departs them.
func (w *world) dingTalkOnly(n int) []string {
	w.t.Helper()
	o := w.dsim.Org()
	o.RLock()
	defer o.RUnlock()
	var out []string
	for _, id := range o.UserIDs() {
		if u := o.User(id); u.Status == 1 && id != "zhangsan" && len(out) < n {
			if _, err := w.gw.Store.GetUserLink(w.ctx, "demo", "wecom", id); errors.Is(err, directory.ErrNotFound) {
				out = append(out, id)
			}
		}
	}
	if len(out) < n {
		w.t.Fatalf("only %d DingTalk-only people", len(out))
	}
	return out
}

func (w *world) streamConnected() bool {
	cs := w.dsim.StreamStatus().Connections
	return len(cs) == 1 && !cs[0].Closing
}

// A departure pushed over Stream ends the person's access: the refresh token is revoked and the
// SSO session no longer opens. Other contact events arrive too; nothing goes to the HTTP callback.
func TestDingTalkStreamEventsEndToEnd(t *testing.T) {
	fastStreams(t)
	for name, backend := range backends(t) {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, 60, t.TempDir(), true, backend, streamSource)
			w.dsim.SetEventsOverStream(true)
			w.eventually("stream connected", w.streamConnected)
			st := w.gw.Store
			leaver := w.dingTalkOnly(1)[0]
			lu := w.user(leaver)
			if err := st.CreateRefreshToken(w.ctx, &directory.RefreshToken{ID: "rt-" + leaver, FamilyID: "f", EnterpriseID: "demo", ClientID: "demo-app",
				UserID: lu.ID, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			if err := w.gw.Sessions.Save(rec, httptest.NewRequest("GET", "/", nil), &session.Session{Enterprise: "demo", User: lu.ID}); err != nil {
				t.Fatal(err)
			}
			cookie := rec.Result().Cookies()[0]
			w.ctl(w.dURL, "DELETE", "/_sim/users/"+leaver, "")
			w.eventually("departure applied", func() bool { return w.user(leaver).Status == directory.UserDeparted })
			w.eventually("refresh token revoked", func() bool {
				rt, _ := st.GetRefreshToken(w.ctx, "rt-"+leaver)
				return !rt.RevokedAt.IsZero()
			})
			r := httptest.NewRequest("GET", "/", nil)
			r.AddCookie(cookie)
			w.eventually("session ended", func() bool { s, _ := w.gw.Sessions.Load(r); return s == nil })

			w.ctl(w.dURL, "POST", "/_sim/users", `{"userid":"zhaoliu","name":"赵六","dept_id_list":[2],"active":true}`)
			w.eventually("user_add_org applied", func() bool { return w.user("zhaoliu") != nil })
			w.ctl(w.dURL, "POST", "/_sim/departments", `{"dept_id":8801,"name":"流式部","parent_id":1}`)
			w.eventually("org_dept_create applied", func() bool {
				d, err := st.GetDepartment(w.ctx, "demo", "dingtalk", "8801")
				return err == nil && d.Name == "流式部"
			})
			evs, _ := st.ListSourceEvents(w.ctx, "demo", "dingtalk", 50)
			if len(evs) != 3 {
				t.Fatalf("inbox holds %d DingTalk events, want 3", len(evs))
			}
			if len(w.dsim.Deliveries()) != 0 {
				t.Fatalf("events went to the HTTP callback: %+v", w.dsim.Deliveries())
			}
			if w.dsim.StreamStatus().Pending != 0 {
				t.Fatal("events left unacknowledged")
			}
		})
	}
}

// The connection drops, the server asks us to reconnect, ACKs are lost: every departure is
// stored once and applied once.
func TestDingTalkStreamDropAndRedelivery(t *testing.T) {
	fastStreams(t)
	w := newWorld(t, 80, t.TempDir(), true, streamSource)
	w.dsim.SetStreamOptions(dingtalksimOpts())
	w.dsim.SetEventsOverStream(true)
	w.eventually("stream connected", w.streamConnected)
	leavers := w.dingTalkOnly(12)
	for i, id := range leavers {
		switch i {
		case 3:
			w.eventually("connected before the drop", w.streamConnected)
			w.dsim.StreamDrop()
		case 6:
			w.eventually("connected before the disconnect", w.streamConnected)
			w.dsim.StreamDisconnect("connection is expired")
		case 9:
			w.dsim.StreamLoseAcks(2)
		}
		w.ctl(w.dURL, "DELETE", "/_sim/users/"+id, "")
	}
	w.eventually("all acknowledged", func() bool { return w.dsim.StreamStatus().Pending == 0 })
	for _, id := range leavers {
		w.eventually(id+" departed", func() bool { return w.user(id).Status == directory.UserDeparted })
	}
	w.eventually("inbox settled", func() bool {
		evs, _ := w.gw.Store.ListSourceEvents(w.ctx, "demo", "dingtalk", 100)
		for _, e := range evs {
			if e.Status != directory.EventApplied {
				return false
			}
		}
		return len(evs) == len(leavers)
	})
	// Redeliveries happened and were stored once: one inbox row and one event task per departure.
	pushes := 0
	for _, d := range w.dsim.StreamDeliveries() {
		if d.Kind == "push" {
			pushes++
		}
	}
	if pushes <= len(leavers) {
		t.Fatalf("%d pushes for %d events: the test redelivered nothing", pushes, len(leavers))
	}
	tasks, _ := w.gw.Store.ListSyncTasks(w.ctx, "demo", "dingtalk", 100)
	events := 0
	for _, tk := range tasks {
		if tk.Trigger == directory.TriggerEvent {
			events++
		}
	}
	if events != len(leavers) {
		t.Fatalf("%d event tasks for %d departures", events, len(leavers))
	}
	if n := w.dsim.StreamStatus().Opened; n < 3 {
		t.Fatalf("%d connections opened; want a reconnection after the drop and after the disconnect", n)
	}
}

// Two gateways on one PostgreSQL: one holds the Stream connection; when it stops, the other
// connects and events keep arriving.
func TestDingTalkStreamReplicaTakeover(t *testing.T) {
	pg, rd := os.Getenv("QIAO_TEST_POSTGRES"), os.Getenv("QIAO_TEST_REDIS")
	if pg == "" || rd == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must set QIAO_TEST_POSTGRES and QIAO_TEST_REDIS")
		}
		t.Skip("QIAO_TEST_POSTGRES/QIAO_TEST_REDIS not set: replicas need a shared PostgreSQL")
	}
	fastStreams(t)
	dsn := pgtemp.New(t, pg, "qiao_gw")
	shared := func(c *config.Config) { c.Storage, c.State = dsn, rd }
	// The world's own gateway only declares, syncs and reads; it serves no Stream (not Serve).
	w := newWorld(t, 60, t.TempDir(), false, shared)
	w.dsim.SetEventsOverStream(true)
	type replica struct {
		gw   *Gateway
		stop func()
	}
	start := func() *replica {
		ln := listen(t)
		cfg, _, err := demo.Config(ln.Addr().String(), t.TempDir(), "pw", &demo.Sims{WeCom: w.ws, WeComURL: w.wURL, DingTalk: w.ds, DingTalkURL: w.dURL})
		if err != nil {
			t.Fatal(err)
		}
		off := false
		cfg.SyncScheduler = &off
		cfg.MasterKey = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
		shared(cfg)
		gw, err := New(w.ctx, cfg, NewLogger(cfg), WithoutApply())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = gw.Serve(ctx, ln); close(done) }()
		r := &replica{gw: gw}
		stopped := false
		r.stop = func() {
			if !stopped {
				stopped = true
				cancel()
				<-done
				gw.Close()
			}
		}
		t.Cleanup(r.stop)
		return r
	}
	a, b := start(), start()
	// A replica that died holding the lease renews it no more: nobody connects until it expires,
	// then one of the live replicas takes over. The source is switched to Stream in the store only
	// now (the replicas pick the change up at their next scan), so the replicas' start-up time
	// does not eat into the dead lease.
	const deadTTL = 3 * time.Second
	acquired := time.Now()
	if _, err := lease.Acquire(w.ctx, w.gw.Store, LeaseDingTalkStreamPrefix+"demo/dingtalk", "dead-replica", deadTTL); err != nil {
		t.Fatal(err)
	}
	src, err := w.gw.Store.GetSource(w.ctx, "demo", "dingtalk")
	if err != nil {
		t.Fatal(err)
	}
	src.Config["events"] = "stream"
	if err := w.gw.Store.PutSource(w.ctx, src); err != nil {
		t.Fatal(err)
	}
	for time.Since(acquired) < deadTTL-500*time.Millisecond {
		if n := len(w.dsim.StreamStatus().Connections); n != 0 {
			t.Fatalf("%d connections while a dead replica's lease is still valid", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.eventually("one replica connected", w.streamConnected)
	// Still one connection a few lease retries later: the other replica waits.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if n := len(w.dsim.StreamStatus().Connections); n > 1 {
			t.Fatalf("%d Stream connections from two replicas", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	holder, other := a, b
	if !holdsStream(t, b.gw) {
		if !holdsStream(t, a.gw) {
			t.Fatal("no replica holds the stream lease")
		}
	} else {
		holder, other = b, a
	}
	first := w.dingTalkOnly(2)
	w.ctl(w.dURL, "DELETE", "/_sim/users/"+first[0], "")
	w.eventually("departure before the takeover", func() bool { return w.user(first[0]).Status == directory.UserDeparted })
	// Let the holder finish applying it: a gateway stopped mid-apply leaves the source's apply
	// lock to expire (minutes), which is the inbox's business, not the Stream's.
	w.eventually("event applied", func() bool {
		evs, _ := w.gw.Store.ListSourceEvents(w.ctx, "demo", "dingtalk", 10)
		return len(evs) == 1 && evs[0].Status == directory.EventApplied
	})
	opened := w.dsim.StreamStatus().Opened
	holder.stop()
	w.eventually("the other replica connected", func() bool { return w.streamConnected() && w.dsim.StreamStatus().Opened > opened })
	if !holdsStream(t, other.gw) {
		t.Fatal("the connected replica does not hold the lease")
	}
	w.ctl(w.dURL, "DELETE", "/_sim/users/"+first[1], "")
	defer func() {
		if t.Failed() {
			evs, _ := w.gw.Store.ListSourceEvents(w.ctx, "demo", "dingtalk", 10)
			for _, e := range evs {
				t.Logf("inbox %d %s %s attempts=%d err=%s", e.ID, e.EventType, e.Status, e.Attempts, e.Error)
			}
			t.Logf("simulator: %+v", w.dsim.StreamStatus())
		}
	}()
	w.eventually("departure after the takeover", func() bool { return w.user(first[1]).Status == directory.UserDeparted })
}

// holdsStream reads gw's own metric: both replicas share a lease holder name in one test process,
// so the lease row alone cannot tell them apart.
func holdsStream(t *testing.T, gw *Gateway) bool {
	t.Helper()
	mfs, err := gw.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "qiao_dingtalk_stream_held" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["enterprise"] == "demo" && labels["source"] == "dingtalk" {
				return m.GetGauge().GetValue() == 1
			}
		}
	}
	return false
}

func dingtalksimOpts() dingtalksim.StreamOptions {
	return dingtalksim.StreamOptions{AckTimeout: 300 * time.Millisecond, PingInterval: -1, DisconnectGrace: 100 * time.Millisecond}
}
