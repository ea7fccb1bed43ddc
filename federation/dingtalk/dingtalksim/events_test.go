package dingtalksim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/federation/msgcrypt"
)

func newReceiver(t *testing.T, recvKey string) *receiver {
	c, err := msgcrypt.New(cbToken, cbAESKey, recvKey)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{recvKey: recvKey}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		q := req.URL.Query()
		var env struct {
			Encrypt string `json:"encrypt"`
		}
		if err := json.NewDecoder(req.Body).Decode(&env); err != nil {
			http.Error(w, "bad body", 400)
			return
		}
		if len(q.Get("timestamp")) != 13 {
			http.Error(w, "timestamp must be milliseconds", 400)
			return
		}
		pt, err := c.Decrypt(q.Get("signature"), q.Get("timestamp"), q.Get("nonce"), env.Encrypt)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if r.slow.Load() {
			time.Sleep(1700 * time.Millisecond)
		}
		if r.fails.Load() > 0 {
			r.fails.Add(-1)
			http.Error(w, "later", http.StatusServiceUnavailable)
			return
		}
		var ev map[string]any
		_ = json.Unmarshal(pt, &ev)
		if ev["EventType"] != "check_url" {
			r.mu.Lock()
			r.events = append(r.events, ev)
			r.mu.Unlock()
		}
		ts, nonce := fmt.Sprint(time.Now().UnixMilli()), "abcdefgh"
		enc, sig, _ := c.Seal([]byte("success"), ts, nonce)
		if r.badSig.Load() {
			sig = strings.Repeat("0", 40)
		}
		json.NewEncoder(w).Encode(map[string]string{"msg_signature": sig, "timeStamp": ts, "nonce": nonce, "encrypt": enc})
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) wait(t *testing.T, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		got := len(r.events)
		r.mu.Unlock()
		if got >= n {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.events) < n {
		t.Fatalf("received %d events, want %d", len(r.events), n)
	}
	return append([]map[string]any(nil), r.events...)
}

// waitDeliveries waits until the simulator's delivery log holds n entries.
func waitDeliveries(t *testing.T, s *Sim, n int) []Delivery {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if d := s.Deliveries(); len(d) >= n {
			return d
		}
	}
	t.Fatalf("delivery log holds %d entries, want %d", len(s.Deliveries()), n)
	return nil
}

func ctl(t *testing.T, f *fixture, method, path, body string) int {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestEventsCurrentShape(t *testing.T) {
	f := newFixture(t, nil)
	rcv := newReceiver(t, appKey) // app-level subscription: the receive key is the AppKey
	rcv.slow.Store(true)
	if st := ctl(t, f, "POST", "/_sim/callback", `{"url":"`+rcv.srv.URL+`"}`); st != 400 {
		t.Fatalf("a check_url answered after 1500 ms was accepted: %d", st)
	}
	rcv.slow.Store(false)
	rcv.badSig.Store(true)
	if st := ctl(t, f, "POST", "/_sim/callback", `{"url":"`+rcv.srv.URL+`"}`); st != 400 {
		t.Fatalf("a reply with a bad signature was accepted: %d", st)
	}
	rcv.badSig.Store(false)
	if st := ctl(t, f, "POST", "/_sim/callback", `{"url":"`+rcv.srv.URL+`"}`); st != 204 {
		t.Fatalf("callback registration: %d", st)
	}
	ctl(t, f, "POST", "/_sim/users", `{"userid":"wangwu","name":"王五","dept_id_list":[2],"active":false}`)
	ev := rcv.wait(t, 1)[0]
	if ev["EventType"] != "user_add_org" || ev["CorpId"] != corp || ev["userId"].([]any)[0] != "wangwu" || ev["EventTime"] == nil || ev["timeStamp"] == nil {
		t.Fatalf("user_add_org = %v", ev)
	}
	ctl(t, f, "POST", "/_sim/users", `{"userid":"wangwu","active":true}`)
	if ev = rcv.wait(t, 2)[1]; ev["EventType"] != "user_active_org" {
		t.Fatalf("activation event = %v", ev)
	}
	ctl(t, f, "POST", "/_sim/users", `{"userid":"wangwu","title":"经理"}`)
	if ev = rcv.wait(t, 3)[2]; ev["EventType"] != "user_modify_org" || ev["diffInfo"] == nil {
		t.Fatalf("user_modify_org = %v", ev)
	}
	rcv.fails.Store(2)
	ctl(t, f, "DELETE", "/_sim/users/wangwu", "")
	if ev = rcv.wait(t, 4)[3]; ev["EventType"] != "user_leave_org" {
		t.Fatalf("user_leave_org = %v", ev)
	}
	// The receiver sees the event before the simulator logs the delivery.
	if d := waitDeliveries(t, f.sim, 4)[3]; d.Attempts != 3 || !d.OK {
		t.Fatalf("retried delivery = %+v", d)
	}
	ctl(t, f, "POST", "/_sim/departments", `{"name":"新部门","parent_id":1}`)
	ev = rcv.wait(t, 5)[4]
	if ev["EventType"] != "org_dept_create" || ev["deptId"] == nil {
		t.Fatalf("org_dept_create = %v", ev)
	}
	id := fmt.Sprint(ev["deptId"].([]any)[0])
	ctl(t, f, "POST", "/_sim/departments", `{"dept_id":`+id+`,"name":"改名"}`)
	ctl(t, f, "DELETE", "/_sim/departments/"+id, "")
	evs := rcv.wait(t, 7)
	if evs[5]["EventType"] != "org_dept_modify" || evs[6]["EventType"] != "org_dept_remove" {
		t.Fatalf("department events = %v, %v", evs[5], evs[6])
	}
}

func TestEventsLegacyShapeAndCorpReceiveKey(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.LegacyEvents = true; c.EventReceiveKey = corp })
	rcv := newReceiver(t, corp)
	if st := ctl(t, f, "POST", "/_sim/callback", `{"url":"`+rcv.srv.URL+`"}`); st != 204 {
		t.Fatalf("registration: %d", st)
	}
	ctl(t, f, "DELETE", "/_sim/users/zhangsan", "")
	ev := rcv.wait(t, 1)[0]
	if ev["EventType"] != "user_leave_org" || ev["UserId"].([]any)[0] != "zhangsan" || ev["TimeStamp"] == nil || ev["userId"] != nil {
		t.Fatalf("legacy user_leave_org = %v", ev)
	}
}

func TestControlAPIRejectsBadInput(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/_sim/users", `{"userid":"x y"}`},
		{"POST", "/_sim/users", `{"userid":"new1"}`},
		{"POST", "/_sim/users", `{"userid":"new1","name":"x","dept_id_list":[999999]}`},
		{"POST", "/_sim/departments", `{"name":""}`},
		{"POST", "/_sim/faults", `[]`},
		{"POST", "/_sim/jsapi/code", `{"userid":"ghost"}`},
	} {
		if st := ctl(t, f, tc.method, tc.path, tc.body); st < 400 || st >= 500 {
			t.Errorf("%s %s %s: %d", tc.method, tc.path, tc.body, st)
		}
	}
}
