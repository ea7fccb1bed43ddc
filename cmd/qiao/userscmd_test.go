package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qiao-gateway/qiao/internal/password"
)

// qiao users list searches the directory as the admin API does; qiao users show prints a person
// without their password hash; unknown enterprises and people exit 1.
func TestUsersListAndShow(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	hash, err := password.Hash("pw-for-the-cli", password.Params{Memory: 1024, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, `enterprises:
  - id: acme
    sources:
      - id: staff
        kind: local
    users:
      - username: zhangsan
        name: 张三
        mobile: "13800000001"
        email: zhangsan@acme.example
        password_hash: "`+hash+`"
      - username: zhangsanfeng
        name: 张三丰
      - username: lisi
        name: 李四
        mobile: "13900000002"
`)
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
	lines := func(s string) []string {
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] != "USERNAME" {
				out = append(out, f[0])
			}
		}
		return out
	}
	for q, want := range map[string]string{"张": "zhangsan zhangsanfeng", "13900000002": "lisi", "zhangsan@": "zhangsan", "' OR '1'='1": "nobody"} {
		if got := strings.Join(lines(run(0, "users", "list", "--enterprise", "acme", "--q", q)), " "); got != want {
			t.Errorf("--q %q: %q, want %q", q, got, want)
		}
	}
	if got := lines(run(0, "users", "list", "--enterprise", "acme", "--limit", "2")); strings.Join(got, " ") != "lisi zhangsan …" {
		t.Errorf("a page of 2: %q", got)
	}
	if got := lines(run(0, "users", "list", "--enterprise", "acme", "--after", "zhangsan")); strings.Join(got, " ") != "zhangsanfeng" {
		t.Errorf("after zhangsan: %q", got)
	}
	out := run(0, "users", "show", "--enterprise", "acme", "zhangsan")
	for _, want := range []string{"zhangsan — 张三 (active)", "13800000001", "file-managed", "local password     set", "source staff"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "argon2") || strings.Contains(out, hash) {
		t.Fatalf("show prints the password hash:\n%s", out)
	}
	if out := run(1, "users", "show", "--enterprise", "acme", "nobody"); !strings.Contains(out, `no user "nobody"`) {
		t.Errorf("nobody: %s", out)
	}
	if out := run(1, "users", "list", "--enterprise", "nope"); !strings.Contains(out, `no enterprise "nope"`) {
		t.Errorf("no enterprise: %s", out)
	}
}
