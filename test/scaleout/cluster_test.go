// Package scaleout proves that qiao scales out: real `qiao serve` processes on one PostgreSQL and
// one Redis of their own (a temporary initdb cluster and a redis-server on free ports, so
// restarting them disturbs no other package's tests), behind a round-robin reverse proxy.
package scaleout

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the pgx database/sql driver
)

// required: CI provides PostgreSQL's binaries and redis-server; there a missing one fails the test
// instead of skipping it.
func required() bool { return os.Getenv("CI") != "" || os.Getenv("QIAO_REQUIRE_SCALEOUT") != "" }

func need(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if required() {
		t.Fatalf("%s: %v (CI or QIAO_REQUIRE_SCALEOUT requires it)", what, err)
	}
	t.Skipf("%s: %v (set QIAO_REQUIRE_SCALEOUT=1 to fail instead)", what, err)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// eventually polls f until it holds, failing after a ceiling (not a measurement).
func eventually(t *testing.T, what string, ceiling time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(ceiling)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", ceiling, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// buildQiao builds the binary once for the test.
func buildQiao(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "qiao")
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command builds qiao for this test: %v", err)
	}
	cmd := exec.Command(goBin, "build", "-o", bin, "github.com/qiao-gateway/qiao/cmd/qiao")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build qiao: %v\n%s", err, out)
	}
	return bin
}

// ---- PostgreSQL: a cluster of the test's own

type postgres struct {
	t          *testing.T
	bin, dir   string
	port       int
	asPostgres bool // running as root: initdb refuses root, so the cluster runs as user postgres
}

func (p *postgres) cmd(name string, args ...string) *exec.Cmd {
	path := filepath.Join(p.bin, name)
	if p.asPostgres {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func startPostgres(t *testing.T) *postgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	var err error
	if len(bins) == 0 {
		if p, lerr := exec.LookPath("initdb"); lerr == nil {
			bins = []string{p}
		} else {
			err = errors.New("no initdb in /usr/lib/postgresql/*/bin or PATH")
		}
	}
	need(t, "PostgreSQL server binaries", err)
	sort.Strings(bins)
	dir, err := os.MkdirTemp("", "qiao-scaleout-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p := &postgres{t: t, bin: filepath.Dir(bins[len(bins)-1]), dir: dir, port: freePort(t), asPostgres: os.Geteuid() == 0}
	t.Cleanup(func() {
		_ = p.cmd("pg_ctl", "-D", filepath.Join(dir, "data"), "-m", "immediate", "-w", "stop").Run()
		os.RemoveAll(dir)
	})
	if p.asPostgres {
		u, err := user.Lookup("postgres")
		need(t, "user postgres (to run initdb as)", err)
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := p.cmd("initdb", "-D", filepath.Join(dir, "data"), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	p.start()
	return p
}

func (p *postgres) start() {
	p.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", p.port, p.dir)
	if out, err := p.cmd("pg_ctl", "-D", filepath.Join(p.dir, "data"), "-l", filepath.Join(p.dir, "log"), "-o", opts, "-w", "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "log"))
		p.t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
}

func (p *postgres) stop() {
	p.t.Helper()
	if out, err := p.cmd("pg_ctl", "-D", filepath.Join(p.dir, "data"), "-m", "fast", "-w", "stop").CombinedOutput(); err != nil {
		p.t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

func (p *postgres) dsn() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// ---- Redis of the test's own

type redis struct {
	t    *testing.T
	dir  string
	port int
	cmd  *exec.Cmd
}

func startRedis(t *testing.T) *redis {
	t.Helper()
	_, err := exec.LookPath("redis-server")
	need(t, "redis-server", err)
	r := &redis{t: t, dir: t.TempDir(), port: freePort(t)}
	r.start()
	t.Cleanup(func() { r.stop() })
	return r
}

func (r *redis) start() {
	r.t.Helper()
	// No persistence: the documented behaviour under test is that SSO sessions are lost when Redis
	// restarts without it.
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", r.dir)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	eventually(r.t, "redis answers", 20*time.Second, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port))
		if err != nil {
			return false
		}
		defer c.Close()
		_, _ = c.Write([]byte("PING\r\n"))
		b := make([]byte, 7)
		n, _ := io.ReadFull(c, b)
		return n == 7 && string(b) == "+PONG\r\n"
	})
}

func (r *redis) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	_ = r.cmd.Wait()
	r.cmd = nil
}

func (r *redis) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// ---- the replicas

type replica struct {
	name, addr string
	cmd        *exec.Cmd
	log        *bytes.Buffer
	mu         *sync.Mutex
	exited     chan struct{}
}

type cluster struct {
	t        *testing.T
	bin, cfg string
	env      []string
	replicas []*replica
	proxy    *proxy
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

// start runs `qiao serve` for r and waits until it is ready.
func (c *cluster) start(r *replica) {
	c.t.Helper()
	r.cmd = exec.Command(c.bin, "serve", "--config", c.cfg, "--addr", r.addr, "--data", filepath.Join(filepath.Dir(c.cfg), r.name))
	r.cmd.Env = append(os.Environ(), c.env...)
	if r.log == nil {
		r.log, r.mu = &bytes.Buffer{}, &sync.Mutex{}
	}
	fmt.Fprintf(lockedWriter{r.mu, r.log}, "---- start %s\n", time.Now().Format(time.TimeOnly+".000"))
	r.cmd.Stdout, r.cmd.Stderr = lockedWriter{r.mu, r.log}, lockedWriter{r.mu, r.log}
	if err := r.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	r.exited = make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(r.exited) }()
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-r.exited:
			c.t.Fatalf("replica %s exited at start:\n%s", r.name, r.logText())
		default:
		}
		if resp, err := http.Get("http://" + r.addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("replica %s not ready within 90 s:\n%s", r.name, r.logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *replica) logText() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.String()
}

func (r *replica) alive() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits for the replica to drain and exit.
func (c *cluster) stop(r *replica) {
	c.t.Helper()
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
		c.t.Fatalf("replica %s did not exit within 30 s of SIGTERM", r.name)
	}
	if code := r.cmd.ProcessState.ExitCode(); code != 0 {
		c.t.Fatalf("replica %s exited %d after SIGTERM:\n%s", r.name, code, r.logText())
	}
}

// ---- the load balancer: round robin, skipping a replica that refuses connections (as any load
// balancer does while one restarts); nothing else is retried.

type proxy struct {
	backends []string
	ready    []atomic.Bool // the last health check's answer, per backend
	next     atomic.Uint64
	tr       *http.Transport
}

// newProxy balances over backends, checking each one's /readyz every 100 ms (as a load balancer's
// health check does) and sending only to those that answered 200.
func newProxy(ctx context.Context, backends []string) *proxy {
	p := &proxy{backends: backends, ready: make([]atomic.Bool, len(backends)),
		tr: &http.Transport{DisableKeepAlives: true, ResponseHeaderTimeout: 30 * time.Second}}
	check := func() {
		for i, b := range backends {
			resp, err := http.Get("http://" + b + "/readyz")
			if err == nil {
				resp.Body.Close()
			}
			p.ready[i].Store(err == nil && resp.StatusCode == 200)
		}
	}
	check()
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				check()
			}
		}
	}()
	return p
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	// With no replica ready (a backend outage), fail open as load balancers do: the replicas
	// answer 503 themselves.
	anyReady := false
	for i := range p.ready {
		anyReady = anyReady || p.ready[i].Load()
	}
	for range 2 * len(p.backends) {
		i := p.next.Add(1) % uint64(len(p.backends))
		if anyReady && !p.ready[i].Load() {
			continue
		}
		b := p.backends[i]
		out, _ := http.NewRequestWithContext(r.Context(), r.Method, "http://"+b+r.URL.RequestURI(), bytes.NewReader(body))
		out.Header = r.Header.Clone()
		out.Host = r.Host
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		out.Header.Set("X-Forwarded-For", host)
		resp, err := p.tr.RoundTrip(out)
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			continue // not listening (restarting): the next replica
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		resp.Body.Close()
		return
	}
	http.Error(w, "no replica answers", http.StatusBadGateway)
}

// pinned is an HTTP client that sends every request, whatever its URL's host (the external URL,
// which is the proxy), to one replica: a test says which replica handles each step.
func pinned(addr string, jar http.CookieJar) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}}}
}

func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func count(t *testing.T, db *sql.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func readAll(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(b)
}

// runQiao runs a qiao command line to its end.
func runQiao(bin string, env []string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
