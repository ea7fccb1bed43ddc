package scaleout

import (
	"bytes"
	"compress/flate"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/xml"
	"html"
	"io"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	csaml "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/qiao-gateway/qiao/test/scaleout/cluster"
)

// newSP is the test's SAML service provider (crewjam/saml's SP side): it checks the IdP's signed
// assertions against the certificate in the IdP's metadata.
func newSP(t *testing.T) *csaml.ServiceProvider {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sp.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	cert, _ := x509.ParseCertificate(der)
	mu, _ := url.Parse("https://sp.test/metadata")
	acs, _ := url.Parse("https://sp.test/acs")
	slo, _ := url.Parse("https://sp.test/slo")
	return &csaml.ServiceProvider{EntityID: mu.String(), Key: key, Certificate: cert, MetadataURL: *mu, AcsURL: *acs, SloURL: *slo,
		LogoutBindings: []string{csaml.HTTPRedirectBinding}}
}

// spMetadata is the SP's metadata with its signing key only (assertions signed, not encrypted).
func spMetadata(sp *csaml.ServiceProvider) []byte {
	md := sp.Metadata()
	d := &md.SPSSODescriptors[0]
	var kept []csaml.KeyDescriptor
	for _, kd := range d.KeyDescriptors {
		if kd.Use == "signing" {
			kept = append(kept, kd)
		}
	}
	d.KeyDescriptors = kept
	b, _ := xml.Marshal(md)
	return b
}

var formField = regexp.MustCompile(`name="(SAMLResponse|RelayState)" value="([^"]*)"`)
var formAction = regexp.MustCompile(`<form[^>]* action="([^"]+)"`)

// samlAcrossReplicas: an AuthnRequest sent to A, the WeCom logon's callback handled by B, the
// signed assertion the browser posts to the SP valid against the IdP metadata's certificate; then
// a LogoutRequest to C ends the SSO session, so a later AuthnRequest asks for a logon again.
func samlAcrossReplicas(t *testing.T, sp *csaml.ServiceProvider, iss, simURL string, a, b, c *cluster.Replica) {
	resp, err := http.Get(iss + "/saml/metadata")
	if err != nil {
		t.Fatal(err)
	}
	var idpMD csaml.EntityDescriptor
	if err := xml.Unmarshal([]byte(cluster.ReadAll(resp)), &idpMD); err != nil || resp.StatusCode != 200 {
		t.Fatalf("IdP metadata: %d %v", resp.StatusCode, err)
	}
	sp.IDPMetadata = &idpMD
	authn := func() (*csaml.AuthnRequest, string) {
		req, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(csaml.HTTPRedirectBinding), csaml.HTTPRedirectBinding, csaml.HTTPPostBinding)
		if err != nil {
			t.Fatal(err)
		}
		u, err := req.Redirect("relay-1", sp)
		if err != nil {
			t.Fatal(err)
		}
		return req, u.String()
	}

	jar, _ := cookiejar.New(nil)
	req, u := authn()
	_, status, page, err := cluster.Logon{Before: cluster.Pinned(a.Addr, jar), After: cluster.Pinned(b.Addr, jar), SimURL: simURL, User: "zhangsan"}.Walk(u)
	if err != nil || status != 200 {
		t.Fatalf("SSO started at A, logon via B: %d %v\n%s", status, err, page)
	}
	action := formAction.FindStringSubmatch(page)
	fields := map[string]string{}
	for _, m := range formField.FindAllStringSubmatch(page, -1) {
		fields[m[1]] = html.UnescapeString(m[2])
	}
	if action == nil || html.UnescapeString(action[1]) != sp.AcsURL.String() || fields["SAMLResponse"] == "" || fields["RelayState"] != "relay-1" {
		t.Fatalf("no response form to the ACS: %v %v\n%s", action, fields, page)
	}
	raw, err := base64.StdEncoding.DecodeString(fields["SAMLResponse"])
	if err != nil {
		t.Fatal(err)
	}
	// ParseXMLResponse checks the signature against the IdP metadata's certificate, the audience,
	// the recipient, the times and that it answers our request.
	assertion, err := sp.ParseXMLResponse(raw, []string{req.ID}, sp.AcsURL)
	if err != nil {
		t.Fatalf("the assertion does not verify: %v (%+v)", err, err)
	}
	if assertion.Issuer.Value != iss+"/saml/metadata" || assertion.Subject == nil || assertion.Subject.NameID == nil || assertion.Subject.NameID.Value == "" {
		t.Fatalf("assertion: issuer %q subject %+v", assertion.Issuer.Value, assertion.Subject)
	}

	// Signed in: an AuthnRequest at C is answered at once, without a logon.
	_, u = authn()
	resp, err = cluster.Pinned(c.Addr, jar).Get(u)
	if err != nil {
		t.Fatal(err)
	}
	if page := cluster.ReadAll(resp); resp.StatusCode != 200 || !strings.Contains(page, `name="SAMLResponse"`) {
		t.Fatalf("SSO at C while signed in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}

	// Single logout started at C: the IdP answers the SP with a signed LogoutResponse.
	lu, err := sp.MakeRedirectLogoutRequest(assertion.Subject.NameID.Value, "bye")
	if err != nil {
		t.Fatal(err)
	}
	var lr csaml.LogoutRequest
	zraw, _ := base64.StdEncoding.DecodeString(lu.Query().Get("SAMLRequest"))
	lraw, _ := io.ReadAll(flate.NewReader(bytes.NewReader(zraw)))
	_ = xml.Unmarshal(lraw, &lr)
	resp, err = cluster.Pinned(c.Addr, jar).Get(lu.String())
	if err != nil {
		t.Fatal(err)
	}
	body := cluster.ReadAll(resp)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 302 || loc == nil || !strings.HasPrefix(loc.String(), sp.SloURL.String()+"?") || loc.Query().Get("RelayState") != "bye" {
		t.Fatalf("SLO at C: %d %s\n%s", resp.StatusCode, loc, body)
	}
	var done csaml.LogoutResponse
	if err := xml.Unmarshal(redirectMessage(t, &idpMD, loc, "SAMLResponse"), &done); err != nil {
		t.Fatal(err)
	}
	if done.InResponseTo != lr.ID || done.Status.StatusCode.Value != csaml.StatusSuccess {
		t.Fatalf("LogoutResponse: in response to %q (want %q), status %s", done.InResponseTo, lr.ID, done.Status.StatusCode.Value)
	}

	// The session is over on every replica: an AuthnRequest at A asks for a logon again.
	_, u = authn()
	resp, err = cluster.Pinned(a.Addr, jar).Get(u)
	if err != nil {
		t.Fatal(err)
	}
	page = cluster.ReadAll(resp)
	if resp.StatusCode < 300 || resp.StatusCode >= 400 || !strings.Contains(resp.Header.Get("Location"), "/login/") || strings.Contains(page, `name="SAMLResponse"`) {
		t.Fatalf("SSO after SLO: %d to %q, want a logon\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
}

// redirectMessage checks an HTTP-Redirect message from the IdP, whose signature covers the field,
// RelayState and SigAlg as sent, against the signing certificate of the IdP's metadata, and
// returns its XML.
func redirectMessage(t *testing.T, md *csaml.EntityDescriptor, loc *url.URL, field string) []byte {
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
	digest := sha256.Sum256([]byte(signed))
	var verified bool
	for _, kd := range md.IDPSSODescriptors[0].KeyDescriptors {
		if kd.Use != "" && kd.Use != "signing" {
			continue
		}
		for _, xc := range kd.KeyInfo.X509Data.X509Certificates {
			der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(xc.Data), ""))
			if err != nil {
				continue
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				continue
			}
			if pk, ok := cert.PublicKey.(*rsa.PublicKey); ok && rsa.VerifyPKCS1v15(pk, crypto.SHA256, digest[:], sig) == nil {
				verified = true
			}
		}
	}
	if loc.Query().Get("SigAlg") != dsig.RSASHA256SignatureMethod || !verified {
		t.Fatalf("the %s's query signature does not verify against the IdP metadata: %s", field, loc)
	}
	zraw, _ := base64.StdEncoding.DecodeString(loc.Query().Get(field))
	raw, err := io.ReadAll(flate.NewReader(bytes.NewReader(zraw)))
	if err != nil {
		t.Fatalf("%s does not inflate: %v", field, err)
	}
	return raw
}
