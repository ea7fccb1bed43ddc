// Command all runs every load driver under bench/ and prints one table: the token endpoint
// (tokenbench) on SQLite + memory and, when given, PostgreSQL + Redis at two concurrencies, each
// grant beside the raw RS256 signing rate measured right after it; full syncs (syncbench) of both
// platforms on SQLite and, when given, PostgreSQL, without GOMEMLIMIT; departure-to-revocation
// latency with and during a running full sync (eventbench); SP-initiated SAML SSO (samlbench); with
// -scaleout, the token endpoint on one and three `qiao serve` replicas and departure-to-revocation
// across three (scaleoutbench).
// Each driver's own output goes to stderr as it runs; the table goes to stdout at the end.
//
//	go run ./bench/all -postgres 'postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' -redis redis://127.0.0.1:6379/0
//	go run ./bench/all -quick    # shorter runs and a 20k-user org: a smoke test of the drivers
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/qiao-gateway/qiao/bench/benchkit"
)

func main() {
	pg := flag.String("postgres", "", "a PostgreSQL server DSN (the drivers create a fresh database in it); empty: SQLite only")
	redis := flag.String("redis", "", "a Redis DSN for tokenbench's PostgreSQL runs (its keys are prefixed and expire)")
	dur := flag.Duration("d", 10*time.Second, "duration of each token and SAML measurement")
	users := flag.Int("users", 100000, "users in the synced organisation")
	quick := flag.Bool("quick", false, "3 s measurements, a 20k-user organisation")
	only := flag.String("only", "", "run only the drivers named (comma-separated: tokenbench,syncbench,eventbench,samlbench,scaleoutbench)")
	scaleout := flag.Bool("scaleout", false, "also run scaleoutbench: 1 and 3 `qiao serve` replicas on a PostgreSQL cluster and a Redis of its own (needs initdb and redis-server)")
	flag.Parse()
	if *quick {
		*dur, *users = 3*time.Second, 20000
	}
	if err := run(*pg, *redis, *dur, *users, *only, *scaleout); err != nil {
		fmt.Fprintln(os.Stderr, "bench/all:", err)
		os.Exit(1)
	}
}

func run(pg, redis string, dur time.Duration, users int, only string, scaleout bool) error {
	dir, err := os.MkdirTemp("", "qiao-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "rows.jsonl")
	want := func(driver string) bool { return only == "" || strings.Contains(","+only+",", ","+driver+",") }
	drivers := []string{"tokenbench", "syncbench", "eventbench", "samlbench"}
	if scaleout {
		drivers = append(drivers, "scaleoutbench")
	}
	for _, d := range drivers {
		if !want(d) {
			continue
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, d), "./bench/"+d)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build %s: %w", d, err)
		}
	}
	type job struct {
		driver string
		args   []string
	}
	var jobs []job
	if want("tokenbench") {
		for _, c := range []string{"32", "64"} {
			jobs = append(jobs, job{"tokenbench", []string{"-c", c, "-d", dur.String()}})
			if pg != "" && redis != "" {
				jobs = append(jobs, job{"tokenbench", []string{"-c", c, "-d", dur.String(), "-storage", pg, "-state", redis}})
			}
		}
		// The person's grants once more with ES256 ID tokens: what the stores cost without the
		// RSA signature in the way.
		if pg != "" && redis != "" {
			jobs = append(jobs, job{"tokenbench", []string{"-c", "32", "-d", dur.String(), "-storage", pg, "-state", redis, "-alg", "ES256", "-grants", "refresh_token"}})
		}
	}
	if want("syncbench") {
		for _, p := range []string{"wecom", "dingtalk"} {
			jobs = append(jobs, job{"syncbench", []string{"-platform", p, "-users", fmt.Sprint(users), "-storage", "sqlite"}})
			if pg != "" {
				jobs = append(jobs, job{"syncbench", []string{"-platform", p, "-users", fmt.Sprint(users), "-storage", pg}})
			}
		}
	}
	if want("eventbench") {
		jobs = append(jobs, job{"eventbench", []string{"-events", "1000", "-rate", "50", "-sync-users", fmt.Sprint(users), "-sync-events", "100"}})
	}
	if want("samlbench") {
		jobs = append(jobs, job{"samlbench", []string{"-c", "32", "-d", dur.String()}})
	}
	if scaleout && want("scaleoutbench") {
		jobs = append(jobs, job{"scaleoutbench", []string{"-c", "64", "-d", dur.String(), "-events", "200", "-rate", "20"}})
	}
	var failed []string
	var loads []string
	for _, j := range jobs {
		fmt.Fprintf(os.Stderr, "\n== %s %s\n", j.driver, strings.Join(j.args, " "))
		cmd := exec.Command(filepath.Join(dir, j.driver), j.args...)
		// No GOMEMLIMIT: the figures are the drivers' own.
		env := []string{"QIAO_BENCH_OUT=" + out}
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "GOMEMLIMIT=") && !strings.HasPrefix(kv, "QIAO_BENCH_OUT=") {
				env = append(env, kv)
			}
		}
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		before := loadAvg()
		if err := cmd.Run(); err != nil {
			failed = append(failed, fmt.Sprintf("%s %s: %v", j.driver, strings.Join(j.args, " "), err))
		}
		loads = append(loads, fmt.Sprintf("%s %s: %s → %s", j.driver, strings.Join(j.args, " "), before, loadAvg()))
	}

	f, err := os.Open(out)
	if err != nil && len(failed) == 0 {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "driver\tsetup\tmeasure\tfigure\tdetail\n")
	if f != nil {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var r benchkit.Row
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Driver, r.Setup, r.Name, r.Figure, r.Detail)
			}
		}
		f.Close()
	}
	w.Flush()
	fmt.Printf("\n%d CPUs; load average (1 min) before → after each run:\n  %s\n", runtime.NumCPU(), strings.Join(loads, "\n  "))
	if len(failed) > 0 {
		return fmt.Errorf("%d runs failed:\n  %s", len(failed), strings.Join(failed, "\n  "))
	}
	return nil
}

// loadAvg is the 1-minute load average (Linux), or "?".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}
