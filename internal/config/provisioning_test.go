package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const provBase = "enterprises:\n- id: demo\n  sources:\n  - id: local\n    kind: local\n  provisioning:\n    kind: wecom\n    corp_id: ww1\n"

// A provisioning target's settings are checked at their keys; its secrets come from ${ENV} or a
// _file like a source's.
func TestProvisioningConfig(t *testing.T) {
	for _, tc := range []struct{ more, key, reason string }{
		{"", "enterprises[0].provisioning.secrets.contact_secret", "contact-sync"},
		{"    secrets: {contact_secret: s}\n    scope: some\n", "enterprises[0].provisioning.scope", "all, sources or departments"},
		{"    secrets: {contact_secret: s}\n    scope: sources\n    sources: [wecom]\n", "enterprises[0].provisioning.sources[0]", "not a source"},
		{"    secrets: {contact_secret: s}\n    root_department: abc\n", "enterprises[0].provisioning.root_department", "department ID"},
		{"    secrets: {contact_secret: s}\n    proxies: 'a:1,nohost'\n", "enterprises[0].provisioning.proxies", `entry 2 ("nohost")`},
		{"    secrets: {contact_secret: s}\n    departure: archive\n", "enterprises[0].provisioning.departure", "delete or disable"},
		{"    secrets: {contact_secret: s}\n    field_map: {title: name}\n", "enterprises[0].provisioning.field_map.title", "not a WeCom field"},
		{"    secrets: {contact_secret: s, token: x}\n", "enterprises[0].provisioning.secrets.token", "not a provisioning secret"},
		{"    secrets: {contact_secret: '${MISSING}'}\n", "enterprises[0].provisioning.secrets.contact_secret", "MISSING"},
	} {
		_, err := Load(write(t, provBase+tc.more), noEnv, Overrides{})
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != tc.key || !strings.Contains(ce.Reason, tc.reason) {
			t.Errorf("%q: %v; want key %q reason containing %q", tc.more, err, tc.key, tc.reason)
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "proxy"), []byte("p@ss\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(k string) string {
		if k == "WECOM_CONTACT" {
			return "contact-from-env"
		}
		return ""
	}
	c, err := Load(write(t, provBase+"    secrets: {contact_secret: '${WECOM_CONTACT}', proxy_password_file: "+filepath.Join(dir, "proxy")+"}\n    proxies: 'a:1,b:2'\n"), env, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Enterprises[0].Provisioning.Secrets; s["contact_secret"] != "contact-from-env" || s["proxy_password"] != "p@ss" || len(s) != 2 {
		t.Fatalf("secrets = %v", s)
	}
}
