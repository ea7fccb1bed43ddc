// Package demo holds the sample applications `qiao demo` serves beside the gateway: a web app that
// signs in with OpenID Connect and shows its ID token, and a SAML service provider that shows its
// assertion. They are relying parties like any other: they reach the gateway only over HTTP.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	httphelper "github.com/zitadel/oidc/v3/pkg/http"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
)

// RP is the sample OpenID Connect web app at {external_url}/demo-app/, client demo-app.
type RP struct {
	Issuer, ClientID, Secret, BaseURL string // BaseURL: {external_url}/demo-app

	mu       sync.Mutex
	rp       rp.RelyingParty
	sessions *sessions[rpSession]
	cookies  *httphelper.CookieHandler
}

type rpSession struct {
	IDToken  string
	Claims   map[string]any
	UserInfo map[string]any
	At       time.Time
}

const rpCookie = "demo_app"

func randomString() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Routes mounts the app under /demo-app/.
func (a *RP) Routes(m *http.ServeMux) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	a.cookies = httphelper.NewCookieHandler(key, key, httphelper.WithUnsecure())
	a.sessions = newSessions[rpSession](rpCookie, "/demo-app/")
	m.HandleFunc("GET /demo-app/{$}", a.home)
	m.HandleFunc("GET /demo-app/login", func(w http.ResponseWriter, r *http.Request) {
		p, err := a.party(r.Context())
		if err != nil {
			http.Error(w, "the demo app cannot reach the gateway's discovery document: "+err.Error(), http.StatusBadGateway)
			return
		}
		rp.AuthURLHandler(randomString, p)(w, r)
	})
	m.HandleFunc("GET /demo-app/callback", func(w http.ResponseWriter, r *http.Request) {
		p, err := a.party(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		rp.CodeExchangeHandler(rp.UserinfoCallback(a.signedIn), p)(w, r)
	})
	m.HandleFunc("POST /demo-app/logout", a.logout)
}

// party discovers the issuer on first use (the gateway is serving by then).
func (a *RP) party(ctx context.Context) (rp.RelyingParty, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rp != nil {
		return a.rp, nil
	}
	p, err := rp.NewRelyingPartyOIDC(ctx, a.Issuer, a.ClientID, a.Secret, a.BaseURL+"/callback",
		[]string{zoidc.ScopeOpenID, zoidc.ScopeProfile, zoidc.ScopeEmail, zoidc.ScopePhone, "groups"},
		rp.WithCookieHandler(a.cookies), rp.WithPKCE(a.cookies), rp.WithSigningAlgsFromDiscovery())
	if err != nil {
		return nil, err
	}
	a.rp = p
	return p, nil
}

func (a *RP) signedIn(w http.ResponseWriter, r *http.Request, tokens *zoidc.Tokens[*zoidc.IDTokenClaims], _ string, _ rp.RelyingParty, info *zoidc.UserInfo) {
	s := &rpSession{IDToken: tokens.IDToken, At: time.Now()}
	b, _ := json.Marshal(tokens.IDTokenClaims)
	_ = json.Unmarshal(b, &s.Claims)
	b, _ = json.Marshal(info)
	_ = json.Unmarshal(b, &s.UserInfo)
	a.sessions.start(w, s)
	http.Redirect(w, r, a.BaseURL+"/", http.StatusFound)
}

func (a *RP) logout(w http.ResponseWriter, r *http.Request) {
	s := a.sessions.end(w, r)
	if s == nil {
		http.Redirect(w, r, a.BaseURL+"/", http.StatusSeeOther)
		return
	}
	p, err := a.party(r.Context())
	if err != nil {
		http.Redirect(w, r, a.BaseURL+"/", http.StatusSeeOther)
		return
	}
	// RP-initiated logout goes through the browser, which carries the gateway's session cookie
	// (rp.EndSession would call the endpoint from the server, without it).
	q := url.Values{"id_token_hint": {s.IDToken}, "client_id": {a.ClientID}, "post_logout_redirect_uri": {a.BaseURL + "/"}}
	http.Redirect(w, r, p.GetEndSessionEndpoint()+"?"+q.Encode(), http.StatusSeeOther)
}

type claimRow struct {
	Name  string
	Value string
}

func rows(m map[string]any) []claimRow {
	var out []claimRow
	for k, v := range m {
		var s string
		if str, ok := v.(string); ok {
			s = str
		} else {
			b, _ := json.Marshal(v)
			s = string(b)
		}
		out = append(out, claimRow{k, s})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

var rpPage = template.Must(template.New("rp").Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo app · qiao</title><link rel="stylesheet" href="/static/qiao.css"></head>
<body><main class="card" id="main">
<h1>Demo app 演示应用</h1>
{{if .S}}
<p>已通过 qiao 登录 · Signed in through qiao (OpenID Connect)</p>
<h2>ID token claims</h2>
<table id="claims">{{range .Claims}}<tr><th>{{.Name}}</th><td><code>{{.Value}}</code></td></tr>{{end}}</table>
<h2>UserInfo</h2>
<table id="userinfo">{{range .UserInfo}}<tr><th>{{.Name}}</th><td><code>{{.Value}}</code></td></tr>{{end}}</table>
<form method="post" action="logout"><button type="submit" class="secondary">退出登录 · Sign out</button></form>
{{else}}
<p>这是一个使用 OpenID Connect 的示例应用（客户端 demo-app）。<br>A sample web app that signs in with OpenID Connect (client demo-app).</p>
<p><a class="button" href="login">使用 qiao 登录 · Sign in with qiao</a></p>
{{end}}
</main></body></html>`))

func (a *RP) home(w http.ResponseWriter, r *http.Request) {
	s := a.sessions.get(r)
	data := map[string]any{"S": s != nil}
	if s != nil {
		data["Claims"], data["UserInfo"] = rows(s.Claims), rows(s.UserInfo)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = rpPage.Execute(w, data)
}
