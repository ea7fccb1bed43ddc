package demo

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/xml"
	"fmt"
	"html/template"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
)

// SP is the sample SAML service provider at {external_url}/demo-sp/, with its metadata at
// /demo-sp/metadata (its entity ID). It signs its AuthnRequests, has an encryption key (so
// assertions to it are encrypted) and shows the NameID and attributes it received. Its
// SingleLogoutService (/demo-sp/slo, HTTP-Redirect) takes part in single logout: its "Sign out"
// sends the IdP a signed LogoutRequest, and it ends its session when the IdP's LogoutRequest
// arrives (sign-out at qiao or in another app).
type SP struct {
	BaseURL        string // {external_url}/demo-sp
	IdPMetadataURL string // {external_url}/e/demo/saml/metadata

	mu       sync.Mutex
	sp       *saml.ServiceProvider
	requests map[string]time.Time
	sessions *sessions[spSession]
}

type spSession struct {
	NameID, NameIDFormat, SessionIndex string
	Attributes                         []claimRow
}

const spCookie = "demo_sp"

// Routes mounts the SP under /demo-sp/.
func (a *SP) Routes(m *http.ServeMux) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "qiao demo SP"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	cert, _ := x509.ParseCertificate(der)
	mu, _ := url.Parse(a.BaseURL + "/metadata")
	acs, _ := url.Parse(a.BaseURL + "/acs")
	slo, _ := url.Parse(a.BaseURL + "/slo")
	a.sp = &saml.ServiceProvider{EntityID: mu.String(), Key: key, Certificate: cert, MetadataURL: *mu, AcsURL: *acs, SloURL: *slo,
		LogoutBindings: []string{saml.HTTPRedirectBinding}, SignatureMethod: dsig.RSASHA256SignatureMethod, AllowIDPInitiated: true}
	a.requests = map[string]time.Time{}
	a.sessions = newSessions[spSession](spCookie, "/demo-sp/")
	m.HandleFunc("GET /demo-sp/metadata", func(w http.ResponseWriter, r *http.Request) {
		buf, _ := xml.MarshalIndent(a.sp.Metadata(), "", "  ")
		w.Header().Set("Content-Type", "application/samlmetadata+xml")
		_, _ = w.Write(buf)
	})
	m.HandleFunc("GET /demo-sp/{$}", a.home)
	m.HandleFunc("GET /demo-sp/login", a.login)
	m.HandleFunc("POST /demo-sp/acs", a.acs)
	m.HandleFunc("POST /demo-sp/logout", a.logout)
	m.HandleFunc("GET /demo-sp/slo", a.slo)
	return nil
}

// idp loads the IdP's metadata on first use (the gateway is serving by then).
func (a *SP) idp(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sp.IDPMetadata != nil {
		return nil
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.IdPMetadataURL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	var md saml.EntityDescriptor
	if err := xml.Unmarshal(b, &md); err != nil {
		return fmt.Errorf("IdP metadata: %w", err)
	}
	a.sp.IDPMetadata = &md
	return nil
}

func (a *SP) login(w http.ResponseWriter, r *http.Request) {
	if err := a.idp(r.Context()); err != nil {
		http.Error(w, "the demo SP cannot read the IdP metadata: "+err.Error(), http.StatusBadGateway)
		return
	}
	req, err := a.sp.MakeAuthenticationRequest(a.sp.GetSSOBindingLocation(saml.HTTPRedirectBinding), saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	u, err := req.Redirect("", a.sp)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	a.mu.Lock()
	for id, at := range a.requests {
		if time.Since(at) > time.Hour {
			delete(a.requests, id)
		}
	}
	a.requests[req.ID] = time.Now()
	a.mu.Unlock()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (a *SP) acs(w http.ResponseWriter, r *http.Request) {
	if err := a.idp(r.Context()); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	a.mu.Lock()
	ids := make([]string, 0, len(a.requests))
	for id := range a.requests {
		ids = append(ids, id)
	}
	a.mu.Unlock()
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil { // crewjam reads r.PostForm, parsed by the caller
		http.Error(w, "the form cannot be read", http.StatusBadRequest)
		return
	}
	assertion, err := a.sp.ParseResponse(r, ids)
	if err != nil {
		msg := err.Error()
		if ie, ok := err.(*saml.InvalidResponseError); ok {
			msg = ie.PrivateErr.Error()
		}
		http.Error(w, "the demo SP refused the response: "+msg, http.StatusForbidden)
		return
	}
	s := &spSession{}
	if assertion.Subject != nil && assertion.Subject.NameID != nil {
		s.NameID, s.NameIDFormat = assertion.Subject.NameID.Value, assertion.Subject.NameID.Format
	}
	if len(assertion.AuthnStatements) > 0 {
		s.SessionIndex = assertion.AuthnStatements[0].SessionIndex
	}
	for _, st := range assertion.AttributeStatements {
		for _, at := range st.Attributes {
			name := at.FriendlyName
			if name == "" {
				name = at.Name
			}
			var vals string
			for i, v := range at.Values {
				if i > 0 {
					vals += ", "
				}
				vals += v.Value
			}
			s.Attributes = append(s.Attributes, claimRow{name, vals})
		}
	}
	a.sessions.start(w, s)
	http.Redirect(w, r, a.BaseURL+"/", http.StatusSeeOther)
}

var spPage = template.Must(template.New("sp").Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo SAML app · qiao</title><link rel="stylesheet" href="/static/qiao.css"></head>
<body><main class="card" id="main">
<h1>Demo SAML app 演示 SAML 应用</h1>
{{with .S}}
<p>已通过 qiao 登录 · Signed in through qiao (SAML 2.0)</p>
<h2>NameID</h2>
<p><code id="nameid">{{.NameID}}</code><br><span class="muted">{{.NameIDFormat}}</span></p>
<h2>Attributes</h2>
<table id="attributes">{{range .Attributes}}<tr><th>{{.Name}}</th><td><code>{{.Value}}</code></td></tr>{{end}}</table>
<form method="post" action="logout"><button type="submit" class="secondary">退出登录 · Sign out</button></form>
<p class="muted">退出会通过 SAML 单点退出结束 qiao 的会话，以及同一会话中的其他应用。<br>Signing out ends the qiao session through SAML single logout, and with it the other apps of that session.</p>
{{else}}{{if .SignedOut}}<p id="signed-out" role="status">已通过 SAML 单点退出退出登录 · Signed out through SAML single logout</p>{{end}}
<p>这是一个使用 SAML 2.0 的示例服务提供方。<br>A sample SAML 2.0 service provider (entity ID {{.Entity}}).</p>
<p><a class="button" href="login">使用 qiao 登录 · Sign in with qiao</a></p>
{{end}}
</main></body></html>`))

func (a *SP) home(w http.ResponseWriter, r *http.Request) {
	data := map[string]any{"Entity": a.sp.EntityID, "SignedOut": r.URL.Query().Get("signed_out") != ""}
	if s := a.sessions.get(r); s != nil {
		data["S"] = s
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = spPage.Execute(w, data)
}
