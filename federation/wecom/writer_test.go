package wecom

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/upstream"
	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
)

// connectProxy is an HTTPS (CONNECT) proxy that wants user:pass (407 otherwise) and counts the
// tunnels it opened.
func connectProxy(t *testing.T, user, pass string) (string, *atomic.Int64) {
	t.Helper()
	var tunnels atomic.Int64
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		if r.Header.Get("Proxy-Authorization") != want {
			w.Header().Set("Proxy-Authenticate", `Basic realm="egress"`)
			w.WriteHeader(http.StatusProxyAuthRequired)
			return
		}
		up, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		hj, _ := w.(http.Hijacker)
		w.WriteHeader(http.StatusOK)
		conn, buf, err := hj.Hijack()
		if err != nil {
			up.Close()
			return
		}
		tunnels.Add(1)
		go func() { _, _ = io.Copy(up, buf); up.Close() }()
		go func() { _, _ = io.Copy(conn, up); conn.Close() }()
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), &tunnels
}

func writerFor(t *testing.T, s *wecomsim.Setup, base string, cfg map[string]string, secrets map[string]string, srv *httptest.Server) *Writer {
	t.Helper()
	c := map[string]string{"corp_id": s.CorpID, "api_base_url": base}
	for k, v := range cfg {
		c[k] = v
	}
	sec := map[string]string{"contact_secret": s.ContactSecret}
	for k, v := range secrets {
		sec[k] = v
	}
	st, err := WriterSettings(c, sec)
	if err != nil {
		t.Fatal(err)
	}
	if srv != nil {
		st.RootCAs = srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	}
	w, err := NewWriter(st)
	if err != nil {
		t.Fatal(err)
	}
	w.Client().SetBackoff(upstream.Backoff{Base: time.Millisecond, Max: 5 * time.Millisecond, Attempts: 2})
	return w
}

// TestWriterThroughConnectProxies: the seed's proxy form (host:port list, one username and
// password) reaches the simulator over HTTPS through a CONNECT proxy that checks the credentials;
// an unreachable first proxy fails over to the second; wrong credentials are refused.
func TestWriterThroughConnectProxies(t *testing.T) {
	s := wecomsim.NewSetup(10, 5, "127.0.0.1:8080")
	sim := wecomsim.New(s.Config)
	srv := httptest.NewTLSServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	proxy, tunnels := connectProxy(t, "egress", "p@ss:word")
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()

	w := writerFor(t, s, srv.URL, map[string]string{"proxies": deadAddr + "," + proxy, "proxy_username": "egress"},
		map[string]string{"proxy_password": "p@ss:word"}, srv)
	ctx := context.Background()
	id, err := w.CreateDepartment(ctx, federation.WriteDept{ParentID: "1", Name: "代理部门"})
	if err != nil {
		t.Fatalf("create through the second proxy: %v", err)
	}
	if err := w.CreateUser(ctx, federation.WriteUser{UserID: "wangwu", Name: "王五", Email: "wangwu@example.com", Depts: []string{id}, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if tunnels.Load() == 0 {
		t.Fatal("no CONNECT tunnel was opened: the calls did not go through the proxy")
	}
	s.Config.Org.RLock()
	u := s.Config.Org.User("wangwu")
	s.Config.Org.RUnlock()
	if u == nil || u.Name != "王五" {
		t.Fatalf("wangwu in the simulator = %+v", u)
	}

	bad := writerFor(t, s, srv.URL, map[string]string{"proxies": proxy, "proxy_username": "egress", "rate_limit": "off"},
		map[string]string{"proxy_password": "wrong"}, srv)
	if _, err := bad.CreateDepartment(ctx, federation.WriteDept{ParentID: "1", Name: "不该"}); err == nil || !errors.Is(err, federation.ErrTransient) {
		t.Fatalf("wrong proxy password: %v", err)
	} else if strings.Contains(err.Error(), "wrong") {
		t.Fatalf("the error shows the proxy password: %v", err)
	}

	if _, err := WriterSettings(map[string]string{"corp_id": "x", "proxies": "nohost"}, map[string]string{"contact_secret": "y"}); err == nil {
		t.Fatal("a proxy entry without a port accepted")
	}
}

// TestWriterOutcomes: the platform's refusals come back as outcomes the pusher acts on, with a
// message naming the field.
func TestWriterOutcomes(t *testing.T) {
	s, base := setup(t, nil)
	w := writerFor(t, s, base, nil, nil, nil)
	ctx := context.Background()
	user := federation.WriteUser{UserID: "lisi", Name: "李四", Mobile: "13900000009", Email: "lisi9@example.com", Depts: []string{"1"}, Enabled: true}
	if err := w.CreateUser(ctx, user); err != nil {
		t.Fatal(err)
	}
	if err := w.CreateUser(ctx, user); !errors.Is(err, federation.ErrExists) {
		t.Fatalf("create twice: %v", err)
	}
	other := user
	other.UserID, other.Email = "lisi2", "other@example.com"
	if err := w.CreateUser(ctx, other); !errors.Is(err, federation.ErrInUse) || !strings.Contains(err.Error(), "mobile") {
		t.Fatalf("mobile in use: %v", err)
	}
	if err := w.UpdateUser(ctx, federation.WriteUser{UserID: "ghost", Name: "x", Depts: []string{"1"}}); !errors.Is(err, federation.ErrNotFound) {
		t.Fatalf("update a missing user: %v", err)
	}
	user.Enabled = false
	user.Position = "经理"
	if err := w.UpdateUser(ctx, user); err != nil {
		t.Fatal(err)
	}
	s.Config.Org.RLock()
	got := s.Config.Org.User("lisi")
	s.Config.Org.RUnlock()
	if got.Position != "经理" || got.Status != 2 {
		t.Fatalf("after update: %+v", got)
	}
	id, err := w.CreateDepartment(ctx, federation.WriteDept{ParentID: "1", Name: "研发"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.CreateDepartment(ctx, federation.WriteDept{ParentID: "1", Name: "研发"}); !errors.Is(err, federation.ErrExists) {
		t.Fatalf("same name twice: %v", err)
	}
	if found, err := w.FindDepartment(ctx, "1", "研发"); err != nil || found != id {
		t.Fatalf("find = %q, %v (want %s)", found, err, id)
	}
	user.Depts = []string{id}
	if err := w.UpdateUser(ctx, user); err != nil {
		t.Fatal(err)
	}
	if err := w.DeleteDepartment(ctx, id); !errors.Is(err, federation.ErrNotEmpty) {
		t.Fatalf("delete a department with a member: %v", err)
	}
	if err := w.DeleteUser(ctx, "lisi"); err != nil {
		t.Fatal(err)
	}
	if err := w.DeleteDepartment(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := w.DeleteUser(ctx, "lisi"); !errors.Is(err, federation.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if _, err := w.CreateDepartment(ctx, federation.WriteDept{ParentID: "1", Name: "a|b"}); err == nil || errors.Is(err, federation.ErrTransient) || !strings.Contains(err.Error(), "60009") {
		t.Fatalf("illegal name: %v", err)
	}
	if err := w.CheckWrite(ctx, "1"); err != nil {
		t.Fatalf("check: %v", err)
	}
	if err := w.CheckWrite(ctx, "987654"); !errors.Is(err, federation.ErrNotFound) {
		t.Fatalf("check a missing root: %v", err)
	}
	// An app's secret may not write: the message says which secret.
	app := writerFor(t, s, base, nil, map[string]string{"contact_secret": s.Secret}, nil)
	if err := app.CheckWrite(ctx, "1"); err == nil || !strings.Contains(err.Error(), "contact") {
		t.Fatalf("check with the app's secret: %v", err)
	}
}
