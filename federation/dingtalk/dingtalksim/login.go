package dingtalksim

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/qiao-gateway/qiao/federation/simkit"
	"github.com/qiao-gateway/qiao/federation/simorg"
)

type scanTicket struct {
	Redirect string
	State    string
	AppKey   string
}

// loginError is the platform's error page, with a way back to the app: redirect is the login's
// redirect URI when it is known (after a scan), else the request's redirect_uri is used.
func (s *Sim) loginError(w http.ResponseWriter, r *http.Request, msg string, redirect ...string) {
	s.kit.Record(simkit.Call{At: s.cfg.Now(), Method: r.Method, API: "oauth2/auth", IP: simkit.CallerIP(r), ErrCode: 400})
	back := r.URL.Query().Get("redirect_uri")
	if len(redirect) > 0 {
		back = redirect[0]
	}
	simkit.RenderScan(w, http.StatusBadRequest, simkit.ScanPage{Platform: "钉钉", Title: "登录失败", Error: msg, Back: simkit.BackTo(back, r)})
}

// oauthAuth is the browser login page (QR or account login).
func (s *Sim) oauthAuth(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	a := s.appByKey(q.Get("client_id"))
	if a == nil {
		s.loginError(w, r, "client_id 不存在 (no app with this client_id)")
		return
	}
	if q.Get("response_type") != "code" {
		s.loginError(w, r, "response_type must be code")
		return
	}
	scope := strings.Fields(q.Get("scope"))
	if len(scope) == 0 || scope[0] != "openid" || (len(scope) == 2 && scope[1] != "corpid") || len(scope) > 2 {
		s.loginError(w, r, "scope must be openid or \"openid corpid\"")
		return
	}
	if q.Get("prompt") != "consent" {
		s.loginError(w, r, "prompt must be consent")
		return
	}
	ru, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || q.Get("redirect_uri") == "" || (ru.Scheme != "http" && ru.Scheme != "https") {
		s.loginError(w, r, "redirect_uri is missing or not an absolute URL")
		return
	}
	if ru.Host != a.RedirectDomain {
		s.loginError(w, r, "redirect_uri 与应用配置的回调地址不一致 (the redirect host "+ru.Host+" is not the app's registered redirect URL)")
		return
	}
	t := scanTicket{Redirect: ru.String(), State: q.Get("state"), AppKey: a.AppKey}
	s.kit.Record(simkit.Call{At: s.cfg.Now(), Method: r.Method, API: "oauth2/auth", IP: simkit.CallerIP(r)})
	if who := q.Get("sim_user"); who != "" {
		s.completeScan(w, r, t, who)
		return
	}
	ticket := s.scans.Issue(t, 10*time.Minute, s.cfg.Now())
	scanURL := "https://login.dingtalk.com/sim-scan?ticket=" + ticket
	o := s.cfg.Org
	var people []simkit.Person
	o.RLock()
	ids := append([]string{"zhangsan"}, o.UserIDs()...)
	for i, id := range ids {
		u := o.User(id)
		if u == nil || (i > 0 && id == "zhangsan") || u.Status != simorg.StatusActive {
			continue
		}
		dept := ""
		if d := o.Dept(u.MainDept); d != nil {
			dept = d.Name
		}
		people = append(people, simkit.Person{ID: u.UserID, Name: u.Name, Dept: dept})
		if len(people) >= 200 {
			break
		}
	}
	o.RUnlock()
	simkit.RenderScan(w, http.StatusOK, simkit.ScanPage{Platform: "钉钉", Title: "钉钉扫码登录", QR: simkit.QRDataURL(scanURL),
		ScanURL: scanURL, Action: "/_sim/scan", Ticket: ticket, People: people, Outsider: true})
}

func (s *Sim) scan(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	t, found := s.scans.Take(r.PostForm.Get("ticket"), s.cfg.Now())
	if !found {
		s.loginError(w, r, "二维码已失效 (this QR code expired; reload the login page)")
		return
	}
	s.completeScan(w, r, t, r.PostForm.Get("user"))
}

// completeScan redirects with both code and authCode (the same value), as the tutorial shows;
// a declined login redirects with error and state.
func (s *Sim) completeScan(w http.ResponseWriter, r *http.Request, t scanTicket, who string) {
	ru, _ := url.Parse(t.Redirect)
	q := ru.Query()
	q.Set("state", t.State)
	a := s.appByKey(t.AppKey)
	var g userToken
	switch who {
	case "@deny":
		q.Set("error", "access_denied")
		ru.RawQuery = q.Encode()
		http.Redirect(w, r, ru.String(), http.StatusFound)
		return
	case "@outsider":
		// Someone with a DingTalk account who is not in this org: they get a unionid that
		// getbyunionid does not know.
		g = userToken{UnionID: "outsider" + simkit.Token(8), Nick: "外部人员"}
	case "@external":
		// An external contact of this org (a supplier, say): getbyunionid knows them, as
		// contact_type 1, but they are not a member.
		g = userToken{UnionID: "external" + simkit.Token(8), Nick: "外部联系人"}
		s.externals.Store(g.UnionID, "ext_"+simkit.Token(6))
	default:
		o := s.cfg.Org
		o.RLock()
		u := o.User(who)
		if u == nil || u.Status != simorg.StatusActive {
			o.RUnlock()
			s.loginError(w, r, "no active member "+who+" in this org", t.Redirect)
			return
		}
		g = userToken{UserID: u.UserID, UnionID: u.UnionID, Nick: u.Name}
		o.RUnlock()
	}
	g.app = a
	code := s.codes.Issue(g, CodeTTL, s.cfg.Now())
	q.Set("code", code)
	q.Set("authCode", code)
	ru.RawQuery = q.Encode()
	http.Redirect(w, r, ru.String(), http.StatusFound)
}

// JSAPICode issues an in-app free-login code for userid, as dd.requestAuthCode does in the app.
func (s *Sim) JSAPICode(userid string) (string, bool) {
	o := s.cfg.Org
	o.RLock()
	u := o.User(userid)
	ok := u != nil && u.Status == simorg.StatusActive
	o.RUnlock()
	if !ok {
		return "", false
	}
	return s.jsCodes.Issue(u.UserID, CodeTTL, s.cfg.Now()), true
}
