package oidc

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/state"
)

// Defaults of the client authentication throttle (Provider fields of the same names).
const (
	DefaultClientAuthFailures = 20 // per client, per window
	DefaultIPAuthFailures     = 100
	DefaultAuthFailureWindow  = 5 * time.Minute
)

// clientCredentialParams are the parameters that identify or authenticate a client. They belong in
// the request body (RFC 6749 §2.3.1, RFC 7523 §2.2): in a URL they end up in logs and histories, and
// a check that reads one place while the library reads another can be walked around.
var clientCredentialParams = []string{"client_id", "client_secret", "client_assertion", "client_assertion_type"}

// clientEndpoint prepares a request to an endpoint that authenticates clients (token, introspection,
// revocation): POST only, credentials from the body only, then the client is authenticated before
// the library does anything with the request, so that nothing (a code, a refresh token) is touched
// for a caller that is not the client it claims to be. It reports whether the request may go on.
func (p *Provider) clientEndpoint(w http.ResponseWriter, r *http.Request, ri *reqInfo, path string) bool {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request")
		return false
	}
	q := r.URL.Query()
	for _, k := range clientCredentialParams {
		if q.Has(k) {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request")
			return false
		}
	}
	// The library reads r.Form; from here on it holds the body only.
	r.Form = url.Values{}
	for k, v := range r.PostForm {
		r.Form[k] = append([]string(nil), v...)
	}
	if path == "/oauth/token" {
		switch r.PostForm.Get("grant_type") {
		case "", string(zoidc.GrantTypeCode), string(zoidc.GrantTypeRefreshToken), string(zoidc.GrantTypeClientCredentials), GrantDeviceCode:
		default:
			// The library also answers the JWT bearer and token exchange grants; qiao offers neither.
			writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type")
			return false
		}
		if r.PostForm.Get("grant_type") == "" {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request")
			return false
		}
	}
	if !p.authenticateClient(w, r, ri, path) {
		return false
	}
	// An authenticated client asking for a grant it is not registered for is unauthorized_client
	// (RFC 6749 §5.2); the library would answer some of these as invalid_client.
	if g := r.PostForm.Get("grant_type"); path == "/oauth/token" && ri.authMethod != "none" {
		c, err := p.st.client(r.Context(), ri.authClient)
		if err != nil || !slices.Contains(c.GrantTypes(), zoidc.GrantType(g)) {
			writeOAuthError(w, http.StatusBadRequest, "unauthorized_client")
			return false
		}
	}
	return true
}

// presented is how a request says which client it comes from.
type presented struct {
	method    string // basic, post, jwt, none
	id        string // as claimed: not yet verified
	secret    string
	assertion string
}

// presentedCredentials reads the client's credentials: the Basic header, or the body (secret,
// assertion, or a public client's bare client_id). More than one method is a malformed request
// (RFC 6749 §2.3); anything unreadable is a failed authentication. It returns the error code, if any.
func presentedCredentials(r *http.Request) (presented, string) {
	f := r.PostForm
	secret, assertion, assertionType := f.Get("client_secret"), f.Get("client_assertion"), f.Get("client_assertion_type")
	if r.Header.Get("Authorization") != "" {
		id, sec, ok := r.BasicAuth()
		if !ok {
			return presented{}, "invalid_client"
		}
		if secret != "" || assertion != "" || assertionType != "" {
			return presented{}, "invalid_request"
		}
		// RFC 6749 §2.3.1: both are form-urlencoded before they are joined.
		id, err1 := url.QueryUnescape(id)
		sec, err2 := url.QueryUnescape(sec)
		if err1 != nil || err2 != nil || (f.Get("client_id") != "" && f.Get("client_id") != id) {
			return presented{}, "invalid_client"
		}
		return presented{method: "basic", id: id, secret: sec}, ""
	}
	switch {
	case assertion != "" || assertionType != "":
		if secret != "" {
			return presented{}, "invalid_request"
		}
		if assertionType != zoidc.ClientAssertionTypeJWTAssertion || assertion == "" {
			return presented{}, "invalid_client"
		}
		id := f.Get("client_id")
		if id == "" {
			id = unverifiedIssuer(assertion)
		}
		return presented{method: "jwt", id: id, assertion: assertion}, ""
	case secret != "":
		return presented{method: "post", id: f.Get("client_id"), secret: secret}, ""
	case f.Get("client_id") != "":
		return presented{method: "none", id: f.Get("client_id")}, ""
	}
	return presented{}, "invalid_client"
}

// unverifiedIssuer reads the iss of a JWT without checking it: only to name the client whose
// failure counter an assertion counts against before it is verified.
func unverifiedIssuer(jwt string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 || len(parts[1]) > 8<<10 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Issuer string `json:"iss"`
	}
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	return c.Issuer
}

// authenticateClient authenticates the client of a token, introspection or revocation request, or
// answers the error. Failures are counted per client and per IP address in the state store; over
// either limit, attempts are refused unchecked (429) until the window ends, so secrets and keys
// cannot be guessed at speed. Refusing unchecked is what makes the limit hold; the price is that a
// client under attack is locked out for the window, while other clients are not.
func (p *Provider) authenticateClient(w http.ResponseWriter, r *http.Request, ri *reqInfo, path string) bool {
	ctx := r.Context()
	c, code := presentedCredentials(r)
	if code == "invalid_request" {
		writeOAuthError(w, http.StatusBadRequest, code)
		return false
	}
	ipKey := "oidc:authfail:ip:" + hashToken(p.clientIP(r))
	clientKey := ""
	if directory.ValidID(c.id) {
		clientKey = "oidc:authfail:client:" + hashToken(ri.enterprise+"\x00"+c.id)
	}
	// An authorization_code request's code and its client's ended marker are read in the same
	// round trip, for AuthRequestByCode to use once (and only if) the client is authenticated.
	var prefetch []*state.Op
	if f := r.PostForm; clientKey != "" && f.Get("grant_type") == string(zoidc.GrantTypeCode) {
		if code := f.Get("code"); code != "" && len(code) <= 512 {
			ri.codeRead, ri.endedRead = state.Get(codeKey(ri.enterprise, code)), state.Get(clientEndedKey(ri.enterprise, c.id))
			prefetch = []*state.Op{ri.codeRead, ri.endedRead}
		}
	}
	if p.overLimits(ctx, ipKey, clientKey, prefetch...) {
		w.Header().Set("Retry-After", retryAfter(p.AuthFailureWindow.Seconds()))
		writeOAuthError(w, http.StatusTooManyRequests, "invalid_client")
		return false
	}
	known := false
	if code == "" {
		code, known = p.verifyClient(ctx, r, ri, c, path)
	}
	switch code {
	case "":
		ri.authClient, ri.authMethod = c.id, c.method
		return true
	case "temporarily_unavailable":
		writeOAuthError(w, http.StatusServiceUnavailable, code)
		return false
	}
	p.authFailed(ctx, ri.enterprise, ipKey, clientKey, known)
	writeOAuthError(w, http.StatusUnauthorized, "invalid_client")
	return false
}

// verifyClient checks the presented credentials against the client's registration. It returns ""
// when they hold, and whether the client exists.
func (p *Provider) verifyClient(ctx context.Context, r *http.Request, ri *reqInfo, c presented, path string) (code string, known bool) {
	if !directory.ValidID(c.id) {
		return "invalid_client", false
	}
	cl, err := p.st.client(ctx, c.id)
	if errors.Is(err, directory.ErrNotFound) {
		return "invalid_client", false
	}
	if err != nil {
		p.Log.Error("oidc client authentication: read client", "err", err)
		return "temporarily_unavailable", false
	}
	switch c.method {
	case "basic", "post":
		if !secretOK(cl.c, c.secret) {
			return "invalid_client", true
		}
	case "jwt":
		if cl.c.AuthMethod != "private_key_jwt" {
			return "invalid_client", true
		}
		return p.clientAssertion(ctx, r, ri, c), true
	case "none":
		// A public client only names itself, and introspection needs an authenticated client.
		if cl.c.AuthMethod != "none" || path == "/oauth/introspect" {
			return "invalid_client", true
		}
	default:
		return "invalid_client", true
	}
	return "", true
}

// secretOK reports whether secret is the client's: only clients registered for a secret have one to
// check (a public or private_key_jwt client registered without a secret must not pass with an empty
// one). The comparison takes the same time wherever the strings differ.
func secretOK(c *directory.OIDCClient, secret string) bool {
	switch c.AuthMethod {
	case "none", "private_key_jwt":
		return false
	}
	return c.Secret != "" && subtle.ConstantTimeCompare([]byte(c.Secret), []byte(secret)) == 1
}

// clientAssertion checks a private_key_jwt client assertion (RFC 7523) for what the library leaves
// out: an assertion is single use (its jti is remembered while it could be accepted; OpenID Connect
// Core §9, RFC 7523 §3), and the client_credentials grant, whose library path reads only secrets,
// learns which client it authenticated. It returns "" when the assertion holds.
func (p *Provider) clientAssertion(ctx context.Context, r *http.Request, ri *reqInfo, c presented) string {
	ctx = op.ContextWithIssuer(ctx, p.issuer(ri.enterprise))
	a, err := op.VerifyJWTAssertion(ctx, c.assertion, p.op.JWTProfileVerifier(ctx))
	if err != nil || a.Issuer != c.id || a.JWTID == "" {
		return "invalid_client"
	}
	// The library accepts an assertion until exp, and only within an hour of its iat.
	until := a.ExpiresAt.AsTime()
	if limit := a.IssuedAt.AsTime().Add(time.Hour); limit.Before(until) {
		until = limit
	}
	fresh, err := p.State.PutIfAbsent(ctx, "oidc:jti:"+ri.enterprise+":"+hashToken(a.Issuer+"\x00"+a.JWTID), []byte("1"), time.Until(until)+time.Minute)
	if err != nil {
		p.Log.Error("oidc client assertion: remember jti", "err", err)
		return "temporarily_unavailable"
	}
	if !fresh {
		return "invalid_client"
	}
	ri.assertedClient = a.Issuer
	r.Form.Set("client_id", a.Issuer)
	r.PostForm.Set("client_id", a.Issuer)
	return ""
}

// overLimits reports whether the IP address's or the client's failure counter (clientKey "": none)
// has reached its limit; both are read in one round trip, with the reads of also. A store that
// cannot be read does not lock clients out: the requests that follow need the store and fail on
// their own.
func (p *Provider) overLimits(ctx context.Context, ipKey, clientKey string, also ...*state.Op) bool {
	ops := []*state.Op{state.Get(ipKey)}
	limits := []int{p.IPAuthFailures}
	if clientKey != "" {
		ops = append(ops, state.Get(clientKey))
		limits = append(limits, p.ClientAuthFailures)
	}
	if err := state.Batch(ctx, p.State, append(ops, also...)...); err != nil {
		p.Log.Warn("oidc client authentication: read failure counters", "err", err)
		for _, op := range also {
			op.Err = err
		}
		return false
	}
	for i, op := range ops {
		if op.Err != nil {
			if !errors.Is(op.Err, state.ErrNotFound) {
				p.Log.Warn("oidc client authentication: read failure counter", "err", op.Err)
			}
			continue
		}
		if n, err := strconv.ParseInt(string(op.Val), 10, 64); err == nil && n >= int64(limits[i]) {
			return true
		}
	}
	return false
}

// authFailed counts a failed client authentication against the IP address and, when the client
// exists, against the client (unknown client IDs would only fill the store).
func (p *Provider) authFailed(ctx context.Context, ent, ipKey, clientKey string, known bool) {
	if _, err := p.State.Incr(ctx, ipKey, p.AuthFailureWindow); err != nil {
		p.Log.Warn("oidc client authentication: count failure", "err", err)
	}
	if !known || clientKey == "" {
		return
	}
	n, err := p.State.Incr(ctx, clientKey, p.AuthFailureWindow)
	if err != nil {
		p.Log.Warn("oidc client authentication: count failure", "err", err)
	}
	if n == int64(p.ClientAuthFailures) {
		p.Log.Warn("oidc client authentication throttled after repeated failures", "enterprise", ent, "window", p.AuthFailureWindow)
	}
}

// clientIP is the caller's address as the gateway determines it (trusted proxies included).
func (p *Provider) clientIP(r *http.Request) string {
	if p.ClientIP != nil {
		return p.ClientIP(r)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
