package demo

import (
	"bytes"
	"compress/flate"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/crewjam/saml"
)

// logout ends the app's session and sends the browser to the IdP with a signed LogoutRequest for
// the NameID and SessionIndex it was given: the IdP ends the SSO session, logs the other apps out
// and answers at /demo-sp/slo.
func (a *SP) logout(w http.ResponseWriter, r *http.Request) {
	s := a.sessions.end(w, r)
	if s == nil || a.idp(r.Context()) != nil {
		http.Redirect(w, r, a.BaseURL+"/", http.StatusSeeOther)
		return
	}
	unsigned := *a.sp
	unsigned.SignatureMethod = ""
	req, err := unsigned.MakeLogoutRequest(a.sp.GetSLOBindingLocation(saml.HTTPRedirectBinding), s.NameID)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	req.NameID.Format = s.NameIDFormat
	req.NameID.NameQualifier, req.NameID.SPNameQualifier = "", ""
	if s.SessionIndex != "" {
		req.SessionIndex = &saml.SessionIndex{Value: s.SessionIndex}
	}
	if err := a.sp.SignLogoutRequest(req); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, req.Redirect("").String(), http.StatusFound)
}

// slo is the SingleLogoutService (HTTP-Redirect): the IdP's LogoutResponse to this app's
// LogoutRequest, or the IdP's LogoutRequest when the person signs out elsewhere, whose query
// signature is checked with the IdP's certificates before the app's sessions for that NameID end.
func (a *SP) slo(w http.ResponseWriter, r *http.Request) {
	if err := a.idp(r.Context()); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	q := r.URL.Query()
	if q.Get("SAMLResponse") != "" {
		// qiao signs the query (crewjam's SP checks only a signature inside the XML).
		err := a.checkQuerySignature(r.URL.RawQuery, "SAMLResponse")
		var lr saml.LogoutResponse
		if err == nil {
			var raw []byte
			if raw, err = inflate(q.Get("SAMLResponse")); err == nil {
				err = xml.Unmarshal(raw, &lr)
			}
		}
		if err == nil && (lr.Issuer == nil || lr.Issuer.Value != a.sp.IDPMetadata.EntityID || lr.Destination != a.sp.SloURL.String() ||
			lr.Status.StatusCode.Value != saml.StatusSuccess) {
			err = errors.New("not a successful LogoutResponse of its IdP to it")
		}
		if err != nil {
			http.Error(w, "the demo SP refused the LogoutResponse: "+err.Error(), http.StatusForbidden)
			return
		}
		http.Redirect(w, r, a.BaseURL+"/?signed_out=1", http.StatusSeeOther)
		return
	}
	if err := a.checkQuerySignature(r.URL.RawQuery, "SAMLRequest"); err != nil {
		http.Error(w, "the demo SP refused the LogoutRequest: "+err.Error(), http.StatusForbidden)
		return
	}
	raw, err := inflate(q.Get("SAMLRequest"))
	var lr saml.LogoutRequest
	if err == nil {
		err = xml.Unmarshal(raw, &lr)
	}
	if err != nil || lr.NameID == nil || lr.Issuer == nil || lr.Issuer.Value != a.sp.IDPMetadata.EntityID || lr.Destination != a.sp.SloURL.String() {
		http.Error(w, "the demo SP refused the LogoutRequest: not a LogoutRequest of its IdP to it", http.StatusBadRequest)
		return
	}
	a.sessions.endWhere(func(s *spSession) bool { return s.NameID == lr.NameID.Value })
	http.SetCookie(w, &http.Cookie{Name: spCookie, Value: "", Path: "/demo-sp/", MaxAge: -1})
	resp, err := a.sp.MakeRedirectLogoutResponse(lr.ID, q.Get("RelayState"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, resp.String(), http.StatusFound)
}

// checkQuerySignature checks an HTTP-Redirect signature (SAML bindings §3.4.4.1): RSA-SHA256 over
// field=…&RelayState=…&SigAlg=… as sent, by one of the IdP's signing certificates.
func (a *SP) checkQuerySignature(rawQuery, field string) error {
	raw := map[string]string{}
	for _, kv := range strings.Split(rawQuery, "&") {
		k, v, _ := strings.Cut(kv, "=")
		raw[k] = v
	}
	sigAlg, _ := url.QueryUnescape(raw["SigAlg"])
	if sigAlg != "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" {
		return errors.New("not signed with RSA-SHA256")
	}
	sig, err := url.QueryUnescape(raw["Signature"])
	if err != nil {
		return err
	}
	sigBytes, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return err
	}
	signed := field + "=" + raw[field]
	if v, ok := raw["RelayState"]; ok {
		signed += "&RelayState=" + v
	}
	signed += "&SigAlg=" + raw["SigAlg"]
	sum := sha256.Sum256([]byte(signed))
	for _, d := range a.sp.IDPMetadata.IDPSSODescriptors {
		for _, kd := range d.KeyDescriptors {
			for _, c := range kd.KeyInfo.X509Data.X509Certificates {
				der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(c.Data), ""))
				if err != nil {
					continue
				}
				cert, err := x509.ParseCertificate(der)
				if err != nil {
					continue
				}
				if pub, ok := cert.PublicKey.(*rsa.PublicKey); ok && rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sigBytes) == nil {
					return nil
				}
			}
		}
	}
	return errors.New("the signature does not verify with the IdP's certificates")
}

func inflate(v string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(b)), 1<<20))
}
