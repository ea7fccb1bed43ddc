package wecom

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/upstream"
)

// WriterSettings reads a provisioning target's config and secrets: corp_id, api_base_url,
// rate_limit, and the seed's egress proxies — proxies "host1:port1,host2:port2" with
// proxy_username and (secret) proxy_password, tried in order — and the contact-sync secret
// (secrets.contact_secret), the only one WeCom lets write contacts.
func WriterSettings(cfg, secrets map[string]string) (Settings, error) {
	s := Settings{CorpID: cfg["corp_id"], ContactSecret: secrets["contact_secret"], APIBase: strings.TrimRight(cfg["api_base_url"], "/")}
	if s.APIBase == "" {
		s.APIBase = DefaultAPIBase
	}
	switch {
	case s.CorpID == "":
		return s, &federation.SettingError{Key: "config.corp_id", Reason: "is required (WeCom admin console → 我的企业 → 企业ID)"}
	case s.ContactSecret == "":
		return s, &federation.SettingError{Key: "secrets.contact_secret", Reason: "is required: only the contact-sync (通讯录同步) secret, with write permission, may change contacts"}
	}
	proxies, err := ProxyURLs(cfg["proxies"], cfg["proxy_username"], secrets["proxy_password"])
	if err != nil {
		return s, err
	}
	s.Proxies = proxies
	rate, err := upstream.ParseRateLimit(cfg["rate_limit"])
	if err != nil {
		return s, err
	}
	s.RatePerSecond = rate
	return s, nil
}

// ProxyURLs turns the seed's proxy setting — "host1:port1,host2:port2", one username and password
// for all — into the proxy URLs upstream tries in order.
func ProxyURLs(list, user, password string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	var out []string
	for i, hp := range strings.Split(list, ",") {
		hp = strings.TrimSpace(hp)
		host, port, err := net.SplitHostPort(hp)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return nil, &federation.SettingError{Key: "config.proxies", Reason: fmt.Sprintf("entry %d (%q) is not host:port", i+1, hp)}
		}
		u := url.URL{Scheme: "http", Host: hp}
		if user != "" {
			u.User = url.UserPassword(user, password)
		}
		out = append(out, u.String())
	}
	return out, nil
}

// Writer provisions a WeCom corp through the contact write API (upstream-apis.md §1.4), with the
// contact-sync secret.
type Writer struct {
	c *Client
}

var _ federation.DirectoryWriter = (*Writer)(nil)

// NewWriter returns a writer; s must carry the contact-sync secret.
func NewWriter(s Settings) (*Writer, error) {
	if s.ContactSecret == "" {
		return nil, &federation.SettingError{Key: "secrets.contact_secret", Reason: "is required to write contacts"}
	}
	s.Secret = "" // the reader must use the contact-sync secret alone
	c, err := NewClient(s)
	if err != nil {
		return nil, err
	}
	return &Writer{c: c}, nil
}

// Client is the writer's API client (for connectivity checks and retries in tests).
func (w *Writer) Client() *Client { return w.c }

// Calls implements federation.DirectoryWriter.
func (w *Writer) Calls() int64 { return w.c.Calls() }

// Reader implements federation.DirectoryWriter.
func (w *Writer) Reader() federation.DirectoryReader { return w.c.Reader() }

// writeMessages say what an admin can do about a write the platform refused.
var writeMessages = map[int]struct {
	kind error
	msg  string
}{
	60102: {federation.ErrExists, "the userid already exists in WeCom (60102)"},
	60008: {federation.ErrExists, "a department with this ID, or with this name under the same parent, already exists in WeCom (60008)"},
	60104: {federation.ErrInUse, "the mobile number is already used by another WeCom member (60104): change it here or there"},
	60106: {federation.ErrInUse, "the email address is already used by another WeCom member (60106): change it here or there"},
	60111: {federation.ErrNotFound, "no such userid in WeCom (60111)"},
	60003: {federation.ErrNotFound, "no such department in WeCom (60003)"},
	60004: {federation.ErrNotFound, "the parent department does not exist in WeCom (60004)"},
	60005: {federation.ErrNotEmpty, "the department still has members in WeCom (60005)"},
	60006: {federation.ErrNotEmpty, "the department still has sub-departments in WeCom (60006)"},
	-1:    {federation.ErrTransient, "WeCom is busy (-1)"},
	45009: {federation.ErrTransient, "WeCom rate limit (45009)"},
	45033: {federation.ErrTransient, "WeCom concurrency limit (45033)"},
	6000:  {federation.ErrTransient, "WeCom data version conflict (6000): another write to the same object"},
	60103: {nil, "the mobile number is not valid for WeCom (60103)"},
	60105: {nil, "the email address is not valid for WeCom (60105): 6–64 bytes"},
	60112: {nil, "the name is not valid for WeCom (60112): 1–64 characters"},
	60129: {nil, "WeCom needs a mobile number or an email address for every member (60129): the person has neither"},
	60110: {nil, "the person is in more departments than WeCom allows (60110: at most 100)"},
	40003: {nil, "the userid is not valid for WeCom (40003): 1–64 of A-Z a-z 0-9 _ - @ . starting with a letter or digit"},
	60001: {nil, "the department name is not valid for WeCom (60001): 1–32 characters"},
	60009: {nil, "the department name has a character WeCom refuses (60009): \\ : * ? \" < > |"},
	60125: {nil, "the department name is not valid for WeCom (60125)"},
	60002: {nil, "the department would be deeper than WeCom's 15 levels (60002)"},
	60010: {nil, "moving the department would make a cycle (60010)"},
	60007: {nil, "WeCom's root department cannot be deleted (60007)"},
	48002: {nil, "the secret may not write contacts (48002): configure the contact-sync (通讯录同步) secret with edit permission"},
}

// classify gives a write error its outcome and an admin's message.
func classify(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var fe *federation.Error
	if !errors.As(err, &fe) {
		if ctx.Err() != nil {
			return err
		}
		// Not an answer of the platform: the network, a proxy, a timeout.
		return &federation.Error{Platform: "WeCom", Message: err.Error(), Err: federation.ErrTransient}
	}
	out := *fe
	if m, ok := writeMessages[fe.Code]; ok {
		out.Message, out.Err = m.msg, m.kind
	} else if fe.Code == 0 {
		out.Err = federation.ErrTransient // unreachable, 5xx after retries
	}
	return &out
}

func (w *Writer) call(ctx context.Context, api, method string, q url.Values, body any, out any) error {
	if out == nil {
		out = &struct{}{}
	}
	return classify(ctx, w.c.Call(ctx, api, method, q, body, w.c.s.ContactSecret, out))
}

func deptID(api, id string) (int64, error) {
	n, err := strconv.ParseInt(id, 10, 32)
	if err != nil || n < 1 {
		return 0, &federation.Error{Platform: "WeCom", API: api, Message: fmt.Sprintf("department ID %q is not a WeCom department ID", id)}
	}
	return n, nil
}

// CreateDepartment implements federation.DirectoryWriter.
func (w *Writer) CreateDepartment(ctx context.Context, d federation.WriteDept) (string, error) {
	parent, err := deptID("department/create", d.ParentID)
	if err != nil {
		return "", err
	}
	body := map[string]any{"name": d.Name, "parentid": parent}
	if d.Order > 0 {
		body["order"] = d.Order
	}
	var out struct {
		ID int64 `json:"id"`
	}
	if err := w.call(ctx, "department/create", http.MethodPost, nil, body, &out); err != nil {
		return "", err
	}
	return strconv.FormatInt(out.ID, 10), nil
}

// UpdateDepartment implements federation.DirectoryWriter: name, parent and order.
func (w *Writer) UpdateDepartment(ctx context.Context, d federation.WriteDept) error {
	id, err := deptID("department/update", d.ID)
	if err != nil {
		return err
	}
	parent, err := deptID("department/update", d.ParentID)
	if err != nil {
		return err
	}
	body := map[string]any{"id": id, "name": d.Name, "parentid": parent}
	if d.Order > 0 {
		body["order"] = d.Order
	}
	return w.call(ctx, "department/update", http.MethodPost, nil, body, nil)
}

// DeleteDepartment implements federation.DirectoryWriter.
func (w *Writer) DeleteDepartment(ctx context.Context, id string) error {
	if _, err := deptID("department/delete", id); err != nil {
		return err
	}
	return w.call(ctx, "department/delete", http.MethodGet, url.Values{"id": {id}}, nil, nil)
}

// FindDepartment implements federation.DirectoryWriter with department/list of the parent (the
// contact-sync secret may be refused it from a new IP: then nothing is found).
func (w *Writer) FindDepartment(ctx context.Context, parent, name string) (string, error) {
	var out struct {
		Department []wDept `json:"department"`
	}
	if err := w.call(ctx, "department/list", http.MethodGet, url.Values{"id": {parent}}, nil, &out); err != nil {
		return "", err
	}
	for _, d := range out.Department {
		if strconv.FormatInt(d.ParentID, 10) == parent && d.Name == name {
			return strconv.FormatInt(d.ID, 10), nil
		}
	}
	return "", &federation.Error{Platform: "WeCom", API: "department/list", Message: "no department " + strconv.Quote(name) + " under " + parent, Err: federation.ErrNotFound}
}

func userBody(u federation.WriteUser, create bool) (map[string]any, error) {
	body := map[string]any{"userid": u.UserID, "name": u.Name}
	if !create && u.NewUserID != "" && u.NewUserID != u.UserID {
		body["new_userid"] = u.NewUserID
	}
	opt := func(k, v string) {
		if v != "" || !create {
			body[k] = v
		}
	}
	opt("alias", u.Alias)
	opt("mobile", u.Mobile)
	opt("email", u.Email)
	opt("position", u.Position)
	opt("telephone", u.Telephone)
	if u.Gender == "1" || u.Gender == "2" {
		body["gender"] = u.Gender
	}
	depts := make([]int64, 0, len(u.Depts))
	for _, d := range u.Depts {
		id, err := deptID("user/create", d)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(depts, id) {
			depts = append(depts, id)
		}
	}
	body["department"] = depts
	if len(depts) > 0 {
		body["main_department"] = depts[0]
	}
	enable := 0
	if u.Enabled {
		enable = 1
	}
	body["enable"] = enable
	if len(u.ExtAttrs) > 0 || !create {
		names := make([]string, 0, len(u.ExtAttrs))
		for k := range u.ExtAttrs {
			names = append(names, k)
		}
		slices.Sort(names)
		attrs := make([]map[string]any, 0, len(names))
		for _, k := range names {
			attrs = append(attrs, map[string]any{"type": 0, "name": k, "text": map[string]any{"value": u.ExtAttrs[k]}})
		}
		body["extattr"] = map[string]any{"attrs": attrs}
	}
	return body, nil
}

// CreateUser implements federation.DirectoryWriter.
func (w *Writer) CreateUser(ctx context.Context, u federation.WriteUser) error {
	body, err := userBody(u, true)
	if err != nil {
		return err
	}
	return w.call(ctx, "user/create", http.MethodPost, nil, body, nil)
}

// UpdateUser implements federation.DirectoryWriter: every managed field is sent, so a field
// cleared here is cleared there.
func (w *Writer) UpdateUser(ctx context.Context, u federation.WriteUser) error {
	body, err := userBody(u, false)
	if err != nil {
		return err
	}
	return w.call(ctx, "user/update", http.MethodPost, nil, body, nil)
}

// DeleteUser implements federation.DirectoryWriter.
func (w *Writer) DeleteUser(ctx context.Context, userid string) error {
	return w.call(ctx, "user/delete", http.MethodGet, url.Values{"userid": {userid}}, nil, nil)
}

// CheckWrite tests what provisioning needs: a token for the contact-sync secret, a call from this
// gateway's address, write permission (department/update of the root with nothing changed), and
// the root department. Each failure is a *federation.Error with an admin's message.
func (w *Writer) CheckWrite(ctx context.Context, root string) error {
	id, err := deptID("department/update", root)
	if err != nil {
		return err
	}
	var out struct {
		DepartmentID []struct {
			ID int64 `json:"id"`
		} `json:"department_id"`
	}
	if err := w.call(ctx, "department/simplelist", http.MethodGet, url.Values{"id": {root}}, nil, &out); err != nil {
		return err
	}
	found := false
	for _, d := range out.DepartmentID {
		found = found || d.ID == id
	}
	if !found {
		return &federation.Error{Platform: "WeCom", API: "department/simplelist", Code: 60003,
			Message: "the root department " + root + " does not exist in WeCom: set root_department to an existing department ID", Err: federation.ErrNotFound}
	}
	return w.call(ctx, "department/update", http.MethodPost, nil, map[string]any{"id": id}, nil)
}
