package dingtalksim

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// These tests speak the Stream protocol as protocol.md describes it, with a bare WebSocket: they
// check the simulator, not qiao's connector.

type wireFrame struct {
	SpecVersion string            `json:"specVersion"`
	Type        string            `json:"type"`
	Headers     map[string]string `json:"headers"`
	Data        string            `json:"data"`
}

type wireClient struct {
	t  *testing.T
	ws *websocket.Conn
}

func (f *fixture) open(body any) (int, map[string]any) {
	f.t.Helper()
	return f.do("POST", "/v1.0/gateway/connections/open", body, nil)
}

func eventSubs() []map[string]string { return []map[string]string{{"type": "EVENT", "topic": "*"}} }

// dialStream opens a connection credential and dials it.
func (f *fixture) dialStream() *wireClient {
	f.t.Helper()
	st, b := f.open(map[string]any{"clientId": appKey, "clientSecret": appSecret, "subscriptions": eventSubs(), "ua": "test/1.0"})
	if st != 200 {
		f.t.Fatalf("connections/open: %d %v", st, b)
	}
	ws, _, err := websocket.Dial(context.Background(), b["endpoint"].(string)+"?ticket="+b["ticket"].(string), nil)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = ws.CloseNow() })
	return &wireClient{t: f.t, ws: ws}
}

func (c *wireClient) read() (*wireFrame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := c.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	var f wireFrame
	if err := json.Unmarshal(b, &f); err != nil {
		c.t.Fatalf("frame %s: %v", b, err)
	}
	return &f, nil
}

// next reads frames until one of type typ (answering pings on the way).
func (c *wireClient) next(typ string) *wireFrame {
	c.t.Helper()
	for {
		f, err := c.read()
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if f.Type == typ {
			return f
		}
	}
}

func (c *wireClient) ack(messageID string, code int, status string) {
	c.t.Helper()
	data, _ := json.Marshal(map[string]string{"status": status, "message": strings.ToLower(status)})
	b, _ := json.Marshal(map[string]any{"code": code, "headers": map[string]string{"messageId": messageID, "contentType": "application/json"},
		"message": "OK", "data": string(data)})
	if err := c.ws.Write(context.Background(), websocket.MessageText, b); err != nil {
		c.t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second) // a ceiling, not a measurement
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStreamOpenErrors(t *testing.T) {
	f := newFixture(t, nil)
	for _, c := range []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"not JSON", "clientId=x", 400, "InvalidParameter"},
		{"no secret", map[string]any{"clientId": appKey, "subscriptions": eventSubs()}, 400, "MissingParameter"},
		{"wrong secret", map[string]any{"clientId": appKey, "clientSecret": "nope", "subscriptions": eventSubs()}, 401, "invalidClientIdOrSecret"},
		{"unknown app", map[string]any{"clientId": "dingnobody", "clientSecret": appSecret, "subscriptions": eventSubs()}, 401, "invalidClientIdOrSecret"},
		{"no subscriptions", map[string]any{"clientId": appKey, "clientSecret": appSecret}, 400, "MissingParameter"},
		{"event topic not *", map[string]any{"clientId": appKey, "clientSecret": appSecret,
			"subscriptions": []map[string]string{{"type": "EVENT", "topic": "user_add_org"}}}, 400, "InvalidParameter"},
		{"unknown type", map[string]any{"clientId": appKey, "clientSecret": appSecret,
			"subscriptions": []map[string]string{{"type": "SYSTEM", "topic": "ping"}}}, 400, "InvalidParameter"},
	} {
		st, b := f.open(c.body)
		if st != c.status || b["code"] != c.code || b["requestid"] == "" || b["message"] == "" {
			t.Errorf("%s: %d %v, want %d %s", c.name, st, b, c.status, c.code)
		}
		if strings.Contains(strings.ToLower(b["message"].(string)), appSecret) {
			t.Errorf("%s: the answer echoes the secret", c.name)
		}
	}
	st, b := f.open(map[string]any{"clientId": appKey, "clientSecret": appSecret, "subscriptions": eventSubs(), "ua": "x/1", "localIp": "10.0.0.1"})
	if st != 200 || !strings.HasPrefix(b["endpoint"].(string), "ws://") || !strings.HasSuffix(b["endpoint"].(string), StreamPath) || b["ticket"] == "" {
		t.Fatalf("connections/open: %d %v", st, b)
	}
}

func TestStreamTicketIsCheckedAndSpent(t *testing.T) {
	f := newFixture(t, nil)
	ep := "ws" + strings.TrimPrefix(f.srv.URL, "http") + StreamPath
	_, resp, err := websocket.Dial(context.Background(), ep+"?ticket=forged", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("forged ticket: %v %v", err, resp)
	}
	_, b := f.open(map[string]any{"clientId": appKey, "clientSecret": appSecret, "subscriptions": eventSubs()})
	u := b["endpoint"].(string) + "?ticket=" + b["ticket"].(string)
	ws, _, err := websocket.Dial(context.Background(), u, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if _, resp, err := websocket.Dial(context.Background(), u, nil); err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a ticket used twice: %v", err)
	}
	_, b = f.open(map[string]any{"clientId": appKey, "clientSecret": appSecret, "subscriptions": eventSubs()})
	f.advance(StreamTicketTTL + time.Second)
	if _, resp, err := websocket.Dial(context.Background(), b["endpoint"].(string)+"?ticket="+b["ticket"].(string), nil); err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("an expired ticket: %v", err)
	}
	waitFor(t, "one connection open", func() bool { return len(f.sim.StreamStatus().Connections) == 1 })
}

func TestStreamEventsAckAndRedelivery(t *testing.T) {
	f := newFixture(t, nil)
	f.sim.SetStreamOptions(StreamOptions{AckTimeout: 300 * time.Millisecond, RetryDelay: 50 * time.Millisecond, PingInterval: -1})
	f.sim.SetEventsOverStream(true)
	// An event fired while nobody is connected waits for a connection.
	f.ctl("DELETE", "/_sim/users/"+f.someUser(), nil)
	if st := f.sim.StreamStatus(); st.Pending != 1 {
		t.Fatalf("pending = %d", st.Pending)
	}
	c := f.dialStream()
	ev := c.next("EVENT")
	h := ev.Headers
	if ev.SpecVersion != "1.0" || h["topic"] != "*" || h["contentType"] != "application/json" || h["eventType"] != "user_leave_org" ||
		h["eventId"] == "" || h["eventCorpId"] != corp || h["messageId"] == "" || h["time"] == "" || h["eventBornTime"] == "" {
		t.Fatalf("EVENT frame %+v", ev)
	}
	var data struct {
		UserID    []string `json:"userId"`
		TimeStamp string   `json:"timeStamp"`
	}
	if err := json.Unmarshal([]byte(ev.Data), &data); err != nil || len(data.UserID) != 1 || data.TimeStamp == "" {
		t.Fatalf("EVENT data %q", ev.Data)
	}
	// No ACK: the same event comes again, under a new messageId.
	again := c.next("EVENT")
	if again.Headers["eventId"] != h["eventId"] || again.Headers["messageId"] == h["messageId"] {
		t.Fatalf("redelivery %+v of %+v", again.Headers, h)
	}
	// LATER: pushed again after the retry delay.
	c.ack(again.Headers["messageId"], 500, "LATER")
	third := c.next("EVENT")
	if third.Headers["eventId"] != h["eventId"] {
		t.Fatalf("after LATER: %+v", third.Headers)
	}
	c.ack(third.Headers["messageId"], 200, "SUCCESS")
	waitFor(t, "acknowledged", func() bool { return f.sim.StreamStatus().Pending == 0 })
	kinds := map[string]int{}
	for _, d := range f.sim.StreamDeliveries() {
		kinds[d.Kind]++
	}
	if kinds["push"] != 3 || kinds["timeout"] != 1 || kinds["later"] != 1 || kinds["ack"] != 1 || kinds["protocol_error"] != 0 {
		t.Fatalf("log %v", kinds)
	}
}

func TestStreamInFlightMovesToTheNextConnection(t *testing.T) {
	f := newFixture(t, nil)
	f.sim.SetStreamOptions(StreamOptions{AckTimeout: time.Minute, PingInterval: -1})
	f.sim.SetEventsOverStream(true)
	c1 := f.dialStream()
	f.ctl("POST", "/_sim/departments", map[string]any{"dept_id": 9001, "name": "流部", "parent_id": 1})
	ev := c1.next("EVENT")
	if ev.Headers["eventType"] != "org_dept_create" || !strings.Contains(ev.Data, `"deptId":[9001]`) {
		t.Fatalf("%+v", ev)
	}
	_ = c1.ws.CloseNow() // dropped before the ACK
	c2 := f.dialStream()
	ev2 := c2.next("EVENT")
	if ev2.Headers["eventId"] != ev.Headers["eventId"] {
		t.Fatalf("not redelivered on the new connection: %+v", ev2.Headers)
	}
	// An ACK lost on the way: pushed again although the client has it.
	f.sim.SetStreamOptions(StreamOptions{AckTimeout: 200 * time.Millisecond, PingInterval: -1})
	f.sim.StreamLoseAcks(1)
	c2.ack(ev2.Headers["messageId"], 200, "SUCCESS")
	ev3 := c2.next("EVENT")
	if ev3.Headers["eventId"] != ev.Headers["eventId"] {
		t.Fatalf("after a lost ACK: %+v", ev3.Headers)
	}
	c2.ack(ev3.Headers["messageId"], 200, "SUCCESS")
	waitFor(t, "acknowledged", func() bool { return f.sim.StreamStatus().Pending == 0 })
}

func TestStreamPingAndDisconnect(t *testing.T) {
	f := newFixture(t, nil)
	f.sim.SetStreamOptions(StreamOptions{AckTimeout: 300 * time.Millisecond, PingInterval: -1, DisconnectGrace: 200 * time.Millisecond})
	c := f.dialStream()
	waitFor(t, "connected", func() bool { return len(f.sim.StreamStatus().Connections) == 1 })
	f.sim.StreamPing()
	p := c.next("SYSTEM")
	var d struct {
		Opaque string `json:"opaque"`
	}
	if p.Headers["topic"] != "ping" || json.Unmarshal([]byte(p.Data), &d) != nil || d.Opaque == "" {
		t.Fatalf("ping %+v", p)
	}
	b, _ := json.Marshal(map[string]any{"code": 200, "headers": map[string]string{"messageId": p.Headers["messageId"], "contentType": "application/json"},
		"message": "OK", "data": p.Data})
	_ = c.ws.Write(context.Background(), websocket.MessageText, b)
	waitFor(t, "pong recorded", func() bool {
		for _, d := range f.sim.StreamDeliveries() {
			if d.Kind == "pong" {
				return true
			}
		}
		return false
	})
	// The server-initiated disconnect: a SYSTEM disconnect with a reason, then the close.
	if n := f.sim.StreamDisconnect("connection is expired"); n != 1 {
		t.Fatalf("told %d", n)
	}
	dc := c.next("SYSTEM")
	if dc.Headers["topic"] != "disconnect" || !strings.Contains(dc.Data, "connection is expired") {
		t.Fatalf("disconnect %+v", dc)
	}
	for {
		if _, err := c.read(); err != nil {
			break // closed by the server after the grace period
		}
	}
	waitFor(t, "connection gone", func() bool { return len(f.sim.StreamStatus().Connections) == 0 })

	// A ping nobody answers closes the connection.
	c2 := f.dialStream()
	waitFor(t, "connected again", func() bool { return len(f.sim.StreamStatus().Connections) == 1 })
	f.sim.StreamPing()
	c2.next("SYSTEM")
	waitFor(t, "silent client dropped", func() bool { return len(f.sim.StreamStatus().Connections) == 0 })
}

func (f *fixture) ctl(method, path string, body any) {
	f.t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(string(raw)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		f.t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
	}
}

// someUser is an active user of the org other than zhangsan.
func (f *fixture) someUser() string {
	o := f.sim.Org()
	o.RLock()
	defer o.RUnlock()
	for _, id := range o.UserIDs() {
		if u := o.User(id); present(u) && id != "zhangsan" {
			return id
		}
	}
	f.t.Fatal("no user")
	return ""
}
