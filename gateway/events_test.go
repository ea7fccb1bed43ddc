package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/demo"
	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/dirsync"
	"github.com/qiao-gateway/qiao/federation/dingtalk/dingtalksim"
	"github.com/qiao-gateway/qiao/federation/msgcrypt"
	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
	"github.com/qiao-gateway/qiao/internal/config"
	"github.com/qiao-gateway/qiao/session"
)

type world struct {
	t    *testing.T
	ctx  context.Context
	gw   *Gateway
	base string
	ws   *wecomsim.Setup
	wsim *wecomsim.Sim
	wURL string
	ds   *dingtalksim.Setup
	dsim *dingtalksim.Sim
	dURL string
	data string
}

func listen(t *testing.T) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// newWorld runs the WeCom and DingTalk simulators and a gateway whose enterprise "demo" has a
// source on each, synced once, with the simulators' callbacks registered.
func newWorld(t *testing.T, users int, data string, serve bool, opts ...func(*config.Config)) *world {
	t.Helper()
	w := &world{t: t, ctx: context.Background(), data: data}
	ln := listen(t)
	addr := ln.Addr().String()
	// Different seeds: the two orgs share 张三 and, by chance of common names, a few others.
	w.ws, w.ds = wecomsim.NewSetup(users, 3, addr), dingtalksim.NewSetup(users, 4, addr)
	w.wsim, w.dsim = wecomsim.New(w.ws.Config), dingtalksim.New(w.ds.Config)
	wsrv, dsrv := httptest.NewServer(w.wsim), httptest.NewServer(w.dsim)
	w.wURL, w.dURL = wsrv.URL, dsrv.URL
	t.Cleanup(func() { wsrv.Close(); dsrv.Close(); w.wsim.Close(); w.dsim.Close() })
	cfg, _, err := demo.Config(addr, data, "pw", &demo.Sims{WeCom: w.ws, WeComURL: w.wURL, DingTalk: w.ds, DingTalkURL: w.dURL})
	if err != nil {
		t.Fatal(err)
	}
	off := false
	cfg.SyncScheduler = &off
	cfg.MasterKey = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
	for _, o := range opts {
		o(cfg)
	}
	w.gw, err = New(w.ctx, cfg, NewLogger(cfg))
	if err != nil {
		t.Fatal(err)
	}
	w.base = "http://" + addr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	stop := func() {}
	if serve {
		go func() { _ = w.gw.Serve(ctx, ln); close(done) }()
	} else {
		srv := &http.Server{Handler: w.gw.Handler()}
		go func() { _ = srv.Serve(ln); close(done) }()
		stop = func() { srv.Close() }
	}
	t.Cleanup(func() { cancel(); stop(); <-done; w.gw.Close() })
	for _, src := range []string{"wecom", "dingtalk"} {
		if _, err := w.gw.Sync.Run(w.ctx, "demo", src, dirsync.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	w.register()
	return w
}

func (w *world) register() {
	w.t.Helper()
	for _, c := range []struct{ sim, src string }{{w.wURL, "wecom"}, {w.dURL, "dingtalk"}} {
		body := `{"url":"` + w.base + `/e/demo/sources/` + c.src + `/events"}`
		resp, err := http.Post(c.sim+"/_sim/callback", "application/json", strings.NewReader(body))
		if err != nil {
			w.t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 204 {
			w.t.Fatalf("register %s callback: %d %s", c.src, resp.StatusCode, b)
		}
	}
}

func (w *world) ctl(base, method, path, body string) {
	w.t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		w.t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
	}
}

func (w *world) eventually(what string, f func() bool) {
	w.t.Helper()
	// A ceiling, not a measurement: CI machines under -race can be slow.
	deadline := time.Now().Add(20 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			w.t.Fatalf("not within 20 s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (w *world) user(name string) *directory.User {
	u, err := w.gw.Store.GetUserByUsername(w.ctx, "demo", name)
	if err != nil {
		return nil
	}
	return u
}

func TestWeComEventsEndToEnd(t *testing.T) {
	w := newWorld(t, 60, t.TempDir(), true)
	st := w.gw.Store
	// A refresh token for someone who will leave: the departure must revoke it.
	o := w.wsim.Org()
	o.RLock()
	var leaver string
	for _, id := range o.UserIDs() {
		if u := o.User(id); u.Status == 1 && id != "zhangsan" {
			if _, err := st.GetUserLink(w.ctx, "demo", "dingtalk", id); errors.Is(err, directory.ErrNotFound) {
				leaver = id // in WeCom only: leaving it ends their access
				break
			}
		}
	}
	o.RUnlock()
	lu := w.user(leaver)
	if err := st.CreateRefreshToken(w.ctx, &directory.RefreshToken{ID: "rt-" + leaver, FamilyID: "f", EnterpriseID: "demo", ClientID: "demo-app",
		UserID: lu.ID, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// ... and an SSO session, which the departure must end.
	sr := httptest.NewRequest("GET", "/", nil)
	sess := &session.Session{Enterprise: "demo", User: lu.ID}
	rec := httptest.NewRecorder()
	if err := w.gw.Sessions.Save(rec, sr, sess); err != nil {
		t.Fatal(err)
	}
	cookie := rec.Result().Cookies()[0]
	w.ctl(w.wURL, "DELETE", "/_sim/users/"+leaver, "")
	w.eventually("departure applied", func() bool { u := w.user(leaver); return u != nil && u.Status == directory.UserDeparted })
	w.eventually("refresh token revoked", func() bool {
		rt, _ := st.GetRefreshToken(w.ctx, "rt-"+leaver)
		return !rt.RevokedAt.IsZero()
	})
	// The audit event is written last, after the relying parties have been told.
	var audit []*directory.AuditEvent
	w.eventually("revocation audited", func() bool {
		audit, _ = st.ListAuditEvents(w.ctx, directory.AuditQuery{EnterpriseID: "demo", Kind: "user.revoke", UserID: lu.ID})
		return len(audit) > 0
	})
	if len(audit) != 1 || !strings.Contains(string(audit[0].Detail), `"sessions":1`) {
		t.Fatalf("revocation audit events = %+v", audit)
	}
	sr = httptest.NewRequest("GET", "/", nil)
	sr.AddCookie(cookie)
	if again, _ := w.gw.Sessions.Load(sr); again != nil {
		t.Fatal("the departed user's SSO session still opens")
	}
	w.ctl(w.wURL, "POST", "/_sim/users", `{"userid":"zhangsan","name":"张三丰"}`)
	w.eventually("update applied", func() bool { return w.user("zhangsan").Name == "张三丰" })
	w.ctl(w.wURL, "POST", "/_sim/users", `{"userid":"wangwu","name":"王五","department":[2],"email":"ww@example.com","status":1}`)
	w.eventually("create applied", func() bool { return w.user("wangwu") != nil })
	w.ctl(w.wURL, "POST", "/_sim/users/wangwu/rename", `{"new_userid":"wangwu2"}`)
	w.eventually("userid change applied", func() bool {
		old, nu := w.user("wangwu"), w.user("wangwu2")
		return old != nil && nu != nil && old.Status == directory.UserDeparted && nu.Status == directory.UserActive && old.ID != nu.ID
	})
	w.ctl(w.wURL, "POST", "/_sim/departments", `{"name":"事件部","parentid":1}`)
	w.eventually("department created", func() bool {
		ds, _ := st.ListDepartments(w.ctx, "demo", "wecom")
		for _, d := range ds {
			if d.Name == "事件部" {
				return true
			}
		}
		return false
	})
	// Every applied event is a task with trigger "event" and its records. A task is marked
	// finished just after its changes are visible, so wait for the last one to settle.
	var tasks []*directory.SyncTask
	w.eventually("event tasks finished", func() bool {
		tasks, _ = st.ListSyncTasks(w.ctx, "demo", "wecom", 50)
		for _, tk := range tasks {
			if tk.Status == directory.TaskRunning {
				return false
			}
		}
		return true
	})
	w.eventually("inbox events settled", func() bool {
		evs, _ := st.ListSourceEvents(w.ctx, "demo", "wecom", 50)
		for _, e := range evs {
			if e.Status == directory.EventPending {
				return false
			}
		}
		return true
	})
	events := 0
	for _, tk := range tasks {
		if tk.Trigger == directory.TriggerEvent {
			events++
			if tk.Status != directory.TaskSucceeded {
				t.Fatalf("event task %s: %s %s", tk.ID, tk.Status, tk.Reason)
			}
		}
	}
	if events < 5 {
		t.Fatalf("%d event tasks, want at least 5", events)
	}
	evs, _ := st.ListSourceEvents(w.ctx, "demo", "wecom", 50)
	for _, e := range evs {
		if e.Status != directory.EventApplied || e.TaskID == "" {
			t.Fatalf("inbox event %d: %s %s", e.ID, e.Status, e.Error)
		}
	}
}

func TestDingTalkEventsEndToEnd(t *testing.T) {
	no := false
	w := newWorld(t, 60, t.TempDir(), true, func(c *config.Config) {
		for i := range c.Enterprises[0].Sources {
			if c.Enterprises[0].Sources[i].Kind == "dingtalk" {
				c.Enterprises[0].Sources[i].Authoritative = &no
			}
		}
	})
	w.ctl(w.dURL, "DELETE", "/_sim/users/zhangsan", "")
	// zhangsan is also linked to WeCom and DingTalk is not authoritative here: leaving DingTalk
	// removes that link, not the person.
	w.eventually("DingTalk link removed", func() bool {
		_, err := w.gw.Store.GetUserLink(w.ctx, "demo", "dingtalk", "zhangsan")
		return errors.Is(err, directory.ErrNotFound)
	})
	if w.user("zhangsan").Status != directory.UserActive {
		t.Fatal("a person still in WeCom was departed by leaving DingTalk")
	}
	w.ctl(w.dURL, "POST", "/_sim/users", `{"userid":"zhaoliu","name":"赵六","dept_id_list":[2],"active":true}`)
	w.eventually("user_add_org applied", func() bool { return w.user("zhaoliu") != nil })
	w.ctl(w.dURL, "DELETE", "/_sim/users/zhaoliu", "")
	w.eventually("user_leave_org departs", func() bool { return w.user("zhaoliu").Status == directory.UserDeparted })
	w.ctl(w.dURL, "POST", "/_sim/departments", `{"name":"钉钉新部门","parent_id":1}`)
	w.eventually("org_dept_create applied", func() bool {
		ds, _ := w.gw.Store.ListDepartments(w.ctx, "demo", "dingtalk")
		for _, d := range ds {
			if d.Name == "钉钉新部门" {
				return true
			}
		}
		return false
	})
}

// wecomPost sends a hand-made WeCom callback, as the platform would (twice when repeat is set,
// byte for byte: a replay), and returns the last answer.
func wecomPost(t *testing.T, w *world, ts int64, nonce, plaintext string, tamper func(q url.Values, body string) (url.Values, string), repeat ...bool) *http.Response {
	t.Helper()
	c, err := msgcrypt.New(w.ws.CallbackToken, w.ws.CallbackAESKey, w.ws.CorpID)
	if err != nil {
		t.Fatal(err)
	}
	tsText := strconv.FormatInt(ts, 10)
	enc, sig, _ := c.Seal([]byte(plaintext), tsText, nonce)
	q := url.Values{"msg_signature": {sig}, "timestamp": {tsText}, "nonce": {nonce}}
	body := "<xml><ToUserName><![CDATA[" + w.ws.CorpID + "]]></ToUserName><Encrypt><![CDATA[" + enc + "]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>"
	if tamper != nil {
		q, body = tamper(q, body)
	}
	var resp *http.Response
	for i := 0; i < 1+len(repeat); i++ {
		var err error
		resp, err = http.Post(w.base+"/e/demo/sources/wecom/events?"+q.Encode(), "text/xml", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	return resp
}

func TestHostileCallbacksAreRejected(t *testing.T) {
	w := newWorld(t, 20, t.TempDir(), false) // no worker: only what the endpoint stores is checked
	ev := func(id string) string {
		return "<xml><ToUserName><![CDATA[" + w.ws.CorpID + "]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1</CreateTime>" +
			"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event><ChangeType><![CDATA[delete_user]]></ChangeType>" +
			"<UserID><![CDATA[" + id + "]]></UserID></xml>"
	}
	now := time.Now().Unix()
	if r := wecomPost(t, w, now, "n1", ev("zhangsan"), nil); r.StatusCode != 200 {
		t.Fatalf("a genuine event: %d", r.StatusCode)
	}
	if r := wecomPost(t, w, now, "n0", ev("replayed-one"), nil, true); r.StatusCode != 403 {
		t.Fatalf("a replayed request (same timestamp, nonce and signature): %d, want 403", r.StatusCode)
	}
	for name, tc := range map[string]struct {
		ts     int64
		nonce  string
		tamper func(url.Values, string) (url.Values, string)
		status int
	}{
		"stale":  {now - 3600, "n2", nil, 403},
		"future": {now + 3600, "n3", nil, 403},
		"wrong signature": {now, "n4", func(q url.Values, b string) (url.Values, string) {
			q.Set("msg_signature", strings.Repeat("a", 40))
			return q, b
		}, 403},
		"tampered body": {now, "n5", func(q url.Values, b string) (url.Values, string) {
			return q, strings.Replace(b, "<Encrypt><![CDATA[", "<Encrypt><![CDATA[AAAA", 1)
		}, 403},
		"garbage body":  {now, "n6", func(q url.Values, b string) (url.Values, string) { return q, "not xml at all" }, 400},
		"bad timestamp": {now, "n7", func(q url.Values, b string) (url.Values, string) { q.Set("timestamp", "yesterday"); return q, b }, 400},
		"oversized": {now, "n8", func(q url.Values, b string) (url.Values, string) {
			return q, b + strings.Repeat(" ", dirsync.MaxEventBody)
		}, 413},
		"truncated base64": {now, "n9", func(q url.Values, b string) (url.Values, string) {
			return q, strings.Replace(b, "]]></Encrypt>", "=]]></Encrypt>", 1)
		}, 403},
	} {
		if r := wecomPost(t, w, tc.ts, tc.nonce, ev("someone-"+name), tc.tamper); r.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", name, r.StatusCode, tc.status)
		}
	}
	// A different ciphertext of the same event (a platform retry) is stored once.
	if r := wecomPost(t, w, now, "n10", ev("zhangsan"), nil); r.StatusCode != 200 {
		t.Fatalf("retry delivery: %d", r.StatusCode)
	}
	evs, _ := w.gw.Store.ListSourceEvents(w.ctx, "demo", "wecom", 50)
	if len(evs) != 2 || evs[1].Payload == nil || !strings.Contains(string(evs[0].Payload), "replayed-one") {
		t.Fatalf("inbox holds %d events, want the genuine one once and the replayed one once", len(evs))
	}
	for _, path := range []string{"/e/nope/sources/wecom/events", "/e/demo/sources/nope/events", "/e/demo/sources/local/events"} {
		resp, _ := http.Post(w.base+path, "text/xml", strings.NewReader("<xml/>"))
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", path, resp.StatusCode)
		}
	}
	// DingTalk: the wrong receive key and a bad signature are refused; both documented query names work.
	d := w.ds
	for name, tc := range map[string]struct {
		key, sigName, tsName string
		status               int
	}{
		"AppKey, signature/timestamp":     {d.AppKey, "signature", "timestamp", 200},
		"CorpId, msg_signature/timeStamp": {d.CorpID, "msg_signature", "timeStamp", 200},
		"foreign receive key":             {"dingOTHER", "signature", "timestamp", 403},
	} {
		c, _ := msgcrypt.New(d.CallbackToken, d.CallbackAESKey, tc.key)
		ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
		nonce := "nonce" + name
		enc, sig, _ := c.Seal([]byte(`{"EventType":"user_leave_org","userId":["ghost-`+strconv.Itoa(len(name))+`"],"eventId":"`+name+`"}`), ts, nonce)
		q := url.Values{tc.sigName: {sig}, tc.tsName: {ts}, "nonce": {nonce}}
		body, _ := json.Marshal(map[string]string{"encrypt": enc})
		resp, err := http.Post(w.base+"/e/demo/sources/dingtalk/events?"+q.Encode(), "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		reply, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", name, resp.StatusCode, tc.status)
			continue
		}
		if tc.status == 200 {
			var r struct {
				MsgSignature string `json:"msg_signature"`
				TimeStamp    string `json:"timeStamp"`
				Nonce        string `json:"nonce"`
				Encrypt      string `json:"encrypt"`
			}
			json.Unmarshal(reply, &r)
			rc, _ := msgcrypt.New(d.CallbackToken, d.CallbackAESKey, tc.key)
			if pt, err := rc.Decrypt(r.MsgSignature, r.TimeStamp, r.Nonce, r.Encrypt); err != nil || string(pt) != "success" {
				t.Errorf("%s: reply is not the encrypted success: %s (%v)", name, reply, err)
			}
		}
	}
}

// TestNothingLostWhenKilledBetweenAckAndApply: a gateway acknowledges events (they are in the
// inbox) and is killed with SIGKILL before applying them; the next start applies them.
func TestNothingLostWhenKilledBetweenAckAndApply(t *testing.T) {
	if os.Getenv("QIAO_EVENT_CHILD") != "" {
		childGateway(t)
		return
	}
	data := t.TempDir()
	w := newWorld(t, 40, data, false) // the parent syncs, then hands the data dir to the child
	addrFile := filepath.Join(t.TempDir(), "addr")
	cmd := exec.Command(os.Args[0], "-test.run=^TestNothingLostWhenKilledBetweenAckAndApply$")
	cmd.Env = append(os.Environ(), "QIAO_EVENT_CHILD=1", "QIAO_EVENT_DATA="+data, "QIAO_EVENT_ADDR_FILE="+addrFile)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	o := w.wsim.Org()
	o.RLock()
	var gone []string
	for _, id := range o.UserIDs() {
		if _, err := w.gw.Store.GetUserLink(w.ctx, "demo", "dingtalk", id); o.User(id).Status == 1 && len(gone) < 3 && errors.Is(err, directory.ErrNotFound) {
			gone = append(gone, id)
		}
	}
	o.RUnlock()
	if len(gone) != 3 {
		t.Fatalf("found %d WeCom-only users to depart", len(gone))
	}
	w.gw.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var childBase string
	w.eventually("child gateway up", func() bool {
		b, err := os.ReadFile(addrFile)
		childBase = string(b)
		return err == nil && len(b) > 0
	})
	// Point the WeCom simulator's callback at the child and depart three people.
	w.base = childBase
	resp, _ := http.Post(w.wURL+"/_sim/callback", "application/json", strings.NewReader(`{"url":"`+childBase+`/e/demo/sources/wecom/events"}`))
	resp.Body.Close()
	for _, id := range gone {
		w.ctl(w.wURL, "DELETE", "/_sim/users/"+id, "")
	}
	defer func() {
		if t.Failed() {
			for _, d := range w.wsim.Deliveries() {
				t.Logf("delivery: %s ok=%v err=%s", d.Type, d.OK, d.Error)
			}
			t.Logf("child: %s", out.String())
		}
	}()
	w.eventually("events acknowledged", func() bool {
		n := 0
		for _, d := range w.wsim.Deliveries() {
			if d.OK && d.Type == "delete_user" {
				n++
			}
		}
		return n == 3
	})
	cmd.Process.Kill() // SIGKILL: the child never applies
	cmd.Wait()
	// Restart on the same data: the worker resumes from the inbox.
	cfg, _, _ := demo.Config("127.0.0.1:0", data, "pw", &demo.Sims{WeCom: w.ws, WeComURL: w.wURL, DingTalk: w.ds, DingTalkURL: w.dURL})
	cfg.MasterKey = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
	gw, err := New(w.ctx, cfg, NewLogger(cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	pending, _ := gw.Store.ListSourceEvents(w.ctx, "demo", "wecom", 10)
	if len(pending) != 3 {
		t.Fatalf("inbox after the kill holds %d events, want 3 (child output: %s)", len(pending), out.String())
	}
	for _, e := range pending {
		if e.Status != directory.EventPending {
			t.Fatalf("event %d applied by a child that should not have: %s", e.ID, e.Status)
		}
	}
	if n := gw.Sync.DrainEvents(w.ctx); n != 3 {
		t.Fatalf("applied %d events after the restart, want 3", n)
	}
	for _, id := range gone {
		u, _ := gw.Store.GetUserByUsername(w.ctx, "demo", id)
		if u.Status != directory.UserDeparted {
			t.Fatalf("%s not departed after the restart", id)
		}
	}
}

// childGateway serves the parent's data dir with the inbox worker stopped, as a gateway killed
// between acknowledging and applying would have.
func childGateway(t *testing.T) {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = os.Getenv("QIAO_EVENT_DATA")
	cfg.Storage = "sqlite://" + filepath.Join(cfg.DataDir, "qiao.db")
	cfg.KeysDir = filepath.Join(cfg.DataDir, "keys")
	cfg.MasterKey = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
	gw, err := New(context.Background(), cfg, NewLogger(cfg), WithoutApply()) // the parent declared the enterprise
	if err != nil {
		fmt.Println("child:", err)
		os.Exit(3)
	}
	ln := listen(t)
	srv := &http.Server{Handler: gw.Handler()} // routes only: no worker
	// Written whole, then renamed: the parent polls for the file and must never read half of it.
	addrFile := os.Getenv("QIAO_EVENT_ADDR_FILE")
	os.WriteFile(addrFile+".tmp", []byte("http://"+ln.Addr().String()), 0o600)
	os.Rename(addrFile+".tmp", addrFile)
	_ = srv.Serve(ln)
	os.Exit(0)
}
