// Package saml is qiao's SAML 2.0 IdP: crewjam/saml's IdentityProvider for request parsing and
// validation, metadata and the response structures, with what crewjam leaves out built here —
// per-SP signing choices with RSA-SHA256, signed AuthnRequest verification (goxmldsig), request
// replay protection, NameID and attribute policies from the directory, IdP-initiated launch,
// and IdP-side single logout. Each enterprise is its own entity,
// {external_url}/e/{enterprise}/saml/metadata.
package saml

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	csaml "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/httpx"
	"github.com/qiao-gateway/qiao/internal/state"
	"github.com/qiao-gateway/qiao/keys"
	"github.com/qiao-gateway/qiao/pages"
	"github.com/qiao-gateway/qiao/session"
)

// Provider serves every enterprise's SAML IdP under /e/{enterprise}/saml/.
type Provider struct {
	Store       directory.Store
	State       state.Store
	Keys        *keys.Manager
	Sessions    *session.Store
	Pages       *pages.Renderer // error and confirmation pages
	ExternalURL string
	Log         *slog.Logger
	HTTPClient  *http.Client // fetches SP metadata by URL
	Now         func() time.Time

	sps spCache
	bg  sync.WaitGroup // back-channel logout deliveries
}

// Limits on what a request may carry.
const (
	maxEncodedRequest = 64 << 10  // base64 SAMLRequest
	maxRequestXML     = 256 << 10 // after inflating
	// maxSkew is how far an IssueInstant may be from now either way (crewjam's MaxIssueDelay).
	maxSkew         = 90 * time.Second
	assertionTTL    = 5 * time.Minute
	pendingTTL      = 30 * time.Minute // long enough to scan a QR code
	statusResponder = "urn:oasis:names:tc:SAML:2.0:status:Responder"
)

// NameID formats.
const (
	NameIDPersistent  = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
	NameIDTransient   = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
	NameIDEmail       = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
	NameIDUnspecified = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
)

func (p *Provider) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Provider) base(ent string) string {
	return strings.TrimRight(p.ExternalURL, "/") + "/e/" + ent + "/saml"
}

// EntityID is the IdP entity ID (and metadata URL) of an enterprise.
func (p *Provider) EntityID(ent string) string { return p.base(ent) + "/metadata" }

// idp is crewjam's IdentityProvider for one enterprise, on the current SAML key.
func (p *Provider) idp(ent string) (*csaml.IdentityProvider, error) {
	k, err := p.Keys.Signing(keys.SAML)
	if err != nil {
		return nil, err
	}
	mu, _ := url.Parse(p.EntityID(ent))
	su, _ := url.Parse(p.base(ent) + "/sso")
	lu, _ := url.Parse(p.base(ent) + "/slo")
	return &csaml.IdentityProvider{Signer: k.Signer, Certificate: k.Cert, MetadataURL: *mu, SSOURL: *su, LogoutURL: *lu,
		SignatureMethod: dsig.RSASHA256SignatureMethod, ServiceProviderProvider: spProvider{p, ent}, Logger: slogLogger{p.Log}}, nil
}

// Routes mounts the IdP.
func (p *Provider) Routes(m *http.ServeMux) {
	p.sps.m = map[string]*serviceProvider{}
	if p.HTTPClient == nil {
		p.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if p.Log == nil {
		p.Log = slog.Default()
	}
	m.HandleFunc("GET /e/{enterprise}/saml/metadata", p.enterprise(p.metadata))
	m.HandleFunc("GET /e/{enterprise}/saml/sso", p.enterprise(p.sso))
	m.HandleFunc("POST /e/{enterprise}/saml/sso", p.enterprise(p.sso))
	m.HandleFunc("GET /e/{enterprise}/saml/continue", p.enterprise(p.continueLogin))
	m.HandleFunc("GET /e/{enterprise}/saml/launch", p.enterprise(p.launch))
	m.HandleFunc("GET /e/{enterprise}/saml/slo", p.enterprise(p.slo))
	m.HandleFunc("POST /e/{enterprise}/saml/slo", p.enterprise(p.slo))
	m.HandleFunc("GET /e/{enterprise}/saml/slo/next", p.enterprise(p.sloNext))
}

// enterprise checks the path's enterprise exists before the handler runs.
func (p *Provider) enterprise(h func(w http.ResponseWriter, r *http.Request, ent string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ent := r.PathValue("enterprise")
		// A browser gets a page, anything else the JSON error.
		if !directory.ValidID(ent) {
			p.Pages.NotFound(w, r)
			return
		}
		if _, err := p.Store.GetEnterprise(r.Context(), ent); err != nil {
			if errors.Is(err, directory.ErrNotFound) {
				p.Pages.UnknownEnterprise(w, r, ent)
				return
			}
			p.Pages.StoreUnavailable(w, r)
			return
		}
		h(w, r, ent)
	}
}

// metadata publishes the IdP: entity ID, SSO on HTTP-Redirect and HTTP-POST, SLO, the signing
// certificates (the current one and any rotated out but still in their grace period).
func (p *Provider) metadata(w http.ResponseWriter, r *http.Request, ent string) {
	idp, err := p.idp(ent)
	if err != nil {
		httpx.WriteError(w, r, http.StatusServiceUnavailable, "no_key", "the SAML signing key is not available")
		return
	}
	md := idp.Metadata()
	d := &md.IDPSSODescriptors[0]
	d.KeyDescriptors = nil
	for _, k := range p.Keys.Published() {
		if k.Alg != keys.SAML || k.Cert == nil {
			continue
		}
		d.KeyDescriptors = append(d.KeyDescriptors, csaml.KeyDescriptor{Use: "signing", KeyInfo: csaml.KeyInfo{
			X509Data: csaml.X509Data{X509Certificates: []csaml.X509Certificate{{Data: base64.StdEncoding.EncodeToString(k.Cert.Raw)}}}}})
	}
	d.NameIDFormats = []csaml.NameIDFormat{NameIDPersistent, NameIDEmail, NameIDUnspecified, NameIDTransient}
	d.SingleLogoutServices = []csaml.Endpoint{{Binding: csaml.HTTPRedirectBinding, Location: p.base(ent) + "/slo"},
		{Binding: csaml.HTTPPostBinding, Location: p.base(ent) + "/slo"}}
	buf, err := xml.MarshalIndent(md, "", "  ")
	if err != nil {
		httpx.WriteError(w, r, http.StatusInternalServerError, "internal", "cannot encode metadata")
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(buf)
}

// pending is an SSO request waiting for the person to log in.
type pending struct {
	Enterprise string    `json:"ent"`
	SP         string    `json:"sp"`
	Request    []byte    `json:"req,omitempty"` // the AuthnRequest XML; empty for IdP-initiated
	RelayState string    `json:"relay,omitempty"`
	Received   time.Time `json:"received"`
	ForceAuthn bool      `json:"force,omitempty"`
	IsPassive  bool      `json:"passive,omitempty"`
	Rounds     int       `json:"rounds,omitempty"`
}

func newID() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return "id-" + hex.EncodeToString(b)
}

// refuse ends an SSO request on an error page: qiao never answers a bad request with an assertion.
func (p *Provider) refuse(w http.ResponseWriter, r *http.Request, status int, why string, attrs ...any) {
	p.Log.Warn("SAML request refused", append([]any{"reason", why, "request_id", httpx.RequestID(r.Context())}, attrs...)...)
	p.Pages.Message(w, r, status, pages.Text2{"无法登录应用", "Could not sign in to the app"},
		pages.Text2{"应用发来的 SAML 请求被拒绝：" + reasonZH(why) + "。", "The app's SAML request was refused: " + why + "."}, nil, "", pages.Text2{})
}

// refuseErr refuses with err's status and public words (see requestError); the whole error, which
// may quote a library, goes to the log only.
func (p *Provider) refuseErr(w http.ResponseWriter, r *http.Request, err error, attrs ...any) {
	status, why := publicError(err)
	p.refuse(w, r, status, why, append(attrs, "err", err.Error())...)
}

// sso handles SP-initiated SSO on both bindings.
func (p *Provider) sso(w http.ResponseWriter, r *http.Request, ent string) {
	m, err := readMessage(w, r)
	if err == nil && m.Field != "SAMLRequest" {
		err = badRequest("an AuthnRequest comes as SAMLRequest", nil)
	}
	if err != nil {
		p.refuseErr(w, r, err, "enterprise", ent)
		return
	}
	now := p.now()
	req, sp, err := p.checkAuthnRequest(r, ent, m.XML, m.RelayState, now)
	if err != nil {
		p.refuseErr(w, r, err, "enterprise", ent)
		return
	}
	if err := verifySignature(m, sp, sp.signsRequests()); err != nil {
		p.refuseErr(w, r, err, "sp", sp.d.EntityID)
		return
	}
	// A request ID is good once: a replayed AuthnRequest gets nothing.
	fresh, err := p.State.PutIfAbsent(r.Context(), "saml:req:"+ent+":"+hashKey(sp.d.EntityID, req.Request.ID), []byte("1"), 2*maxSkew+time.Minute)
	if err != nil {
		p.refuse(w, r, http.StatusServiceUnavailable, "the state store is unavailable")
		return
	}
	if !fresh {
		p.refuse(w, r, http.StatusBadRequest, "this AuthnRequest was already used", "sp", sp.d.EntityID)
		return
	}
	pd := &pending{Enterprise: ent, SP: sp.d.EntityID, Request: m.XML, RelayState: m.RelayState, Received: now,
		ForceAuthn: req.Request.ForceAuthn != nil && *req.Request.ForceAuthn, IsPassive: req.Request.IsPassive != nil && *req.Request.IsPassive}
	p.answer(w, r, ent, "", pd, req, sp)
}

// checkAuthnRequest checks an AuthnRequest that arrived at now (again after a login, against the
// time it first arrived): an Issuer that is a registered SP, SAML 2.0, an ID, Destination when
// given, IssueInstant within maxSkew, and an HTTP-POST endpoint of the SP's metadata to answer
// on. crewjam's Validate runs last, on a request these checks passed. The signature is the
// caller's to check (it depends on the binding).
func (p *Provider) checkAuthnRequest(r *http.Request, ent string, buf []byte, relay string, now time.Time) (*csaml.IdpAuthnRequest, *serviceProvider, error) {
	ar, err := parseAuthnRequest(buf)
	if err != nil {
		return nil, nil, err
	}
	sp, err := p.activeSP(r.Context(), ent, ar.Issuer.Value)
	if errors.Is(err, ErrUnknownSP) {
		return nil, nil, badRequest("unknown service provider", nil)
	}
	if errors.Is(err, errSPDisabled) {
		return nil, nil, err
	}
	if err != nil {
		return nil, nil, &requestError{Status: http.StatusServiceUnavailable, Public: "the service provider's metadata cannot be read right now", Cause: err}
	}
	switch {
	case ar.Destination != "" && ar.Destination != p.base(ent)+"/sso":
		return nil, nil, badRequest("Destination is not this IdP's SSO URL", nil)
	case ar.IssueInstant.Before(now.Add(-maxSkew)):
		return nil, nil, badRequest("the request has expired (IssueInstant is too old)", nil)
	case ar.IssueInstant.After(now.Add(maxSkew)):
		return nil, nil, badRequest("IssueInstant is in the future", nil)
	}
	acs, err := postACS(sp.descriptor(), ar)
	if err != nil {
		return nil, nil, err
	}
	idp, err := p.idp(ent)
	if err != nil {
		return nil, nil, &requestError{Status: http.StatusServiceUnavailable, Public: "the signing key is not available", Cause: err}
	}
	req := &csaml.IdpAuthnRequest{IDP: idp, HTTPRequest: r, RequestBuffer: buf, RelayState: relay, Now: now}
	if err := req.Validate(); err != nil {
		return nil, nil, badRequest("the AuthnRequest is not valid", err)
	}
	req.ACSEndpoint = acs
	return req, sp, nil
}

// launch is IdP-initiated SSO: /e/{ent}/saml/launch?sp=ENTITY_ID&RelayState=... (the Alibaba
// Cloud and Tencent Cloud consoles take only this).
func (p *Provider) launch(w http.ResponseWriter, r *http.Request, ent string) {
	// Read like a binding's query: one value per plain parameter name.
	q, err := parseParams(r.URL.RawQuery)
	if err != nil {
		p.refuseErr(w, r, err)
		return
	}
	relay, err := relayState(q)
	if err != nil {
		p.refuseErr(w, r, err)
		return
	}
	pd := &pending{Enterprise: ent, SP: q["sp"].value, RelayState: relay, Received: p.now()}
	req, sp, err := p.request(r, ent, pd)
	if errors.Is(err, errSPDisabled) {
		p.refuseErr(w, r, err, "sp", pd.SP)
		return
	}
	if err != nil {
		p.refuse(w, r, http.StatusNotFound, "unknown service provider "+pd.SP)
		return
	}
	p.answer(w, r, ent, "", pd, req, sp)
}

// continueLogin resumes a request after the broker's login.
func (p *Provider) continueLogin(w http.ResponseWriter, r *http.Request, ent string) {
	id := r.URL.Query().Get("id")
	b, err := p.State.Get(r.Context(), "saml:pending:"+id)
	var pd pending
	if err != nil || len(id) > 64 || json.Unmarshal(b, &pd) != nil || pd.Enterprise != ent {
		p.Pages.RequestExpired(w, r)
		return
	}
	p.answer(w, r, ent, id, &pd, nil, nil)
}

// request rebuilds the request a pending answer is for: an SP-initiated one is validated again
// against the time it arrived (the login may have outlasted its validity); an IdP-initiated one
// goes to the SP's default HTTP-POST ACS.
func (p *Provider) request(r *http.Request, ent string, pd *pending) (*csaml.IdpAuthnRequest, *serviceProvider, error) {
	if len(pd.Request) > 0 {
		return p.checkAuthnRequest(r, ent, pd.Request, pd.RelayState, pd.Received)
	}
	sp, err := p.activeSP(r.Context(), ent, pd.SP)
	if err != nil {
		return nil, nil, err
	}
	idp, err := p.idp(ent)
	if err != nil {
		return nil, nil, err
	}
	req := &csaml.IdpAuthnRequest{IDP: idp, HTTPRequest: r, RelayState: pd.RelayState, Now: pd.Received,
		ServiceProviderMetadata: sp.md, SPSSODescriptor: sp.descriptor(), ACSEndpoint: defaultACS(sp.descriptor())}
	return req, sp, nil
}

// answer sends the person to log in when the SSO session cannot serve the request, or answers
// the SP with a signed assertion. req and sp are the request as validated on arrival, or nil when
// it is resumed after a login.
func (p *Provider) answer(w http.ResponseWriter, r *http.Request, ent, pendingID string, pd *pending, req *csaml.IdpAuthnRequest, sp *serviceProvider) {
	ctx := r.Context()
	sess, _ := p.Sessions.Load(r)
	need := sess == nil || sess.User == "" || sess.Enterprise != ent || (pd.ForceAuthn && sess.LoginTime().Before(pd.Received.Truncate(time.Millisecond)))
	var u *directory.User
	if !need {
		var err error
		if u, err = p.Store.GetUser(ctx, ent, sess.User); err != nil {
			need = true
		} else if u.Status == directory.UserActive {
			// The session serves only while the source it was opened through is open and still
			// links the person; otherwise they log on again, through a source that does.
			if _, err := directory.ActiveThrough(ctx, p.Store, ent, u.ID, sess.Source); err != nil {
				need = true
			}
		}
	}
	// A passive request (the SP asked for no interaction) is answered NoPassive below instead.
	passive := pd.IsPassive && len(pd.Request) > 0
	if need && !passive {
		pd.Rounds++
		if pd.Rounds > 3 {
			p.refuse(w, r, http.StatusBadRequest, "the sign-in did not complete")
			return
		}
		if pendingID == "" {
			pendingID = strings.TrimPrefix(newID(), "id-")
		}
		b, _ := json.Marshal(pd)
		if err := p.State.Put(ctx, "saml:pending:"+pendingID, b, pendingTTL); err != nil {
			p.refuse(w, r, http.StatusServiceUnavailable, "the state store is unavailable")
			return
		}
		http.Redirect(w, r, "/login/e/"+ent+"?"+url.Values{"return": {"/e/" + ent + "/saml/continue?id=" + pendingID}}.Encode(), http.StatusFound)
		return
	}
	if pendingID != "" {
		_ = p.State.Delete(ctx, "saml:pending:"+pendingID)
	}
	if req == nil {
		var err error
		if req, sp, err = p.request(r, ent, pd); err != nil {
			p.refuseErr(w, r, err, "enterprise", ent)
			return
		}
	}
	req.Now = p.now()
	if need {
		form, err := p.statusResponse(req, statusResponder, csaml.StatusNoPassive)
		if err != nil {
			p.refuse(w, r, http.StatusInternalServerError, "cannot answer the passive request")
			return
		}
		writePostForm(w, form.URL, "SAMLResponse", form.SAMLResponse, form.RelayState)
		return
	}
	if u.Status != directory.UserActive {
		// A departed or disabled person gets no assertion, whatever their session says.
		p.audit(ctx, ent, u.ID, pd.SP, "saml.denied", "user is "+string(u.Status))
		p.Pages.Message(w, r, http.StatusForbidden, pages.Text2{"无法登录应用", "Could not sign in to the app"},
			pages.Text2{"你的账号已停用或已离职，无法登录。", "Your account is disabled or has left the organisation."}, nil, "", pages.Text2{})
		return
	}
	form, err := p.respond(ctx, req, sp, u, sess)
	if err != nil {
		p.Log.Error("make SAML response", "sp", sp.d.EntityID, "err", err)
		p.refuseErr(w, r, err, "sp", sp.d.EntityID)
		return
	}
	// Remember the SP in the session for single logout, with the NameID it was given: its
	// LogoutRequest must name that one, and a transient one cannot be derived again.
	if sess.AddSP(session.SP{EntityID: sp.d.EntityID, NameID: req.Assertion.Subject.NameID.Value, SessionIndex: sess.SID}) {
		_ = p.Sessions.Save(w, r, sess)
	}
	p.audit(ctx, ent, u.ID, sp.d.EntityID, "saml.assertion", "")
	writePostForm(w, form.URL, "SAMLResponse", form.SAMLResponse, form.RelayState)
}

func defaultACS(d *csaml.SPSSODescriptor) *csaml.IndexedEndpoint {
	var first *csaml.IndexedEndpoint
	for i := range d.AssertionConsumerServices {
		acs := &d.AssertionConsumerServices[i]
		if acs.Binding != csaml.HTTPPostBinding {
			continue
		}
		if acs.IsDefault != nil && *acs.IsDefault {
			return acs
		}
		if first == nil {
			first = acs
		}
	}
	return first
}

func (p *Provider) audit(ctx context.Context, ent, uid, sp, kind, reason string) {
	outcome := "ok"
	if kind == "saml.denied" || kind == "saml.logout_refused" {
		outcome = "denied"
	}
	detail, _ := json.Marshal(map[string]string{"sp": sp})
	if err := p.Store.AddAuditEvent(context.WithoutCancel(ctx), &directory.AuditEvent{EnterpriseID: ent, Kind: kind, Actor: "saml", UserID: uid,
		Outcome: outcome, Reason: reason, RequestID: httpx.RequestID(ctx), Detail: detail}); err != nil {
		p.Log.Error("audit", "err", err)
	}
}

var postForm = template.Must(template.New("post").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>qiao</title><link rel="stylesheet" href="/static/qiao.css"></head>
<body><main class="card">
<form method="post" action="{{.URL}}" id="autosubmit">
<input type="hidden" name="{{.Field}}" value="{{.Value}}">
{{if .RelayState}}<input type="hidden" name="RelayState" value="{{.RelayState}}">{{end}}
<p>正在返回应用… · Returning to the app…</p>
<button type="submit">继续 · Continue</button>
</form></main>
<script src="/static/autosubmit.js"></script>
</body></html>`))

// writePostForm is the HTTP-POST binding: a form that submits itself (a script file, since the
// Content-Security-Policy allows no inline script) or by a click.
func writePostForm(w http.ResponseWriter, action, field, value, relay string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = postForm.Execute(w, map[string]string{"URL": action, "Field": field, "Value": value, "RelayState": relay})
}

// slogLogger adapts slog to crewjam's logger interface.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Printf(f string, v ...any) { s.l.Warn("saml: " + fmt.Sprintf(f, v...)) }
func (s slogLogger) Print(v ...any)            { s.l.Warn("saml: " + fmt.Sprint(v...)) }
func (s slogLogger) Println(v ...any)          { s.l.Warn("saml: " + fmt.Sprint(v...)) }
func (s slogLogger) Fatal(v ...any)            { s.l.Error("saml: " + fmt.Sprint(v...)) }
func (s slogLogger) Fatalf(f string, v ...any) { s.l.Error("saml: " + fmt.Sprintf(f, v...)) }
func (s slogLogger) Fatalln(v ...any)          { s.l.Error("saml: " + fmt.Sprint(v...)) }
func (s slogLogger) Panic(v ...any)            { s.l.Error("saml: " + fmt.Sprint(v...)) }
func (s slogLogger) Panicf(f string, v ...any) { s.l.Error("saml: " + fmt.Sprintf(f, v...)) }
func (s slogLogger) Panicln(v ...any)          { s.l.Error("saml: " + fmt.Sprint(v...)) }
