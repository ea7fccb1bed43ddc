package declare

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
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
	if err := Apply(ctx, st, cfg); err != nil {
		t.Fatal(err)
	}
	u1, err := st.GetUserByUsername(ctx, "demo", "zhangsan")
	if err != nil {
		t.Fatal(err)
	}
	src1, _ := st.GetSource(ctx, "demo", "local")
	if err := Apply(ctx, st, cfg); err != nil {
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
	err := Apply(ctx, st, cfg)
	if !errors.Is(err, directory.ErrLimit) {
		t.Fatalf("six enabled sources: %v", err)
	}
	if _, err := st.GetEnterprise(ctx, "acme"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("rejected config was half-applied: %v", err)
	}
}
