package gateway

import (
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/access"
	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/dirsync"
	"github.com/qiao-gateway/qiao/internal/config"
	"github.com/qiao-gateway/qiao/internal/pgtemp"
)

// backends are the storage backends the lifecycle tests run on: the embedded default, and
// PostgreSQL + Redis when the test servers are configured (CI always configures them).
func backends(t *testing.T) map[string]func(*config.Config) {
	b := map[string]func(*config.Config){"sqlite+memory": func(*config.Config) {}}
	pg, rd := os.Getenv("QIAO_TEST_POSTGRES"), os.Getenv("QIAO_TEST_REDIS")
	if pg == "" || rd == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must set QIAO_TEST_POSTGRES and QIAO_TEST_REDIS")
		}
		t.Log("QIAO_TEST_POSTGRES/QIAO_TEST_REDIS not set: PostgreSQL+Redis variant not run")
		return b
	}
	b["postgres+redis"] = func(c *config.Config) {
		c.Storage = pgtemp.New(t, pg, "qiao_gw")
		c.State = rd
	}
	return b
}

func (o *oidcWorld) webLogin(b *browser, idp string) map[string]any {
	o.t.Helper()
	q := url.Values{"client_id": {"web-es"}, "response_type": {"code"}, "scope": {"openid offline_access"}, "prompt": {"consent"},
		"redirect_uri": {"https://app.example/cb"}, "state": {"st-1"}, "nonce": {"n"}, "idp_hint": {idp}}
	at := o.login(b, q, "https://app.example/")
	st, tok := o.token(url.Values{"grant_type": {"authorization_code"}, "code": {codeOf(o.t, at)}, "redirect_uri": {"https://app.example/cb"},
		"client_id": {"web-es"}, "client_secret": {o.webSecret}})
	if st != 200 || tok["refresh_token"] == nil {
		o.t.Fatalf("web-es grant via %s: %d %v", idp, st, tok)
	}
	return tok
}

func (o *oidcWorld) refreshWeb(tok map[string]any) int {
	st, _ := o.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)},
		"client_id": {"web-es"}, "client_secret": {o.webSecret}})
	return st
}

// logoutFor waits for a back-channel logout token about user.
func (o *oidcWorld) logoutFor(what, user string) {
	o.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case lt := <-o.logouts:
			if c, _ := o.verifyJWT(lt); c["sub"] == user {
				return
			}
		case <-deadline:
			o.t.Fatalf("%s: no back-channel logout for %s", what, user)
		}
	}
}

// 张三 is in WeCom, DingTalk and the local directory. Deleted in WeCom: with WeCom authoritative
// (the default) he departs entirely — both grants end and the apps hear; with authoritative: false
// only what WeCom granted ends. On both backends.
func TestLeavingAWeComPersonAuthoritativeOrNot(t *testing.T) {
	for name, backend := range backends(t) {
		for _, authoritative := range []bool{true, false} {
			t.Run(name+"/authoritative="+map[bool]string{true: "true", false: "false"}[authoritative], func(t *testing.T) {
				auth := authoritative
				o := newOIDCWorldWith(t, backend, func(c *config.Config) {
					for i := range c.Enterprises[0].Sources {
						if c.Enterprises[0].Sources[i].Kind == "wecom" {
							c.Enterprises[0].Sources[i].Authoritative = &auth
						}
					}
				})
				wb, db := newBrowser(t), newBrowser(t)
				viaWeCom, viaDingTalk := o.webLogin(wb, "wecom"), o.webLogin(db, "dingtalk")
				zhang := o.user("zhangsan")
				o.ctl(o.wURL, "DELETE", "/_sim/users/zhangsan", "")
				kind := "user.revoke_source"
				if authoritative {
					kind = "user.revoke"
				}
				acked := time.Now()
				o.eventually("the WeCom event's access ending audited", func() bool {
					ev, _ := o.gw.Store.ListAuditEvents(o.ctx, directory.AuditQuery{EnterpriseID: "demo", Kind: kind, UserID: zhang.ID})
					return len(ev) > 0
				})
				t.Logf("event sent → access ended and audited: %v", time.Since(acked).Round(time.Millisecond))
				o.logoutFor("WeCom session", zhang.ID)
				if st := o.refreshWeb(viaWeCom); st != 400 {
					t.Fatalf("the WeCom-begun refresh token: %d, want 400", st)
				}
				if o.introspectAs("web-es", o.webSecret, viaWeCom["access_token"].(string))["active"] != false {
					t.Fatal("the WeCom-begun access token is active")
				}
				u := o.user("zhangsan")
				if authoritative {
					if u.Status != directory.UserDeparted || u.DepartedBy != "wecom" {
						t.Fatalf("authoritative WeCom: zhangsan is %s (departed by %q)", u.Status, u.DepartedBy)
					}
					if st := o.refreshWeb(viaDingTalk); st != 400 {
						t.Fatalf("authoritative WeCom: the DingTalk-begun refresh token: %d, want 400", st)
					}
					return
				}
				if u.Status != directory.UserActive {
					t.Fatalf("non-authoritative WeCom: zhangsan is %s", u.Status)
				}
				if st := o.refreshWeb(viaDingTalk); st != 200 {
					t.Fatalf("non-authoritative WeCom: the DingTalk-begun refresh token: %d, want 200", st)
				}
			})
		}
	}
}

// Closing a source ends what it granted — refused at once, ended by the job with one audit event
// and a count — while its events wait in the inbox and apply when it opens again.
func TestClosingASourceEndsWhatItGrantedAndKeepsItsEvents(t *testing.T) {
	for name, backend := range backends(t) {
		t.Run(name, func(t *testing.T) {
			o := newOIDCWorldWith(t, backend)
			wb, db := newBrowser(t), newBrowser(t)
			viaWeCom, viaDingTalk := o.webLogin(wb, "wecom"), o.webLogin(db, "dingtalk")
			zhang := o.user("zhangsan")
			changed, err := access.SetSourceEnabled(o.ctx, o.gw.Store, "demo", "wecom", false, "test", "closing for the test")
			if err != nil || !changed {
				t.Fatalf("close: %v %v", changed, err)
			}
			// Refused from the moment the change commits, before the job has run.
			if st := o.refreshWeb(viaWeCom); st != 400 {
				t.Fatalf("refresh through the closed source: %d", st)
			}
			wb.stop = "https://app.example/"
			if _, _, at := wb.get(o.iss+"/authorize?"+url.Values{"client_id": {"web-es"}, "response_type": {"code"}, "scope": {"openid"},
				"redirect_uri": {"https://app.example/cb"}, "state": {"st-1"}, "prompt": {"none"}}.Encode(), ""); !strings.Contains(at, "error=login_required") {
				t.Fatalf("SSO re-use of a closed source's session: %s", at)
			}
			o.gw.AccessNotify <- struct{}{}
			var audit []*directory.AuditEvent
			o.eventually("the close audited", func() bool {
				audit, _ = o.gw.Store.ListAuditEvents(o.ctx, directory.AuditQuery{EnterpriseID: "demo", Kind: "source.close"})
				return len(audit) > 0
			})
			if len(audit) != 1 || audit[0].SourceID != "wecom" || !strings.Contains(string(audit[0].Detail), `"refresh_tokens":1`) ||
				audit[0].Actor != "test" {
				t.Fatalf("close audit = %+v %s", audit, audit[0].Detail)
			}
			o.logoutFor("closed source's session", zhang.ID)
			if st := o.refreshWeb(viaDingTalk); st != 200 {
				t.Fatalf("the DingTalk grant after closing WeCom: %d", st)
			}
			// Events still arrive, verified and kept, but wait.
			o.ctl(o.wURL, "POST", "/_sim/users", `{"userid":"newbie","name":"新人","department":[2],"mobile":"13700000009"}`)
			o.eventually("the event stored", func() bool {
				evs, _ := o.gw.Store.ListSourceEvents(o.ctx, "demo", "wecom", 10)
				return len(evs) > 0
			})
			if _, err := o.gw.Sync.Run(o.ctx, "demo", "wecom", dirsync.Options{}); err == nil || !strings.Contains(err.Error(), "closed") {
				t.Fatalf("manual sync of a closed source: %v", err)
			}
			o.gw.Sync.DrainEvents(o.ctx)
			if evs, _ := o.gw.Store.ListSourceEvents(o.ctx, "demo", "wecom", 10); evs[0].Status != directory.EventPending {
				t.Fatalf("a closed source's event was %s", evs[0].Status)
			}
			if _, err := access.SetSourceEnabled(o.ctx, o.gw.Store, "demo", "wecom", true, "test", "reopen"); err != nil {
				t.Fatal(err)
			}
			o.gw.Sync.DrainEvents(o.ctx)
			o.eventually("the kept event applied after reopening", func() bool {
				evs, _ := o.gw.Store.ListSourceEvents(o.ctx, "demo", "wecom", 10)
				return len(evs) > 0 && evs[0].Status == directory.EventApplied
			})
			if o.user("newbie") == nil {
				t.Fatal("the kept create_user event did not create newbie")
			}
		})
	}
}

// Deleting a source: the plan first; deletion protection; then its links go, the people only it
// linked depart, and their access ends.
func TestDeletingASource(t *testing.T) {
	for name, backend := range backends(t) {
		t.Run(name, func(t *testing.T) {
			o := newOIDCWorldWith(t, backend)
			wb := newBrowser(t)
			viaWeCom := o.webLogin(wb, "wecom")
			src, _ := o.gw.Store.GetSource(o.ctx, "demo", "wecom")
			src.Sync.DeleteUsers = 10
			if err := o.gw.Store.PutSource(o.ctx, src); err != nil {
				t.Fatal(err)
			}
			plan, err := access.PlanSourceDeletion(o.ctx, o.gw.Store, o.gw.Sessions, "demo", "wecom")
			if err != nil {
				t.Fatal(err)
			}
			if plan.Links != 30 || plan.Departments == 0 || len(plan.Departing) == 0 || len(plan.Leaving) == 0 || plan.RefreshTokens != 1 ||
				plan.Sessions != 1 || plan.Protection == "" {
				t.Fatalf("plan = links %d, depts %d, departing %d, leaving %d, tokens %d, sessions %d, protection %q", plan.Links, plan.Departments,
					len(plan.Departing), len(plan.Leaving), plan.RefreshTokens, plan.Sessions, plan.Protection)
			}
			if _, err := access.DeleteSource(o.ctx, o.gw.Store, "demo", "wecom", false, "test", "t"); err == nil {
				t.Fatal("deletion past protection was not refused")
			}
			if _, err := o.gw.Store.GetSource(o.ctx, "demo", "wecom"); err != nil {
				t.Fatal("a refused deletion changed the store")
			}
			if _, err := access.DeleteSource(o.ctx, o.gw.Store, "demo", "wecom", true, "test", "t"); err != nil {
				t.Fatal(err)
			}
			if st := o.refreshWeb(viaWeCom); st != 400 {
				t.Fatalf("refresh through a deleted source: %d", st)
			}
			o.gw.AccessNotify <- struct{}{}
			o.eventually("deletion audited", func() bool {
				ev, _ := o.gw.Store.ListAuditEvents(o.ctx, directory.AuditQuery{EnterpriseID: "demo", Kind: "source.delete"})
				return len(ev) > 0
			})
			for _, u := range plan.Departing {
				if got, _ := o.gw.Store.GetUser(o.ctx, "demo", u.ID); got.Status != directory.UserDeparted {
					t.Fatalf("%s, linked only by WeCom, is %s", u.Username, got.Status)
				}
			}
			if links, _ := o.gw.Store.ListUserLinks(o.ctx, "demo", "wecom"); len(links) != 0 {
				t.Fatalf("%d links of the deleted source remain", len(links))
			}
		})
	}
}

// A SAML app hears over SOAP when the source its session came through ends it: 张三, signed in with
// DingTalk, sees the DingTalk source closed: the SSO endpoint asks for a new logon at once instead
// of re-using the session, and the access job logs the app out. Signed in with WeCom, he is deleted
// in WeCom (authoritative: he departs) and the app hears again.
func TestSAMLAppsHearWhenASourceEndsTheirSession(t *testing.T) {
	s := newSAMLWorld(t)
	soapFor := func(what string) {
		t.Helper()
		select {
		case c := <-s.soap:
			if !c.sigOK || c.req.NameID == nil || c.req.NameID.Value != s.user("zhangsan").ID {
				t.Fatalf("%s: SOAP LogoutRequest %+v (signature ok %v)", what, c.req, c.sigOK)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: no SOAP LogoutRequest", what)
		}
	}
	launch := func(b *browser) {
		t.Helper()
		if status, page, _ := b.get(s.base+"/e/demo/saml/launch?sp="+url.QueryEscape(s.sps["soap"].entity), ""); status != 200 || !strings.Contains(page, "SAMLResponse") {
			t.Fatalf("launch soap: %d", status)
		}
	}
	// Closing DingTalk: a session opened through it ends over SOAP; SSO then wants a new logon.
	b := newBrowser(t)
	if status, _, at := b.get(s.base+"/login?enterprise=demo&idp_hint=dingtalk", "zhangsan"); status != 200 || !strings.HasSuffix(at, "/login/done") {
		t.Fatalf("DingTalk login: %d at %s", status, at)
	}
	launch(b)
	if _, err := access.SetSourceEnabled(s.ctx, s.gw.Store, "demo", "dingtalk", false, "test", "t"); err != nil {
		t.Fatal(err)
	}
	// Refused from the commit, before the job runs.
	b.stop = s.base + "/login/"
	if _, _, at := b.get(s.base+"/e/demo/saml/launch?sp="+url.QueryEscape(s.sps["soap"].entity), ""); !strings.HasPrefix(at, s.base+"/login/") {
		t.Fatalf("SSO re-use of a closed source's session went to %s, want a new logon", at)
	}
	s.gw.AccessNotify <- struct{}{}
	soapFor("closing DingTalk")
	// Deleted in authoritative WeCom: the WeCom session ends over SOAP.
	b = s.signedIn(t)
	launch(b)
	s.ctl(s.wURL, "DELETE", "/_sim/users/zhangsan", "")
	soapFor("deleted in WeCom")
	s.eventually("zhangsan departed", func() bool { return s.user("zhangsan").Status == directory.UserDeparted })
}
