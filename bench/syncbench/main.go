// Command syncbench measures a full directory sync from a simulator: wall time, the sync
// process's peak RSS, API calls, and what a no-change re-sync writes. The simulator runs in a
// child process so the figures are the sync's own.
//
//	go run ./bench/syncbench -platform wecom -users 100000 -storage sqlite
//	go run ./bench/syncbench -platform dingtalk -users 100000 -storage postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/qiao-gateway/qiao/bench/benchkit"
	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/dirsync"
	"github.com/qiao-gateway/qiao/directory/sqlstore"
	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/connectors"
	"github.com/qiao-gateway/qiao/federation/dingtalk/dingtalksim"
	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
	"github.com/qiao-gateway/qiao/internal/pgtemp"
	"github.com/qiao-gateway/qiao/internal/secretbox"
	"github.com/qiao-gateway/qiao/internal/state"
)

func main() {
	platform := flag.String("platform", "wecom", "wecom or dingtalk")
	users := flag.Int("users", 100000, "users in the simulated org")
	storage := flag.String("storage", "sqlite", "sqlite, or a postgres:// DSN of a server (a fresh database is created)")
	limits := flag.Bool("limits", false, "published rate limits on (simulator and client)")
	simOnly := flag.String("sim", "", "internal: run only the simulator on this address")
	flag.StringVar(&memProfile, "memprofile", "", "write a heap profile when the apply starts")
	flag.StringVar(&resyncMemProfile, "resync-memprofile", "", "write a heap profile when the no-change re-sync's plan starts")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the full sync (the first run) to this file")
	resyncProfile := flag.String("resync-cpuprofile", "", "write a CPU profile of the no-change re-sync to this file")
	flag.Parse()
	cpuProfileFile, resyncProfileFile = *cpuProfile, *resyncProfile
	if *simOnly != "" {
		runSim(*platform, *users, *limits, *simOnly)
		return
	}
	if err := run(*platform, *users, *storage, *limits); err != nil {
		fmt.Fprintln(os.Stderr, "syncbench:", err)
		os.Exit(1)
	}
}

func runSim(platform string, users int, limits bool, addr string) {
	var h http.Handler
	var info any
	switch platform {
	case "wecom":
		s := wecomsim.NewSetup(users, 42, "127.0.0.1:8080")
		s.Config.RateLimits = limits
		h, info = wecomsim.New(s.Config), map[string]string{"corp_id": s.CorpID, "secret": s.Secret, "contact_secret": s.ContactSecret}
	default:
		s := dingtalksim.NewSetup(users, 42, "127.0.0.1:8080")
		s.Config.RateLimits = limits
		h, info = dingtalksim.New(s.Config), map[string]string{"corp_id": s.CorpID, "app_key": s.AppKey, "app_secret": s.AppSecret}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		panic(err)
	}
	b, _ := json.Marshal(info)
	fmt.Println(string(b))
	_ = http.Serve(ln, h)
}

var memProfile, resyncMemProfile, cpuProfileFile, resyncProfileFile string

// heapAt returns a progress function that writes a heap profile to *file at phase's first report
// (the phase starting), and clears *file.
func heapAt(phase string, file *string) func(dirsync.Progress) {
	return func(p dirsync.Progress) {
		if *file == "" || p.Phase != phase {
			return
		}
		f, err := os.Create(*file)
		if err != nil {
			return
		}
		runtime.GC()
		_ = pprof.WriteHeapProfile(f)
		f.Close()
		*file = ""
	}
}

func freeAddr() string {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	return ln.Addr().String()
}

// cpuSeconds is the user and system CPU time a process has used (pid 0: this one), from
// /proc/PID/stat; 0 when it cannot be read.
func cpuSeconds(pid int) float64 {
	name := "/proc/self/stat"
	if pid != 0 {
		name = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses and may hold spaces.
	_, rest, ok := strings.Cut(string(b), ") ")
	if !ok {
		return 0
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	var utime, stime float64
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	return (utime + stime) / 100 // USER_HZ is 100 on Linux
}

// peakRSS is VmHWM from /proc/self/status, in MiB.
func peakRSS() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(v), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}

func run(platform string, users int, storage string, limits bool) error {
	addr := freeAddr()
	cmd := exec.Command(os.Args[0], "-sim", addr, "-platform", platform, "-users", fmt.Sprint(users), fmt.Sprintf("-limits=%v", limits))
	cmd.Stderr = os.Stderr
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	var creds map[string]string
	if err := json.Unmarshal([]byte(line), &creds); err != nil {
		return err
	}
	base := "http://" + addr
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "syncbench-")
	defer os.RemoveAll(dir)
	dsn := "sqlite://" + filepath.Join(dir, "q.db")
	if strings.HasPrefix(storage, "postgres") {
		fresh, drop, err := pgtemp.Create(storage, "qiao_bench")
		if err != nil {
			return err
		}
		defer drop()
		dsn = fresh
	}
	box, _ := secretbox.New(bytes.Repeat([]byte{9}, 32))
	st, err := sqlstore.Open(ctx, dsn, box)
	if err != nil {
		return err
	}
	defer st.Close()
	_ = st.PutEnterprise(ctx, &directory.Enterprise{ID: "bench"})
	src := &directory.IdentitySource{EnterpriseID: "bench", ID: platform, Kind: directory.SourceKind(platform), Name: "bench-" + platform,
		Enabled: true, Sync: directory.DefaultSyncSettings()}
	src.Sync.DeleteUsers = 1 << 30
	rl := "off"
	if limits {
		rl = ""
	}
	if platform == "wecom" {
		src.Config = map[string]string{"corp_id": creds["corp_id"], "agent_id": "1000002", "api_base_url": base, "rate_limit": rl}
		src.Secrets = map[string]string{"secret": creds["secret"], "contact_secret": creds["contact_secret"]}
	} else {
		src.Config = map[string]string{"corp_id": creds["corp_id"], "app_key": creds["app_key"], "oapi_base_url": base, "api_base_url": base, "rate_limit": rl}
		src.Secrets = map[string]string{"app_secret": creds["app_secret"]}
	}
	if err := st.PutSource(ctx, src); err != nil {
		return err
	}
	eng := &dirsync.Engine{Store: st, State: state.NewMemory(), Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Open: func(ctx context.Context, s *directory.IdentitySource) (federation.DirectoryReader, error) {
			return connectors.Reader(string(s.Kind), s.Config, s.Secrets)
		}}
	start := time.Now()
	cpu0, sim0 := cpuSeconds(0), cpuSeconds(cmd.Process.Pid)
	stopCPU := benchkit.CPUProfile(cpuProfileFile)
	full, err := eng.Run(ctx, "bench", platform, dirsync.Options{Progress: heapAt("apply", &memProfile)})
	stopCPU()
	if err != nil {
		return err
	}
	// Only the task and the read's figures are kept: the plan of 100k creates would otherwise stay
	// live through the re-sync and count in its peak, as no caller of the engine keeps it.
	res := struct {
		Task *directory.SyncTask
		Info federation.ReadInfo
	}{full.Task, full.Info}
	full = nil
	wall := time.Since(start)
	cpu1, sim1 := cpuSeconds(0), cpuSeconds(cmd.Process.Pid)
	d, _ := st.ListDepartments(ctx, "bench", platform)
	fmt.Printf("platform %s, storage %s, users %d, rate limits %v\n", platform, strings.SplitN(dsn, ":", 2)[0], users, limits)
	fullPeak := peakRSS()
	// The calls the platform's API needs: WeCom reads all departments in one call and each
	// department's members in one; DingTalk reads each department's children and each child's
	// detail, and each department's members in pages of 100.
	least := len(d) + users/100 + 10
	if platform == "dingtalk" {
		least = 3*len(d) + users/100 + 10
	}
	fmt.Printf("full sync:      %s, %v, wall %.1fs, CPU %.1fs (simulator %.1fs), peak RSS %.0f MiB, API calls %d (departments %d; target ≤ %d)\n",
		res.Task.Status, res.Task.Counts, wall.Seconds(), cpu1-cpu0, sim1-sim0, fullPeak, res.Info.Calls, len(d), least)
	// Reset the high-water mark (Linux: clear_refs 5) so the re-sync's peak is its own.
	resetPeak := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	start = time.Now()
	stopCPU = benchkit.CPUProfile(resyncProfileFile)
	again, err := eng.Run(ctx, "bench", platform, dirsync.Options{Progress: heapAt("plan", &resyncMemProfile)})
	stopCPU()
	if err != nil {
		return err
	}
	againWall := time.Since(start)
	cpu2, sim2 := cpuSeconds(0), cpuSeconds(cmd.Process.Pid)
	recs, _ := st.ListSyncRecords(ctx, directory.RecordQuery{TaskID: again.Task.ID})
	againPeak := peakRSS()
	peakText := fmt.Sprintf("peak RSS %.0f MiB", againPeak)
	if !resetPeak {
		peakText = fmt.Sprintf("peak RSS of the process so far %.0f MiB", againPeak)
	}
	fmt.Printf("no-change sync: %s, %v, wall %.1fs, CPU %.1fs (simulator %.1fs), %s, directory rows written %d, records %d\n",
		again.Task.Status, again.Task.Counts, againWall.Seconds(), cpu2-cpu1, sim2-sim1, peakText, len(again.Plan.Depts)+len(again.Plan.Users), len(recs))
	storeName := map[bool]string{true: "PostgreSQL", false: "SQLite"}[strings.HasPrefix(dsn, "postgres")]
	limitsText := map[bool]string{true: "published rate limits", false: "no rate limits"}[limits]
	benchkit.EmitRow(benchkit.Row{Driver: "syncbench", Setup: fmt.Sprintf("%s, %s, %d users / %d departments, %s", platform, storeName, users, len(d), limitsText),
		Name: "full sync", Figure: fmt.Sprintf("%.1f s", wall.Seconds()),
		Detail: fmt.Sprintf("peak RSS %.0f MiB, %d API calls; no-change re-sync %.1f s (peak RSS then %.0f MiB), %d rows written", fullPeak, res.Info.Calls,
			againWall.Seconds(), againPeak, len(again.Plan.Depts)+len(again.Plan.Users))})
	return nil
}
