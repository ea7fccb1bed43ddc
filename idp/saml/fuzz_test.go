package saml

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/beevik/etree"
	csaml "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
)

// Fuzz targets for what reads an SP's messages: the HTTP-Redirect query (parse and signature) and
// the HTTP-POST form with its XML (parse, XML signature, the AuthnRequest and logout message
// checks). Besides "never panics, refuses with a 400 in qiao's words", each checks the property
// the signature is for: whatever verifies carries exactly what the SP signed. The seeds are real
// signed messages of the test SP (a fixed key in testdata, so they verify in every process).

// mustBeBadRequest fails unless err is a refusal with a 400 and qiao's own words.
func mustBeBadRequest(t *testing.T, err error) {
	t.Helper()
	var re *requestError
	if status, public := publicError(err); status != http.StatusBadRequest || public == "" || !errors.As(err, &re) {
		t.Fatalf("refused with %d %q: %v", status, public, err)
	}
}

// readAll runs every reader of a message's XML on m: the AuthnRequest checks (crewjam's Validate
// among them), the logout messages, the XML signature.
func (w *testWorld) readAll(t *testing.T, m *message) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/e/"+testEnt+"/saml/sso", nil)
	if req, sp, err := w.p.checkAuthnRequest(r, testEnt, m.XML, m.RelayState, testNow); err != nil {
		mustBeBadRequest(t, err)
	} else if req.ACSEndpoint == nil || req.ACSEndpoint.Binding != csaml.HTTPPostBinding || sp != nil && sp.d.EntityID != testEntity {
		t.Fatalf("checked, with ACS %+v", req.ACSEndpoint)
	}
	if _, err := parseLogoutRequest(m.XML); err != nil {
		mustBeBadRequest(t, err)
	}
	if _, err := parseLogoutResponse(m.XML); err != nil {
		mustBeBadRequest(t, err)
	}
	if err := verifyXML(m.XML, w.sp, true); err != nil {
		mustBeBadRequest(t, err)
	}
}

// redirectSeed is what a signed HTTP-Redirect query carries.
type redirectSeed struct {
	field, relay, alg string
	xml               []byte
}

// redirectSeeds are HTTP-Redirect queries of the test SP: signed ones (with what each signature
// covers, keyed by the signed octets), unsigned ones and smuggling attempts.
func redirectSeeds(w *testWorld) (queries []string, signed map[string]redirectSeed) {
	signed = map[string]redirectSeed{}
	add := func(field string, x []byte, relay string) string {
		q, octets := signedQuery(field, x, relay, w.key)
		signed[octets] = redirectSeed{field: field, relay: relay, alg: dsig.RSASHA256SignatureMethod, xml: x}
		queries = append(queries, q)
		return q
	}
	authn := toXML(authnRequest("id-seed-authn", nil).Element())
	q := add("SAMLRequest", authn, "https://sp.test/after?x=1")
	add("SAMLRequest", toXML(logoutRequest("id-seed-logout", "u-1", "sid-1").Element()), "")
	resp := &csaml.LogoutResponse{ID: "id-seed-resp", InResponseTo: "id-sent", Version: "2.0", IssueInstant: testNow,
		Issuer: &csaml.Issuer{Value: testEntity}, Status: csaml.Status{StatusCode: csaml.StatusCode{Value: csaml.StatusSuccess}}}
	add("SAMLResponse", toXML(resp.Element()), "pending-1")
	evil := url.QueryEscape(deflateB64(toXML(authnRequest("id-evil", nil).Element())))
	unsigned, _ := signedQuery("SAMLRequest", authn, "r", nil)
	queries = append(queries, unsigned,
		"SAML%52equest="+evil+"&"+q,
		"SAMLRequest="+evil+"&"+q,
		"Relay%53tate=evil&"+q,
		q+"&RelayState=evil",
		strings.Replace(q, "RelayState=", "RelayState=x", 1),
		"SAMLRequest=&SigAlg=&Signature=",
	)
	return queries, signed
}

// FuzzRedirectBinding: parseRedirect and the query signature check, then every reader of the
// message. A query whose signature verifies must carry exactly the field, XML, RelayState and
// algorithm the SP signed: any other reading of a signed query is parameter smuggling.
func FuzzRedirectBinding(f *testing.F) {
	w := newTestWorld(f)
	queries, signed := redirectSeeds(w)
	verified := 0
	for _, q := range queries {
		if m, err := parseRedirect(q); err == nil && m.Query != nil && verifySignature(m, w.sp, true) == nil {
			verified++
		}
		f.Add(q)
	}
	if verified != len(signed) {
		f.Fatalf("%d of the %d signed seeds verify", verified, len(signed))
	}
	f.Fuzz(func(t *testing.T, raw string) {
		m, err := parseRedirect(raw)
		if err != nil {
			mustBeBadRequest(t, err)
			return
		}
		if m.Field != "SAMLRequest" && m.Field != "SAMLResponse" || len(m.XML) > maxRequestXML || len(m.RelayState) > 1024 {
			t.Fatalf("parsed %s of %d bytes, RelayState of %d", m.Field, len(m.XML), len(m.RelayState))
		}
		if m.Query != nil {
			if err := verifySignature(m, w.sp, true); err != nil {
				mustBeBadRequest(t, err)
			} else {
				s, ok := signed[string(m.Query.Signed)]
				if !ok {
					t.Fatalf("a signature verified over octets the SP never signed: %q", m.Query.Signed)
				}
				if m.Field != s.field || !bytes.Equal(m.XML, s.xml) || m.RelayState != s.relay || m.Query.Alg != s.alg {
					t.Fatalf("the signed query %q was read as %s %q with RelayState %q, SigAlg %q", raw, m.Field, m.XML, m.RelayState, m.Query.Alg)
				}
			}
		}
		w.readAll(t, m)
	})
}

// summary is what the handlers read from a message (encoding/xml, as crewjam's types do), for
// comparing a message whose XML signature verifies with what was signed.
func summary(x []byte) (string, bool) {
	if ar, err := parseAuthnRequest(x); err == nil {
		return fmt.Sprintf("AuthnRequest|%s|%s|%s|%s|%s|%s|%s|%v|%v|%v|%v", ar.ID, ar.Issuer.Value, ar.Issuer.Format, ar.Destination,
			ar.IssueInstant, ar.AssertionConsumerServiceURL, ar.AssertionConsumerServiceIndex, ar.ProtocolBinding, ar.ForceAuthn != nil && *ar.ForceAuthn,
			ar.IsPassive != nil && *ar.IsPassive, ar.NameIDPolicy != nil && ar.NameIDPolicy.Format != nil && *ar.NameIDPolicy.Format != ""), true
	}
	if lr, err := parseLogoutRequest(x); err == nil {
		nameID, index := "-", "-"
		if lr.NameID != nil {
			nameID = lr.NameID.Format + "/" + lr.NameID.Value
		}
		if lr.SessionIndex != nil {
			index = lr.SessionIndex.Value
		}
		return fmt.Sprintf("LogoutRequest|%s|%s|%s|%s|%s|%s", lr.ID, lr.Issuer.Value, lr.Destination, lr.IssueInstant, nameID, index), true
	}
	if resp, err := parseLogoutResponse(x); err == nil {
		return fmt.Sprintf("LogoutResponse|%s|%s|%s|%s|%s", resp.ID, resp.InResponseTo, resp.Issuer.Value, resp.Destination, resp.Status.StatusCode.Value), true
	}
	return "", false
}

// postSeeds are HTTP-POST messages of the test SP: XML-signed ones (with what each reads as),
// unsigned ones, and signature-wrapping attempts built from a signed one.
func postSeeds(tb testing.TB, w *testWorld) (docs [][]byte, signed map[string]bool) {
	signed = map[string]bool{}
	add := func(el *etree.Element) []byte {
		x := signXML(tb, el, w.key)
		s, ok := summary(x)
		if !ok {
			tb.Fatalf("seed does not read:\n%s", x)
		}
		signed[s] = true
		docs = append(docs, x)
		return x
	}
	add(authnRequest("id-post-authn", nil).Element())
	logout := add(logoutRequest("id-post-logout", "u-1", "sid-1").Element())
	resp := &csaml.LogoutResponse{ID: "id-post-resp", InResponseTo: "id-sent", Version: "2.0", IssueInstant: testNow,
		Issuer: &csaml.Issuer{Value: testEntity}, Status: csaml.Status{StatusCode: csaml.StatusCode{Value: csaml.StatusSuccess}}}
	add(resp.Element())
	docs = append(docs, toXML(authnRequest("id-unsigned", nil).Element()))

	// Wrapping: a forged LogoutRequest around the signed one (in Extensions), keeping its
	// Signature; and the signed one with a second NameID.
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(logout); err != nil {
		tb.Fatal(err)
	}
	forged := logoutRequest("id-forged", "someone-else", "").Element()
	sig := doc.Root().SelectElement("Signature")
	forged.InsertChildAt(1, sig.Copy())
	ext := forged.CreateElement("samlp:Extensions")
	ext.AddChild(doc.Root().Copy())
	docs = append(docs, toXML(forged))
	docs = append(docs, bytes.Replace(logout, []byte("</saml:NameID>"), []byte("</saml:NameID><saml:NameID>someone-else</saml:NameID>"), 1))
	docs = append(docs, bytes.Replace(logout, []byte(">u-1<"), []byte(">u-<!---->1<"), 1))
	return docs, signed
}

// FuzzPostBinding: parsePost on a form carrying a base64 message (plus whatever else the form
// says), then the XML signature check and every reader of the message. A message whose XML
// signature verifies must read — to encoding/xml, which the handlers use — exactly as a message
// the SP signed: anything else is signature wrapping.
func FuzzPostBinding(f *testing.F) {
	w := newTestWorld(f)
	docs, signed := postSeeds(f, w)
	verified := 0
	for _, d := range docs {
		if verifyXML(d, w.sp, true) == nil {
			verified++
		}
	}
	// The signed seeds verify; the comment inside the NameID does not change what was signed.
	if verified != len(signed)+1 {
		f.Fatalf("%d of the seeds verify, want the %d signed ones and the commented one", verified, len(signed))
	}
	for i, d := range docs {
		f.Add(d, "relay", "")
		if i == 0 {
			f.Add(d, "", "SAMLRequest=AAAA")
			f.Add(d, "r", "SAML%52equest=AAAA")
			f.Add(d, "", "SAMLResponse=AAAA&RelayState=x")
		}
	}
	f.Fuzz(func(t *testing.T, doc []byte, relay, extra string) {
		body := "SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString(doc))
		if relay != "" {
			body += "&RelayState=" + url.QueryEscape(relay)
		}
		m, err := parsePost(body + "&" + extra)
		if err != nil {
			mustBeBadRequest(t, err)
			return
		}
		// extra may add a RelayState when there was none, nothing else that is read.
		if m.Field != "SAMLRequest" || !bytes.Equal(m.XML, doc) || relay != "" && m.RelayState != relay || m.Query != nil {
			t.Fatalf("the form was read as %s %q with RelayState %q, not the message sent", m.Field, m.XML, m.RelayState)
		}
		if verifyXML(m.XML, w.sp, true) == nil {
			if s, ok := summary(m.XML); ok && !signed[s] {
				t.Fatalf("the XML signature verifies, and the message reads as %s, which the SP never signed:\n%s", s, m.XML)
			}
		}
		w.readAll(t, m)
	})
}
