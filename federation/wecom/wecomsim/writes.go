package wecomsim

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/qiao-gateway/qiao/federation/simorg"
)

// ---- writes

var (
	useridRe    = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z_\-@.]{0,63}$`)
	mobileRe    = regexp.MustCompile(`^(\+\d{1,4}-)?\d{6,15}$`)
	emailRe     = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
	telephoneRe = regexp.MustCompile(`^[0-9\-+,]{0,32}$`)
)

const deptNameIllegal = "\\:*?\"<>|"

// MaxDeptDepth is the platform's limit on department levels, the root included (upstream-apis.md
// §1.4); deeper creates and moves answer 60002 (部门层级深度超过限制).
const MaxDeptDepth = 15

// tooDeep reports whether putting the subtree rooted at id (0: a new leaf) under parent would
// pass MaxDeptDepth (caller holds the org's read lock).
func tooDeep(o *simorg.Org, parent, id int) bool {
	height := 1
	if id != 0 {
		base := o.Depth(id)
		for _, d := range o.Subtree(id) {
			height = max(height, o.Depth(d)-base+1)
		}
	}
	return o.Depth(parent)+height > MaxDeptDepth
}

// siblingNamed reports whether parent already has a child other than id called name (caller
// holds the read lock): 60008 on create, rename and move alike.
func siblingNamed(o *simorg.Org, parent, id int, name string) bool {
	for _, c := range o.Children(parent) {
		if c != id && o.Dept(c) != nil && o.Dept(c).Name == name {
			return true
		}
	}
	return false
}

func validDeptName(name string) int {
	if n := utf8.RuneCountInString(name); n < 1 || n > 32 {
		return 60001
	}
	if strings.ContainsAny(name, deptNameIllegal) {
		return 60009
	}
	return 0
}

type deptBody struct {
	ID       *json.Number `json:"id"`
	Name     *string      `json:"name"`
	NameEn   *string      `json:"name_en"`
	ParentID *json.Number `json:"parentid"`
	Order    *json.Number `json:"order"`
}

func num(n *json.Number) (int64, bool) {
	if n == nil {
		return 0, false
	}
	v, err := n.Int64()
	return v, err == nil
}

func (s *Sim) departmentCreate(w http.ResponseWriter, r *http.Request, c *cred) {
	var b deptBody
	if err := decodeBody(r, &b); err != nil {
		s.errJSON(w, r, 40058, "Warning: wrong json format.")
		return
	}
	if b.Name == nil {
		s.errJSON(w, r, 60001, "")
		return
	}
	if code := validDeptName(*b.Name); code != 0 {
		s.errJSON(w, r, code, "")
		return
	}
	if b.NameEn != nil {
		if code := validDeptName(*b.NameEn); code != 0 {
			s.errJSON(w, r, code, "")
			return
		}
	}
	parent, good := num(b.ParentID)
	if !good || parent < 1 || parent > 1<<31-1 {
		s.errJSON(w, r, 60124, "")
		return
	}
	o := s.cfg.Org
	o.RLock()
	deep := o.Dept(int(parent)) != nil && tooDeep(o, int(parent), 0)
	o.RUnlock()
	if deep {
		s.errJSON(w, r, 60002, "")
		return
	}
	d := simorg.Dept{ParentID: int(parent), Name: *b.Name}
	if b.NameEn != nil {
		d.NameEn = *b.NameEn
	}
	if b.ID != nil {
		id, good := num(b.ID)
		if !good || id <= 1 || id > 1<<31-1 {
			s.errJSON(w, r, 60123, "")
			return
		}
		d.ID = int(id)
	}
	if b.Order != nil {
		o, good := num(b.Order)
		if !good || o < 0 || o >= 1<<32 {
			s.errJSON(w, r, 40058, "invalid order")
			return
		}
		d.Order = uint32(o)
	}
	nd, err := s.cfg.Org.AddDept(d)
	if err != nil {
		s.errJSON(w, r, orgErrCode(err), "")
		return
	}
	ok(w, "created", map[string]any{"id": nd.ID})
}

func orgErrCode(err error) int {
	switch {
	case errors.Is(err, simorg.ErrParentNotFound):
		return 60004
	case errors.Is(err, simorg.ErrDeptExists):
		return 60008
	case errors.Is(err, simorg.ErrDeptNotFound):
		return 60003
	case errors.Is(err, simorg.ErrCycle):
		return 60010
	case errors.Is(err, simorg.ErrRoot):
		return 60007
	case errors.Is(err, simorg.ErrDeptHasMembers):
		return 60005
	case errors.Is(err, simorg.ErrDeptHasSubs):
		return 60006
	case errors.Is(err, simorg.ErrUserExists):
		return 60102
	case errors.Is(err, simorg.ErrUserNotFound):
		return 60111
	}
	return -1
}

func (s *Sim) departmentUpdate(w http.ResponseWriter, r *http.Request, c *cred) {
	var b deptBody
	if err := decodeBody(r, &b); err != nil {
		s.errJSON(w, r, 40058, "Warning: wrong json format.")
		return
	}
	id, good := num(b.ID)
	if !good {
		s.errJSON(w, r, 60003, "")
		return
	}
	for _, n := range []*string{b.Name, b.NameEn} {
		if n != nil {
			if code := validDeptName(*n); code != 0 {
				s.errJSON(w, r, code, "")
				return
			}
		}
	}
	var parent *int
	if b.ParentID != nil {
		p, good := num(b.ParentID)
		if !good {
			s.errJSON(w, r, 60124, "")
			return
		}
		pi := int(p)
		parent = &pi
	}
	var order *uint32
	if b.Order != nil {
		o, good := num(b.Order)
		if !good || o < 0 || o >= 1<<32 {
			s.errJSON(w, r, 40058, "invalid order")
			return
		}
		ou := uint32(o)
		order = &ou
	}
	o := s.cfg.Org
	o.RLock()
	code := 0
	if cur := o.Dept(int(id)); cur != nil {
		np, nn := cur.ParentID, cur.Name
		if parent != nil {
			np = *parent
		}
		if b.Name != nil {
			nn = *b.Name
		}
		switch {
		case parent != nil && slices.Contains(o.Subtree(int(id)), *parent):
			// a cycle: UpdateDept answers 60010
		case parent != nil && *parent != cur.ParentID && o.Dept(*parent) != nil && tooDeep(o, *parent, int(id)):
			code = 60002
		case (parent != nil || b.Name != nil) && siblingNamed(o, np, int(id), nn):
			code = 60008
		}
	}
	o.RUnlock()
	if code != 0 {
		s.errJSON(w, r, code, "")
		return
	}
	if _, err := s.cfg.Org.UpdateDept(int(id), b.Name, b.NameEn, parent, order); err != nil {
		s.errJSON(w, r, orgErrCode(err), "")
		return
	}
	ok(w, "updated", nil)
}

func (s *Sim) departmentDelete(w http.ResponseWriter, r *http.Request, c *cred) {
	id, given, err := queryInt(r, "id")
	if !given || err != nil {
		s.errJSON(w, r, 60003, "")
		return
	}
	if err := s.cfg.Org.DeleteDept(id); err != nil {
		s.errJSON(w, r, orgErrCode(err), "")
		return
	}
	ok(w, "deleted", nil)
}

// UserBody is the user/create and user/update request body (and the control API's user shape).
type UserBody struct {
	UserID         string         `json:"userid"`
	NewUserID      string         `json:"new_userid,omitempty"`
	Name           *string        `json:"name,omitempty"`
	Alias          *string        `json:"alias,omitempty"`
	Mobile         *string        `json:"mobile,omitempty"`
	Department     []int          `json:"department,omitempty"`
	Order          []uint32       `json:"order,omitempty"`
	Position       *string        `json:"position,omitempty"`
	Gender         *string        `json:"gender,omitempty"`
	Email          *string        `json:"email,omitempty"`
	BizMail        *string        `json:"biz_mail,omitempty"`
	IsLeaderInDept []int          `json:"is_leader_in_dept,omitempty"`
	DirectLeader   []string       `json:"direct_leader,omitempty"`
	Enable         *int           `json:"enable,omitempty"`
	Telephone      *string        `json:"telephone,omitempty"`
	Address        *string        `json:"address,omitempty"`
	MainDepartment *int           `json:"main_department,omitempty"`
	Status         *int           `json:"status,omitempty"` // control API only: 1, 2, 4, 5
	ExtAttr        *extAttrBody   `json:"extattr,omitempty"`
	ToInvite       *bool          `json:"to_invite,omitempty"`
	Extra          map[string]any `json:"-"`
}

type extAttrBody struct {
	Attrs []struct {
		Type int    `json:"type"`
		Name string `json:"name"`
		Text *struct {
			Value string `json:"value"`
		} `json:"text,omitempty"`
	} `json:"attrs"`
}

// apply validates b onto u (a copy) and returns the errcode of the first problem.
func (s *Sim) apply(b *UserBody, u *simorg.User, create bool) int {
	o := s.cfg.Org
	if b.Name != nil {
		if n := utf8.RuneCountInString(*b.Name); n < 1 || n > 64 {
			return 60112
		}
		u.Name = *b.Name
	} else if create {
		return 60112
	}
	if b.Alias != nil {
		if utf8.RuneCountInString(*b.Alias) > 64 {
			return 40058
		}
		u.Alias = *b.Alias
	}
	if b.Department != nil || create {
		if len(b.Department) == 0 {
			return 60127
		}
		if len(b.Department) > 100 {
			return 60110
		}
		o.RLock()
		for _, d := range b.Department {
			if o.Dept(d) == nil {
				o.RUnlock()
				return 60003
			}
		}
		o.RUnlock()
		u.Depts = slices.Clone(b.Department)
		u.Orders = make([]uint32, len(u.Depts))
		u.IsLeader = make([]int, len(u.Depts))
		if u.MainDept != 0 && !slices.Contains(u.Depts, u.MainDept) {
			u.MainDept = u.Depts[0]
		}
	}
	if b.Order != nil {
		if len(b.Order) != len(u.Depts) {
			return 40058
		}
		u.Orders = slices.Clone(b.Order)
	}
	if b.IsLeaderInDept != nil {
		if len(b.IsLeaderInDept) != len(u.Depts) {
			return 60132
		}
		u.IsLeader = slices.Clone(b.IsLeaderInDept)
	}
	if b.Position != nil {
		if utf8.RuneCountInString(*b.Position) > 128 {
			return 40058
		}
		u.Position = *b.Position
	}
	if b.Gender != nil {
		if *b.Gender != "1" && *b.Gender != "2" && *b.Gender != "0" {
			return 40058
		}
		u.Gender = *b.Gender
	}
	o.RLock()
	defer o.RUnlock()
	if b.Mobile != nil {
		if *b.Mobile != "" && !mobileRe.MatchString(*b.Mobile) {
			return 60103
		}
		for _, id := range o.UserIDs() {
			if other := o.User(id); *b.Mobile != "" && other.Mobile == *b.Mobile && !strings.EqualFold(id, u.UserID) {
				return 60104
			}
		}
		u.Mobile = *b.Mobile
	}
	if b.Email != nil {
		if *b.Email != "" && (len(*b.Email) < 6 || len(*b.Email) > 64 || !emailRe.MatchString(*b.Email)) {
			return 60105
		}
		for _, id := range o.UserIDs() {
			if other := o.User(id); *b.Email != "" && other.Email == *b.Email && !strings.EqualFold(id, u.UserID) {
				return 60106
			}
		}
		u.Email = *b.Email
	}
	if create && u.Mobile == "" && u.Email == "" {
		return 60129
	}
	if b.BizMail != nil {
		u.BizMail = *b.BizMail
	}
	if b.DirectLeader != nil {
		if len(b.DirectLeader) > 5 {
			return 40058
		}
		u.DirectLeader = slices.Clone(b.DirectLeader)
	}
	if b.Telephone != nil {
		if !telephoneRe.MatchString(*b.Telephone) {
			return 40058
		}
		u.Telephone = *b.Telephone
	}
	if b.Address != nil {
		if utf8.RuneCountInString(*b.Address) > 128 {
			return 40058
		}
		u.Address = *b.Address
	}
	if b.MainDepartment != nil {
		if !slices.Contains(u.Depts, *b.MainDepartment) {
			return 40058
		}
		u.MainDept = *b.MainDepartment
	}
	if b.Enable != nil {
		switch *b.Enable {
		case 0:
			u.Status = simorg.StatusDisabled
		case 1:
			if u.Status == simorg.StatusDisabled || u.Status == 0 {
				u.Status = simorg.StatusActive
			}
		default:
			return 40058
		}
	}
	if b.Status != nil {
		switch *b.Status {
		case simorg.StatusActive, simorg.StatusDisabled, simorg.StatusNotActivated, simorg.StatusExited:
			u.Status = *b.Status
		default:
			return 40058
		}
	}
	if u.Status == 0 {
		u.Status = simorg.StatusActive
		if b.ToInvite == nil || *b.ToInvite {
			u.Status = simorg.StatusNotActivated // invited, not yet activated
		}
	}
	if b.ExtAttr != nil {
		u.ExtAttrs = nil
		for _, a := range b.ExtAttr.Attrs {
			if a.Type == 0 && a.Text != nil {
				u.ExtAttrs = append(u.ExtAttrs, simorg.ExtAttr{Name: a.Name, Value: a.Text.Value})
			}
		}
	}
	return 0
}

// putUser validates and stores a user; it returns the stored user (nil on error, written to w).
func (s *Sim) putUser(w http.ResponseWriter, r *http.Request, b *UserBody, create bool) (*simorg.User, *simorg.User) {
	if b.UserID == "" {
		s.errJSON(w, r, 41009, "")
		return nil, nil
	}
	o := s.cfg.Org
	var u, before *simorg.User
	o.RLock()
	cur := o.User(b.UserID)
	o.RUnlock()
	if create {
		if !useridRe.MatchString(b.UserID) {
			s.errJSON(w, r, 40003, "")
			return nil, nil
		}
		if cur != nil {
			s.errJSON(w, r, 60102, "")
			return nil, nil
		}
		u = &simorg.User{UserID: b.UserID, Gender: "0"}
	} else {
		if cur == nil {
			s.errJSON(w, r, 60111, "")
			return nil, nil
		}
		before = cur.Clone()
		u = cur.Clone()
	}
	if code := s.apply(b, u, create); code != 0 {
		s.errJSON(w, r, code, "")
		return nil, nil
	}
	stored, err := o.PutUser(u, create)
	if err != nil {
		s.errJSON(w, r, orgErrCode(err), "")
		return nil, nil
	}
	return before, stored
}

func (s *Sim) userCreate(w http.ResponseWriter, r *http.Request, c *cred) {
	var b UserBody
	if err := decodeBody(r, &b); err != nil {
		s.errJSON(w, r, 40058, "Warning: wrong json format.")
		return
	}
	if _, u := s.putUser(w, r, &b, true); u != nil {
		ok(w, "created", nil)
	}
}

func (s *Sim) userUpdate(w http.ResponseWriter, r *http.Request, c *cred) {
	var b UserBody
	if err := decodeBody(r, &b); err != nil {
		s.errJSON(w, r, 40058, "Warning: wrong json format.")
		return
	}
	if b.NewUserID != "" {
		if !useridRe.MatchString(b.NewUserID) {
			s.errJSON(w, r, 40003, "")
			return
		}
		if _, err := s.cfg.Org.RenameUser(b.UserID, b.NewUserID); err != nil {
			s.errJSON(w, r, orgErrCode(err), "")
			return
		}
		b.UserID = b.NewUserID
	}
	if _, u := s.putUser(w, r, &b, false); u != nil {
		ok(w, "updated", nil)
	}
}

func (s *Sim) userDelete(w http.ResponseWriter, r *http.Request, c *cred) {
	id := r.URL.Query().Get("userid")
	if id == "" {
		s.errJSON(w, r, 41009, "")
		return
	}
	if _, err := s.cfg.Org.DeleteUser(id); err != nil {
		s.errJSON(w, r, orgErrCode(err), "")
		return
	}
	ok(w, "deleted", nil)
}

func (s *Sim) userBatchDelete(w http.ResponseWriter, r *http.Request, c *cred) {
	var b struct {
		UserIDList []string `json:"useridlist"`
	}
	if err := decodeBody(r, &b); err != nil {
		s.errJSON(w, r, 40058, "Warning: wrong json format.")
		return
	}
	if len(b.UserIDList) == 0 {
		s.errJSON(w, r, 40031, "")
		return
	}
	if len(b.UserIDList) > 200 {
		s.errJSON(w, r, 40032, "")
		return
	}
	o := s.cfg.Org
	o.RLock()
	for _, id := range b.UserIDList {
		if o.User(id) == nil {
			o.RUnlock()
			s.errJSON(w, r, 40031, "invalid userid "+id)
			return
		}
	}
	o.RUnlock()
	for _, id := range b.UserIDList {
		_, _ = o.DeleteUser(id)
	}
	ok(w, "deleted", nil)
}
