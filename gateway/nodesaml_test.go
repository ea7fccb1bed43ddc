package gateway

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/keys"
)

// TestNodeSAMLServiceProvider runs @node-saml/node-saml (an SP that is not ours) against the IdP:
// an SP-initiated Redirect login through the WeCom simulator with InResponseTo checking, an
// IdP-initiated one, and single logout.
func TestNodeSAMLServiceProvider(t *testing.T) {
	w := newWorld(t, 30, t.TempDir(), true)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "node-sp"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	k, _ := w.gw.Keys.Signing(keys.SAML)
	ent := w.base + "/e/demo/saml"
	b := newBrowser(t)
	b.stop = "https://node-sp.test/"
	reply := func(v any) (string, bool) {
		j, _ := json.Marshal(v)
		return string(j), true
	}
	res := runE2E(t, "saml-sp.mjs", []string{"IDP_SSO=" + ent + "/sso", "IDP_SLO=" + ent + "/slo",
		"IDP_LAUNCH=" + ent + "/launch?sp=" + url.QueryEscape("https://node-sp.test/metadata"),
		"IDP_CERT=" + string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.Cert.Raw})),
		"SP_KEY=" + string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})),
		"SP_CERT=" + string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))},
		func(msg map[string]any) (string, bool) {
			switch {
			case msg["metadata"] != nil:
				// The SP describes itself; the admin registers that metadata.
				md := msg["metadata"].(string)
				if err := w.gw.Store.PutServiceProvider(w.ctx, &directory.ServiceProvider{EnterpriseID: "demo", EntityID: "https://node-sp.test/metadata",
					Name: "node-saml", MetadataXML: md, NameIDFormat: "persistent", SignResponse: true, SignAssertion: true}); err != nil {
					t.Fatal(err)
				}
				return reply(map[string]bool{"ok": true})
			case msg["browse"] != nil:
				status, page, at := b.get(msg["browse"].(string), "zhangsan")
				if status == 200 && strings.Contains(at, "/login/e/demo?") {
					// The broker's source choice: the person picks WeCom and scans.
					status, page, at = b.get(w.base+"/login/e/demo/s/wecom?"+strings.SplitN(at, "?", 2)[1], "zhangsan")
				}
				out := map[string]any{"url": at}
				if status == 200 && strings.Contains(page, `name="SAMLResponse"`) {
					action, f := postForm(t, page)
					out["form"] = map[string]string{"action": action, "SAMLResponse": f["SAMLResponse"], "RelayState": f["RelayState"]}
				} else if status != 0 {
					t.Logf("browser ended at %s with %d", at, status)
				}
				return reply(out)
			}
			return "", false
		})
	spi := res["sp_initiated"].(map[string]any)
	if spi["nameID"] != w.user("zhangsan").ID {
		t.Fatalf("node-saml saw NameID %v", spi["nameID"])
	}
	t.Logf("node-saml: SP-initiated %v; IdP-initiated %v; logout %v", spi, res["idp_initiated"], res["logout"])
}
