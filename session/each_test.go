package session

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// TestEachUserSession: every live session of the person is visited; what fn changes is stored
// (and only that: the others stay byte for byte, another person's are not visited), nobody is
// told, and a session that ended while it was being visited is not brought back.
func TestEachUserSession(t *testing.T) {
	ctx := context.Background()
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			s := &Store{State: st, CookieName: "qiao_sso", Idle: time.Hour}
			heard := &recorder{name: "a"}
			s.Register(heard)
			uid := "u-each-" + name + "-" + newID()[:8]
			load := func(c *http.Cookie) *Session {
				r := httptest.NewRequest("GET", "/", nil)
				r.AddCookie(c)
				v, err := s.Load(r)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			gone := SP{EntityID: "https://gone.test", NameID: "n1", SessionIndex: "sid"}
			kept := SP{EntityID: "https://kept.test", NameID: "n2", SessionIndex: "sid"}
			both, _, _ := request(t, s, nil, func(v *Session) {
				v.Enterprise, v.User, v.SID = "demo", uid, "sid-both"
				v.AddRP("app")
				v.AddSP(gone)
				v.AddSP(kept)
			})
			other, _, _ := request(t, s, nil, func(v *Session) {
				v.Enterprise, v.User, v.SID = "demo", uid, "sid-other"
				v.AddSP(kept)
			})
			ending, _, _ := request(t, s, nil, func(v *Session) {
				v.Enterprise, v.User, v.SID = "demo", uid, "sid-ending"
				v.AddSP(gone)
			})
			stranger, _, _ := request(t, s, nil, func(v *Session) {
				v.Enterprise, v.User, v.SID = "demo", uid+"-2", "sid-stranger"
				v.AddSP(gone)
			})
			otherBefore, _ := st.Get(ctx, sessionKey(other.Value))

			var visited []string
			err := s.EachUserSession(ctx, "demo", uid, func(v *Session) bool {
				visited = append(visited, v.SID)
				i := slices.IndexFunc(v.SPs, func(sp SP) bool { return sp.EntityID == gone.EntityID })
				if i < 0 {
					return false
				}
				if v.SID == "sid-ending" {
					// It ends (a logout elsewhere) while it is being changed.
					if err := st.Delete(ctx, sessionKey(v.ID)); err != nil {
						t.Fatal(err)
					}
				}
				v.SPs = slices.Delete(v.SPs, i, i+1)
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(visited)
			if !slices.Equal(visited, []string{"sid-both", "sid-ending", "sid-other"}) {
				t.Fatalf("visited %v, want the person's three sessions", visited)
			}
			if v := load(both); v == nil || v.SID != "sid-both" || !slices.Equal(v.SPs, []SP{kept}) || !slices.Equal(v.RPs, []string{"app"}) {
				t.Fatalf("the changed session is %+v, want it live without %s and otherwise the same", v, gone.EntityID)
			}
			if after, _ := st.Get(ctx, sessionKey(other.Value)); string(after) != string(otherBefore) {
				t.Fatalf("a session fn did not change was rewritten:\n%s\n%s", otherBefore, after)
			}
			if v := load(ending); v != nil {
				t.Fatalf("a session that ended meanwhile came back: %+v", v)
			}
			if v := load(stranger); v == nil || len(v.SPs) != 1 {
				t.Fatalf("another person's session was changed: %+v", v)
			}
			if len(heard.ended) != 0 {
				t.Fatalf("participants heard of %d ended sessions; changing a session ends none", len(heard.ended))
			}
			if err := s.EachUserSession(ctx, "demo", "nobody-"+uid, func(*Session) bool { t.Fatal("visited a session of nobody"); return false }); err != nil {
				t.Fatal(err)
			}
		})
	}
}
