package session

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/internal/state"
)

type recorder struct {
	name  string
	ended []*Session
}

func (p *recorder) SessionEnded(_ context.Context, s *Session) { p.ended = append(p.ended, s) }

func (p *recorder) LogoutHop(_ context.Context, s *Session, next string) string {
	return "/" + p.name + "?sid=" + s.SID + "&next=" + next
}

// TestParticipants: every participant hears of a session that a logout or a revocation ends, with
// its typed contents as stored, and the browser's logout hops run in registration order.
func TestParticipants(t *testing.T) {
	st := state.NewMemory()
	defer st.Close()
	s := &Store{State: st, CookieName: "qiao_sso", Idle: time.Hour}
	a, b := &recorder{name: "a"}, &recorder{name: "b"}
	s.Register(a, b)
	stored := func(f func(*Session)) *Session {
		c, _, _ := request(t, s, nil, f)
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(c)
		sess, err := s.Load(r)
		if err != nil || sess == nil {
			t.Fatalf("load = %v, %v", sess, err)
		}
		return sess
	}
	sess := stored(func(v *Session) {
		v.Enterprise, v.User, v.SID = "demo", "u1", "sid-1"
		v.AddRP("app")
		v.AddSP(SP{EntityID: "https://sp.test", NameID: "_t1", SessionIndex: "sid-1"})
	})
	r := httptest.NewRequest("POST", "/logout", nil)
	if err := s.End(httptest.NewRecorder(), r, sess); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*recorder{a, b} {
		if len(p.ended) != 1 || p.ended[0].SID != "sid-1" || len(p.ended[0].RPs) != 1 || p.ended[0].SPs[0].NameID != "_t1" {
			t.Fatalf("%s heard %+v", p.name, p.ended)
		}
	}
	if got := s.LogoutHops(context.Background(), sess, "/login"); got != "/a?sid=sid-1&next=/b?sid=sid-1&next=/login" {
		t.Fatalf("hops = %s", got)
	}
	stored(func(v *Session) { v.Enterprise, v.User = "demo", "u2" })
	if n, err := s.RevokeUser(context.Background(), "demo", "u2"); err != nil || n != 1 || len(a.ended) != 2 || a.ended[1].User != "u2" {
		t.Fatalf("revoke = %d, %v; heard %d", n, err, len(a.ended))
	}
}

// TestRevokeUserSource ends only the sessions opened through the given source; the others stay
// live and still indexed, so a later RevokeUser ends them.
func TestRevokeUserSource(t *testing.T) {
	st := state.NewMemory()
	defer st.Close()
	s := &Store{State: st, CookieName: "qiao_sso", Idle: time.Hour}
	a := &recorder{name: "a"}
	s.Register(a)
	for _, src := range []string{"wecom", "dingtalk", "wecom"} {
		request(t, s, nil, func(v *Session) { v.Enterprise, v.User, v.Source = "demo", "u1", src })
	}
	if n, err := s.RevokeUserSource(context.Background(), "demo", "u1", "wecom"); err != nil || n != 2 {
		t.Fatalf("RevokeUserSource = %d, %v; want the two wecom sessions", n, err)
	}
	for _, e := range a.ended {
		if e.Source != "wecom" {
			t.Fatalf("a %s session was ended", e.Source)
		}
	}
	if n, err := s.RevokeUser(context.Background(), "demo", "u1"); err != nil || n != 1 || a.ended[2].Source != "dingtalk" {
		t.Fatalf("RevokeUser after = %d, %v; want the dingtalk session", n, err)
	}
}
