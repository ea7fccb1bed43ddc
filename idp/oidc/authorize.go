package oidc

import (
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/qiao-gateway/qiao/directory"
)

// repeated reports whether any parameter appears more than once (RFC 6749 §3.1, §3.2: "Request and
// response parameters MUST NOT be included more than once"). Which copy a check reads and which the
// library uses may differ, so a repeated parameter is refused rather than interpreted.
func repeated(v url.Values) bool {
	for _, vs := range v {
		if len(vs) > 1 {
			return true
		}
	}
	return false
}

// checkAuthorize validates an authorization request beyond what the library does, before it sees
// the request. Until the client and its redirect URI are known to be good, errors are shown on a
// page, never sent to the redirect URI (RFC 6749 §4.1.2.1); after that they go back to the client.
// It reports whether the request may go on.
func (p *Provider) checkAuthorize(w http.ResponseWriter, r *http.Request) bool {
	f := r.Form
	if len(f["client_id"]) != 1 || len(f["redirect_uri"]) != 1 {
		p.errorPage(w, r, http.StatusBadRequest, "invalid_request")
		return false
	}
	c, err := p.st.client(r.Context(), f.Get("client_id"))
	if err != nil {
		if directory.ValidID(f.Get("client_id")) && !errors.Is(err, directory.ErrNotFound) {
			p.Log.Error("oidc authorize: read client", "err", err)
			p.errorPage(w, r, http.StatusServiceUnavailable, "temporarily_unavailable")
			return false
		}
		p.errorPageFor(w, r, http.StatusBadRequest, "invalid_request", adminUnknownClient)
		return false
	}
	uri := f.Get("redirect_uri")
	if !clientRedirectAllowed(c.c, uri) {
		p.errorPageFor(w, r, http.StatusBadRequest, "invalid_request", adminRedirectURI)
		return false
	}
	if !repeated(f) && validPrompt(f.Get("prompt")) && validMaxAge(f.Get("max_age")) &&
		(f.Get("code_challenge") == "" || validPKCEValue(f.Get("code_challenge"))) {
		return true
	}
	// A repeated state is not echoed: which one would be the client's?
	e := &redirectError{uri: uri, responseType: once(f, "response_type"), responseMode: once(f, "response_mode"), state: once(f, "state")}
	op.AuthRequestError(w, r, e, zoidc.ErrInvalidRequest().WithDescription("%s", errorDescriptions["invalid_request"]), p.op)
	return false
}

// once returns the value of a parameter that appears exactly once, else "".
func once(f url.Values, k string) string {
	if len(f[k]) != 1 {
		return ""
	}
	return f[k][0]
}

// redirectError is where an authorization error goes: the validated redirect URI.
type redirectError struct{ uri, responseType, responseMode, state string }

func (e *redirectError) GetRedirectURI() string { return e.uri }
func (e *redirectError) GetResponseType() zoidc.ResponseType {
	return zoidc.ResponseType(e.responseType)
}
func (e *redirectError) GetResponseMode() zoidc.ResponseMode {
	return zoidc.ResponseMode(e.responseMode)
}
func (e *redirectError) GetState() string { return e.state }

// validPrompt accepts what OpenID Connect Core §3.1.2.1 defines: a space-separated list of none,
// login, consent and select_account, case-sensitive, each at most once, and none only alone.
// Anything else is refused: a value the library does not recognise, it ignores, and prompt=LOGIN
// would then silently skip the login the client asked for.
func validPrompt(v string) bool {
	if v == "" {
		return true
	}
	seen := map[string]bool{}
	for _, p := range strings.Split(v, " ") {
		switch p {
		case zoidc.PromptNone, zoidc.PromptLogin, zoidc.PromptConsent, zoidc.PromptSelectAccount:
		default:
			return false
		}
		if seen[p] {
			return false
		}
		seen[p] = true
	}
	return !seen[zoidc.PromptNone] || len(seen) == 1
}

// validMaxAge accepts a non-negative decimal number of seconds that fits the library's field.
func validMaxAge(v string) bool {
	if v == "" {
		return true
	}
	if len(v) > 10 || strings.Trim(v, "0123456789") != "" {
		return false
	}
	n, err := strconv.ParseUint(v, 10, 64)
	return err == nil && n <= math.MaxInt32
}

// validPKCEValue accepts a code_challenge or code_verifier: 43 to 128 characters of the unreserved
// set (RFC 7636 §4.1, §4.2).
func validPKCEValue(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for _, c := range []byte(v) {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}

// checkEndSession refuses a post_logout_redirect_uri that is not registered for the client the
// request names (by client_id or by the id_token_hint's azp), with qiao's own matching rather than
// the library's lenient loopback rule. It reports whether the request may go on.
func (p *Provider) checkEndSession(w http.ResponseWriter, r *http.Request, ent string) bool {
	uri := r.Form.Get("post_logout_redirect_uri")
	if uri == "" {
		return true
	}
	ctx := op.ContextWithIssuer(r.Context(), p.issuer(ent))
	clientID := r.Form.Get("client_id")
	if hint := r.Form.Get("id_token_hint"); hint != "" {
		claims, err := op.VerifyIDTokenHint[*zoidc.IDTokenClaims](ctx, hint, p.op.IDTokenHintVerifier(ctx))
		if err != nil && !errors.As(err, &op.IDTokenHintExpiredError{}) || claims == nil {
			p.errorPage(w, r, http.StatusBadRequest, "invalid_request")
			return false
		}
		azp := claims.GetAuthorizedParty()
		if clientID != "" && clientID != azp {
			p.errorPage(w, r, http.StatusBadRequest, "invalid_request")
			return false
		}
		clientID = azp
	}
	if clientID == "" {
		return true // the library goes to the default page and ignores the URI
	}
	c, err := p.st.client(ctx, clientID)
	if err != nil || !clientPostLogoutAllowed(c.c, uri) {
		p.errorPage(w, r, http.StatusBadRequest, "invalid_request")
		return false
	}
	return true
}
