package gateway

import (
	"net/url"
	"testing"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/config"
)

// 张三 signs in to the SASE client through WeCom, and again through DingTalk; then he is deleted
// in WeCom, which is set non-authoritative. The WeCom event ends what WeCom granted — his WeCom-begun refresh token, the access
// token, the WeCom SSO session — although DingTalk (and the local directory) still know him; what
// DingTalk granted stays.
func TestLeavingWeComEndsWhatWeComGranted(t *testing.T) {
	no := false
	o := newOIDCWorldWith(t, func(c *config.Config) {
		for i := range c.Enterprises[0].Sources {
			if c.Enterprises[0].Sources[i].Kind == "wecom" {
				c.Enterprises[0].Sources[i].Authoritative = &no // only what WeCom granted ends
			}
		}
	})
	verifier, challenge := pkcePair()
	grant := func(b *browser, idp string) map[string]any {
		t.Helper()
		at := o.login(b, nativeAuthz(challenge, "idp_hint", idp), "http://127.0.0.1:53682/")
		st, tok := o.token(url.Values{"grant_type": {"authorization_code"}, "code": {codeOf(t, at)}, "redirect_uri": {rpRedirect},
			"client_id": {"sase-client"}, "code_verifier": {verifier}})
		if st != 200 || tok["refresh_token"] == nil {
			t.Fatalf("%s grant: %d %v", idp, st, tok)
		}
		return tok
	}
	wb, db := newBrowser(t), newBrowser(t)
	viaWeCom, viaDingTalk := grant(wb, "wecom"), grant(db, "dingtalk")
	zhang := o.user("zhangsan")
	if links, _ := o.gw.Store.LinksOfUser(o.ctx, "demo", zhang.ID); len(links) < 2 {
		t.Fatalf("zhangsan has %d links; the test needs WeCom and another", len(links))
	}

	o.ctl(o.wURL, "DELETE", "/_sim/users/zhangsan", "")
	refresh := func(tok map[string]any) int {
		st, _ := o.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {"sase-client"}})
		return st
	}
	// Wait for the thing then read: the audit record is written last, after sessions and tokens.
	o.eventually("the WeCom event ended what WeCom granted", func() bool {
		ev, _ := o.gw.Store.ListAuditEvents(o.ctx, directory.AuditQuery{EnterpriseID: "demo", Kind: "user.revoke_source", UserID: zhang.ID})
		return len(ev) > 0
	})
	if u := o.user("zhangsan"); u.Status != directory.UserActive {
		t.Fatalf("zhangsan is %s; DingTalk still links him", u.Status)
	}
	if st := refresh(viaWeCom); st != 400 {
		t.Fatalf("the WeCom-begun refresh token after leaving WeCom: %d, want 400", st)
	}
	if o.introspect(viaWeCom["access_token"].(string))["active"] != false {
		t.Fatal("the WeCom-begun access token is still active")
	}
	if _, page, at := wb.get(o.base+"/login/done", ""); at == o.base+"/login/done" && len(page) > 0 {
		t.Fatal("the WeCom SSO session survived")
	}
	if st := refresh(viaDingTalk); st != 200 {
		t.Fatalf("the DingTalk-begun refresh token: %d, want 200 (DingTalk still links him)", st)
	}
	if _, _, at := db.get(o.base+"/login/done", ""); at != o.base+"/login/done" {
		t.Fatalf("the DingTalk SSO session ended too (at %s)", at)
	}
}
