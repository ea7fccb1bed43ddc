package wecom

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/qiao-gateway/qiao/federation"
)

// Login modes of a WeCom source.
const (
	LoginQR        = "qr"           // wwlogin/sso/login (the current QR page)
	LoginQRLegacy  = "qr_legacy"    // wwopen/sso/qrConnect (the old QR page)
	LoginInApp     = "inapp"        // in-WeCom web OAuth, snsapi_base
	LoginInAppInfo = "inapp_detail" // in-WeCom web OAuth, snsapi_privateinfo (sensitive fields, with consent)
)

// OAuthBase is the in-app OAuth host; the simulator serves it on the API base URL.
const DefaultOAuthBase = "https://open.weixin.qq.com"

var inAppState = regexp.MustCompile(`^[a-zA-Z0-9]{1,128}$`)

// AuthURL returns the URL that starts a login of the given mode, returning to redirectURI with
// state. In-app OAuth requires a state of letters and digits (at most 128).
func (c *Client) AuthURL(mode, redirectURI, state, lang string) (string, error) {
	q := url.Values{"appid": {c.s.CorpID}, "redirect_uri": {redirectURI}, "state": {state}}
	if lang == "en" || lang == "zh" {
		q.Set("lang", lang)
	}
	if c.s.AgentID == "" {
		return "", errors.New("config.agent_id is required for login")
	}
	switch mode {
	case LoginQR, "":
		q.Set("login_type", "CorpApp")
		q.Set("agentid", c.s.AgentID)
		return c.s.LoginBase + "/wwlogin/sso/login?" + q.Encode(), nil
	case LoginQRLegacy:
		q.Set("agentid", c.s.AgentID)
		base := c.s.OpenBase
		return base + "/wwopen/sso/qrConnect?" + q.Encode(), nil
	case LoginInApp, LoginInAppInfo:
		if !inAppState.MatchString(state) {
			return "", errors.New("in-app OAuth state must be 1-128 letters and digits")
		}
		q.Del("lang")
		q.Set("response_type", "code")
		q.Set("agentid", c.s.AgentID)
		q.Set("scope", "snsapi_base")
		if mode == LoginInAppInfo {
			q.Set("scope", "snsapi_privateinfo")
		}
		return c.s.OAuthBase + "/connect/oauth2/authorize?" + q.Encode() + "#wechat_redirect", nil
	}
	return "", fmt.Errorf("unknown WeCom login mode %q", mode)
}

// Exchange turns a login code into an identity with the app's token: auth/getuserinfo, then,
// when the login carried a user_ticket (snsapi_privateinfo), auth/getuserdetail, whose fields the
// person consented to disclose (Identity.Consented). A person outside the corp (an openid instead
// of a userid) is ErrNotMember.
func (c *Client) Exchange(ctx context.Context, code, method string) (*federation.Identity, error) {
	if code == "" || len(code) > 512 {
		return nil, &federation.Error{Platform: "WeCom", API: "auth/getuserinfo", Message: "missing or oversized code"}
	}
	var info struct {
		UserID     string `json:"userid"`
		OpenID     string `json:"openid"`
		UserTicket string `json:"user_ticket"`
	}
	if err := c.Call(ctx, "auth/getuserinfo", http.MethodGet, url.Values{"code": {code}}, nil, c.s.Secret, &info); err != nil {
		var fe *federation.Error
		if errors.As(err, &fe) && fe.Code == 40029 {
			fe.Message = "the login code is invalid, already used or expired (40029): start the login again"
		}
		return nil, err
	}
	if info.UserID == "" {
		return nil, federation.ErrNotMember
	}
	id := &federation.Identity{UserID: info.UserID, Method: method, Attrs: map[string]string{}}
	if info.UserTicket != "" {
		var d map[string]any
		if err := c.Call(ctx, "auth/getuserdetail", http.MethodPost, nil, map[string]string{"user_ticket": info.UserTicket}, c.s.Secret, &d); err != nil {
			return nil, err
		}
		if u, _ := d["userid"].(string); u != "" && u != info.UserID {
			// The directory is about to keep these fields for info.UserID.
			return nil, &federation.Error{Platform: "WeCom", API: "auth/getuserdetail", Message: "the user_ticket's details are of " + u + ", not of " + info.UserID}
		}
		for _, k := range []string{"mobile", "email", "biz_mail", "gender", "avatar", "address"} {
			if v, ok := d[k].(string); ok && v != "" {
				id.Attrs[k] = v
			}
		}
		// Gender "0" is what WeCom answers when the person did not disclose it: not a value.
		if id.Attrs["gender"] == "0" {
			delete(id.Attrs, "gender")
		}
		id.Consented = true
	}
	return id, nil
}

// CallbackDomainOK reports whether a redirect URI's host is the source's trusted domain: WeCom
// refuses any other (50001), host and port compared exactly.
func CallbackDomainOK(redirectURI, domain string) bool {
	u, err := url.Parse(redirectURI)
	return err == nil && domain != "" && strings.EqualFold(u.Host, domain)
}
