// Package wecom is qiao's WeCom (企业微信) connector: the API client (token cache, rate limits,
// retries, egress proxies), the directory reader and, as their issues land, login and events.
package wecom

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/upstream"
)

// Default hosts of the platform.
const (
	DefaultAPIBase   = "https://qyapi.weixin.qq.com"
	DefaultLoginBase = "https://login.work.weixin.qq.com"
	DefaultOpenBase  = "https://open.work.weixin.qq.com"
)

// Settings are a WeCom source's connection settings (from its config and secrets).
type Settings struct {
	CorpID        string
	AgentID       string
	Secret        string // the app's secret
	ContactSecret string // 通讯录同步 secret (optional): reads the whole corp
	APIBase       string
	LoginBase     string // wwlogin QR page
	OpenBase      string // the old qrConnect page
	OAuthBase     string // in-app OAuth
	Proxies       []string
	// RatePerSecond limits calls per API (default: the published 10,000/min per corp per API).
	RatePerSecond float64
	Timeout       time.Duration
	// RootCAs, when set, are the CAs trusted for the API's HTTPS instead of the system's (tests).
	RootCAs *x509.CertPool
}

// SettingsFrom reads a source's config and secrets maps and checks what every call needs.
func SettingsFrom(cfg, secrets map[string]string) (Settings, error) {
	s := settingsFrom(cfg, secrets)
	return s, s.validate()
}

// settingsFrom reads the maps, filling the platform's hosts where none is configured.
func settingsFrom(cfg, secrets map[string]string) Settings {
	s := Settings{CorpID: cfg["corp_id"], AgentID: cfg["agent_id"], Secret: secrets["secret"], ContactSecret: secrets["contact_secret"],
		APIBase: strings.TrimRight(cfg["api_base_url"], "/"), LoginBase: strings.TrimRight(cfg["login_base_url"], "/")}
	if s.APIBase == "" {
		s.APIBase = DefaultAPIBase
	}
	if s.LoginBase == "" {
		s.LoginBase = DefaultLoginBase
	}
	s.OpenBase = strings.TrimRight(cfg["open_base_url"], "/")
	if s.OpenBase == "" {
		s.OpenBase = DefaultOpenBase
	}
	s.OAuthBase = strings.TrimRight(cfg["oauth_base_url"], "/")
	if s.OAuthBase == "" {
		s.OAuthBase = DefaultOAuthBase
	}
	if p := secrets["proxies"]; p != "" {
		s.Proxies = strings.Split(p, ",")
	}
	return s
}

func (s *Settings) validate() error {
	switch {
	case s.CorpID == "":
		return &federation.SettingError{Key: "config.corp_id", Reason: "is required (WeCom admin console → 我的企业 → 企业ID)"}
	case s.Secret == "" && s.ContactSecret == "":
		return &federation.SettingError{Key: "secrets.secret", Reason: "(the app's Secret) or secrets.contact_secret (通讯录同步 Secret) is required"}
	}
	return nil
}

// tokens is shared by every client in the process: one token per (corp, secret).
var tokens = upstream.NewTokenCache(5 * time.Minute)

// Client calls the WeCom API for one source.
type Client struct {
	s       Settings
	http    *upstream.Caller
	backoff *upstream.Backoff
}

// NewClient returns a client.
func NewClient(s Settings) (*Client, error) {
	if s.Timeout == 0 {
		s.Timeout = 10 * time.Second
	}
	if s.RatePerSecond == 0 {
		s.RatePerSecond = 10000.0 / 60
	}
	hc, err := upstream.NewHTTPClientTLS(s.Timeout, s.Proxies, s.RootCAs)
	if err != nil {
		return nil, err
	}
	caller := &upstream.Caller{Platform: "WeCom", HTTP: hc, Limiter: upstream.LimiterFor("wecom:"+s.CorpID, max(s.RatePerSecond, 0), 50),
		Backoff:   upstream.Backoff{Base: 200 * time.Millisecond, Max: 5 * time.Second, Attempts: 6},
		Unlimited: map[string]bool{"auth/getuserinfo": true}} // upstream-apis.md §1.5.4
	return &Client{s: s, http: caller, backoff: &caller.Backoff}, nil
}

// Calls is the number of API calls made (token fetches included).
func (c *Client) Calls() int64 { return c.http.Calls() }

// SetBackoff replaces the retry schedule (tests).
func (c *Client) SetBackoff(b upstream.Backoff) { *c.backoff = b }

type apiError struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// errPart is an answer type that embeds apiError, which Call decodes in one pass.
type errPart interface{ errPart() *apiError }

func (e *apiError) errPart() *apiError { return e }

func (c *Client) token(ctx context.Context, secret string) (string, error) {
	return tokens.Get(ctx, c.s.CorpID+"\x00"+secret, func(ctx context.Context) (upstream.Token, error) {
		var out struct {
			apiError
			AccessToken string `json:"access_token"`
			ExpiresIn   int    `json:"expires_in"`
		}
		q := url.Values{"corpid": {c.s.CorpID}, "corpsecret": {secret}}
		if err := c.raw(ctx, "gettoken", http.MethodGet, "/cgi-bin/gettoken?"+q.Encode(), nil, &out); err != nil {
			return upstream.Token{}, err
		}
		if out.ErrCode != 0 {
			return upstream.Token{}, c.fail("gettoken", out.apiError)
		}
		return upstream.Token{Value: out.AccessToken, Expires: time.Now().Add(time.Duration(out.ExpiresIn) * time.Second)}, nil
	})
}

// raw performs one HTTP exchange and decodes its JSON answer.
func (c *Client) raw(ctx context.Context, api, method, path string, body []byte, out any) error {
	data, err := c.exchange(ctx, api, method, path, body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &federation.Error{Platform: "WeCom", API: api, Message: "malformed JSON answer", Err: err}
	}
	return nil
}

// exchange performs one HTTP exchange and returns the body of a 200 answer.
func (c *Client) exchange(ctx context.Context, api, method, path string, body []byte) ([]byte, error) {
	status, data, err := c.http.Do(ctx, api, method, c.s.APIBase+path, body, nil)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, &federation.Error{Platform: "WeCom", API: api, Message: fmt.Sprintf("HTTP %d from %s", status, c.s.APIBase)}
	}
	return data, nil
}

var fromIP = regexp.MustCompile(`from ip: ([0-9a-fA-F.:]+)`)

// fail turns an errcode into an error an admin can act on.
func (c *Client) fail(api string, e apiError) error {
	msg := e.ErrMsg
	if i := strings.Index(msg, ", hint:"); i >= 0 {
		msg = msg[:i]
	}
	switch e.ErrCode {
	case 60020:
		ip := "this gateway's address"
		if m := fromIP.FindStringSubmatch(e.ErrMsg); m != nil {
			ip = m[1]
		}
		msg = "WeCom refused the call from IP " + ip + ": add it to the app's trusted IPs (企业可信IP), or route calls through a configured egress proxy"
	case 60011:
		msg = "no privilege (60011): the departments or members are outside the app's visibility scope (可见范围); widen the scope or configure the contact-sync secret"
	case 48002:
		msg = "API not permitted for this secret (48002): user/list_id and contact writes need the contact-sync (通讯录同步) secret; since 2022-08-15 newly added contact-sync IPs cannot call the full read APIs"
	case 48009:
		msg = "the contact-sync (通讯录同步) secret may not read contact details from this IP (48009, the 2022-08-15 rule for newly added IPs): only department/simplelist and user/list_id work, which carry no names; configure the app's secret too to read the names it can see"
	case 40013:
		msg = "invalid CorpID (40013): check config.corp_id"
	case 40001, 40091:
		msg = fmt.Sprintf("the secret was refused (%d): check the app's Secret in the WeCom admin console", e.ErrCode)
	case 45009:
		msg = "WeCom rate limit (45009) persisted through retries: try again in a minute"
	case 60111, 60003:
		return &federation.Error{Platform: "WeCom", API: api, Code: e.ErrCode, Message: msg, Err: federation.ErrNotFound}
	}
	return &federation.Error{Platform: "WeCom", API: api, Code: e.ErrCode, Message: msg}
}

// Call performs an API call with the given secret: token handling, one refresh on an invalid or
// expired token, and backoff on rate limits and "system busy".
func (c *Client) Call(ctx context.Context, api, method string, query url.Values, body any, secret string, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	refreshed := false
	for attempt := 1; ; attempt++ {
		tok, err := c.token(ctx, secret)
		if err != nil {
			return err
		}
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		q.Set("access_token", tok)
		// The body is decoded twice (errcode, then out), not copied first: a 100k-user read
		// decodes 100 MB of answers.
		raw, err := c.exchange(ctx, api, method, "/cgi-bin/"+api+"?"+q.Encode(), payload)
		if err != nil {
			return err
		}
		var e apiError
		// An out that embeds apiError is decoded once, errcode and all: a type error still
		// leaves the errcode decoded, and only a success reports it.
		var typeErr *json.UnmarshalTypeError
		var outErr error
		h, once := out.(errPart)
		if once {
			outErr = upstream.DecodeJSON(raw, out)
			if outErr != nil && !errors.As(outErr, &typeErr) {
				return &federation.Error{Platform: "WeCom", API: api, Message: "malformed JSON answer", Err: outErr}
			}
			e = *h.errPart()
		} else if err := upstream.DecodeJSON(raw, &e); err != nil {
			return &federation.Error{Platform: "WeCom", API: api, Message: "malformed JSON answer", Err: err}
		}
		switch e.ErrCode {
		case 0:
			if !once {
				outErr = upstream.DecodeJSON(raw, out)
			}
			if outErr != nil {
				return &federation.Error{Platform: "WeCom", API: api, Message: "unexpected answer: " + outErr.Error(), Err: outErr}
			}
			return nil
		case 40014, 42001, 41001:
			tokens.Invalidate(c.s.CorpID+"\x00"+secret, tok)
			if refreshed {
				return c.fail(api, e)
			}
			refreshed = true
			continue
		case 45009, 45033, -1:
			if attempt >= c.backoff.Attempts {
				return c.fail(api, e)
			}
			if err := upstream.Sleep(ctx, c.backoff.Delay(attempt)); err != nil {
				return err
			}
			continue
		}
		return c.fail(api, e)
	}
}
