package dingtalksim

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"time"

	"github.com/qiao-gateway/qiao/federation/simkit"
	"github.com/qiao-gateway/qiao/federation/simorg"
)

// ---- tokens

func (s *Sim) appByKey(key string) *App {
	for i := range s.cfg.Apps {
		if s.cfg.Apps[i].AppKey == key {
			return &s.cfg.Apps[i]
		}
	}
	return nil
}

// issue returns the app's token, the same one while it is valid ("repeated fetch inside validity
// returns the same token and extends it").
func (s *Sim) issue(a *App) *cred {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.byApp[a.AppKey]
	if c == nil || !now.Before(c.expires) {
		if c != nil {
			delete(s.tokens, c.token)
		}
		c = &cred{app: a, token: simkit.Token(16)}
		s.byApp[a.AppKey] = c
		s.tokens[c.token] = c
	}
	c.expires = now.Add(TokenTTL)
	cc := *c
	return &cc
}

func (s *Sim) gettoken(w http.ResponseWriter, r *http.Request) {
	rec := &codeRecorder{ResponseWriter: w}
	ip := simkit.CallerIP(r)
	defer func() {
		s.kit.Record(simkit.Call{At: s.cfg.Now(), Method: r.Method, API: "gettoken", IP: ip, ErrCode: rec.code})
	}()
	if s.ipBanned(rec, r, ip) {
		return
	}
	if f := s.kit.TakeFault("gettoken"); f != nil && f.ErrCode != 0 {
		s.oapiErr(rec, f.ErrCode, "")
		return
	}
	q := r.URL.Query()
	a := s.appByKey(q.Get("appkey"))
	switch {
	case (a == nil || q.Get("appsecret") != a.AppSecret) && s.cfg.BadCredentialCode != 0:
		s.oapiErr(rec, s.cfg.BadCredentialCode, "")
		return
	case a == nil:
		s.oapiErr(rec, 40089, "")
		return
	case q.Get("appsecret") != a.AppSecret:
		s.oapiErr(rec, 40001, "")
		return
	}
	c := s.issue(a)
	simkit.WriteJSON(rec, http.StatusOK, map[string]any{"errcode": 0, "errmsg": "ok", "access_token": c.token, "expires_in": int(TokenTTL.Seconds())})
}

// newErr writes a new-API error: an HTTP status and {code, requestid, message}.
func (s *Sim) newErr(w http.ResponseWriter, status int, code, msg string) {
	rid := simkit.Token(12)
	w.Header().Set("x-acs-request-id", rid)
	if cr, ok := w.(*codeRecorder); ok {
		cr.code = status
	}
	simkit.WriteJSON(w, status, map[string]string{"code": code, "requestid": rid, "message": msg})
}

func (s *Sim) newOK(w http.ResponseWriter, v any) {
	w.Header().Set("x-acs-request-id", simkit.Token(12))
	simkit.WriteJSON(w, http.StatusOK, v)
}

// jsonBody reads a new-API body: JSON only.
func (s *Sim) jsonBody(w http.ResponseWriter, r *http.Request, v any) bool {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "application/json" {
		s.newErr(w, http.StatusBadRequest, "Missingbody", "body is mandatory for this action.")
		return false
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(v); err != nil {
		s.newErr(w, http.StatusBadRequest, "InvalidParameter", "the body is not valid JSON")
		return false
	}
	return true
}

// newAPI records the call and applies faults, the IP ban and the per-app limit of the new API.
func (s *Sim) newAPI(w http.ResponseWriter, r *http.Request, api string) (*codeRecorder, func(), bool) {
	rec := &codeRecorder{ResponseWriter: w}
	ip := simkit.CallerIP(r)
	done := func() {
		s.kit.Record(simkit.Call{At: s.cfg.Now(), Method: r.Method, API: api, IP: ip, ErrCode: rec.code})
	}
	if s.ipBanned(rec, r, ip) {
		return rec, done, false
	}
	if f := s.kit.TakeFault(api); f != nil {
		time.Sleep(time.Duration(f.LatencyMS) * time.Millisecond)
		if f.HTTPCode != 0 {
			s.newErr(rec, f.HTTPCode, "Injected", fmt.Sprintf("injected HTTP %d", f.HTTPCode))
			return rec, done, false
		}
	}
	return rec, done, true
}

func (s *Sim) newAccessToken(w http.ResponseWriter, r *http.Request) {
	rec, done, good := s.newAPI(w, r, "oauth2/accessToken")
	defer done()
	if !good {
		return
	}
	var b struct {
		AppKey    string `json:"appKey"`
		AppSecret string `json:"appSecret"`
	}
	if !s.jsonBody(rec, r, &b) {
		return
	}
	a := s.appByKey(b.AppKey)
	if a == nil || a.AppSecret != b.AppSecret {
		s.newErr(rec, http.StatusBadRequest, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
		return
	}
	c := s.issue(a)
	s.newOK(rec, map[string]any{"accessToken": c.token, "expireIn": int(TokenTTL.Seconds())})
}

func (s *Sim) unifiedToken(w http.ResponseWriter, r *http.Request) {
	rec, done, good := s.newAPI(w, r, "oauth2/token")
	defer done()
	if !good {
		return
	}
	var b struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		GrantType    string `json:"grant_type"`
	}
	if !s.jsonBody(rec, r, &b) {
		return
	}
	if b.GrantType != "client_credentials" {
		s.newErr(rec, http.StatusBadRequest, "unsupported.grant.type", "grant_type must be client_credentials")
		return
	}
	a := s.appByKey(b.ClientID)
	if r.PathValue("corpId") != s.cfg.CorpID || a == nil || a.AppSecret != b.ClientSecret {
		s.newErr(rec, http.StatusBadRequest, "invalid.client", "client authentication failed")
		return
	}
	c := s.issue(a)
	s.newOK(rec, map[string]any{"access_token": c.token, "expires_in": int(TokenTTL.Seconds())})
}

// userAccessToken exchanges a browser authCode (or a refresh token) for a user token.
func (s *Sim) userAccessToken(w http.ResponseWriter, r *http.Request) {
	rec, done, good := s.newAPI(w, r, "oauth2/userAccessToken")
	defer done()
	if !good {
		return
	}
	var b struct {
		ClientID     string `json:"clientId"`
		ClientSecret string `json:"clientSecret"`
		Code         string `json:"code"`
		RefreshToken string `json:"refreshToken"`
		GrantType    string `json:"grantType"`
	}
	if !s.jsonBody(rec, r, &b) {
		return
	}
	a := s.appByKey(b.ClientID)
	if a == nil || a.AppSecret != b.ClientSecret {
		s.newErr(rec, http.StatusBadRequest, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
		return
	}
	now := s.cfg.Now()
	var ut userToken
	switch b.GrantType {
	case "authorization_code":
		g, found := s.codes.Take(b.Code, now)
		if b.Code == "" || !found || g.app.AppKey != a.AppKey {
			s.newErr(rec, http.StatusBadRequest, "invalidCode", "不合法的临时授权码")
			return
		}
		ut = g
	case "refresh_token":
		g, found := s.refreshes.Take(b.RefreshToken, now)
		if b.RefreshToken == "" || !found || g.app.AppKey != a.AppKey {
			s.newErr(rec, http.StatusBadRequest, "invalidRefreshToken", "不合法的refreshToken")
			return
		}
		ut = g
	default:
		s.newErr(rec, http.StatusBadRequest, "invalidGrantType", "grantType must be authorization_code or refresh_token")
		return
	}
	tok := simkit.Token(16)
	ut.expires = now.Add(TokenTTL)
	ut.app = a
	s.mu.Lock()
	s.userToks[tok] = &ut
	s.mu.Unlock()
	refresh := s.refreshes.Issue(ut, RefreshTokenTTL, now)
	out := map[string]any{"accessToken": tok, "refreshToken": refresh, "expireIn": int(TokenTTL.Seconds())}
	if ut.UserID != "" {
		out["corpId"] = s.cfg.CorpID
	}
	s.newOK(rec, out)
}

// usersMe answers with the person behind a user token.
func (s *Sim) usersMe(w http.ResponseWriter, r *http.Request) {
	rec, done, good := s.newAPI(w, r, "contact/users/me")
	defer done()
	if !good {
		return
	}
	tok := r.Header.Get("x-acs-dingtalk-access-token")
	s.mu.Lock()
	ut := s.userToks[tok]
	var u userToken
	if ut != nil {
		u = *ut
	}
	s.mu.Unlock()
	if ut == nil || !s.cfg.Now().Before(u.expires) {
		// HTTP 400, not 401 (upstream-apis.md §2.1; satorijs/satori#240).
		s.newErr(rec, http.StatusBadRequest, "InvalidAuthentication", "不合法的access_token")
		return
	}
	out := map[string]any{"nick": u.Nick, "avatarUrl": "", "openId": "open" + u.UnionID, "unionId": u.UnionID, "stateCode": "86"}
	if u.UserID != "" {
		o := s.cfg.Org
		o.RLock()
		p := o.User(u.UserID)
		if p == nil || !present(p) {
			o.RUnlock()
			s.newErr(rec, http.StatusNotFound, "invalidParameter.user.notFound", "用户不存在")
			return
		}
		out["nick"], out["mobile"], out["email"] = p.Name, p.Mobile, p.Email
		o.RUnlock()
	}
	s.newOK(rec, out)
}

// present reports whether a user exists on DingTalk: it has no disabled or exited state, so those
// users are simply not there.
func present(u *simorg.User) bool {
	return u.Status == simorg.StatusActive || u.Status == simorg.StatusNotActivated
}
