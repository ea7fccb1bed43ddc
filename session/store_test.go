package session

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/internal/state"
)

func stores(t *testing.T) map[string]state.Store {
	out := map[string]state.Store{"memory": state.NewMemory()}
	if dsn := os.Getenv("QIAO_TEST_REDIS"); dsn != "" {
		r, err := state.Open(dsn)
		if err != nil {
			t.Fatal(err)
		}
		out["redis"] = r
	}
	for _, s := range out {
		t.Cleanup(func() { s.Close() })
	}
	return out
}

// request runs one request through the store: read the session, let f change it, save it, and
// return the Set-Cookie the browser would keep.
func request(t *testing.T, s *Store, cookie *http.Cookie, f func(sess *Session)) (*http.Cookie, *Session, bool) {
	t.Helper()
	r := httptest.NewRequest("GET", "/", nil)
	if cookie != nil {
		r.AddCookie(cookie)
	}
	sess, err := s.Load(r)
	if err != nil {
		t.Fatal(err)
	}
	isNew := sess == nil
	if isNew {
		sess = &Session{}
	}
	if f != nil {
		f(sess)
	}
	w := httptest.NewRecorder()
	if err := s.Save(w, r, sess); err != nil {
		t.Fatal(err)
	}
	cs := w.Result().Cookies()
	if len(cs) != 1 {
		t.Fatalf("%d cookies set", len(cs))
	}
	return cs[0], sess, isNew
}

func TestSessionStore(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			var clock atomic.Int64
			clock.Store(time.Now().UnixNano())
			s := &Store{State: st, CookieName: "qiao_sso", Idle: 30 * time.Minute, Absolute: 8 * time.Hour, Secure: true,
				Now: func() time.Time { return time.Unix(0, clock.Load()) }}
			c1, _, isNew := request(t, s, nil, func(v *Session) { v.Enterprise, v.User = "demo", "u-"+name })
			if !isNew || !c1.HttpOnly || !c1.Secure || c1.SameSite != http.SameSiteLaxMode || len(c1.Value) != 43 {
				t.Fatalf("cookie = %+v", c1)
			}
			_, vals, isNew := request(t, s, c1, nil)
			if isNew || vals.User != "u-"+name {
				t.Fatalf("second request: new=%v values=%v", isNew, vals)
			}
			// Fixation: an ID the store never issued is not adopted.
			planted := &http.Cookie{Name: "qiao_sso", Value: strings.Repeat("A", 43)}
			c2, _, isNew := request(t, s, planted, func(v *Session) { v.User = "y" })
			if !isNew || c2.Value == planted.Value {
				t.Fatal("a planted session ID was adopted")
			}
			// Start at login: the old ID stops working.
			r := httptest.NewRequest("GET", "/", nil)
			r.AddCookie(c1)
			sess, _ := s.Load(r)
			w := httptest.NewRecorder()
			if err := s.Start(w, r, sess); err != nil {
				t.Fatal(err)
			}
			c3 := w.Result().Cookies()[0]
			if c3.Value == c1.Value {
				t.Fatal("Regenerate kept the ID")
			}
			if _, _, isNew := request(t, s, c1, nil); !isNew {
				t.Fatal("the pre-login ID still opens the session")
			}
			// RevokeUser ends every session of the user, and only theirs.
			other, _, _ := request(t, s, nil, func(v *Session) { v.Enterprise, v.User = "demo", "someone-else" })
			c4, _, _ := request(t, s, nil, func(v *Session) { v.Enterprise, v.User = "demo", "u-"+name })
			n, err := s.RevokeUser(context.Background(), "demo", "u-"+name)
			if err != nil || n != 2 {
				t.Fatalf("RevokeUser = %d, %v (want the regenerated session and the new one)", n, err)
			}
			for _, c := range []*http.Cookie{c3, c4} {
				if _, _, isNew := request(t, s, c, nil); !isNew {
					t.Fatal("a revoked session still opens")
				}
			}
			if _, vals, isNew := request(t, s, other, nil); isNew || vals.User != "someone-else" {
				t.Fatal("RevokeUser ended another user's session")
			}
			// Absolute timeout, however active the session.
			c5, _, _ := request(t, s, nil, func(v *Session) { v.User = "z" })
			for i := 0; i < 17; i++ {
				clock.Add(int64(29 * time.Minute))
				if _, _, isNew := request(t, s, c5, nil); isNew && i < 15 {
					t.Fatalf("session ended early at step %d", i)
				}
			}
			if _, _, isNew := request(t, s, c5, nil); !isNew {
				t.Fatal("a session outlived its absolute timeout")
			}
			// Logout deletes the session and the cookie.
			c6, _, _ := request(t, s, nil, func(v *Session) { v.User = "z" })
			r = httptest.NewRequest("GET", "/", nil)
			r.AddCookie(c6)
			sess, _ = s.Load(r)
			w = httptest.NewRecorder()
			if err := s.End(w, r, sess); err != nil {
				t.Fatal(err)
			}
			if cs := w.Result().Cookies(); len(cs) != 1 || cs[0].MaxAge >= 0 {
				t.Fatalf("logout cookie = %+v", cs)
			}
			if _, _, isNew := request(t, s, c6, nil); !isNew {
				t.Fatal("a logged-out session still opens")
			}
		})
	}
}

// TestIdleTimeout uses real time: the idle TTL lives in the state store.
func TestIdleTimeout(t *testing.T) {
	st := state.NewMemory()
	defer st.Close()
	s := &Store{State: st, CookieName: "qiao_sso", Idle: 150 * time.Millisecond, Absolute: time.Hour}
	c, _, _ := request(t, s, nil, func(v *Session) { v.User = "u" })
	time.Sleep(300 * time.Millisecond)
	if _, _, isNew := request(t, s, c, nil); !isNew {
		t.Fatal("an idle session survived its idle timeout")
	}
}

func TestSessionsPerUserAreBounded(t *testing.T) {
	st := state.NewMemory()
	defer st.Close()
	s := &Store{State: st, CookieName: "qiao_sso", Idle: time.Hour, Absolute: 2 * time.Hour}
	var cookies []*http.Cookie
	for i := 0; i < MaxSessionsPerUser+3; i++ {
		c, _, _ := request(t, s, nil, func(v *Session) { v.Enterprise, v.User = "demo", "busy" })
		cookies = append(cookies, c)
	}
	for i, c := range cookies {
		_, _, isNew := request(t, s, c, nil)
		if isNew != (i < 3) {
			t.Fatalf("session %d: ended = %v", i, isNew)
		}
	}
}

// An enterprise's live sessions are counted: logins add, logout, revocation, a new login in the
// same browser and the per-user bound take away, the idle timeout ends the count too, and another
// enterprise's sessions are not counted.
func TestCountEnterprise(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			ent := "count" + strings.ReplaceAll(time.Now().Format("150405.000000000"), ".", "")
			s := &Store{State: st, CookieName: "qiao_sso", Idle: time.Hour, Absolute: 2 * time.Hour}
			count := func(want int64) {
				t.Helper()
				if n, err := s.CountEnterprise(ctx, ent); err != nil || n != want {
					t.Fatalf("CountEnterprise = %d, %v; want %d", n, err, want)
				}
			}
			count(0)
			login := func(ent, uid string, old *http.Cookie) *http.Cookie {
				r := httptest.NewRequest("GET", "/", nil)
				if old != nil {
					r.AddCookie(old)
				}
				w := httptest.NewRecorder()
				if err := s.Start(w, r, &Session{Enterprise: ent, User: uid}); err != nil {
					t.Fatal(err)
				}
				return w.Result().Cookies()[0]
			}
			login(ent, "a", nil)
			login(ent, "a", nil)
			b := login(ent, "b", nil)
			login("other"+ent, "a", nil)
			count(3)
			// Saving a session again (an app joined it) does not count it twice.
			request(t, s, b, func(v *Session) { v.RPs = append(v.RPs, "app") })
			count(3)
			// A new login in the same browser ends the session it had.
			b = login(ent, "b", b)
			count(3)
			r := httptest.NewRequest("GET", "/", nil)
			r.AddCookie(b)
			sess, err := s.Load(r)
			if err != nil || sess == nil {
				t.Fatalf("Load = %v, %v", sess, err)
			}
			if err := s.End(httptest.NewRecorder(), r, sess); err != nil {
				t.Fatal(err)
			}
			count(2)
			if n, err := s.RevokeUser(ctx, ent, "a"); err != nil || n != 2 {
				t.Fatalf("RevokeUser = %d, %v", n, err)
			}
			count(0)
			// The idle timeout ends a session's count with the session.
			short := &Store{State: st, CookieName: "qiao_sso", Idle: 300 * time.Millisecond, Absolute: time.Hour}
			sr := httptest.NewRequest("GET", "/", nil)
			if err := short.Start(httptest.NewRecorder(), sr, &Session{Enterprise: ent, User: "c"}); err != nil {
				t.Fatal(err)
			}
			count(1)
			time.Sleep(600 * time.Millisecond)
			count(0)
		})
	}
}
