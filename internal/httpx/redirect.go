package httpx

import (
	"net/url"
	"strings"
)

// MaxRedirectTarget bounds a redirect target taken from input.
const MaxRedirectTarget = 2048

// LocalRedirect decides whether v, a redirect target taken from input (a login's return, a
// logout's destination), stays on the gateway's own origin, judged the way a browser resolves a
// Location (the WHATWG URL standard), not the way Go's url package parses it. It returns the
// target as an absolute path on that origin ("/x?y"), which is what the caller must send, or ""
// when v is anything else.
//
// A browser, before resolving, strips leading and trailing C0 controls and spaces, removes every
// ASCII tab and newline, and treats `\` as `/` in http(s) URLs: "/\t/evil.example" and
// "/\\evil.example" both become "//evil.example", another origin. So the same is done here first,
// then the result must be either a path-absolute reference ("/x", never "//x") or an absolute
// http(s) URL whose origin is external's. Every other form (scheme-relative, relative paths,
// opaque URLs, userinfo, other controls) is refused rather than interpreted.
func LocalRedirect(external *url.URL, v string) string {
	if v == "" || len(v) > MaxRedirectTarget || external == nil {
		return ""
	}
	s := browserNormalize(v)
	if s == "" {
		return ""
	}
	for i := 0; i < len(s); i++ {
		// Other controls, spaces and DEL have no place in a target we emit; refuse instead of
		// guessing how each browser treats them.
		if c := s[i]; c < 0x21 || c == 0x7f {
			return ""
		}
	}
	if s[0] == '/' {
		if len(s) > 1 && s[1] == '/' {
			return "" // scheme-relative: another host
		}
	} else {
		u, err := url.Parse(s)
		if err != nil || !sameOrigin(external, u) {
			return ""
		}
		s = u.EscapedPath()
		if s == "" {
			s = "/"
		}
		if u.RawQuery != "" {
			s += "?" + u.RawQuery
		}
		if s[0] != '/' || (len(s) > 1 && s[1] == '/') {
			return ""
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
		return ""
	}
	// Re-serialise what was checked so that the emitted octets are the judged ones; the fragment
	// is dropped (a browser keeps the one of the original navigation anyway).
	out := u.EscapedPath()
	if u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	if len(out) > MaxRedirectTarget || !strings.HasPrefix(out, "/") || strings.HasPrefix(out, "//") || strings.ContainsRune(u.EscapedPath(), '\\') {
		return ""
	}
	return out
}

// browserNormalize applies the WHATWG URL parser's pre-processing: trim C0 controls and spaces at
// both ends, remove ASCII tab and newline anywhere, and read `\` as `/` before the query (the
// gateway is only ever http or https, special schemes for which browsers do this).
func browserNormalize(v string) string {
	v = strings.TrimFunc(v, func(r rune) bool { return r <= 0x20 })
	var b strings.Builder
	b.Grow(len(v))
	inQuery := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\t' || c == '\n' || c == '\r':
			continue
		case c == '?' || c == '#':
			inQuery = true
		case c == '\\' && !inQuery:
			c = '/'
		}
		b.WriteByte(c)
	}
	return b.String()
}

// sameOrigin compares u's origin (scheme, host, port; default ports made explicit) with base's,
// refusing userinfo outright: "https://gw@evil.example" is another host to a browser.
func sameOrigin(base, u *url.URL) bool {
	if u.User != nil || u.Opaque != "" || u.Host == "" {
		return false
	}
	if !strings.EqualFold(u.Scheme, base.Scheme) {
		return false
	}
	return strings.EqualFold(hostPort(u), hostPort(base))
}

func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return strings.ToLower(u.Hostname()) + ":" + port
}
