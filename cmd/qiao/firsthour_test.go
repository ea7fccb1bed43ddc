package main

// What a new user meets in the first hour at the command line (issue 16): read-only commands that
// create nothing and refuse typos, URLs of the running gateway, counts in words, one line per error,
// config errors naming the key, a start that fails creating nothing, SIGHUP reload, the container's
// external URL and healthcheck.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
)

// cli runs one command and returns its exit status, stdout and stderr.
func cli(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := runMain(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// oneLine fails unless stderr is one line, human, not a JSON log record.
func oneLine(t *testing.T, what, stderr string) {
	t.Helper()
	if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "qiao: ") || strings.Contains(stderr, `{"time"`) {
		t.Errorf("%s: stderr is not one line:\n%s", what, stderr)
	}
}

func mustNotExist(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s was created (%v)", path, err)
	}
}

func TestReadOnlyCommandsCreateNothingAndRefuseTypos(t *testing.T) {
	dir := t.TempDir()
	typo := filepath.Join(dir, "typo")
	for _, args := range [][]string{
		{"sources", "--data", typo, "--enterprise", "acme"},
		{"apps", "--data", typo, "--enterprise", "acme"},
		{"enterprises", "--data", typo},
		{"sync", "tasks", "--data", typo, "--enterprise", "acme"},
		{"sync", "records", "--data", typo, "--task", "x"},
	} {
		code, _, stderr := cli(args...)
		if code != 1 || !strings.Contains(stderr, "no data directory "+typo) {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
		oneLine(t, strings.Join(args, " "), stderr)
		mustNotExist(t, typo)
	}
	// An existing directory where nothing was set up: refused too, nothing written into it.
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o700)
	if code, _, stderr := cli("enterprises", "--data", empty); code != 1 || !strings.Contains(stderr, "nothing has been set up") {
		t.Errorf("enterprises in an empty directory: exit %d, stderr %q", code, stderr)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("a read-only command wrote %d entries into an empty data directory", len(entries))
	}

	data := filepath.Join(dir, "data")
	cfg := writeConfig(t, dir, `enterprises:
  - id: acme
    name: Acme 科技
    sources:
      - id: staff
        kind: local
    clients:
      - id: intranet
        type: web
        secret: intranet-secret
        redirect_uris: ["https://intranet.acme.example/cb"]
    users:
      - username: zhangsan
        name: 张三
      - username: lisi
  - id: beta
`)
	if code, out, stderr := cli("enterprises", "--config", cfg, "--data", data); code != 1 {
		t.Fatalf("enterprises before apply: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, stderr := cli("apply", "--config", cfg, "--data", data); code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr := cli("enterprises", "--data", data)
	if code != 0 {
		t.Fatalf("enterprises: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ENTERPRISE") {
		t.Fatalf("enterprises:\n%s", out)
	}
	for _, want := range []struct {
		line   string
		fields []string
	}{{lines[1], []string{"acme", "config", "file", "1", "1", "0", "2", "Acme", "科技"}}, {lines[2], []string{"beta", "config", "file", "0", "0", "0", "0", "beta"}}} {
		if got := strings.Fields(want.line); strings.Join(got, " ") != strings.Join(want.fields, " ") {
			t.Errorf("enterprises row %q, want fields %q", want.line, want.fields)
		}
	}
	// Unknown IDs are errors, in one line, exit 1 — not empty tables.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"sources", "--enterprise", "acme-typo"}, `no enterprise "acme-typo"`},
		{[]string{"apps", "--enterprise", "acme-typo"}, "acme-typo"},
		{[]string{"sync", "tasks", "--enterprise", "acme-typo"}, `no enterprise "acme-typo"`},
		{[]string{"sync", "tasks", "--enterprise", "acme", "--source", "nope"}, `no source "nope" in enterprise acme`},
		{[]string{"sync", "records", "--task", "no-such-task"}, `no sync task "no-such-task"`},
	} {
		code, out, stderr := cli(append(tc.args, "--data", data)...)
		if code != 1 || !strings.Contains(stderr, tc.want) || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 1 and %q", tc.args, code, out, stderr, tc.want)
		}
		oneLine(t, strings.Join(tc.args, " "), stderr)
	}
	if code, out, _ := cli("sync", "tasks", "--data", data, "--enterprise", "acme"); code != 0 || out != "no sync task yet\n" {
		t.Errorf("sync tasks of an enterprise with none: exit %d %q", code, out)
	}
}

// qiao sources and qiao apps show the URLs of the gateway serving from the data directory, whatever
// the configuration they were given (none here): no false PROBLEM about the callback domain.
func TestSourcesAndAppsShowTheRunningGatewaysURLs(t *testing.T) {
	ws := wecomsim.NewSetup(10, 5, "sso.acme.example")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	// The secrets by reference, as a committed config.yaml would hold them.
	t.Setenv("TEST_WECOM_SECRET", ws.Secret)
	if err := os.WriteFile(filepath.Join(dir, "contact.secret"), []byte(ws.ContactSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, fmt.Sprintf(`external_url: https://sso.acme.example
enterprises:
  - id: acme
    sources:
      - id: wecom
        kind: wecom
        config: {corp_id: %s, agent_id: "1000002", api_base_url: "http://127.0.0.1:9", callback_domain: sso.acme.example}
        secrets:
          secret: ${TEST_WECOM_SECRET}
          contact_secret_file: contact.secret
`, ws.CorpID))
	_, stop := startServe(t, "--config", cfg, "--data", data)
	stop() // what it recorded stays: the URLs are those it served with

	code, out, stderr := cli("sources", "--data", data, "--enterprise", "acme", "--reveal")
	if code != 0 {
		t.Fatalf("sources: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"external URL https://sso.acme.example (recorded by qiao serve",
		"login callback     https://sso.acme.example/e/acme/sources/wecom/callback",
		"callback domain    sso.acme.example", "event callback     https://sso.acme.example/e/acme/sources/wecom/events",
		"secret             " + ws.Secret, "contact_secret     " + ws.ContactSecret} {
		if !strings.Contains(out, want) {
			t.Errorf("sources lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "PROBLEM") || strings.Contains(out, "127.0.0.1:8080") {
		t.Errorf("sources shows the defaults' URLs or a false problem:\n%s", out)
	}
	// A configuration that says otherwise: the gateway's URLs still, and a note.
	other := filepath.Join(dir, "other.yaml")
	os.WriteFile(other, []byte("external_url: https://elsewhere.example\n"), 0o600)
	code, out, stderr = cli("sources", "--config", other, "--data", data, "--enterprise", "acme")
	if code != 0 || !strings.Contains(out, "note: this command's configuration says https://elsewhere.example; the URLs below are the gateway's") ||
		strings.Contains(out, "PROBLEM") || !strings.Contains(out, "https://sso.acme.example/e/acme/sources/wecom/events") {
		t.Errorf("sources with another configuration: exit %d\n%s%s", code, out, stderr)
	}
	// A typo in the enterprise of qiao sync creates nothing either.
	if code, _, stderr := cli("sync", "--data", data, "--enterprise", "acme", "--source", "wecon"); code != 1 || !strings.Contains(stderr, `no source "wecon"`) {
		t.Errorf("sync of an unknown source: exit %d %q", code, stderr)
	}
	if code, _, stderr := cli("sync", "--data", filepath.Join(dir, "typo"), "--enterprise", "acme", "--source", "wecom"); code != 1 || !strings.Contains(stderr, "no data directory") {
		t.Errorf("sync with a mistyped --data: exit %d %q", code, stderr)
	}
	mustNotExist(t, filepath.Join(dir, "typo"))
	code, out, stderr = cli("apps", "--data", data, "--enterprise", "acme")
	if code != 0 || !strings.Contains(out, "issuer             https://sso.acme.example/e/acme") {
		t.Errorf("apps: exit %d\n%s%s", code, out, stderr)
	}
}

// Counts are words; an upstream that cannot be reached is one line naming it and why; nothing a
// command prints on stderr is a JSON log record.
func TestSyncOfAnUnreachableUpstreamIsOneLine(t *testing.T) {
	ws := wecomsim.NewSetup(10, 5, "127.0.0.1:8080")
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // connection refused from now on
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg := writeConfig(t, dir, fmt.Sprintf(`enterprises:
  - id: acme
    sources:
      - id: wecom
        kind: wecom
        config: {corp_id: %s, agent_id: "1000002", api_base_url: %s}
        secrets: {secret: %s, contact_secret: %s}
`, ws.CorpID, deadURL, ws.Secret, ws.ContactSecret))
	if code, out, stderr := cli("apply", "--config", cfg, "--data", data); code != 0 || stderr != "" {
		t.Fatalf("apply: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr := cli("sync", "--config", cfg, "--data", data, "--enterprise", "acme", "--source", "wecom")
	if code != 1 {
		t.Fatalf("sync of an unreachable upstream: exit %d\n%s%s", code, out, stderr)
	}
	// The progress lines go to stderr too; the error is the one line that starts with "qiao:".
	var errLines []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if strings.Contains(l, `{"time"`) || strings.Contains(l, "level=") {
			t.Errorf("a log record on a command's stderr: %s", l)
		}
		if strings.HasPrefix(l, "qiao: ") {
			errLines = append(errLines, l)
		}
	}
	if len(errLines) != 1 || !strings.Contains(errLines[0], deadURL+"/cgi-bin/gettoken unreachable after 6 attempts") ||
		!strings.Contains(errLines[0], "connection refused") || strings.Contains(errLines[0], ws.Secret) {
		t.Fatalf("error lines %q (want one naming %s/cgi-bin/gettoken and the cause, without the secret)", errLines, deadURL)
	}
}

func TestFormatCounts(t *testing.T) {
	for _, tc := range []struct {
		in   map[string]int
		want string
	}{
		{map[string]int{"update": 1, "create": 209}, "created 209, updated 1"},
		{map[string]int{"error": 2, "unchanged": 5, "delete": 0, "move": 3, "skip": 1}, "moved 3, unchanged 5, skipped 1, errors 2"},
		{map[string]int{"delete": 4, "zzz": 1}, "deleted 4, zzz 1"},
		{map[string]int{}, "no changes"},
		{nil, "no changes"},
	} {
		if got := formatCounts(tc.in); got != tc.want {
			t.Errorf("formatCounts(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Config and start-up errors: one line, the key named, and a start that fails creates nothing.
func TestStartErrorsAreOneLineAndCreateNothing(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")

	cfg := writeConfig(t, dir, "session_idle: 8 hours\n")
	code, _, stderr := cli("serve", "--config", cfg, "--addr", freeAddr(t), "--data", data)
	if code != 2 || !strings.Contains(stderr, `session_idle: "8 hours" is not a duration`) {
		t.Errorf("session_idle: 8 hours: exit %d, stderr %q", code, stderr)
	}
	oneLine(t, "bad duration", stderr)
	mustNotExist(t, data)

	t.Setenv("APP_SECRET_UNSET", "")
	cfg = writeConfig(t, dir, "enterprises:\n  - id: acme\n    clients:\n      - id: app\n        type: web\n        secret: ${APP_SECRET_UNSET}\n")
	code, _, stderr = cli("serve", "--config", cfg, "--addr", freeAddr(t), "--data", data)
	if code != 2 || !strings.Contains(stderr, "enterprises[0].clients[0].secret: refers to the environment variable ${APP_SECRET_UNSET}, which is not set") {
		t.Errorf("unset secret variable: exit %d, stderr %q", code, stderr)
	}
	mustNotExist(t, data)

	// A port in use: nothing created in a new data directory.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, _, stderr = cli("serve", "--addr", ln.Addr().String(), "--data", data)
	if code != 1 || !strings.Contains(stderr, "cannot listen on "+ln.Addr().String()+": bind: address already in use: choose another address") {
		t.Errorf("port in use: exit %d, stderr %q", code, stderr)
	}
	oneLine(t, "port in use", stderr)
	mustNotExist(t, data)

	// An unreachable Redis: one line (no client log lines first), nothing created.
	t.Setenv("QIAO_STATE", "redis://127.0.0.1:1/0")
	code, _, stderr = cli("serve", "--addr", freeAddr(t), "--data", data)
	if code != 1 || !strings.Contains(stderr, "the state store does not answer") {
		t.Errorf("unreachable Redis: exit %d, stderr %q", code, stderr)
	}
	oneLine(t, "unreachable Redis", stderr)
	mustNotExist(t, data)
	t.Setenv("QIAO_STATE", "memory")

	// A data directory that cannot be written: said so, not advice about the master key.
	ro := "/sys" // not writable even by root
	if os.Getuid() != 0 {
		ro = filepath.Join(dir, "readonly")
		os.Mkdir(ro, 0o500)
	}
	code, _, stderr = cli("serve", "--addr", freeAddr(t), "--data", ro)
	if code != 1 || !strings.Contains(stderr, "the data directory "+ro+" is not writable") || strings.Contains(stderr, "master") {
		t.Errorf("unwritable data directory: exit %d, stderr %q", code, stderr)
	}
	oneLine(t, "unwritable data directory", stderr)
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	code, _, stderr = cli("serve", "--addr", freeAddr(t), "--data", filepath.Join(file, "data"))
	if code != 1 || !strings.Contains(stderr, "cannot create the data directory") || strings.Contains(stderr, "master") {
		t.Errorf("data directory under a file: exit %d, stderr %q", code, stderr)
	}
}

// The container sets QIAO_ADDR=0.0.0.0:8080: without an external URL the issuer would be
// http://0.0.0.0:8080, so serve refuses in one line before creating anything.
func TestUnspecifiedExternalHostIsRefused(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	t.Setenv("QIAO_ADDR", "0.0.0.0:"+port)
	code, _, stderr := cli("serve", "--data", data)
	if code != 2 || !strings.Contains(stderr, "external_url") || !strings.Contains(stderr, "http://0.0.0.0:"+port) || !strings.Contains(stderr, "QIAO_EXTERNAL_URL") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	oneLine(t, "unspecified external host", stderr)
	mustNotExist(t, data)
	// With QIAO_EXTERNAL_URL it serves, and healthcheck (same environment) finds it on loopback.
	t.Setenv("QIAO_EXTERNAL_URL", "http://127.0.0.1:"+port)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- runMain(ctx, []string{"serve", "--data", data}, &bytes.Buffer{}, &syncBuffer{}) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out, stderr := cli("healthcheck")
		if code == 0 {
			if out != "ready: http://127.0.0.1:"+port+"/readyz\n" {
				t.Fatalf("healthcheck said %q", out)
			}
			break
		}
		if code != 1 || !strings.Contains(stderr, "not ready") {
			t.Fatalf("healthcheck: exit %d, stderr %q", code, stderr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthcheck never succeeded: %s", stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestHealthcheck(t *testing.T) {
	base, stop := startServe(t, "--data", filepath.Join(t.TempDir(), "data"))
	addr := strings.TrimPrefix(base, "http://")
	if code, out, stderr := cli("healthcheck", "--addr", addr); code != 0 || out != "ready: "+base+"/readyz\n" {
		t.Fatalf("healthcheck of a ready gateway: exit %d %q %q", code, out, stderr)
	}
	stop()
	code, out, stderr := cli("healthcheck", "--addr", addr)
	if code != 1 || out != "" || !strings.Contains(stderr, "not ready: "+base+"/readyz") || !strings.Contains(stderr, "connection refused") {
		t.Fatalf("healthcheck of a stopped gateway: exit %d %q %q", code, out, stderr)
	}
	oneLine(t, "healthcheck", stderr)
}

// Each command shows only the flags it uses.
func TestCommandsShowOnlyTheFlagsTheyUse(t *testing.T) {
	for _, tc := range []struct {
		cmd      []string
		has, not []string
	}{
		{[]string{"version"}, nil, []string{"--addr", "--config", "--data"}},
		{[]string{"hash-password"}, nil, []string{"--addr", "--config", "--data"}},
		{[]string{"sim"}, []string{"--addr"}, []string{"--config", "--data"}},
		{[]string{"serve"}, []string{"--addr", "--config", "--data", "--force"}, nil},
		{[]string{"demo"}, []string{"--addr", "--data"}, []string{"--config"}},
		{[]string{"healthcheck"}, []string{"--addr", "--config"}, []string{"--data"}},
		{[]string{"sources"}, []string{"--config", "--data"}, []string{"--addr"}},
		{[]string{"sources", "close"}, []string{"--config", "--data"}, []string{"--addr"}},
		{[]string{"apps", "disable"}, []string{"--config", "--data"}, []string{"--addr"}},
		{[]string{"sync", "records"}, []string{"--config", "--data"}, []string{"--addr"}},
		{[]string{"keys", "list"}, []string{"--config", "--data"}, []string{"--addr"}},
		{[]string{"enterprises"}, []string{"--config", "--data"}, []string{"--addr"}},
		{[]string{"apply"}, []string{"--config", "--data"}, []string{"--addr"}},
	} {
		code, out, stderr := cli(append(tc.cmd, "--help")...)
		if code != 0 {
			t.Errorf("%v --help: exit %d %s", tc.cmd, code, stderr)
		}
		for _, f := range tc.has {
			if !strings.Contains(out, f+" ") {
				t.Errorf("%v --help lacks %s:\n%s", tc.cmd, f, out)
			}
		}
		for _, f := range tc.not {
			if strings.Contains(out, f+" ") {
				t.Errorf("%v --help shows %s, which it ignores:\n%s", tc.cmd, f, out)
			}
		}
	}
	if code, _, stderr := cli("version", "--data", "x"); code != 1 || !strings.Contains(stderr, "unknown flag: --data") {
		t.Errorf("version --data: exit %d %q", code, stderr)
	}
}

// SIGHUP applies the config file again; a bad file changes nothing and is reported in the log.
func TestSIGHUPReloadsTheConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "enterprises:\n  - id: acme\n")
	base, _, log := startServeLog(t, "--config", cfg, "--data", filepath.Join(dir, "data"), "--force")
	// The enterprise's JWKS: served after a look in the store (the OpenID Provider caches
	// enterprises for a few seconds).
	status := func(ent string) int {
		t.Helper()
		resp, err := http.Get(base + "/e/" + ent + "/keys")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	hup := func() {
		t.Helper()
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	// waitLog waits for the n-th log line containing s.
	waitLog := func(s string, n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(log.String(), s) < n {
			if time.Now().After(deadline) {
				t.Fatalf("no %d× %q in the log within 10 s:\n%s", n, s, log.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if status("acme") != 200 || status("beta") != 404 {
		t.Fatalf("before reload: acme %d, beta %d", status("acme"), status("beta"))
	}

	// beta added, acme removed (serve runs with --force), and a setting that takes a restart.
	writeConfig(t, dir, "session_idle: 4h\nenterprises:\n  - id: beta\n")
	hup()
	waitLog(`"msg":"config reloaded"`, 1)
	if status("beta") != 200 || status("acme") != 404 {
		t.Fatalf("after reload: acme %d, beta %d\n%s", status("acme"), status("beta"), log.String())
	}
	if !strings.Contains(log.String(), `"keys":"session_idle"`) || !strings.Contains(log.String(), "take effect only at the next start") {
		t.Errorf("the log does not say session_idle takes a restart:\n%s", log.String())
	}

	// A file that does not load, then one that loads but breaks a rule: nothing changes.
	writeConfig(t, dir, "session_idle: 8 hours\nenterprises:\n  - id: gamma\n")
	hup()
	waitLog("config reload refused; nothing changed", 1)
	if !strings.Contains(log.String(), `session_idle: \"8 hours\" is not a duration`) {
		t.Errorf("the refusal does not name the key:\n%s", log.String())
	}
	writeConfig(t, dir, "enterprises:\n  - id: gamma\n    service_providers:\n      - entity_id: https://x/md\n        metadata: '<nope'\n")
	hup()
	waitLog("config reload refused; nothing changed", 2)
	if status("beta") != 200 || status("gamma") != 404 {
		t.Fatalf("after refused reloads: beta %d, gamma %d", status("beta"), status("gamma"))
	}
	// Every log line is JSON.
	sc := bufio.NewScanner(strings.NewReader(log.String()))
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "{") {
			t.Errorf("serve logged a line that is not JSON: %s", sc.Text())
		}
	}
}

// The image: a healthcheck distroless can run, and a build context without node_modules.
func TestContainerFiles(t *testing.T) {
	df, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(df), `HEALTHCHECK`) || !strings.Contains(string(df), `CMD ["/usr/local/bin/qiao", "healthcheck"]`) {
		t.Errorf("the Dockerfile has no exec-form HEALTHCHECK running qiao healthcheck")
	}
	ign, err := os.ReadFile(filepath.Join("..", "..", ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	// .dockerignore patterns match from the context's root (filepath.Match, plus ** for any
	// number of directories).
	excluded := func(path string) bool {
		out := false
		for _, p := range strings.Split(string(ign), "\n") {
			p = strings.TrimSpace(p)
			if p == "" || strings.HasPrefix(p, "#") {
				continue
			}
			neg := strings.HasPrefix(p, "!")
			p = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/"), "/")
			m, _ := filepath.Match(p, path)
			if rest, ok := strings.CutPrefix(p, "**/"); ok {
				for parts := strings.Split(path, "/"); len(parts) > 0 && !m; parts = parts[1:] {
					m, _ = filepath.Match(rest, strings.Join(parts, "/"))
				}
			}
			if m {
				out = !neg
			}
		}
		return out
	}
	for _, p := range []string{"e2e/node_modules", "node_modules", "data", ".git", "qiao"} {
		if !excluded(p) {
			t.Errorf(".dockerignore does not exclude %s", p)
		}
	}
	for _, p := range []string{"cmd/qiao", "go.mod", "internal/config"} {
		if excluded(p) {
			t.Errorf(".dockerignore excludes %s, which the build needs", p)
		}
	}
}
