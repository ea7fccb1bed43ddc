package dingtalk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/qiao-gateway/qiao/federation"
)

// AuthURL returns the browser login URL (QR or account login) returning to redirectURI with state.
func (c *Client) AuthURL(redirectURI, state string) string {
	q := url.Values{"redirect_uri": {redirectURI}, "response_type": {"code"}, "client_id": {c.s.AppKey}, "scope": {"openid"},
		"state": {state}, "prompt": {"consent"}}
	if c.s.CorpID != "" {
		q.Set("scope", "openid corpid")
		q.Set("corpId", c.s.CorpID)
	}
	return c.s.LoginBase + "/oauth2/auth?" + q.Encode()
}

// newAPI calls api.dingtalk.com: JSON in and out, errors as HTTP status + {code, message}.
func (c *Client) newAPI(ctx context.Context, api, method, path string, body any, userToken string, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	var header http.Header
	if userToken != "" {
		// users/me authenticates with the user's token in a header.
		header = http.Header{"X-Acs-Dingtalk-Access-Token": {userToken}}
	}
	status, data, err := c.http.Do(ctx, api, method, c.s.APIBase+path, payload, header)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		var e struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(data, &e)
		fe := &federation.Error{Platform: "DingTalk", API: api, Code: status, SubCode: e.Code, Message: e.Code + ": " + e.Message}
		switch {
		case status == http.StatusNotFound:
			fe.Err = federation.ErrNotFound
		case status == http.StatusBadRequest && e.Code == "InvalidAuthentication":
			// The new API's answer to a bad or expired token: HTTP 400, not 401.
			fe.Message = "the access token was refused (HTTP 400 InvalidAuthentication: " + e.Message + "): sign in again"
		}
		return fe
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &federation.Error{Platform: "DingTalk", API: api, Message: "malformed answer", Err: err}
	}
	return nil
}

// Exchange turns a browser authCode into an identity: userAccessToken, then contact/users/me for
// the unionid, then user/getbyunionid with the app's token for the userid. Someone whose unionid
// the org does not know is ErrNotMember.
func (c *Client) Exchange(ctx context.Context, code string) (*federation.Identity, error) {
	if code == "" || len(code) > 512 {
		return nil, &federation.Error{Platform: "DingTalk", API: "oauth2/userAccessToken", Message: "missing or oversized code"}
	}
	var tok struct {
		AccessToken string `json:"accessToken"`
		CorpID      string `json:"corpId"`
	}
	body := map[string]string{"clientId": c.s.AppKey, "clientSecret": c.s.AppSecret, "code": code, "grantType": "authorization_code"}
	if err := c.newAPI(ctx, "oauth2/userAccessToken", http.MethodPost, "/v1.0/oauth2/userAccessToken", body, "", &tok); err != nil {
		return nil, err
	}
	if tok.CorpID != "" && c.s.CorpID != "" && tok.CorpID != c.s.CorpID {
		return nil, federation.ErrNotMember // logged in to another organisation
	}
	var me struct {
		UnionID string `json:"unionId"`
		Nick    string `json:"nick"`
		Mobile  string `json:"mobile"`
		Email   string `json:"email"`
	}
	if err := c.newAPI(ctx, "contact/users/me", http.MethodGet, "/v1.0/contact/users/me", nil, tok.AccessToken, &me); err != nil {
		return nil, err
	}
	var by struct {
		UserID      string `json:"userid"`
		ContactType int    `json:"contact_type"` // 0 a member, 1 an external contact
	}
	if err := c.OAPI(ctx, "user/getbyunionid", map[string]string{"unionid": me.UnionID}, &by); err != nil {
		if errors.Is(err, federation.ErrNotFound) {
			return nil, federation.ErrNotMember
		}
		return nil, err
	}
	if by.ContactType != 0 {
		return nil, federation.ErrExternalContact
	}
	attrs := map[string]string{}
	for k, v := range map[string]string{"name": me.Nick, "mobile": me.Mobile, "email": me.Email} {
		if v != "" {
			attrs[k] = v
		}
	}
	return &federation.Identity{UserID: by.UserID, UnionID: me.UnionID, Method: "dingtalk", Attrs: attrs}, nil
}

// ExchangeInApp turns an in-app free-login code (dd.requestAuthCode) into an identity.
func (c *Client) ExchangeInApp(ctx context.Context, code string) (*federation.Identity, error) {
	if code == "" || len(code) > 512 {
		return nil, &federation.Error{Platform: "DingTalk", API: "v2/user/getuserinfo", Message: "missing or oversized code"}
	}
	var res struct {
		UserID  string `json:"userid"`
		UnionID string `json:"unionid"`
	}
	if err := c.OAPI(ctx, "v2/user/getuserinfo", map[string]string{"code": code}, &res); err != nil {
		var fe *federation.Error
		if errors.As(err, &fe) && fe.Code == 40078 {
			fe.Message = "the in-app login code does not exist or was already used (40078): open the app again"
		}
		return nil, err
	}
	if res.UserID == "" {
		return nil, fmt.Errorf("DingTalk v2/user/getuserinfo answered without a userid: %w", federation.ErrNotMember)
	}
	return &federation.Identity{UserID: res.UserID, UnionID: res.UnionID, Method: "dingtalk_inapp", Attrs: map[string]string{}}, nil
}
