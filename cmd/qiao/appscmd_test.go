package main

import (
	"context"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/sqlstore"
	"github.com/qiao-gateway/qiao/internal/secretbox"
)

// qiao apps disable|enable|delete: each prints one line saying what it did, or fails with one
// line naming what is unknown; the change and its access job are in the store for the serving
// gateway to run.
func TestAppsDisableEnableDelete(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	key := make([]byte, secretbox.KeySize)
	for i := range key {
		key[i] = 7
	}
	md := `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://wiki.acme.example/md">` +
		`<SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">` +
		`<AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://wiki.acme.example/acs" index="0"/>` +
		`</SPSSODescriptor></EntityDescriptor>`
	cfg := writeConfig(t, dir, `master_key: "`+base64.StdEncoding.EncodeToString(key)+`"
enterprises:
  - id: acme
    clients:
      - id: intranet
        type: web
        secret: "intranet-secret-value"
        redirect_uris: ["https://intranet.acme.example/cb"]
    service_providers:
      - entity_id: https://wiki.acme.example/md
        metadata: '`+md+`'
`)
	run := func(args ...string) (code int, stdout, stderr string) {
		t.Helper()
		var out, errb syncBuffer
		code = runMain(context.Background(), append([]string{"apps", "--config", cfg, "--data", data}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	oneLine := func(what, s, want string) {
		t.Helper()
		if strings.Count(s, "\n") != 1 || !strings.Contains(s, want) {
			t.Fatalf("%s: %q, want one line with %q", what, s, want)
		}
	}

	// Nothing set up yet: refused, and nothing created.
	if code, _, stderr := run("disable", "--enterprise", "acme", "--client", "intranet"); code != 1 || !strings.Contains(stderr, "qiao apply") {
		t.Fatalf("before apply: %d %s", code, stderr)
	}
	if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused change created the data directory: %v", err)
	}
	var out, errb syncBuffer
	if code := runMain(context.Background(), []string{"apply", "--config", cfg, "--data", data}, &out, &errb); code != 0 {
		t.Fatalf("apply: %d %s", code, errb.String())
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"disable", "--enterprise", "nope", "--client", "intranet"}, `no enterprise "nope"`},
		{[]string{"disable", "--enterprise", "acme", "--client", "ghost"}, `no client "ghost" in enterprise acme`},
		{[]string{"enable", "--enterprise", "acme", "--sp", "https://ghost/md"}, `no service provider "https://ghost/md" in enterprise acme`},
		{[]string{"disable", "--enterprise", "acme"}, "name one app: --client ID or --sp ENTITY_ID"},
		{[]string{"delete", "--enterprise", "acme", "--client", "intranet", "--sp", "https://wiki.acme.example/md"}, "name one app"},
		{[]string{"delete", "--enterprise", "acme", "--client", "intranet"}, "client intranet of acme is declared in the config file: remove it there"},
	} {
		code, stdout, stderr := run(c.args...)
		if code != 1 || stdout != "" {
			t.Fatalf("%v: exit %d, stdout %q", c.args, code, stdout)
		}
		oneLine(strings.Join(c.args, " "), stderr, c.want)
	}

	code, stdout, stderr := run("disable", "--enterprise", "acme", "--client", "intranet", "--reason", "leaked secret")
	if code != 0 {
		t.Fatalf("disable: %d %s", code, stderr)
	}
	oneLine("disable", stdout, "disabled client intranet of acme: a running gateway refuses it and its tokens within a second")
	if !strings.Contains(stdout, "the config file declares it") {
		t.Fatalf("disable of a declared client does not say the file will set it again: %s", stdout)
	}
	_, stdout, _ = run("disable", "--enterprise", "acme", "--client", "intranet")
	oneLine("disable again", stdout, "client intranet of acme is already disabled; nothing changed")
	_, stdout, _ = run("--enterprise", "acme")
	if !strings.Contains(stdout, "client intranet (web, client_secret_basic, DISABLED)") {
		t.Fatalf("apps does not show the client disabled:\n%s", stdout)
	}
	_, stdout, _ = run("disable", "--enterprise", "acme", "--sp", "https://wiki.acme.example/md")
	oneLine("disable SP", stdout, "disabled service provider https://wiki.acme.example/md of acme")

	st := openTestStore(t, data, key)
	c, err := st.GetClient(context.Background(), "acme", "intranet")
	if err != nil || !c.Disabled {
		t.Fatalf("stored client %+v, %v: want disabled", c, err)
	}
	jobs, _ := st.ListAccessJobs(context.Background(), "acme", 10)
	if len(jobs) != 2 || jobs[0].Kind != directory.JobSPDisabled || jobs[1].Kind != directory.JobClientDisabled || jobs[1].Object != "intranet" ||
		jobs[1].Actor != "cli" || jobs[1].Reason != "leaked secret" || jobs[1].Status != directory.EventPending {
		t.Fatalf("access jobs %+v", jobs)
	}
	// A client the file does not declare can be deleted here.
	if err := st.PutClient(context.Background(), &directory.OIDCClient{EnterpriseID: "acme", ID: "tool", Type: directory.ClientService, Secret: "x"}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	_, stdout, _ = run("enable", "--enterprise", "acme", "--client", "intranet")
	oneLine("enable", stdout, "enabled client intranet of acme; tokens revoked while it was disabled stay revoked")
	code, stdout, stderr = run("delete", "--enterprise", "acme", "--client", "tool")
	if code != 0 {
		t.Fatalf("delete: %d %s", code, stderr)
	}
	oneLine("delete", stdout, "deleted client tool of acme and revoked its 0 refresh token(s)")

	st = openTestStore(t, data, key)
	defer st.Close()
	if c, err := st.GetClient(context.Background(), "acme", "intranet"); err != nil || c.Disabled {
		t.Fatalf("enabled client %+v, %v", c, err)
	}
	if _, err := st.GetClient(context.Background(), "acme", "tool"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("deleted client: %v", err)
	}
	if jobs, _ := st.ListAccessJobs(context.Background(), "acme", 10); len(jobs) != 3 || jobs[0].Kind != directory.JobClientDeleted || jobs[0].Object != "tool" {
		t.Fatalf("access jobs after delete %+v", jobs)
	}
}

func openTestStore(t *testing.T, data string, key []byte) *sqlstore.Store {
	t.Helper()
	box, err := secretbox.New(key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlstore.Open(context.Background(), "sqlite://"+filepath.Join(data, "qiao.db"), box)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
