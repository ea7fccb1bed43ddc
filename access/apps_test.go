package access_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/access"
	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/state"
	"github.com/qiao-gateway/qiao/session"
)

type fakeOIDC struct {
	ended []string
	at    time.Time
	err   error
}

func (f *fakeOIDC) ClientEnded(_ context.Context, ent, id string, at time.Time) error {
	f.ended, f.at = append(f.ended, ent+"/"+id), at
	return f.err
}

// fakeSAML tells every session it is asked about, and records which.
type fakeSAML struct {
	mu    sync.Mutex
	ended []string
	last  *directory.ServiceProvider
	told  []string
}

func (f *fakeSAML) SPEnded(_ context.Context, ent, entity string, last *directory.ServiceProvider) func(context.Context, *session.Session) bool {
	f.ended, f.last = append(f.ended, ent+"/"+entity), last
	return func(_ context.Context, v *session.Session) bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.told = append(f.told, v.SID)
		return true
	}
}

func lastJob(t *testing.T, st directory.Store) *directory.AccessJob {
	t.Helper()
	jobs, err := st.ListAccessJobs(context.Background(), "acme", 10)
	if err != nil || len(jobs) == 0 {
		t.Fatalf("no access job: %v", err)
	}
	return jobs[0]
}

func auditOf(t *testing.T, st directory.Store, kind string) (*directory.AuditEvent, map[string]any) {
	t.Helper()
	evs, _ := st.ListAuditEvents(context.Background(), directory.AuditQuery{EnterpriseID: "acme", Kind: kind})
	if len(evs) == 0 {
		t.Fatalf("no %s audit event", kind)
	}
	var d map[string]any
	_ = json.Unmarshal(evs[0].Detail, &d)
	return evs[0], d
}

// Disabling a client stores it disabled and queues its job in the same transaction; the job
// revokes the client's refresh tokens (and only its), tells the OpenID Provider, and audits the
// count. Enabling queues nothing; the same state again changes nothing. Deleting it revokes and
// removes its tokens in the transaction and the job reports that count.
func TestClientLifecycle(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	for _, id := range []string{"web", "other"} {
		if err := st.PutClient(ctx, &directory.OIDCClient{EnterpriseID: "acme", ID: id, Type: directory.ClientWeb, Secret: "s"}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	for i, c := range []string{"web", "web", "other"} {
		if err := st.CreateRefreshToken(ctx, &directory.RefreshToken{ID: "t" + string(rune('0'+i)), FamilyID: "f" + string(rune('0'+i)),
			EnterpriseID: "acme", ClientID: c, UserID: "u1", AuthTime: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	oidc := &fakeOIDC{}
	svc := &access.Service{Store: st, Sessions: &fakeSessions{}, OIDC: oidc}

	if _, err := access.SetClientEnabled(ctx, st, "acme", "nobody", false, "admin", ""); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("disable an unknown client = %v, want ErrNotFound", err)
	}
	changed, err := access.SetClientEnabled(ctx, st, "acme", "web", false, "admin", "lost laptop")
	if err != nil || !changed {
		t.Fatalf("disable = %v, %v", changed, err)
	}
	if c, _ := st.GetClient(ctx, "acme", "web"); !c.Disabled || c.Secret != "s" {
		t.Fatalf("stored client %+v, want disabled and otherwise the same", c)
	}
	j := lastJob(t, st)
	if j.Kind != directory.JobClientDisabled || j.Object != "web" || j.Actor != "admin" || j.Reason != "lost laptop" {
		t.Fatalf("job %+v", j)
	}
	if changed, err := access.SetClientEnabled(ctx, st, "acme", "web", false, "admin", ""); err != nil || changed {
		t.Fatalf("disable again = %v, %v; want no change", changed, err)
	}
	if n := svc.DrainJobs(ctx); n != 1 {
		t.Fatalf("drained %d jobs, want 1", n)
	}
	for id, revoked := range map[string]bool{"t0": true, "t1": true, "t2": false} {
		if rt, _ := st.GetRefreshToken(ctx, id); rt.RevokedAt.IsZero() == revoked {
			t.Fatalf("refresh token %s revoked = %v, want %v", id, !rt.RevokedAt.IsZero(), revoked)
		}
	}
	if !slices.Equal(oidc.ended, []string{"acme/web"}) || oidc.at.IsZero() {
		t.Fatalf("OpenID Provider told %v at %v", oidc.ended, oidc.at)
	}
	ev, d := auditOf(t, st, "app.disable")
	if ev.Actor != "admin" || ev.Reason != "lost laptop" || ev.Outcome != "ok" || d["object"] != "web" || d["app"] != "oidc_client" || d["refresh_tokens"] != float64(2) {
		t.Fatalf("audit %+v %v", ev, d)
	}

	if changed, err := access.SetClientEnabled(ctx, st, "acme", "web", true, "admin", ""); err != nil || !changed {
		t.Fatalf("enable = %v, %v", changed, err)
	}
	if c, _ := st.GetClient(ctx, "acme", "web"); c.Disabled {
		t.Fatal("still disabled")
	}
	if j := lastJob(t, st); j.Kind != directory.JobClientDisabled || j.Status != directory.EventApplied {
		t.Fatalf("enabling queued %+v", j)
	}

	// A failure to tell the provider leaves the job pending, to be tried again.
	n, err := access.DeleteClient(ctx, st, "acme", "other", "config", "removed")
	if err != nil || n != 1 {
		t.Fatalf("delete = %d, %v", n, err)
	}
	if _, err := st.GetClient(ctx, "acme", "other"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("deleted client still there: %v", err)
	}
	if _, err := st.GetRefreshToken(ctx, "t2"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("the deleted client's refresh token is still stored: %v", err)
	}
	oidc.err = errors.New("state store down")
	if n := svc.DrainJobs(ctx); n != 0 {
		t.Fatalf("a failed job counted as done (%d)", n)
	}
	if j := lastJob(t, st); j.Kind != directory.JobClientDeleted || j.Status != directory.EventPending || j.Error == "" {
		t.Fatalf("failed job %+v, want pending with its error", j)
	}
	oidc.err = nil
	// The failed attempt's claim runs five minutes; once it has run out, the job is claimed again.
	if jobs, err := st.ClaimAccessJobs(ctx, time.Now().Add(6*time.Minute), time.Now().Add(10*time.Minute), 10); err != nil || len(jobs) != 1 {
		t.Fatalf("reclaim = %d, %v", len(jobs), err)
	} else if counts, err := svc.RunJob(ctx, jobs[0]); err != nil || counts["refresh_tokens"] != 1 {
		t.Fatalf("deleted client's job = %v, %v; want the count revoked in the transaction", counts, err)
	}
	if !slices.Equal(oidc.ended, []string{"acme/web", "acme/other", "acme/other"}) {
		t.Fatalf("OpenID Provider told %v", oidc.ended)
	}
}

// Disabling a service provider queues its job; the job tells the SAML IdP once, and removes the
// SP from every session of the enterprise's people that served it — the sessions go on, those
// that did not serve it are untouched — counting the sessions and the logouts sent. Deleting it
// keeps its record in the job, for the IdP to know where to send.
func TestServiceProviderLifecycle(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	const entity = "https://sp.example/md"
	if err := st.PutServiceProvider(ctx, &directory.ServiceProvider{EnterpriseID: "acme", EntityID: entity, MetadataXML: "<md/>"}); err != nil {
		t.Fatal(err)
	}
	mem := state.NewMemory()
	t.Cleanup(func() { mem.Close() })
	sessions := &session.Store{State: mem, CookieName: "qiao_sso", Idle: time.Hour}
	var uids []string
	for _, name := range []string{"a", "b"} {
		u := &directory.User{EnterpriseID: "acme", Username: name, Name: name}
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		uids = append(uids, u.ID)
	}
	save := func(uid, sid string, sps ...string) *session.Session {
		v := &session.Session{Enterprise: "acme", User: uid, SID: sid}
		for _, sp := range sps {
			v.AddSP(session.SP{EntityID: sp, NameID: "n-" + sid})
		}
		if err := sessions.Save(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	save(uids[0], "s1", entity, "https://other.example/md")
	save(uids[0], "s2", "https://other.example/md")
	save(uids[1], "s3", entity)
	saml := &fakeSAML{}
	svc := &access.Service{Store: st, Sessions: sessions, SAML: saml, UserSessions: sessions}

	if changed, err := access.SetSPEnabled(ctx, st, "acme", entity, false, "admin", "contract ended"); err != nil || !changed {
		t.Fatalf("disable = %v, %v", changed, err)
	}
	if sp, _ := st.GetServiceProvider(ctx, "acme", entity); !sp.Disabled || sp.MetadataXML != "<md/>" {
		t.Fatalf("stored SP %+v", sp)
	}
	if j := lastJob(t, st); j.Kind != directory.JobSPDisabled || j.Object != entity {
		t.Fatalf("job %+v", j)
	}
	if n := svc.DrainJobs(ctx); n != 1 {
		t.Fatalf("drained %d jobs", n)
	}
	slices.Sort(saml.told)
	if !slices.Equal(saml.ended, []string{"acme/" + entity}) || saml.last != nil || !slices.Equal(saml.told, []string{"s1", "s3"}) {
		t.Fatalf("SAML IdP: ended %v (last %v), told %v", saml.ended, saml.last, saml.told)
	}
	if _, d := auditOf(t, st, "app.disable"); d["app"] != "saml_sp" || d["sessions"] != float64(2) || d["soap_logouts"] != float64(2) {
		t.Fatalf("audit %v", d)
	}
	left := map[string][]string{}
	for _, uid := range uids {
		err := sessions.EachUserSession(ctx, "acme", uid, func(v *session.Session) bool {
			for _, sp := range v.SPs {
				left[v.SID] = append(left[v.SID], sp.EntityID)
			}
			if len(v.SPs) == 0 {
				left[v.SID] = []string{}
			}
			return false
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(left) != 3 || len(left["s1"]) != 1 || left["s1"][0] != "https://other.example/md" || len(left["s2"]) != 1 || len(left["s3"]) != 0 {
		t.Fatalf("sessions after: %v; want all three live, without %s", left, entity)
	}

	if err := access.DeleteSP(ctx, st, "acme", entity, "config", "removed"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetServiceProvider(ctx, "acme", entity); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("deleted SP still there: %v", err)
	}
	if err := access.DeleteSP(ctx, st, "acme", entity, "config", "removed"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("delete an unknown SP = %v", err)
	}
	if n := svc.DrainJobs(ctx); n != 1 {
		t.Fatalf("drained %d jobs", n)
	}
	if saml.last == nil || saml.last.EntityID != entity || saml.last.MetadataXML != "<md/>" {
		t.Fatalf("the IdP was given %+v, want the deleted SP's record", saml.last)
	}

	// Without a SAML IdP to tell, the job is not done.
	svc.SAML = nil
	if _, err := access.SetSPEnabled(ctx, st, "acme", entity, false, "admin", ""); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("disable a deleted SP = %v", err)
	}
	if err := st.PutServiceProvider(ctx, &directory.ServiceProvider{EnterpriseID: "acme", EntityID: entity, MetadataXML: "<md/>"}); err != nil {
		t.Fatal(err)
	}
	if _, err := access.SetSPEnabled(ctx, st, "acme", entity, false, "admin", ""); err != nil {
		t.Fatal(err)
	}
	if n := svc.DrainJobs(ctx); n != 0 {
		t.Fatalf("a job without a SAML IdP counted as done")
	}
}
