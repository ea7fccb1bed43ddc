package dingtalksim

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strconv"

	"github.com/qiao-gateway/qiao/federation/simkit"
	"github.com/qiao-gateway/qiao/federation/simorg"
)

// UserBody is the control API's user shape, in DingTalk's field names.
type UserBody struct {
	UserID     string  `json:"userid"`
	UnionID    string  `json:"unionid,omitempty"`
	Name       *string `json:"name,omitempty"`
	DeptIDList []int   `json:"dept_id_list,omitempty"`
	Mobile     *string `json:"mobile,omitempty"`
	Email      *string `json:"email,omitempty"`
	Title      *string `json:"title,omitempty"`
	JobNumber  *string `json:"job_number,omitempty"`
	Active     *bool   `json:"active,omitempty"` // false = joined, not activated yet
}

var useridRe = regexp.MustCompile(`^[0-9A-Za-z_\-@.]{1,64}$`)

func (s *Sim) controlRoutes() {
	m := s.mux
	m.HandleFunc("GET /_sim/{$}", func(w http.ResponseWriter, r *http.Request) {
		d, u := s.cfg.Org.Counts()
		simkit.WriteJSON(w, http.StatusOK, map[string]any{"platform": "dingtalk", "corp_id": s.cfg.CorpID, "apps": s.cfg.Apps, "departments": d, "users": u})
	})
	m.HandleFunc("GET /_sim/users", s.ctlUsers)
	m.HandleFunc("POST /_sim/users", s.ctlPutUser)
	m.HandleFunc("DELETE /_sim/users/{userid}", s.ctlDeleteUser)
	m.HandleFunc("GET /_sim/departments", s.ctlDepts)
	m.HandleFunc("POST /_sim/departments", s.ctlPutDept)
	m.HandleFunc("DELETE /_sim/departments/{id}", s.ctlDeleteDept)
	simkit.Control{Kit: s.kit, Pusher: s.events, ExpireTokens: s.ExpireTokens, SetRateLimits: s.SetRateLimits, SetCallback: s.SetCallback,
		FaultHelp: "want {\"api\": \"v2/user/list\" or \"*\", \"errcode\": N, \"http_status\": N, \"count\": N, \"latency_ms\": N}"}.Routes(m)
	m.HandleFunc("POST /_sim/jsapi/code", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			UserID string `json:"userid"`
		}
		_ = json.NewDecoder(r.Body).Decode(&b)
		code, ok := s.JSAPICode(b.UserID)
		if !ok {
			ctlErr(w, http.StatusNotFound, "no active user "+b.UserID)
			return
		}
		simkit.WriteJSON(w, http.StatusOK, map[string]string{"code": code})
	})
	m.HandleFunc("POST /_sim/scan", s.scan)
}

func ctlErr(w http.ResponseWriter, status int, msg string) { simkit.CtlErr(w, status, msg) }

var consoleApp = &App{MobilePerm: true, EmailPerm: true}

func (s *Sim) ctlUsers(w http.ResponseWriter, r *http.Request) {
	o := s.cfg.Org
	o.RLock()
	defer o.RUnlock()
	out := []map[string]any{}
	for _, id := range o.UserIDs() {
		if u := o.User(id); present(u) {
			out = append(out, s.userJSON(consoleApp, u, true))
		}
	}
	simkit.WriteJSON(w, http.StatusOK, out)
}

// ctlPutUser creates or updates a user and fires user_add_org, user_modify_org or, when a user
// becomes active, user_active_org.
func (s *Sim) ctlPutUser(w http.ResponseWriter, r *http.Request) {
	var b UserBody
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil || !useridRe.MatchString(b.UserID) {
		ctlErr(w, http.StatusBadRequest, "body must be {\"userid\", \"name\", \"dept_id_list\", ...} with a valid userid")
		return
	}
	o := s.cfg.Org
	o.RLock()
	cur := o.User(b.UserID)
	var u *simorg.User
	if cur != nil && present(cur) {
		u = cur.Clone()
	}
	for _, d := range b.DeptIDList {
		if o.Dept(d) == nil {
			o.RUnlock()
			ctlErr(w, http.StatusBadRequest, "department "+strconv.Itoa(d)+" does not exist")
			return
		}
	}
	o.RUnlock()
	create := u == nil
	var before *simorg.User
	if create {
		if b.Name == nil || len(b.DeptIDList) == 0 {
			ctlErr(w, http.StatusBadRequest, "a new user needs name and dept_id_list")
			return
		}
		u = &simorg.User{UserID: b.UserID, UnionID: b.UnionID, Status: simorg.StatusActive}
		if u.UnionID == "" {
			u.UnionID = simkit.Token(11) + "iE"
		}
	} else {
		before = u.Clone()
	}
	if b.Name != nil {
		u.Name = *b.Name
	}
	if b.DeptIDList != nil {
		u.Depts = slices.Clone(b.DeptIDList)
		u.Orders, u.IsLeader = make([]uint32, len(u.Depts)), make([]int, len(u.Depts))
		if !slices.Contains(u.Depts, u.MainDept) {
			u.MainDept = u.Depts[0]
		}
	}
	for p, v := range map[*string]*string{&u.Mobile: b.Mobile, &u.Email: b.Email, &u.Position: b.Title, &u.JobNumber: b.JobNumber} {
		if v != nil {
			*p = *v
		}
	}
	if b.Active != nil {
		u.Status = simorg.StatusNotActivated
		if *b.Active {
			u.Status = simorg.StatusActive
		}
	}
	if cur != nil && !present(cur) {
		// A disabled or exited user does not exist on DingTalk; adding them again replaces them.
		_, _ = o.DeleteUser(cur.UserID)
	}
	stored, err := o.PutUser(u, create)
	if err != nil {
		ctlErr(w, http.StatusConflict, err.Error())
		return
	}
	switch {
	case before == nil:
		s.fire("user_add_org", []string{stored.UserID}, nil, nil)
	case before.Status == simorg.StatusNotActivated && stored.Status == simorg.StatusActive:
		s.fire("user_active_org", []string{stored.UserID}, nil, nil)
	default:
		diff := map[string]any{"userid": stored.UserID,
			"prev": map[string]any{"name": before.Name, "deptIdList": before.Depts, "title": before.Position},
			"curr": map[string]any{"name": stored.Name, "deptIdList": stored.Depts, "title": stored.Position}}
		s.fire("user_modify_org", []string{stored.UserID}, nil, diff)
	}
	simkit.WriteJSON(w, http.StatusOK, s.userJSON(consoleApp, stored, true))
}

func (s *Sim) ctlDeleteUser(w http.ResponseWriter, r *http.Request) {
	u, err := s.cfg.Org.DeleteUser(r.PathValue("userid"))
	if err != nil {
		ctlErr(w, http.StatusNotFound, err.Error())
		return
	}
	s.fire("user_leave_org", []string{u.UserID}, nil, nil)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) ctlDepts(w http.ResponseWriter, r *http.Request) {
	o := s.cfg.Org
	o.RLock()
	defer o.RUnlock()
	out := []map[string]any{}
	for _, id := range o.DeptIDs() {
		d := o.Dept(id)
		out = append(out, map[string]any{"dept_id": d.ID, "name": d.Name, "parent_id": d.ParentID, "order": d.Order})
	}
	simkit.WriteJSON(w, http.StatusOK, out)
}

func (s *Sim) ctlPutDept(w http.ResponseWriter, r *http.Request) {
	var b struct {
		DeptID   int     `json:"dept_id"`
		Name     *string `json:"name"`
		ParentID *int    `json:"parent_id"`
		Order    *uint32 `json:"order"`
	}
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		ctlErr(w, http.StatusBadRequest, "want {\"dept_id\", \"name\", \"parent_id\", \"order\"}")
		return
	}
	o := s.cfg.Org
	o.RLock()
	exists := o.Dept(b.DeptID) != nil
	o.RUnlock()
	if !exists {
		if b.Name == nil || b.ParentID == nil || *b.Name == "" {
			ctlErr(w, http.StatusBadRequest, "a new department needs name and parent_id")
			return
		}
		d := simorg.Dept{ID: b.DeptID, Name: *b.Name, ParentID: *b.ParentID}
		if b.Order != nil {
			d.Order = *b.Order
		}
		nd, err := o.AddDept(d)
		if err != nil {
			ctlErr(w, http.StatusConflict, err.Error())
			return
		}
		s.fire("org_dept_create", nil, []int{nd.ID}, nil)
		simkit.WriteJSON(w, http.StatusOK, map[string]any{"dept_id": nd.ID})
		return
	}
	if _, err := o.UpdateDept(b.DeptID, b.Name, nil, b.ParentID, b.Order); err != nil {
		ctlErr(w, http.StatusConflict, err.Error())
		return
	}
	s.fire("org_dept_modify", nil, []int{b.DeptID}, nil)
	simkit.WriteJSON(w, http.StatusOK, map[string]any{"dept_id": b.DeptID})
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
	s.fire("org_dept_remove", nil, []int{id}, nil)
	w.WriteHeader(http.StatusNoContent)
}
