package config

import (
	"errors"
	"strings"
	"testing"
)

// enterprises[].admins: a username and a role each; a bad one is reported at its key.
func TestAdmins(t *testing.T) {
	ent := "enterprises:\n- id: demo\n  admins:\n"
	c, err := Load(write(t, ent+"  - {user: zhangsan, role: owner}\n  - {user: lisi, role: auditor}\n"), noEnv, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Enterprises[0].Admins; len(a) != 2 || a[0] != (Admin{"zhangsan", "owner"}) || a[1] != (Admin{"lisi", "auditor"}) {
		t.Fatalf("admins = %+v", a)
	}
	for _, tc := range []struct{ body, key, reason string }{
		{"  - {user: zhangsan, role: root}\n", "enterprises[0].admins[0].role", `"root" must be owner, admin or auditor`},
		{"  - {role: admin}\n", "enterprises[0].admins[0].user", "required"},
		{"  - {user: a, role: admin}\n  - {user: a, role: owner}\n", "enterprises[0].admins[1].user", "granted twice"},
	} {
		_, err := Load(write(t, ent+tc.body), noEnv, Overrides{})
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != tc.key || !strings.Contains(ce.Reason, tc.reason) {
			t.Errorf("%q: got %v; want key %q reason containing %q", tc.body, err, tc.key, tc.reason)
		}
	}
	if _, err := Load(write(t, ent+"  - {user: a, role: admin, password: x}\n"), noEnv, Overrides{}); err == nil ||
		!strings.Contains(err.Error(), `unknown key "password"`) || !strings.Contains(err.Error(), "in an admin") {
		t.Errorf("an unknown key in an admin: %v", err)
	}
}
