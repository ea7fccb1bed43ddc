package config

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Provisioning is an enterprise's outbound provisioning target (directory/provision): qiao
// pushes the directory into a WeCom corp with the contact-sync secret.
//
//	provisioning:
//	  kind: wecom
//	  corp_id: ww0123456789abcdef
//	  root_department: "1"          # the WeCom department qiao's organisation goes under
//	  scope: sources                # all (default), sources or departments
//	  sources: [local]
//	  proxies: "10.0.0.1:3128,10.0.0.2:3128"   # the trusted egress, tried in order
//	  proxy_username: egress
//	  secrets:
//	    contact_secret: ${WECOM_CONTACT_SECRET}  # or contact_secret_file
//	    proxy_password_file: /run/secrets/proxy
type Provisioning struct {
	Kind              string            `yaml:"kind"`
	Enabled           *bool             `yaml:"enabled"`
	AutoPush          *bool             `yaml:"auto_push"`
	CorpID            string            `yaml:"corp_id"`
	APIBaseURL        string            `yaml:"api_base_url"`
	RootDepartment    string            `yaml:"root_department"`
	DefaultDepartment string            `yaml:"default_department"`
	Scope             string            `yaml:"scope"`
	Sources           []string          `yaml:"sources"`
	Departments       []string          `yaml:"departments"` // SOURCE/UPSTREAM_ID
	UserIDField       string            `yaml:"userid_field"`
	FieldMap          map[string]string `yaml:"field_map"` // WeCom field -> local field
	Proxies           string            `yaml:"proxies"`
	ProxyUsername     string            `yaml:"proxy_username"`
	RateLimit         string            `yaml:"rate_limit"`
	Departure         string            `yaml:"departure"` // delete (default) or disable
	CycleHours        int               `yaml:"cycle_hours"`
	DeleteUsers       *int              `yaml:"delete_users_threshold"`
	DeleteDepts       *int              `yaml:"delete_departments_threshold"`
	// Secrets: contact_secret and proxy_password (each also as KEY_file, or with ${ENV}).
	Secrets map[string]string `yaml:"secrets"`
}

var (
	deptIDRe      = regexp.MustCompile(`^[1-9][0-9]{0,9}$`)
	wecomFieldRe  = regexp.MustCompile(`^(name|alias|mobile|email|position|gender|telephone|ext\.[^\s]{1,64})$`)
	localFieldRe  = regexp.MustCompile(`^(name|email|mobile|username|ext\.[^\s]{1,64})$`)
	useridFieldRe = regexp.MustCompile(`^(username|email_local|mobile|ext\.[^\s]{1,64})$`)
)

// validate checks the target against the enterprise's declared sources (at: its key).
func (p *Provisioning) validate(at string, e *Enterprise) error {
	if p == nil {
		return nil
	}
	if p.Kind != "wecom" {
		return &Error{at + ".kind", fmt.Sprintf("%q must be wecom (the only platform qiao provisions)", p.Kind)}
	}
	if p.CorpID == "" {
		return &Error{at + ".corp_id", "is required (WeCom admin console → 我的企业 → 企业ID)"}
	}
	if p.Secrets["contact_secret"] == "" {
		return &Error{at + ".secrets.contact_secret", "is required: only the contact-sync (通讯录同步) secret, with edit permission, may write contacts"}
	}
	for k := range p.Secrets {
		if k != "contact_secret" && k != "proxy_password" {
			return &Error{at + ".secrets." + k, "is not a provisioning secret (contact_secret, proxy_password)"}
		}
	}
	for _, d := range []struct{ key, v string }{{"root_department", p.RootDepartment}, {"default_department", p.DefaultDepartment}} {
		if d.v != "" && !deptIDRe.MatchString(d.v) {
			return &Error{at + "." + d.key, fmt.Sprintf("%q must be a WeCom department ID (a positive number)", d.v)}
		}
	}
	switch p.Scope {
	case "", "all":
	case "sources":
		if len(p.Sources) == 0 {
			return &Error{at + ".sources", "scope sources needs at least one source"}
		}
	case "departments":
		if len(p.Departments) == 0 {
			return &Error{at + ".departments", "scope departments needs at least one SOURCE/DEPARTMENT_ID"}
		}
	default:
		return &Error{at + ".scope", fmt.Sprintf("%q must be all, sources or departments", p.Scope)}
	}
	declared := func(id string) bool {
		return slices.ContainsFunc(e.Sources, func(s Source) bool { return s.ID == id })
	}
	for i, s := range p.Sources {
		if !declared(s) {
			return &Error{fmt.Sprintf("%s.sources[%d]", at, i), fmt.Sprintf("%q is not a source of this enterprise", s)}
		}
	}
	for i, d := range p.Departments {
		src, id, ok := strings.Cut(d, "/")
		if !ok || id == "" || !declared(src) {
			return &Error{fmt.Sprintf("%s.departments[%d]", at, i), fmt.Sprintf("%q must be SOURCE/DEPARTMENT_ID of a source of this enterprise", d)}
		}
	}
	if p.UserIDField != "" && !useridFieldRe.MatchString(p.UserIDField) {
		return &Error{at + ".userid_field", fmt.Sprintf("%q must be username, email_local, mobile or ext.NAME", p.UserIDField)}
	}
	names := make([]string, 0, len(p.FieldMap))
	for k := range p.FieldMap {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !wecomFieldRe.MatchString(k) {
			return &Error{at + ".field_map." + k, "is not a WeCom field (name, alias, mobile, email, position, gender, telephone, ext.NAME)"}
		}
		if !localFieldRe.MatchString(p.FieldMap[k]) {
			return &Error{at + ".field_map." + k, fmt.Sprintf("%q is not a local field (name, email, mobile, username, ext.NAME)", p.FieldMap[k])}
		}
	}
	if p.Proxies != "" {
		for i, hp := range strings.Split(p.Proxies, ",") {
			host, port, err := net.SplitHostPort(strings.TrimSpace(hp))
			if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
				return &Error{at + ".proxies", fmt.Sprintf("entry %d (%q) is not host:port", i+1, strings.TrimSpace(hp))}
			}
		}
	}
	switch p.Departure {
	case "", "delete", "disable":
	default:
		return &Error{at + ".departure", fmt.Sprintf("%q must be delete or disable", p.Departure)}
	}
	if p.CycleHours < 0 || p.CycleHours > 24*7 {
		return &Error{at + ".cycle_hours", "must be between 0 (none) and 168"}
	}
	for _, t := range []struct {
		key string
		v   *int
	}{{"delete_users_threshold", p.DeleteUsers}, {"delete_departments_threshold", p.DeleteDepts}} {
		if t.v != nil && *t.v < 0 {
			return &Error{at + "." + t.key, "deletion thresholds must not be negative"}
		}
	}
	return nil
}

// resolveSecrets replaces the target's ${NAME} references and KEY_file entries by the secrets.
func (p *Provisioning) resolveSecrets(at, base string, env func(string) string) error {
	if p == nil || p.Secrets == nil {
		return nil
	}
	names := make([]string, 0, len(p.Secrets))
	for k := range p.Secrets {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make(map[string]string, len(names))
	for _, k := range names {
		v := p.Secrets[k]
		if name, ok := strings.CutSuffix(k, "_file"); ok && name != "" {
			if _, both := p.Secrets[name]; both {
				return &Error{at + "." + k, "give " + name + " or " + k + ", not both"}
			}
			s, err := readSecretFile(at+"."+k, v, base)
			if err != nil {
				return err
			}
			out[name] = s
			continue
		}
		s, err := expand(at+"."+k, v, env)
		if err != nil {
			return err
		}
		out[k] = s
	}
	p.Secrets = out
	return nil
}
