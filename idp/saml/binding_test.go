package saml

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	csaml "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/qiao-gateway/qiao/session"
)

// TestParseRedirectVerifiesWhatItReturns: the octets the query signature is checked over and the
// message and RelayState handed on come from one parse; a query any other reading could take
// differently (an encoded or repeated name, a lone Signature or SigAlg) is refused.
func TestParseRedirectVerifiesWhatItReturns(t *testing.T) {
	w := newTestWorld(t)
	msg := toXML(authnRequest("id-genuine", nil).Element())
	// A RelayState the sender encodes its own way (lower-case escapes): the signature covers that.
	relayRaw := "https%3a%2f%2fsp.test%2fhome%3fa%3d1"
	signed := "SAMLRequest=" + url.QueryEscape(deflateB64(msg)) + "&RelayState=" + relayRaw + "&SigAlg=" + url.QueryEscape(dsig.RSASHA256SignatureMethod)
	q := signed + "&Signature=" + url.QueryEscape(sign(w.key, signed))

	m, err := parseRedirect(q)
	if err != nil {
		t.Fatal(err)
	}
	if m.Field != "SAMLRequest" || string(m.XML) != string(msg) || m.RelayState != "https://sp.test/home?a=1" || m.Query == nil ||
		string(m.Query.Signed) != signed || m.Query.Alg != dsig.RSASHA256SignatureMethod {
		t.Fatalf("parsed %+v (signed %q)", m, m.Query.Signed)
	}
	if err := verifySignature(m, w.sp, true); err != nil {
		t.Fatalf("the genuine query: %v", err)
	}

	evil := url.QueryEscape(deflateB64(toXML(authnRequest("id-evil", nil).Element())))
	for name, bad := range map[string]string{
		"encoded SAMLRequest before":   "SAML%52equest=" + evil + "&" + q,
		"encoded SAMLRequest after":    q + "&SAML%52equest=" + evil,
		"lower-case escape in name":    "SAMLR%65quest=" + evil + "&" + q,
		"SAMLRequest twice":            "SAMLRequest=" + evil + "&" + q,
		"encoded RelayState":           "Relay%53tate=evil&" + q,
		"RelayState twice":             q + "&RelayState=evil",
		"encoded SigAlg":               strings.Replace(q, "SigAlg=", "Sig%41lg=", 1),
		"encoded Signature":            strings.Replace(q, "Signature=", "Signatur%65=", 1),
		"Signature twice":              q + "&Signature=AAAA",
		"SigAlg twice":                 q + "&SigAlg=x",
		"plus in a name":               q + "&a+b=1",
		"semicolon in a name":          q + "&a;b=1",
		"empty name":                   q + "&=1",
		"SAMLRequest and SAMLResponse": q + "&SAMLResponse=" + evil,
		"Signature without SigAlg":     strings.Replace(q, "&SigAlg=", "&Unrelated=", 1),
		"SigAlg without Signature":     strings.Replace(q, "&Signature=", "&Unrelated=", 1),
		"no message":                   "RelayState=x",
		"empty message":                "SAMLRequest=&RelayState=x",
		"bad escape in a value":        q + "&x=%zz",
	} {
		if m, err := parseRedirect(bad); err == nil {
			t.Errorf("%s: accepted (%s)", name, m.XML)
		} else if status, _ := publicError(err); status != http.StatusBadRequest {
			t.Errorf("%s: status %d", name, status)
		}
	}

	// Changing any signed octet breaks the signature: the RelayState, the algorithm's spelling.
	for name, bad := range map[string]string{
		"another RelayState":         strings.Replace(q, "RelayState="+relayRaw, "RelayState=https%3a%2f%2fevil.test%2f", 1),
		"RelayState re-encoded":      strings.Replace(q, "RelayState="+relayRaw, "RelayState="+url.QueryEscape("https://sp.test/home?a=1"), 1),
		"RelayState dropped":         strings.Replace(q, "&RelayState="+relayRaw, "", 1),
		"message re-encoded":         strings.Replace(q, "%2B", "%2b", 1),
		"SigAlg spelled another way": strings.Replace(q, "SigAlg=http%3A", "SigAlg=http:", 1),
	} {
		if bad == q {
			t.Fatalf("%s: the query was not altered", name)
		}
		m, err := parseRedirect(bad)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := verifySignature(m, w.sp, true); err == nil {
			t.Errorf("%s: the signature still verified", name)
		}
	}
	// Signed with a key the SP's metadata does not have; an algorithm not accepted.
	other, _ := signedQuery("SAMLRequest", msg, "", w.other)
	if m, err := parseRedirect(other); err != nil || verifySignature(m, w.sp, true) == nil {
		t.Errorf("another key: %v", err)
	}
	sha1 := strings.Replace(q, url.QueryEscape(dsig.RSASHA256SignatureMethod), url.QueryEscape(dsig.RSASHA1SignatureMethod), 1)
	if m, err := parseRedirect(sha1); err != nil || verifySignature(m, w.sp, true) == nil {
		t.Errorf("RSA-SHA1: %v", err)
	}
}

// TestParsePostOneValuePerName: the HTTP-POST form is read by the same rules — a repeated or
// encoded name is refused — and its base64 message decoded with the size limits.
func TestParsePostOneValuePerName(t *testing.T) {
	msg := toXML(logoutRequest("id-1", "u-1", "").Element())
	good := "SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString(msg)) + "&RelayState=r"
	m, err := parsePost(good)
	if err != nil || m.Field != "SAMLRequest" || string(m.XML) != string(msg) || m.RelayState != "r" || m.Query != nil {
		t.Fatalf("%+v %v", m, err)
	}
	// Line breaks in the base64 (as some SPs send it) are fine.
	wrapped := base64.StdEncoding.EncodeToString(msg)
	wrapped = wrapped[:40] + "\r\n" + wrapped[40:]
	if m, err := parsePost("SAMLRequest=" + url.QueryEscape(wrapped)); err != nil || string(m.XML) != string(msg) {
		t.Fatalf("wrapped base64: %v", err)
	}
	for name, bad := range map[string]string{
		"SAMLRequest twice":  good + "&SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString([]byte("<x/>"))),
		"encoded name":       "SAML%52equest=" + url.QueryEscape(base64.StdEncoding.EncodeToString([]byte("<x/>"))) + "&" + good,
		"RelayState twice":   good + "&RelayState=s",
		"not base64":         "SAMLRequest=***",
		"oversized":          "SAMLRequest=" + strings.Repeat("A", 4*maxRequestXML/3+8),
		"RelayState too big": "SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString(msg)) + "&RelayState=" + strings.Repeat("a", 1025),
		"both messages":      good + "&SAMLResponse=AAAA",
	} {
		if _, err := parsePost(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestReadMessageBindings: GET reads the query; POST reads only a URL-encoded form body.
func TestReadMessageBindings(t *testing.T) {
	msg := toXML(logoutRequest("id-1", "u-1", "").Element())
	form := "SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString(msg))
	r := httptest.NewRequest(http.MethodPost, "/slo?SAMLResponse=x", strings.NewReader(form))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if m, err := readMessage(httptest.NewRecorder(), r); err != nil || m.Field != "SAMLRequest" || string(m.XML) != string(msg) {
		t.Fatalf("POST: %+v %v", m, err)
	}
	r = httptest.NewRequest(http.MethodPost, "/slo", strings.NewReader(form))
	r.Header.Set("Content-Type", "text/plain")
	if _, err := readMessage(httptest.NewRecorder(), r); err == nil {
		t.Error("a POST body that is not a form was read")
	}
	r = httptest.NewRequest(http.MethodPost, "/slo?"+form, strings.NewReader(""))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if _, err := readMessage(httptest.NewRecorder(), r); err == nil {
		t.Error("a POST's query was read as its message")
	}
	r = httptest.NewRequest(http.MethodPut, "/slo", nil)
	if _, err := readMessage(httptest.NewRecorder(), r); err == nil {
		t.Error("PUT was read")
	}
}

// TestMessagesNeedAnIssuer: an AuthnRequest or LogoutRequest without an Issuer in the SAML
// assertion namespace is a bad request, before crewjam (which dereferences it) sees it.
func TestMessagesNeedAnIssuer(t *testing.T) {
	w := newTestWorld(t)
	issuer := `<saml:Issuer Format="urn:oasis:names:tc:SAML:2.0:nameid-format:entity">` + testEntity + `</saml:Issuer>`
	ar := string(toXML(authnRequest("id-1", nil).Element()))
	lr := string(toXML(logoutRequest("id-1", "u", "").Element()))
	if !strings.Contains(ar, issuer) || !strings.Contains(lr, issuer) {
		t.Fatalf("unexpected serialization:\n%s\n%s", ar, lr)
	}
	for name, repl := range map[string]string{
		"none":            "",
		"other namespace": `<Issuer xmlns="urn:example:other">` + testEntity + `</Issuer>`,
		"protocol ns":     `<samlp:Issuer>` + testEntity + `</samlp:Issuer>`,
		"empty":           `<saml:Issuer></saml:Issuer>`,
	} {
		x := []byte(strings.Replace(ar, issuer, repl, 1))
		if _, err := parseAuthnRequest(x); err == nil || !strings.Contains(err.Error(), "Issuer") {
			t.Errorf("AuthnRequest, Issuer %s: %v", name, err)
		}
		r := httptest.NewRequest(http.MethodGet, "/sso", nil)
		if _, _, err := w.p.checkAuthnRequest(r, testEnt, x, "", testNow); err == nil {
			t.Errorf("AuthnRequest, Issuer %s: checked", name)
		} else if status, public := publicError(err); status != 400 || !strings.Contains(public, "Issuer") {
			t.Errorf("AuthnRequest, Issuer %s: %d %s", name, status, public)
		}
		if _, err := parseLogoutRequest([]byte(strings.Replace(lr, issuer, repl, 1))); err == nil || !strings.Contains(err.Error(), "Issuer") {
			t.Errorf("LogoutRequest, Issuer %s: %v", name, err)
		}
	}
	for name, x := range map[string]string{
		"no ID":           strings.Replace(ar, `ID="id-1"`, "", 1),
		"long ID":         strings.Replace(ar, `ID="id-1"`, `ID="`+strings.Repeat("a", maxID+1)+`"`, 1),
		"SAML 1.1":        strings.Replace(ar, `Version="2.0"`, `Version="1.1"`, 1),
		"not an AuthnReq": strings.ReplaceAll(ar, "samlp:AuthnRequest", "samlp:Other"),
		"not XML":         "<samlp:AuthnRequest",
	} {
		if x == ar {
			t.Fatalf("%s: not altered", name)
		}
		if _, err := parseAuthnRequest([]byte(x)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

// TestCheckAuthnRequest: the checks before crewjam, each with qiao's words, and the HTTP-POST
// endpoint chosen.
func TestCheckAuthnRequest(t *testing.T) {
	w := newTestWorld(t)
	check := func(alter func(*csaml.AuthnRequest)) (*csaml.IdpAuthnRequest, error) {
		r := httptest.NewRequest(http.MethodGet, "/sso", nil)
		req, _, err := w.p.checkAuthnRequest(r, testEnt, toXML(authnRequest("id-1", alter).Element()), "", testNow)
		return req, err
	}
	// The SP's metadata lists Artifact before HTTP-POST at this URL: the POST one is chosen.
	if req, err := check(nil); err != nil || req.ACSEndpoint.Location != testACS || req.ACSEndpoint.Binding != csaml.HTTPPostBinding || req.ACSEndpoint.Index != 1 {
		t.Fatalf("the good request: %v", err)
	}
	for name, c := range map[string]struct {
		alter func(*csaml.AuthnRequest)
		says  string
	}{
		"unknown SP":        {func(a *csaml.AuthnRequest) { a.Issuer.Value = "https://other.test/metadata" }, "unknown service provider"},
		"wrong Destination": {func(a *csaml.AuthnRequest) { a.Destination = "https://elsewhere.test/sso" }, "Destination"},
		"stale":             {func(a *csaml.AuthnRequest) { a.IssueInstant = testNow.Add(-maxSkew - time.Second) }, "expired"},
		"future":            {func(a *csaml.AuthnRequest) { a.IssueInstant = testNow.Add(maxSkew + time.Second) }, "future"},
		"Artifact by index": {func(a *csaml.AuthnRequest) {
			a.AssertionConsumerServiceURL, a.ProtocolBinding, a.AssertionConsumerServiceIndex = "", "", "2"
		}, "HTTP-POST"},
		"unknown index": {func(a *csaml.AuthnRequest) {
			a.AssertionConsumerServiceURL, a.ProtocolBinding, a.AssertionConsumerServiceIndex = "", "", "7"
		}, "not in the app's metadata"},
		"Artifact binding":    {func(a *csaml.AuthnRequest) { a.ProtocolBinding = csaml.HTTPArtifactBinding }, "HTTP-POST"},
		"ACS URL not in md":   {func(a *csaml.AuthnRequest) { a.AssertionConsumerServiceURL = "https://evil.test/acs" }, "AssertionConsumerServiceURL"},
		"Artifact-only URL":   {func(a *csaml.AuthnRequest) { a.AssertionConsumerServiceURL = testArtifactACS }, "AssertionConsumerServiceURL"},
		"version":             {func(a *csaml.AuthnRequest) { a.Version = "1.0" }, "SAML 2.0"},
		"no ID":               {func(a *csaml.AuthnRequest) { a.ID = "" }, "ID"},
		"index and wrong URL": {func(a *csaml.AuthnRequest) { a.AssertionConsumerServiceIndex = "2" }, "HTTP-POST"},
		"redirect response":   {func(a *csaml.AuthnRequest) { a.ProtocolBinding = csaml.HTTPRedirectBinding }, "HTTP-POST"},
	} {
		_, err := check(c.alter)
		status, public := publicError(err)
		if err == nil || status != 400 || !strings.Contains(public, c.says) {
			t.Errorf("%s: %d %q (%v)", name, status, public, err)
		}
	}
	for name, alter := range map[string]func(*csaml.AuthnRequest){
		"POST by index": func(a *csaml.AuthnRequest) {
			a.AssertionConsumerServiceURL, a.ProtocolBinding, a.AssertionConsumerServiceIndex = "", "", "1"
		},
		"default":    func(a *csaml.AuthnRequest) { a.AssertionConsumerServiceURL, a.ProtocolBinding = "", "" },
		"no binding": func(a *csaml.AuthnRequest) { a.ProtocolBinding = "" },
	} {
		if req, err := check(alter); err != nil || req.ACSEndpoint.Binding != csaml.HTTPPostBinding {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestPublicErrorHidesCauses: a library's error reaches the log, never the page.
func TestPublicErrorHidesCauses(t *testing.T) {
	err := badRequest("the message's signature does not verify", errors.New("crypto/rsa: verification error"))
	if status, public := publicError(err); status != 400 || strings.Contains(public, "crypto") || !strings.Contains(err.Error(), "crypto") {
		t.Fatalf("%d %q / %q", status, public, err.Error())
	}
	if status, public := publicError(errors.New("pq: connection refused")); status != 500 || strings.Contains(public, "pq") {
		t.Fatalf("%d %q", status, public)
	}
}

// TestLogoutMatches: a LogoutRequest names the session only with the NameID its SP was given in
// it (recorded, or derived again for a session from before the recording), from an SP the session
// served, and the session's index if it gives one.
func TestLogoutMatches(t *testing.T) {
	w := newTestWorld(t)
	ctx := context.Background()
	other := "https://other.test/metadata"
	sess := func(recorded bool) *session.Session {
		v := &session.Session{SPs: []session.SP{{EntityID: other}, {EntityID: testEntity}}}
		if recorded {
			v.SPs[0].NameID, v.SPs[1].NameID = "_t-other", "_t-given"
		}
		return v
	}
	spAs := func(format string) *serviceProvider {
		c := *w.sp
		d := *c.d
		d.NameIDFormat = format
		c.d = &d
		return &c
	}
	for name, c := range map[string]struct {
		sp       *serviceProvider
		v        *session.Session
		nameID   string
		index    string
		expected bool
	}{
		"the given NameID":              {w.sp, sess(true), "_t-given", "", true},
		"and the session index":         {w.sp, sess(true), "_t-given", "sid-1", true},
		"an empty SessionIndex":         {w.sp, sess(true), "_t-given", "\x00", true},
		"another session index":         {w.sp, sess(true), "_t-given", "sid-2", false},
		"no NameID":                     {w.sp, sess(true), "", "", false},
		"another SP's NameID":           {w.sp, sess(true), "_t-other", "", false},
		"SP not in the session":         {w.sp, &session.Session{SPs: []session.SP{{EntityID: other, NameID: "_t-given"}}}, "_t-given", "", false},
		"derived: persistent":           {spAs("persistent"), sess(false), "u-1", "", true},
		"derived: another value":        {spAs("persistent"), sess(false), "zhangsan", "", false},
		"derived: unspecified":          {spAs("unspecified"), sess(false), "zhangsan", "", true},
		"transient cannot be derived":   {spAs("transient"), sess(false), "_anything", "", false},
		"recorded wins over derivation": {spAs("persistent"), sess(true), "u-1", "", false},
	} {
		lr := logoutRequest("id-1", c.nameID, "")
		if c.nameID == "" {
			lr.NameID = nil
		}
		switch c.index {
		case "":
		case "\x00":
			lr.SessionIndex = &csaml.SessionIndex{}
		default:
			lr.SessionIndex = &csaml.SessionIndex{Value: c.index}
		}
		if got := w.p.logoutMatches(ctx, testEnt, testUser.ID, "sid-1", c.sp, lr, c.v); got != c.expected {
			t.Errorf("%s: %v", name, got)
		}
	}
	// An empty NameID element is no NameID.
	lr := logoutRequest("id-1", "", "")
	if w.p.logoutMatches(ctx, testEnt, testUser.ID, "sid-1", w.sp, lr, sess(true)) {
		t.Error("an empty NameID matched")
	}
}

// TestVerifyXML: the enveloped signature of a POSTed message is checked against the SP's
// certificates; unsigned passes only when not required.
func TestVerifyXML(t *testing.T) {
	w := newTestWorld(t)
	signed := signXML(t, logoutRequest("id-1", "u-1", "sid-1").Element(), w.key)
	unsigned := toXML(logoutRequest("id-1", "u-1", "sid-1").Element())
	noCert := *w.sp
	noCert.signing = nil
	for name, c := range map[string]struct {
		x        []byte
		sp       *serviceProvider
		required bool
		ok       bool
	}{
		"signed":                   {signed, w.sp, true, true},
		"signed, not required":     {signed, w.sp, false, true},
		"tampered":                 {bytes.Replace(signed, []byte(">u-1<"), []byte(">u-2<"), 1), w.sp, false, false},
		"another key":              {signXML(t, logoutRequest("id-1", "u-1", "").Element(), w.other), w.sp, true, false},
		"unsigned, required":       {unsigned, w.sp, true, false},
		"unsigned, not required":   {unsigned, w.sp, false, true},
		"signed, SP has no cert":   {signed, &noCert, false, false},
		"not XML":                  {[]byte("<a"), w.sp, false, false},
		"signature deeper than it": {bytes.Replace(unsigned, []byte("</saml:NameID>"), []byte("</saml:NameID><samlp:Extensions><ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"/></samlp:Extensions>"), 1), w.sp, true, false},
	} {
		if err := verifyXML(c.x, c.sp, c.required); (err == nil) != c.ok {
			t.Errorf("%s: %v", name, err)
		}
	}
}
