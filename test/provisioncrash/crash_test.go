// Package provisioncrash proves outbound provisioning's crash safety with the real binary: a
// `qiao serve` process SIGKILLed between the outbox write and WeCom's answer loses no change and,
// restarted, never creates an object twice nor leaves one parked for a duplicate WeCom refuses.
package provisioncrash

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/sqlstore"
	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
	"github.com/qiao-gateway/qiao/internal/secretbox"
)

// gate stands in front of the WeCom simulator: it logs every write call with WeCom's errcode,
// and holds one chosen call — after the simulator applied it (the answer is lost) or before —
// until the test has killed the gateway that made it.
type gate struct {
	sim http.Handler

	mu      sync.Mutex
	hold    string // "/cgi-bin/user/create": the next such call is held
	apply   bool   // apply the held call before holding it
	held    chan struct{}
	release chan struct{}
	writes  []write
}

type write struct {
	API     string
	Body    string
	ErrCode int
}

func (g *gate) arm(api string, apply bool) (held chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hold, g.apply, g.held, g.release = api, apply, make(chan struct{}), make(chan struct{})
	return g.held
}

func (g *gate) free() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.release != nil {
		close(g.release)
	}
	g.hold, g.release = "", nil
}

func (g *gate) log() []write {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]write(nil), g.writes...)
}

func isWrite(path string) bool {
	for _, s := range []string{"/create", "/update", "/delete"} {
		if strings.HasSuffix(path, s) {
			return true
		}
	}
	return false
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	g.mu.Lock()
	hold := g.hold != "" && r.URL.Path == g.hold
	apply, held, release := g.apply, g.held, g.release
	if hold {
		g.hold = "" // one call only
	}
	g.mu.Unlock()
	if hold && !apply {
		close(held)
		<-release
		return // never applied, never answered
	}
	rec := httptest.NewRecorder()
	g.sim.ServeHTTP(rec, r)
	if isWrite(r.URL.Path) {
		var ans struct {
			ErrCode int `json:"errcode"`
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &ans)
		g.mu.Lock()
		g.writes = append(g.writes, write{API: strings.TrimPrefix(r.URL.Path, "/cgi-bin/"), Body: string(body), ErrCode: ans.ErrCode})
		g.mu.Unlock()
	}
	if hold {
		close(held)
		<-release
		return // applied, the answer lost with the process that asked
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// gateway is one `qiao serve` process.
type gateway struct {
	t   *testing.T
	cmd *exec.Cmd
	out *bytes.Buffer
}

func start(t *testing.T, bin, cfg string) *gateway {
	t.Helper()
	out := &bytes.Buffer{}
	cmd := exec.Command(bin, "serve", "--config", cfg)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, cmd: cmd, out: out}
	t.Cleanup(func() { g.kill() })
	return g
}

func (g *gateway) kill() {
	if g.cmd.ProcessState != nil {
		return
	}
	_ = g.cmd.Process.Signal(syscall.SIGKILL)
	_ = g.cmd.Wait()
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSIGKILLBetweenOutboxAndPush: a real `qiao serve` pushes an enterprise's local directory
// into the WeCom simulator. Three local changes are written to the database (the outbox rows by
// the triggers, in the changes' transactions) and the gateway is SIGKILLed twice in the middle
// of pushing them: once after WeCom created alice but before its answer arrived, once after
// WeCom created department 研发 but before its answer arrived (bob, its member, and a rename of
// alice still waiting behind it). Restarted, the gateway pushes everything: alice and 研发 exist
// once each (the repeated creates recognise qiao's own objects), bob is in 研发, alice is renamed,
// nothing is parked and no record holds an error.
func TestSIGKILLBetweenOutboxAndPush(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the qiao binary")
	}
	ctx := context.Background()
	dir := t.TempDir()
	bin := filepath.Join(dir, "qiao")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/qiao-gateway/qiao/cmd/qiao").CombinedOutput(); err != nil {
		t.Fatalf("build qiao: %v\n%s", err, out)
	}

	setup := wecomsim.NewSetup(5, 19, "127.0.0.1:1")
	setup.Config.RateLimits = false
	org := setup.Config.Org
	sim := wecomsim.New(setup.Config)
	g := &gate{sim: sim}
	srv := httptest.NewServer(g)
	t.Cleanup(func() { g.free(); srv.Close(); sim.Close() })

	key := make([]byte, secretbox.KeySize)
	for i := range key {
		key[i] = byte(i + 1)
	}
	port := freePort(t)
	dbPath := filepath.Join(dir, "qiao.db")
	cfg := filepath.Join(dir, "config.yaml")
	yaml := fmt.Sprintf(`listen: 127.0.0.1:%d
external_url: http://127.0.0.1:%d
data_dir: %s
storage: sqlite://%s
master_key: %s
log:
  level: warn
enterprises:
  - id: crash
    name: Crash Corp
    sources:
      - id: local
        kind: local
        name: Local
    users:
      - username: base
        name: Base
        email: base@crash.example
    provisioning:
      kind: wecom
      corp_id: %s
      api_base_url: %s
      root_department: "1"
      scope: sources
      sources: [local]
      secrets:
        contact_secret: %s
`, port, port, dir, dbPath, base64.StdEncoding.EncodeToString(key), setup.CorpID, srv.URL, setup.ContactSecret)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	inWeCom := func(userid string) bool {
		org.RLock()
		defer org.RUnlock()
		return org.User(userid) != nil
	}
	gw := start(t, bin, cfg)
	waitFor(t, "the initial push of base", 60*time.Second, func() bool { return inWeCom("base") })

	// The test's own connection to the gateway's database: it writes the local changes (the
	// triggers add the outbox rows) and reads the outcome.
	box, err := secretbox.New(key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlstore.Open(ctx, "sqlite://"+dbPath, box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	addPerson := func(username, name string, depts ...string) {
		t.Helper()
		u := &directory.User{EnterpriseID: "crash", Username: username, Name: name, Email: username + "@crash.example", Status: directory.UserActive}
		if err := st.InTx(ctx, func(tx directory.Store) error {
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
			return tx.PutUserLink(ctx, &directory.UserLink{EnterpriseID: "crash", SourceID: "local", UpstreamID: username, UserID: u.ID, Departments: depts})
		}); err != nil {
			t.Fatal(err)
		}
	}
	// A killed process's claims last their lease (two minutes) before another process may take
	// the rows; the test ends the lease instead of waiting it out.
	expireClaims := func() {
		t.Helper()
		if _, err := db.ExecContext(ctx, `UPDATE provision_outbox SET claimed_until = 0, claim = ''`); err != nil {
			t.Fatal(err)
		}
	}
	outbox := func() map[string]int {
		c, err := st.CountOutbox(ctx, "crash")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// 1. alice: WeCom creates her, the answer never arrives, the gateway is killed.
	held := g.arm("/cgi-bin/user/create", true)
	addPerson("alice", "Alice")
	if n := outbox()[directory.OutboxPending]; n == 0 {
		t.Fatal("no outbox row for alice")
	}
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatalf("alice's create never reached WeCom:\n%s", gw.out)
	}
	gw.kill()
	g.free()
	if !inWeCom("alice") {
		t.Fatal("the simulator did not create alice")
	}
	if n := outbox()[directory.OutboxPending]; n == 0 {
		t.Fatal("alice's outbox row went with the killed process")
	}

	// 2. While it is down: department 研发 with bob in it, and alice renamed. Restarted, the
	// gateway creates 研发 in WeCom and is killed before the answer arrives.
	if err := st.PutDepartment(ctx, &directory.Department{EnterpriseID: "crash", SourceID: "local", UpstreamID: "rd", Name: "研发"}); err != nil {
		t.Fatal(err)
	}
	addPerson("bob", "Bob", "rd")
	// (base is declared in the config file, which a start applies again: the test renames alice,
	// whose create's answer was lost.)
	alice, err := st.GetUserByUsername(ctx, "crash", "alice")
	if err != nil {
		t.Fatal(err)
	}
	alice.Name = "Alice Renamed"
	if err := st.UpdateUser(ctx, alice); err != nil {
		t.Fatal(err)
	}
	expireClaims()
	held = g.arm("/cgi-bin/department/create", true)
	gw = start(t, bin, cfg)
	select {
	case <-held:
	case <-time.After(60 * time.Second):
		t.Fatalf("研发's create never reached WeCom:\n%s", gw.out)
	}
	gw.kill()
	g.free()

	// 3. Restarted once more: everything arrives, once.
	expireClaims()
	gw = start(t, bin, cfg)
	deptsNamed := func(name string) []int {
		org.RLock()
		defer org.RUnlock()
		var out []int
		for _, id := range org.DeptIDs() {
			if org.Dept(id).Name == name {
				out = append(out, id)
			}
		}
		return out
	}
	for deadline := time.Now().Add(60 * time.Second); ; {
		org.RLock()
		b, bob := org.User("alice"), org.User("bob")
		org.RUnlock()
		c := outbox()
		if b != nil && b.Name == "Alice Renamed" && bob != nil && c[directory.OutboxPending] == 0 && c[directory.OutboxParked] == 0 {
			break
		}
		if time.Now().After(deadline) {
			parked, _ := st.ListOutbox(ctx, "crash", directory.OutboxParked, 100)
			pending, _ := st.ListOutbox(ctx, "crash", directory.OutboxPending, 100)
			var items []string
			for _, it := range append(parked, pending...) {
				items = append(items, fmt.Sprintf("%s %s %s attempts %d errcode %d %s", it.Status, it.ObjectType, it.ObjectKey, it.Attempts, it.ErrCode, it.Error))
			}
			t.Fatalf("not every change arrived: alice %+v bob %v outbox %v\n%s\nwrites %+v\ngateway:\n%s", b, bob != nil, c, strings.Join(items, "\n"), g.log(), gw.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	rd := deptsNamed("研发")
	if len(rd) != 1 {
		t.Fatalf("departments named 研发 in WeCom: %v", rd)
	}
	org.RLock()
	bobDepts := org.User("bob").Depts
	org.RUnlock()
	if len(bobDepts) != 1 || bobDepts[0] != rd[0] {
		t.Fatalf("bob is in %v, 研发 is %d", bobDepts, rd[0])
	}
	ps := directory.ProvisionStore(st)
	recs, err := ps.ListProvisionRecords(ctx, directory.ProvisionRecordQuery{EnterpriseID: "crash", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]string{}
	for _, r := range recs {
		if r.Error != "" {
			t.Errorf("record %s %s %s: errcode %d %s", r.ObjectType, r.LocalKey, r.Action, r.ErrCode, r.Error)
		}
		if _, seen := actions[r.RemoteID]; !seen { // newest first
			actions[r.RemoteID] = r.Action
		}
	}
	// The repeated creates met WeCom's "already exists" and took the objects as qiao's own; no
	// other write was refused.
	creates := map[string]int{}
	for _, w := range g.log() {
		switch {
		case w.ErrCode == 0:
			if strings.HasSuffix(w.API, "/create") {
				creates[w.API+" "+w.Body]++
			}
		case w.API == "user/create" && w.ErrCode == 60102 && strings.Contains(w.Body, `"alice"`):
		case w.API == "department/create" && w.ErrCode == 60008 && strings.Contains(w.Body, "研发"):
		default:
			t.Errorf("WeCom refused %s %s: errcode %d", w.API, w.Body, w.ErrCode)
		}
	}
	for k, n := range creates {
		if n != 1 {
			t.Errorf("created %d times: %s", n, k)
		}
	}
	if actions["alice"] != "adopt" {
		t.Errorf("alice's last record: %q (want adopt)", actions["alice"])
	}
	t.Logf("WeCom writes: %d; last actions: %v", len(g.log()), actions)
}
