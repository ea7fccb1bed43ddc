// Package saseclient is the reference SASE client's logon, the part of `qiao login`, `qiao token`
// and `qiao logout` that any client vendor can copy: discover an enterprise's issuer, log the
// person on with the authorization code flow and PKCE on a loopback redirect (RFC 8252) in the
// system browser, or with the device flow (RFC 8628) on a device without one; keep the refresh
// token; hand out fresh access tokens; revoke on logout.
package saseclient

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// ClientID is the SASE client's registration at every enterprise (a public native client).
const ClientID = "sase-client"

// Scopes the client asks for: offline_access for the refresh token.
var Scopes = []string{"openid", "profile", "offline_access"}

// Metadata is what the client needs of an issuer's discovery document.
type Metadata struct {
	Issuer                      string `json:"issuer"`
	AuthorizationEndpoint       string `json:"authorization_endpoint"`
	TokenEndpoint               string `json:"token_endpoint"`
	DeviceAuthorizationEndpoint string `json:"device_authorization_endpoint"`
	RevocationEndpoint          string `json:"revocation_endpoint"`
}

// Client logs on to one enterprise of one gateway.
type Client struct {
	Server     string // the gateway's external URL
	Enterprise string
	HTTP       *http.Client // nil: a client with a 30 s timeout
	Meta       *Metadata
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// Issuer is the enterprise's issuer URL.
func (c *Client) Issuer() string {
	return strings.TrimRight(c.Server, "/") + "/e/" + url.PathEscape(c.Enterprise)
}

// Discover reads the issuer's discovery document and checks that it names the issuer it came from.
func (c *Client) Discover(ctx context.Context) error {
	u := c.Issuer() + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http().Do(req)
	if err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("there is no enterprise %q at %s", c.Enterprise, c.Server)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("discovery: %s answered %s", u, resp.Status)
	}
	var m Metadata
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("discovery: %s: %w", u, err)
	}
	if m.Issuer != c.Issuer() {
		return fmt.Errorf("discovery: the document at %s names issuer %q", u, m.Issuer)
	}
	if m.AuthorizationEndpoint == "" || m.TokenEndpoint == "" {
		return fmt.Errorf("discovery: %s lacks the authorization or token endpoint", u)
	}
	c.Meta = &m
	return nil
}

func (c *Client) config(redirect string) *oauth2.Config {
	return &oauth2.Config{ClientID: ClientID, RedirectURL: redirect, Scopes: Scopes,
		Endpoint: oauth2.Endpoint{AuthURL: c.Meta.AuthorizationEndpoint, TokenURL: c.Meta.TokenEndpoint,
			DeviceAuthURL: c.Meta.DeviceAuthorizationEndpoint, AuthStyle: oauth2.AuthStyleInParams}}
}

func (c *Client) ctx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, c.http())
}

// BrowserLogin runs the authorization code flow with PKCE (S256): it listens on a loopback port
// the system picks (RFC 8252 §7.3: the gateway matches http://127.0.0.1/callback on any port),
// hands the authorization URL to open (the system browser) and waits for the redirect.
func (c *Client) BrowserLogin(ctx context.Context, open func(authURL string) error) (*oauth2.Token, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("loopback listener: %w", err)
	}
	defer ln.Close()
	redirect := fmt.Sprintf("http://127.0.0.1:%d/callback", ln.Addr().(*net.TCPAddr).Port)
	cfg := c.config(redirect)
	verifier, state := oauth2.GenerateVerifier(), randomString()
	type result struct {
		code string
		err  error
	}
	got := make(chan result, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		var res result
		switch {
		case q.Get("state") != state:
			// Not our request (or a forged one): ignore it and keep waiting.
			http.Error(w, "unexpected state", http.StatusBadRequest)
			return
		case q.Get("error") != "":
			res.err = fmt.Errorf("the sign-in was refused: %s", q.Get("error"))
		default:
			res.code = q.Get("code")
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'")
		msg := "已登录，可以关闭这个页面。 Signed in: you can close this page."
		if res.err != nil {
			msg = "登录未完成。 The sign-in did not complete: " + res.err.Error()
		}
		fmt.Fprintf(w, "<!doctype html><meta charset=utf-8><title>qiao</title><p id=result>%s</p>", html.EscapeString(msg))
		select {
		case got <- res:
		default:
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	authURL := cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))
	if err := open(authURL); err != nil {
		return nil, err
	}
	var res result
	select {
	case res = <-got:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the browser: %w", ctx.Err())
	}
	if res.err != nil {
		return nil, res.err
	}
	tok, err := cfg.Exchange(c.ctx(ctx), res.code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("exchange the code: %w", err)
	}
	return tok, nil
}

// DeviceLogin runs the device flow: show gets the verification URL (with the code in it) and the
// user code to put before the person; the poll keeps the interval and slows down when told.
func (c *Client) DeviceLogin(ctx context.Context, show func(verificationURIComplete, verificationURI, userCode string)) (*oauth2.Token, error) {
	if c.Meta.DeviceAuthorizationEndpoint == "" {
		return nil, errors.New("this gateway does not offer the device flow (no device_authorization_endpoint)")
	}
	cfg := c.config("")
	da, err := cfg.DeviceAuth(c.ctx(ctx))
	if err != nil {
		return nil, fmt.Errorf("device authorization: %w", err)
	}
	complete := da.VerificationURIComplete
	if complete == "" {
		complete = da.VerificationURI
	}
	show(complete, da.VerificationURI, da.UserCode)
	tok, err := cfg.DeviceAccessToken(c.ctx(ctx), da)
	if err != nil {
		return nil, fmt.Errorf("waiting for the approval: %w", err)
	}
	return tok, nil
}

// Refresh returns a fresh token from a refresh token (which the gateway rotates: keep the new one).
func (c *Client) Refresh(ctx context.Context, refreshToken string) (*oauth2.Token, error) {
	tok, err := c.config("").TokenSource(c.ctx(ctx), &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		return nil, fmt.Errorf("refresh: %w", err)
	}
	return tok, nil
}

// Revoke revokes a refresh token and the grant it belongs to (RFC 7009).
func (c *Client) Revoke(ctx context.Context, refreshToken string) error {
	if c.Meta.RevocationEndpoint == "" {
		return errors.New("this gateway has no revocation endpoint")
	}
	form := url.Values{"token": {refreshToken}, "token_type_hint": {"refresh_token"}, "client_id": {ClientID}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Meta.RevocationEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http().Do(req)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("revoke: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

func randomString() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
