package saml

import (
	"strings"
	"testing"

	"github.com/qiao-gateway/qiao/directory"
)

func TestNameIDPolicies(t *testing.T) {
	u := &directory.User{ID: "u-1", Username: "zhangsan", Email: "z@example.com"}
	for format, want := range map[string][2]string{
		"":             {NameIDPersistent, "u-1"},
		"persistent":   {NameIDPersistent, "u-1"},
		"emailAddress": {NameIDEmail, "z@example.com"},
		"unspecified":  {NameIDUnspecified, "zhangsan"},
	} {
		f, v, err := nameID(&directory.ServiceProvider{NameIDFormat: format}, u)
		if err != nil || f != want[0] || v != want[1] {
			t.Errorf("%q: %s %s %v", format, f, v, err)
		}
	}
	f, v1, _ := nameID(&directory.ServiceProvider{NameIDFormat: "transient"}, u)
	_, v2, _ := nameID(&directory.ServiceProvider{NameIDFormat: "transient"}, u)
	if f != NameIDTransient || v1 == v2 || strings.Contains(v1, "u-1") {
		t.Errorf("transient NameIDs must be fresh and opaque: %s %s", v1, v2)
	}
	if _, _, err := nameID(&directory.ServiceProvider{NameIDFormat: "emailAddress"}, &directory.User{Username: "noemail"}); err == nil {
		t.Error("an email NameID for a person without email must fail, not be empty")
	}
}

func TestParseMetadataRefusals(t *testing.T) {
	for name, md := range map[string]string{
		"empty":   "",
		"not XML": "<EntityDescriptor",
		"no SP":   `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"></EntityDescriptor>`,
		"no POST ACS": `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"><SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">` +
			`<AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact" Location="https://x/acs" index="0"/></SPSSODescriptor></EntityDescriptor>`,
	} {
		if _, err := ParseMetadata([]byte(md)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
