// Package oidc is qiao's OpenID Provider: github.com/zitadel/oidc's op package over the directory
// (clients, users, refresh tokens) and the state store (auth requests, codes, access tokens), with
// the login delegated to the broker's SSO session. Every enterprise is its own issuer,
// {external_url}/e/{enterprise}.
package oidc

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/cors"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/httpx"
	"github.com/qiao-gateway/qiao/internal/state"
	"github.com/qiao-gateway/qiao/keys"
	"github.com/qiao-gateway/qiao/pages"
	"github.com/qiao-gateway/qiao/session"
)

// Provider serves every enterprise's OpenID Provider under /e/{enterprise}/.
type Provider struct {
	Store       directory.Store
	State       state.Store
	Keys        *keys.Manager
	Sessions    *session.Store
	Pages       *pages.Renderer // error and confirmation pages
	ExternalURL string
	// CryptoKey encrypts opaque access tokens and codes; replicas must share it (derive it from the
	// master key).
	CryptoKey [32]byte
	Log       *slog.Logger
	// Lifetimes; zero takes the default.
	AccessTTL      time.Duration // 1h
	RefreshTTL     time.Duration // 30 days, renewed at every rotation
	AuthRequestTTL time.Duration // 30 min: long enough to find the phone and scan
	CodeTTL        time.Duration // 2 min
	// HTTPClient posts back-channel logout tokens.
	HTTPClient *http.Client
	Now        func() time.Time
	// Client authentication throttle: after this many failures in a window, per client or per IP
	// address, attempts are refused (429) until the window ends. Zero takes the default.
	ClientAuthFailures int           // DefaultClientAuthFailures
	IPAuthFailures     int           // DefaultIPAuthFailures
	AuthFailureWindow  time.Duration // DefaultAuthFailureWindow
	// ClientIP returns the caller's address (the gateway's, which knows trusted proxies); nil takes
	// the connection's.
	ClientIP func(*http.Request) string
	// ScopeAudiences names, per scope, a resource server inside qiao that a client_credentials
	// token granting the scope is for: its identifier joins the token's audience (the admin API's
	// scopes map to the admin API), so that resource can refuse tokens minted for anything else.
	ScopeAudiences map[string]string

	op                    *op.Provider
	st                    *storage
	clientCache           *ttlCache[*directory.OIDCClient]
	entCache              *ttlCache[*directory.Enterprise]
	originCache           *ttlCache[map[string]bool]
	defaultLogoutRedirect string
	bg                    sync.WaitGroup
	deviceTimes           atomic.Pointer[DeviceTiming] // SetDeviceTiming
}

// Init builds the op provider. Call it once before serving.
func (p *Provider) Init() error {
	if p.AccessTTL == 0 {
		p.AccessTTL = time.Hour
	}
	if p.RefreshTTL == 0 {
		p.RefreshTTL = 30 * 24 * time.Hour
	}
	if p.AuthRequestTTL == 0 {
		p.AuthRequestTTL = 30 * time.Minute
	}
	if p.CodeTTL == 0 {
		p.CodeTTL = 2 * time.Minute
	}
	if p.ClientAuthFailures == 0 {
		p.ClientAuthFailures = DefaultClientAuthFailures
	}
	if p.IPAuthFailures == 0 {
		p.IPAuthFailures = DefaultIPAuthFailures
	}
	if p.AuthFailureWindow == 0 {
		p.AuthFailureWindow = DefaultAuthFailureWindow
	}
	if p.HTTPClient == nil {
		p.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	if p.Log == nil {
		p.Log = slog.Default()
	}
	// Admin changes to clients reach every replica within this long.
	p.clientCache = newTTLCache[*directory.OIDCClient](10 * time.Second)
	p.entCache = newTTLCache[*directory.Enterprise](10 * time.Second)
	p.originCache = newTTLCache[map[string]bool](10 * time.Second)
	p.st = &storage{p: p}
	p.defaultLogoutRedirect = "/logged-out"
	cfg := &op.Config{
		CryptoKey:                         p.CryptoKey,
		DefaultLogoutRedirectURI:          p.defaultLogoutRedirect,
		CodeMethodS256:                    true,
		AuthMethodPost:                    true,
		AuthMethodPrivateKeyJWT:           true,
		GrantTypeRefreshToken:             true,
		SupportedUILocales:                []language.Tag{language.SimplifiedChinese, language.English},
		SupportedScopes:                   []string{zoidc.ScopeOpenID, zoidc.ScopeProfile, zoidc.ScopeEmail, zoidc.ScopePhone, zoidc.ScopeOfflineAccess, ScopeGroups},
		SupportedClaims:                   supportedClaims,
		BackChannelLogoutSupported:        true,
		BackChannelLogoutSessionSupported: true,
	}
	opts := []op.Option{op.WithCORSOptions(&cors.Options{
		AllowOriginVaryRequestFunc: p.corsAllowed,
		AllowedMethods:             []string{http.MethodGet, http.MethodHead, http.MethodPost},
		AllowedHeaders:             []string{"Authorization", "Content-Type", "Accept", "Accept-Language"},
		ExposedHeaders:             []string{"Location", "Content-Length"},
	})}
	// The library's verifiers accept RS256, ES256 and PS256 unless told: qiao's own access tokens
	// and ID token hints may be signed with any algorithm a client is given.
	opts = append(opts, op.WithAccessTokenVerifierOpts(op.WithSupportedAccessTokenSigningAlgorithms(keys.TokenAlgs...)),
		op.WithIDTokenHintVerifierOpts(op.WithSupportedIDTokenHintSigningAlgorithms(keys.TokenAlgs...)))
	if !strings.HasPrefix(p.ExternalURL, "https://") {
		opts = append(opts, op.WithAllowInsecure())
	}
	issuer := func(bool) (op.IssuerFromRequest, error) {
		return func(r *http.Request) string { return p.issuer(info(r.Context()).enterprise) }, nil
	}
	prov, err := op.NewProvider(cfg, p.st, issuer, opts...)
	if err != nil {
		return fmt.Errorf("oidc provider: %w", err)
	}
	p.op = prov
	return nil
}

// formPostHandlerHash is the CSP hash of zitadel/oidc's form_post onload handler,
// "javascript:document.forms[0].submit()"; TestOIDCFormPostInChromium fails if it changes.
const formPostHandlerHash = "sha256-FRuPMoCm2v334i+3oP3jLBT4RnmwV1pycDQaxVXK4MY="

var supportedClaims = []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "at_hash", "c_hash", "sid",
	"name", "preferred_username", "updated_at", "email", "email_verified", "phone_number",
	ClaimEnterprise, ClaimDepartments, ClaimGroups, ClaimSource}

func (p *Provider) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Provider) issuer(ent string) string {
	return strings.TrimRight(p.ExternalURL, "/") + "/e/" + ent
}

// Issuer is the issuer URL of an enterprise.
func (p *Provider) Issuer(ent string) string { return p.issuer(ent) }

// Wait blocks until background deliveries (back-channel logout) are done; tests use it.
func (p *Provider) Wait() { p.bg.Wait() }

// Routes mounts the provider. More specific routes of other rooms under /e/{enterprise}/ (keys,
// sources, saml) take precedence over this one.
func (p *Provider) Routes(m *http.ServeMux) {
	m.Handle("/e/{enterprise}/", p)
}

func (p *Provider) corsAllowed(r *http.Request, origin string) (bool, []string) {
	ent := info(r.Context()).enterprise
	if ent == "" {
		return false, nil
	}
	allowed, err := p.originCache.get(r.Context(), ent, func(ctx context.Context) (map[string]bool, error) {
		cs, err := p.Store.ListClients(ctx, ent)
		if err != nil {
			return nil, err
		}
		m := map[string]bool{}
		for _, c := range cs {
			if c.Disabled {
				continue
			}
			for _, o := range c.AllowedOrigins {
				m[o] = true
			}
		}
		return m, nil
	})
	return err == nil && allowed[origin], nil
}

// ServeHTTP checks the enterprise, puts it in the context and hands the request to the op router
// with the enterprise prefix stripped, after the checks the library leaves to us.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ent := r.PathValue("enterprise")
	// A browser's navigation gets a page (the issuer URL of a mistyped enterprise, say); API
	// clients keep the JSON error.
	if !directory.ValidID(ent) {
		p.Pages.NotFound(w, r)
		return
	}
	if _, err := p.entCache.get(r.Context(), ent, func(ctx context.Context) (*directory.Enterprise, error) {
		return p.Store.GetEnterprise(ctx, ent)
	}); err != nil {
		if errors.Is(err, directory.ErrNotFound) {
			p.Pages.UnknownEnterprise(w, r, ent)
			return
		}
		p.Pages.StoreUnavailable(w, r)
		return
	}
	ri := &reqInfo{enterprise: ent, w: w}
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, ri))
	ri.r = r
	path := strings.TrimPrefix(r.URL.Path, "/e/"+ent)
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		// Too large, or not form encoding.
		p.fail(w, r, path, http.StatusBadRequest, "invalid_request")
		return
	}
	switch path {
	case "/authorize":
		if !p.checkAuthorize(w, r) {
			return
		}
	case "/device_authorization":
		// RFC 8628 is qiao's own (device.go), not the library's.
		if p.clientEndpoint(w, r, ri, path) {
			p.deviceAuthorization(w, r, ri)
		}
		return
	case "/device", "/device/confirm":
		p.devicePage(w, r, path)
		return
	default:
		if repeated(r.Form) {
			p.fail(w, r, path, http.StatusBadRequest, "invalid_request")
			return
		}
	}
	switch path {
	case "/.well-known/openid-configuration":
		p.discovery(w, r)
		return
	case "/authorize/continue":
		p.continueLogin(w, r)
		return
	case "/authorize/callback":
		// form_post's page (the library's template) submits itself from an inline onload handler:
		// allow exactly that handler, by its hash, on this response.
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-hashes' '"+formPostHandlerHash+"'; frame-ancestors 'none'; base-uri 'none'")
	case "/logged-out":
		p.Pages.Message(w, r, http.StatusOK, pages.Text2{"已退出登录", "Signed out"},
			pages.Text2{"你已退出登录。", "You have signed out."}, nil, "/login/e/"+ent, pages.Text2{"重新登录", "Sign in again"})
		return
	case "/oauth/token", "/oauth/introspect", "/revoke":
		// CORS preflights are the library's: its CORS handler answers them without calling the
		// endpoint. Any other OPTIONS request would reach the endpoint itself, so it is checked (and
		// refused) like any other method.
		preflight := r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
		if !preflight && !p.clientEndpoint(w, r, ri, path) {
			return
		}
		if !preflight && path == "/oauth/token" && r.PostForm.Get("grant_type") == GrantDeviceCode {
			p.deviceToken(w, r, ri)
			return
		}
	case "/end_session":
		if !p.checkEndSession(w, r, ent) {
			return
		}
		if r.Form.Get("id_token_hint") == "" && !p.confirmLogout(w, r, ri) {
			return
		}
	}
	lw := &libWriter{w: w}
	http.StripPrefix("/e/"+ent, p.op).ServeHTTP(lw, r)
	lw.finish(p, r, path)
}

// discovery is the library's document with what qiao really offers: the code flow only, S256 only,
// the device grant (RFC 8628), and no JWT bearer or token exchange grants.
func (p *Provider) discovery(w http.ResponseWriter, r *http.Request) {
	ent := info(r.Context()).enterprise
	ctx := op.ContextWithIssuer(r.Context(), p.issuer(ent))
	d := op.CreateDiscoveryConfig(ctx, p.op, p.st)
	d.ResponseTypesSupported = []string{string(zoidc.ResponseTypeCode)}
	d.ResponseModesSupported = []string{string(zoidc.ResponseModeQuery), string(zoidc.ResponseModeFormPost)}
	d.GrantTypesSupported = []zoidc.GrantType{zoidc.GrantTypeCode, zoidc.GrantTypeRefreshToken, zoidc.GrantTypeClientCredentials, zoidc.GrantTypeDeviceCode}
	d.CodeChallengeMethodsSupported = []zoidc.CodeChallengeMethod{zoidc.CodeChallengeMethodS256}
	d.DeviceAuthorizationEndpoint = p.issuer(ent) + "/device_authorization"
	d.RequestParameterSupported = false
	d.ClaimsParameterSupported = false
	d.IDTokenSigningAlgValuesSupported = []string{"RS256", "ES256", "EdDSA"}
	d.JwksURI = p.issuer(ent) + "/keys"
	w.Header().Set("Cache-Control", "public, max-age=300")
	httpx.WriteJSON(w, http.StatusOK, d)
}

// continueLogin is every client's login URL: it finishes the authorization request from the SSO
// session, or sends the browser to the broker and comes back here afterwards.
func (p *Provider) continueLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ent := info(ctx).enterprise
	id := r.URL.Query().Get("id")
	ar, err := p.st.loadAuthRequest(ctx, id)
	if err != nil {
		p.Pages.RequestExpired(w, r)
		return
	}
	// The client may have been disabled or deleted while the person was logging in.
	if _, err := p.st.client(ctx, ar.ClientID); err != nil {
		if errors.Is(err, directory.ErrNotFound) {
			p.errorPage(w, r, http.StatusBadRequest, "invalid_request")
		} else {
			p.Log.Error("oidc authorize: read client", "err", err)
			p.errorPage(w, r, http.StatusServiceUnavailable, "temporarily_unavailable")
		}
		return
	}
	callback := op.AuthCallbackURL(p.op)(op.ContextWithIssuer(ctx, p.issuer(ent)), ar.ID)
	if ar.IsDone {
		http.Redirect(w, r, callback, http.StatusFound)
		return
	}
	sess, _ := p.Sessions.Load(r)
	if why := p.needsLogin(ctx, ar, sess); why != "" {
		if ar.hasPrompt(zoidc.PromptNone) {
			// The reason is for the person's page, not the client: it gets the code's fixed text.
			op.AuthRequestError(w, r, ar, zoidc.ErrLoginRequired().WithDescription("%s", errorDescriptions["login_required"]), p.op)
			return
		}
		ar.Rounds++
		if ar.Rounds > 3 {
			p.Pages.Message(w, r, http.StatusBadRequest, pages.Text2{"无法完成登录", "Could not finish signing in"},
				pages.Text2{"登录没有完成（" + why + "）。请回到应用重新登录。", "The sign-in did not complete (" + why + "). Go back to the app and sign in again."}, nil, "", pages.Text2{})
			return
		}
		if err := p.st.saveAuthRequest(ctx, ar, p.AuthRequestTTL); err != nil {
			p.Log.Error("save auth request", "err", err)
		}
		q := url.Values{"return": {"/e/" + ent + "/authorize/continue?id=" + url.QueryEscape(ar.ID)}}
		if ar.IDPHint != "" {
			q.Set("idp_hint", ar.IDPHint)
		}
		if len(ar.UILocales) > 0 {
			q.Set("ui_locales", strings.Join(ar.UILocales, " "))
		}
		http.Redirect(w, r, "/login/e/"+ent+"?"+q.Encode(), http.StatusFound)
		return
	}
	ar.UserID = sess.User
	ar.AuthTime = sess.LoginTime()
	if sess.AMR != "" {
		ar.AMR = []string{sess.AMR}
	}
	ar.Source = sess.Source
	ar.SID = sess.SID
	ar.IsDone = true
	if err := p.st.saveAuthRequest(ctx, ar, 2*p.CodeTTL+time.Minute); err != nil {
		p.Log.Error("save auth request", "err", err)
		http.Error(w, "the service is unavailable; try again", http.StatusServiceUnavailable)
		return
	}
	// Remember the relying party in the session, for back-channel logout when it ends.
	if sess.AddRP(ar.ClientID) {
		if err := p.Sessions.Save(w, r, sess); err != nil {
			p.Log.Warn("remember relying party in session", "err", err)
		}
	}
	http.Redirect(w, r, callback, http.StatusFound)
}

// needsLogin says why the SSO session cannot answer this request ("" when it can).
func (p *Provider) needsLogin(ctx context.Context, ar *authRequest, sess *session.Session) string {
	if sess == nil || sess.User == "" || sess.Enterprise != ar.Enterprise {
		return "no session"
	}
	uid := sess.User
	if err := p.st.activeUser(ctx, uid, sess.Source); err != nil {
		return "the account is not active"
	}
	if ar.HintSubject != "" && ar.HintSubject != uid {
		return "the session belongs to another user than id_token_hint"
	}
	authTime := sess.LoginTime()
	if maxAge, ok := ar.maxAge(); ok && p.now().Sub(authTime) > maxAge && authTime.Before(ar.CreatedAt.Truncate(time.Millisecond)) {
		// A login made after this request began satisfies max_age and prompt=login, however old
		// it is by the time the person comes back.
		return "max_age exceeded or prompt=login"
	}
	return ""
}

// confirmLogout guards end_session without an id_token_hint: anyone can send a browser there, so
// the person confirms on our page first (OpenID RP-Initiated Logout §2). It reports whether the
// request may go on to the library.
func (p *Provider) confirmLogout(w http.ResponseWriter, r *http.Request, ri *reqInfo) bool {
	c, err := r.Cookie(p.Sessions.CookieName)
	if err != nil || c.Value == "" {
		return true // no session: nothing to end; the library validates and redirects
	}
	want := p.logoutToken(c.Value)
	if r.Method == http.MethodPost && hmac.Equal([]byte(r.PostForm.Get("confirm")), []byte(want)) {
		ri.confirmed = true
		return true
	}
	hidden := map[string]string{"confirm": want}
	for _, k := range []string{"client_id", "post_logout_redirect_uri", "state", "ui_locales", "logout_hint"} {
		if v := r.Form.Get(k); v != "" {
			hidden[k] = v
		}
	}
	p.Pages.Message(w, r, http.StatusOK, pages.Text2{"退出登录", "Sign out"}, pages.Text2{"要退出登录吗？", "Do you want to sign out?"},
		&pages.MessageForm{Action: r.URL.Path, Hidden: hidden, Button: pages.Text2{"退出登录", "Sign out"}, Cancel: "/"}, "", pages.Text2{})
	return false
}

func (p *Provider) logoutToken(sessionCookie string) string {
	m := hmac.New(sha256.New, p.CryptoKey[:])
	m.Write([]byte("logout\x00" + sessionCookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
