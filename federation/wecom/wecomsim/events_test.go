package wecomsim

import (
	"bytes"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/federation/msgcrypt"
)

func newReceiver(t *testing.T) *receiver {
	c, err := msgcrypt.New(cbToken, cbKey, corp)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{c: c}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		q := req.URL.Query()
		if req.Method == http.MethodGet {
			pt, err := c.Decrypt(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), q.Get("echostr"))
			if err != nil || r.badEcho {
				http.Error(w, "bad", 400)
				return
			}
			w.Write(pt)
			return
		}
		if r.fails.Load() > 0 {
			r.fails.Add(-1)
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		var env struct {
			ToUserName string `xml:"ToUserName"`
			Encrypt    string `xml:"Encrypt"`
			AgentID    string `xml:"AgentID"`
		}
		body, _ := io.ReadAll(req.Body)
		if err := xml.Unmarshal(body, &env); err != nil || env.ToUserName != corp {
			http.Error(w, "bad envelope", 400)
			return
		}
		ts := q.Get("timestamp")
		if len(ts) != 10 {
			http.Error(w, "timestamp must be seconds", 400)
			return
		}
		pt, err := c.Decrypt(q.Get("msg_signature"), ts, q.Get("nonce"), env.Encrypt)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		fields := map[string]string{}
		dec := xml.NewDecoder(bytes.NewReader(pt))
		var name string
		depth := 0
		for {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			switch v := tok.(type) {
			case xml.StartElement:
				depth++
				name = v.Name.Local
			case xml.CharData:
				if depth == 2 {
					fields[name] += string(v)
				}
			case xml.EndElement:
				depth--
			}
		}
		r.mu.Lock()
		r.events = append(r.events, fields)
		r.mu.Unlock()
		w.Write([]byte("success"))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) wait(t *testing.T, n int) []map[string]string {
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
	return append([]map[string]string(nil), r.events...)
}

// waitDeliveries waits until the simulator's delivery log holds n entries:
// the receiver sees an event before the simulator logs its delivery.
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

func ctl(t *testing.T, f *fixture, method, path, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestEvents(t *testing.T) {
	f := newFixture(t, nil)
	rcv := newReceiver(t)
	rcv.badEcho = true
	if resp := ctl(t, f, "POST", "/_sim/callback", `{"url":"`+rcv.srv.URL+`/events"}`); resp.StatusCode != 400 {
		t.Fatalf("a receiver that fails URL verification was accepted: %d", resp.StatusCode)
	}
	rcv.badEcho = false
	if resp := ctl(t, f, "POST", "/_sim/callback", `{"url":"`+rcv.srv.URL+`/events"}`); resp.StatusCode != 204 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("callback verification: %d %s", resp.StatusCode, b)
	}
	if resp := ctl(t, f, "POST", "/_sim/users", `{"userid":"wangwu","name":"王五","department":[2],"mobile":"13700000000","position":"工程师"}`); resp.StatusCode != 200 {
		t.Fatalf("create user: %d", resp.StatusCode)
	}
	ev := rcv.wait(t, 1)[0]
	if ev["ChangeType"] != "create_user" || ev["UserID"] != "wangwu" || ev["Name"] != "王五" || ev["Department"] != "2" ||
		ev["Event"] != "change_contact" || ev["MsgType"] != "event" || ev["ToUserName"] != corp || ev["FromUserName"] != "sys" {
		t.Fatalf("create_user event = %v", ev)
	}
	ctl(t, f, "POST", "/_sim/users", `{"userid":"wangwu","position":"经理","status":2}`)
	ev = rcv.wait(t, 2)[1]
	if ev["ChangeType"] != "update_user" || ev["Position"] != "经理" || ev["Status"] != "2" || ev["Name"] != "" {
		t.Fatalf("update_user must carry only changed fields: %v", ev)
	}
	ctl(t, f, "POST", "/_sim/users/wangwu/rename", `{"new_userid":"wangwu2"}`)
	ev = rcv.wait(t, 3)[2]
	if ev["ChangeType"] != "update_user" || ev["UserID"] != "wangwu" || ev["NewUserID"] != "wangwu2" {
		t.Fatalf("userid change event = %v", ev)
	}
	rcv.fails.Store(2) // the platform retries: 3 attempts in all
	ctl(t, f, "DELETE", "/_sim/users/wangwu2", "")
	ev = rcv.wait(t, 4)[3]
	if ev["ChangeType"] != "delete_user" || ev["UserID"] != "wangwu2" {
		t.Fatalf("delete_user event = %v", ev)
	}
	ctl(t, f, "POST", "/_sim/departments", `{"name":"新团队","parentid":2}`)
	ev = rcv.wait(t, 5)[4]
	if ev["ChangeType"] != "create_party" || ev["Name"] != "新团队" || ev["ParentId"] != "2" {
		t.Fatalf("create_party event = %v", ev)
	}
	id := ev["Id"]
	ctl(t, f, "POST", "/_sim/departments", `{"id":`+id+`,"parentid":3}`)
	ev = rcv.wait(t, 6)[5]
	if ev["ChangeType"] != "update_party" || ev["ParentId"] != "3" || ev["Name"] != "" {
		t.Fatalf("update_party event = %v", ev)
	}
	ctl(t, f, "DELETE", "/_sim/departments/"+id, "")
	ev = rcv.wait(t, 7)[6]
	if ev["ChangeType"] != "delete_party" || ev["Id"] != id {
		t.Fatalf("delete_party event = %v", ev)
	}
	deliveries := waitDeliveries(t, f.sim, 7)
	if deliveries[3].Attempts != 3 || !deliveries[3].OK {
		t.Fatalf("retried delivery = %+v", deliveries[3])
	}
	// Writes through the contact-sync API are not echoed back as events.
	tok := f.token(contSec)
	f.call("POST", "/cgi-bin/user/create?access_token="+tok, map[string]any{"userid": "api1", "name": "甲", "department": []int{1}, "email": "api1@example.com"})
	time.Sleep(100 * time.Millisecond)
	if n := len(rcv.wait(t, 7)); n != 7 {
		t.Fatalf("an API write fired an event (%d events)", n)
	}
}

func TestMinimalEvents(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MinimalEvents = true })
	rcv := newReceiver(t)
	ctl(t, f, "POST", "/_sim/callback", `{"url":"`+rcv.srv.URL+`"}`)
	ctl(t, f, "POST", "/_sim/users", `{"userid":"zhaoliu","name":"赵六","department":[2,3],"email":"zl@example.com"}`)
	ev := rcv.wait(t, 1)[0]
	if ev["UserID"] != "zhaoliu" || ev["Department"] != "2,3" || ev["Name"] != "" || ev["Email"] != "" {
		t.Fatalf("post-2022-08-15 member event must carry only UserID and Department: %v", ev)
	}
}

func TestControlAPIRejectsBadInput(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/_sim/users", `{"userid":"x1","name":"x","department":[999999],"email":"x1@example.com"}`},
		{"POST", "/_sim/users", `not json`},
		{"POST", "/_sim/faults", `{}`},
		{"POST", "/_sim/departments", `{"name":"bad|name","parentid":1}`},
		{"POST", "/_sim/users/zhangsan/rename", `{"new_userid":"-bad"}`},
	} {
		if resp := ctl(t, f, tc.method, tc.path, tc.body); resp.StatusCode != 400 {
			t.Errorf("%s %s %s: %d, want 400", tc.method, tc.path, tc.body, resp.StatusCode)
		}
	}
	for _, tc := range []struct{ method, path string }{{"DELETE", "/_sim/users/ghost"}, {"DELETE", "/_sim/departments/999999"}} {
		if resp := ctl(t, f, tc.method, tc.path, ""); resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("%s %s: %d", tc.method, tc.path, resp.StatusCode)
		}
	}
	f.sim.Org().RLock()
	defer f.sim.Org().RUnlock()
	if f.sim.Org().User("x1") != nil {
		t.Fatal("a rejected user was stored")
	}
}
