package dingtalk

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/dingtalk/dingtalksim"
)

// inbox stands in for the durable event inbox: events by key, duplicates counted.
type inbox struct {
	mu    sync.Mutex
	byKey map[string]federation.Event
	dups  int
	fail  int // the next fail stores fail
}

func (b *inbox) store(_ context.Context, ev federation.Event) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail > 0 {
		b.fail--
		return errors.New("disk full")
	}
	if _, ok := b.byKey[ev.Key]; ok {
		b.dups++
		return nil
	}
	b.byKey[ev.Key] = ev
	return nil
}

func (b *inbox) count(typ string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, e := range b.byKey {
		if e.Type == typ {
			n++
		}
	}
	return n
}

type streamWorld struct {
	t     *testing.T
	setup *dingtalksim.Setup
	sim   *dingtalksim.Sim
	url   string
	box   *inbox
	logs  *bytes.Buffer
	logMu *sync.Mutex
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func newStreamWorld(t *testing.T, opts dingtalksim.StreamOptions) *streamWorld {
	t.Helper()
	s := dingtalksim.NewSetup(40, 23, "127.0.0.1:8080")
	sim := dingtalksim.New(s.Config)
	sim.SetEventsOverStream(true)
	sim.SetStreamOptions(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	return &streamWorld{t: t, setup: s, sim: sim, url: srv.URL, box: &inbox{byKey: map[string]federation.Event{}}, logs: &bytes.Buffer{}, logMu: &sync.Mutex{}}
}

// run starts a Stream with the app's credentials (or secret, when given) and returns its stop.
func (w *streamWorld) run(secret string) (*Stream, func()) {
	w.t.Helper()
	if secret == "" {
		secret = w.setup.AppSecret
	}
	c, err := ParseConfig(map[string]string{"corp_id": w.setup.CorpID, "app_key": w.setup.AppKey, "oapi_base_url": w.url, "api_base_url": w.url,
		"events": "stream"}, map[string]string{"app_secret": secret})
	if err != nil {
		w.t.Fatal(err)
	}
	st, err := c.NewStream(w.box.store, slog.New(slog.NewTextHandler(lockedWriter{w.logMu, w.logs}, nil)))
	if err != nil {
		w.t.Fatal(err)
	}
	st.MinBackoff, st.MaxBackoff = 20*time.Millisecond, 100*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { st.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done }
	w.t.Cleanup(stop)
	return st, stop
}

func (w *streamWorld) ctl(method, path, body string) {
	w.t.Helper()
	req, _ := http.NewRequest(method, w.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		w.t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
	}
}

func (w *streamWorld) users(n int) []string {
	o := w.sim.Org()
	o.RLock()
	defer o.RUnlock()
	var out []string
	for _, id := range o.UserIDs() {
		if u := o.User(id); u.Status == 1 && id != "zhangsan" && len(out) < n {
			out = append(out, id)
		}
	}
	return out
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second) // a ceiling, not a measurement
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 15 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (w *streamWorld) kinds() map[string]int {
	k := map[string]int{}
	for _, d := range w.sim.StreamDeliveries() {
		k[d.Kind]++
	}
	return k
}

func TestStreamReceivesAcksAndAnswersPings(t *testing.T) {
	w := newStreamWorld(t, dingtalksim.StreamOptions{AckTimeout: 2 * time.Second, PingInterval: -1})
	st, stop := w.run("")
	eventually(t, "connected", func() bool { return len(w.sim.StreamStatus().Connections) == 1 })
	leaver := w.users(1)[0]
	w.ctl("DELETE", "/_sim/users/"+leaver, "")
	w.ctl("POST", "/_sim/departments", `{"dept_id":7001,"name":"流","parent_id":1}`)
	eventually(t, "both stored and acknowledged", func() bool {
		return w.box.count("user_leave_org") == 1 && w.box.count("org_dept_create") == 1 && w.sim.StreamStatus().Pending == 0
	})
	for _, e := range w.box.byKey {
		if e.Type == "user_leave_org" && (len(e.UserIDs) != 1 || e.UserIDs[0] != leaver || e.Key == "") {
			t.Fatalf("stored %+v", e)
		}
	}
	w.sim.StreamPing()
	eventually(t, "pong", func() bool { return w.kinds()["pong"] == 1 })
	if k := w.kinds(); k["protocol_error"] != 0 || k["ack"] != 2 {
		t.Fatalf("sim log %v", k)
	}
	if s := st.Stats(); s.Connects != 1 || s.Stored != 2 || s.Pings != 1 {
		t.Fatalf("stats %+v", s)
	}
	// Clean shutdown: Run returns and the connection is closed.
	stop()
	eventually(t, "connection closed", func() bool { return len(w.sim.StreamStatus().Connections) == 0 })
}

// A store that fails answers LATER: DingTalk pushes again, and the event is stored once.
func TestStreamAcksOnlyStoredEvents(t *testing.T) {
	w := newStreamWorld(t, dingtalksim.StreamOptions{AckTimeout: 2 * time.Second, RetryDelay: 30 * time.Millisecond, PingInterval: -1})
	w.box.fail = 2
	w.run("")
	w.ctl("DELETE", "/_sim/users/"+w.users(1)[0], "")
	eventually(t, "stored after two refusals", func() bool { return w.box.count("user_leave_org") == 1 && w.sim.StreamStatus().Pending == 0 })
	if k := w.kinds(); k["later"] != 2 || k["push"] != 3 || k["ack"] != 1 {
		t.Fatalf("sim log %v", k)
	}
}

// Drops, a server-initiated disconnect and lost ACKs: every event stored once (redeliveries
// deduplicated by event ID), each reconnection with a fresh ticket.
func TestStreamReconnectsWithoutLossOrDuplicates(t *testing.T) {
	w := newStreamWorld(t, dingtalksim.StreamOptions{AckTimeout: 300 * time.Millisecond, PingInterval: -1, DisconnectGrace: 100 * time.Millisecond})
	st, _ := w.run("")
	eventually(t, "connected", func() bool { return len(w.sim.StreamStatus().Connections) == 1 })
	leavers := w.users(12)
	connected := func() bool {
		cs := w.sim.StreamStatus().Connections
		return len(cs) == 1 && !cs[0].Closing
	}
	for i, id := range leavers {
		switch i {
		case 3:
			eventually(t, "connected before the drop", connected)
			w.sim.StreamDrop()
		case 6:
			eventually(t, "connected before the disconnect", connected)
			w.sim.StreamDisconnect("connection is expired")
		case 9:
			w.sim.StreamLoseAcks(2)
		}
		w.ctl("DELETE", "/_sim/users/"+id, "")
	}
	eventually(t, "every departure stored and acknowledged", func() bool {
		return w.box.count("user_leave_org") == len(leavers) && w.sim.StreamStatus().Pending == 0
	})
	stored := map[string]bool{}
	for _, e := range w.box.byKey {
		stored[e.UserIDs[0]] = true
	}
	for _, id := range leavers {
		if !stored[id] {
			t.Fatalf("departure of %s lost", id)
		}
	}
	k := w.kinds()
	if k["ack_lost"] != 2 || w.box.dups < 2 {
		t.Fatalf("lost ACKs %d, duplicates stored-and-skipped %d; want 2 and ≥ 2 (log %v)", k["ack_lost"], w.box.dups, k)
	}
	if s := st.Stats(); s.Connects < 3 || w.sim.StreamStatus().Opened != int(s.Connects) {
		t.Fatalf("connects %d, sim opened %d", s.Connects, w.sim.StreamStatus().Opened)
	}
}

// Wrong credentials: the Stream keeps trying with backoff and never logs the secret.
func TestStreamBadCredentials(t *testing.T) {
	w := newStreamWorld(t, dingtalksim.StreamOptions{PingInterval: -1})
	const wrong = "wrong-secret-do-not-log"
	st, stop := w.run(wrong)
	eventually(t, "two refused attempts", func() bool {
		n := 0
		for _, c := range w.sim.Kit().Calls() {
			if c.API == "gateway/connections/open" && c.ErrCode == http.StatusUnauthorized {
				n++
			}
		}
		return n >= 2
	})
	stop()
	w.logMu.Lock()
	logs := w.logs.String()
	w.logMu.Unlock()
	if strings.Contains(logs, wrong) || strings.Contains(logs, w.setup.AppSecret) || !strings.Contains(logs, "invalidClientIdOrSecret") {
		t.Fatalf("logs: %s", logs)
	}
	if st.Stats().Connects != 0 {
		t.Fatal("connected with a wrong secret")
	}
}

func TestEventsSetting(t *testing.T) {
	base := map[string]string{"app_key": "k"}
	sec := map[string]string{"app_secret": "s"}
	for v, ok := range map[string]bool{"": true, "http": true, "stream": true, "websocket": false} {
		cfg := map[string]string{"events": v}
		for k, x := range base {
			cfg[k] = x
		}
		c, err := ParseConfig(cfg, sec)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Validate()
		var se *federation.SettingError
		if ok != (err == nil) || (!ok && (!errors.As(err, &se) || se.Key != "config.events")) {
			t.Errorf("events %q: %v", v, err)
		}
	}
	c, _ := ParseConfig(base, sec)
	if c.Events != EventsHTTP {
		t.Fatalf("default events %q", c.Events)
	}
	if _, err := c.NewStream(nil, nil); err == nil {
		t.Fatal("a Stream for an http source")
	}
}
