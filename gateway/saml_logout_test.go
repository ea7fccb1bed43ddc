package gateway

import (
	"bytes"
	"compress/flate"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/access"

	"github.com/beevik/etree"
	csaml "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/keys"
)

// redirectMessage checks an HTTP-Redirect message from the IdP, whose signature covers the field,
// RelayState and SigAlg as sent, and returns its XML.
func (s *samlWorld) redirectMessage(t *testing.T, loc *url.URL, field string) []byte {
	t.Helper()
	parts := map[string]string{}
	for _, kv := range strings.Split(loc.RawQuery, "&") {
		k, v, _ := strings.Cut(kv, "=")
		parts[k] = v
	}
	signed := field + "=" + parts[field]
	if rs, ok := parts["RelayState"]; ok {
		signed += "&RelayState=" + rs
	}
	signed += "&SigAlg=" + parts["SigAlg"]
	sig, _ := base64.StdEncoding.DecodeString(loc.Query().Get("Signature"))
	k, _ := s.gw.Keys.Signing(keys.SAML)
	digest := sha256.Sum256([]byte(signed))
	if loc.Query().Get("SigAlg") != dsig.RSASHA256SignatureMethod || rsa.VerifyPKCS1v15(k.Cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, digest[:], sig) != nil {
		t.Fatalf("the %s's query signature does not verify: %s", field, loc)
	}
	zraw, _ := base64.StdEncoding.DecodeString(loc.Query().Get(field))
	raw, err := io.ReadAll(flate.NewReader(bytes.NewReader(zraw)))
	if err != nil {
		t.Fatalf("%s does not inflate: %v", field, err)
	}
	return raw
}

// TestSAMLSingleLogoutPropagates: a LogoutRequest from one SP ends the session, then the browser
// carries signed LogoutRequests to the session's other SPs (Redirect and POST), and the requester
// hears last, with PartialLogout when a participant failed.
func TestSAMLSingleLogoutPropagates(t *testing.T) {
	s := newSAMLWorld(t)
	b := s.signedIn(t)
	sid, nameIDs := s.launchForLogout(t, b)
	transientID := nameIDs["transient"]
	get := func(u string) (*http.Response, string) { return fetch(t, b, u) }
	idpEntity := s.base + "/e/demo/saml/metadata"

	// plain asks; the browser goes first to "assertion" (HTTP-Redirect, signed query).
	lu, err := s.sps["plain"].MakeRedirectLogoutRequest("zhangsan", "bye")
	if err != nil {
		t.Fatal(err)
	}
	plainReq, _ := url.Parse(lu.String())
	resp, _ := get(lu.String())
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 302 || !strings.HasPrefix(loc.String(), "https://assertion.test/slo?") {
		t.Fatalf("first hop: %d %s", resp.StatusCode, loc)
	}
	var toAssertion csaml.LogoutRequest
	if err := xml.Unmarshal(s.redirectMessage(t, loc, "SAMLRequest"), &toAssertion); err != nil {
		t.Fatal(err)
	}
	if toAssertion.Issuer.Value != idpEntity || toAssertion.Destination != "https://assertion.test/slo" || toAssertion.NameID.Value != s.user("zhangsan").ID ||
		toAssertion.SessionIndex == nil || toAssertion.SessionIndex.Value != sid {
		t.Fatalf("LogoutRequest to assertion: %+v", toAssertion)
	}
	relay := loc.Query().Get("RelayState")
	if status, _, at := b.get(s.base+"/login/done", ""); status != 200 || strings.HasSuffix(at, "/login/done") {
		t.Fatalf("the SSO session survived the LogoutRequest: %d %s", status, at)
	}
	// A LogoutResponse from the wrong SP, or to another request, is refused and changes nothing.
	wrong, _ := s.sps["plain"].MakeLogoutResponse(s.base+"/e/demo/saml/slo", toAssertion.ID)
	if resp, _ := get(wrong.Redirect(relay).String()); resp.StatusCode != 400 {
		t.Fatalf("a LogoutResponse from another SP: %d", resp.StatusCode)
	}
	other, _ := s.sps["assertion"].MakeLogoutResponse(s.base+"/e/demo/saml/slo", "id-other")
	if resp, _ := get(other.Redirect(relay).String()); resp.StatusCode != 400 {
		t.Fatalf("a LogoutResponse to another request: %d", resp.StatusCode)
	}

	// "assertion" answers; next is "transient", on HTTP-POST with an enveloped signature.
	ru, _ := s.sps["assertion"].MakeRedirectLogoutResponse(toAssertion.ID, relay)
	resp, page := get(ru.String())
	action, raw, postRelay := s.postedMessage(t, page, "SAMLRequest")
	if resp.StatusCode != 200 || action != "https://transient.test/slo" || postRelay != relay {
		t.Fatalf("second hop: %d %s %s\n%s", resp.StatusCode, action, postRelay, page)
	}
	var toTransient csaml.LogoutRequest
	if err := xml.Unmarshal(raw, &toTransient); err != nil || toTransient.NameID.Value != transientID || toTransient.Destination != "https://transient.test/slo" {
		t.Fatalf("LogoutRequest to transient: %v %s", err, raw)
	}

	// "transient" fails to log out: the requester hears Success with PartialLogout.
	failed, _ := s.sps["transient"].MakeLogoutResponse(s.base+"/e/demo/saml/slo", toTransient.ID)
	failed.Status.StatusCode.Value = "urn:oasis:names:tc:SAML:2.0:status:Responder"
	final := failed.Redirect(relay).String()
	resp, _ = get(final)
	loc, _ = url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 302 || !strings.HasPrefix(loc.String(), "https://plain.test/slo?") || loc.Query().Get("RelayState") != "bye" {
		t.Fatalf("back to the requester: %d %s", resp.StatusCode, loc)
	}
	var done csaml.LogoutResponse
	if err := xml.Unmarshal(s.redirectMessage(t, loc, "SAMLResponse"), &done); err != nil {
		t.Fatal(err)
	}
	var plainLR csaml.LogoutRequest
	zraw, _ := base64.StdEncoding.DecodeString(plainReq.Query().Get("SAMLRequest"))
	praw, _ := io.ReadAll(flate.NewReader(bytes.NewReader(zraw)))
	_ = xml.Unmarshal(praw, &plainLR)
	if done.InResponseTo != plainLR.ID || done.Status.StatusCode.Value != csaml.StatusSuccess || done.Status.StatusCode.StatusCode == nil ||
		done.Status.StatusCode.StatusCode.Value != csaml.StatusPartialLogout {
		t.Fatalf("final LogoutResponse: %+v", done)
	}
	// The chain is over: the same response again only says signed out.
	if resp, page := get(final); resp.StatusCode != 200 || resp.Header.Get("Location") != "" || !strings.Contains(page, "已退出登录") {
		t.Fatalf("replayed participant response: %d %s\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
}

// launchForLogout signs the browser in to plain, assertion and transient (IdP-initiated), in that
// order, and returns the session index and the NameID each was given.
func (s *samlWorld) launchForLogout(t *testing.T, b *browser) (sid string, nameIDs map[string]string) {
	t.Helper()
	assertions := map[string]*csaml.Assertion{}
	for _, name := range []string{"plain", "assertion", "transient"} {
		sp := s.sps[name]
		status, page, _ := b.get(s.base+"/e/demo/saml/launch?sp="+url.QueryEscape(sp.entity), "")
		_, f := postForm(t, page)
		raw, _ := base64.StdEncoding.DecodeString(f["SAMLResponse"])
		acsURL, _ := url.Parse(sp.acs)
		a, err := sp.ParseXMLResponse(raw, nil, *acsURL)
		if status != 200 || err != nil {
			t.Fatalf("launch %s: %d %v", name, status, err)
		}
		assertions[name] = a
	}
	sid = assertions["plain"].AuthnStatements[0].SessionIndex
	if sid == "" || assertions["transient"].Subject.NameID.Format != "urn:oasis:names:tc:SAML:2.0:nameid-format:transient" {
		t.Fatalf("session index %q, transient NameID %+v", sid, assertions["transient"].Subject.NameID)
	}
	nameIDs = map[string]string{}
	for name, a := range assertions {
		nameIDs[name] = a.Subject.NameID.Value
	}
	return sid, nameIDs
}

// fetch is one request, redirects not followed.
func fetch(t *testing.T, b *browser, u string) (*http.Response, string) {
	t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// postedMessage reads an HTTP-POST binding page carrying field, checks the message's enveloped
// signature against the IdP's key, and returns where it goes, the message and the RelayState.
func (s *samlWorld) postedMessage(t *testing.T, page, field string) (action string, raw []byte, relay string) {
	t.Helper()
	action, f := postForm(t, page)
	raw, _ = base64.StdEncoding.DecodeString(f[field])
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatalf("the POSTed %s: %v\n%s", field, err, page)
	}
	k, _ := s.gw.Keys.Signing(keys.SAML)
	vctx := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{k.Cert}})
	if _, err := vctx.Validate(doc.Root()); err != nil {
		t.Fatalf("the POSTed %s's signature: %v\n%s", field, err, raw)
	}
	return action, raw, f["RelayState"]
}

// TestLogoutAtQiaoLogsOutOfSAMLApps: ending the SSO session at qiao — the broker's sign-out button
// or OIDC end_session — sends the browser through every SAML SP of the session with a signed
// LogoutRequest (IdP-initiated single logout), then on to where it was going.
func TestLogoutAtQiaoLogsOutOfSAMLApps(t *testing.T) {
	s := newSAMLWorld(t)
	for _, via := range []string{"sign-out button", "end_session"} {
		t.Run(via, func(t *testing.T) {
			b := s.signedIn(t)
			sid, nameIDs := s.launchForLogout(t, b)
			var resp *http.Response
			var err error
			final := "/login/e/demo" // the enterprise's sign-in: it stays remembered
			if via == "end_session" {
				final = "/e/demo/logged-out"
				_, page := fetch(t, b, s.base+"/e/demo/end_session")
				m := regexp.MustCompile(`name="confirm" value="([^"]+)"`).FindStringSubmatch(page)
				if m == nil {
					t.Fatalf("no logout confirmation:\n%s", page)
				}
				resp, err = b.c.PostForm(s.base+"/e/demo/end_session", url.Values{"confirm": {html.UnescapeString(m[1])}})
			} else {
				_, page, _ := b.get(s.base+"/login/done", "")
				resp, err = b.c.PostForm(s.base+"/logout", url.Values{"csrf": {csrfOf(t, page)}})
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			next := resp.Header.Get("Location")
			if !strings.HasPrefix(next, s.base+"/e/demo/saml/slo/next?id=") {
				t.Fatalf("after logout: %d to %q, want the SAML logout chain", resp.StatusCode, next)
			}
			if status, _, at := b.get(s.base+"/login/done", ""); status != 200 || strings.HasSuffix(at, "/login/done") {
				t.Fatalf("the SSO session survived the logout: %d %s", status, at)
			}
			// plain and assertion hear on HTTP-Redirect, transient on HTTP-POST, in session order.
			hop := next
			var relay string
			for _, name := range []string{"plain", "assertion"} {
				resp, _ := fetch(t, b, hop)
				loc, _ := url.Parse(resp.Header.Get("Location"))
				if resp.StatusCode != 302 || !strings.HasPrefix(loc.String(), "https://"+name+".test/slo?") {
					t.Fatalf("hop to %s: %d %s", name, resp.StatusCode, loc)
				}
				var lr csaml.LogoutRequest
				if err := xml.Unmarshal(s.redirectMessage(t, loc, "SAMLRequest"), &lr); err != nil {
					t.Fatal(err)
				}
				if lr.Issuer.Value != s.base+"/e/demo/saml/metadata" || lr.Destination != "https://"+name+".test/slo" || lr.NameID.Value != nameIDs[name] ||
					lr.SessionIndex == nil || lr.SessionIndex.Value != sid {
					t.Fatalf("LogoutRequest to %s: %+v", name, lr)
				}
				relay = loc.Query().Get("RelayState")
				ru, _ := s.sps[name].MakeRedirectLogoutResponse(lr.ID, relay)
				hop = ru.String()
			}
			resp, page := fetch(t, b, hop)
			action, raw, postRelay := s.postedMessage(t, page, "SAMLRequest")
			var lr csaml.LogoutRequest
			if err := xml.Unmarshal(raw, &lr); resp.StatusCode != 200 || err != nil || action != "https://transient.test/slo" || postRelay != relay || lr.NameID.Value != nameIDs["transient"] {
				t.Fatalf("hop to transient: %d %v %s %s\n%s", resp.StatusCode, err, action, postRelay, raw)
			}
			// transient answers on HTTP-POST; the browser goes on to where the logout was headed.
			lresp, _ := s.sps["transient"].MakeLogoutResponse(s.base+"/e/demo/saml/slo", lr.ID)
			doc := etree.NewDocument()
			doc.SetRoot(lresp.Element())
			xb, _ := doc.WriteToBytes()
			resp, err = b.c.PostForm(s.base+"/e/demo/saml/slo", url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString(xb)}, "RelayState": {relay}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if loc := resp.Header.Get("Location"); resp.StatusCode != 303 || loc != final {
				t.Fatalf("end of the chain: %d to %q, want %s", resp.StatusCode, loc, final)
			}
			// The chain cannot be walked again.
			if resp, page := fetch(t, b, next); resp.StatusCode != 200 || resp.Header.Get("Location") != "" || !strings.Contains(page, "已退出登录") {
				t.Fatalf("the chain started twice: %d %s", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
	audit, _ := s.gw.Store.ListAuditEvents(s.ctx, directory.AuditQuery{EnterpriseID: "demo", Kind: "saml.logout_propagated"})
	if len(audit) != 6 {
		t.Fatalf("%d saml.logout_propagated audit events, want 6", len(audit))
	}
}

// TestSAMLBackChannelLogoutOverSOAP: an SP with a SOAP SingleLogoutService hears of every end of
// the session straight from the IdP — a logout at qiao (the browser goes only to the others), a
// person's departure (no browser at all) — but not of a logout it asked for itself.
func TestSAMLBackChannelLogoutOverSOAP(t *testing.T) {
	s := newSAMLWorld(t)
	launch := func(b *browser, names ...string) {
		t.Helper()
		for _, name := range names {
			if status, page, _ := b.get(s.base+"/e/demo/saml/launch?sp="+url.QueryEscape(s.sps[name].entity), ""); status != 200 || !strings.Contains(page, "SAMLResponse") {
				t.Fatalf("launch %s: %d", name, status)
			}
		}
	}
	received := func(what string) soapCall {
		t.Helper()
		select {
		case c := <-s.soap:
			uid := s.user("zhangsan").ID
			if !c.sigOK || c.req.NameID == nil || c.req.NameID.Value != uid || c.req.SessionIndex == nil || c.req.SessionIndex.Value == "" ||
				c.req.Destination != s.sps["soap"].SloURL.String() || c.req.Issuer.Value != s.base+"/e/demo/saml/metadata" {
				t.Fatalf("%s: SOAP LogoutRequest %+v (signature ok: %v)", what, c.req, c.sigOK)
			}
			return c
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: no SOAP LogoutRequest", what)
		}
		return soapCall{}
	}
	audits := func(outcome string) int {
		s.gw.SAML.Wait()
		evs, _ := s.gw.Store.ListAuditEvents(s.ctx, directory.AuditQuery{EnterpriseID: "demo", Kind: "saml.backchannel_logout"})
		n := 0
		for _, e := range evs {
			if e.Outcome == outcome {
				n++
			}
		}
		return n
	}

	// Logout at qiao: the browser visits plain; soap hears over SOAP, and fails (retried, audited).
	s.soapFail.Store(true)
	b := s.signedIn(t)
	launch(b, "soap", "plain")
	_, page, _ := b.get(s.base+"/login/done", "")
	resp, err := b.c.PostForm(s.base+"/logout", url.Values{"csrf": {csrfOf(t, page)}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	hop, _ := fetch(t, b, resp.Header.Get("Location"))
	if loc := hop.Header.Get("Location"); !strings.HasPrefix(loc, "https://plain.test/slo?") {
		t.Fatalf("the front channel after logout went to %q, want plain only", loc)
	}
	for i := 0; i < 3; i++ {
		received("logout at qiao")
	}
	if n := audits("failed"); n != 1 {
		t.Fatalf("%d failed back-channel logouts audited, want 1", n)
	}
	s.soapFail.Store(false)

	// The SP's own LogoutRequest: it is not told again.
	b = s.signedIn(t)
	launch(b, "soap")
	lu, err := s.sps["soap"].MakeRedirectLogoutRequest(s.user("zhangsan").ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := fetch(t, b, lu.String()); resp.StatusCode >= 400 {
		t.Fatalf("soap's LogoutRequest: %d", resp.StatusCode)
	}
	s.gw.SAML.Wait()
	select {
	case c := <-s.soap:
		t.Fatalf("the SP that asked to log out was sent %+v", c.req)
	default:
	}

	// A departure, with no browser anywhere: soap hears over SOAP.
	b = s.signedIn(t)
	launch(b, "soap")
	if err := s.gw.Access.EndUser(s.ctx, "demo", s.user("zhangsan").ID, access.Departed); err != nil {
		t.Fatal(err)
	}
	received("departure")
	if n := audits("ok"); n != 1 {
		t.Fatalf("%d delivered back-channel logouts audited, want 1", n)
	}
}
