// Package dingtalksim is a faithful stand-in for DingTalk (钉钉): the oapi host (oapi.dingtalk.com,
// errcode JSON with HTTP 200), the new API host (api.dingtalk.com, HTTP status with
// {code, requestid, message}), the login host (login.dingtalk.com) and the HTTP event push, on one
// http.Handler, following upstream-apis.md §2. A control API under /_sim/ changes the directory
// (firing events), injects faults and shows the calls received.
package dingtalksim

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/qiao-gateway/qiao/federation/simkit"
	"github.com/qiao-gateway/qiao/federation/simorg"
)

// App is an internal (企业内部) app of the simulated org.
type App struct {
	AgentID   int    `json:"agent_id"`
	Name      string `json:"name"`
	AppKey    string `json:"app_key"` // also the OAuth client_id
	AppSecret string `json:"app_secret"`
	// RedirectDomain is the host[:port] of the app's registered redirect URL, matched exactly.
	RedirectDomain string `json:"redirect_domain"`
	// VisibleDepts is the app's contact scope (通讯录权限范围); empty = the whole org.
	VisibleDepts []int `json:"visible_depts"`
	// NoContactRead: the app lacks the contact-read permission point (60011 / 403).
	NoContactRead bool `json:"no_contact_read"`
	// MobilePerm (企业员工手机号信息) and EmailPerm (邮箱等个人信息) unlock those fields.
	MobilePerm bool     `json:"mobile_perm"`
	EmailPerm  bool     `json:"email_perm"`
	TrustedIPs []string `json:"trusted_ips"`
}

// Config configures a simulator.
type Config struct {
	CorpID string
	Apps   []App
	// Callback crypto; the receive key is the AppKey of the first app (an app-level subscription
	// from the developer console) unless EventReceiveKey names another (e.g. the CorpId).
	CallbackToken   string
	CallbackAESKey  string
	EventReceiveKey string
	// LegacyEvents sends the legacy payload shape ({"EventType","TimeStamp","UserId"}); the
	// default is the current one ({"EventType","EventTime","userId",...}).
	LegacyEvents bool
	// BadCredentialCode, when set, is the errcode gettoken answers for an unknown AppKey or a
	// wrong AppSecret instead of the documented 40089 / 40001 (upstream-apis.md §2.5). The issue
	// tracker reports 40096 for today's platform; not confirmed from a primary source, so it is a
	// setting.
	BadCredentialCode int
	// AccessLimited are userids of access-limited employees (访问受限, e.g. hidden executives):
	// v2/user/list and user/listsimple leave them out unless the body says
	// contain_access_limit: true ("是否返回访问受限的员工"; absent = false).
	AccessLimited []string
	RateLimits    bool
	Org           *simorg.Org
	Now           func() time.Time
}

// Lifetimes from upstream-apis.md §2.2 and §2.4.
const (
	TokenTTL        = 7200 * time.Second
	RefreshTokenTTL = 30 * 24 * time.Hour
	CodeTTL         = 5 * time.Minute
)

type cred struct {
	app     *App
	token   string
	expires time.Time
}

type userToken struct {
	UserID  string // empty for someone outside the org
	UnionID string
	Nick    string
	app     *App
	expires time.Time
}

// Sim is the simulator.
type Sim struct {
	cfg       Config
	kit       *simkit.Kit
	mux       *http.ServeMux
	mu        sync.Mutex
	tokens    map[string]*cred
	byApp     map[string]*cred
	userToks  map[string]*userToken
	refreshes *simkit.Codes[userToken]
	codes     *simkit.Codes[userToken] // browser OAuth authCode
	jsCodes   *simkit.Codes[string]    // H5 free-login code -> userid
	scans     *simkit.Codes[scanTicket]
	events    *simkit.Pusher
	limits    bool
	// externals are the org's external contacts (外部联系人) who have logged in: unionid -> userid.
	// getbyunionid knows them, with contact_type 1.
	externals sync.Map
	// stream is the Stream-mode gateway (stream.go), made on first use.
	stream     *streamHub
	streamOnce sync.Once
}

// New returns a simulator over cfg.Org.
func New(cfg Config) *Sim {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Org == nil {
		cfg.Org = simorg.New("模拟企业")
	}
	if cfg.EventReceiveKey == "" && len(cfg.Apps) > 0 {
		cfg.EventReceiveKey = cfg.Apps[0].AppKey
	}
	s := &Sim{cfg: cfg, kit: simkit.NewKit(100000), mux: http.NewServeMux(), tokens: map[string]*cred{}, byApp: map[string]*cred{},
		userToks: map[string]*userToken{}, refreshes: simkit.NewCodes[userToken](), codes: simkit.NewCodes[userToken](),
		jsCodes: simkit.NewCodes[string](), scans: simkit.NewCodes[scanTicket](), limits: cfg.RateLimits}
	s.events = simkit.NewPusher(EventAttempts, s.push)
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

// ExpireTokens makes every issued app and user token expired.
func (s *Sim) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	past := s.cfg.Now().Add(-time.Second)
	for _, c := range s.tokens {
		c.expires = past
	}
	for _, u := range s.userToks {
		u.expires = past
	}
}

// Close stops the event pusher and closes the Stream connections.
func (s *Sim) Close() {
	s.events.Close()
	s.hub().close()
}

func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Sim) routes() {
	m := s.mux
	m.HandleFunc("GET /gettoken", s.gettoken)
	m.HandleFunc("POST /v1.0/oauth2/accessToken", s.newAccessToken)
	m.HandleFunc("POST /v1.0/oauth2/{corpId}/token", s.unifiedToken)
	m.HandleFunc("POST /v1.0/oauth2/userAccessToken", s.userAccessToken)
	m.HandleFunc("GET /v1.0/contact/users/me", s.usersMe)
	s.oapi(m, "v2/department/listsub", true, s.listsub)
	s.oapi(m, "v2/department/listsubid", false, s.listsubid)
	s.oapi(m, "v2/department/get", true, s.deptGet)
	s.oapi(m, "v2/department/listparentbyuser", true, s.listParentByUser)
	s.oapi(m, "user/listid", false, s.userListID)
	s.oapi(m, "user/listsimple", true, s.userListSimple)
	s.oapi(m, "v2/user/list", true, s.userList)
	s.oapi(m, "v2/user/get", true, s.userGet)
	s.oapi(m, "user/getbyunionid", false, s.getByUnionID)
	s.oapi(m, "user/count", true, s.userCount)
	s.oapi(m, "v2/user/getuserinfo", false, s.h5UserInfo)
	m.HandleFunc("GET /oauth2/auth", s.oauthAuth)
	s.controlRoutes()
	s.streamRoutes()
}

// ---- oapi plumbing

var errText = map[int]string{
	-1: "系统繁忙", 33012: "无效的userId", 40001: "获取access_token时Secret错误，或者access_token无效", 40014: "不合法的access_token",
	40035: "参数非法", 40069: "无效的size", 40096: "不合法的appKey或appSecret", 40078: "不存在的临时授权码", 40089: "不合法的corpid或corpsecret", 41001: "缺少access_token参数",
	42001: "access_token超时", 50002: "员工不在权限范围", 50004: "部门不在权限范围", 60003: "部门不存在", 60011: "没有调用该接口的权限",
	60020: "访问ip不在白名单之中", 60111: "userid不存在", 60121: "找不到该用户", 90018: "当前请求并发访问受限，请稍后重试", 400002: "无效的参数",
}

func (s *Sim) oapiErr(w http.ResponseWriter, code int, text string) {
	if text == "" {
		text = errText[code]
	}
	if cr, ok := w.(*codeRecorder); ok {
		cr.code = code
	}
	simkit.WriteJSON(w, http.StatusOK, map[string]any{"errcode": code, "errmsg": text, "request_id": simkit.Token(8)})
}

// topErr answers an authentication failure on /topapi/* the way the API gateway in front of it
// does: HTTP 200, errcode 88 ("鉴权异常"), the cause in sub_code / sub_msg, e.g.
// {"errcode":88,"sub_code":"40014","sub_msg":"不合法的access_token",
// "errmsg":"ding talk error[subcode=40014,submsg=不合法的access_token]","request_id":"…"}
// (global error-code page, copied on blog.csdn.net/weixin_38171468/article/details/106051120;
// the 40014 form quoted in cryozerolabs/n8n-nodes-dingtalk#12).
func (s *Sim) topErr(w http.ResponseWriter, sub int) {
	if cr, ok := w.(*codeRecorder); ok {
		cr.code = 88
	}
	msg := errText[sub]
	simkit.WriteJSON(w, http.StatusOK, map[string]any{"errcode": 88, "sub_code": strconv.Itoa(sub), "sub_msg": msg,
		"errmsg": "ding talk error[subcode=" + strconv.Itoa(sub) + ",submsg=" + msg + "]", "request_id": simkit.Token(8)})
}

func oapiOK(w http.ResponseWriter, result any) {
	simkit.WriteJSON(w, http.StatusOK, map[string]any{"errcode": 0, "errmsg": "ok", "result": result, "request_id": simkit.Token(8)})
}

type codeRecorder struct {
	http.ResponseWriter
	code int
}

// body reads a topapi body: JSON (what SDKs send) or form-urlencoded (the doc's curl examples).
func body(r *http.Request) (map[string]any, error) {
	r.Body = http.MaxBytesReader(nil, r.Body, 1<<20)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/x-www-form-urlencoded" {
		if err := r.ParseForm(); err != nil {
			return nil, err
		}
		out := map[string]any{}
		for k, v := range r.PostForm {
			out[k] = v[0]
		}
		return out, nil
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return map[string]any{}, nil
	}
	var out map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

// intField reads an integer that may arrive as a JSON number or a string.
func intField(m map[string]any, k string) (int64, bool, bool) {
	v, present := m[k]
	if !present {
		return 0, false, true
	}
	switch x := v.(type) {
	case json.Number:
		n, err := x.Int64()
		return n, true, err == nil
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		return n, true, err == nil
	}
	return 0, true, false
}

func strField(m map[string]any, k string) string {
	switch x := m[k].(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	}
	return ""
}

func boolField(m map[string]any, k string) (bool, bool) {
	switch x := m[k].(type) {
	case bool:
		return x, true
	case string:
		b, err := strconv.ParseBool(x)
		return b, err == nil
	case nil:
		return false, true
	}
	return false, false
}

// oapi registers POST /topapi/<name> with the checks every oapi call goes through: faults,
// token, trusted IP, permission, rate limits.
func (s *Sim) oapi(m *http.ServeMux, name string, scoped bool, h func(w http.ResponseWriter, r *http.Request, c *cred, b map[string]any)) {
	api := name
	m.HandleFunc("POST /topapi/"+name, func(w http.ResponseWriter, r *http.Request) {
		rec := &codeRecorder{ResponseWriter: w}
		ip := simkit.CallerIP(r)
		defer func() {
			s.kit.Record(simkit.Call{At: s.cfg.Now(), Method: r.Method, API: api, IP: ip, ErrCode: rec.code})
		}()
		if s.ipBanned(rec, r, ip) {
			return
		}
		if f := s.kit.TakeFault(api); f != nil {
			time.Sleep(time.Duration(f.LatencyMS) * time.Millisecond)
			if f.HTTPCode >= 500 {
				rec.code = -f.HTTPCode
				http.Error(w, "upstream error", f.HTTPCode)
				return
			}
			if f.ErrCode != 0 {
				s.oapiErr(rec, f.ErrCode, "")
				return
			}
		}
		tok := r.URL.Query().Get("access_token")
		if tok == "" {
			s.oapiErr(rec, 41001, "")
			return
		}
		c, good := s.appCred(tok)
		if !good {
			// Expired, revoked and unknown tokens all answer 40014 on oapi (upstream-apis.md
			// §2.2), wrapped in errcode 88 on /topapi/*.
			s.topErr(rec, 40014)
			return
		}
		if len(c.app.TrustedIPs) > 0 && !slices.Contains(c.app.TrustedIPs, ip) {
			s.oapiErr(rec, 60020, "访问ip不在白名单之中，请求ip为"+ip)
			return
		}
		if scoped && c.app.NoContactRead && api != "v2/user/getuserinfo" {
			s.topErr(rec, 60011)
			return
		}
		if s.appLimited(c.app, api) {
			s.oapiErr(rec, 90018, "")
			return
		}
		b, err := body(r)
		if err != nil {
			s.oapiErr(rec, 40035, "参数非法: body is not JSON or form")
			return
		}
		h(rec, r, c, b)
	})
}

func (s *Sim) appCred(tok string) (*cred, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.tokens[tok]
	if c == nil || !s.cfg.Now().Before(c.expires) {
		return nil, false
	}
	cc := *c
	return &cc, true
}

// ---- rate limits (upstream-apis.md §2.6)

func (s *Sim) limitsOn() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limits
}

// appLimited: 20 calls per second per app per API.
func (s *Sim) appLimited(a *App, api string) bool {
	if !s.limitsOn() {
		return false
	}
	return s.kit.Hit("app:"+a.AppKey+":"+api, time.Second, 20, s.cfg.Now())
}

// ipBanned: 10,000 calls per 20 s from one IP across all APIs bans it for 5 minutes, with a
// body that is not the errcode format.
func (s *Sim) ipBanned(w http.ResponseWriter, r *http.Request, ip string) bool {
	if !s.limitsOn() {
		return false
	}
	now := s.cfg.Now()
	if !s.kit.IsBlocked("ip:"+ip, now) && !s.kit.Hit("ip:"+ip, 20*time.Second, 10000, now) {
		return false
	}
	if !s.kit.IsBlocked("ip:"+ip, now) {
		s.kit.Block("ip:"+ip, now.Add(5*time.Minute))
	}
	if cr, ok := w.(*codeRecorder); ok {
		cr.code = 1111
	}
	simkit.WriteJSON(w, http.StatusOK, map[string]any{"status": 1111, "wait": 5, "source": "x5", "punish": "deny", "uuid": simkit.Token(8)})
	return true
}
