package connectors

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/dingtalk"
	"github.com/qiao-gateway/qiao/federation/wecom"
	"github.com/qiao-gateway/qiao/internal/config"
)

// Settings that open every capability of each kind (the AES key is 43 characters of base64).
var full = map[string]struct{ cfg, secrets map[string]string }{
	wecom.Name: {map[string]string{"corp_id": "wwcorp", "agent_id": "1000002", "callback_domain": "sso.example.com"},
		map[string]string{"secret": "s", "callback_token": "t", "encoding_aes_key": strings.Repeat("a", 43)}},
	dingtalk.Name: {map[string]string{"corp_id": "dingcorp", "app_key": "dingkey", "callback_domain": "sso.example.com"},
		map[string]string{"app_secret": "s", "callback_token": "t", "aes_key": strings.Repeat("a", 43)}},
}

func with(m map[string]string, k, v string) map[string]string {
	m = maps.Clone(m)
	if v == "" {
		delete(m, k)
	} else {
		m[k] = v
	}
	return m
}

func TestEachKindRegistered(t *testing.T) {
	if got := federation.KindNames(); !slices.Equal(got, []string{wecom.Name, dingtalk.Name}) {
		t.Fatalf("registered kinds = %v, want wecom, dingtalk in that order", got)
	}
	for name, s := range full {
		k, ok := federation.LookupKind(name)
		if !ok || k.Name != name {
			t.Fatalf("kind %q: %+v, %v", name, k, ok)
		}
		c, err := Open(name, s.cfg, s.secrets)
		if err != nil {
			t.Fatalf("%s: open: %v", name, err)
		}
		if r, err := c.Reader(); err != nil || r == nil {
			t.Errorf("%s: reader: %v", name, err)
		}
		if d, err := Decoder(name, s.cfg, s.secrets); err != nil || d == nil {
			t.Errorf("%s: decoder: %v", name, err)
		}
		l, err := Login(name, s.cfg, s.secrets)
		if err != nil || l.CallbackDomain() != "sso.example.com" {
			t.Fatalf("%s: login: %v", name, err)
		}
		// Only DingTalk's in-app login is a page of qiao's, for the corp and the app configured.
		page, isPage := l.(federation.InAppPage)
		if isPage != (name == dingtalk.Name) {
			t.Errorf("%s: in-app page = %v", name, isPage)
		}
		if isPage {
			if corp, app := page.InAppPage(); corp != "dingcorp" || app != "dingkey" {
				t.Errorf("in-app page for %q %q", corp, app)
			}
		}
		if !slices.Contains(config.SourceKinds(), name) {
			t.Errorf("%s is not a config source kind", name)
		}
	}
	for _, open := range []func(string, map[string]string, map[string]string) (any, error){
		func(k string, c, s map[string]string) (any, error) { return Reader(k, c, s) },
		func(k string, c, s map[string]string) (any, error) { return Login(k, c, s) },
		func(k string, c, s map[string]string) (any, error) { return Decoder(k, c, s) },
		func(k string, c, s map[string]string) (any, error) { return Open(k, c, s) },
	} {
		if _, err := open("local", nil, nil); err == nil || !strings.Contains(err.Error(), `for kind "local"`) {
			t.Errorf("local has no connector: %v", err)
		}
	}
}

// What the broker and the sync engine look up instead of switching on the kind's name.
func TestKindTraits(t *testing.T) {
	for ua, want := range map[string][2]bool{
		"Mozilla/5.0 (iPhone) wxwork/4.1.22 MicroMessenger/7.0.1": {true, false},
		"Mozilla/5.0 (Linux; Android 13) AliApp(DingTalk/7.0.40)": {false, true},
		"Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0":           {false, false},
	} {
		for i, name := range []string{wecom.Name, dingtalk.Name} {
			k, _ := federation.LookupKind(name)
			if got := k.InApp(ua); got != want[i] {
				t.Errorf("%s in-app %q = %v", name, ua, got)
			}
		}
	}
	for _, name := range federation.KindNames() {
		k, _ := federation.LookupKind(name)
		m := k.Mapping()
		if !maps.Equal(m, federation.StandardMapping) {
			t.Errorf("%s default mapping = %v", name, m)
		}
		m["username"] = "email" // a source's mappings extend a copy
		if k.Mapping()["username"] != "userid" {
			t.Fatalf("%s: Mapping handed out the kind's own map", name)
		}
	}
}

func TestParseErrorsNameTheKey(t *testing.T) {
	w, d := full[wecom.Name], full[dingtalk.Name]
	for _, tc := range []struct {
		kind             string
		cfg, secrets     map[string]string
		key, messagePart string
	}{
		{wecom.Name, with(w.cfg, "corp_id", ""), w.secrets, "config.corp_id", "企业ID"},
		{wecom.Name, w.cfg, with(w.secrets, "secret", ""), "secrets.secret", "or secrets.contact_secret"},
		{wecom.Name, with(w.cfg, "rate_limit", "fast"), w.secrets, "config.rate_limit", `"fast" must be off or calls per second`},
		{wecom.Name, with(w.cfg, "login_mode", "inapp"), w.secrets, "config.login_mode", `"inapp" must be qr or qr_legacy`},
		{dingtalk.Name, with(d.cfg, "app_key", ""), d.secrets, "config.app_key", "AppKey/Client ID"},
		{dingtalk.Name, d.cfg, with(d.secrets, "app_secret", ""), "secrets.app_secret", "AppSecret"},
		{dingtalk.Name, with(d.cfg, "rate_limit", "-3"), d.secrets, "config.rate_limit", "must be off"},
	} {
		_, err := Open(tc.kind, tc.cfg, tc.secrets)
		var se *federation.SettingError
		if !errors.As(err, &se) || se.Key != tc.key || !strings.Contains(err.Error(), tc.key+" ") || !strings.Contains(err.Error(), tc.messagePart) {
			t.Errorf("%s %s: %v", tc.kind, tc.key, err)
		}
		// Every capability refuses the same settings: none opens on a half-valid config.
		if _, err := Login(tc.kind, tc.cfg, tc.secrets); !errors.As(err, &se) || se.Key != tc.key {
			t.Errorf("%s %s: login opened: %v", tc.kind, tc.key, err)
		}
	}
	// The event secrets are checked when the decoder opens: events are optional.
	if _, err := Decoder(wecom.Name, w.cfg, with(w.secrets, "encoding_aes_key", "")); err == nil || !strings.Contains(err.Error(), "secrets.encoding_aes_key") {
		t.Errorf("wecom decoder without its key: %v", err)
	}
	if _, err := Reader(wecom.Name, w.cfg, with(w.secrets, "encoding_aes_key", "")); err != nil {
		t.Errorf("wecom reader needs no event secrets: %v", err)
	}
}

// A typed config fills the documented defaults, and spelling them out changes nothing.
func TestTypedConfigDefaults(t *testing.T) {
	minimal := map[string]string{"corp_id": "wwcorp"}
	wc, err := wecom.ParseConfig(minimal, map[string]string{"contact_secret": "c"})
	if err != nil || wc.Validate() != nil {
		t.Fatalf("%+v %v", wc, err)
	}
	if wc.APIBase != wecom.DefaultAPIBase || wc.LoginBase != wecom.DefaultLoginBase || wc.OpenBase != wecom.DefaultOpenBase ||
		wc.OAuthBase != wecom.DefaultOAuthBase || wc.LoginMode != wecom.LoginQR || wc.InAppDetail || wc.RatePerSecond != 0 {
		t.Fatalf("wecom defaults = %+v", wc)
	}
	explicit := with(with(with(with(with(with(minimal, "api_base_url", wecom.DefaultAPIBase+"/"), "login_base_url", wecom.DefaultLoginBase),
		"open_base_url", wecom.DefaultOpenBase), "oauth_base_url", wecom.DefaultOAuthBase), "login_mode", wecom.LoginQR), "inapp_detail", "false")
	if again, err := wecom.ParseConfig(explicit, map[string]string{"contact_secret": "c"}); err != nil || !reflect.DeepEqual(again, wc) {
		t.Fatalf("explicit defaults parse to %+v, %v; want %+v", again, err, wc)
	}
	dc, err := dingtalk.ParseConfig(map[string]string{"app_key": "k"}, map[string]string{"app_secret": "s"})
	if err != nil || dc.Validate() != nil || dc.OAPIBase != dingtalk.DefaultOAPIBase || dc.APIBase != dingtalk.DefaultAPIBase ||
		dc.LoginBase != dingtalk.DefaultLoginBase || dc.RatePerSecond != 0 {
		t.Fatalf("dingtalk defaults = %+v, %v", dc, err)
	}
	explicit = map[string]string{"app_key": "k", "oapi_base_url": dingtalk.DefaultOAPIBase, "api_base_url": dingtalk.DefaultAPIBase, "login_base_url": dingtalk.DefaultLoginBase}
	if again, err := dingtalk.ParseConfig(explicit, map[string]string{"app_secret": "s"}); err != nil || !reflect.DeepEqual(again, dc) {
		t.Fatalf("explicit defaults parse to %+v, %v; want %+v", again, err, dc)
	}
	for v, want := range map[string]float64{"": 0, "off": -1, "2.5": 2.5} {
		c, err := wecom.ParseConfig(with(minimal, "rate_limit", v), nil)
		if err != nil || c.RatePerSecond != want {
			t.Errorf("rate_limit %q = %v, %v", v, c, err)
		}
	}
	wc, _ = wecom.ParseConfig(with(with(minimal, "login_mode", "qr_legacy"), "inapp_detail", "true"), map[string]string{"secret": "s"})
	if wc.LoginMode != wecom.LoginQRLegacy || !wc.InAppDetail || wc.Validate() != nil {
		t.Fatalf("wecom login settings = %+v", wc)
	}
}

func load(t *testing.T, body string) error {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(p, func(string) string { return "" }, config.Overrides{})
	return err
}

// The config names the key at fault when a declared source's kind is unknown or its kind refuses
// its settings; the kinds and their checks are the registry's.
func TestConfigChecksSourcesThroughTheirKind(t *testing.T) {
	src := "enterprises:\n- id: demo\n  sources:\n  - id: wecom\n"
	for _, tc := range []struct{ body, key, reason string }{
		{src + "    kind: feishu\n", "enterprises[0].sources[0].kind", "wecom, dingtalk or local"},
		{src + "    kind: wecom\n    secrets: {secret: s}\n", "enterprises[0].sources[0].config.corp_id", "is required"},
		{src + "    kind: wecom\n    config: {corp_id: ww}\n", "enterprises[0].sources[0].secrets.secret", "contact_secret"},
		{src + "    kind: wecom\n    config: {corp_id: ww, login_mode: x}\n    secrets: {secret: s}\n", "enterprises[0].sources[0].config.login_mode", "qr or qr_legacy"},
		{src + "    kind: dingtalk\n    config: {app_key: k, rate_limit: fast}\n    secrets: {app_secret: s}\n", "enterprises[0].sources[0].config.rate_limit", "must be off"},
		// The source's own rules come first.
		{src + "    kind: wecom\n    sync:\n      cycle_hours: 48\n", "enterprises[0].sources[0].sync.cycle_hours", "between 1 and 24"},
	} {
		err := load(t, tc.body)
		var ce *config.Error
		if !errors.As(err, &ce) || ce.Key != tc.key || !strings.Contains(ce.Reason, tc.reason) {
			t.Errorf("%q: got %v; want key %q reason containing %q", tc.body, err, tc.key, tc.reason)
		}
	}
	if err := load(t, src+"    kind: local\n"); err != nil {
		t.Fatalf("local source: %v", err)
	}
}

// The commented example admins copy loads with the real kinds' checks, not only config's stand-ins.
func TestExampleConfigLoads(t *testing.T) {
	c, err := config.Load(filepath.Join("..", "..", "config.yaml"), func(string) string { return "" }, config.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, s := range c.Enterprises[0].Sources {
		kinds[s.Kind] = true
	}
	if !kinds[wecom.Name] || !kinds[dingtalk.Name] {
		t.Fatalf("the example declares kinds %v", kinds)
	}
}

func TestRegisterRefusesDuplicates(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("registering wecom twice did not panic")
		}
	}()
	federation.Register(wecom.Kind())
}
