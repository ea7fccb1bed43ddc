package gateway

import (
	"bytes"
	"compress/flate"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"encoding/xml"
	"html"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"
	csaml "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/config"
	"github.com/qiao-gateway/qiao/keys"
)

// testSP is a SAML service provider the tests register: crewjam's SP code builds its requests and
// checks what comes back; xmlsec1 and node-saml are the independent checks.
type testSP struct {
	*csaml.ServiceProvider
	key     *rsa.PrivateKey
	keyPEM  string
	entity  string
	acs     string
	encrypt bool
	// unsignedAuthn: its metadata has a signing certificate but does not say AuthnRequestsSigned.
	unsignedAuthn bool
}

func newTestSP(t *testing.T, name string, signRequests, encrypt bool) *testSP {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	cert, _ := x509.ParseCertificate(der)
	base := "https://" + name + ".test"
	mu, _ := url.Parse(base + "/metadata")
	acs, _ := url.Parse(base + "/acs")
	slo, _ := url.Parse(base + "/slo")
	sp := &csaml.ServiceProvider{EntityID: mu.String(), Key: key, Certificate: cert, MetadataURL: *mu, AcsURL: *acs, SloURL: *slo, AllowIDPInitiated: true,
		LogoutBindings: []string{csaml.HTTPRedirectBinding}}
	if signRequests {
		sp.SignatureMethod = dsig.RSASHA256SignatureMethod
	}
	kp := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	return &testSP{ServiceProvider: sp, key: key, keyPEM: string(kp), entity: mu.String(), acs: acs.String(), encrypt: encrypt}
}

// metadata is the SP's metadata, without its encryption key unless it wants encrypted assertions.
func (s *testSP) metadata() string {
	md := s.Metadata()
	d := &md.SPSSODescriptors[0]
	if s.unsignedAuthn {
		no := false
		d.AuthnRequestsSigned = &no
	}
	if !s.encrypt {
		var kept []csaml.KeyDescriptor
		for _, kd := range d.KeyDescriptors {
			if kd.Use == "signing" {
				kept = append(kept, kd)
			}
		}
		d.KeyDescriptors = kept
	}
	b, _ := xml.Marshal(md)
	return string(b)
}

type samlWorld struct {
	*world
	sps map[string]*testSP
	// soap is the "soap" SP's SOAP SingleLogoutService: what it received, and whether it fails.
	soap     chan soapCall
	soapFail atomic.Bool
}

// soapCall is a LogoutRequest the "soap" SP received over the SOAP binding.
type soapCall struct {
	req   csaml.LogoutRequest
	sigOK bool
}

func newSAMLWorld(t *testing.T) *samlWorld {
	s := &samlWorld{sps: map[string]*testSP{
		"signed":    newTestSP(t, "signed", true, true),      // signs its requests, wants encrypted assertions
		"plain":     newTestSP(t, "plain", false, false),     // response and assertion signed
		"assertion": newTestSP(t, "assertion", false, false), // assertion signed only
		"encrypted": newTestSP(t, "encrypted", false, true),  // encrypted, assertion signed only
		"transient": newTestSP(t, "transient", false, false), // transient NameIDs, single logout on HTTP-POST
		"certonly":  newTestSP(t, "certonly", true, false),   // a signing certificate, AuthnRequests unsigned
	}}
	s.sps["certonly"].unsignedAuthn = true
	s.sps["transient"].LogoutBindings = []string{csaml.HTTPPostBinding}
	// "soap" logs out over the back channel only (SAML bindings §3.2), as Shibboleth SPs can.
	s.soap = make(chan soapCall, 10)
	soapSrv := httptest.NewServer(http.HandlerFunc(s.soapEndpoint))
	t.Cleanup(soapSrv.Close)
	s.sps["soap"] = newTestSP(t, "soap", false, false)
	s.sps["soap"].LogoutBindings = []string{csaml.SOAPBinding}
	soapSLO, _ := url.Parse(soapSrv.URL + "/slo")
	s.sps["soap"].SloURL = *soapSLO
	no, yes := false, true
	s.world = newWorld(t, 30, t.TempDir(), true, func(c *config.Config) {
		e := &c.Enterprises[0]
		for name, sp := range s.sps {
			d := config.ServiceProvider{EntityID: sp.entity, Name: name, Metadata: sp.metadata()}
			switch name {
			case "assertion", "encrypted":
				d.SignResponse, d.SignAssertion = &no, &yes
			case "transient":
				d.NameIDFormat = "transient"
			case "plain":
				d.NameIDFormat = "unspecified"
				d.Attributes = map[string]string{"displayName": "name", "email": "email", "dept": "departments", "ent": "enterprise"}
			}
			e.ServiceProviders = append(e.ServiceProviders, d)
		}
	})
	resp, err := http.Get(s.base + "/e/demo/saml/metadata")
	if err != nil {
		t.Fatal(err)
	}
	var md csaml.EntityDescriptor
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := xml.Unmarshal(b, &md); err != nil {
		t.Fatalf("IdP metadata: %v\n%s", err, b)
	}
	for _, sp := range s.sps {
		sp.IDPMetadata = &md
	}
	return s
}

// soapEndpoint is the "soap" SP's SingleLogoutService: it checks the LogoutRequest's signature
// against the IdP's certificate, records it and answers Success (or fails with a 500).
func (s *samlWorld) soapEndpoint(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	doc := etree.NewDocument()
	if r.Header.Get("Content-Type") != "text/xml; charset=utf-8" || doc.ReadFromBytes(body) != nil || doc.Root() == nil ||
		doc.Root().Tag != "Envelope" || doc.Root().NamespaceURI() != "http://schemas.xmlsoap.org/soap/envelope/" {
		http.Error(w, "not a SOAP envelope", http.StatusBadRequest)
		return
	}
	el := doc.FindElement("//LogoutRequest")
	if el == nil {
		http.Error(w, "no LogoutRequest", http.StatusBadRequest)
		return
	}
	one := etree.NewDocument()
	one.SetRoot(el.Copy())
	raw, _ := one.WriteToBytes()
	var call soapCall
	_ = xml.Unmarshal(raw, &call.req)
	k, _ := s.gw.Keys.Signing(keys.SAML)
	vctx := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{k.Cert}})
	_, err := vctx.Validate(one.Root())
	call.sigOK = err == nil
	s.soap <- call
	if s.soapFail.Load() {
		http.Error(w, "broken", http.StatusInternalServerError)
		return
	}
	resp := &csaml.LogoutResponse{ID: "id-soap-answer", InResponseTo: call.req.ID, Version: "2.0", IssueInstant: time.Now(),
		Issuer: &csaml.Issuer{Value: s.sps["soap"].entity}, Status: csaml.Status{StatusCode: csaml.StatusCode{Value: csaml.StatusSuccess}}}
	env := etree.NewDocument()
	e := env.CreateElement("SOAP-ENV:Envelope")
	e.CreateAttr("xmlns:SOAP-ENV", "http://schemas.xmlsoap.org/soap/envelope/")
	e.CreateElement("SOAP-ENV:Body").AddChild(resp.Element())
	out, _ := env.WriteToBytes()
	w.Header().Set("Content-Type", "text/xml")
	_, _ = w.Write(out)
}

var (
	formAction = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	formField  = regexp.MustCompile(`name="(SAMLRequest|SAMLResponse|RelayState)" value="([^"]*)"`)
)

// postForm reads the HTTP-POST binding page: where it posts and what.
func postForm(t *testing.T, page string) (action string, fields map[string]string) {
	t.Helper()
	m := formAction.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no POST form in page:\n%s", page)
	}
	fields = map[string]string{}
	for _, f := range formField.FindAllStringSubmatch(page, -1) {
		fields[f[1]] = html.UnescapeString(f[2])
	}
	return html.UnescapeString(m[1]), fields
}

// authnURL builds an SP-initiated HTTP-Redirect request (signed when the SP signs), optionally
// altered first.
func (s *samlWorld) authnURL(t *testing.T, sp *testSP, relay string, alter func(*csaml.AuthnRequest)) (string, string) {
	t.Helper()
	req, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(csaml.HTTPRedirectBinding), csaml.HTTPRedirectBinding, csaml.HTTPPostBinding)
	if err != nil {
		t.Fatal(err)
	}
	if alter != nil {
		alter(req)
	}
	u, err := req.Redirect(relay, sp.ServiceProvider)
	if err != nil {
		t.Fatal(err)
	}
	return u.String(), req.ID
}

// signedIn gives a browser with an SSO session (WeCom QR login as 张三).
func (s *samlWorld) signedIn(t *testing.T) *browser {
	b := newBrowser(t)
	if status, _, at := b.get(s.base+"/login?enterprise=demo&idp_hint=wecom", "zhangsan"); status != 200 || !strings.HasSuffix(at, "/login/done") {
		t.Fatalf("login: %d at %s", status, at)
	}
	return b
}

func TestSAMLMetadata(t *testing.T) {
	s := newSAMLWorld(t)
	md := s.sps["plain"].IDPMetadata
	d := md.IDPSSODescriptors[0]
	if md.EntityID != s.base+"/e/demo/saml/metadata" || len(d.SingleSignOnServices) != 2 || len(d.SingleLogoutServices) == 0 {
		t.Fatalf("metadata: %+v", md)
	}
	bindings := d.SingleSignOnServices[0].Binding + " " + d.SingleSignOnServices[1].Binding
	if !strings.Contains(bindings, csaml.HTTPRedirectBinding) || !strings.Contains(bindings, csaml.HTTPPostBinding) ||
		d.SingleSignOnServices[0].Location != s.base+"/e/demo/saml/sso" {
		t.Fatalf("SSO endpoints: %+v", d.SingleSignOnServices)
	}
	k, _ := s.gw.Keys.Signing(keys.SAML)
	if len(d.KeyDescriptors) == 0 || d.KeyDescriptors[0].Use != "signing" ||
		d.KeyDescriptors[0].KeyInfo.X509Data.X509Certificates[0].Data != base64.StdEncoding.EncodeToString(k.Cert.Raw) {
		t.Fatal("the signing certificate in the metadata is not the SAML key's")
	}
	resp, _ := http.Get(s.base + "/e/nobody/saml/metadata")
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("unknown enterprise: %d", resp.StatusCode)
	}
}

func TestSAMLSPInitiatedSignedEncryptedAndOneSession(t *testing.T) {
	s := newSAMLWorld(t)
	sp := s.sps["signed"]
	b := newBrowser(t)
	u, reqID := s.authnURL(t, sp, "rs-1", nil)
	// No session: the broker's source choice, then WeCom, then back with the response.
	status, page, at := b.get(u, "zhangsan")
	if status != 200 || !strings.Contains(at, "/login/e/demo?") || !strings.Contains(page, "/login/e/demo/s/wecom") {
		t.Fatalf("no session: %d at %s", status, at)
	}
	status, page, _ = b.get(s.base+"/login/e/demo/s/wecom?"+strings.SplitN(at, "?", 2)[1], "zhangsan")
	action, f := postForm(t, page)
	if status != 200 || action != sp.acs || f["RelayState"] != "rs-1" {
		t.Fatalf("response form: %d %s %v", status, action, f)
	}
	raw, _ := base64.StdEncoding.DecodeString(f["SAMLResponse"])
	if !bytes.Contains(raw, []byte("EncryptedAssertion")) || bytes.Contains(raw, []byte("张三")) {
		t.Fatal("the assertion to an SP with an encryption key is not encrypted")
	}
	acsURL, _ := url.Parse(sp.acs)
	a, err := sp.ParseXMLResponse(raw, []string{reqID}, *acsURL)
	if err != nil {
		t.Fatalf("the SP refused the response: %v", err.(*csaml.InvalidResponseError).PrivateErr)
	}
	zhang := s.user("zhangsan")
	if a.Subject.NameID.Value != zhang.ID || a.Subject.NameID.Format != "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" {
		t.Fatalf("NameID = %+v", a.Subject.NameID)
	}
	attrs := map[string]string{}
	for _, at := range a.AttributeStatements[0].Attributes {
		attrs[at.FriendlyName] = at.Values[0].Value
	}
	if attrs["displayName"] != "张三" || attrs["uid"] != "zhangsan" || attrs["enterprise"] != "demo" || !strings.HasPrefix(attrs["departments"], "/") {
		t.Fatalf("attributes = %v", attrs)
	}
	// The same SSO session serves OIDC: no second login.
	b.stop = "http://127.0.0.1:53682/"
	_, challenge := pkcePair()
	if _, _, at := b.get(s.base+"/e/demo/authorize?"+nativeAuthz(challenge, "prompt", "none").Encode(), ""); !strings.Contains(at, "code=") {
		t.Fatalf("OIDC after SAML needed a login: %s", at)
	}
	// The request was used once; replaying the same URL gets nothing.
	b.stop = ""
	if status, page, _ := b.get(u, ""); status != 400 || strings.Contains(page, "SAMLResponse") {
		t.Fatalf("replayed AuthnRequest: %d", status)
	}
	// A tampered signature (or request) is refused.
	u2, _ := s.authnURL(t, sp, "", nil)
	tampered := strings.Replace(u2, "Signature=", "Signature=AA", 1)
	if status, page, _ := b.get(tampered, ""); status != 400 || strings.Contains(page, "SAMLResponse") {
		t.Fatalf("tampered signature: %d", status)
	}
	// An SP that signs its requests may not send an unsigned one.
	unsigned := regexp.MustCompile(`&SigAlg=[^&]*&Signature=[^&]*`).ReplaceAllString(u2, "")
	if status, _, _ := b.get(unsigned, ""); status != 400 {
		t.Fatalf("unsigned request from a signing SP: %d", status)
	}
}

func TestSAMLRefusals(t *testing.T) {
	s := newSAMLWorld(t)
	b := s.signedIn(t)
	sp := s.sps["plain"]
	refused := func(name, u string) {
		t.Helper()
		status, page, _ := b.get(u, "")
		if status < 400 || strings.Contains(page, "SAMLResponse") {
			t.Errorf("%s: %d (an assertion must never come back)", name, status)
		}
	}
	good, _ := s.authnURL(t, sp, "", nil)
	if status, page, _ := b.get(good, ""); status != 200 || !strings.Contains(page, "SAMLResponse") {
		t.Fatalf("the well-formed request was not answered: %d\n%s", status, page)
	}
	u, _ := s.authnURL(t, sp, "", func(r *csaml.AuthnRequest) { r.AssertionConsumerServiceURL = "https://evil.test/acs" })
	refused("ACS URL not in metadata", u)
	u, _ = s.authnURL(t, sp, "", func(r *csaml.AuthnRequest) { r.IssueInstant = time.Now().Add(-10 * time.Minute) })
	refused("stale IssueInstant", u)
	u, _ = s.authnURL(t, sp, "", func(r *csaml.AuthnRequest) { r.IssueInstant = time.Now().Add(10 * time.Minute) })
	refused("future IssueInstant", u)
	u, _ = s.authnURL(t, sp, "", func(r *csaml.AuthnRequest) { r.Destination = "https://elsewhere.test/sso" })
	refused("wrong Destination", strings.Replace(u, "https://elsewhere.test/sso", s.base+"/e/demo/saml/sso", 1))
	u, _ = s.authnURL(t, sp, "", func(r *csaml.AuthnRequest) { r.Issuer.Value = "https://unknown.test/metadata" })
	refused("unknown issuer", u)
	sso := s.base + "/e/demo/saml/sso?SAMLRequest="
	refused("malformed base64", sso+"%%%not-base64")
	refused("not deflate", sso+url.QueryEscape(base64.StdEncoding.EncodeToString([]byte("<AuthnRequest/>"))))
	refused("oversized", sso+strings.Repeat("A", 70<<10))
	deflate := func(x string) string {
		var buf bytes.Buffer
		w, _ := flate.NewWriter(&buf, 9)
		_, _ = w.Write([]byte(x))
		w.Close()
		return url.QueryEscape(base64.StdEncoding.EncodeToString(buf.Bytes()))
	}
	bomb := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
		`<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&lol3;</samlp:AuthnRequest>`
	refused("XML bomb", sso+deflate(bomb))
	refused("inflates past the limit", sso+deflate(strings.Repeat("<a>", 200<<10)))
	refused("garbage XML", sso+deflate("<samlp:AuthnRequest"))
	resp, err := b.c.PostForm(s.base+"/e/demo/saml/sso", url.Values{"SAMLRequest": {"***"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("POST binding with malformed base64: %d", resp.StatusCode)
	}
	refused("IdP-initiated for an unknown SP", s.base+"/e/demo/saml/launch?sp=https://unknown.test/metadata")

	// A departed person gets no assertion, even with a live session.
	zhang := s.user("zhangsan")
	zhang.Status = directory.UserDeparted
	if err := s.gw.Store.UpdateUser(s.ctx, zhang); err != nil {
		t.Fatal(err)
	}
	u, _ = s.authnURL(t, sp, "", nil)
	refused("departed user", u)
	refused("departed user, IdP-initiated", s.base+"/e/demo/saml/launch?sp="+url.QueryEscape(sp.entity))
}

// TestSAMLNameIDAttributesAndIdPInitiated: per-SP NameID format and attribute mapping on an
// IdP-initiated response (no InResponseTo), and single logout.
func TestSAMLNameIDAttributesAndIdPInitiated(t *testing.T) {
	s := newSAMLWorld(t)
	b := s.signedIn(t)
	sp := s.sps["plain"]
	status, page, _ := b.get(s.base+"/e/demo/saml/launch?sp="+url.QueryEscape(sp.entity)+"&RelayState=https%3A%2F%2Fplain.test%2Fhome", "")
	action, f := postForm(t, page)
	if status != 200 || action != sp.acs || f["RelayState"] != "https://plain.test/home" {
		t.Fatalf("IdP-initiated: %d %s %v", status, action, f)
	}
	raw, _ := base64.StdEncoding.DecodeString(f["SAMLResponse"])
	acsURL, _ := url.Parse(sp.acs)
	a, err := sp.ParseXMLResponse(raw, nil, *acsURL)
	if err != nil {
		t.Fatalf("the SP refused the IdP-initiated response: %v", err.(*csaml.InvalidResponseError).PrivateErr)
	}
	if a.Subject.NameID.Value != "zhangsan" || a.Subject.NameID.Format != "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified" {
		t.Fatalf("NameID = %+v", a.Subject.NameID)
	}
	got := map[string]string{}
	for _, at := range a.AttributeStatements[0].Attributes {
		got[at.Name] = at.Values[0].Value
	}
	zhang := s.user("zhangsan")
	if len(got) != 4 || got["displayName"] != "张三" || got["email"] != zhang.Email || got["ent"] != "demo" || !strings.HasPrefix(got["dept"], "/") {
		t.Fatalf("mapped attributes = %v", got)
	}
	// Single logout: the SP's LogoutRequest ends the session; a signed LogoutResponse goes back.
	lu, err := sp.MakeRedirectLogoutRequest("zhangsan", "bye")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := b.c.Get(lu.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 302 || !strings.HasPrefix(loc.String(), "https://plain.test/slo?") || loc.Query().Get("Signature") == "" || loc.Query().Get("RelayState") != "bye" {
		t.Fatalf("LogoutResponse: %d %s", resp.StatusCode, loc)
	}
	lraw := s.redirectMessage(t, loc, "SAMLResponse")
	var lr csaml.LogoutResponse
	if err := xml.Unmarshal(lraw, &lr); err != nil || lr.Status.StatusCode.Value != csaml.StatusSuccess || lr.Destination != "https://plain.test/slo" || lr.InResponseTo == "" {
		t.Fatalf("LogoutResponse: %v %s", err, lraw)
	}
	if status, _, at := b.get(s.base+"/login/done", ""); status != 200 || strings.HasSuffix(at, "/login/done") {
		t.Fatalf("the SSO session survived single logout: %d %s", status, at)
	}
	// The same LogoutRequest again is a replay.
	if status, _, _ := b.get(lu.String(), ""); status != 400 {
		t.Fatalf("replayed LogoutRequest: %d", status)
	}
}

// TestSAMLSignaturesVerifiedByXmlsec1: Debian's xmlsec1, which shares no code with qiao, verifies
// the Response and Assertion signatures and decrypts an encrypted assertion.
func TestSAMLSignaturesVerifiedByXmlsec1(t *testing.T) {
	xmlsec, err := exec.LookPath("xmlsec1")
	if err != nil {
		if os.Getenv("QIAO_REQUIRE_XMLSEC") == "1" {
			t.Fatal("xmlsec1 is not installed (apt install xmlsec1)")
		}
		t.Skip("xmlsec1 not installed; apt install xmlsec1")
	}
	s := newSAMLWorld(t)
	b := s.signedIn(t)
	dir := t.TempDir()
	k, _ := s.gw.Keys.Signing(keys.SAML)
	idpCert := filepath.Join(dir, "idp.crt")
	_ = os.WriteFile(idpCert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.Cert.Raw}), 0o600)
	response := func(sp string) string {
		_, page, _ := b.get(s.base+"/e/demo/saml/launch?sp="+url.QueryEscape(s.sps[sp].entity), "")
		_, f := postForm(t, page)
		raw, _ := base64.StdEncoding.DecodeString(f["SAMLResponse"])
		path := filepath.Join(dir, sp+".xml")
		_ = os.WriteFile(path, raw, 0o600)
		return path
	}
	run := func(args ...string) (string, error) {
		out, err := exec.Command(xmlsec, args...).CombinedOutput()
		return string(out), err
	}
	const respID, assertID = "urn:oasis:names:tc:SAML:2.0:protocol:Response", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"
	// Response and assertion signed: the Response signature (the first in the document).
	if out, err := run("--verify", "--trusted-pem", idpCert, "--id-attr:ID", respID, "--id-attr:ID", assertID, response("plain")); err != nil {
		t.Fatalf("xmlsec1 refused the Response signature: %v\n%s", err, out)
	}
	// Assertion signed only.
	p := response("assertion")
	if out, err := run("--verify", "--trusted-pem", idpCert, "--id-attr:ID", assertID, p); err != nil {
		t.Fatalf("xmlsec1 refused the Assertion signature: %v\n%s", err, out)
	}
	// A changed byte in the signed assertion: xmlsec1 must refuse it (the check can fail).
	raw, _ := os.ReadFile(p)
	bad := filepath.Join(dir, "tampered.xml")
	_ = os.WriteFile(bad, bytes.Replace(raw, []byte("zhangsan"), []byte("lisi0000"), 1), 0o600)
	if out, err := run("--verify", "--trusted-pem", idpCert, "--id-attr:ID", assertID, bad); err == nil {
		t.Fatalf("xmlsec1 accepted a tampered assertion:\n%s", out)
	}
	// Encrypted: xmlsec1 decrypts with the SP's key, then verifies the assertion inside.
	spKey := filepath.Join(dir, "sp.key")
	_ = os.WriteFile(spKey, []byte(s.sps["encrypted"].keyPEM), 0o600)
	dec := filepath.Join(dir, "decrypted.xml")
	if out, err := run("--decrypt", "--privkey-pem", spKey, "--output", dec, response("encrypted")); err != nil {
		t.Fatalf("xmlsec1 could not decrypt the assertion: %v\n%s", err, out)
	}
	plain, _ := os.ReadFile(dec)
	if !bytes.Contains(plain, []byte(">zhangsan<")) || !bytes.Contains(plain, []byte("<saml:Assertion")) {
		t.Fatalf("decrypted assertion lacks the person:\n%s", plain)
	}
	if out, err := run("--verify", "--trusted-pem", idpCert, "--id-attr:ID", assertID, dec); err != nil {
		t.Fatalf("xmlsec1 refused the decrypted assertion's signature: %v\n%s", err, out)
	}
}

// TestSAMLPostBindingSignedRequestsAndLogout: HTTP-POST AuthnRequests carry an enveloped XML
// signature, verified with goxmldsig against the SP's metadata; a tampered or unsigned one from a
// signing SP is refused; a signed LogoutRequest on the POST binding ends the session.
func TestSAMLPostBindingSignedRequestsAndLogout(t *testing.T) {
	s := newSAMLWorld(t)
	b := s.signedIn(t)
	sp := s.sps["signed"]
	sso := s.base + "/e/demo/saml/sso"
	xmlOf := func(el *etree.Element) string {
		doc := etree.NewDocument()
		doc.SetRoot(el)
		out, _ := doc.WriteToString()
		return out
	}
	post := func(u, x string) (int, string, string) {
		return b.post(u, url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString([]byte(x))}, "RelayState": {"p-1"}})
	}
	signedReq := func() string {
		req, err := sp.MakeAuthenticationRequest(sso, csaml.HTTPPostBinding, csaml.HTTPPostBinding)
		if err != nil {
			t.Fatal(err)
		}
		if req.Signature == nil { // crewjam signs POST requests itself when the SP has a signature method
			if err := sp.SignAuthnRequest(req); err != nil {
				t.Fatal(err)
			}
		}
		return xmlOf(req.Element())
	}
	status, page, _ := post(sso, signedReq())
	if action, f := postForm(t, page); status != 200 || action != sp.acs || f["RelayState"] != "p-1" {
		t.Fatalf("signed POST AuthnRequest: %d %s", status, action)
	}
	tampered := regexp.MustCompile(`IssueInstant="[^"]+"`).ReplaceAllString(signedReq(), `IssueInstant="`+time.Now().UTC().Add(time.Second).Format("2006-01-02T15:04:05.000Z")+`"`)
	if status, page, _ := post(sso, tampered); status != 400 || strings.Contains(page, "SAMLResponse") {
		t.Fatalf("tampered POST AuthnRequest: %d", status)
	}
	unsigned, _ := sp.MakeAuthenticationRequest(sso, csaml.HTTPPostBinding, csaml.HTTPPostBinding)
	unsigned.Signature = nil
	if status, page, _ := post(sso, xmlOf(unsigned.Element())); status != 400 || strings.Contains(page, "SAMLResponse") {
		t.Fatalf("unsigned POST AuthnRequest from a signing SP: %d", status)
	}
	// Single logout on the POST binding, signed in the XML.
	lr, err := sp.MakeLogoutRequest(s.base+"/e/demo/saml/slo", s.user("zhangsan").ID)
	if err != nil || lr.Signature == nil {
		t.Fatalf("logout request: %v", err)
	}
	resp, err := b.c.PostForm(s.base+"/e/demo/saml/slo", url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString([]byte(xmlOf(lr.Element())))}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != 302 || !strings.HasPrefix(loc, "https://signed.test/slo?SAMLResponse=") {
		t.Fatalf("POST LogoutRequest: %d %s", resp.StatusCode, loc)
	}
	if status, _, at := b.get(s.base+"/login/done", ""); status != 200 || strings.HasSuffix(at, "/login/done") {
		t.Fatalf("the session survived the POST LogoutRequest: %d %s", status, at)
	}
}

// TestSAMLIsPassiveWithoutSession: a passive request and no session get a signed NoPassive status,
// not a login page and not an assertion.
func TestSAMLIsPassiveWithoutSession(t *testing.T) {
	s := newSAMLWorld(t)
	sp := s.sps["plain"]
	yes := true
	u, reqID := s.authnURL(t, sp, "", func(r *csaml.AuthnRequest) { r.IsPassive = &yes })
	status, page, _ := newBrowser(t).get(u, "")
	action, f := postForm(t, page)
	raw, _ := base64.StdEncoding.DecodeString(f["SAMLResponse"])
	var resp csaml.Response
	if err := xml.Unmarshal(raw, &resp); status != 200 || action != sp.acs || err != nil {
		t.Fatalf("passive request: %d %s %v", status, action, err)
	}
	if resp.Status.StatusCode.StatusCode == nil || resp.Status.StatusCode.StatusCode.Value != csaml.StatusNoPassive ||
		resp.InResponseTo != reqID || resp.Assertion != nil || resp.EncryptedAssertion != nil || !bytes.Contains(raw, []byte("SignatureValue")) {
		t.Fatalf("passive request answered with:\n%s", raw)
	}
}
