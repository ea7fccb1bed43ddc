// Package cluster starts real `qiao serve` processes on one PostgreSQL and one Redis of their own
// (a temporary initdb cluster and a redis-server on free ports, so restarting them disturbs no
// other package's tests), behind a round-robin reverse proxy. test/scaleout proves scale-out with
// it; bench/scaleoutbench measures the same layout.
package cluster

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the pgx database/sql driver
)

// T is what the package needs of a *testing.T; Main provides it to a command.
type T interface {
	Helper()
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
	TempDir() string
	Failed() bool
}

// Main is a T for a command (a bench driver): Fatalf and Skipf print, run the cleanups and exit 1.
type Main struct {
	Name     string
	cleanups []func()
}

// Helper implements T.
func (m *Main) Helper() {}

// Fatalf implements T.
func (m *Main) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, m.Name+": "+format+"\n", args...)
	m.Close()
	os.Exit(1)
}

// Skipf implements T: a command has nothing to skip to, so it fails.
func (m *Main) Skipf(format string, args ...any) { m.Fatalf(format, args...) }

// Logf implements T.
func (m *Main) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

// Cleanup implements T.
func (m *Main) Cleanup(f func()) { m.cleanups = append(m.cleanups, f) }

// TempDir implements T.
func (m *Main) TempDir() string {
	dir, err := os.MkdirTemp("", m.Name+"-")
	if err != nil {
		m.Fatalf("temporary directory: %v", err)
	}
	m.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Failed implements T.
func (m *Main) Failed() bool { return false }

// Close runs the cleanups, last registered first.
func (m *Main) Close() {
	for i := len(m.cleanups) - 1; i >= 0; i-- {
		m.cleanups[i]()
	}
	m.cleanups = nil
}

// Required reports whether a missing PostgreSQL or redis-server fails instead of skipping: CI
// provides them.
func Required() bool { return os.Getenv("CI") != "" || os.Getenv("QIAO_REQUIRE_SCALEOUT") != "" }

func need(t T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if Required() {
		t.Fatalf("%s: %v (CI or QIAO_REQUIRE_SCALEOUT requires it)", what, err)
	}
	t.Skipf("%s: %v (set QIAO_REQUIRE_SCALEOUT=1 to fail instead)", what, err)
}

// FreePort is a loopback TCP port nobody listens on now.
func FreePort(t T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Eventually polls f until it holds, failing after a ceiling (not a measurement).
func Eventually(t T, what string, ceiling time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(ceiling)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", ceiling, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestKnobsTag is the build tag of a qiao binary whose job timing QIAO_TESTKNOBS may shorten
// (gateway/testknobs_on.go); production builds do not have it.
const TestKnobsTag = "qiao_testknobs"

// BuildQiao builds the binary into dir, with the build tags given.
func BuildQiao(t T, dir string, tags ...string) string {
	t.Helper()
	bin := filepath.Join(dir, "qiao")
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command builds qiao: %v", err)
	}
	args := []string{"build", "-o", bin}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.Command(goBin, append(args, "github.com/qiao-gateway/qiao/cmd/qiao")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build qiao: %v\n%s", err, out)
	}
	return bin
}

// ---- PostgreSQL: a cluster of its own

// Postgres is a temporary PostgreSQL cluster.
type Postgres struct {
	t          T
	bin, dir   string
	Port       int
	asPostgres bool // running as root: initdb refuses root, so the cluster runs as user postgres
}

func (p *Postgres) cmd(name string, args ...string) *exec.Cmd {
	path := filepath.Join(p.bin, name)
	if p.asPostgres {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

// StartPostgres creates a cluster with initdb and starts it; it is removed at cleanup.
func StartPostgres(t T) *Postgres {
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
		t.Fatalf("%v", err)
	}
	p := &Postgres{t: t, bin: filepath.Dir(bins[len(bins)-1]), dir: dir, Port: FreePort(t), asPostgres: os.Geteuid() == 0}
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
			t.Fatalf("%v", err)
		}
	}
	if out, err := p.cmd("initdb", "-D", filepath.Join(dir, "data"), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	p.Start()
	return p
}

// Start starts the server (again).
func (p *Postgres) Start() {
	p.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", p.Port, p.dir)
	if out, err := p.cmd("pg_ctl", "-D", filepath.Join(p.dir, "data"), "-l", filepath.Join(p.dir, "log"), "-o", opts, "-w", "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "log"))
		p.t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
}

// Stop stops the server (fast shutdown: clients are disconnected).
func (p *Postgres) Stop() {
	p.t.Helper()
	if out, err := p.cmd("pg_ctl", "-D", filepath.Join(p.dir, "data"), "-m", "fast", "-w", "stop").CombinedOutput(); err != nil {
		p.t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

// DSN is the server's postgres database.
func (p *Postgres) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.Port)
}

// ---- Redis of its own

// Redis is a redis-server without persistence.
type Redis struct {
	t    T
	dir  string
	Port int
	cmd  *exec.Cmd
}

// StartRedis starts a redis-server on a free port; it is stopped at cleanup.
func StartRedis(t T) *Redis {
	t.Helper()
	_, err := exec.LookPath("redis-server")
	need(t, "redis-server", err)
	r := &Redis{t: t, dir: t.TempDir(), Port: FreePort(t)}
	r.Start()
	t.Cleanup(func() { r.Stop() })
	return r
}

// Start starts the server (again) and waits until it answers PING.
func (r *Redis) Start() {
	r.t.Helper()
	// No persistence: the documented behaviour under test is that SSO sessions are lost when Redis
	// restarts without it.
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", r.dir)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("redis-server: %v", err)
	}
	Eventually(r.t, "redis answers", 20*time.Second, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.Port))
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

// Stop stops the server (SIGTERM) and waits for it.
func (r *Redis) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	_ = r.cmd.Wait()
	r.cmd = nil
}

// URL is the server's database 0.
func (r *Redis) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.Port) }

// ---- the replicas

// Replica is one `qiao serve` process.
type Replica struct {
	Name, Addr string
	Cmd        *exec.Cmd
	log        *bytes.Buffer
	mu         *sync.Mutex
	exited     chan struct{}
}

// Cluster is replicas of one binary and config behind a proxy.
type Cluster struct {
	T        T
	Bin, Cfg string
	Env      []string // QIAO_STORAGE, QIAO_STATE, QIAO_MASTER_KEY …
	Replicas []*Replica
	Proxy    *Proxy
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

// Options are what New needs.
type Options struct {
	Bin, Config string   // the binary, the config file
	Env         []string // the replicas' environment beyond the process's own
	Replicas    int
	ProxyAddr   string // where the proxy listens (the external URL's host); "" = no proxy
	KeepAlive   bool   // the proxy reuses connections to the replicas (NewProxy)
}

// New starts opt.Replicas replicas one after the other (each applies the config's enterprises at
// start), each with a data directory of its own beside the config (nothing is shared on disk),
// then the proxy. At cleanup every replica still running is killed, its log shown if t failed.
func New(t T, opt Options) *Cluster {
	t.Helper()
	c := &Cluster{T: t, Bin: opt.Bin, Cfg: opt.Config, Env: opt.Env}
	var addrs []string
	for i := range opt.Replicas {
		r := &Replica{Name: string(rune('a' + i)), Addr: "127.0.0.1:" + strconv.Itoa(FreePort(t))}
		c.Replicas = append(c.Replicas, r)
		addrs = append(addrs, r.Addr)
	}
	t.Cleanup(func() {
		for _, r := range c.Replicas {
			if r.Cmd != nil && r.Alive() {
				_ = r.Cmd.Process.Kill()
				<-r.exited
			}
			if t.Failed() && r.log != nil {
				t.Logf("replica %s log:\n%s", r.Name, r.LogText())
			}
		}
	})
	for _, r := range c.Replicas {
		c.Start(r)
	}
	if opt.ProxyAddr == "" {
		return c
	}
	pctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c.Proxy = NewProxy(pctx, addrs, opt.KeepAlive)
	srv := &http.Server{Addr: opt.ProxyAddr, Handler: c.Proxy}
	go func() { _ = srv.ListenAndServe() }()
	t.Cleanup(func() { srv.Close() })
	Eventually(t, "the proxy answers", 10*time.Second, func() bool {
		resp, err := http.Get("http://" + opt.ProxyAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	return c
}

// Start runs `qiao serve` for r and waits until it is ready.
func (c *Cluster) Start(r *Replica) {
	c.T.Helper()
	r.Cmd = exec.Command(c.Bin, "serve", "--config", c.Cfg, "--addr", r.Addr, "--data", filepath.Join(filepath.Dir(c.Cfg), r.Name))
	r.Cmd.Env = append(os.Environ(), c.Env...)
	if r.log == nil {
		r.log, r.mu = &bytes.Buffer{}, &sync.Mutex{}
	}
	fmt.Fprintf(lockedWriter{r.mu, r.log}, "---- start %s\n", time.Now().Format(time.TimeOnly+".000"))
	r.Cmd.Stdout, r.Cmd.Stderr = lockedWriter{r.mu, r.log}, lockedWriter{r.mu, r.log}
	if err := r.Cmd.Start(); err != nil {
		c.T.Fatalf("start replica %s: %v", r.Name, err)
	}
	r.exited = make(chan struct{})
	go func() { _ = r.Cmd.Wait(); close(r.exited) }()
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-r.exited:
			c.T.Fatalf("replica %s exited at start:\n%s", r.Name, r.LogText())
		default:
		}
		if resp, err := http.Get("http://" + r.Addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			c.T.Fatalf("replica %s not ready within 90 s:\n%s", r.Name, r.LogText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// LogText is what the replica wrote so far.
func (r *Replica) LogText() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.String()
}

// Alive reports whether the process still runs.
func (r *Replica) Alive() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// Pid is the process's id (a lease holder's name carries it).
func (r *Replica) Pid() int { return r.Cmd.Process.Pid }

// Stop sends SIGTERM and waits for the replica to drain and exit 0.
func (c *Cluster) Stop(r *Replica) {
	c.T.Helper()
	_ = r.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
		c.T.Fatalf("replica %s did not exit within 30 s of SIGTERM", r.Name)
	}
	if code := r.Cmd.ProcessState.ExitCode(); code != 0 {
		c.T.Fatalf("replica %s exited %d after SIGTERM:\n%s", r.Name, code, r.LogText())
	}
}

// Kill sends SIGKILL (nothing is drained or released) and waits for the process to end.
func (c *Cluster) Kill(r *Replica) {
	c.T.Helper()
	_ = r.Cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
		c.T.Fatalf("replica %s still runs 30 s after SIGKILL", r.Name)
	}
}

// ---- the load balancer: round robin, skipping a replica that refuses connections (as any load
// balancer does while one restarts); nothing else is retried.

// Proxy is the round-robin load balancer.
type Proxy struct {
	backends []string
	ready    []atomic.Bool // the last health check's answer, per backend
	next     atomic.Uint64
	tr       *http.Transport
}

// NewProxy balances over backends, checking each one's /readyz every 100 ms (as a load balancer's
// health check does) and sending only to those that answered 200. Without keepAlive every request
// has a connection of its own (a replica's shutdown can then never close a kept connection under a
// request the balancer cannot tell was not sent); with it (a benchmark) connections are reused,
// and those to a backend that stopped being ready are closed.
func NewProxy(ctx context.Context, backends []string, keepAlive bool) *Proxy {
	p := &Proxy{backends: backends, ready: make([]atomic.Bool, len(backends)),
		tr: &http.Transport{DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 256, ResponseHeaderTimeout: 30 * time.Second}}
	check := func() {
		for i, b := range backends {
			resp, err := http.Get("http://" + b + "/readyz")
			if err == nil {
				resp.Body.Close()
			}
			ok := err == nil && resp.StatusCode == 200
			if was := p.ready[i].Swap(ok); was && !ok {
				p.tr.CloseIdleConnections()
			}
		}
	}
	check()
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				p.tr.CloseIdleConnections()
				return
			case <-t.C:
				check()
			}
		}
	}()
	return p
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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

// Pinned is an HTTP client that sends every request, whatever its URL's host (the external URL,
// which is the proxy), to one replica: a test says which replica handles each step.
func Pinned(addr string, jar http.CookieJar) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}}}
}

// ---- a WeCom logon through the simulator

// Logon walks a browser's redirects from a start URL through a WeCom QR logon in the simulator.
type Logon struct {
	Before *http.Client // the requests before the person scans (they share one cookie jar)
	After  *http.Client // the platform's callback and everything after it
	SimURL string       // the WeCom simulator's base URL
	User   string       // who scans
	Stop   string       // a URL prefix where the walk ends (a client's redirect URI); "" = at the first non-redirect answer
}

// Walk follows redirects from u and returns where it stopped: the Stop URL, or the last answer
// that was not a redirect (its status and body).
func (l Logon) Walk(u string) (final string, status int, body string, err error) {
	client := l.Before
	sim := &http.Client{Jar: l.Before.Jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for hops := 0; l.Stop == "" || !strings.HasPrefix(u, l.Stop); hops++ {
		if hops > 15 {
			return u, 0, "", fmt.Errorf("redirect loop at %s", u)
		}
		cl := client
		if strings.HasPrefix(u, l.SimURL) {
			// WeCom: the person scans; the platform sends the browser back to the callback.
			u = strings.TrimSuffix(u, "#wechat_redirect") + "&sim_user=" + url.QueryEscape(l.User)
			cl = sim
			client = l.After
		}
		resp, err := cl.Get(u)
		if err != nil {
			return u, 0, "", err
		}
		b := ReadAll(resp)
		if resp.StatusCode < 300 || resp.StatusCode >= 400 {
			if l.Stop != "" {
				return u, resp.StatusCode, b, fmt.Errorf("%s: %d\n%s", u, resp.StatusCode, b)
			}
			return u, resp.StatusCode, b, nil
		}
		next, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			return u, resp.StatusCode, b, err
		}
		u = next.String()
	}
	return u, 0, "", nil
}

// ---- small helpers

// OpenDB opens dsn, closed at cleanup.
func OpenDB(t T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Count runs a query that returns one number.
func Count(t T, db *sql.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// ReadAll reads and closes a response's body.
func ReadAll(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(b)
}

// RunQiao runs a qiao command line to its end.
func RunQiao(bin string, env []string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
