package oidc

import (
	"slices"
	"strings"

	"github.com/qiao-gateway/qiao/directory"
)

// redirectAllowed reports whether uri may receive a response for a client whose registered URIs
// are given (redirect_uri at /authorize, post_logout_redirect_uri at /end_session). qiao decides
// this itself rather than leaving it to the library, whose loopback rule admits localhost, any
// 127/8 address, userinfo, out-of-range ports, re-encoded paths and fragments.
//
// The rule is exact string equality with a registered URI (OAuth 2.0 Security BCP §4.1.3), with one
// exception for native apps (RFC 8252 §7.3): a registered loopback redirect on an IP literal also
// matches the same URI on any port.
func redirectAllowed(registered []string, native bool, uri string) bool {
	if uri == "" || len(uri) > 2048 || strings.ContainsRune(uri, '#') {
		return false
	}
	if slices.Contains(registered, uri) {
		return true
	}
	if !native {
		return false
	}
	for _, reg := range registered {
		if loopbackMatch(reg, uri) {
			return true
		}
	}
	return false
}

// clientRedirectAllowed applies redirectAllowed to a client's redirect URIs.
func clientRedirectAllowed(c *directory.OIDCClient, uri string) bool {
	return redirectAllowed(c.RedirectURIs, c.Type == directory.ClientNative, uri)
}

// clientPostLogoutAllowed applies redirectAllowed to a client's post-logout redirect URIs.
func clientPostLogoutAllowed(c *directory.OIDCClient, uri string) bool {
	return redirectAllowed(c.PostLogoutRedirectURIs, c.Type == directory.ClientNative, uri)
}

// loopbackHosts are the hosts of a loopback redirect whose port may vary: IP literals only. RFC 8252
// §8.3 advises against "localhost" (it can resolve elsewhere); other 127/8 addresses and other
// spellings of ::1 are different URIs.
var loopbackHosts = []string{"127.0.0.1", "[::1]"}

// loopbackMatch reports whether requested is the registered loopback redirect with, at most, another
// port (RFC 8252 §7.3). It works on the strings, not on a parsed URL, so that no parser leniency
// (percent-encoding, case, userinfo, empty or out-of-range ports, fragments) can make two different
// strings match: apart from the port, requested must be registered, byte for byte.
func loopbackMatch(registered, requested string) bool {
	regHost, _, regRest, ok := splitLoopback(registered)
	if !ok {
		return false
	}
	host, _, rest, ok := splitLoopback(requested)
	return ok && host == regHost && rest == regRest
}

// splitLoopback splits "http://HOST[:PORT]REST" where HOST is a loopback IP literal, PORT is 1–65535
// in canonical decimal and REST is empty or a well-formed path and query (no fragment).
func splitLoopback(uri string) (host, port, rest string, ok bool) {
	s, found := strings.CutPrefix(uri, "http://")
	if !found {
		return "", "", "", false
	}
	end := strings.IndexAny(s, "/?")
	if end < 0 {
		end = len(s)
	}
	authority, rest := s[:end], s[end:]
	if !wellFormedRest(rest) {
		// The any-port rule extends only registrations it can read; others match exactly or not at all.
		return "", "", "", false
	}
	for _, h := range loopbackHosts {
		p, found := strings.CutPrefix(authority, h)
		if !found {
			continue
		}
		if p == "" {
			return h, "", rest, true
		}
		p, found = strings.CutPrefix(p, ":")
		if !found || !validPort(p) {
			return "", "", "", false
		}
		return h, p, rest, true
	}
	return "", "", "", false
}

// wellFormedRest accepts a path and query made of RFC 3986 characters (pchar, "/" and "?"), with
// every "%" starting a percent-encoded octet. A "#" (fragment) is not among them.
func wellFormedRest(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:@/?", c) >= 0:
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return false
			}
			i += 2
		default:
			return false
		}
	}
	return true
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// validPort accepts 1–65535 written without sign or leading zeros.
func validPort(p string) bool {
	if p == "" || len(p) > 5 || p[0] == '0' {
		return false
	}
	n := 0
	for _, c := range []byte(p) {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n >= 1 && n <= 65535
}
