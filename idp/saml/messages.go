package saml

import (
	"bytes"
	"encoding/xml"
	"strconv"

	csaml "github.com/crewjam/saml"
	xrv "github.com/mattermost/xml-roundtrip-validator"
)

// Reading the protocol messages an SP sends. Each is checked for what the handlers and crewjam
// rely on being there (an Issuer above all: crewjam's Validate dereferences it unchecked), so a
// malformed message is a bad request, never a panic.

// maxID bounds message IDs, which become state keys.
const maxID = 256

// unmarshalMessage reads buf into v after checking it is well-formed XML that encoding/xml reads
// as it is written (no round-trip surprises).
func unmarshalMessage(buf []byte, v any, what string) error {
	if err := xrv.Validate(bytes.NewReader(buf)); err != nil {
		return badRequest("the "+what+" is not well-formed XML", err)
	}
	if err := xml.Unmarshal(buf, v); err != nil {
		return badRequest("not a "+what, err)
	}
	return nil
}

// checkHeader checks what every request from an SP must have: an ID, SAML 2.0, and an Issuer in
// the SAML assertion namespace (one in another namespace reads as none) naming the SP.
func checkHeader(what, id, version string, issuer *csaml.Issuer) error {
	switch {
	case issuer == nil || issuer.Value == "":
		return badRequest("the "+what+" has no Issuer (saml:Issuer, urn:oasis:names:tc:SAML:2.0:assertion)", nil)
	case id == "" || len(id) > maxID:
		return badRequest("the "+what+" has no usable ID", nil)
	case version != "2.0":
		return badRequest("the "+what+" is not SAML 2.0", nil)
	}
	return nil
}

// parseAuthnRequest reads an AuthnRequest.
func parseAuthnRequest(buf []byte) (*csaml.AuthnRequest, error) {
	var ar csaml.AuthnRequest
	if err := unmarshalMessage(buf, &ar, "AuthnRequest"); err != nil {
		return nil, err
	}
	if err := checkHeader("AuthnRequest", ar.ID, ar.Version, ar.Issuer); err != nil {
		return nil, err
	}
	return &ar, nil
}

// parseLogoutRequest reads a LogoutRequest.
func parseLogoutRequest(buf []byte) (*csaml.LogoutRequest, error) {
	var lr csaml.LogoutRequest
	if err := unmarshalMessage(buf, &lr, "LogoutRequest"); err != nil {
		return nil, err
	}
	if err := checkHeader("LogoutRequest", lr.ID, lr.Version, lr.Issuer); err != nil {
		return nil, err
	}
	return &lr, nil
}

// parseLogoutResponse reads a LogoutResponse.
func parseLogoutResponse(buf []byte) (*csaml.LogoutResponse, error) {
	var resp csaml.LogoutResponse
	if err := unmarshalMessage(buf, &resp, "LogoutResponse"); err != nil {
		return nil, err
	}
	if resp.Issuer == nil || resp.Issuer.Value == "" {
		return nil, badRequest("the LogoutResponse has no Issuer", nil)
	}
	return &resp, nil
}

// postACS is where the answer to ar goes: the endpoint of the SP's metadata the request names —
// by index or by URL — or the SP's default, and it must take HTTP-POST, the only binding qiao
// answers on. (crewjam takes the first endpoint at a URL or index whatever its binding, and a
// default on HTTP-Redirect too.)
func postACS(d *csaml.SPSSODescriptor, ar *csaml.AuthnRequest) (*csaml.IndexedEndpoint, error) {
	if d == nil {
		return nil, badRequest("the service provider's metadata has no SPSSODescriptor", nil)
	}
	if ar.ProtocolBinding != "" && ar.ProtocolBinding != csaml.HTTPPostBinding {
		return nil, badRequest("the app asks for its response on a binding other than HTTP-POST, the only one qiao answers on", nil)
	}
	if ar.AssertionConsumerServiceIndex != "" {
		for i := range d.AssertionConsumerServices {
			acs := &d.AssertionConsumerServices[i]
			if strconv.Itoa(acs.Index) != ar.AssertionConsumerServiceIndex {
				continue
			}
			if acs.Binding != csaml.HTTPPostBinding {
				return nil, badRequest("AssertionConsumerServiceIndex names an endpoint that does not take HTTP-POST, the only binding qiao answers on", nil)
			}
			return acs, nil
		}
		return nil, badRequest("AssertionConsumerServiceIndex is not in the app's metadata", nil)
	}
	if ar.AssertionConsumerServiceURL != "" {
		for i := range d.AssertionConsumerServices {
			if acs := &d.AssertionConsumerServices[i]; acs.Location == ar.AssertionConsumerServiceURL && acs.Binding == csaml.HTTPPostBinding {
				return acs, nil
			}
		}
		return nil, badRequest("AssertionConsumerServiceURL is not an HTTP-POST endpoint in the app's metadata", nil)
	}
	if acs := defaultACS(d); acs != nil {
		return acs, nil
	}
	return nil, badRequest("the app's metadata has no HTTP-POST assertion consumer service", nil)
}
