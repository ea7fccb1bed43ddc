// Package benchkit is what the load drivers under bench/ share: a signed-in browser and a
// fixed-duration, fixed-concurrency measurement.
package benchkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qiao-gateway/qiao/demo"
	"github.com/qiao-gateway/qiao/gateway"
	"github.com/qiao-gateway/qiao/internal/config"
)

// Demo is the demo enterprise's gateway serving on a loopback port, without the simulators (its
// people sign in with the local source's password), its sync scheduler off.
type Demo struct {
	GW     *gateway.Gateway
	Config *config.Config
	Base   string // http://127.0.0.1:PORT
	Creds  *demo.Credentials
	close  func()
}

// StartDemo starts a Demo; tweak, if not nil, changes the config first (storage, extra SPs ...).
func StartDemo(name string, tweak func(*config.Config)) (*Demo, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	dir, _ := os.MkdirTemp("", name+"-")
	fail := func(err error) (*Demo, error) {
		ln.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	cfg, creds, err := demo.Config(ln.Addr().String(), dir, "pw", nil)
	if err != nil {
		return fail(err)
	}
	off := false
	cfg.SyncScheduler = &off
	cfg.Log.Level = "error"
	if tweak != nil {
		tweak(cfg)
	}
	gw, err := gateway.New(context.Background(), cfg, gateway.NewLogger(cfg))
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go gw.Serve(ctx, ln)
	return &Demo{GW: gw, Config: cfg, Base: "http://" + ln.Addr().String(), Creds: creds,
		close: func() { cancel(); gw.Close(); os.RemoveAll(dir) }}, nil
}

// Close stops the gateway and removes its data.
func (d *Demo) Close() { d.close() }

// Browser is a client with its own cookie jar that does not follow redirects.
func Browser(tr http.RoundTripper) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// PasswordLogin signs zhangsan in to enterprise demo through its local source, with c's cookie
// jar keeping the SSO session.
func PasswordLogin(c *http.Client, base, pw string) error {
	resp, err := c.Get(base + "/login/e/demo/s/local")
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfRe.FindSubmatch(b)
	if m == nil {
		return fmt.Errorf("no login form at %s (%s)", resp.Request.URL, resp.Status)
	}
	resp, err = c.PostForm(base+"/login/e/demo/s/local/password", url.Values{"csrf": {string(m[1])}, "username": {"zhangsan"}, "password": {pw}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return fmt.Errorf("password login: %s", resp.Status)
	}
	return nil
}

// Result is one measurement.
type Result struct {
	Name string
	N    int64
	Errs int64
	Lat  []time.Duration
	Wall time.Duration
	Note string // printed after the figures
}

// Rate is operations per second.
func (r Result) Rate() float64 { return float64(r.N) / r.Wall.Seconds() }

func (r Result) String() string {
	slices.Sort(r.Lat)
	p := func(q float64) time.Duration {
		if len(r.Lat) == 0 {
			return 0
		}
		return r.Lat[int(q*float64(len(r.Lat)-1))].Round(10 * time.Microsecond)
	}
	s := fmt.Sprintf("%-22s %8.0f/s  p50 %-8v p99 %-8v (%d ok, %d errors)", r.Name, r.Rate(), p(0.5), p(0.99), r.N, r.Errs)
	if r.Note != "" {
		s += "  " + r.Note
	}
	return s
}

// ErrDone stops a worker early (its input ran out).
var ErrDone = errors.New("done")

// Measure runs op from conc workers (op gets the worker's index) for dur.
func Measure(name string, conc int, dur time.Duration, op func(w int) error) Result {
	var n, errs atomic.Int64
	lats := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(dur)
	var firstErr atomic.Value
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for time.Now().Before(deadline) {
				t0 := time.Now()
				err := op(w)
				if errors.Is(err, ErrDone) {
					return
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				lats[w] = append(lats[w], time.Since(t0))
				n.Add(1)
			}
		}(w)
	}
	wg.Wait()
	wall := time.Since(start)
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "%s: first error: %v\n", name, e)
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return Result{Name: name, N: n.Load(), Errs: errs.Load(), Lat: all, Wall: wall}
}

// Row is one line of the table bench/all prints.
type Row struct {
	Driver string `json:"driver"`
	Setup  string `json:"setup"` // storage, state, concurrency ...
	Name   string `json:"name"`
	Figure string `json:"figure"` // the headline figure
	Detail string `json:"detail"`
}

// Setup describes the run for the rows Emit writes (bench/all reads it).
var Setup string

// EmitRow appends row to the file $QIAO_BENCH_OUT names, as a JSON line, when it is set.
func EmitRow(row Row) {
	path := os.Getenv("QIAO_BENCH_OUT")
	if path == "" {
		return
	}
	if row.Setup == "" {
		row.Setup = Setup
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchkit:", err)
		return
	}
	defer f.Close()
	b, _ := json.Marshal(row)
	_, _ = f.Write(append(b, '\n'))
}

// Emit is EmitRow for a measurement: its rate, latencies and errors, and the raw RS256 signing
// rate measured beside it (0: none).
func Emit(driver string, r Result, signRate float64) {
	lat := slices.Clone(r.Lat)
	slices.Sort(lat)
	p := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(q*float64(len(lat)-1))].Round(100 * time.Microsecond)
	}
	detail := fmt.Sprintf("p50 %v, p99 %v, %d errors", p(0.5), p(0.99), r.Errs)
	if signRate > 0 {
		detail += fmt.Sprintf("; raw RS256 sign %.0f/s, ratio %.2f", signRate, r.Rate()/signRate)
	}
	if r.Note != "" {
		detail += "; " + r.Note
	}
	EmitRow(Row{Driver: driver, Name: r.Name, Figure: fmt.Sprintf("%.0f/s", r.Rate()), Detail: detail})
}

// CPUProfile starts a CPU profile into file (nothing when file is empty) and returns what stops
// it; a profile that cannot start is reported on stderr and the run goes on without it.
func CPUProfile(file string) (stop func()) {
	if file == "" {
		return func() {}
	}
	f, err := os.Create(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cpu profile:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "cpu profile:", err)
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
