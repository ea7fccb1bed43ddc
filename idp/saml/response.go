package saml

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/beevik/etree"
	csaml "github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/keys"
	"github.com/qiao-gateway/qiao/session"
)

func hashKey(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:])
}

// signingContext signs with the enterprise's SAML key, RSA-SHA256 and exclusive c14n (crewjam's
// default would be RSA-SHA1).
func (p *Provider) signingContext() (*dsig.SigningContext, error) {
	k, err := p.Keys.Signing(keys.SAML)
	if err != nil {
		return nil, err
	}
	ctx, err := dsig.NewSigningContext(k.Signer, [][]byte{k.Cert.Raw})
	if err != nil {
		return nil, fmt.Errorf("saml signing context: %w", err)
	}
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := ctx.SetSignatureMethod(dsig.RSASHA256SignatureMethod); err != nil {
		return nil, err
	}
	return ctx, nil
}

// Default attributes, released when an SP configures none: name → (directory field, friendly name).
var defaultAttributes = []struct{ name, field, friendly string }{
	{"urn:oid:0.9.2342.19200300.100.1.1", "username", "uid"},
	{"urn:oid:2.16.840.1.113730.3.1.241", "name", "displayName"},
	{"urn:oid:0.9.2342.19200300.100.1.3", "email", "mail"},
	{"urn:oid:0.9.2342.19200300.100.1.41", "mobile", "mobile"},
	{"departments", "departments", "departments"},
	{"groups", "groups", "groups"},
	{"enterprise_id", "enterprise", "enterprise"},
}

// attributeValues reads a directory field for an attribute: departments and groups (several
// values), or any field directory.User.Field knows.
func (p *Provider) attributeValues(ctx context.Context, u *directory.User, field string) ([]string, error) {
	switch field {
	case "groups":
		return directory.GroupNames(ctx, p.Store, u.EnterpriseID, u.ID)
	case "departments":
		return directory.DepartmentPaths(ctx, p.Store, u.EnterpriseID, u.ID)
	}
	if v := u.Field(field); v != "" {
		return []string{v}, nil
	}
	return nil, nil
}

// nameID is the subject as the SP's NameID policy says.
func nameID(sp *directory.ServiceProvider, u *directory.User) (format, value string, err error) {
	switch sp.NameIDFormat {
	case "", "persistent":
		return NameIDPersistent, u.ID, nil
	case "emailAddress", "email":
		if u.Email == "" {
			return "", "", fmt.Errorf("this app identifies people by email address, and %s has none in the directory", u.Username)
		}
		return NameIDEmail, u.Email, nil
	case "unspecified":
		return NameIDUnspecified, u.Username, nil
	case "transient":
		return NameIDTransient, "_" + strings.TrimPrefix(newID(), "id-"), nil
	}
	return "", "", fmt.Errorf("unknown NameID format %q configured for %s", sp.NameIDFormat, sp.EntityID)
}

// authnContext maps how the person logged in to a SAML authentication context class.
func authnContext(amr string) string {
	if amr == "pwd" {
		return "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
	}
	return "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"
}

// respond builds the Response for req: the assertion (signed if the SP wants it, encrypted when
// its metadata has an encryption certificate) inside a Response (signed if the SP wants it).
func (p *Provider) respond(ctx context.Context, req *csaml.IdpAuthnRequest, sp *serviceProvider, u *directory.User, sess *session.Session) (csaml.IdpAuthnRequestForm, error) {
	var form csaml.IdpAuthnRequestForm
	if req.ACSEndpoint == nil || req.ACSEndpoint.Binding != csaml.HTTPPostBinding {
		return form, errors.New("the service provider has no HTTP-POST assertion consumer service")
	}
	format, value, err := nameID(sp.d, u)
	if err != nil {
		// qiao's own words about the person's directory entry: the page may show them.
		return form, &requestError{Status: http.StatusInternalServerError, Public: err.Error()}
	}
	var attrs []csaml.Attribute
	add := func(name, friendly, field string) error {
		vals, err := p.attributeValues(ctx, u, field)
		if err != nil {
			return err
		}
		if len(vals) == 0 {
			return nil
		}
		a := csaml.Attribute{Name: name, FriendlyName: friendly, NameFormat: "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"}
		if !strings.HasPrefix(name, "urn:") {
			a.NameFormat = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
		}
		for _, v := range vals {
			a.Values = append(a.Values, csaml.AttributeValue{Type: "xs:string", Value: v})
		}
		attrs = append(attrs, a)
		return nil
	}
	if len(sp.d.Attributes) == 0 {
		for _, a := range defaultAttributes {
			if err := add(a.name, a.friendly, a.field); err != nil {
				return form, err
			}
		}
	} else {
		names := make([]string, 0, len(sp.d.Attributes))
		for n := range sp.d.Attributes {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			field := sp.d.Attributes[n]
			if err := add(n, strings.TrimPrefix(field, "ext."), field); err != nil {
				return form, err
			}
		}
	}
	now := req.Now
	amr, sid, authTime := sess.AMR, sess.SID, sess.LoginTime()
	issuer := req.IDP.MetadataURL.String()
	req.Assertion = &csaml.Assertion{
		ID: newID(), IssueInstant: now, Version: "2.0",
		Issuer: *entityIssuer(issuer),
		Subject: &csaml.Subject{
			NameID: &csaml.NameID{Format: format, NameQualifier: issuer, SPNameQualifier: sp.d.EntityID, Value: value},
			SubjectConfirmations: []csaml.SubjectConfirmation{{Method: "urn:oasis:names:tc:SAML:2.0:cm:bearer",
				SubjectConfirmationData: &csaml.SubjectConfirmationData{InResponseTo: req.Request.ID, NotOnOrAfter: now.Add(assertionTTL),
					Recipient: req.ACSEndpoint.Location}}},
		},
		Conditions: &csaml.Conditions{NotBefore: now.Add(-maxSkew), NotOnOrAfter: now.Add(assertionTTL),
			AudienceRestrictions: []csaml.AudienceRestriction{{Audience: csaml.Audience{Value: sp.d.EntityID}}}},
		AuthnStatements: []csaml.AuthnStatement{{AuthnInstant: authTime, SessionIndex: sid,
			AuthnContext: csaml.AuthnContext{AuthnContextClassRef: &csaml.AuthnContextClassRef{Value: authnContext(amr)}}}},
		AttributeStatements: []csaml.AttributeStatement{{Attributes: attrs}},
	}
	if len(attrs) == 0 {
		req.Assertion.AttributeStatements = nil
	}
	sc, err := p.signingContext()
	if err != nil {
		return form, err
	}
	assertionEl := req.Assertion.Element()
	if sp.d.SignAssertion {
		// The schema wants the signature right after the Issuer; crewjam's Element() puts it there.
		if req.Assertion.Signature, err = signatureOf(sc, assertionEl); err != nil {
			return form, fmt.Errorf("sign assertion: %w", err)
		}
		assertionEl = req.Assertion.Element()
	}
	if sp.encryption != nil {
		doc := etree.NewDocument()
		doc.SetRoot(assertionEl)
		plain, err := doc.WriteToBytes()
		if err != nil {
			return form, err
		}
		enc := xmlenc.OAEP()
		enc.BlockCipher = xmlenc.AES128CBC
		enc.DigestMethod = &xmlenc.SHA1
		data, err := enc.Encrypt(sp.encryption, plain, nil)
		if err != nil {
			return form, fmt.Errorf("encrypt assertion: %w", err)
		}
		data.CreateAttr("Type", "http://www.w3.org/2001/04/xmlenc#Element")
		encEl := etree.NewElement("saml:EncryptedAssertion")
		encEl.CreateAttr("xmlns:saml", "urn:oasis:names:tc:SAML:2.0:assertion")
		encEl.AddChild(data)
		assertionEl = encEl
	}
	resp := &csaml.Response{Destination: req.ACSEndpoint.Location, ID: newID(), InResponseTo: req.Request.ID, IssueInstant: now,
		Version: "2.0", Issuer: entityIssuer(issuer),
		Status: csaml.Status{StatusCode: csaml.StatusCode{Value: csaml.StatusSuccess}}}
	respEl := resp.Element()
	respEl.AddChild(assertionEl)
	if sp.d.SignResponse {
		if resp.Signature, err = signatureOf(sc, respEl); err != nil {
			return form, fmt.Errorf("sign response: %w", err)
		}
		respEl = resp.Element()
		respEl.AddChild(assertionEl)
	}
	req.AssertionEl, req.ResponseEl = assertionEl, respEl
	return req.PostBinding()
}

// statusResponse answers a request with a signed Response that carries a status and no assertion
// (NoPassive when the SP asked for no interaction and a login is needed).
func (p *Provider) statusResponse(req *csaml.IdpAuthnRequest, top, second string) (csaml.IdpAuthnRequestForm, error) {
	var form csaml.IdpAuthnRequestForm
	if req.ACSEndpoint == nil || req.ACSEndpoint.Binding != csaml.HTTPPostBinding {
		return form, errors.New("the service provider has no HTTP-POST assertion consumer service")
	}
	code := csaml.StatusCode{Value: top}
	if second != "" {
		code.StatusCode = &csaml.StatusCode{Value: second}
	}
	resp := &csaml.Response{Destination: req.ACSEndpoint.Location, ID: newID(), InResponseTo: req.Request.ID, IssueInstant: req.Now,
		Version: "2.0", Issuer: entityIssuer(req.IDP.MetadataURL.String()),
		Status: csaml.Status{StatusCode: code}}
	var err error
	if resp.Signature, err = p.signEnveloped(resp.Element()); err != nil {
		return form, fmt.Errorf("sign response: %w", err)
	}
	req.ResponseEl = resp.Element()
	return req.PostBinding()
}
