package wecom

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/upstream"
	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
)

func setup(t *testing.T, mod func(*wecomsim.Config)) (*wecomsim.Setup, string) {
	t.Helper()
	s := wecomsim.NewSetup(120, 17, "127.0.0.1:8080")
	if mod != nil {
		mod(&s.Config)
	}
	sim := wecomsim.New(s.Config)
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	return s, srv.URL
}

func client(t *testing.T, s *wecomsim.Setup, base string, contact bool) *Client {
	t.Helper()
	secrets := map[string]string{"secret": s.Secret}
	if contact {
		secrets["contact_secret"] = s.ContactSecret
	}
	st, err := SettingsFrom(map[string]string{"corp_id": s.CorpID, "agent_id": "1000002", "api_base_url": base}, secrets)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(st)
	if err != nil {
		t.Fatal(err)
	}
	c.SetBackoff(upstream.Backoff{Base: time.Millisecond, Max: 5 * time.Millisecond, Attempts: 3})
	return c
}

func readAll(t *testing.T, r *Reader) ([]federation.Dept, []federation.User) {
	t.Helper()
	depts, err := r.Departments(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var users []federation.User
	if err := r.Users(context.Background(), depts, func(u federation.User) error { users = append(users, u); return nil }); err != nil {
		t.Fatal(err)
	}
	return depts, users
}

func TestReaderModes(t *testing.T) {
	s, base := setup(t, nil)
	r := client(t, s, base, true).Reader()
	depts, users := readAll(t, r)
	d, u := s.Config.Org.Counts()
	if len(depts) != d || len(users) != u || r.Info().Mode != "department/list+user/list" {
		t.Fatalf("full mode: %d depts, %d users (want %d, %d), mode %q", len(depts), len(users), d, u, r.Info().Mode)
	}
	for _, x := range users {
		if x.UserID == "zhangsan" && (x.Attrs["name"] != "张三" || x.Status != federation.StatusActive || x.Attrs["ext.工号"] != "E000001") {
			t.Fatalf("zhangsan = %+v", x)
		}
	}
	// The 2022-08-15 rule: the contact-sync secret may not call the full read APIs; the reader
	// falls back to simplelist + list_id and says so.
	s2, base2 := setup(t, func(c *wecomsim.Config) { c.ContactRestricted = true })
	r2 := client(t, s2, base2, true).Reader()
	depts2, users2 := readAll(t, r2)
	d2, u2 := s2.Config.Org.Counts()
	if len(depts2) != d2 || len(users2) != u2 || r2.Info().Mode != "department/simplelist+user/list_id" {
		t.Fatalf("restricted mode: %d/%d depts, %d/%d users, mode %q", len(depts2), d2, len(users2), u2, r2.Info().Mode)
	}
	if u, err := client(t, s, base, true).Reader().User(context.Background(), "nobody"); !errors.Is(err, federation.ErrNotFound) {
		t.Fatalf("missing user: %+v %v", u, err)
	}
}

func TestActionableErrors(t *testing.T) {
	s, base := setup(t, func(c *wecomsim.Config) { c.Apps[0].TrustedIPs = []string{"10.0.0.9"} })
	_, err := client(t, s, base, false).Reader().Departments(context.Background(), nil)
	var fe *federation.Error
	if !errors.As(err, &fe) || fe.Code != 60020 || !strings.Contains(err.Error(), "WeCom refused the call from IP 127.0.0.1: add it to the app's trusted IPs") {
		t.Fatalf("60020: %v", err)
	}
	s2, base2 := setup(t, func(c *wecomsim.Config) { c.Apps[0].VisibleDepts = []int{2} })
	_, err = client(t, s2, base2, false).Reader().Departments(context.Background(), []string{"3"})
	if !errors.As(err, &fe) || fe.Code != 60011 || !strings.Contains(err.Error(), "visibility scope") {
		t.Fatalf("60011: %v", err)
	}
	st, _ := SettingsFrom(map[string]string{"corp_id": s.CorpID, "api_base_url": base}, map[string]string{"secret": "wrong"})
	c, _ := NewClient(st)
	if _, err := c.Reader().Departments(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "Secret") {
		t.Fatalf("bad secret: %v", err)
	}
	if _, err := SettingsFrom(map[string]string{}, map[string]string{"secret": "x"}); err == nil || !strings.Contains(err.Error(), "corp_id") {
		t.Fatalf("missing corp_id: %v", err)
	}
}
