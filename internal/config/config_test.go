package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func noEnv(string) string { return "" }

// The platform kinds register from federation/connectors, which internal can't import; these
// stand-ins (no settings checked) let the tests here load configs that name them. connectors'
// tests load the same configs with the real kinds and their checks.
func init() {
	RegisterSourceKind("wecom", nil)
	RegisterSourceKind("dingtalk", func(cfg, _ map[string]string) error {
		switch {
		case cfg["keyed"] != "":
			return &Error{"config.keyed", "stand-in refusal"}
		case cfg["plain"] != "":
			return errors.New("stand-in plain refusal")
		}
		return nil
	})
}

// A registered kind's check runs after the source's own rules, and its error is reported under
// the source's key.
func TestSourceKindCheck(t *testing.T) {
	src := "enterprises:\n- id: demo\n  sources:\n  - id: d\n    kind: dingtalk\n"
	for _, tc := range []struct{ body, key, reason string }{
		{src + "    config: {keyed: x}\n", "enterprises[0].sources[0].config.keyed", "stand-in refusal"},
		{src + "    config: {plain: x}\n", "enterprises[0].sources[0]", "stand-in plain refusal"},
		{src + "    config: {keyed: x}\n    sync: {cycle_hours: 30}\n", "enterprises[0].sources[0].sync.cycle_hours", "between 1 and 24"},
	} {
		_, err := Load(write(t, tc.body), noEnv, Overrides{})
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != tc.key || !strings.Contains(ce.Reason, tc.reason) {
			t.Errorf("%q: got %v; want key %q reason containing %q", tc.body, err, tc.key, tc.reason)
		}
	}
	if _, err := Load(write(t, src+"    config: {other: x}\n"), noEnv, Overrides{}); err != nil {
		t.Fatalf("a source its check accepts: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("registering local, config's own kind, did not panic")
		}
	}()
	RegisterSourceKind(LocalKind, nil)
}

func TestDefaults(t *testing.T) {
	c, err := Load("", noEnv, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:8080" || c.Storage != "sqlite://data/qiao.db" || c.State != "memory" ||
		c.KeysDir != filepath.Join("data", "keys") || c.ExternalURL != "http://127.0.0.1:8080" {
		t.Fatalf("defaults = %+v", c)
	}
}

func TestPrecedenceFileEnvFlags(t *testing.T) {
	p := write(t, "listen: 0.0.0.0:9000\nstate: redis://127.0.0.1:6379/0\nlog:\n  level: debug\n")
	env := map[string]string{"QIAO_STATE": "memory", "QIAO_EXTERNAL_URL": "https://sso.example.com/"}
	c, err := Load(p, func(k string) string { return env[k] }, Overrides{DataDir: "/var/lib/qiao"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "0.0.0.0:9000" || c.State != "memory" || c.ExternalURL != "https://sso.example.com" ||
		c.Storage != "sqlite:///var/lib/qiao/qiao.db" || c.LogLevel().String() != "DEBUG" {
		t.Fatalf("merged = %+v", c)
	}
	c, err = Load(p, func(k string) string { return map[string]string{"QIAO_ADDR": "127.0.0.1:1"}[k] }, Overrides{Listen: "127.0.0.1:2"})
	if err != nil || c.Listen != "127.0.0.1:2" {
		t.Fatalf("flag must beat env and file: %v %v", c.Listen, err)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ body, key, reason string }{
		{"listn: 1.2.3.4:80\n", "", `unknown key "listn" (line 1`},
		{"log:\n  levle: info\n", "", `unknown key "levle"`},
		{"listen: nope\n", "listen", "HOST:PORT"},
		{"external_url: ftp://x\n", "external_url", "http(s)"},
		{"state: memcached://x\n", "state", "memory or redis"},
		{"storage: mysql://x\n", "storage", "sqlite"},
		{"log:\n  level: loud\n", "log.level", "debug, info"},
		{"key_rotation_grace: 5m\n", "key_rotation_grace", "at least 1h"},
		{"key_rotation_grace: soon\n", "key_rotation_grace", `"soon" is not a duration like 90s`},
		{"session_idle: 8 hours\n", "session_idle", `"8 hours" is not a duration like 90s, 30m or 24h (line 1)`},
		{"log: {level: info}\nsession_idle: 8h\nsession_absolute: {x: 1}\n", "session_absolute", "not a duration"},
		{"enterprises:\n- id: demo\n  sources:\n  - id: l\n    kind: local\n    sync: {auto: true, cycle_hours: four}\n", "enterprises[0].sources[0].sync.cycle_hours", `"four" is not a whole number (line 6)`},
		{"enterprises:\n- id: demo\n  sources:\n  - id: l\n    kind: local\n    sync:\n      cycle_hours: [1]\n", "enterprises[0].sources[0].sync.cycle_hours", "want a whole number, not a list"},
		{"enterprises:\n- id: demo\n  sources:\n  - id: l\n    kind: local\n    enabled: sometimes\n", "enterprises[0].sources[0].enabled", `"sometimes" is not true or false`},
		{"trusted_proxies: [10.0.0.1]\n", "trusted_proxies[0]", "CIDR"},
		{"enterprises:\n- id: Demo\n", "enterprises[0].id", "lowercase"},
		{"enterprises:\n- id: demo\n  sources:\n  - id: wecom\n    kind: feishu\n", "enterprises[0].sources[0].kind", "wecom, dingtalk or local"},
		{"enterprises:\n- id: demo\n  sources:\n  - id: wecom\n    kind: wecom\n    sync:\n      cycle_hours: 48\n", "enterprises[0].sources[0].sync.cycle_hours", "between 1 and 24"},
		{"enterprises:\n- id: demo\n  sources:\n  - id: wecom\n    kind: wecom\n    sync:\n      cycel_hours: 4\n", "", `unknown key "cycel_hours"`},
		{"enterprises:\n- id: demo\n  clients:\n  - id: app\n    type: web\n", "enterprises[0].clients[0].secret", "needs a secret"},
		{"enterprises:\n- id: demo\n  clients:\n  - id: app\n    type: native\n    redirect_uris: ['/relative']\n", "enterprises[0].clients[0].redirect_uris[0]", "absolute"},
		{"enterprises:\n- id: demo\n  clients:\n  - id: app\n    type: web\n    secret: x\n    auth_method: client_secret_jwt\n", "enterprises[0].clients[0].auth_method", "must be"},
		{"enterprises:\n- id: demo\n  clients:\n  - id: app\n    type: web\n    auth_method: private_key_jwt\n", "enterprises[0].clients[0].jwks", "JSON Web Key Set"},
		{"enterprises:\n- id: demo\n  clients:\n  - id: app\n    type: web\n    secret: x\n    id_token_alg: HS256\n", "enterprises[0].clients[0].id_token_alg", "RS256, ES256 or EdDSA"},
		{"enterprises:\n- id: demo\n  service_providers:\n  - entity_id: https://sp/md\n    metadata_url: https://sp/md\n    nameid_format: x509\n", "enterprises[0].service_providers[0].nameid_format", "persistent"},
		{"enterprises:\n- id: demo\n  service_providers:\n  - entity_id: https://sp/md\n    metadata_url: https://sp/md\n    attributes: {mail: e-mail}\n", "enterprises[0].service_providers[0].attributes.mail", "ext.NAME"},
		{"enterprises:\n- id: demo\n  service_providers:\n  - metadata_url: https://sp/md\n", "enterprises[0].service_providers[0].entity_id", "required"},
		{"enterprises:\n- id: demo\n- id: demo\n", "enterprises[1].id", "twice"},
		{"listen: [1, 2\n", "", "not valid YAML"},
	} {
		_, err := Load(write(t, tc.body), noEnv, Overrides{})
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("%q: error %v is not a config error", tc.body, err)
			continue
		}
		if ce.Key != tc.key || !strings.Contains(ce.Reason, tc.reason) {
			t.Errorf("%q: got key %q reason %q; want key %q reason containing %q", tc.body, ce.Key, ce.Reason, tc.key, tc.reason)
		}
	}
	if _, err := Load("/nonexistent/qiao.yaml", noEnv, Overrides{}); err == nil || !strings.Contains(err.Error(), "cannot read") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestEmptyFileIsDefaults(t *testing.T) {
	c, err := Load(write(t, "# nothing\n"), noEnv, Overrides{})
	if err != nil || c.Listen != "127.0.0.1:8080" || c.KeyRotationGrace.D() != 48*time.Hour {
		t.Fatalf("%+v %v", c, err)
	}
}

// The commented example at the repository root must stay loadable: it is what admins copy.
func TestExampleConfigLoads(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "config.yaml"), noEnv, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Enterprises) == 0 || len(c.Enterprises[0].Sources) == 0 || len(c.Enterprises[0].Clients) == 0 {
		t.Fatalf("example config declares no enterprise, source or client: %+v", c.Enterprises)
	}
}

// The sync rules are the directory's (one set of rules), reported under the config's keys.
func TestSyncRulesAreTheDirectorys(t *testing.T) {
	src := "enterprises:\n- id: demo\n  sources:\n  - id: l\n    kind: local\n    sync: "
	for _, tc := range []struct{ sync, key, reason string }{
		{"{cycle_hours: 25}", "sync.cycle_hours", "between 1 and 24"},
		{"{match_by: name}", "sync.match_by", "userid, email or mobile"},
		{"{verify_at: '25:99'}", "sync.verify_at", "time of day"},
		{"{delete_users_threshold: -1}", "sync.delete_users_threshold", "must not be negative"},
		{"{delete_departments_threshold: -1}", "sync.delete_departments_threshold", "must not be negative"},
	} {
		_, err := Load(write(t, src+tc.sync+"\n"), noEnv, Overrides{})
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != "enterprises[0].sources[0]."+tc.key || !strings.Contains(ce.Reason, tc.reason) {
			t.Errorf("%s: got %v; want key …%s, reason containing %q", tc.sync, err, tc.key, tc.reason)
		}
	}
	if _, err := Load(write(t, src+"{cycle_hours: 24, match_by: email, verify_at: '03:30'}\n"), noEnv, Overrides{}); err != nil {
		t.Fatalf("valid sync settings: %v", err)
	}
	if _, err := Load(write(t, "enterprises:\n- id: Demo\n"), noEnv, Overrides{}); err == nil {
		t.Fatal("an enterprise ID the directory refuses was accepted")
	}
}

// Secrets may be references: ${NAME} to the environment, KEY_file to a file; both resolved at
// load, errors naming the key, never the value.
func TestSecretReferences(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "wecom.secret"), []byte("file-secret-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	if err := os.WriteFile(filepath.Join(dir, "master.key"), []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	body := `master_key_file: master.key
storage: postgres://qiao:${PG_PASSWORD}@127.0.0.1:5432/qiao?sslmode=disable
state: redis://:${REDIS_PASSWORD}@127.0.0.1:6379/0
enterprises:
- id: demo
  sources:
  - id: w
    kind: wecom
    secrets:
      secret_file: wecom.secret
      contact_secret: ${CONTACT_SECRET}
      callback_token: tok-${CONTACT_SECRET}-$plain-$$
  clients:
  - id: app
    type: web
    secret: ${APP_SECRET}
  - id: app2
    type: web
    secret_file: ` + filepath.Join(dir, "wecom.secret") + `
`
	p := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"PG_PASSWORD": "pg-pw", "REDIS_PASSWORD": "redis-pw", "CONTACT_SECRET": "contact", "APP_SECRET": "app-secret"}
	c, err := Load(p, func(k string) string { return env[k] }, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	src := c.Enterprises[0].Sources[0].Secrets
	if c.MasterKey != key || c.MasterKeyFile != "" || c.Storage != "postgres://qiao:pg-pw@127.0.0.1:5432/qiao?sslmode=disable" ||
		c.State != "redis://:redis-pw@127.0.0.1:6379/0" || src["secret"] != "file-secret-value" || src["contact_secret"] != "contact" ||
		src["callback_token"] != "tok-contact-$plain-$$" || len(src) != 3 ||
		c.Enterprises[0].Clients[0].Secret != "app-secret" || c.Enterprises[0].Clients[1].Secret != "file-secret-value" {
		t.Fatalf("resolved: master %q storage %q state %q secrets %v clients %+v", c.MasterKey, c.Storage, c.State, src, c.Enterprises[0].Clients)
	}

	// Each problem names the key; no message holds a secret.
	for _, tc := range []struct{ unset, body, key, reason string }{
		{"APP_SECRET", body, "enterprises[0].clients[0].secret", "${APP_SECRET}, which is not set"},
		{"CONTACT_SECRET", body, "enterprises[0].sources[0].secrets.callback_token", "${CONTACT_SECRET}, which is not set"},
		{"PG_PASSWORD", body, "storage", "${PG_PASSWORD}"},
		{"", strings.Replace(body, "secret_file: wecom.secret", "secret_file: missing.secret", 1), "enterprises[0].sources[0].secrets.secret_file", "cannot read the secret file"},
		{"", strings.Replace(body, "master_key_file: master.key", "master_key_file: master.key\nmaster_key: x", 1), "master_key_file", "not both"},
		{"", strings.Replace(body, "secret_file: wecom.secret", "secret_file: wecom.secret\n      secret: plain", 1), "enterprises[0].sources[0].secrets.secret_file", "not both"},
		{"", strings.Replace(body, "secret_file: "+filepath.Join(dir, "wecom.secret"), "secret_file: empty.secret", 1), "enterprises[0].clients[1].secret_file", "is empty"},
	} {
		os.WriteFile(filepath.Join(dir, "empty.secret"), []byte("\n"), 0o600)
		os.WriteFile(p, []byte(tc.body), 0o600)
		_, err := Load(p, func(k string) string {
			if k == tc.unset {
				return ""
			}
			return env[k]
		}, Overrides{})
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != tc.key || !strings.Contains(ce.Reason, tc.reason) {
			t.Errorf("unset %q: got %v; want key %q reason containing %q", tc.unset, err, tc.key, tc.reason)
			continue
		}
		for _, secret := range []string{"pg-pw", "redis-pw", "contact", "app-secret", "file-secret-value", key} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q shows a secret", err)
			}
		}
	}
}

// A listen address of 0.0.0.0 (a container) is fine to bind, but not as the external URL.
func TestExternalURLMustBeReachable(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string // "" = accepted
	}{
		{map[string]string{"QIAO_ADDR": "0.0.0.0:8080"}, "not set, and http://{listen} is http://0.0.0.0:8080"},
		{map[string]string{"QIAO_ADDR": "[::]:8080"}, "http://[::]:8080"},
		{map[string]string{"QIAO_ADDR": "0.0.0.0:8080", "QIAO_EXTERNAL_URL": "http://0.0.0.0:8080"}, "has the unspecified host 0.0.0.0"},
		{map[string]string{"QIAO_ADDR": "0.0.0.0:8080", "QIAO_EXTERNAL_URL": "https://sso.example.com"}, ""},
		{map[string]string{}, ""},
	} {
		c, err := Load("", func(k string) string { return tc.env[k] }, Overrides{})
		if err != nil {
			t.Fatal(err)
		}
		err = c.CheckExternalURL()
		var ce *Error
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v refused: %v", tc.env, err)
		case tc.want != "" && (!errors.As(err, &ce) || ce.Key != "external_url" || !strings.Contains(ce.Reason, tc.want) || !strings.Contains(ce.Reason, "QIAO_EXTERNAL_URL")):
			t.Errorf("%v: got %v, want external_url: …%s… QIAO_EXTERNAL_URL", tc.env, err, tc.want)
		}
	}
}
