package httpx

import (
	"net/url"
	"strings"
	"testing"
)

var gw, _ = url.Parse("https://sso.example.com")

// hostileTargets are return values that a browser resolves off the gateway, or that could be read
// so; each must be refused.
var hostileTargets = []string{
	"//evil.example", "///evil.example", "////evil.example",
	"/\\evil.example", "\\\\evil.example", "\\/evil.example", "/\\/evil.example",
	"/\t/evil.example", "\t//evil.example", "/\n/evil.example", "/\r\n/evil.example", "/\t\\evil.example",
	" //evil.example", "\x00//evil.example", "\x1f//evil.example", "//evil.example\t",
	"https://evil.example", "https://evil.example/", "HTTPS://evil.example/x",
	"https:evil.example", "https:/evil.example", "https:\\\\evil.example", "https:///evil.example",
	"http://sso.example.com/", "http://sso.example.com:443/", // the right host, the wrong scheme: another origin
	"https://sso.example.com:8443/", "https://sso.example.com.evil.example/",
	"https://sso.example.com@evil.example/", "https://user@sso.example.com/",
	"https://evil.example\\@sso.example.com/",
	"javascript:alert(1)", "JaVaScRiPt:alert(1)", "java\tscript:alert(1)", "data:text/html,x", "vbscript:x",
	"evil.example", "e/demo", "./x", "../x", "?x=1", "#frag",
	"/\x00x", "/a b", "/a\x7f", "/a\vb", "/a\fb",
	"", " ", "\t", "/" + strings.Repeat("a", MaxRedirectTarget),
}

func TestLocalRedirectRefusesHostileTargets(t *testing.T) {
	for _, v := range hostileTargets {
		if got := LocalRedirect(gw, v); got != "" {
			t.Errorf("LocalRedirect(%q) = %q, want refused", v, got)
		}
	}
}

func TestLocalRedirectKeepsLocalTargets(t *testing.T) {
	for v, want := range map[string]string{
		"/":                                     "/",
		"/login/done":                           "/login/done",
		"/e/demo/authorize/continue?id=abc":     "/e/demo/authorize/continue?id=abc",
		"/e/demo/saml/continue?id=a%2Fb&x=1":    "/e/demo/saml/continue?id=a%2Fb&x=1",
		"/x?y=a\\b":                             "/x?y=a\\b", // a backslash in the query is data
		"/x#frag":                               "/x",
		"https://sso.example.com":               "/",
		"https://sso.example.com/e/demo?x=1":    "/e/demo?x=1",
		"https://SSO.example.com:443/e/demo":    "/e/demo",
		"  /login/done  ":                       "/login/done",
		"/%E4%BD%A0%E5%A5%BD":                   "/%E4%BD%A0%E5%A5%BD",
		"/%2F%2Fevil.example":                   "/%2F%2Fevil.example", // an encoded slash stays a path
		"/e/demo/authorize/continue?id=abc#x/y": "/e/demo/authorize/continue?id=abc",
	} {
		if got := LocalRedirect(gw, v); got != want {
			t.Errorf("LocalRedirect(%q) = %q, want %q", v, got, want)
		}
	}
	plain, _ := url.Parse("http://127.0.0.1:8080")
	if got := LocalRedirect(plain, "http://127.0.0.1:8080/x"); got != "/x" {
		t.Errorf("http origin with a port: %q", got)
	}
	if got := LocalRedirect(plain, "http://127.0.0.1/x"); got != "" {
		t.Errorf("another port is another origin: %q", got)
	}
}

// browserResolvesLocally models what a browser does with a Location that LocalRedirect emitted,
// independently of LocalRedirect: the WHATWG pre-processing, then the test of a path-absolute
// reference.
func browserResolvesLocally(loc string) bool {
	s := strings.TrimFunc(loc, func(r rune) bool { return r <= 0x20 })
	s = strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(s)
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = strings.ReplaceAll(s[:i], "\\", "/") + s[i:]
	} else {
		s = strings.ReplaceAll(s, "\\", "/")
	}
	return s == loc && strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//")
}

func FuzzLocalRedirect(f *testing.F) {
	for _, v := range hostileTargets {
		f.Add(v)
	}
	for _, v := range []string{"/login/done", "/e/demo/authorize/continue?id=abc", "https://sso.example.com/x?y", "/x?y=\\z#w"} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got := LocalRedirect(gw, v)
		if got == "" {
			return
		}
		if !browserResolvesLocally(got) {
			t.Fatalf("LocalRedirect(%q) = %q, which a browser resolves off the origin or rewrites", v, got)
		}
		u, err := url.Parse(got)
		if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
			t.Fatalf("LocalRedirect(%q) = %q: parses as %+v (%v)", v, got, u, err)
		}
		// What the gateway emits, judged again, is unchanged: the check and the use agree.
		if again := LocalRedirect(gw, got); again != got {
			t.Fatalf("LocalRedirect is not stable: %q -> %q -> %q", v, got, again)
		}
	})
}
