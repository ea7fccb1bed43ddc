package oidc

import (
	"net/url"
	"strconv"
	"strings"
	"testing"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/qiao-gateway/qiao/directory"
)

func TestLoopbackMatch(t *testing.T) {
	for _, c := range []struct {
		registered, requested string
		want                  bool
	}{
		{"http://127.0.0.1/callback", "http://127.0.0.1/callback", true},
		{"http://127.0.0.1/callback", "http://127.0.0.1:1/callback", true},
		{"http://127.0.0.1/callback", "http://127.0.0.1:53682/callback", true},
		{"http://127.0.0.1/callback", "http://127.0.0.1:65535/callback", true},
		{"http://127.0.0.1:8080/callback", "http://127.0.0.1:9090/callback", true},
		{"http://[::1]/cb", "http://[::1]:4000/cb", true},
		{"http://127.0.0.1/cb?app=1", "http://127.0.0.1:4000/cb?app=1", true},
		{"http://127.0.0.1", "http://127.0.0.1:4000", true},

		{"http://127.0.0.1/callback", "http://localhost:4000/callback", false},
		{"http://localhost/callback", "http://localhost:4000/callback", false},
		{"http://127.0.0.1/callback", "http://127.0.0.2:4000/callback", false},
		{"http://127.0.0.1/callback", "http://127.1:4000/callback", false},
		{"http://127.0.0.1/callback", "http://[::ffff:127.0.0.1]:4000/callback", false},
		{"http://127.0.0.1/callback", "http://[::1]:4000/callback", false},
		{"http://[::1]/callback", "http://[0:0:0:0:0:0:0:1]:4000/callback", false},
		{"http://[::1]/callback", "http://[::1%25lo]:4000/callback", false},
		{"http://127.0.0.1/callback", "http://user@127.0.0.1:4000/callback", false},
		{"http://127.0.0.1/callback", "http://127.0.0.1:4000@evil.example/callback", false},
		{"http://127.0.0.1/callback", "http://127.0.0.1:0/callback", false},
		{"http://127.0.0.1/callback", "http://127.0.0.1:65536/callback", false},
		{"http://127.0.0.1/callback", "http://127.0.0.1:99999/callback", false},
		{"http://127.0.0.1/callback", "http://127.0.0.1:04000/callback", false},
		{"http://127.0.0.1/callback", "http://127.0.0.1:+4000/callback", false},
		{"http://127.0.0.1/callback", "http://127.0.0.1:/callback", false},
		{"http://127.0.0.1/callback", "http://127.0.0.1:4000/%63allback", false},
		{"http://127.0.0.1/callback", "http://127.0.0.1:4000/callback#frag", false},
		{"http://127.0.0.1/callback", "http://127.0.0.1:4000/callback#", false},
		{"http://127.0.0.1/callback", "http://127.0.0.1:4000/callback/", false},
		{"http://127.0.0.1/callback", "http://127.0.0.1:4000/callbackx", false},
		{"http://127.0.0.1/callback", "http://127.0.0.1:4000/callback/x", false},
		{"http://127.0.0.1/callback", "http://127.0.0.1:4000/callback?x=1", false},
		{"http://127.0.0.1/callback", "http://127.0.0.1:4000/callback?", false},
		{"http://127.0.0.1/cb?app=1", "http://127.0.0.1:4000/cb?app=2", false},
		{"http://127.0.0.1/cb?app=1", "http://127.0.0.1:4000/cb?app=1&x=2", false},
		{"http://127.0.0.1/cb?app=1", "http://127.0.0.1:4000/cb", false},
		{"http://127.0.0.1/callback", "HTTP://127.0.0.1:4000/callback", false},
		{"http://127.0.0.1/callback", "https://127.0.0.1:4000/callback", false},
		{"https://127.0.0.1/callback", "https://127.0.0.1:4000/callback", false},
		{"http://127.0.0.1/callback", "http://127.0.0.1:4000/Callback", false},
		{"http://127.0.0.1/callback", "http://127.0.0.1:4000//callback", false},
		{"http://127.0.0.1/callback", "http://127.0.0.1:4000\\@evil/callback", false},
		{"http://127.0.0.1/callback#f", "http://127.0.0.1:4000/callback#f", false},
		{"com.example.app:/cb", "com.example.app:/cb", false}, // exact matches are redirectAllowed's, not this rule's
	} {
		if got := loopbackMatch(c.registered, c.requested); got != c.want {
			t.Errorf("loopbackMatch(%q, %q) = %v, want %v", c.registered, c.requested, got, c.want)
		}
	}
}

func TestRedirectAllowed(t *testing.T) {
	web := &directory.OIDCClient{Type: directory.ClientWeb, RedirectURIs: []string{"https://app.example/cb", "http://127.0.0.1:8080/cb"}}
	native := &directory.OIDCClient{Type: directory.ClientNative, RedirectURIs: []string{"http://127.0.0.1/callback", "com.example.app:/oauth"}}
	for _, c := range []struct {
		c    *directory.OIDCClient
		uri  string
		want bool
	}{
		{web, "https://app.example/cb", true},
		{web, "http://127.0.0.1:8080/cb", true},
		// A registered URI with anything appended, or changed, is another URI.
		{web, "https://app.example/cb/", false},
		{web, "https://app.example/cbx", false},
		{web, "https://app.example/cb/extra", false},
		{web, "https://app.example/cb?x=1", false},
		{web, "https://app.example/cb#x", false},
		{web, "https://app.example/cb%2F", false},
		{web, "https://APP.example/cb", false},
		{web, "https://app.example:443/cb", false},
		{web, "https://app.example.evil.example/cb", false},
		{web, "http://127.0.0.1:9090/cb", false}, // any-port is for native apps only
		{web, "", false},
		{native, "http://127.0.0.1:4000/callback", true},
		{native, "com.example.app:/oauth", true},
		{native, "com.example.app:/oauth/x", false},
		{native, "com.example.app:/oauth#x", false},
		{native, "http://localhost:4000/callback", false},
		{native, "http://127.0.0.1:4000/callback?x", false},
	} {
		if got := clientRedirectAllowed(c.c, c.uri); got != c.want {
			t.Errorf("%s client, %q: %v, want %v", c.c.Type, c.uri, got, c.want)
		}
	}
}

// FuzzLoopbackRedirect checks the loopback matcher's promises on any input: a match is the
// registered URI with at most its port changed to one in 1–65535, on the registered IP literal,
// without userinfo or fragment, and the library agrees it is acceptable; and any valid port on a
// registered loopback URI matches.
func FuzzLoopbackRedirect(f *testing.F) {
	for _, s := range [][2]string{
		{"http://127.0.0.1/callback", "http://127.0.0.1:53682/callback"},
		{"http://[::1]:8080/cb?x=1", "http://[::1]:1/cb?x=1"},
		{"http://127.0.0.1/callback", "http://localhost:1/callback"},
		{"http://127.0.0.1/callback", "http://user@127.0.0.1:1/callback"},
		{"http://127.0.0.1/callback", "http://127.0.0.1:99999/callback"},
		{"http://127.0.0.1/callback", "http://127.0.0.1:1/%63allback"},
		{"http://127.0.0.1/callback", "http://127.0.0.1:1/callback#x"},
		{"http://127.0.0.1/callback", "http://[::ffff:127.0.0.1]:1/callback"},
		{"http://127.0.0.1", "http://127.0.0.1:80"},
	} {
		f.Add(s[0], s[1], uint16(4711))
	}
	f.Fuzz(func(t *testing.T, registered, requested string, port uint16) {
		if loopbackMatch(registered, requested) {
			checkLoopbackMatch(t, registered, requested)
		}
		// Completeness: a well-formed registered loopback URI matches itself on any valid port.
		host, _, rest, ok := splitLoopback(registered)
		if ok && port != 0 {
			with := "http://" + host + ":" + strconv.Itoa(int(port)) + rest
			if !loopbackMatch(registered, with) {
				t.Fatalf("%q does not match %q", with, registered)
			}
			checkLoopbackMatch(t, registered, with)
		}
	})
}

func checkLoopbackMatch(t *testing.T, registered, requested string) {
	t.Helper()
	u, err := url.Parse(requested)
	if err != nil {
		t.Fatalf("matched %q, which does not parse: %v", requested, err)
	}
	reg, err := url.Parse(registered)
	if err != nil {
		t.Fatalf("matched registered %q, which does not parse: %v", registered, err)
	}
	if u.Scheme != "http" || u.User != nil || u.Fragment != "" || strings.Contains(requested, "#") || strings.Contains(registered, "#") || u.Opaque != "" {
		t.Fatalf("matched %q: scheme %q, userinfo %v, fragment %q", requested, u.Scheme, u.User, u.Fragment)
	}
	if h := u.Hostname(); h != reg.Hostname() || (h != "127.0.0.1" && h != "::1") {
		t.Fatalf("matched %q on host %q for registered host %q", requested, h, reg.Hostname())
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
			t.Fatalf("matched %q with port %q", requested, p)
		}
	}
	if u.EscapedPath() != reg.EscapedPath() || u.RawPath != reg.RawPath || u.RawQuery != reg.RawQuery || u.ForceQuery != reg.ForceQuery {
		t.Fatalf("matched %q with path %q?%q for registered %q?%q", requested, u.EscapedPath(), u.RawQuery, reg.EscapedPath(), reg.RawQuery)
	}
	// Byte for byte, apart from the port.
	strip := func(s string) string {
		h, _, rest, _ := splitLoopback(s)
		return h + rest
	}
	if strip(requested) != strip(registered) {
		t.Fatalf("matched %q for %q: they differ beyond the port", requested, registered)
	}
	// qiao's rule is never looser than the library's (which still runs after it).
	c := &client{c: &directory.OIDCClient{Type: directory.ClientNative, RedirectURIs: []string{registered}}}
	if err := op.ValidateAuthReqRedirectURI(c, requested, zoidc.ResponseTypeCode); err != nil {
		t.Fatalf("matched %q for %q, which the library refuses: %v", requested, registered, err)
	}
}
