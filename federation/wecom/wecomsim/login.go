package wecomsim

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/qiao-gateway/qiao/federation/simkit"
	"github.com/qiao-gateway/qiao/federation/simorg"
)

// CodeTTL and TicketTTL are the documented lifetimes of a login code and a user_ticket.
const (
	CodeTTL   = 5 * time.Minute
	TicketTTL = 1800 * time.Second
	scanTTL   = 10 * time.Minute
)

type loginGrant struct {
	UserID  string // empty for a non-member
	OpenID  string
	AgentID int
	Scope   string // snsapi_base, snsapi_privateinfo, or "" for web login
}

// scanTicket is a login page waiting for its scan.
type scanTicket struct {
	Redirect string
	State    string
	AgentID  int
	Scope    string
	Flow     string
}

var stateRe = regexp.MustCompile(`^[a-zA-Z0-9]{0,128}$`)

func (s *Sim) app(agentID string) *App {
	id, err := strconv.Atoi(agentID)
	if err != nil {
		return nil
	}
	for i := range s.cfg.Apps {
		if s.cfg.Apps[i].AgentID == id {
			return &s.cfg.Apps[i]
		}
	}
	return nil
}

// checkLogin validates a login URL's parameters as the platform does; the error is shown on the
// platform's page (no redirect happens).
func (s *Sim) checkLogin(r *http.Request, requireAgent bool) (*App, *url.URL, int, string) {
	q := r.URL.Query()
	if q.Get("appid") != s.cfg.CorpID {
		return nil, nil, 40013, "appid is not this corp's CorpID"
	}
	var a *App
	if q.Get("agentid") != "" || requireAgent {
		if a = s.app(q.Get("agentid")); a == nil {
			return nil, nil, 40056, "invalid agentid"
		}
	}
	ru, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || q.Get("redirect_uri") == "" || (ru.Scheme != "http" && ru.Scheme != "https") {
		return nil, nil, 40058, "redirect_uri is missing or not an absolute URL"
	}
	// The trusted domain must equal the redirect host, port included; scheme and path are ignored.
	domains := []string{}
	if a != nil {
		domains = append(domains, s.trustedDomain(a))
	} else {
		for i := range s.cfg.Apps {
			domains = append(domains, s.trustedDomain(&s.cfg.Apps[i]))
		}
	}
	if !slices.Contains(domains, ru.Host) {
		return nil, nil, 50001, "redirect_uri 需使用应用可信域名 (the redirect host " + ru.Host + " is not the app's trusted domain)"
	}
	return a, ru, 0, ""
}

func (s *Sim) loginNew(w http.ResponseWriter, r *http.Request) {
	if lt := r.URL.Query().Get("login_type"); lt != "CorpApp" {
		s.loginError(w, r, 40058, "login_type must be CorpApp for a self-built app (ServiceApp is for service providers)")
		return
	}
	s.loginPage(w, r, "wwlogin", true)
}

func (s *Sim) loginOld(w http.ResponseWriter, r *http.Request) { s.loginPage(w, r, "qrConnect", true) }

// loginError is the platform's error page, with a way back to the app: redirect is the login's
// redirect URI when it is known (after a scan), else the request's redirect_uri is used.
func (s *Sim) loginError(w http.ResponseWriter, r *http.Request, code int, msg string, redirect ...string) {
	s.kit.Record(simkit.Call{At: s.cfg.Now(), Method: r.Method, API: "login", IP: simkit.CallerIP(r), ErrCode: code})
	back := r.URL.Query().Get("redirect_uri")
	if len(redirect) > 0 {
		back = redirect[0]
	}
	simkit.RenderScan(w, http.StatusBadRequest, simkit.ScanPage{Platform: "企业微信", Title: "登录失败", Error: msg, ErrCode: code, Back: simkit.BackTo(back, r)})
}

func (s *Sim) loginPage(w http.ResponseWriter, r *http.Request, flow string, requireAgent bool) {
	a, ru, code, msg := s.checkLogin(r, requireAgent)
	if code != 0 {
		s.loginError(w, r, code, msg)
		return
	}
	agent := 0
	if a != nil {
		agent = a.AgentID
	}
	t := scanTicket{Redirect: ru.String(), State: r.URL.Query().Get("state"), AgentID: agent, Flow: flow, Scope: r.URL.Query().Get("scope")}
	s.kit.Record(simkit.Call{At: s.cfg.Now(), Method: r.Method, API: "login", IP: simkit.CallerIP(r)})
	if who := r.URL.Query().Get("sim_user"); who != "" {
		s.completeScan(w, r, t, who)
		return
	}
	ticket := s.scans.Issue(t, scanTTL, s.cfg.Now())
	scanURL := "https://work.weixin.qq.com/sim-scan?ticket=" + ticket
	o := s.cfg.Org
	var people []simkit.Person
	o.RLock()
	c := &cred{app: a}
	// The demo's well-known user first, then everyone else (the page shows 200 at most).
	ids := append([]string{"zhangsan"}, o.UserIDs()...)
	for i, id := range ids {
		u := o.User(id)
		if u == nil || (i > 0 && id == "zhangsan") {
			continue
		}
		if u.Status == simorg.StatusActive && s.userVisible(c, u) {
			dept := ""
			if d := o.Dept(u.MainDept); d != nil {
				dept = d.Name
			}
			people = append(people, simkit.Person{ID: u.UserID, Name: u.Name, Dept: dept})
			if len(people) >= 200 {
				break
			}
		}
	}
	o.RUnlock()
	title := "企业微信扫码登录"
	if flow == "oauth" {
		title = "企业微信网页授权"
	}
	simkit.RenderScan(w, http.StatusOK, simkit.ScanPage{Platform: "企业微信", Title: title, QR: simkit.QRDataURL(scanURL), ScanURL: scanURL,
		Action: "/_sim/scan", Ticket: ticket, People: people, Outsider: true})
}

// scan is the form the login page posts: the chosen person "scans".
func (s *Sim) scan(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	t, found := s.scans.Take(r.PostForm.Get("ticket"), s.cfg.Now())
	if !found {
		s.loginError(w, r, 40029, "this QR code expired; reload the login page")
		return
	}
	s.completeScan(w, r, t, r.PostForm.Get("user"))
}

// completeScan redirects to the app with a code for who (a userid, "@outsider" or "@deny").
func (s *Sim) completeScan(w http.ResponseWriter, r *http.Request, t scanTicket, who string) {
	ru, _ := url.Parse(t.Redirect)
	q := ru.Query()
	if t.State != "" || t.Flow != "oauth" {
		q.Set("state", t.State)
	}
	g := loginGrant{AgentID: t.AgentID, Scope: t.Scope}
	switch who {
	case "@deny":
		// Denied: the redirect carries state only, no code.
		ru.RawQuery = q.Encode()
		http.Redirect(w, r, ru.String(), http.StatusFound)
		return
	case "@outsider":
		g.OpenID = "oOutsider" + simkit.Token(8)
	default:
		o := s.cfg.Org
		o.RLock()
		u := o.User(who)
		var a *App
		if ap := s.appByID(t.AgentID); ap != nil {
			a = ap
		}
		visible := u != nil && s.userVisible(&cred{app: a}, u)
		active := u != nil && u.Status == simorg.StatusActive
		if u != nil {
			who = u.UserID
		}
		o.RUnlock()
		switch {
		case u == nil:
			s.loginError(w, r, 60111, "no member "+who+" in this corp", t.Redirect)
			return
		case !active:
			s.loginError(w, r, 60111, "member "+who+" is disabled, not activated or has left", t.Redirect)
			return
		case !visible && t.Flow != "oauth":
			// QR login for someone outside the app's visible scope fails at the scan.
			s.loginError(w, r, 50002, "member "+who+" is outside the app's visible scope", t.Redirect)
			return
		}
		g.UserID = who
	}
	code := s.codes.Issue(g, CodeTTL, s.cfg.Now())
	q.Set("code", code)
	ru.RawQuery = q.Encode()
	http.Redirect(w, r, ru.String(), http.StatusFound)
}

func (s *Sim) appByID(id int) *App {
	for i := range s.cfg.Apps {
		if s.cfg.Apps[i].AgentID == id {
			return &s.cfg.Apps[i]
		}
	}
	return nil
}

// oauthAuthorize is the in-WeCom web OAuth (网页授权): snsapi_base is silent for the member using
// the app (sim_user names them); snsapi_privateinfo asks for consent (the page).
func (s *Sim) oauthAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("response_type") != "code" {
		s.loginError(w, r, 40058, "response_type must be code")
		return
	}
	scope := q.Get("scope")
	if scope != "snsapi_base" && scope != "snsapi_privateinfo" {
		s.loginError(w, r, 40058, "scope must be snsapi_base or snsapi_privateinfo")
		return
	}
	if !stateRe.MatchString(q.Get("state")) {
		s.loginError(w, r, 40058, "state must be at most 128 letters and digits")
		return
	}
	if scope == "snsapi_privateinfo" && q.Get("agentid") == "" {
		// Without agentid the platform treats the request as snsapi_base.
		q.Set("scope", "snsapi_base")
		r.URL.RawQuery = q.Encode()
	}
	s.loginPage(w, r, "oauth", false)
}

// authGetUserInfo exchanges a login code (single use, 5 minutes) with the app's token.
func (s *Sim) authGetUserInfo(w http.ResponseWriter, r *http.Request, c *cred) {
	code := r.URL.Query().Get("code")
	g, found := s.codes.Take(code, s.cfg.Now())
	if code == "" || !found {
		s.errJSON(w, r, 40029, "invalid code")
		return
	}
	if g.OpenID != "" {
		ok(w, "ok", map[string]any{"openid": g.OpenID})
		return
	}
	out := map[string]any{"userid": g.UserID}
	if g.Scope == "snsapi_privateinfo" && g.AgentID != 0 && c.app.AgentID == g.AgentID {
		o := s.cfg.Org
		o.RLock()
		u := o.User(g.UserID)
		visible := u != nil && s.userVisible(c, u)
		o.RUnlock()
		if visible {
			out["user_ticket"] = s.tix.Issue(g.UserID, TicketTTL, s.cfg.Now())
			out["expires_in"] = int(TicketTTL.Seconds())
		}
	}
	ok(w, "ok", out)
}

// authGetUserDetail returns the sensitive fields a member consented to share.
func (s *Sim) authGetUserDetail(w http.ResponseWriter, r *http.Request, c *cred) {
	var b struct {
		UserTicket string `json:"user_ticket"`
	}
	if err := decodeBody(r, &b); err != nil {
		s.errJSON(w, r, 40058, "Warning: wrong json format.")
		return
	}
	uid, found := s.tix.Peek(b.UserTicket, s.cfg.Now())
	if b.UserTicket == "" || !found {
		s.errJSON(w, r, 40058, "invalid user_ticket")
		return
	}
	o := s.cfg.Org
	o.RLock()
	defer o.RUnlock()
	u := o.User(uid)
	if u == nil {
		s.errJSON(w, r, 60111, "")
		return
	}
	if !s.userVisible(c, u) {
		s.errJSON(w, r, 50002, "")
		return
	}
	ok(w, "ok", map[string]any{"userid": u.UserID, "gender": u.Gender, "avatar": u.Avatar,
		"qr_code": "https://open.work.weixin.qq.com/wwopen/userQRCode?vcode=" + u.UserID,
		"mobile":  u.Mobile, "email": u.Email, "biz_mail": u.BizMail, "address": u.Address})
}
