package declare

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qiao-gateway/qiao/demo"
	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/sqlstore"
	_ "github.com/qiao-gateway/qiao/federation/connectors" // the platform kinds the demo config declares
	"github.com/qiao-gateway/qiao/federation/dingtalk/dingtalksim"
	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
	"github.com/qiao-gateway/qiao/internal/config"
	"github.com/qiao-gateway/qiao/internal/secretbox"
)

func openStore(t *testing.T) *sqlstore.Store {
	t.Helper()
	box, _ := secretbox.New(bytes.Repeat([]byte{3}, 32))
	s, err := sqlstore.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "q.db"), box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestApplyIsIdempotent(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	cfg, _, err := demo.Config("127.0.0.1:18080", t.TempDir(), "pw-for-test", &demo.Sims{WeCom: wecomsim.NewSetup(10, 1, "127.0.0.1:18080"), WeComURL: "http://127.0.0.1:18081", DingTalk: dingtalksim.NewSetup(10, 1, "127.0.0.1:18080"), DingTalkURL: "http://127.0.0.1:18082"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(ctx, st, cfg); err != nil {
		t.Fatal(err)
	}
	u1, err := st.GetUserByUsername(ctx, "demo", "zhangsan")
	if err != nil {
		t.Fatal(err)
	}
	src1, _ := st.GetSource(ctx, "demo", "local")
	if _, err := Apply(ctx, st, cfg); err != nil {
		t.Fatal(err)
	}
	u2, _ := st.GetUserByUsername(ctx, "demo", "zhangsan")
	if u1.ID != u2.ID || !u1.UpdatedAt.Equal(u2.UpdatedAt) {
		t.Fatalf("second apply changed the user: %+v -> %+v", u1, u2)
	}
	src2, _ := st.GetSource(ctx, "demo", "local")
	if !src1.CreatedAt.Equal(src2.CreatedAt) {
		t.Fatal("second apply re-created the source")
	}
	if w, err := st.GetSource(ctx, "demo", "wecom"); err != nil || w.Secrets["contact_secret"] == "" || w.Config["api_base_url"] != "http://127.0.0.1:18081" {
		t.Fatalf("demo wecom source = %+v, %v", w, err)
	}
	if l, err := st.GetUserLink(ctx, "demo", "local", "zhangsan"); err != nil || l.UserID != u1.ID {
		t.Fatalf("local link = %+v, %v", l, err)
	}
	cl, err := st.GetClient(ctx, "demo", "demo-app")
	if err != nil || cl.AuthMethod != "client_secret_basic" || cl.Secret == "" || cl.IDTokenAlg != "RS256" {
		t.Fatalf("demo-app = %+v, %v", cl, err)
	}
	if cl, _ := st.GetClient(ctx, "demo", "demo-service"); cl.GrantTypes[0] != "client_credentials" {
		t.Fatalf("demo-service grants = %v", cl.GrantTypes)
	}
	if g, err := st.GetAdminGrant(ctx, "demo", "zhangsan"); err != nil || g.Role != "owner" {
		t.Fatalf("the demo's owner: %+v, %v", g, err)
	}
}

func TestApplyIsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	e := config.Enterprise{ID: "acme"}
	for i := 0; i < 6; i++ {
		e.Sources = append(e.Sources, config.Source{ID: fmt.Sprintf("s%d", i), Kind: "wecom", Name: fmt.Sprintf("源%d号", i)})
	}
	cfg := config.Default()
	cfg.Enterprises = []config.Enterprise{e}
	_, err := Apply(ctx, st, cfg)
	if !errors.Is(err, directory.ErrLimit) {
		t.Fatalf("six enabled sources: %v", err)
	}
	if _, err := st.GetEnterprise(ctx, "acme"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("rejected config was half-applied: %v", err)
	}
}

func demoCfg(t *testing.T) *config.Config {
	t.Helper()
	cfg, _, err := demo.Config("127.0.0.1:18080", t.TempDir(), "pw-for-test", &demo.Sims{WeCom: wecomsim.NewSetup(10, 1, "127.0.0.1:18080"),
		WeComURL: "http://127.0.0.1:18081", DingTalk: dingtalksim.NewSetup(10, 1, "127.0.0.1:18080"), DingTalkURL: "http://127.0.0.1:18082"})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func jobs(t *testing.T, st directory.Store) []*directory.AccessJob {
	t.Helper()
	js, err := st.ListAccessJobs(context.Background(), "demo", 100)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// The file owns what it declares: what it stops declaring is deleted (the access it held ended by
// a queued job), what it closes or disables is closed, and applying the same file again changes
// nothing. Objects made another way stay.
func TestTheFileOwnsWhatItDeclares(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	cfg := demoCfg(t)
	cfg.Enterprises[0].Users = append(cfg.Enterprises[0].Users, config.User{Username: "temp", Name: "临时工"})
	if res, err := Apply(ctx, st, cfg); err != nil || len(res.Changes) != 0 {
		t.Fatalf("first apply: %v, %v", res, err)
	}
	// An object the admin API made is not the file's.
	if err := st.PutClient(ctx, &directory.OIDCClient{EnterpriseID: "demo", ID: "api-made", Type: directory.ClientService, AuthMethod: "client_secret_basic",
		Secret: "s", GrantTypes: []string{"client_credentials"}}); err != nil {
		t.Fatal(err)
	}
	e := &cfg.Enterprises[0]
	if len(e.Clients) < 2 || len(e.ServiceProviders) == 0 || len(e.Users) < 2 {
		t.Fatalf("the demo config changed shape: %d clients, %d SPs, %d users", len(e.Clients), len(e.ServiceProviders), len(e.Users))
	}
	goneClient, goneSP, goneUser := e.Clients[len(e.Clients)-1].ID, e.ServiceProviders[0].EntityID, e.Users[len(e.Users)-1].Username
	e.Clients = e.Clients[:len(e.Clients)-1]
	e.ServiceProviders = e.ServiceProviders[1:]
	e.Users = e.Users[:len(e.Users)-1]
	off := false
	var closed string
	for i := range e.Sources {
		if e.Sources[i].Kind == "dingtalk" {
			e.Sources[i].Enabled, closed = &off, e.Sources[i].ID
		}
	}
	res, err := Apply(ctx, st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 4 {
		t.Fatalf("changes = %q, want the closed source, the deleted client, SP and user", res.Changes)
	}
	if _, err := st.GetClient(ctx, "demo", goneClient); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("client removed from the file: %v", err)
	}
	if _, err := st.GetServiceProvider(ctx, "demo", goneSP); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("SP removed from the file: %v", err)
	}
	if _, err := st.GetUserLink(ctx, "demo", "local", goneUser); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("local user removed from the file keeps the local link: %v", err)
	}
	if src, _ := st.GetSource(ctx, "demo", closed); src.Enabled {
		t.Fatal("the source the file closed is open")
	}
	if _, err := st.GetClient(ctx, "demo", "api-made"); err != nil {
		t.Fatalf("an API-made client was deleted: %v", err)
	}
	kinds := map[string]string{}
	for _, j := range jobs(t, st) {
		kinds[j.Kind] = j.Object
	}
	if kinds[directory.JobSourceClosed] != closed || kinds[directory.JobClientDeleted] != goneClient || kinds[directory.JobSPDeleted] != goneSP {
		t.Fatalf("access jobs = %v", kinds)
	}
	n := len(jobs(t, st))
	if res, err := Apply(ctx, st, cfg); err != nil || len(res.Changes) != 0 || len(jobs(t, st)) != n {
		t.Fatalf("the same file again: %v, %v, %d jobs (was %d)", res, err, len(jobs(t, st)), n)
	}
}

// A source removed from the file is deleted under its deletion protection: past it, the apply is
// refused with one line naming the source and the --force to use, and nothing changes.
func TestRemovingASourceFromTheFileIsProtected(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	cfg := demoCfg(t)
	if _, err := Apply(ctx, st, cfg); err != nil {
		t.Fatal(err)
	}
	// The local source links the demo's users; give it a limit they exceed.
	e := &cfg.Enterprises[0]
	var local config.Source
	kept := e.Sources[:0]
	for _, s := range e.Sources {
		if s.Kind == "local" {
			local = s
			continue
		}
		kept = append(kept, s)
	}
	zero := 0
	src, _ := st.GetSource(ctx, "demo", local.ID)
	src.Sync.DeleteUsers = zero
	if err := st.PutSource(ctx, src); err != nil {
		t.Fatal(err)
	}
	e.Sources = kept
	e.Users = nil
	_, err := Apply(ctx, st, cfg, Options{ForceHint: "qiao apply --force"})
	if err == nil || !strings.Contains(err.Error(), "source "+local.ID+" of enterprise demo was removed from the config file") ||
		!strings.Contains(err.Error(), "qiao apply --force") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("protected removal: %v", err)
	}
	if _, err := st.GetSource(ctx, "demo", local.ID); err != nil {
		t.Fatalf("a refused apply changed the store: %v", err)
	}
	res, err := Apply(ctx, st, cfg, Options{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetSource(ctx, "demo", local.ID); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("forced: source still there: %v (changes %q)", err, res.Changes)
	}
	var deleted *directory.AccessJob
	for _, j := range jobs(t, st) {
		if j.Kind == directory.JobSourceDeleted {
			deleted = j
		}
	}
	if deleted == nil || deleted.Object != local.ID || !strings.Contains(string(deleted.Payload), "departed") {
		t.Fatalf("source deletion job = %+v", deleted)
	}
}

// A removed enterprise is deleted only with --force.
func TestRemovingAnEnterpriseNeedsForce(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	cfg := demoCfg(t)
	cfg.Enterprises = append(cfg.Enterprises, config.Enterprise{ID: "acme"})
	if _, err := Apply(ctx, st, cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Enterprises = cfg.Enterprises[:1]
	if _, err := Apply(ctx, st, cfg, Options{ForceHint: "qiao serve --force"}); err == nil || !strings.Contains(err.Error(), "enterprise acme was removed") ||
		!strings.Contains(err.Error(), "qiao serve --force") {
		t.Fatalf("removed enterprise without force: %v", err)
	}
	if _, err := st.GetEnterprise(ctx, "acme"); err != nil {
		t.Fatal("refused apply deleted the enterprise")
	}
	if _, err := Apply(ctx, st, cfg, Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetEnterprise(ctx, "acme"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("forced: %v", err)
	}
}
