// Package connectors is the registry of platform kinds: it opens the connector of a source from
// its kind, config and secrets.
package connectors

import (
	"context"
	"fmt"
	"strconv"

	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/dingtalk"
	"github.com/qiao-gateway/qiao/federation/wecom"
)

// Kinds lists the platforms with a connector.
var Kinds = []string{"wecom", "dingtalk"}

// rate reads config "rate_limit": empty = the platform's published limit, "off" = none (for
// simulators with limits off in benchmarks), or calls per second per API.
func rate(cfg map[string]string) (float64, error) {
	switch v := cfg["rate_limit"]; v {
	case "":
		return 0, nil
	case "off":
		return -1, nil
	default:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return 0, fmt.Errorf("config.rate_limit %q must be off or calls per second", v)
		}
		return f, nil
	}
}

// wecomClient and dingtalkClient build a source's API client with its rate-limit setting.
func wecomClient(cfg, secrets map[string]string) (*wecom.Client, error) {
	r, err := rate(cfg)
	if err != nil {
		return nil, err
	}
	s, err := wecom.SettingsFrom(cfg, secrets)
	if err != nil {
		return nil, err
	}
	s.RatePerSecond = r
	return wecom.NewClient(s)
}

func dingtalkClient(cfg, secrets map[string]string) (*dingtalk.Client, error) {
	r, err := rate(cfg)
	if err != nil {
		return nil, err
	}
	s, err := dingtalk.SettingsFrom(cfg, secrets)
	if err != nil {
		return nil, err
	}
	s.RatePerSecond = r
	return dingtalk.NewClient(s)
}

// Reader opens the directory reader of a source.
func Reader(kind string, cfg, secrets map[string]string) (federation.DirectoryReader, error) {
	switch kind {
	case "wecom":
		c, err := wecomClient(cfg, secrets)
		if err != nil {
			return nil, err
		}
		return c.Reader(), nil
	case "dingtalk":
		c, err := dingtalkClient(cfg, secrets)
		if err != nil {
			return nil, err
		}
		return c.Reader(), nil
	}
	return nil, fmt.Errorf("no connector for kind %q", kind)
}

// Decoder opens the callback decoder of a source.
func Decoder(kind string, cfg, secrets map[string]string) (federation.CallbackDecoder, error) {
	switch kind {
	case "wecom":
		return wecom.NewDecoder(cfg, secrets)
	case "dingtalk":
		return dingtalk.NewDecoder(cfg, secrets)
	}
	return nil, fmt.Errorf("no event callbacks for kind %q", kind)
}

type wecomLogin struct {
	c      *wecom.Client
	mode   string
	detail bool
	domain string
}

func (l *wecomLogin) AuthURL(redirectURI, state, lang string, inApp bool) (string, error) {
	mode := l.mode
	if inApp {
		mode = wecom.LoginInApp
		if l.detail {
			mode = wecom.LoginInAppInfo
		}
	}
	return l.c.AuthURL(mode, redirectURI, state, lang)
}

func (l *wecomLogin) Exchange(ctx context.Context, code string, inApp bool) (*federation.Identity, error) {
	method := "wecom_qr"
	if inApp {
		method = "wecom_inapp"
	}
	return l.c.Exchange(ctx, code, method)
}

func (l *wecomLogin) CallbackDomain() string { return l.domain }

type dingtalkLogin struct {
	c      *dingtalk.Client
	domain string
}

func (l *dingtalkLogin) AuthURL(redirectURI, state, _ string, _ bool) (string, error) {
	return l.c.AuthURL(redirectURI, state), nil
}

func (l *dingtalkLogin) Exchange(ctx context.Context, code string, inApp bool) (*federation.Identity, error) {
	if inApp {
		return l.c.ExchangeInApp(ctx, code)
	}
	return l.c.Exchange(ctx, code)
}

func (l *dingtalkLogin) CallbackDomain() string { return l.domain }

// Login opens the login of a source. WeCom's config.login_mode picks the QR page ("qr", the
// default, or "qr_legacy"); config.inapp_detail=true asks in-app logins for the sensitive fields
// (snsapi_privateinfo).
func Login(kind string, cfg, secrets map[string]string) (federation.Login, error) {
	switch kind {
	case "wecom":
		mode := cfg["login_mode"]
		if mode == "" {
			mode = wecom.LoginQR
		}
		if mode != wecom.LoginQR && mode != wecom.LoginQRLegacy {
			return nil, fmt.Errorf("config.login_mode %q must be qr or qr_legacy", mode)
		}
		c, err := wecomClient(cfg, secrets)
		if err != nil {
			return nil, err
		}
		return &wecomLogin{c: c, mode: mode, detail: cfg["inapp_detail"] == "true", domain: cfg["callback_domain"]}, nil
	case "dingtalk":
		c, err := dingtalkClient(cfg, secrets)
		if err != nil {
			return nil, err
		}
		return &dingtalkLogin{c: c, domain: cfg["callback_domain"]}, nil
	}
	return nil, fmt.Errorf("no upstream login for kind %q", kind)
}
