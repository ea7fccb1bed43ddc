package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
	"github.com/qiao-gateway/qiao/internal/password"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServe runs `qiao serve` in-process until the test ends and waits for /healthz.
func startServe(t *testing.T, args ...string) (base string, stop func() int) {
	t.Helper()
	base, stop, _ = startServeLog(t, args...)
	return base, stop
}

// startServeLog is startServe that also returns what serve writes on stderr (its log).
func startServeLog(t *testing.T, args ...string) (base string, stop func() int, log *syncBuffer) {
	t.Helper()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	stderr := &syncBuffer{}
	go func() {
		done <- runMain(ctx, append([]string{"serve", "--addr", addr}, args...), &bytes.Buffer{}, stderr)
	}()
	base = "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case code := <-done:
			cancel()
			t.Fatalf("serve exited with %d: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("gateway did not answer /healthz within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopped := false
	stop = func() int {
		if stopped {
			return 0
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { stop() })
	return base, stop, stderr
}

func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func kids(t *testing.T, base string) []string {
	t.Helper()
	resp, err := http.Get(base + "/e/acme/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") == "" {
		t.Fatalf("JWKS status %d, Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	var set struct {
		Keys []struct {
			Kid, Alg, Kty, Crv string
			D                  string `json:"d"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range set.Keys {
		if k.D != "" {
			t.Fatal("private key material in JWKS")
		}
		out = append(out, k.Alg+" "+k.Kty+" "+k.Crv+" "+k.Kid)
	}
	return out
}

func TestServeStartsReadyAndKeepsKeysAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "enterprises:\n  - id: acme\n")
	data := filepath.Join(dir, "data")
	base, stop := startServe(t, "--config", cfg, "--data", data)
	resp, err := http.Get(base + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/readyz: %v %v", resp, err)
	}
	resp.Body.Close()
	first := kids(t, base)
	var kinds []string
	for _, k := range first {
		kinds = append(kinds, strings.Join(strings.Fields(k)[:len(strings.Fields(k))-1], " "))
	}
	slices.Sort(kinds)
	if strings.Join(kinds, ", ") != "ES256 EC P-256, EdDSA OKP Ed25519, RS256 RSA" {
		t.Fatalf("JWKS has %v (alg kty crv kid), want one RS256, one ES256 (P-256) and one EdDSA (Ed25519) key", first)
	}
	if r, _ := http.Get(base + "/e/nope/keys"); r.StatusCode != 404 {
		t.Fatalf("JWKS of an unknown enterprise: %d", r.StatusCode)
	}
	if code := stop(); code != 0 {
		t.Fatalf("graceful stop exited %d", code)
	}
	base, _ = startServe(t, "--config", cfg, "--data", data)
	if again := kids(t, base); strings.Join(again, ",") != strings.Join(first, ",") {
		t.Fatalf("key IDs changed across restart: %v -> %v", first, again)
	}
}

func TestBadConfigExits2NamingTheKey(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "enterprises:\n  - id: acme\n    sources:\n      - id: w\n        kind: wecom\n        sync:\n          cycle_hours: 30\n")
	var stderr bytes.Buffer
	code := runMain(context.Background(), []string{"serve", "--config", cfg, "--data", filepath.Join(dir, "data")}, &bytes.Buffer{}, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "enterprises[0].sources[0].sync.cycle_hours") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Fatal("a rejected config still created the data directory")
	}
}

func TestWrongMasterKeyStopsStartAndChangesNothing(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	t.Setenv("QIAO_MASTER_KEY", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32)))
	_, stop := startServe(t, "--data", data)
	stop()
	keysList := func() string {
		var out bytes.Buffer
		if code := runMain(context.Background(), []string{"keys", "list", "--data", data}, &out, &out); code != 0 {
			t.Fatalf("keys list: %d %s", code, out.String())
		}
		return out.String()
	}
	before := keysList()
	t.Setenv("QIAO_MASTER_KEY", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32)))
	var stderr bytes.Buffer
	code := runMain(context.Background(), []string{"serve", "--addr", freeAddr(t), "--data", data}, &bytes.Buffer{}, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "master key does not match") || strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	t.Setenv("QIAO_MASTER_KEY", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32)))
	if after := keysList(); after != before {
		t.Fatalf("keys changed by a failed start:\n%s\n%s", before, after)
	}
}

func TestCorruptKeyFileAndUnreachableDatabase(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	_, stop := startServe(t, "--data", data)
	stop()
	// The signing keys live in the database: a stored key that does not decrypt stops the start,
	// naming it, and is left as it is.
	db, err := sql.Open("sqlite", filepath.Join(data, "qiao.db"))
	if err != nil {
		t.Fatal(err)
	}
	var kid string
	if err := db.QueryRow(`SELECT kid FROM signing_keys WHERE alg = 'RS256'`).Scan(&kid); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE signing_keys SET private_key = $1 WHERE kid = $2`, []byte("garbage"), kid); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	code := runMain(context.Background(), []string{"serve", "--addr", freeAddr(t), "--data", data}, &bytes.Buffer{}, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), kid) {
		t.Fatalf("corrupt key: exit %d, stderr %q", code, stderr.String())
	}
	var stored []byte
	if err := db.QueryRow(`SELECT private_key FROM signing_keys WHERE kid = $1`, kid).Scan(&stored); err != nil || string(stored) != "garbage" {
		t.Fatalf("corrupt key overwritten: %q, %v", stored, err)
	}
	db.Close()

	t.Setenv("QIAO_STORAGE", "postgres://qiao:s3cr3t@127.0.0.1:1/qiao?sslmode=disable&connect_timeout=1")
	t.Setenv("QIAO_MASTER_KEY", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32)))
	stderr.Reset()
	code = runMain(context.Background(), []string{"serve", "--addr", freeAddr(t), "--data", filepath.Join(dir, "other")}, &bytes.Buffer{}, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "cannot open the durable store") || strings.Contains(stderr.String(), "s3cr3t") {
		t.Fatalf("unreachable database: exit %d, stderr %q", code, stderr.String())
	}
}

func TestPostgresWithoutMasterKeyIsRefused(t *testing.T) {
	t.Setenv("QIAO_STORAGE", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	var stderr bytes.Buffer
	code := runMain(context.Background(), []string{"serve", "--addr", freeAddr(t), "--data", t.TempDir()}, &bytes.Buffer{}, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "QIAO_MASTER_KEY") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

func TestKeysRotateAndList(t *testing.T) {
	data := t.TempDir()
	var out bytes.Buffer
	// Nothing generated yet: list refuses in one line and creates nothing.
	if code := runMain(context.Background(), []string{"keys", "list", "--data", data}, &out, &out); code != 1 ||
		!strings.Contains(out.String(), "no signing keys") || strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("keys list with no keys: %d %q", code, out.String())
	}
	if entries, _ := os.ReadDir(data); len(entries) != 0 {
		t.Fatalf("keys list created %d entries in the data directory", len(entries))
	}
	// rotate with no keys yet makes the first set (in the database).
	out.Reset()
	if code := runMain(context.Background(), []string{"keys", "rotate", "--data", data}, &out, &out); code != 0 || strings.Count(out.String(), "the first set") != 4 {
		t.Fatalf("keys rotate in an empty directory: %d %s", code, out.String())
	}
	out.Reset()
	if code := runMain(context.Background(), []string{"keys", "list", "--data", data}, &out, &out); code != 0 {
		t.Fatalf("keys list: %d %s", code, out.String())
	}
	if strings.Count(out.String(), "active") != 4 {
		t.Fatalf("keys list before rotation:\n%s", out.String())
	}
	out.Reset()
	// --alg in any case.
	if code := runMain(context.Background(), []string{"keys", "rotate", "--alg", "rs256", "--data", data}, &out, &out); code != 0 || !strings.Contains(out.String(), "new RS256 key") {
		t.Fatalf("keys rotate: %d %s", code, out.String())
	}
	out.Reset()
	runMain(context.Background(), []string{"keys", "list", "--data", data}, &out, &out)
	if strings.Count(out.String(), "active") != 4 || strings.Count(out.String(), "retired") != 1 {
		t.Fatalf("keys list after rotation:\n%s", out.String())
	}
	out.Reset()
	if code := runMain(context.Background(), []string{"keys", "rotate", "--alg", "Es256,saml", "--data", data}, &out, &out); code != 0 ||
		!strings.Contains(out.String(), "new ES256 key") || !strings.Contains(out.String(), "new SAML key") {
		t.Fatalf("keys rotate --alg Es256,saml: %d %s", code, out.String())
	}
	out.Reset()
	if code := runMain(context.Background(), []string{"keys", "rotate", "--alg", "EDDSA", "--data", data}, &out, &out); code != 0 || !strings.Contains(out.String(), "new EdDSA key") {
		t.Fatalf("keys rotate --alg EDDSA: %d %s", code, out.String())
	}
	out.Reset()
	if code := runMain(context.Background(), []string{"keys", "rotate", "--alg", "HS256", "--data", data}, &out, &out); code != 2 || !strings.Contains(out.String(), "RS256, ES256, EdDSA or SAML") {
		t.Fatalf("keys rotate --alg HS256: %d %s", code, out.String())
	}
	// export writes every stored key (4 active, 4 retired) as a keys directory, and only into a
	// new or empty one.
	backup := filepath.Join(t.TempDir(), "backup")
	out.Reset()
	if code := runMain(context.Background(), []string{"keys", "export", backup, "--data", data}, &out, &out); code != 0 || !strings.Contains(out.String(), "exported 8 keys") {
		t.Fatalf("keys export: %d %s", code, out.String())
	}
	if pems, _ := filepath.Glob(filepath.Join(backup, "*.pem")); len(pems) != 8 {
		t.Fatalf("exported %d key files", len(pems))
	}
	out.Reset()
	if code := runMain(context.Background(), []string{"keys", "export", backup, "--data", data}, &out, &out); code != 1 || !strings.Contains(out.String(), "not empty") {
		t.Fatalf("keys export into a used directory: %d %s", code, out.String())
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := runMain(context.Background(), []string{"version"}, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "qiao ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
}

func TestHashPassword(t *testing.T) {
	root := newRoot()
	var out bytes.Buffer
	root.SetArgs([]string{"hash-password"})
	root.SetIn(strings.NewReader("correct horse\n"))
	root.SetOut(&out)
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	h := strings.TrimSpace(out.String())
	if ok, err := password.Verify("correct horse", h); !ok || err != nil {
		t.Fatalf("hash %q does not verify: %v", h, err)
	}
	root = newRoot()
	root.SetArgs([]string{"hash-password"})
	root.SetIn(strings.NewReader(""))
	root.SetOut(&out)
	root.SetErr(&out)
	if err := root.Execute(); err == nil {
		t.Fatal("empty stdin accepted")
	}
}

func TestDemoStartsGatewayAndSimulators(t *testing.T) {
	addr, waddr, daddr := freeAddr(t), freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out, errb syncBuffer
	go func() {
		done <- runMain(ctx, []string{"demo", "--addr", addr, "--wecom-addr", waddr, "--dingtalk-addr", daddr, "--users", "30"}, &out, &errb)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(out.String(), "qiao demo is ready") {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("demo not ready: %s %s", out.String(), errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, u := range []string{"http://" + addr + "/readyz", "http://" + addr + "/e/demo/keys", "http://" + waddr + "/_sim/", "http://" + daddr + "/_sim/",
		"http://" + addr + "/e/demo/.well-known/openid-configuration", "http://" + addr + "/e/demo/saml/metadata",
		"http://" + addr + "/demo-app/", "http://" + addr + "/demo-sp/", "http://" + addr + "/demo-sp/metadata"} {
		resp, err := http.Get(u)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", u, resp, err)
		}
		resp.Body.Close()
	}
	// The printed sign-in URL leads, through WeCom's QR page, to the gateway's callback.
	var signIn string
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, "/login?enterprise=demo") {
			signIn = strings.Fields(line)[2]
		}
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(strings.Replace(signIn, "/login?enterprise=demo", "/login/e/demo/s/wecom", 1))
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("sign-in URL %q: %v %v", signIn, resp, err)
	}
	resp, err = noRedirect.Get(resp.Header.Get("Location") + "&sim_user=zhangsan")
	if err != nil || resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "http://"+addr+"/e/demo/sources/wecom/callback?") {
		t.Fatalf("WeCom QR page: %v %v", resp, err)
	}
	// The sample apps start their logins at the gateway.
	for _, app := range []string{"/demo-app/login", "/demo-sp/login"} {
		resp, err := noRedirect.Get("http://" + addr + app)
		if err != nil || resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "http://"+addr+"/e/demo/") {
			t.Fatalf("%s: %v %v", app, resp, err)
		}
		resp.Body.Close()
	}
	if !strings.Contains(out.String(), "zhangsan / ") {
		t.Fatal("demo does not print zhangsan's credentials")
	}
	if !strings.Contains(out.String(), "synced wecom") || !strings.Contains(out.String(), "synced dingtalk") || strings.Contains(errb.String(), "sync of") {
		t.Fatalf("demo did not sync both sources before ready:\n%s\n%s", out.String(), errb.String())
	}
	// Events are wired: zhangsan leaving DingTalk reaches the gateway's inbox.
	req, _ := http.NewRequest("DELETE", "http://"+daddr+"/_sim/users/zhangsan", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 204 {
		t.Fatalf("delete in the DingTalk simulator: %v %v", resp, err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + daddr + "/_sim/events")
		if err != nil {
			t.Fatal(err)
		}
		var ds []map[string]any
		json.NewDecoder(resp.Body).Decode(&ds)
		resp.Body.Close()
		if len(ds) > 0 && ds[len(ds)-1]["ok"] == true {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway never acknowledged the DingTalk event: %v %s", ds, errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("demo exited %d: %s", code, errb.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a polling reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSyncCommand(t *testing.T) {
	ws := wecomsim.NewSetup(80, 5, "127.0.0.1:8080")
	sim := wecomsim.New(ws.Config)
	defer sim.Close()
	srv := httptest.NewServer(sim)
	defer srv.Close()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`enterprises:
  - id: acme
    sources:
      - id: wecom
        kind: wecom
        name: 企业微信
        config: {corp_id: %s, agent_id: "1000002", api_base_url: %s}
        secrets: {secret: %s, contact_secret: %s}
`, ws.CorpID, srv.URL, ws.Secret, ws.ContactSecret))
	args := []string{"sync", "--config", cfg, "--data", filepath.Join(dir, "data"), "--enterprise", "acme", "--source", "wecom"}
	var out, errb bytes.Buffer
	// Only serve and apply write the config into the store; sync uses what is there.
	if code := runMain(context.Background(), args, &out, &errb); code != 1 || !strings.Contains(errb.String(), "qiao apply") {
		t.Fatalf("sync before apply: exit %d: %s %s", code, out.String(), errb.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Fatalf("sync before apply created the data directory: %v", err)
	}
	out.Reset()
	errb.Reset()
	if code := runMain(context.Background(), []string{"apply", "--config", cfg, "--data", filepath.Join(dir, "data")}, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "applied 1 enterprise") {
		t.Fatalf("apply: exit %d: %s %s", code, out.String(), errb.String())
	}
	out.Reset()
	if code := runMain(context.Background(), append(args, "--dry-run"), &out, &errb); code != 0 {
		t.Fatalf("dry run exit %d: %s %s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "dry run: nothing was applied") || !strings.Contains(out.String(), "objects     created ") ||
		!strings.Contains(out.String(), "planned changes (the first 50 of ") || strings.Contains(out.String(), "map[") {
		t.Fatalf("dry run output:\n%s", out.String())
	}
	out.Reset()
	if code := runMain(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("sync exit %d: %s %s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "status      succeeded") || !strings.Contains(errb.String(), "read-users") || !strings.Contains(out.String(), "objects     created ") {
		t.Fatalf("sync output:\n%s\nprogress:\n%s", out.String(), errb.String())
	}
	// Nothing changed upstream since: a dry run says so instead of an empty list.
	out.Reset()
	if code := runMain(context.Background(), append(args, "--dry-run"), &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "no changes planned") || strings.Contains(out.String(), "planned changes") {
		t.Fatalf("dry run with nothing to do: exit %d\n%s", code, out.String())
	}
	// The task and its records are readable.
	out.Reset()
	if code := runMain(context.Background(), []string{"sync", "tasks", "--config", cfg, "--data", filepath.Join(dir, "data"), "--enterprise", "acme"}, &out, &errb); code != 0 {
		t.Fatalf("sync tasks: %d %s", code, errb.String())
	}
	fields := strings.Fields(strings.Split(out.String(), "\n")[1])
	if len(fields) < 4 || fields[3] != "succeeded" || !strings.Contains(out.String(), "  created ") || strings.Contains(out.String(), "map[") {
		t.Fatalf("sync tasks:\n%s", out.String())
	}
	out.Reset()
	if code := runMain(context.Background(), []string{"sync", "records", "--config", cfg, "--data", filepath.Join(dir, "data"), "--task", fields[0], "--upstream-id", "zhangsan"}, &out, &errb); code != 0 {
		t.Fatalf("sync records: %d %s", code, errb.String())
	}
	if !strings.HasPrefix(out.String(), "create user zhangsan") || !strings.Contains(out.String(), `"name":"张三"`) || !strings.Contains(out.String(), "after") {
		t.Fatalf("sync records:\n%s", out.String())
	}
	out.Reset()
	if code := runMain(context.Background(), []string{"sources", "--config", cfg, "--data", filepath.Join(dir, "data"), "--enterprise", "acme"}, &out, &errb); code != 0 {
		t.Fatalf("sources: %d %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "/e/acme/sources/wecom/events") || strings.Contains(out.String(), ws.ContactSecret) || !strings.Contains(out.String(), "last task") ||
		!strings.Contains(out.String(), "PROBLEM            source acme/wecom: config.callback_domain is not set") {
		t.Fatalf("sources (secrets must be masked):\n%s", out.String())
	}
	// Remove 31 people upstream: deletion protection cancels the task, exit status 1.
	o := sim.Org()
	o.RLock()
	ids := append([]string(nil), o.UserIDs()...)
	o.RUnlock()
	for _, id := range ids[:31] {
		o.DeleteUser(id)
	}
	out.Reset()
	errb.Reset()
	if code := runMain(context.Background(), args, &out, &errb); code != 1 || !strings.Contains(out.String(), "cancelled") || !strings.Contains(errb.String(), "deletion protection") {
		t.Fatalf("threshold: exit %d\n%s\n%s", code, out.String(), errb.String())
	}
}

func TestAppsShowsEndpointsAndMasksSecrets(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "qiao.yaml")
	md := `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://wiki.acme.example/md">` +
		`<SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" AuthnRequestsSigned="false">` +
		`<AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://wiki.acme.example/acs" index="0"/>` +
		`</SPSSODescriptor></EntityDescriptor>`
	os.WriteFile(cfg, []byte(`external_url: https://sso.acme.example
enterprises:
  - id: acme
    clients:
      - id: intranet
        type: web
        secret: "intranet-secret-value"
        redirect_uris: ["https://intranet.acme.example/cb"]
    service_providers:
      - entity_id: https://wiki.acme.example/md
        nameid_format: emailAddress
        metadata: '`+md+`'
`), 0o600)
	var out, errb syncBuffer
	// apps only reads: before anything applied the config, there is nothing to show, and nothing
	// is created.
	if code := runMain(context.Background(), []string{"apps", "--config", cfg, "--data", filepath.Join(dir, "data"), "--enterprise", "acme"}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "qiao apply") {
		t.Fatalf("apps before apply: %d %s", code, errb.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a read-only command created the data directory: %v", err)
	}
	if code := runMain(context.Background(), []string{"apply", "--config", cfg, "--data", filepath.Join(dir, "data")}, &out, &errb); code != 0 {
		t.Fatalf("apply: %d %s", code, errb.String())
	}
	out.Reset()
	if code := runMain(context.Background(), []string{"apps", "--config", cfg, "--data", filepath.Join(dir, "data"), "--enterprise", "acme"}, &out, &errb); code != 0 {
		t.Fatalf("apps: %d %s", code, errb.String())
	}
	s := out.String()
	for _, want := range []string{"issuer             https://sso.acme.example/e/acme", "client intranet (web, client_secret_basic)",
		"entity/metadata    https://sso.acme.example/e/acme/saml/metadata", "ACS              https://wiki.acme.example/acs",
		"NameID           emailAddress", "launch           https://sso.acme.example/e/acme/saml/launch?sp=https%3A%2F%2Fwiki.acme.example%2Fmd"} {
		if !strings.Contains(s, want) {
			t.Errorf("apps output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "intranet-secret-value") {
		t.Fatalf("apps printed a secret:\n%s", s)
	}
	// A broken SP metadata stops the start with the config key named; nothing is stored.
	os.WriteFile(cfg, []byte("enterprises:\n  - id: acme\n    service_providers:\n      - entity_id: https://x/md\n        metadata: '<nope'\n"), 0o600)
	var errb2 syncBuffer
	if code := runMain(context.Background(), []string{"apply", "--config", cfg, "--data", filepath.Join(dir, "data2")}, &out, &errb2); code == 0 ||
		!strings.Contains(errb2.String(), "service_providers[0]") {
		t.Fatalf("bad SP metadata: %d %s", code, errb2.String())
	}
	// A config changed since the last apply: apps still shows (and the store still holds) what
	// was applied, byte for byte.
	db := filepath.Join(dir, "data", "qiao.db")
	before, _ := os.ReadFile(db)
	out.Reset()
	if code := runMain(context.Background(), []string{"apps", "--config", cfg, "--data", filepath.Join(dir, "data"), "--enterprise", "acme"}, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "client intranet") || strings.Contains(out.String(), "https://x/md") {
		t.Fatalf("apps after a config change: %d\n%s%s", code, out.String(), errb.String())
	}
	if after, _ := os.ReadFile(db); !bytes.Equal(before, after) {
		t.Fatal("a read-only command changed the database file")
	}
}

// qiao sources close/open/delete, and a source removed from the config file: the plan, deletion
// protection naming --force, and the change.
func TestSourcesLifecycleCommands(t *testing.T) {
	ws := wecomsim.NewSetup(40, 5, "127.0.0.1:8080")
	sim := wecomsim.New(ws.Config)
	defer sim.Close()
	srv := httptest.NewServer(sim)
	defer srv.Close()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	body := fmt.Sprintf(`enterprises:
  - id: acme
    sources:
      - id: wecom
        kind: wecom
        name: 企业微信
        config: {corp_id: %s, agent_id: "1000002", api_base_url: %s}
        secrets: {secret: %s, contact_secret: %s}
`, ws.CorpID, srv.URL, ws.Secret, ws.ContactSecret)
	cfg := writeConfig(t, dir, body)
	run := func(want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		args = append(args, "--config", cfg, "--data", data)
		if code := runMain(context.Background(), args, &out, &errb); code != want {
			t.Fatalf("%v: exit %d, want %d\n%s%s", args, code, want, out.String(), errb.String())
		}
		return out.String() + errb.String()
	}
	run(0, "apply")
	run(0, "sync", "--enterprise", "acme", "--source", "wecom")
	if out := run(0, "sources", "close", "--enterprise", "acme", "--source", "wecom"); !strings.Contains(out, "closed source wecom of acme") ||
		!strings.Contains(out, "the config file declares wecom") {
		t.Fatalf("close:\n%s", out)
	}
	if out := run(1, "sync", "--enterprise", "acme", "--source", "wecom"); !strings.Contains(out, "closed") {
		t.Fatalf("sync of a closed source:\n%s", out)
	}
	if out := run(0, "sources", "open", "--enterprise", "acme", "--source", "wecom"); !strings.Contains(out, "opened source wecom") {
		t.Fatalf("open:\n%s", out)
	}
	// 40 people only WeCom links: past the default protection of 30.
	if out := run(0, "sources", "delete", "--enterprise", "acme", "--source", "wecom", "--dry-run"); !strings.Contains(out, "people who depart     40") ||
		!strings.Contains(out, "STOPS THIS") || !strings.Contains(out, "dry run: nothing changed") {
		t.Fatalf("dry run:\n%s", out)
	}
	// Removed from the file: refused in one line naming the source and --force; nothing changes.
	cfg = writeConfig(t, dir, "enterprises:\n  - id: acme\n")
	if out := run(1, "apply"); !strings.Contains(out, "source wecom of enterprise acme was removed from the config file") ||
		!strings.Contains(out, "qiao apply --force") {
		t.Fatalf("apply without the source:\n%s", out)
	}
	if out := run(1, "sources", "delete", "--enterprise", "acme", "--source", "wecom"); !strings.Contains(out, "deletion protection") ||
		!strings.Contains(out, "--force") {
		t.Fatalf("delete past protection:\n%s", out)
	}
	if out := run(0, "apply", "--force"); !strings.Contains(out, "deleted source wecom of acme") || !strings.Contains(out, "40 people depart") {
		t.Fatalf("apply --force:\n%s", out)
	}
	if out := run(0, "apply"); strings.Contains(out, "deleted") {
		t.Fatalf("the same file again changed something:\n%s", out)
	}
}
