package access_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/access"
	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/sqlstore"
	"github.com/qiao-gateway/qiao/internal/secretbox"
)

type fakeSessions struct {
	ended []string
	err   error
}

func (f *fakeSessions) RevokeUserSource(_ context.Context, ent, uid, src string) (int, error) {
	f.ended = append(f.ended, ent+"/"+uid+"@"+src)
	return 1, f.err
}

func (f *fakeSessions) RevokeUser(_ context.Context, ent, uid string) (int, error) {
	f.ended = append(f.ended, ent+"/"+uid)
	return 2, f.err
}

type fakeHolders struct{ told map[string][]string }

func (f *fakeHolders) UserDeparted(_ context.Context, ent, uid string, clients []string) {
	f.told[ent+"/"+uid] = clients
}

func newStore(t *testing.T) directory.Store {
	t.Helper()
	box, err := secretbox.New(make([]byte, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	s, err := sqlstore.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "qiao.db"), box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.PutEnterprise(context.Background(), &directory.Enterprise{ID: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	return s
}

// EndUser ends the person's sessions, revokes their refresh tokens (and only theirs), tells the
// token holders which clients held them, and audits it; a failing step does not stop the others.
func TestEndUser(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	now := time.Now()
	for i, tok := range []struct{ user, client string }{{"u1", "sase"}, {"u1", "web"}, {"u2", "sase"}} {
		if err := st.CreateRefreshToken(ctx, &directory.RefreshToken{ID: "t" + string(rune('0'+i)), FamilyID: "f" + string(rune('0'+i)),
			EnterpriseID: "acme", ClientID: tok.client, UserID: tok.user, AuthTime: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	sess := &fakeSessions{}
	holders := &fakeHolders{told: map[string][]string{}}
	svc := &access.Service{Store: st, Sessions: sess, Holders: []access.TokenHolders{holders}}
	if err := svc.EndUser(ctx, "acme", "u1", access.Departed); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sess.ended, []string{"acme/u1"}) {
		t.Fatalf("sessions ended for %v", sess.ended)
	}
	told := holders.told["acme/u1"]
	slices.Sort(told)
	if !slices.Equal(told, []string{"sase", "web"}) {
		t.Fatalf("holders told of %v", told)
	}
	if cs, _ := st.RefreshTokenClients(ctx, "acme", "u1", now); len(cs) != 0 {
		t.Fatalf("u1 still holds refresh tokens at %v", cs)
	}
	if cs, _ := st.RefreshTokenClients(ctx, "acme", "u2", now); len(cs) != 1 {
		t.Fatalf("u2's token was revoked too: %v", cs)
	}
	ev, _ := st.ListAuditEvents(ctx, directory.AuditQuery{EnterpriseID: "acme", Kind: "user.revoke"})
	if len(ev) != 1 || ev[0].UserID != "u1" || ev[0].Outcome != "ok" || ev[0].Actor != "sync" ||
		!strings.Contains(string(ev[0].Detail), `"refresh_tokens":2`) || !strings.Contains(string(ev[0].Detail), `"sessions":2`) {
		t.Fatalf("audit = %+v", ev)
	}

	// The session store failing: the tokens are still revoked and the failure is audited.
	sess.err = errors.New("state store down")
	err := svc.EndUser(ctx, "acme", "u2", access.Departed)
	if err == nil || !strings.Contains(err.Error(), "state store down") {
		t.Fatalf("EndUser with a failing session store = %v", err)
	}
	if cs, _ := st.RefreshTokenClients(ctx, "acme", "u2", now); len(cs) != 0 {
		t.Fatalf("a session failure left u2's refresh tokens live: %v", cs)
	}
	ev, _ = st.ListAuditEvents(ctx, directory.AuditQuery{EnterpriseID: "acme", Kind: "user.revoke"})
	if len(ev) != 2 || ev[0].UserID != "u2" || ev[0].Outcome != "error" {
		t.Fatalf("audit after a failure = %+v", ev)
	}
}
