package saml

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	csaml "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/keys"
)

// A test IdP with one registered SP that signs its messages, served from the SP cache (no
// directory behind it) at a fixed time: enough for the binding, parsing and validation code.

const (
	testEnt    = "acme"
	testIdP    = "https://idp.test"
	testEntity = "https://sp.test/metadata"
	testACS    = "https://sp.test/acs"
	// testArtifactACS takes HTTP-Artifact only.
	testArtifactACS = "https://sp.test/artifact"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type testWorld struct {
	p     *Provider
	sp    *serviceProvider
	key   *rsa.PrivateKey
	other *rsa.PrivateKey // a key the SP's metadata does not have
}

var (
	worldOnce sync.Once
	world     *testWorld
	worldErr  error
)

// noStore is a directory with no SP but the cached one: any other lookup finds nothing.
type noStore struct{ directory.Store }

func (noStore) GetServiceProvider(context.Context, string, string) (*directory.ServiceProvider, error) {
	return nil, directory.ErrNotFound
}

// testUser is the one person of the directory.
var testUser = &directory.User{ID: "u-1", EnterpriseID: testEnt, Username: "zhangsan", Email: "z@example.com", Status: directory.UserActive}

func (noStore) GetUser(_ context.Context, ent, id string) (*directory.User, error) {
	if ent != testEnt || id != testUser.ID {
		return nil, directory.ErrNotFound
	}
	u := *testUser
	return &u, nil
}

// keysDir holds the test IdP's keys; TestMain removes it.
var keysDir string

func tempDir() (string, error) {
	var err error
	keysDir, err = os.MkdirTemp("", "qiao-saml-test-")
	return keysDir, err
}

func TestMain(m *testing.M) {
	code := m.Run()
	if keysDir != "" {
		_ = os.RemoveAll(keysDir)
	}
	os.Exit(code)
}

// newTestWorld builds the world once per process (RSA keys are slow to make; fuzz workers share it).
func newTestWorld(tb testing.TB) *testWorld {
	tb.Helper()
	worldOnce.Do(func() {
		var der []byte
		w := &testWorld{}
		// The SP's key and certificate are fixed (testdata), so that signed seeds of the fuzz
		// corpus verify in every fuzzing process.
		if w.key, der, worldErr = loadTestSP(); worldErr != nil {
			return
		}
		if w.other, worldErr = rsa.GenerateKey(rand.Reader, 2048); worldErr != nil {
			return
		}
		md := `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="` + testEntity + `">` +
			`<SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" AuthnRequestsSigned="true">` +
			`<KeyDescriptor use="signing"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>` +
			base64.StdEncoding.EncodeToString(der) + `</X509Certificate></X509Data></KeyInfo></KeyDescriptor>` +
			`<SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://sp.test/slo"/>` +
			// Artifact first at the POST endpoint's URL (crewjam would pick it), and a URL with
			// Artifact only.
			`<AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact" Location="` + testACS + `" index="2"/>` +
			`<AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="` + testACS + `" index="1"/>` +
			`<AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact" Location="` + testArtifactACS + `" index="3"/>` +
			`</SPSSODescriptor></EntityDescriptor>`
		if w.sp, worldErr = parseSP(&directory.ServiceProvider{EnterpriseID: testEnt, EntityID: testEntity}, []byte(md)); worldErr != nil {
			return
		}
		dir, err := tempDir()
		if worldErr = err; err != nil {
			return
		}
		k, err := keys.Open(dir, keys.WithRSABits(2048))
		if worldErr = err; err != nil {
			return
		}
		w.p = &Provider{Store: noStore{}, Keys: k, ExternalURL: testIdP, Now: func() time.Time { return testNow },
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		w.p.keepSP(testEnt+"\x00"+testEntity, w.sp, testNow, testNow)
		world = w
	})
	if worldErr != nil {
		tb.Fatal(worldErr)
	}
	return world
}

// loadTestSP reads the test SP's key and certificate (DER) from testdata.
func loadTestSP() (*rsa.PrivateKey, []byte, error) {
	kp, err := os.ReadFile("testdata/sp-key.pem")
	if err != nil {
		return nil, nil, err
	}
	cp, err := os.ReadFile("testdata/sp-cert.pem")
	if err != nil {
		return nil, nil, err
	}
	kb, _ := pem.Decode(kp)
	cb, _ := pem.Decode(cp)
	if kb == nil || cb == nil {
		return nil, nil, errors.New("testdata: not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, nil, errors.New("testdata: not an RSA key")
	}
	return key, cb.Bytes, nil
}

// deflateB64 is msg as the HTTP-Redirect binding carries it before URL encoding.
func deflateB64(msg []byte) string {
	var buf bytes.Buffer
	zw, _ := flate.NewWriter(&buf, flate.BestCompression)
	_, _ = zw.Write(msg)
	_ = zw.Close()
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

// signedQuery is an HTTP-Redirect query carrying msg as field, its signature (with key, if not
// nil) over field, RelayState and SigAlg as SAML bindings §3.4.4.1 says, and the signed octets.
func signedQuery(field string, msg []byte, relay string, key *rsa.PrivateKey) (query, signed string) {
	q := field + "=" + url.QueryEscape(deflateB64(msg))
	if relay != "" {
		q += "&RelayState=" + url.QueryEscape(relay)
	}
	if key == nil {
		return q, ""
	}
	q += "&SigAlg=" + url.QueryEscape(dsig.RSASHA256SignatureMethod)
	return q + "&Signature=" + url.QueryEscape(sign(key, q)), q
}

// sign is key's RSA-SHA256 signature of octets, in base64.
func sign(key *rsa.PrivateKey, octets string) string {
	d := sha256.Sum256([]byte(octets))
	sig, _ := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
	return base64.StdEncoding.EncodeToString(sig)
}

func toXML(el *etree.Element) []byte {
	doc := etree.NewDocument()
	doc.SetRoot(el)
	b, _ := doc.WriteToBytes()
	return b
}

// authnRequest is an AuthnRequest from the test SP, valid at testNow, altered by alter.
func authnRequest(id string, alter func(*csaml.AuthnRequest)) *csaml.AuthnRequest {
	ar := &csaml.AuthnRequest{ID: id, Version: "2.0", IssueInstant: testNow, Destination: testIdP + "/e/" + testEnt + "/saml/sso",
		AssertionConsumerServiceURL: testACS, ProtocolBinding: csaml.HTTPPostBinding,
		Issuer: &csaml.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: testEntity}}
	if alter != nil {
		alter(ar)
	}
	return ar
}

// logoutRequest is a LogoutRequest from the test SP, valid at testNow.
func logoutRequest(id, nameID, sessionIndex string) *csaml.LogoutRequest {
	lr := &csaml.LogoutRequest{ID: id, Version: "2.0", IssueInstant: testNow, Destination: testIdP + "/e/" + testEnt + "/saml/slo",
		Issuer: &csaml.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: testEntity},
		NameID: &csaml.NameID{Value: nameID}}
	if sessionIndex != "" {
		lr.SessionIndex = &csaml.SessionIndex{Value: sessionIndex}
	}
	return lr
}

// signXML signs el (enveloped, RSA-SHA256, exclusive c14n) with key and returns the document.
func signXML(tb testing.TB, el *etree.Element, key *rsa.PrivateKey) []byte {
	tb.Helper()
	ctx := dsig.NewDefaultSigningContext(dsig.TLSCertKeyStore{PrivateKey: key, Certificate: [][]byte{world.sp.signing[0].Raw}})
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := ctx.SetSignatureMethod(dsig.RSASHA256SignatureMethod); err != nil {
		tb.Fatal(err)
	}
	signed, err := ctx.SignEnveloped(el)
	if err != nil {
		tb.Fatal(err)
	}
	// The schema wants the Signature right after the Issuer (the enveloped transform drops it
	// wherever it is).
	out := el.Copy()
	out.InsertChildAt(1, signed.ChildElements()[len(signed.ChildElements())-1].Copy())
	return toXML(out)
}
