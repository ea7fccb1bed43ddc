// Package wecomsim is a faithful stand-in for WeCom (企业微信): the API host (qyapi.weixin.qq.com),
// the login hosts (login.work.weixin.qq.com, open.work.weixin.qq.com, open.weixin.qq.com) and the
// callback push, on one http.Handler, following upstream-apis.md §1. A control API under /_sim/
// changes the directory (firing events), injects faults and shows the calls received.
package wecomsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/qiao-gateway/qiao/federation/simkit"
	"github.com/qiao-gateway/qiao/federation/simorg"
)

// App is a self-built app of the simulated corp.
type App struct {
	AgentID int    `json:"agent_id"`
	Name    string `json:"name"`
	Secret  string `json:"secret"`
	// Post2022 marks an app created after 2022-06-20 20:00: user/get and user/list withhold the
	// sensitive fields.
	Post2022 bool `json:"post_2022"`
	// VisibleDepts and VisibleUsers are the app's visibility scope (可见范围); empty = the root.
	VisibleDepts []int    `json:"visible_depts"`
	VisibleUsers []string `json:"visible_users"`
	// TrustedDomain is the OAuth trusted domain: host[:port], matched exactly.
	TrustedDomain string `json:"trusted_domain"`
	// TrustedIPs, when set, are the only callers the app's token works from (60020 otherwise).
	TrustedIPs []string `json:"trusted_ips"`
}

// Config configures a simulator.
type Config struct {
	CorpID        string
	Apps          []App
	ContactSecret string   // 通讯录同步 secret: the only one allowed user/list_id and writes
	ContactIPs    []string // trusted IPs of the contact-sync secret; empty = any
	// ContactRestricted applies the 2022-08-15 rule to the contact-sync secret, as for calls from
	// an IP newly added to 通讯录同步: the full read APIs (department/list, department/get,
	// user/get, user/simplelist, user/list) answer 48009 "api forbidden for contact assistant" and
	// only department/simplelist + user/list_id work. POST /_sim/contact-restricted switches it.
	ContactRestricted bool
	CallbackToken     string
	CallbackAESKey    string
	// ExpiredTokenCode is the errcode of a call with an expired token: 40014 "invalid
	// access_token", what the platform answers today (NotFound403/wecom-sdk#22, 2024-11, quoting
	// the devtool page: a token used after its validity "就是会提示token非法"), unless set to the
	// documented 42001 "access_token expired" (upstream-apis.md §1.6).
	ExpiredTokenCode int
	// MinimalEvents: member events carry only UserID and Department (post-2022-08-15 callbacks).
	MinimalEvents bool
	// RateLimits turns on the published per-corp and per-IP limits (on by default in New's callers).
	RateLimits bool
	Org        *simorg.Org
	Now        func() time.Time
}

// TokenTTL is the access token lifetime.
const TokenTTL = 7200 * time.Second

type cred struct {
	app     *App // nil = contact-sync secret
	secret  string
	token   string
	expires time.Time
}

// Sim is the simulator.
type Sim struct {
	cfg    Config
	kit    *simkit.Kit
	mux    *http.ServeMux
	mu     sync.Mutex
	tokens map[string]*cred // by token
	bySec  map[string]*cred // by secret
	codes  *simkit.Codes[loginGrant]
	tix    *simkit.Codes[string] // user_ticket -> userid
	scans  *simkit.Codes[scanTicket]
	events *simkit.Pusher
	limits bool
	// restricted is the live ContactRestricted.
	restricted bool
	// domains are trusted domains set through the control API (verified), by agent ID.
	domains map[int]string
}

// New returns a simulator over cfg.Org.
func New(cfg Config) *Sim {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Org == nil {
		cfg.Org = simorg.New("模拟企业")
	}
	s := &Sim{cfg: cfg, kit: simkit.NewKit(100000), mux: http.NewServeMux(), tokens: map[string]*cred{}, bySec: map[string]*cred{},
		codes: simkit.NewCodes[loginGrant](), tix: simkit.NewCodes[string](), scans: simkit.NewCodes[scanTicket](), limits: cfg.RateLimits,
		restricted: cfg.ContactRestricted, domains: map[int]string{}}
	s.events = simkit.NewPusher(CallbackAttempts, s.post)
	s.routes()
	return s
}

// Org is the simulated directory.
func (s *Sim) Org() *simorg.Org { return s.cfg.Org }

// Kit exposes the call log and fault injection.
func (s *Sim) Kit() *simkit.Kit { return s.kit }

// SetRateLimits switches the published limits on or off.
func (s *Sim) SetRateLimits(on bool) {
	s.mu.Lock()
	s.limits = on
	s.mu.Unlock()
	s.kit.ResetLimits()
}

// SetContactRestricted switches the 2022-08-15 rule for the contact-sync secret (48009 on the
// full read APIs).
func (s *Sim) SetContactRestricted(on bool) {
	s.mu.Lock()
	s.restricted = on
	s.mu.Unlock()
}

// SetTrustedIPs sets the trusted IPs of the app with that agent ID (none: any caller), as an admin
// does in the app's 企业可信IP; it reports whether the app exists.
func (s *Sim) SetTrustedIPs(agentID int, ips []string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.cfg.Apps {
		if s.cfg.Apps[i].AgentID == agentID {
			s.cfg.Apps[i].TrustedIPs = append([]string(nil), ips...)
			return true
		}
	}
	return false
}

// ExpireTokens makes every issued token expired (40014, or Config.ExpiredTokenCode, on next use).
func (s *Sim) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	past := s.cfg.Now().Add(-time.Second)
	for _, c := range s.tokens {
		c.expires = past
	}
}

// Close stops the event pusher.
func (s *Sim) Close() { s.events.Close() }

func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Sim) routes() {
	m := s.mux
	m.HandleFunc("GET /cgi-bin/gettoken", s.gettoken)
	s.api(m, "GET /cgi-bin/department/list", "department/list", fullRead, s.departmentList)
	s.api(m, "GET /cgi-bin/department/simplelist", "department/simplelist", anyCred, s.departmentSimplelist)
	s.api(m, "GET /cgi-bin/department/get", "department/get", fullRead, s.departmentGet)
	s.api(m, "GET /cgi-bin/user/simplelist", "user/simplelist", fullRead, s.userSimplelist)
	s.api(m, "GET /cgi-bin/user/list", "user/list", fullRead, s.userList)
	s.api(m, "POST /cgi-bin/user/list_id", "user/list_id", contactOnly, s.userListID)
	s.api(m, "GET /cgi-bin/user/get", "user/get", fullRead, s.userGet)
	s.api(m, "POST /cgi-bin/department/create", "department/create", contactOnly, s.departmentCreate)
	s.api(m, "POST /cgi-bin/department/update", "department/update", contactOnly, s.departmentUpdate)
	s.api(m, "GET /cgi-bin/department/delete", "department/delete", contactOnly, s.departmentDelete)
	s.api(m, "POST /cgi-bin/user/create", "user/create", contactOnly, s.userCreate)
	s.api(m, "POST /cgi-bin/user/update", "user/update", contactOnly, s.userUpdate)
	s.api(m, "GET /cgi-bin/user/delete", "user/delete", contactOnly, s.userDelete)
	s.api(m, "POST /cgi-bin/user/batchdelete", "user/batchdelete", contactOnly, s.userBatchDelete)
	s.api(m, "GET /cgi-bin/auth/getuserinfo", "auth/getuserinfo", appOnly, s.authGetUserInfo)
	s.api(m, "POST /cgi-bin/auth/getuserdetail", "auth/getuserdetail", appOnly, s.authGetUserDetail)
	m.HandleFunc("GET /wwlogin/sso/login", s.loginNew)
	m.HandleFunc("GET /wwopen/sso/qrConnect", s.loginOld)
	m.HandleFunc("GET /connect/oauth2/authorize", s.oauthAuthorize)
	s.controlRoutes()
	m.HandleFunc("/cgi-bin/", func(w http.ResponseWriter, r *http.Request) {
		s.errJSON(w, r, 48002, "api forbidden")
	})
}

// ---- errors

var errText = map[int]string{
	-1: "system busy", 40001: "invalid credential", 40003: "invalid userid", 40013: "invalid corpid",
	40014: "invalid access_token", 40029: "invalid code", 40031: "invalid userid list", 40032: "userid list too long",
	40035: "invalid parameter", 40056: "invalid agentid", 40058: "invalid parameter", 40063: "empty parameter",
	40091: "secret is invalid", 41001: "access_token missing", 41002: "corpid missing", 41004: "corpsecret missing",
	41009: "missing userid", 42001: "access_token expired", 45009: "api freq out of limit", 48002: "api forbidden",
	48009: "api forbidden for contact assistant",
	50001: "redirect_url not on trusted domain", 50100: "invalid cursor", 60001: "invalid department name length", 60002: "department level too deep",
	60003: "department not found", 60004: "parent department not found", 60005: "department contains members",
	60006: "department contains sub-departments", 60007: "not allow to delete root department", 60008: "department exists",
	60009: "department name contains illegal characters", 60010: "department exists a circle", 60011: "no privilege to access/modify contact/party/agent",
	60020: "not allow to access from your ip", 60102: "userid existed", 60103: "mobile invalid", 60104: "mobile existed",
	60105: "email invalid", 60106: "email existed", 60110: "user department count exceeds the limit", 60111: "userid not found",
	60112: "invalid name", 60123: "invalid department id", 60124: "invalid parent department id", 60125: "invalid department name",
	60127: "missing department", 60129: "mobile and email both empty", 60132: "is_leader_in_dept size mismatch",
}

// ErrMsg formats errmsg the way the platform does, with the hint and the caller's IP.
func ErrMsg(code int, text, ip string) string {
	if text == "" {
		text = errText[code]
	}
	return fmt.Sprintf("%s, hint: [%d-%s], from ip: %s, more info at https://open.work.weixin.qq.com/devtool/query?e=%d",
		text, time.Now().Unix(), simkit.Token(4), ip, code)
}

func (s *Sim) errJSON(w http.ResponseWriter, r *http.Request, code int, text string) {
	if cr, ok := w.(*codeRecorder); ok {
		cr.code = code
	}
	simkit.WriteJSON(w, http.StatusOK, map[string]any{"errcode": code, "errmsg": ErrMsg(code, text, simkit.CallerIP(r))})
}

func ok(w http.ResponseWriter, msg string, fields map[string]any) {
	if fields == nil {
		fields = map[string]any{}
	}
	fields["errcode"] = 0
	fields["errmsg"] = msg
	simkit.WriteJSON(w, http.StatusOK, fields)
}

// ---- tokens

func (s *Sim) gettoken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	corp, secret := q.Get("corpid"), q.Get("corpsecret")
	code := 0
	defer func() {
		s.kit.Record(simkit.Call{At: s.cfg.Now(), Method: r.Method, API: "gettoken", IP: simkit.CallerIP(r), ErrCode: code})
	}()
	if f := s.kit.TakeFault("gettoken"); f != nil {
		time.Sleep(time.Duration(f.LatencyMS) * time.Millisecond)
		if f.ErrCode != 0 {
			code = f.ErrCode
			s.errJSON(w, r, code, "")
			return
		}
	}
	switch {
	case corp == "":
		code = 41002
	case corp != s.cfg.CorpID:
		code = 40013
	case secret == "":
		code = 41004
	}
	var app *App
	if code == 0 && secret != s.cfg.ContactSecret {
		for i := range s.cfg.Apps {
			if s.cfg.Apps[i].Secret == secret {
				app = &s.cfg.Apps[i]
			}
		}
		if app == nil {
			code = 40001
		}
	}
	if code != 0 {
		s.errJSON(w, r, code, "")
		return
	}
	now := s.cfg.Now()
	s.mu.Lock()
	c := s.bySec[secret]
	if c == nil || !now.Before(c.expires) {
		if c != nil {
			delete(s.tokens, c.token)
		}
		// Real tokens are long opaque strings; 512 bytes is the documented maximum.
		c = &cred{app: app, secret: secret, token: simkit.Token(48), expires: now.Add(TokenTTL)}
		s.bySec[secret] = c
		s.tokens[c.token] = c
	}
	tok, left := c.token, c.expires.Sub(now)
	s.mu.Unlock()
	ok(w, "ok", map[string]any{"access_token": tok, "expires_in": int(left.Seconds())})
}

// Permission classes of APIs.
type perm int

const (
	anyCred     perm = iota
	fullRead         // the full read APIs: refused (48009) to a restricted contact-sync secret
	contactOnly      // contact-sync secret only
	appOnly          // an app's token only
)

// api wraps an endpoint with the checks every WeCom API call goes through, in the platform's
// order: faults, token, trusted IP, permission, rate limit.
func (s *Sim) api(m *http.ServeMux, pattern, name string, p perm, h func(w http.ResponseWriter, r *http.Request, c *cred)) {
	m.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		rec := &codeRecorder{ResponseWriter: w}
		ip := simkit.CallerIP(r)
		defer func() {
			s.kit.Record(simkit.Call{At: s.cfg.Now(), Method: r.Method, API: name, IP: ip, ErrCode: rec.code})
		}()
		r.Body = http.MaxBytesReader(w, r.Body, 2<<20)
		if f := s.kit.TakeFault(name); f != nil {
			time.Sleep(time.Duration(f.LatencyMS) * time.Millisecond)
			if f.HTTPCode >= 500 {
				rec.code = -f.HTTPCode
				http.Error(w, "upstream error", f.HTTPCode)
				return
			}
			if f.ErrCode != 0 {
				rec.code = f.ErrCode
				s.errJSON(w, r, f.ErrCode, "")
				return
			}
		}
		fail := func(code int, text string) {
			rec.code = code
			s.errJSON(w, r, code, text)
		}
		tok := r.URL.Query().Get("access_token")
		if tok == "" {
			fail(41001, "")
			return
		}
		s.mu.Lock()
		c := s.tokens[tok]
		var cc cred
		if c != nil {
			cc = *c
		}
		restricted := s.restricted
		trusted := s.cfg.ContactIPs
		if cc.app != nil {
			trusted = cc.app.TrustedIPs
		}
		s.mu.Unlock()
		if c == nil {
			fail(40014, "")
			return
		}
		now := s.cfg.Now()
		if !now.Before(cc.expires) {
			code := s.cfg.ExpiredTokenCode
			if code == 0 {
				code = 40014
			}
			fail(code, "")
			return
		}
		if len(trusted) > 0 && !slices.Contains(trusted, ip) {
			fail(60020, "")
			return
		}
		switch {
		case p == contactOnly && cc.app != nil,
			p == appOnly && cc.app == nil:
			fail(48002, "")
			return
		case p == fullRead && cc.app == nil && restricted:
			// Since 2022-08-15 the contact-sync secret may not read contact details from a newly
			// added IP; the platform answers 48009, not 48002.
			fail(48009, "")
			return
		}
		s.mu.Lock()
		limits := s.limits
		s.mu.Unlock()
		if limits && name != "auth/getuserinfo" && s.limited(name, ip, now) {
			fail(45009, "")
			return
		}
		h(rec, r, &cc)
	})
}

// limited applies the published limits (upstream-apis.md §1.7): per corp per API 10,000/min and
// 150,000/h; per IP per API 20,000/min. Exceeding a minute limit blocks for 60 s, an hour limit for
// an hour.
func (s *Sim) limited(api, ip string, now time.Time) bool {
	corpKey, ipKey := "corp:"+api, "ip:"+ip+":"+api
	if s.kit.IsBlocked(corpKey, now) || s.kit.IsBlocked(ipKey, now) {
		return true
	}
	switch {
	case s.kit.Hit(corpKey+":min", time.Minute, 10000, now):
		s.kit.Block(corpKey, now.Add(60*time.Second))
	case s.kit.Hit(corpKey+":hour", time.Hour, 150000, now):
		s.kit.Block(corpKey, now.Add(time.Hour))
	case s.kit.Hit(ipKey+":min", time.Minute, 20000, now):
		s.kit.Block(ipKey, now.Add(60*time.Second))
	default:
		return false
	}
	return true
}

// codeRecorder notes the errcode of JSON answers for the call log.
type codeRecorder struct {
	http.ResponseWriter
	code int
}

// ---- visibility

func (s *Sim) deptVisible(c *cred, id int) bool {
	if c.app == nil {
		return true
	}
	roots := c.app.VisibleDepts
	if len(roots) == 0 && len(c.app.VisibleUsers) == 0 {
		roots = []int{simorg.RootID}
	}
	o := s.cfg.Org
	for id != 0 {
		if slices.Contains(roots, id) {
			return true
		}
		d := o.Dept(id)
		if d == nil {
			return false
		}
		id = d.ParentID
	}
	return false
}

func (s *Sim) userVisible(c *cred, u *simorg.User) bool {
	if c.app == nil || slices.Contains(c.app.VisibleUsers, u.UserID) {
		return true
	}
	for _, d := range u.Depts {
		if s.deptVisible(c, d) {
			return true
		}
	}
	return false
}

// ---- JSON helpers

func queryInt(r *http.Request, name string) (int, bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.Atoi(v)
	return n, true, err
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	return dec.Decode(v)
}
