// Command provisionbench measures outbound provisioning into the WeCom simulator with the
// published rate limits on (upstream-apis.md §1.7: 10,000 calls/min per corp per API, enforced by
// the simulator and paced by the client): the initial push (a full reconcile) of a directory of
// N people in D departments — wall time, WeCom calls, the pushing process's peak RSS — then the
// latency from a local change (a committed rename) to its WeCom write (user/update arriving at
// the simulator), p50/p99. The simulator runs in a child process so the RSS is the pusher's.
//
//	go run ./bench/provisionbench -users 10000 -depts 500
//	go run ./bench/provisionbench -storage postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/provision"
	"github.com/qiao-gateway/qiao/directory/sqlstore"
	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/simorg"
	"github.com/qiao-gateway/qiao/federation/wecom"
	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
	"github.com/qiao-gateway/qiao/internal/pgtemp"
	"github.com/qiao-gateway/qiao/internal/secretbox"
)

func main() {
	users := flag.Int("users", 10000, "people in the local directory")
	depts := flag.Int("depts", 500, "departments in the local directory")
	changes := flag.Int("changes", 300, "local changes whose push latency is measured")
	storage := flag.String("storage", "sqlite", "sqlite, or a postgres:// DSN of a server (a fresh database is created)")
	limits := flag.Bool("limits", true, "published rate limits on (simulator and client)")
	simOnly := flag.String("sim", "", "internal: run only the simulator on this address")
	triggerCost := flag.Int("trigger-cost", 0, "instead: write this many people (and links, and a department each 20) in an enterprise without a target, while another has one and while none does (SQLite), and compare")
	flag.Parse()
	if *triggerCost > 0 {
		if err := measureTriggers(*triggerCost); err != nil {
			fmt.Fprintln(os.Stderr, "provisionbench:", err)
			os.Exit(1)
		}
		return
	}
	if *simOnly != "" {
		runSim(*simOnly, *limits)
		return
	}
	if err := run(*users, *depts, *changes, *storage, *limits); err != nil {
		fmt.Fprintln(os.Stderr, "provisionbench:", err)
		os.Exit(1)
	}
}

const corpID, contactSecret = "wwbench0000000001", "bench-contact-secret-0123456789abcdefghijkl"

// runSim serves an empty simulated corp and, at /_bench/updates, when each user/update arrived
// (by userid, Unix nanoseconds).
func runSim(addr string, limits bool) {
	sim := wecomsim.New(wecomsim.Config{CorpID: corpID, ContactSecret: contactSecret, RateLimits: limits, Org: simorg.New("基准企业")})
	var mu sync.Mutex
	arrived := map[string]int64{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_bench/updates", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_ = json.NewEncoder(w).Encode(arrived)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/cgi-bin/user/update" {
			at := time.Now().UnixNano()
			body, _ := io.ReadAll(r.Body)
			var b struct {
				UserID string `json:"userid"`
			}
			_ = json.Unmarshal(body, &b)
			mu.Lock()
			if _, seen := arrived[b.UserID]; !seen {
				arrived[b.UserID] = at
			}
			mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		sim.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ready")
	_ = http.Serve(ln, mux)
}

func freeAddr() string {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	return ln.Addr().String()
}

// peakRSS is VmHWM from /proc/self/status, in MiB.
func peakRSS() float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(v), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}

func run(nUsers, nDepts, nChanges int, storage string, limits bool) error {
	addr := freeAddr()
	cmd := exec.Command(os.Args[0], "-sim", addr, fmt.Sprintf("-limits=%v", limits))
	cmd.Stderr = os.Stderr
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Process.Kill()
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	base := "http://" + addr
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "provisionbench-")
	defer os.RemoveAll(dir)
	dsn := "sqlite://" + filepath.Join(dir, "q.db")
	if strings.HasPrefix(storage, "postgres") {
		fresh, drop, err := pgtemp.Create(storage, "qiao_provbench")
		if err != nil {
			return err
		}
		defer drop()
		dsn = fresh
	}
	box, _ := secretbox.New(bytes.Repeat([]byte{9}, secretbox.KeySize))
	st, err := sqlstore.Open(ctx, dsn, box)
	if err != nil {
		return err
	}
	defer st.Close()
	const ent = "bench"
	if err := st.PutEnterprise(ctx, &directory.Enterprise{ID: ent, Name: "Bench"}); err != nil {
		return err
	}
	if err := st.PutSource(ctx, &directory.IdentitySource{EnterpriseID: ent, ID: "local", Kind: directory.KindLocal, Name: "本地", Enabled: true, Sync: directory.DefaultSyncSettings()}); err != nil {
		return err
	}
	// The directory: departments in a tree 3 levels deep (parents first), people spread over them.
	fanout := 8
	ids := make([]string, nDepts)
	if err := st.InTx(ctx, func(tx directory.Store) error {
		for i := range nDepts {
			ids[i] = fmt.Sprint(i + 2)
			parent := ""
			if i >= fanout {
				parent = ids[(i-fanout)/fanout]
			}
			if err := tx.PutDepartment(ctx, &directory.Department{EnterpriseID: ent, SourceID: "local", UpstreamID: ids[i], ParentID: parent, Name: fmt.Sprintf("部门%04d", i)}); err != nil {
				return err
			}
		}
		for i := range nUsers {
			u := &directory.User{EnterpriseID: ent, Username: fmt.Sprintf("u%06d", i), Name: fmt.Sprintf("员工%06d", i), Email: fmt.Sprintf("u%06d@bench.example", i),
				Mobile: fmt.Sprintf("139%08d", i), Status: directory.UserActive}
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
			if err := tx.PutUserLink(ctx, &directory.UserLink{EnterpriseID: ent, SourceID: "local", UpstreamID: u.Username, UserID: u.ID, Departments: []string{ids[i%nDepts]}}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	rate := ""
	if !limits {
		rate = "off"
	}
	tgt := &directory.ProvisionTarget{EnterpriseID: ent, Kind: directory.KindWeCom, Enabled: true, AutoPush: true, Settings: directory.DefaultProvisionSettings(),
		Config: map[string]string{"corp_id": corpID, "api_base_url": base, "rate_limit": rate}, Secrets: map[string]string{"contact_secret": contactSecret}}
	if err := st.PutProvisionTarget(ctx, tgt); err != nil {
		return err
	}
	// The gateway's settings: the default poll (500 ms), the connector's client.
	svc := &provision.Service{Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Open: func(t *directory.ProvisionTarget) (federation.DirectoryWriter, error) {
			s, err := wecom.WriterSettings(t.Config, t.Secrets)
			if err != nil {
				return nil, err
			}
			return wecom.NewWriter(s)
		}}
	rssBefore := peakRSS()
	start := time.Now()
	task, err := svc.Reconcile(ctx, ent, provision.ReconcileOptions{Trigger: "initial"})
	if err != nil {
		return err
	}
	wall := time.Since(start)
	if task.Status != directory.TaskSucceeded || task.Reason != "" {
		return fmt.Errorf("initial push %s: %s %v", task.Status, task.Reason, task.Counts)
	}
	fmt.Printf("initial push: %d people in %d departments, %s, %d WeCom calls (%v), peak RSS %.0f MiB (%.0f MiB before the push), storage %s, rate limits %v\n",
		nUsers, nDepts, wall.Round(time.Millisecond), task.Calls, task.Counts, peakRSS(), rssBefore, strings.SplitN(dsn, ":", 2)[0], limits)

	// Latency: renames committed one by one, each pushed by the outbox worker.
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { svc.RunOutbox(wctx); close(done) }()
	defer func() { cancel(); <-done }()
	list, err := st.ListUsers(ctx, ent, "", nChanges)
	if err != nil {
		return err
	}
	changed := map[string]time.Time{}
	for _, u := range list {
		u.Name += "改"
		if err := st.UpdateUser(ctx, u); err != nil {
			return err
		}
		changed[u.Username] = time.Now()
		time.Sleep(10 * time.Millisecond)
	}
	deadline := time.Now().Add(2 * time.Minute)
	var arrived map[string]int64
	for {
		resp, err := http.Get(base + "/_bench/updates")
		if err != nil {
			return err
		}
		arrived = map[string]int64{}
		_ = json.NewDecoder(resp.Body).Decode(&arrived)
		resp.Body.Close()
		n := 0
		for id := range changed {
			if _, ok := arrived[id]; ok {
				n++
			}
		}
		if n == len(changed) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d changes reached WeCom in 2 minutes", n, len(changed))
		}
		time.Sleep(50 * time.Millisecond)
	}
	var lat []time.Duration
	for id, at := range changed {
		lat = append(lat, time.Unix(0, arrived[id]).Sub(at))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))].Round(time.Millisecond) }
	fmt.Printf("local change → WeCom write: %d renames, p50 %s, p99 %s, max %s (the worker polls every 500 ms)\n", len(lat), q(0.5), q(0.99), lat[len(lat)-1].Round(time.Millisecond))
	return nil
}

// measureTriggers writes n people into an enterprise without a provisioning target twice — while
// another enterprise has one (the outbox triggers exist: each write probes provision_targets) and
// while none does (no triggers) — and prints the two times.
func measureTriggers(n int) error {
	ctx := context.Background()
	box, _ := secretbox.New(bytes.Repeat([]byte{9}, secretbox.KeySize))
	write := func(drop bool) (time.Duration, error) {
		dir, _ := os.MkdirTemp("", "provisionbench-trig-")
		defer os.RemoveAll(dir)
		file := filepath.Join(dir, "q.db")
		st, err := sqlstore.Open(ctx, "sqlite://"+file, box)
		if err != nil {
			return 0, err
		}
		defer st.Close()
		if !drop {
			// Another enterprise provisions: the triggers exist (they are dropped while no
			// enterprise has a target).
			if err := st.PutEnterprise(ctx, &directory.Enterprise{ID: "other", Name: "Other"}); err != nil {
				return 0, err
			}
			if err := st.PutProvisionTarget(ctx, &directory.ProvisionTarget{EnterpriseID: "other", Kind: directory.KindWeCom, Enabled: true, AutoPush: true,
				Settings: directory.DefaultProvisionSettings()}); err != nil {
				return 0, err
			}
		}
		if err := st.PutEnterprise(ctx, &directory.Enterprise{ID: "e", Name: "E"}); err != nil {
			return 0, err
		}
		if err := st.PutSource(ctx, &directory.IdentitySource{EnterpriseID: "e", ID: "local", Kind: directory.KindLocal, Name: "本地", Enabled: true, Sync: directory.DefaultSyncSettings()}); err != nil {
			return 0, err
		}
		start := time.Now()
		err = st.InTx(ctx, func(tx directory.Store) error {
			for i := range n {
				if i%20 == 0 {
					if err := tx.PutDepartment(ctx, &directory.Department{EnterpriseID: "e", SourceID: "local", UpstreamID: fmt.Sprint(i + 2), Name: "部门"}); err != nil {
						return err
					}
				}
				u := &directory.User{EnterpriseID: "e", Username: fmt.Sprintf("u%07d", i), Name: "员工", Status: directory.UserActive}
				if err := tx.CreateUser(ctx, u); err != nil {
					return err
				}
				if err := tx.PutUserLink(ctx, &directory.UserLink{EnterpriseID: "e", SourceID: "local", UpstreamID: u.Username, UserID: u.ID, Departments: []string{"2"}}); err != nil {
					return err
				}
				u.Name = "员工改"
				if err := tx.UpdateUser(ctx, u); err != nil {
					return err
				}
			}
			return nil
		})
		return time.Since(start), err
	}
	var with, without []time.Duration
	for range 3 { // alternate, best of three each: the machine is shared
		w, err := write(false)
		if err != nil {
			return err
		}
		wo, err := write(true)
		if err != nil {
			return err
		}
		with, without = append(with, w), append(without, wo)
	}
	best := func(ds []time.Duration) time.Duration { return slices.Min(ds) }
	fmt.Printf("%d people (insert, link, update) and %d departments in one transaction, enterprise without a target, SQLite, best of 3: another enterprise provisioning (triggers) %s, none (no triggers) %s (%+.1f%%)\n",
		n, (n+19)/20, best(with).Round(time.Millisecond), best(without).Round(time.Millisecond), 100*(best(with).Seconds()/best(without).Seconds()-1))
	return nil
}
