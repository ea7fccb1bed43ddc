package gateway

import (
	"bytes"
	"compress/flate"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	csaml "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
)

// Regression tests for the SAML items of the security review of 4cdb444: HTTP-Redirect parameter
// smuggling, AuthnRequests without an Issuer, ACS endpoints that are not HTTP-POST, and
// LogoutRequests that cannot be tied to the browser's session.

// elementXML serializes el.
func elementXML(el *etree.Element) []byte {
	doc := etree.NewDocument()
	doc.SetRoot(el)
	b, _ := doc.WriteToBytes()
	return b
}

// deflated is msg as the HTTP-Redirect binding carries it before URL encoding: DEFLATE, base64.
func deflated(msg []byte) string {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	_, _ = w.Write(msg)
	_ = w.Close()
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

// redirectQuery is an HTTP-Redirect binding query carrying msg as field, signed with key over
// field, RelayState and SigAlg as SAML bindings §3.4.4.1 says when key is set.
func redirectQuery(field string, msg []byte, relay string, key *rsa.PrivateKey) string {
	q := field + "=" + url.QueryEscape(deflated(msg))
	if relay != "" {
		q += "&RelayState=" + url.QueryEscape(relay)
	}
	if key == nil {
		return q
	}
	q += "&SigAlg=" + url.QueryEscape(dsig.RSASHA256SignatureMethod)
	d := sha256.Sum256([]byte(q))
	sig, _ := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
	return q + "&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig))
}

// logoutRequest is the SP's LogoutRequest to the IdP, unsigned XML, naming nameID and
// sessionIndex when they are not empty, altered by alter.
func (s *samlWorld) logoutRequest(sp *testSP, nameID, sessionIndex string, alter ...func(*csaml.LogoutRequest)) (xmlBytes []byte, id string) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	lr := &csaml.LogoutRequest{ID: "id-" + hex.EncodeToString(b), Version: "2.0", IssueInstant: time.Now(), Destination: s.base + "/e/demo/saml/slo",
		Issuer: &csaml.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: sp.entity}}
	if nameID != "" {
		lr.NameID = &csaml.NameID{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:transient", Value: nameID}
	}
	if sessionIndex != "" {
		lr.SessionIndex = &csaml.SessionIndex{Value: sessionIndex}
	}
	for _, a := range alter {
		a(lr)
	}
	return elementXML(lr.Element()), lr.ID
}

// launch signs the browser in to the SP (IdP-initiated) and returns the assertion it got.
func (s *samlWorld) launch(t *testing.T, b *browser, name string) *csaml.Assertion {
	t.Helper()
	sp := s.sps[name]
	status, page, _ := b.get(s.base+"/e/demo/saml/launch?sp="+url.QueryEscape(sp.entity), "")
	_, f := postForm(t, page)
	raw, _ := base64.StdEncoding.DecodeString(f["SAMLResponse"])
	acsURL, _ := url.Parse(sp.acs)
	a, err := sp.ParseXMLResponse(raw, nil, *acsURL)
	if status != 200 || err != nil {
		t.Fatalf("launch %s: %d %v", name, status, err)
	}
	return a
}

// alive says whether the browser's SSO session is still there.
func (s *samlWorld) alive(b *browser) bool {
	status, _, at := b.get(s.base+"/login/done", "")
	return status == 200 && strings.HasSuffix(at, "/login/done")
}

// logoutAnswer reads the IdP's answer to a LogoutRequest: a LogoutResponse on the SP's
// SingleLogoutService (HTTP-Redirect or HTTP-POST, its signature checked), or nil and the HTTP
// status when the IdP answered with a page.
func (s *samlWorld) logoutAnswer(t *testing.T, resp *http.Response, page string) (*csaml.LogoutResponse, int) {
	t.Helper()
	var raw []byte
	switch {
	case resp.StatusCode == 302 && resp.Header.Get("Location") != "":
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if loc.Query().Get("SAMLResponse") == "" {
			return nil, resp.StatusCode
		}
		raw = s.redirectMessage(t, loc, "SAMLResponse")
	case resp.StatusCode == 200 && strings.Contains(page, `name="SAMLResponse"`):
		_, raw, _ = s.postedMessage(t, page, "SAMLResponse")
	default:
		return nil, resp.StatusCode
	}
	var lr csaml.LogoutResponse
	if err := xml.Unmarshal(raw, &lr); err != nil {
		t.Fatalf("LogoutResponse: %v\n%s", err, raw)
	}
	return &lr, resp.StatusCode
}

// TestSAMLRedirectParameterSmuggling: the HTTP-Redirect signature covers the octets of
// SAMLRequest, RelayState and SigAlg as sent; a second copy of a parameter under a percent-encoded
// (or the same) name must not let an unsigned value ride along a genuine signature. Every such
// query is refused, and the refusal changes nothing (the genuine request is still good after).
func TestSAMLRedirectParameterSmuggling(t *testing.T) {
	s := newSAMLWorld(t)
	b := s.signedIn(t)
	sp := s.sps["signed"]
	sso := s.base + "/e/demo/saml/sso?"
	for name, smuggle := range map[string]func(genuineQ, evil string) string{
		"percent-encoded SAMLRequest":  func(g, e string) string { return "SAML%52equest=" + e + "&" + g },
		"percent-encoded, after":       func(g, e string) string { return g + "&SAML%52equest=" + e },
		"escape later in the name":     func(g, e string) string { return "SAMLRequ%65st=" + e + "&" + g },
		"SAMLRequest twice":            func(g, e string) string { return "SAMLRequest=" + e + "&" + g },
		"percent-encoded RelayState":   func(g, e string) string { return "Relay%53tate=evil-relay&" + g },
		"RelayState twice":             func(g, e string) string { return g + "&RelayState=evil-relay" },
		"percent-encoded SigAlg":       func(g, e string) string { return strings.Replace(g, "SigAlg=", "Sig%41lg=", 1) },
		"percent-encoded Signature":    func(g, e string) string { return strings.Replace(g, "Signature=", "%53ignature=", 1) },
		"another parameter encoded":    func(g, e string) string { return g + "&x%2Dy=1" },
		"SAMLRequest and SAMLResponse": func(g, e string) string { return g + "&SAMLResponse=" + e },
	} {
		genuine, genuineID := s.authnURL(t, sp, "good-relay", nil)
		// An unsigned request of the signing SP, with its own ID, smuggled next to the signed one.
		evilReq, err := sp.MakeAuthenticationRequest(s.base+"/e/demo/saml/sso", csaml.HTTPRedirectBinding, csaml.HTTPPostBinding)
		if err != nil {
			t.Fatal(err)
		}
		evil := url.QueryEscape(deflated(elementXML(evilReq.Element())))
		status, page, _ := b.get(sso+smuggle(strings.SplitN(genuine, "?", 2)[1], evil), "")
		if status != 400 || strings.Contains(page, `name="SAMLResponse"`) {
			t.Errorf("%s: %d (want 400 and no assertion)", name, status)
			if strings.Contains(page, `name="SAMLResponse"`) {
				_, f := postForm(t, page)
				raw, _ := base64.StdEncoding.DecodeString(f["SAMLResponse"])
				var r csaml.Response
				_ = xml.Unmarshal(raw, &r)
				t.Logf("%s: answered InResponseTo %s (genuine %s, smuggled %s) with RelayState %q", name, r.InResponseTo, genuineID, evilReq.ID, f["RelayState"])
			}
			continue
		}
		// Nothing was stored by the refusal: the genuine request is answered, with its RelayState.
		status, page, _ = b.get(genuine, "")
		if status != 200 {
			t.Errorf("%s: the genuine request after the refusal: %d", name, status)
			continue
		}
		_, f := postForm(t, page)
		raw, _ := base64.StdEncoding.DecodeString(f["SAMLResponse"])
		var r csaml.Response
		if err := xml.Unmarshal(raw, &r); err != nil || r.InResponseTo != genuineID || f["RelayState"] != "good-relay" {
			t.Errorf("%s: the genuine request was answered InResponseTo %q with RelayState %q", name, r.InResponseTo, f["RelayState"])
		}
	}
}

// TestSAMLLogoutRedirectParameterSmuggling: the same smuggling at /saml/slo — an unsigned
// LogoutRequest (or RelayState) riding along a genuinely signed one — is refused and the session
// survives.
func TestSAMLLogoutRedirectParameterSmuggling(t *testing.T) {
	s := newSAMLWorld(t)
	b := s.signedIn(t)
	s.launch(t, b, "signed")
	sp := s.sps["signed"]
	slo := s.base + "/e/demo/saml/slo?"
	for name, smuggle := range map[string]func(genuineQ, evil string) string{
		"percent-encoded SAMLRequest": func(g, e string) string { return "SAML%52equest=" + e + "&" + g },
		"SAMLRequest twice":           func(g, e string) string { return "SAMLRequest=" + e + "&" + g },
		"percent-encoded RelayState":  func(g, e string) string { return "Relay%53tate=evil&" + g },
	} {
		// Genuinely signed, but for someone else: on its own it ends nothing.
		signedX, _ := s.logoutRequest(sp, "somebody-else", "")
		// Unsigned, for this browser's person: it must not borrow the signature above.
		evilX, _ := s.logoutRequest(sp, s.user("zhangsan").ID, "")
		q := smuggle(redirectQuery("SAMLRequest", signedX, "good", sp.key), url.QueryEscape(deflated(evilX)))
		resp, page := fetch(t, b, slo+q)
		if lr, status := s.logoutAnswer(t, resp, page); status != 400 || lr != nil {
			t.Errorf("%s: %d %+v (want 400 and no LogoutResponse)", name, status, lr)
		}
		if !s.alive(b) {
			t.Fatalf("%s ended the session", name)
		}
	}
}

// TestSAMLAuthnRequestWithoutIssuer: an AuthnRequest with no Issuer, or one in another namespace
// (which the schema types read as none), is a bad request on both bindings — an error page with
// 400, not a panic and a 500.
func TestSAMLAuthnRequestWithoutIssuer(t *testing.T) {
	s := newSAMLWorld(t)
	b := s.signedIn(t)
	sp := s.sps["plain"]
	sso := s.base + "/e/demo/saml/sso"
	request := func(alter func(string) string) []byte {
		req, err := sp.MakeAuthenticationRequest(sso, csaml.HTTPRedirectBinding, csaml.HTTPPostBinding)
		if err != nil {
			t.Fatal(err)
		}
		return []byte(alter(string(elementXML(req.Element()))))
	}
	issuer := `<saml:Issuer Format="urn:oasis:names:tc:SAML:2.0:nameid-format:entity">` + sp.entity + `</saml:Issuer>`
	for name, x := range map[string][]byte{
		"no Issuer": request(func(x string) string { return strings.Replace(x, issuer, "", 1) }),
		"Issuer elsewhere": request(func(x string) string {
			return strings.Replace(x, issuer, `<Issuer xmlns="urn:example:other">`+sp.entity+`</Issuer>`, 1)
		}),
		"Issuer unprefixed in protocol ns": request(func(x string) string {
			return strings.Replace(x, issuer, `<samlp:Issuer>`+sp.entity+`</samlp:Issuer>`, 1)
		}),
		"empty Issuer": request(func(x string) string { return strings.Replace(x, issuer, `<saml:Issuer></saml:Issuer>`, 1) }),
	} {
		if !strings.Contains(string(x), "AuthnRequest") || strings.Contains(string(x), issuer) {
			t.Fatalf("%s: the request was not altered:\n%s", name, x)
		}
		status, page, _ := b.get(sso+"?SAMLRequest="+url.QueryEscape(deflated(x)), "")
		if status != 400 || strings.Contains(page, `name="SAMLResponse"`) || !strings.Contains(page, "Issuer") {
			t.Errorf("%s, HTTP-Redirect: %d (want 400 and an error page naming the Issuer)\n%.300s", name, status, page)
		}
		status, page, _ = b.post(sso, url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(x)}})
		if status != 400 || strings.Contains(page, `name="SAMLResponse"`) || !strings.Contains(page, "Issuer") {
			t.Errorf("%s, HTTP-POST: %d (want 400 and an error page naming the Issuer)\n%.300s", name, status, page)
		}
	}
}

// TestSAMLAssertionConsumerServiceMustBePOST: qiao answers only on HTTP-POST, so a request that
// picks an ACS endpoint of another binding (by index) or asks for another response binding is a
// bad request (400), whether or not a login is needed, never a 500.
func TestSAMLAssertionConsumerServiceMustBePOST(t *testing.T) {
	s := newSAMLWorld(t)
	sp := s.sps["plain"]
	yes := true
	for name, alter := range map[string]func(*csaml.AuthnRequest){
		// The SP's metadata has HTTP-POST at index 1 and HTTP-Artifact at index 2.
		"index of the Artifact endpoint": func(r *csaml.AuthnRequest) {
			r.AssertionConsumerServiceURL, r.ProtocolBinding, r.AssertionConsumerServiceIndex = "", "", "2"
		},
		"index of the Artifact endpoint, passive": func(r *csaml.AuthnRequest) {
			r.AssertionConsumerServiceURL, r.ProtocolBinding, r.AssertionConsumerServiceIndex = "", "", "2"
			r.IsPassive = &yes
		},
		"Artifact response binding asked": func(r *csaml.AuthnRequest) { r.ProtocolBinding = csaml.HTTPArtifactBinding },
	} {
		for _, session := range []bool{true, false} {
			b := newBrowser(t)
			if session {
				b = s.signedIn(t)
			}
			u, _ := s.authnURL(t, sp, "", alter)
			status, page, at := b.get(u, "zhangsan")
			if status == 200 && strings.Contains(at, "/login/e/demo?") {
				// The broker's source choice: the person picks WeCom and scans.
				status, page, _ = b.get(s.base+"/login/e/demo/s/wecom?"+strings.SplitN(at, "?", 2)[1], "zhangsan")
			}
			if status != 400 || strings.Contains(page, `name="SAMLResponse"`) {
				t.Errorf("%s (session %v): %d (want 400)", name, session, status)
			}
		}
	}
	// The POST endpoint by index is fine.
	b := s.signedIn(t)
	u, _ := s.authnURL(t, sp, "", func(r *csaml.AuthnRequest) {
		r.AssertionConsumerServiceURL, r.ProtocolBinding, r.AssertionConsumerServiceIndex = "", "", "1"
	})
	if status, page, _ := b.get(u, ""); status != 200 || !strings.Contains(page, `name="SAMLResponse"`) {
		t.Fatalf("index of the POST endpoint: %d", status)
	}
}

// TestSAMLLogoutRequestMustMatchSession: a LogoutRequest ends the browser's SSO session only when
// it comes from an SP this session served, names the NameID that SP was given (and the session's
// index, when it gives one), and is signed when the SP's metadata has a signing certificate.
// Anything else is answered with a Requester status (or refused with a 400 when unauthenticated)
// and the session survives (SAML profiles §4.4.4.1): an unsigned request without a NameID no
// longer logs anyone out (logout CSRF). ("signed" and "certonly" have a signing certificate in
// their metadata, and only "signed" says it signs its AuthnRequests; "plain", "assertion" and
// "transient" have no certificate.)
func TestSAMLLogoutRequestMustMatchSession(t *testing.T) {
	s := newSAMLWorld(t)
	uid := s.user("zhangsan").ID
	type setup struct {
		b       *browser
		sid     string
		nameIDs map[string]string
	}
	start := func(t *testing.T) setup {
		b := s.signedIn(t)
		st := setup{b: b, nameIDs: map[string]string{}}
		for _, name := range []string{"plain", "transient", "certonly", "signed"} {
			a := s.launch(t, b, name)
			st.nameIDs[name] = a.Subject.NameID.Value
			st.sid = a.AuthnStatements[0].SessionIndex
		}
		return st
	}
	slo := s.base + "/e/demo/saml/slo?"
	// request is an SP's LogoutRequest on HTTP-Redirect, signed with key when it is not nil.
	request := func(sp, nameID, sessionIndex string, key *rsa.PrivateKey, alter ...func(*csaml.LogoutRequest)) (string, string) {
		x, id := s.logoutRequest(s.sps[sp], nameID, sessionIndex, alter...)
		return slo + redirectQuery("SAMLRequest", x, "", key), id
	}
	// want is the top-level status of the LogoutResponse, "" for a 400 page; a request that ends
	// the session sends the browser on to the session's other SPs (or back with Success).
	cases := []struct {
		name string
		url  func(st setup) (string, string) // the LogoutRequest URL and its ID
		want string
		ends bool
	}{
		{"unsigned, no NameID", func(st setup) (string, string) { return request("plain", "", "", nil) }, csaml.StatusRequester, false},
		{"unsigned, another NameID", func(st setup) (string, string) { return request("plain", "someone-else", "", nil) }, csaml.StatusRequester, false},
		{"NameID another SP was given", func(st setup) (string, string) {
			return request("plain", st.nameIDs["transient"], "", nil)
		}, csaml.StatusRequester, false},
		{"another session index", func(st setup) (string, string) {
			return request("plain", st.nameIDs["plain"], "not-this-session", nil)
		}, csaml.StatusRequester, false},
		{"from an SP the session did not serve", func(st setup) (string, string) { return request("assertion", uid, "", nil) }, csaml.StatusRequester, false},
		{"another transient NameID", func(st setup) (string, string) {
			return request("transient", "_not-the-one-given", "", nil)
		}, csaml.StatusRequester, false},
		{"signed, another NameID", func(st setup) (string, string) {
			return request("signed", "someone-else", "", s.sps["signed"].key)
		}, csaml.StatusRequester, false},
		{"unsigned from an SP with a signing certificate", func(st setup) (string, string) {
			return request("signed", uid, st.sid, nil)
		}, "", false},
		{"unsigned from an SP with a signing certificate, AuthnRequests unsigned", func(st setup) (string, string) {
			return request("certonly", uid, st.sid, nil)
		}, "", false},
		{"certonly signed, matching", func(st setup) (string, string) {
			return request("certonly", uid, st.sid, s.sps["certonly"].key)
		}, "", true},
		{"matching, another Destination", func(st setup) (string, string) {
			return request("plain", st.nameIDs["plain"], st.sid, nil, func(lr *csaml.LogoutRequest) { lr.Destination = "https://elsewhere.test/slo" })
		}, "", false},
		{"matching, stale", func(st setup) (string, string) {
			return request("plain", st.nameIDs["plain"], st.sid, nil, func(lr *csaml.LogoutRequest) { lr.IssueInstant = time.Now().Add(-10 * time.Minute) })
		}, "", false},
		{"matching, from the future", func(st setup) (string, string) {
			return request("plain", st.nameIDs["plain"], st.sid, nil, func(lr *csaml.LogoutRequest) { lr.IssueInstant = time.Now().Add(10 * time.Minute) })
		}, "", false},
		{"signed with another key", func(st setup) (string, string) {
			return request("signed", uid, st.sid, s.sps["plain"].key)
		}, "", false},
		{"signed, matching", func(st setup) (string, string) {
			return request("signed", uid, st.sid, s.sps["signed"].key)
		}, "", true},
		{"unsigned, matching, SP without a certificate", func(st setup) (string, string) {
			return request("plain", st.nameIDs["plain"], st.sid, nil)
		}, "", true},
		{"matching transient NameID", func(st setup) (string, string) {
			return request("transient", st.nameIDs["transient"], st.sid, nil)
		}, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := start(t)
			u, id := c.url(st)
			resp, page := fetch(t, st.b, u)
			lr, status := s.logoutAnswer(t, resp, page)
			switch {
			case c.ends && (status != 200 && status != 302 || lr != nil && lr.Status.StatusCode.Value != csaml.StatusSuccess):
				t.Errorf("%d %+v, want the logout to go on", status, lr)
			case c.ends:
			case c.want == "" && (status != 400 || lr != nil):
				t.Errorf("%d %+v, want a 400 page", status, lr)
			case c.want != "" && lr == nil:
				t.Errorf("%d, want a LogoutResponse with %s", status, c.want)
			case c.want != "" && (lr.Status.StatusCode.Value != c.want || lr.InResponseTo != id):
				t.Errorf("LogoutResponse %s in response to %s, want %s to %s", lr.Status.StatusCode.Value, lr.InResponseTo, c.want, id)
			}
			if alive := s.alive(st.b); alive == c.ends {
				t.Errorf("session alive after the request: %v, want %v", alive, !c.ends)
			}
		})
	}
	// HTTP-POST: an unsigned LogoutRequest from an SP with a signing certificate is refused too.
	st := start(t)
	for _, name := range []string{"signed", "certonly"} {
		x, _ := s.logoutRequest(s.sps[name], uid, "")
		resp, err := st.b.c.PostForm(s.base+"/e/demo/saml/slo", url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(x)}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if alive := s.alive(st.b); resp.StatusCode != 400 || !alive {
			t.Errorf("unsigned POST LogoutRequest from %s: %d, session alive %v", name, resp.StatusCode, alive)
		}
	}
}

// TestSAMLRefusalsDoNotLeakLibraryErrors: the error page says what was wrong in qiao's words; the
// text of crewjam's and goxmldsig's errors stays in the log.
func TestSAMLRefusalsDoNotLeakLibraryErrors(t *testing.T) {
	s := newSAMLWorld(t)
	b := s.signedIn(t)
	u, _ := s.authnURL(t, s.sps["plain"], "", func(r *csaml.AuthnRequest) { r.Destination = "https://elsewhere.test/sso" })
	status, page, _ := b.get(strings.Replace(u, "https://elsewhere.test/sso", s.base+"/e/demo/saml/sso", 1), "")
	if status != 400 || strings.Contains(page, "expected destination") || !strings.Contains(page, "Destination") {
		t.Errorf("wrong Destination: %d\n%s", status, page)
	}
	u, _ = s.authnURL(t, s.sps["plain"], "", func(r *csaml.AuthnRequest) { r.IssueInstant = time.Now().Add(-10 * time.Minute) })
	if status, page, _ := b.get(u, ""); status != 400 || strings.Contains(page, "request expired at") {
		t.Errorf("stale request: %d\n%s", status, page)
	}
	// A POSTed request with a broken XML signature: goxmldsig's reason is not shown.
	sp := s.sps["signed"]
	req, err := sp.MakeAuthenticationRequest(s.base+"/e/demo/saml/sso", csaml.HTTPPostBinding, csaml.HTTPPostBinding)
	if err != nil {
		t.Fatal(err)
	}
	if req.Signature == nil {
		if err := sp.SignAuthnRequest(req); err != nil {
			t.Fatal(err)
		}
	}
	x := strings.Replace(string(elementXML(req.Element())), "<ds:SignatureValue>", "<ds:SignatureValue>AAAA", 1)
	status, page, _ = b.post(s.base+"/e/demo/saml/sso", url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString([]byte(x))}})
	if status != 400 || strings.Contains(page, "Signature could not be verified") || strings.Contains(page, "crypto/rsa") || strings.Contains(page, "verification error") {
		t.Errorf("broken XML signature: %d\n%s", status, page)
	}
}
