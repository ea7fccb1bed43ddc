package gateway

import (
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	csaml "github.com/crewjam/saml"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/dirsync"
	"github.com/qiao-gateway/qiao/federation/simorg"
	"github.com/qiao-gateway/qiao/internal/config"
	"github.com/qiao-gateway/qiao/internal/pgtemp"
)

// TestWeComConsentIsKept: what a person discloses on WeCom's consent page (in-app login,
// snsapi_privateinfo, auth/getuserdetail) updates their directory record, recorded as a sync
// change, and reaches OIDC claims and SAML attributes.
func TestWeComConsentIsKept(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testConsentIsKept(t, nil) })
	t.Run("postgres+redis", func(t *testing.T) {
		pg, rd := os.Getenv("QIAO_TEST_POSTGRES"), os.Getenv("QIAO_TEST_REDIS")
		if pg == "" || rd == "" {
			t.Skip("QIAO_TEST_POSTGRES and QIAO_TEST_REDIS not both set: PostgreSQL+Redis run skipped")
		}
		testConsentIsKept(t, func(c *config.Config) { c.Storage, c.State = pgtemp.New(t, pg, "qiao_gw"), rd })
	})
}

const inAppUA = "Mozilla/5.0 (iPhone) wxwork/4.1.0 MicroMessenger/7.0.1"

func testConsentIsKept(t *testing.T, store func(*config.Config)) {
	sp := newTestSP(t, "consent", false, false)
	w := newWorld(t, 30, t.TempDir(), true, func(c *config.Config) {
		if store != nil {
			store(c)
		}
		e := &c.Enterprises[0]
		for i := range e.Sources {
			if e.Sources[i].ID == "wecom" {
				e.Sources[i].Config["inapp_detail"] = "true"
			}
		}
		e.Clients = append(e.Clients, config.Client{ID: "consent-app", Type: "web", Secret: "consent-app-secret", AuthMethod: "client_secret_post",
			RedirectURIs: []string{"https://app.example/cb"}, Claims: map[string]string{"avatar": "ext.avatar", "gender": "ext.gender", "biz_mail": "ext.biz_mail"}})
		e.ServiceProviders = append(e.ServiceProviders, config.ServiceProvider{EntityID: sp.entity, Name: "consent", Metadata: sp.metadata(),
			Attributes: map[string]string{"mail": "email", "mobile": "mobile", "avatar": "ext.avatar"}})
	})
	// Two members synced while the directory could not see their mobile and email (the contact
	// API withholds them from apps created after 2022-06-20); WeCom knows them.
	org := w.wsim.Org()
	full := []*simorg.User{
		{UserID: "consent1", Name: "同意一", Depts: []int{2}, Status: simorg.StatusActive, Mobile: "13912340001", Email: "consent1@example.com",
			BizMail: "consent1@corp.example.com", Avatar: "https://wework.qpic.cn/wwpic/consent1/0", Gender: "2"},
		{UserID: "consent2", Name: "同意二", Depts: []int{2}, Status: simorg.StatusActive, Mobile: "13912340002",
			BizMail: "consent2@corp.example.com", Gender: "0"},
	}
	for _, u := range full {
		bare := &simorg.User{UserID: u.UserID, Name: u.Name, Depts: u.Depts, Status: u.Status}
		if _, err := org.PutUser(bare, true); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.gw.Sync.Run(w.ctx, "demo", "wecom", dirsync.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, u := range full {
		if _, err := org.PutUser(u, false); err != nil {
			t.Fatal(err)
		}
	}
	if u := w.user("consent1"); u == nil || u.Mobile != "" || u.Email != "" || len(u.Attributes) != 0 {
		t.Fatalf("consent1 before consenting = %+v", u)
	}
	tasks := func() []*directory.SyncTask {
		ts, err := w.gw.Store.ListSyncTasks(w.ctx, "demo", "wecom", 100)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	before := len(tasks())

	// consent1 opens an app inside WeCom: OIDC, in-app OAuth with consent, back to the app.
	o := &oidcWorld{world: w, iss: w.base + "/e/demo"}
	b := newBrowser(t)
	b.ua = inAppUA
	b.stop = "https://app.example/"
	q := url.Values{"client_id": {"consent-app"}, "response_type": {"code"}, "scope": {"openid profile email phone"},
		"redirect_uri": {"https://app.example/cb"}, "state": {"st-1"}, "nonce": {"n-1"}, "idp_hint": {"wecom"}}
	status, page, at := b.get(o.iss+"/authorize?"+q.Encode(), "consent1")
	privateinfo := false
	for _, u := range b.log {
		privateinfo = privateinfo || strings.Contains(u, "/connect/oauth2/authorize?") && strings.Contains(u, "scope=snsapi_privateinfo")
	}
	if status != 0 || !privateinfo {
		t.Fatalf("in-app consent login: %d at %s, snsapi_privateinfo asked: %v\n%s\n%v", status, at, privateinfo, page, b.log)
	}

	// The directory keeps what getuserdetail returned.
	u := w.user("consent1")
	if u.Mobile != "13912340001" || u.Email != "consent1@example.com" || u.Attributes["biz_mail"] != "consent1@corp.example.com" ||
		u.Attributes["avatar"] != "https://wework.qpic.cn/wwpic/consent1/0" || u.Attributes["gender"] != "2" {
		t.Fatalf("consent1 after consenting = %+v", u)
	}
	// Recorded like a sync change: a consent task of the source with one user record.
	ts := tasks()
	if len(ts) != before+1 {
		t.Fatalf("tasks after the consent: %d, want %d", len(ts), before+1)
	}
	task := ts[0]
	if task.Trigger != directory.TriggerConsent || task.ReadMode != "wecom-consent" || task.Status != directory.TaskSucceeded ||
		task.Counts["update"] != 1 || task.FinishedAt.IsZero() {
		t.Fatalf("consent task = %+v", task)
	}
	recs, err := w.gw.Store.ListSyncRecords(w.ctx, directory.RecordQuery{TaskID: task.ID, Limit: 10})
	if err != nil || len(recs) != 1 {
		t.Fatalf("consent records = %v %v", recs, err)
	}
	rec := recs[0]
	var up, lb, la map[string]any
	if rec.ObjectType != "user" || rec.UpstreamID != "consent1" || rec.Action != "update" ||
		json.Unmarshal(rec.Upstream, &up) != nil || json.Unmarshal(rec.LocalBefore, &lb) != nil || json.Unmarshal(rec.LocalAfter, &la) != nil {
		t.Fatalf("consent record = %+v", rec)
	}
	if up["source"] != "wecom-consent" || up["mobile"] != "13912340001" || up["email"] != "consent1@example.com" || up["gender"] != "2" ||
		lb["email"] != "" || lb["mobile"] != "" || la["email"] != "consent1@example.com" || la["mobile"] != "13912340001" || la["id"] != u.ID {
		t.Fatalf("consent record: upstream %s, before %s, after %s", rec.Upstream, rec.LocalBefore, rec.LocalAfter)
	}

	// The ID token and userinfo carry them.
	st, tok := o.token(url.Values{"grant_type": {"authorization_code"}, "code": {codeOf(t, at)}, "redirect_uri": {"https://app.example/cb"},
		"client_id": {"consent-app"}, "client_secret": {"consent-app-secret"}})
	if st != 200 || tok["id_token"] == nil {
		t.Fatalf("token: %d %v", st, tok)
	}
	claims, _ := o.verifyJWT(tok["id_token"].(string))
	req := mustReq("GET", o.iss+"/userinfo", "")
	req.Header.Set("Authorization", "Bearer "+tok["access_token"].(string))
	st, ui, _ := getJSON(t, req)
	for name, c := range map[string]map[string]any{"ID token": claims, "userinfo": ui} {
		if c["sub"] != u.ID || c["email"] != "consent1@example.com" || c["phone_number"] != "13912340001" || c["gender"] != "2" ||
			c["avatar"] != "https://wework.qpic.cn/wwpic/consent1/0" || c["biz_mail"] != "consent1@corp.example.com" {
			t.Fatalf("%s claims (userinfo %d): %s", name, st, toJSON(c))
		}
	}

	// A SAML app mapping mail and mobile receives them (IdP-initiated, the same SSO session).
	got := samlAttributes(t, w, b, sp)
	if got["mail"] != "consent1@example.com" || got["mobile"] != "13912340001" || got["avatar"] != "https://wework.qpic.cn/wwpic/consent1/0" {
		t.Fatalf("SAML attributes = %v", got)
	}

	// The same consent again writes nothing: no task, no record, the same record.
	inApp := func(who string) {
		t.Helper()
		nb := newBrowser(t)
		nb.ua = inAppUA
		if status, page, at := nb.get(w.base+"/login/e/demo/s/wecom", who); status != 200 || !strings.HasSuffix(at, "/login/done") {
			t.Fatalf("in-app login of %s: %d at %s\n%s", who, status, at, page)
		}
	}
	inApp("consent1")
	if n := len(tasks()); n != before+1 {
		t.Fatalf("a repeated identical consent wrote %d tasks", n-before-1)
	}
	if again := w.user("consent1"); !again.UpdatedAt.Equal(u.UpdatedAt) {
		t.Fatalf("a repeated identical consent rewrote the user: %v then %v", u.UpdatedAt, again.UpdatedAt)
	}

	// Upstream the email changes and the mobile is no longer disclosed: the email is updated, the
	// kept mobile is not cleared.
	c1 := *org.User("consent1")
	c1.Email, c1.Mobile = "consent1.new@example.com", ""
	if _, err := org.PutUser(&c1, false); err != nil {
		t.Fatal(err)
	}
	inApp("consent1")
	if u := w.user("consent1"); u.Email != "consent1.new@example.com" || u.Mobile != "13912340001" {
		t.Fatalf("consent1 after a changed consent = %+v", u)
	}
	if n := len(tasks()); n != before+2 {
		t.Fatalf("a changed consent: %d new tasks, want 2", n-before)
	}

	// While a sync task of the source runs, the login goes through and keeps nothing; the next
	// login keeps it. No email but a business email: the business email is the email; gender "0"
	// (not disclosed) is not kept.
	lease, err := w.gw.State.Lock(w.ctx, "sync:demo/wecom", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	inApp("consent2")
	if u := w.user("consent2"); u.Email != "" || u.Mobile != "" {
		t.Fatalf("kept during a running sync task: %+v", u)
	}
	if err := lease.Release(w.ctx); err != nil {
		t.Fatal(err)
	}
	inApp("consent2")
	if u := w.user("consent2"); u.Email != "consent2@corp.example.com" || u.Mobile != "13912340002" ||
		u.Attributes["biz_mail"] != "consent2@corp.example.com" || u.Attributes["gender"] != "" || len(u.Attributes) != 1 {
		t.Fatalf("consent2 = %+v", u)
	}
	if ts := tasks(); len(ts) != before+3 || ts[0].Trigger != directory.TriggerConsent {
		t.Fatalf("consent2's task: %d new tasks, newest %+v", len(ts)-before, ts[0])
	}
}

// samlAttributes launches sp from browser b's SSO session (IdP-initiated) and returns the
// attributes of the assertion sp accepted.
func samlAttributes(t *testing.T, w *world, b *browser, sp *testSP) map[string]string {
	t.Helper()
	resp, err := http.Get(w.base + "/e/demo/saml/metadata")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var md csaml.EntityDescriptor
	if err := xml.Unmarshal(raw, &md); err != nil {
		t.Fatalf("IdP metadata: %v", err)
	}
	sp.IDPMetadata = &md
	b.stop = ""
	status, page, _ := b.get(w.base+"/e/demo/saml/launch?sp="+url.QueryEscape(sp.entity), "")
	action, f := postForm(t, page)
	if status != 200 || action != sp.acs {
		t.Fatalf("IdP-initiated launch: %d %s", status, action)
	}
	xmlResp, _ := base64.StdEncoding.DecodeString(f["SAMLResponse"])
	acs, _ := url.Parse(sp.acs)
	a, err := sp.ParseXMLResponse(xmlResp, nil, *acs)
	if err != nil {
		t.Fatalf("the SP refused the response: %v", err.(*csaml.InvalidResponseError).PrivateErr)
	}
	got := map[string]string{}
	for _, st := range a.AttributeStatements {
		for _, at := range st.Attributes {
			got[at.Name] = at.Values[0].Value
		}
	}
	return got
}
