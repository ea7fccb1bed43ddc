// Package adminapi is qiao's admin REST API under /api/v1: the administrator workflows of the
// identity sources (and, as they land, the rest of issue 17) over JSON, authorised per enterprise.
//
// The handlers are github.com/danielgtaylor/huma/v2 operations on a net/http ServeMux: their Go
// types generate the OpenAPI 3.1 document served at /api/v1/openapi.json and validate every
// request against it (unknown fields, wrong types and out-of-range values are refused with a
// field path before a handler runs); errors are RFC 9457 problem details.
//
// Who calls: a person of an enterprise's directory with their normal SSO session cookie (unsafe
// methods need the X-Qiao-CSRF header and a same-origin Origin), or a service client of qiao's
// own OpenID Provider with a client_credentials access token carrying an admin scope. What they
// may do: the role an owner or config.yaml granted them in that enterprise (owner, admin,
// auditor), or everything as a platform operator. An enterprise the caller holds no role in is
// answered 404, exactly as one that does not exist.
package adminapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/qiao-gateway/qiao/access"
	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/dirsync"
	"github.com/qiao-gateway/qiao/directory/provision"
	idpoidc "github.com/qiao-gateway/qiao/idp/oidc"
	"github.com/qiao-gateway/qiao/internal/httpx"
	"github.com/qiao-gateway/qiao/internal/state"
	"github.com/qiao-gateway/qiao/keys"
	"github.com/qiao-gateway/qiao/pages"
	"github.com/qiao-gateway/qiao/session"
)

// Prefix is where the API is mounted.
const Prefix = "/api/v1"

// The OAuth scopes that make a service client's token an administrator of its enterprise.
const (
	ScopeAdmin     = "qiao:admin"      // the admin role
	ScopeAdminRead = "qiao:admin.read" // the auditor role
)

// Audience is the admin API's identifier in an access token's aud: a service client's token
// granting an admin scope carries it, and the API refuses tokens that do not.
func Audience(externalURL string) string { return strings.TrimRight(externalURL, "/") + Prefix }

// ScopeAudiences tells the OpenID Provider which audience the admin scopes are for.
func ScopeAudiences(externalURL string) map[string]string {
	return map[string]string{ScopeAdmin: Audience(externalURL), ScopeAdminRead: Audience(externalURL)}
}

// CSRFHeader must accompany every unsafe request authenticated by the session cookie: a page of
// another origin cannot send it without a CORS preflight, which the API never grants.
const CSRFHeader = "X-Qiao-CSRF"

// MaxBody is the largest request body accepted (413 above it).
const MaxBody = 64 << 10

// TokenVerifier checks an access token of qiao's OpenID Provider (*idpoidc.Provider).
type TokenVerifier interface {
	VerifyAccessToken(ctx context.Context, token string) (*idpoidc.AccessTokenInfo, error)
}

// API is the admin API. Fill the fields, call Init once, then serve Handler at Prefix.
type API struct {
	Store    directory.Store
	State    state.Store
	Sessions *session.Store
	Tokens   TokenVerifier
	Sync     *dirsync.Engine
	// Keys are the gateway's signing keys (listed and rotated through …/keys).
	Keys *keys.Manager
	// Access ends a person's sessions and refresh tokens (end-sessions, disable).
	Access *access.Service
	// Provision pushes the directory into WeCom (…/provisioning, provision.go).
	Provision *provision.Service
	// AccessNotify wakes the access-job worker after a change that queued a job (close, delete).
	AccessNotify chan<- struct{}
	ExternalURL  string
	// ConfigFile is what a refusal to change a file-managed object names.
	ConfigFile string
	ClientIP   func(*http.Request) string
	// CheckCallbackDomain says why a source's logins cannot work (the broker's check).
	CheckCallbackDomain func(*directory.IdentitySource) error
	Log                 *slog.Logger
	Now                 func() time.Time
	// SAML fetches service providers' metadata URLs (status and refresh).
	SAML SPMetadata
	// ClientChanged tells the OpenID Provider an OIDC client was changed (forget its cached copy).
	ClientChanged func(ent, id string)
	// Pages renders the operator setup link for a browser (nil: JSON only).
	Pages *pages.Renderer
	// AuthFailures failed authentications (bad bearer tokens, bad setup links) per client IP in
	// AuthFailureWindow make the API answer that IP 429 until the window ends.
	AuthFailures      int
	AuthFailureWindow time.Duration

	huma    huma.API
	mux     *http.ServeMux
	handler http.Handler
	bg      sync.WaitGroup
}

func (a *API) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Init builds the operations. Call it once.
func (a *API) Init() {
	if a.Log == nil {
		a.Log = slog.Default()
	}
	if a.ConfigFile == "" {
		a.ConfigFile = "config.yaml"
	}
	if a.AuthFailures == 0 {
		a.AuthFailures = 30
	}
	if a.AuthFailureWindow == 0 {
		a.AuthFailureWindow = 5 * time.Minute
	}
	if a.ClientIP == nil {
		a.ClientIP = httpx.ClientIP(nil)
	}
	a.ExternalURL = strings.TrimRight(a.ExternalURL, "/")
	a.mux = http.NewServeMux()
	a.huma = humago.NewWithPrefix(a.mux, Prefix, Config(a.ExternalURL))
	a.huma.UseMiddleware(func(ctx huma.Context, next func(huma.Context)) {
		ctx.SetHeader("Cache-Control", "no-store")
		next(ctx)
	})
	a.registerMe()
	a.registerAdmins()
	a.registerSources()
	a.registerSync()
	a.registerPeople()
	a.registerConnectivity()
	a.registerApps()
	a.registerSPMetadata()
	a.registerKeys()
	a.registerAudit()
	a.registerEnterprises()
	a.registerProvisioning()
	a.registerOverview()
	a.mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	a.handler = http.HandlerFunc(a.serve)
}

// Config is the huma configuration of the API: OpenAPI 3.1 at /api/v1/openapi.json, no docs UI,
// no $schema links in bodies, unknown query parameters refused, secrets never echoed in errors.
func Config(externalURL string) huma.Config {
	c := huma.DefaultConfig("qiao admin API", "1")
	c.CreateHooks = nil // no $schema property or Link header in responses
	c.DocsPath = ""
	c.SchemasPath = ""
	c.RejectUnknownQueryParameters = true
	c.Info.Description = "The administrator workflows of qiao. Authenticate with the SSO session cookie (unsafe methods need the " +
		CSRFHeader + ": 1 header) or a service client's access token (client_credentials, scope " + ScopeAdmin + " or " + ScopeAdminRead + ")."
	c.Servers = []*huma.Server{{URL: strings.TrimRight(externalURL, "/") + Prefix}}
	c.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"session": {Type: "apiKey", In: "cookie", Name: "qiao_sso", Description: "the SSO session of a person who logged on at /login"},
		"bearer":  {Type: "http", Scheme: "bearer", Description: "an access token of a service client of the enterprise's OpenID Provider, scope " + ScopeAdmin + " or " + ScopeAdminRead},
	}
	c.Security = []map[string][]string{{"session": {}}, {"bearer": {}}}
	c.Transformers = append(c.Transformers, scrubErrorValues)
	return c
}

// scrubErrorValues drops the echoed value of an error detail about a secret, or that is an object
// or array (an unknown property's error echoes the whole object, secrets and passwords with it): a
// validation error must not return what was sent as a secret.
func scrubErrorValues(_ huma.Context, _ string, v any) (any, error) {
	if em, ok := v.(*huma.ErrorModel); ok {
		for _, d := range em.Errors {
			if d == nil {
				continue
			}
			switch d.Value.(type) {
			case map[string]any, []any:
				d.Value = nil
			}
			if secretLocation(d.Location) {
				d.Value = nil
			}
		}
	}
	return v, nil
}

func secretLocation(loc string) bool {
	l := strings.ToLower(loc)
	for _, s := range []string{"secret", "token", "aes", "key", "proxies", "password"} {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// OpenAPI is the generated document.
func (a *API) OpenAPI() *huma.OpenAPI { return a.huma.OpenAPI() }

// Handler serves the API; mount it at Prefix+"/".
func (a *API) Handler() http.Handler { return a.handler }

// Wait blocks until background sync tasks started through the API are done (tests use it).
func (a *API) Wait() { a.bg.Wait() }

// ---- callers

// principal is who a request comes from.
type principal struct {
	kind       string // "user" or "client"
	enterprise string // the enterprise whose directory (or OpenID Provider) vouches for them
	name       string // username or client ID
	userID     string
	operator   bool
	// scopeRole is a service client's role in its enterprise, from its token's scopes ("" when it
	// has no admin scope).
	scopeRole  directory.AdminRole
	viaSession bool
	ip, ua     string
}

func (p *principal) actor() string { return p.kind + ":" + p.name + "@" + p.enterprise }

type principalKey struct{}

func principalOf(ctx context.Context) *principal {
	p, _ := ctx.Value(principalKey{}).(*principal)
	return p
}

// public are the paths anyone may read.
func public(r *http.Request) bool {
	switch r.URL.Path {
	case Prefix + "/openapi.json", Prefix + "/openapi.yaml", Prefix + "/openapi-3.0.json", Prefix + "/openapi-3.0.yaml", Prefix + "/operator-setup":
		return true
	}
	return false
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func failKey(ip string) string { return "adminapi:authfail:" + ip }

// serve authenticates the caller, then hands the request to the operations.
func (a *API) serve(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ip := a.ClientIP(r)
	if b, err := a.State.Get(ctx, failKey(ip)); err == nil {
		if n, _ := strconv.Atoi(string(b)); n >= a.AuthFailures {
			w.Header().Set("Retry-After", strconv.Itoa(int(a.AuthFailureWindow.Seconds())))
			writeProblem(w, r, http.StatusTooManyRequests, "too many failed authentications from this address; try again later")
			return
		}
	}
	p, status, msg := a.authenticate(r, ip)
	switch {
	case status == http.StatusForbidden && public(r):
		// A token for something else reads the public documents like anyone.
	case status != 0:
		switch status {
		case http.StatusUnauthorized:
			a.failed(ctx, ip)
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		case http.StatusForbidden:
			w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="`+ScopeAdmin+" "+ScopeAdminRead+`"`)
		}
		writeProblem(w, r, status, msg)
		return
	}
	if p == nil && !public(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="qiao admin API"`)
		writeProblem(w, r, http.StatusUnauthorized, "log on (the SSO session cookie) or send a service client's access token (Authorization: Bearer)")
		return
	}
	if r.URL.Path == Prefix+"/operator-setup" && r.Method == http.MethodGet && a.Pages != nil && pages.WantsPage(r) {
		a.setupPage(w, r, p)
		return
	}
	if p != nil && p.viaSession && !safeMethod(r.Method) {
		if msg := a.csrf(r); msg != "" {
			writeProblem(w, r, http.StatusForbidden, msg)
			return
		}
	}
	if p != nil {
		ctx = context.WithValue(ctx, principalKey{}, p)
	}
	a.mux.ServeHTTP(w, r.WithContext(ctx))
}

// failed counts a failed authentication against the caller's IP.
func (a *API) failed(ctx context.Context, ip string) {
	if _, err := a.State.Incr(context.WithoutCancel(ctx), failKey(ip), a.AuthFailureWindow); err != nil {
		a.Log.Warn("admin API: count a failed authentication", "err", err)
	}
}

// csrf checks an unsafe request a session cookie authenticates: the custom header (which a
// cross-origin page cannot send without a preflight) and, when the browser says, the origin.
func (a *API) csrf(r *http.Request) string {
	if r.Header.Get(CSRFHeader) != "1" {
		return "a request authenticated by the session cookie must carry the header " + CSRFHeader + ": 1"
	}
	if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, a.ExternalURL) {
		return "cross-origin request refused (Origin " + o + ")"
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return "cross-site request refused"
	}
	return ""
}

func sameOrigin(origin, external string) bool {
	o, err1 := url.Parse(origin)
	e, err2 := url.Parse(external)
	return err1 == nil && err2 == nil && strings.EqualFold(o.Scheme, e.Scheme) && strings.EqualFold(o.Host, e.Host)
}

// authenticate finds the caller: a bearer token (which wins over a cookie) or a live session of
// an active person. A bad token is (nil, 401, why); no credentials at all is (nil, 0, "").
func (a *API) authenticate(r *http.Request, ip string) (*principal, int, string) {
	ctx := r.Context()
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return nil, http.StatusUnauthorized, "the Authorization header must be Bearer <access token>"
		}
		info, err := a.Tokens.VerifyAccessToken(ctx, strings.TrimSpace(tok))
		if err != nil {
			return nil, http.StatusUnauthorized, "the access token is invalid, expired or revoked"
		}
		if info.User {
			return nil, http.StatusUnauthorized, "a person's access token does not reach the admin API: use a service client's (client_credentials), or the session"
		}
		if aud := Audience(a.ExternalURL); !slices.Contains(info.Audience, aud) {
			// Genuine, but minted for something else: not a failed authentication (RFC 6750 §3.1).
			return nil, http.StatusForbidden, fmt.Sprintf("this access token is not for the admin API (its audience lacks %s): request it by client_credentials with scope %s or %s", aud, ScopeAdmin, ScopeAdminRead)
		}
		c, err := a.Store.GetClient(ctx, info.Enterprise, info.Client)
		if err != nil || c.Disabled || c.Type != directory.ClientService {
			return nil, http.StatusUnauthorized, "the access token's client is not a service client of its enterprise"
		}
		p := &principal{kind: "client", enterprise: info.Enterprise, name: info.Client, ip: ip, ua: r.UserAgent()}
		// The scope must be in the token and still granted to the client.
		has := func(s string) bool { return slices.Contains(info.Scopes, s) && slices.Contains(c.Scopes, s) }
		switch {
		case has(ScopeAdmin):
			p.scopeRole = directory.RoleAdmin
		case has(ScopeAdminRead):
			p.scopeRole = directory.RoleAuditor
		}
		return p, 0, ""
	}
	sess, err := a.Sessions.Load(r)
	if err != nil {
		a.Log.Warn("admin API: load the session", "err", err)
		return nil, 0, ""
	}
	if sess == nil {
		return nil, 0, ""
	}
	u, err := directory.ActiveThrough(ctx, a.Store, sess.Enterprise, sess.User, sess.Source)
	if err != nil {
		return nil, 0, "" // the session no longer grants anything
	}
	p := &principal{kind: "user", enterprise: sess.Enterprise, name: u.Username, userID: u.ID, viaSession: true, ip: ip, ua: r.UserAgent()}
	if _, err := a.Store.GetOperator(ctx, sess.Enterprise, u.Username); err == nil {
		p.operator = true
	}
	return p, 0, ""
}

// roleIn is the caller's role in an enterprise; member says whether the enterprise is theirs
// (so that refusing them is 403, not 404).
func (a *API) roleIn(ctx context.Context, p *principal, ent string) (role directory.AdminRole, member bool, err error) {
	if p.operator {
		return directory.RoleOwner, true, nil
	}
	if p.enterprise != ent {
		return "", false, nil
	}
	if p.kind == "client" {
		return p.scopeRole, true, nil
	}
	g, err := a.Store.GetAdminGrant(ctx, ent, p.name)
	if errors.Is(err, directory.ErrNotFound) {
		return "", true, nil
	}
	if err != nil {
		return "", true, err
	}
	return g.Role, true, nil
}

// errNoEnterprise is the one answer for an enterprise that does not exist and one the caller may
// not see.
func errNoEnterprise(ent string) error {
	return huma.Error404NotFound("no enterprise " + strconv.Quote(ent))
}

// authorize returns the caller if they hold at least the role need in ent.
func (a *API) authorize(ctx context.Context, ent string, need directory.AdminRole) (*principal, error) {
	p := principalOf(ctx)
	if p == nil {
		return nil, huma.Error401Unauthorized("log on first")
	}
	if !directory.ValidID(ent) {
		return nil, errNoEnterprise(ent)
	}
	role, member, err := a.roleIn(ctx, p, ent)
	if err != nil {
		return nil, storeError(err)
	}
	if !member {
		return nil, errNoEnterprise(ent)
	}
	if _, err := a.Store.GetEnterprise(ctx, ent); err != nil {
		if errors.Is(err, directory.ErrNotFound) {
			return nil, errNoEnterprise(ent)
		}
		return nil, storeError(err)
	}
	if role.Rank() < need.Rank() {
		if role == "" {
			if p.kind == "client" {
				return nil, huma.Error403Forbidden("the token has no admin scope (" + ScopeAdmin + " or " + ScopeAdminRead + ")")
			}
			return nil, huma.Error403Forbidden("you hold no administrator role in enterprise " + ent)
		}
		return nil, huma.Error403Forbidden(fmt.Sprintf("this needs the %s role; you are %s in enterprise %s", need, role, ent))
	}
	return p, nil
}

// storeError is a failure of the durable store: 503, never its text.
func storeError(err error) error {
	slog.Default().Error("admin API: store", "err", err)
	return huma.Error503ServiceUnavailable("the directory cannot be read or written right now")
}

// ---- audit

// redacted is a value safe for the audit log: the API's views, whose secrets are masked.
func (a *API) audit(ctx context.Context, tx directory.Store, p *principal, ent, kind, sourceID, object string, before, after any, extra map[string]any) error {
	b, err := auditDetail(object, before, after, extra)
	if err != nil {
		return err
	}
	ev := &directory.AuditEvent{EnterpriseID: ent, Kind: kind, Actor: p.actor(), SourceID: sourceID, IP: p.ip, UserAgent: p.ua,
		Outcome: "ok", RequestID: httpx.RequestID(ctx), Detail: b}
	if p.kind == "user" && p.enterprise == ent {
		ev.UserID = p.userID
	}
	return tx.AddAuditEvent(ctx, ev)
}

// auditDetail is an audit event's detail: the object, its views before and after (either may be
// nil), and any extra facts.
func auditDetail(object string, before, after any, extra map[string]any) ([]byte, error) {
	detail := map[string]any{"object": object}
	if before != nil {
		detail["before"] = before
	}
	if after != nil {
		detail["after"] = after
	}
	for k, v := range extra {
		detail[k] = v
	}
	return json.Marshal(detail)
}

// ---- problems written outside huma (authentication, unknown paths)

func writeProblem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(&huma.ErrorModel{Title: http.StatusText(status), Status: status, Detail: detail, Instance: r.URL.Path})
}

// ---- helpers

func hashToken(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// lock serialises changes to one object across replicas (the state store's lease), so that an
// If-Match check and the write it guards cannot interleave with another change.
func (a *API) lock(ctx context.Context, key string) (func(), error) {
	l, err := a.State.Lock(ctx, "adminapi:lock:"+key, 30*time.Second)
	if errors.Is(err, state.ErrLocked) {
		return nil, huma.Error409Conflict("another change to " + key + " is under way; retry")
	}
	if err != nil {
		return nil, huma.Error503ServiceUnavailable("the state store does not answer")
	}
	return func() { _ = l.Release(context.WithoutCancel(ctx)) }, nil
}

// errs lists the error statuses every authenticated operation may answer.
func errs(more ...int) []int {
	return append([]int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusTooManyRequests, http.StatusServiceUnavailable}, more...)
}
