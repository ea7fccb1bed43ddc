package wecomsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/qiao-gateway/qiao/federation/simkit"
	"github.com/qiao-gateway/qiao/federation/simorg"
)

// The control API lives under /_sim/, never on a platform path. Changes made here are changes
// "in the admin console": they fire events, unlike writes through the contact-sync API.
func (s *Sim) controlRoutes() {
	m := s.mux
	m.HandleFunc("GET /_sim/{$}", s.ctlInfo)
	m.HandleFunc("GET /_sim/users", s.ctlUsers)
	m.HandleFunc("POST /_sim/users", s.ctlPutUser)
	m.HandleFunc("DELETE /_sim/users/{userid}", s.ctlDeleteUser)
	m.HandleFunc("POST /_sim/users/{userid}/rename", s.ctlRenameUser)
	m.HandleFunc("GET /_sim/departments", s.ctlDepts)
	m.HandleFunc("POST /_sim/departments", s.ctlPutDept)
	m.HandleFunc("DELETE /_sim/departments/{id}", s.ctlDeleteDept)
	simkit.Control{Kit: s.kit, Pusher: s.events, ExpireTokens: s.ExpireTokens, SetRateLimits: s.SetRateLimits, SetCallback: s.SetCallback,
		FaultHelp: "want {\"api\": \"user/get\" or \"*\", \"errcode\": N, \"count\": N, \"latency_ms\": N}"}.Routes(m)
	m.HandleFunc("POST /_sim/scan", s.scan)
	m.HandleFunc("POST /_sim/contact-restricted", s.ctlContactRestricted)
	m.HandleFunc("GET /_sim/apps/{agentid}/domain-verification", s.ctlDomainFile)
	m.HandleFunc("POST /_sim/apps/{agentid}/trusted-domain", s.ctlTrustedDomain)
}

// trustedDomain is the app's trusted domain: the one set through the control API, else its
// configured one.
func (s *Sim) trustedDomain(a *App) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.domains[a.AgentID]; ok {
		return d
	}
	return a.TrustedDomain
}

// DomainFile is the ownership file the admin console hands out for an app's trusted domain: it
// must be served at the domain's root (upstream-apis.md §1.5.5: WW_verify_xxx.txt at web root).
func (s *Sim) DomainFile(agentID int) (name, content string) {
	return DomainFile(s.cfg.CorpID, agentID)
}

// DomainFile is the ownership file of the corp's app agentID, the same in every simulator.
func DomainFile(corpID string, agentID int) (name, content string) {
	label := corpID + "/" + strconv.Itoa(agentID)
	return "WW_verify_" + simkit.Derive(0, "ww-verify-name/"+label, 16) + ".txt", simkit.Derive(0, "ww-verify-content/"+label, 16)
}

func (s *Sim) ctlDomainFile(w http.ResponseWriter, r *http.Request) {
	a := s.app(r.PathValue("agentid"))
	if a == nil {
		ctlErr(w, http.StatusNotFound, "no app with that agent ID")
		return
	}
	name, content := s.DomainFile(a.AgentID)
	simkit.WriteJSON(w, http.StatusOK, map[string]string{"file": name, "content": content})
}

// ctlTrustedDomain sets an app's trusted domain as the console does: only after fetching the
// ownership file from the domain's root and finding its content.
func (s *Sim) ctlTrustedDomain(w http.ResponseWriter, r *http.Request) {
	a := s.app(r.PathValue("agentid"))
	if a == nil {
		ctlErr(w, http.StatusNotFound, "no app with that agent ID")
		return
	}
	var b struct {
		Domain string `json:"domain"`
	}
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil || b.Domain == "" || strings.ContainsAny(b.Domain, "/?#@ ") {
		ctlErr(w, http.StatusBadRequest, "want {\"domain\": \"host[:port]\"}")
		return
	}
	name, content := s.DomainFile(a.AgentID)
	if err := fetchDomainFile(r.Context(), "http://"+b.Domain+"/"+name, content); err != nil {
		ctlErr(w, http.StatusBadRequest, "域名归属校验未通过 (domain ownership not verified): "+err.Error())
		return
	}
	s.mu.Lock()
	s.domains[a.AgentID] = b.Domain
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func fetchDomainFile(ctx context.Context, u, content string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s did not answer: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered HTTP %d", u, resp.StatusCode)
	}
	if strings.TrimSpace(string(body)) != content {
		return fmt.Errorf("%s does not hold the verification content", u)
	}
	return nil
}

// ctlContactRestricted switches the 2022-08-15 rule for the contact-sync secret, as adding the
// caller's IP anew to 通讯录同步 in the admin console does.
func (s *Sim) ctlContactRestricted(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Enabled *bool `json:"enabled"`
	}
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil || b.Enabled == nil {
		ctlErr(w, http.StatusBadRequest, "want {\"enabled\": true|false}")
		return
	}
	s.SetContactRestricted(*b.Enabled)
	w.WriteHeader(http.StatusNoContent)
}

// captureWriter buffers a response instead of sending it.
type captureWriter struct {
	header http.Header
	body   bytes.Buffer
}

func (c *captureWriter) Header() http.Header         { return c.header }
func (c *captureWriter) Write(b []byte) (int, error) { return c.body.Write(b) }
func (c *captureWriter) WriteHeader(int)             {}

func ctlErr(w http.ResponseWriter, status int, msg string) { simkit.CtlErr(w, status, msg) }

func (s *Sim) ctlInfo(w http.ResponseWriter, r *http.Request) {
	depts, users := s.cfg.Org.Counts()
	simkit.WriteJSON(w, http.StatusOK, map[string]any{"platform": "wecom", "corp_id": s.cfg.CorpID, "apps": s.cfg.Apps,
		"departments": depts, "users": users})
}

func (s *Sim) ctlUsers(w http.ResponseWriter, r *http.Request) {
	o := s.cfg.Org
	o.RLock()
	defer o.RUnlock()
	c := &cred{} // the console sees everything
	out := make([]map[string]any, 0)
	for _, id := range o.UserIDs() {
		out = append(out, s.userJSON(c, o.User(id)))
	}
	simkit.WriteJSON(w, http.StatusOK, out)
}

// ctlPutUser creates or updates a user from a user/create-shaped body and fires the event.
func (s *Sim) ctlPutUser(w http.ResponseWriter, r *http.Request) {
	var b UserBody
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		ctlErr(w, http.StatusBadRequest, "body must be a user/create JSON object")
		return
	}
	o := s.cfg.Org
	o.RLock()
	exists := o.User(b.UserID) != nil
	o.RUnlock()
	capture := &captureWriter{header: http.Header{}}
	rec := &codeRecorder{ResponseWriter: capture}
	before, after := s.putUser(rec, r, &b, !exists)
	if after == nil {
		// The platform's answer would be errcode JSON with HTTP 200; the control API is ours and
		// says 400, quoting the errcode an admin console would show.
		var e struct {
			ErrCode int    `json:"errcode"`
			ErrMsg  string `json:"errmsg"`
		}
		_ = json.Unmarshal(capture.body.Bytes(), &e)
		simkit.WriteJSON(w, http.StatusBadRequest, map[string]any{"error": "errcode_" + strconv.Itoa(e.ErrCode),
			"message": errText[e.ErrCode], "errcode": e.ErrCode})
		return
	}
	if exists {
		s.userEvent("update_user", before, after, "")
	} else {
		s.userEvent("create_user", nil, after, "")
	}
	simkit.WriteJSON(w, http.StatusOK, s.userJSON(&cred{}, after))
}

func (s *Sim) ctlDeleteUser(w http.ResponseWriter, r *http.Request) {
	u, err := s.cfg.Org.DeleteUser(r.PathValue("userid"))
	if err != nil {
		ctlErr(w, http.StatusNotFound, err.Error())
		return
	}
	s.deleteUserEvent(u.UserID)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) ctlRenameUser(w http.ResponseWriter, r *http.Request) {
	var b struct {
		NewUserID string `json:"new_userid"`
	}
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil || !useridRe.MatchString(b.NewUserID) {
		ctlErr(w, http.StatusBadRequest, "want {\"new_userid\": \"...\"} with a valid userid")
		return
	}
	o := s.cfg.Org
	o.RLock()
	old := o.User(r.PathValue("userid"))
	var before *simorg.User
	if old != nil {
		before = old.Clone()
	}
	o.RUnlock()
	after, err := o.RenameUser(r.PathValue("userid"), b.NewUserID)
	if err != nil {
		ctlErr(w, http.StatusConflict, err.Error())
		return
	}
	s.userEvent("update_user", before, after, after.UserID)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) ctlDepts(w http.ResponseWriter, r *http.Request) {
	o := s.cfg.Org
	o.RLock()
	defer o.RUnlock()
	out := make([]map[string]any, 0)
	for _, id := range o.DeptIDs() {
		out = append(out, deptJSON(o.Dept(id), true))
	}
	simkit.WriteJSON(w, http.StatusOK, out)
}

// ctlPutDept creates a department (no id, or an unused one) or updates (moves, renames) one.
func (s *Sim) ctlPutDept(w http.ResponseWriter, r *http.Request) {
	var b struct {
		ID       int     `json:"id"`
		Name     *string `json:"name"`
		NameEn   *string `json:"name_en"`
		ParentID *int    `json:"parentid"`
		Order    *uint32 `json:"order"`
	}
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		ctlErr(w, http.StatusBadRequest, "want {\"id\", \"name\", \"parentid\", \"order\"}")
		return
	}
	o := s.cfg.Org
	o.RLock()
	cur := o.Dept(b.ID)
	var before simorg.Dept
	if cur != nil {
		before = *cur
	}
	o.RUnlock()
	if cur == nil {
		if b.Name == nil || b.ParentID == nil {
			ctlErr(w, http.StatusBadRequest, "a new department needs name and parentid")
			return
		}
		if code := validDeptName(*b.Name); code != 0 {
			ctlErr(w, http.StatusBadRequest, "errcode "+strconv.Itoa(code)+": "+errText[code])
			return
		}
		d := simorg.Dept{ID: b.ID, Name: *b.Name, ParentID: *b.ParentID}
		if b.NameEn != nil {
			d.NameEn = *b.NameEn
		}
		if b.Order != nil {
			d.Order = *b.Order
		}
		nd, err := o.AddDept(d)
		if err != nil {
			ctlErr(w, http.StatusConflict, err.Error())
			return
		}
		s.partyEvent("create_party", nil, nd)
		simkit.WriteJSON(w, http.StatusOK, deptJSON(nd, true))
		return
	}
	nd, err := o.UpdateDept(b.ID, b.Name, b.NameEn, b.ParentID, b.Order)
	if err != nil {
		ctlErr(w, http.StatusConflict, err.Error())
		return
	}
	after := *nd
	s.partyEvent("update_party", &before, &after)
	simkit.WriteJSON(w, http.StatusOK, deptJSON(&after, true))
}

func (s *Sim) ctlDeleteDept(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		ctlErr(w, http.StatusBadRequest, "department id must be a number")
		return
	}
	if err := s.cfg.Org.DeleteDept(id); err != nil {
		ctlErr(w, http.StatusConflict, err.Error())
		return
	}
	s.partyEvent("delete_party", nil, &simorg.Dept{ID: id})
	w.WriteHeader(http.StatusNoContent)
}
