// Package dingtalk is qiao's DingTalk (钉钉) connector: the API client for the oapi and new-API
// hosts (token cache, rate limits, retries, egress proxies), the directory reader and, as their
// issues land, login and events.
package dingtalk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/upstream"
)

// Default hosts of the standard edition; a dedicated (专属) edition has its own.
const (
	DefaultOAPIBase  = "https://oapi.dingtalk.com"
	DefaultAPIBase   = "https://api.dingtalk.com"
	DefaultLoginBase = "https://login.dingtalk.com"
)

// Editions (config edition).
const (
	// EditionStandard is the public platform: its hosts are the defaults, and a base-URL key
	// overrides one of them (a simulator, a test).
	EditionStandard = "standard"
	// EditionDedicated is a dedicated (专属) deployment: it has hosts of its own, so
	// oapi_base_url, api_base_url and login_base_url are one group, all required.
	EditionDedicated = "dedicated"
)

// hostKeys are the base-URL settings, in the order they are reported.
var hostKeys = []string{"oapi_base_url", "api_base_url", "login_base_url"}

// Settings are a DingTalk source's connection settings.
type Settings struct {
	CorpID    string
	AppKey    string
	AppSecret string
	AgentID   string
	Edition   string // EditionStandard (the default) or EditionDedicated
	OAPIBase  string
	APIBase   string
	LoginBase string
	Proxies   []string
	// RatePerSecond limits calls per API (default: the published 20/s per app per API, less a
	// margin).
	RatePerSecond float64
	Timeout       time.Duration
}

// SettingsFrom reads a source's config and secrets maps and checks what every call needs.
func SettingsFrom(cfg, secrets map[string]string) (Settings, error) {
	s := settingsFrom(cfg, secrets)
	return s, s.validate()
}

// settingsFrom reads the maps, filling the standard edition's hosts where none is configured.
func settingsFrom(cfg, secrets map[string]string) Settings {
	s := Settings{CorpID: cfg["corp_id"], AppKey: cfg["app_key"], AgentID: cfg["agent_id"], AppSecret: secrets["app_secret"],
		Edition:  cfg["edition"],
		OAPIBase: strings.TrimRight(cfg["oapi_base_url"], "/"), APIBase: strings.TrimRight(cfg["api_base_url"], "/"),
		LoginBase: strings.TrimRight(cfg["login_base_url"], "/")}
	if s.Edition == "" {
		s.Edition = EditionStandard
	}
	if s.Edition == EditionDedicated {
		return s // no public defaults: validate names what is missing
	}
	if s.OAPIBase == "" {
		s.OAPIBase = DefaultOAPIBase
	}
	if s.APIBase == "" {
		s.APIBase = DefaultAPIBase
	}
	if s.LoginBase == "" {
		s.LoginBase = DefaultLoginBase
	}
	if p := secrets["proxies"]; p != "" {
		s.Proxies = strings.Split(p, ",")
	}
	return s
}

func (s *Settings) validate() error {
	switch {
	case s.AppKey == "":
		return &federation.SettingError{Key: "config.app_key", Reason: "is required (DingTalk developer console → 应用凭证 → AppKey/Client ID)"}
	case s.AppSecret == "":
		return &federation.SettingError{Key: "secrets.app_secret", Reason: "is required (AppSecret/Client Secret)"}
	case s.Edition != EditionStandard && s.Edition != EditionDedicated:
		return &federation.SettingError{Key: "config.edition", Reason: fmt.Sprintf("%q must be standard or dedicated", s.Edition)}
	}
	for i, v := range []string{s.OAPIBase, s.APIBase, s.LoginBase} {
		if v == "" {
			return &federation.SettingError{Key: "config." + hostKeys[i], Reason: "is required with edition dedicated: a dedicated (专属) DingTalk " +
				"has its own oapi, api and login hosts; set all three (oapi_base_url, api_base_url, login_base_url)"}
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return &federation.SettingError{Key: "config." + hostKeys[i], Reason: fmt.Sprintf("%q is not an http(s) URL", v)}
		}
	}
	return nil
}

var tokens = upstream.NewTokenCache(5 * time.Minute)

// Client calls the DingTalk APIs for one source.
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
		s.RatePerSecond = 18
	}
	hc, err := upstream.NewHTTPClient(s.Timeout, s.Proxies)
	if err != nil {
		return nil, err
	}
	caller := &upstream.Caller{Platform: "DingTalk", HTTP: hc, Limiter: upstream.LimiterFor("dingtalk:"+s.AppKey, max(s.RatePerSecond, 0), 18),
		Backoff: upstream.Backoff{Base: 500 * time.Millisecond, Max: 5 * time.Second, Attempts: 6}}
	return &Client{s: s, http: caller, backoff: &caller.Backoff}, nil
}

// Calls is the number of API calls made.
func (c *Client) Calls() int64 { return c.http.Calls() }

// SetBackoff replaces the retry schedule (tests).
func (c *Client) SetBackoff(b upstream.Backoff) { *c.backoff = b }

type oapiResp struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
	SubCode string `json:"sub_code"` // with errcode 88: the cause
	SubMsg  string `json:"sub_msg"`
	// Result is where the result goes: OAPI points it at the caller's out, so the answer is
	// decoded in one pass (nil: the result is skipped).
	Result any `json:"result"`
	Status int `json:"status"` // the IP-ban body: {"status":1111,...}
}

// code is the errcode that says what went wrong: /topapi/* answers authentication failures
// (a bad, expired or revoked token; a missing permission) as errcode 88 ("鉴权异常") with the
// cause in sub_code, e.g. {"errcode":88,"sub_code":"40014","sub_msg":"不合法的access_token"}.
func (r oapiResp) code() int {
	if r.ErrCode == 88 {
		if n, err := strconv.Atoi(r.SubCode); err == nil && n != 0 {
			return n
		}
	}
	return r.ErrCode
}

func (c *Client) do(ctx context.Context, api, method, fullURL string, body []byte) (int, []byte, error) {
	return c.http.Do(ctx, api, method, fullURL, body, nil)
}

func (c *Client) token(ctx context.Context) (string, error) {
	return tokens.Get(ctx, c.s.AppKey+"\x00"+c.s.AppSecret, func(ctx context.Context) (upstream.Token, error) {
		q := url.Values{"appkey": {c.s.AppKey}, "appsecret": {c.s.AppSecret}}
		_, data, err := c.do(ctx, "gettoken", http.MethodGet, c.s.OAPIBase+"/gettoken?"+q.Encode(), nil)
		if err != nil {
			return upstream.Token{}, err
		}
		var out struct {
			oapiResp
			AccessToken string `json:"access_token"`
			ExpiresIn   int    `json:"expires_in"`
		}
		if err := json.Unmarshal(data, &out); err != nil {
			return upstream.Token{}, &federation.Error{Platform: "DingTalk", API: "gettoken", Message: "malformed answer", Err: err}
		}
		if out.ErrCode != 0 || out.AccessToken == "" {
			return upstream.Token{}, c.fail("gettoken", out.oapiResp)
		}
		return upstream.Token{Value: out.AccessToken, Expires: time.Now().Add(time.Duration(out.ExpiresIn) * time.Second)}, nil
	})
}

func (c *Client) fail(api string, r oapiResp) error {
	msg := r.ErrMsg
	code := r.code()
	if code != r.ErrCode {
		msg = r.SubMsg
	}
	switch code {
	case 60020:
		msg = "DingTalk refused the call: " + r.ErrMsg + " — add this gateway's egress IP to the app's server IP allowlist (服务器出口IP), or route calls through a configured egress proxy"
	case 60011:
		msg = "the app lacks the permission for this API (60011): grant the contact read permission (通讯录个人信息读权限 / 成员信息读权限) in the developer console"
	case 50002, 50004:
		msg = fmt.Sprintf("outside the app's contact scope (%d): widen the app's 通讯录权限范围", code)
	case 40096, 40089, 40001:
		msg = fmt.Sprintf("the AppKey or AppSecret was refused (%d): check them in the developer console (应用凭证); a reset secret must be copied here", code)
	case 40014, 42001, 41001:
		msg = fmt.Sprintf("the access token was refused again after a fresh one was fetched (%d): check the AppKey and AppSecret", code)
	case 90018, 90002, 90001:
		msg = fmt.Sprintf("DingTalk rate limit (%d) persisted through retries: try again later", code)
	}
	if code != r.ErrCode {
		msg += fmt.Sprintf(" (errcode %d, sub_code %s)", r.ErrCode, r.SubCode)
	}
	switch {
	case code == 33012 || code == 60111 || code == 60121 || code == 60003:
		return &federation.Error{Platform: "DingTalk", API: api, Code: code, Message: msg, Err: federation.ErrNotFound}
	case r.Status == 1111:
		return &federation.Error{Platform: "DingTalk", API: api, Message: "DingTalk banned this IP for 5 minutes after more than 10,000 calls in 20 s; wait, then run the task again"}
	}
	return &federation.Error{Platform: "DingTalk", API: api, Code: code, Message: msg}
}

// OAPI calls POST /topapi/<api> with a JSON body and decodes result into out.
func (c *Client) OAPI(ctx context.Context, api string, body any, out any) error {
	payload, err := json.Marshal(body)
	if err != nil {
		return err
	}
	refreshed := false
	for attempt := 1; ; attempt++ {
		tok, err := c.token(ctx)
		if err != nil {
			return err
		}
		_, data, err := c.do(ctx, api, http.MethodPost, c.s.OAPIBase+"/topapi/"+api+"?access_token="+url.QueryEscape(tok), payload)
		if err != nil {
			return err
		}
		// One pass decodes the envelope and the result into out. A result of the wrong shape is a
		// type error after which the envelope is still decoded; only a success reports it.
		r := oapiResp{Result: out}
		if out == nil {
			r.Result = new(json.RawMessage)
		}
		var typeErr *json.UnmarshalTypeError
		err = upstream.DecodeJSON(data, &r)
		if err != nil && !errors.As(err, &typeErr) {
			return &federation.Error{Platform: "DingTalk", API: api, Message: "malformed JSON answer", Err: err}
		}
		code := r.code()
		switch {
		case r.Status == 1111:
			return c.fail(api, r)
		case code == 0:
			if err != nil {
				return &federation.Error{Platform: "DingTalk", API: api, Message: "unexpected result: " + err.Error(), Err: err}
			}
			return nil
		case code == 40014 || code == 42001 || code == 41001 || code == 40001:
			// The token is bad, expired or revoked (a secret reset revokes the tokens issued):
			// drop it from the cache, fetch a new one and retry once.
			tokens.Invalidate(c.s.AppKey+"\x00"+c.s.AppSecret, tok)
			if refreshed {
				return c.fail(api, r)
			}
			refreshed = true
		case code == 90018 || code == 90002 || code == 90001 || code == -1:
			if attempt >= c.backoff.Attempts {
				return c.fail(api, r)
			}
			// The platform's advice for 90018 is to wait a second.
			d := c.backoff.Delay(attempt)
			if code == 90018 && d < 200*time.Millisecond {
				d = 200 * time.Millisecond
			}
			if err := upstream.Sleep(ctx, d); err != nil {
				return err
			}
		default:
			return c.fail(api, r)
		}
	}
}
