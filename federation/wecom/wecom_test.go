package wecom

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/upstream"
	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
)

func setup(t *testing.T, mod func(*wecomsim.Config)) (*wecomsim.Setup, string) {
	t.Helper()
	s, _, base := setupSim(t, mod)
	return s, base
}

func setupSim(t *testing.T, mod func(*wecomsim.Config)) (*wecomsim.Setup, *wecomsim.Sim, string) {
	t.Helper()
	s := wecomsim.NewSetup(120, 17, "127.0.0.1:8080")
	if mod != nil {
		mod(&s.Config)
	}
	sim := wecomsim.New(s.Config)
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	return s, sim, srv.URL
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
	if len(depts) != d || len(users) != u || r.Info().Mode != ModeFull {
		t.Fatalf("full mode: %d depts, %d users (want %d, %d), mode %q", len(depts), len(users), d, u, r.Info().Mode)
	}
	for _, x := range users {
		if x.UserID == "zhangsan" && (x.Attrs["name"] != "张三" || x.Status != federation.StatusActive || x.Attrs["ext.工号"] != "E000001") {
			t.Fatalf("zhangsan = %+v", x)
		}
	}
	// The 2022-08-15 rule: the contact-sync secret may not call the full read APIs; the reader
	// falls back to simplelist + list_id, names what the app secret sees, and says so.
	s2, base2 := setup(t, func(c *wecomsim.Config) { c.ContactRestricted = true })
	r2 := client(t, s2, base2, true).Reader()
	depts2, users2 := readAll(t, r2)
	d2, u2 := s2.Config.Org.Counts()
	if len(depts2) != d2 || len(users2) != u2 || r2.Info().Mode != ModeIDAppNames {
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

// 48009 (the contact-sync secret called from a newly added IP, 2022-08-15 rule): the reader
// falls back to the ID-only reads, events' re-reads work in that mode, and an app secret, when
// configured, supplies the names it can see.
func TestContactRestricted48009(t *testing.T) {
	ctx := context.Background()
	s, base := setup(t, func(c *wecomsim.Config) { c.ContactRestricted = true })
	o := s.Config.Org
	d, u := o.Counts()
	o.RLock()
	zsDepts := append([]int(nil), o.User("zhangsan").Depts...)
	o.RUnlock()
	wantDepts := make([]string, len(zsDepts))
	for i, id := range zsDepts {
		wantDepts[i] = strconv.Itoa(id)
	}

	// The contact-sync secret alone: IDs only.
	r := client(t, s, base, true)
	r.s.Secret = ""
	rd := r.Reader()
	depts, users := readAll(t, rd)
	if len(depts) != d || len(users) != u || rd.Info().Mode != ModeIDOnly {
		t.Fatalf("ID-only: %d/%d depts, %d/%d users, mode %q", len(depts), d, len(users), u, rd.Info().Mode)
	}
	ev := r.Reader()
	zs, err := ev.User(ctx, "zhangsan")
	if err != nil || zs.Attrs["name"] != "zhangsan" || !slices.Equal(zs.Depts, wantDepts) || zs.Status != federation.StatusActive {
		t.Fatalf("event re-read of zhangsan, ID-only: %+v %v", zs, err)
	}
	if _, err := ev.User(ctx, "nobody"); !errors.Is(err, federation.ErrNotFound) {
		t.Fatalf("ID-only re-read of a missing user: %v", err)
	}
	if dep, err := r.Reader().Department(ctx, "2"); err != nil || dep.ParentID != "1" || dep.Name != "部门2" {
		t.Fatalf("ID-only re-read of department 2: %+v %v", dep, err)
	}
	if _, err := r.Reader().Department(ctx, "999999"); !errors.Is(err, federation.ErrNotFound) {
		t.Fatalf("ID-only re-read of a missing department: %v", err)
	}

	// Both secrets: the membership still comes from the contact-sync secret, the names from the
	// app secret.
	both := client(t, s, base, true)
	rb := both.Reader()
	depts, users = readAll(t, rb)
	if len(depts) != d || len(users) != u || rb.Info().Mode != ModeIDAppNames {
		t.Fatalf("with the app secret: %d/%d depts, %d/%d users, mode %q", len(depts), d, len(users), u, rb.Info().Mode)
	}
	for _, x := range users {
		if x.UserID == "zhangsan" && (x.Attrs["name"] != "张三" || x.Attrs["ext.工号"] != "E000001" || !slices.Equal(x.Depts, wantDepts)) {
			t.Fatalf("zhangsan with app names = %+v", x)
		}
	}
	for _, x := range depts {
		if x.ID == "2" && x.Name != "研发部" {
			t.Fatalf("department 2 with app names = %+v", x)
		}
	}
	zs, err = both.Reader().User(ctx, "zhangsan")
	if err != nil || zs.Attrs["name"] != "张三" || !slices.Equal(zs.Depts, wantDepts) {
		t.Fatalf("event re-read of zhangsan with the app secret: %+v %v", zs, err)
	}
	if dep, err := both.Reader().Department(ctx, "2"); err != nil || dep.Name != "研发部" || dep.ParentID != "1" {
		t.Fatalf("event re-read of department 2 with the app secret: %+v %v", dep, err)
	}

	// An app that sees only department 2: nobody is lost, and names stop at its scope.
	s2, base2 := setup(t, func(c *wecomsim.Config) { c.ContactRestricted = true; c.Apps[0].VisibleDepts = []int{2} })
	o2 := s2.Config.Org
	o2.RLock()
	in2 := map[string]bool{}
	for _, dd := range o2.Subtree(2) {
		for _, m := range o2.Members(dd) {
			in2[m] = true
		}
	}
	o2.RUnlock()
	rs := client(t, s2, base2, true).Reader()
	depts, users = readAll(t, rs)
	d2, u2 := o2.Counts()
	if len(depts) != d2 || len(users) != u2 {
		t.Fatalf("scoped app names: %d/%d depts, %d/%d users", len(depts), d2, len(users), u2)
	}
	named := 0
	for _, x := range users {
		if x.Attrs["name"] != x.UserID {
			named++
			if !in2[x.UserID] {
				t.Fatalf("%s is outside the app's scope but has a name", x.UserID)
			}
		}
	}
	if named == 0 {
		t.Fatal("no user got a name from the scoped app")
	}
}

func TestErrorMessage48009(t *testing.T) {
	_, base := setup(t, func(c *wecomsim.Config) { c.ContactRestricted = true })
	st, _ := SettingsFrom(map[string]string{"corp_id": "x", "api_base_url": base}, map[string]string{"secret": "s"})
	c, _ := NewClient(st)
	err := c.fail("user/get", apiError{ErrCode: 48009, ErrMsg: "api forbidden for contact assistant, hint: [x]"})
	if !strings.Contains(err.Error(), "48009") || !strings.Contains(err.Error(), "department/simplelist") {
		t.Fatalf("48009 message: %v", err)
	}
}

// An expired token answers 40014 today (42001 is documented too): either way the client drops the
// cached token, fetches a new one and retries once.
func TestExpiredTokenRefresh(t *testing.T) {
	for _, code := range []int{0, 42001} {
		s, sim, base := setupSim(t, func(c *wecomsim.Config) { c.ExpiredTokenCode = code })
		c := client(t, s, base, false)
		if _, err := c.Reader().User(context.Background(), "zhangsan"); err != nil {
			t.Fatal(err)
		}
		sim.ExpireTokens()
		sim.Kit().ClearCalls()
		if u, err := c.Reader().User(context.Background(), "zhangsan"); err != nil || u.Attrs["name"] != "张三" {
			t.Fatalf("code %d: %+v %v", code, u, err)
		}
		var calls []string
		for _, x := range sim.Kit().Calls() {
			calls = append(calls, x.API+":"+strconv.Itoa(x.ErrCode))
		}
		want := 40014
		if code != 0 {
			want = code
		}
		if got := strings.Join(calls, " "); got != "user/get:"+strconv.Itoa(want)+" gettoken:0 user/get:0" {
			t.Fatalf("code %d: calls %s", code, got)
		}
	}
}

// The domain ownership file: both settings or neither, in the console's form.
func TestDomainVerifySettings(t *testing.T) {
	base := map[string]string{"corp_id": "ww1"}
	sec := map[string]string{"secret": "s"}
	for _, tc := range []struct {
		file, content, key string
	}{
		{"", "", ""},
		{"WW_verify_AbC123.txt", "token123", ""},
		{"WW_verify_AbC123.txt", "", "config.domain_verify_content"},
		{"", "token123", "config.domain_verify_file"},
		{"../etc/passwd", "x", "config.domain_verify_file"},
		{"WW_verify_a.txt", "two words", "config.domain_verify_content"},
	} {
		cfg := map[string]string{"corp_id": base["corp_id"], "domain_verify_file": tc.file, "domain_verify_content": tc.content}
		c, err := ParseConfig(cfg, sec)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Validate()
		var se *federation.SettingError
		if (tc.key == "" && err != nil) || (tc.key != "" && (!errors.As(err, &se) || se.Key != tc.key)) {
			t.Fatalf("%+v: %v", tc, err)
		}
		if f, ct := c.DomainVerification(); tc.key == "" && (f != tc.file || ct != tc.content) {
			t.Fatalf("%+v: DomainVerification = %q %q", tc, f, ct)
		}
	}
}
