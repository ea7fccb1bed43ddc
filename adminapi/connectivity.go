package adminapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/connectors"
	"github.com/qiao-gateway/qiao/federation/wecom"
)

// Check statuses.
const (
	CheckOK   = "ok"
	CheckWarn = "warn"
	CheckFail = "fail"
)

// Check is one finding of a connectivity test.
type Check struct {
	Name   string `json:"name" enum:"credentials,egress_ip,read_mode,login_settings,event_callback,domain_verification" doc:"what was checked"`
	Status string `json:"status" enum:"ok,warn,fail"`
	Detail string `json:"detail" doc:"what was found"`
	Fix    string `json:"fix,omitempty" doc:"what to do about it"`
}

// ConnectivityReport is the outcome of POST …/sources/{id}/test.
type ConnectivityReport struct {
	Source   string    `json:"source"`
	Kind     string    `json:"kind"`
	OK       bool      `json:"ok" doc:"no check failed"`
	Checks   []Check   `json:"checks"`
	TestedAt time.Time `json:"tested_at"`
}

// UpstreamDepartment is a department of the platform's directory as the source's reader sees it.
type UpstreamDepartment struct {
	ID       string `json:"id"`
	ParentID string `json:"parent_id" doc:"\"\" for a root of what was read"`
	Name     string `json:"name"`
}

// ipInMessage finds the address a platform refused (WeCom: "from IP 1.2.3.4"; DingTalk: "请求ip为1.2.3.4").
var ipInMessage = regexp.MustCompile(`(?i)(?:from ip:? |请求ip为)([0-9a-f.:]+[0-9a-f])`)

// secretParam is a credential in a URL an error may quote (WeCom's gettoken has corpsecret in its
// query, every call its access_token).
var secretParam = regexp.MustCompile(`(?i)((?:access_token|corpsecret|appsecret|secret|suitesecret)=)[^&\s"']+`)

func scrubSecrets(s string) string { return secretParam.ReplaceAllString(s, "${1}••••") }

// upstreamCode is the platform's errcode of err (0 when it is not an upstream answer).
func upstreamCode(err error) (*federation.Error, int) {
	var fe *federation.Error
	if errors.As(err, &fe) {
		return fe, fe.Code
	}
	return nil, 0
}

// errStop ends a read after its first user.
var errStop = errors.New("stop")

// TestSource runs the connectivity checks of a platform source: a token fetched with its
// credentials, an API call from this gateway's address, what its read mode and permissions allow,
// its login settings (checkDomain: the broker's callback-domain check), whether its event callback
// was ever verified (an event received), and WeCom's domain verification file. Nothing secret is
// in a check.
func TestSource(ctx context.Context, st directory.Store, src *directory.IdentitySource, checkDomain func(*directory.IdentitySource) error) []Check {
	var out []Check
	add := func(name, status, detail, fix string) {
		out = append(out, Check{Name: name, Status: status, Detail: scrubSecrets(detail), Fix: fix})
	}
	if src.Kind == directory.KindLocal {
		return []Check{{Name: "credentials", Status: CheckOK, Detail: "a custom (local) directory has no upstream to reach"}}
	}
	platform := map[directory.SourceKind]string{directory.KindWeCom: "WeCom", directory.KindDingTalk: "DingTalk"}[src.Kind]
	r, err := connectors.Reader(string(src.Kind), src.Config, src.Secrets)
	if err != nil {
		add("credentials", CheckFail, "the settings cannot open a connector: "+err.Error(), "complete the source's settings (PATCH the source)")
	} else {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		depts, err := r.Departments(pctx, src.Sync.ScopeDeptIDs)
		if err == nil && len(depts) > 0 && src.Sync.UserInfo {
			err = r.Users(pctx, depts[:1], func(federation.User) error { return errStop })
			if errors.Is(err, errStop) {
				err = nil
			}
		}
		cancel()
		fe, code := upstreamCode(err)
		switch {
		case err == nil:
			add("credentials", CheckOK, "an access token was fetched with the configured secret", "")
			add("egress_ip", CheckOK, platform+" answered calls from this gateway's address", "")
			mode := r.Info().Mode
			if src.Kind == directory.KindWeCom && mode != wecom.ModeFull {
				add("read_mode", CheckWarn, fmt.Sprintf("%d departments visible; sync will read with %s: the contact-sync secret may not read contact details from this IP (48009/48002)", len(depts), mode),
					"names come from the app secret's visibility scope (可见范围): configure the app's secret and widen its scope, or call from an IP allowed before 2022-08-15")
			} else {
				add("read_mode", CheckOK, fmt.Sprintf("%d departments visible; sync will read with %s", len(depts), mode), "")
			}
		case fe == nil:
			add("credentials", CheckFail, "no answer from "+platform+": "+err.Error(), "check the API base URL and the egress proxies, and that this gateway reaches the platform")
		case strings.Contains(strings.ToLower(fe.API), "token"):
			add("credentials", CheckFail, fe.Error(), "copy the app's secret (and the corp ID / AppKey) from the platform's console into the source")
		case code == 60020:
			add("credentials", CheckOK, "an access token was fetched with the configured secret", "")
			ip := "this gateway's egress address"
			if m := ipInMessage.FindStringSubmatch(fe.Message); m != nil {
				ip = m[1]
			}
			add("egress_ip", CheckFail, fmt.Sprintf("%s refused the call from IP %s (60020)", platform, ip),
				fmt.Sprintf("add %s to the app's trusted IPs (企业可信IP / 服务器出口IP) in the %s console, or route calls through a configured egress proxy", ip, platform))
		default:
			add("credentials", CheckOK, "an access token was fetched with the configured secret", "")
			add("egress_ip", CheckOK, platform+" answered calls from this gateway's address", "")
			fix := "grant the app the contact read permission and widen its visibility scope (可见范围 / 通讯录权限范围) in the platform's console"
			if code == 48002 || code == 48009 {
				fix = "configure the contact-sync (通讯录同步) secret, or the app's secret, whose permissions allow the read"
			}
			add("read_mode", CheckFail, fe.Error(), fix)
		}
	}

	if checkDomain != nil {
		if err := checkDomain(src); err != nil {
			add("login_settings", CheckFail, err.Error(), "set callback_domain to the external URL's host and register the same domain as the app's trusted (WeCom) or redirect (DingTalk) domain")
		} else {
			add("login_settings", CheckOK, "callback_domain "+src.Config["callback_domain"]+" is the external URL's host; the platform's console must list the same domain", "")
		}
	}

	evs, err := st.ListSourceEvents(ctx, src.EnterpriseID, src.ID, 1)
	switch {
	case err != nil:
		add("event_callback", CheckWarn, "the event inbox cannot be read right now", "try again")
	case len(evs) == 0:
		add("event_callback", CheckWarn, "no event has been received from "+platform+" yet",
			"register the event request URL and its token and key in the platform's console (it verifies the URL), then change a member to see one arrive")
	default:
		add("event_callback", CheckOK, fmt.Sprintf("last event %s received %s", evs[0].EventType, evs[0].ReceivedAt.UTC().Format(time.RFC3339)), "")
	}

	if src.Kind == directory.KindWeCom {
		f := src.Config["domain_verify_file"]
		switch {
		case wecom.IsDomainVerifyFile(f) && strings.TrimSpace(src.Config["domain_verify_content"]) != "":
			add("domain_verification", CheckOK, "the trusted-domain verification file "+f+" is served at the domain's root", "")
		default:
			add("domain_verification", CheckWarn, "no trusted-domain verification file is configured",
				"when the WeCom console asks to verify the trusted domain, set domain_verify_file (WW_verify_….txt) and domain_verify_content")
		}
	}
	return out
}

func (a *API) registerConnectivity() {
	tags := []string{"identity sources"}
	huma.Register(a.huma, huma.Operation{OperationID: "test-source", Method: http.MethodPost, Path: "/enterprises/{ent}/sources/{id}/test",
		Summary: "Test a source's connectivity", Tags: tags,
		Description: "Checks, each ok, warn or fail with what to do: credentials (a token), egress IP allow-listed (60020 names the IP to add), " +
			"read mode and permissions (48002/48009: which read mode sync uses), login settings (callback domain), event callback (last event received), " +
			"WeCom's domain verification file. Changes nothing.",
		Errors: errs()},
		func(ctx context.Context, in *SourcePath) (*struct{ Body ConnectivityReport }, error) {
			if _, err := a.authorize(ctx, in.Ent, directory.RoleAdmin); err != nil {
				return nil, err
			}
			src, err := a.sourceOf(ctx, a.Store, in.Ent, in.ID)
			if err != nil {
				return nil, err
			}
			checks := TestSource(ctx, a.Store, src, a.CheckCallbackDomain)
			rep := ConnectivityReport{Source: src.ID, Kind: string(src.Kind), OK: true, Checks: checks, TestedAt: a.now()}
			for _, c := range checks {
				if c.Status == CheckFail {
					rep.OK = false
				}
			}
			a.saveLastTest(ctx, in.Ent, rep) // for the overview's problems
			return &struct{ Body ConnectivityReport }{rep}, nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "list-upstream-departments", Method: http.MethodGet, Path: "/enterprises/{ent}/sources/{id}/upstream-departments",
		Summary: "Read the platform's departments now (for the partial-scope picker)", Tags: tags,
		Description: "A live read with the source's credentials, of the whole directory it can see (root: one subtree). 502 with the platform's reason when the read fails.",
		Errors:      errs(http.StatusConflict, http.StatusBadGateway)},
		func(ctx context.Context, in *struct {
			SourcePath
			Root string `query:"root" maxLength:"64" doc:"an upstream department ID: read only its subtree"`
		}) (*struct {
			Body struct {
				Items []UpstreamDepartment `json:"items"`
			}
		}, error) {
			if _, err := a.authorize(ctx, in.Ent, directory.RoleAdmin); err != nil {
				return nil, err
			}
			src, err := a.sourceOf(ctx, a.Store, in.Ent, in.ID)
			if err != nil {
				return nil, err
			}
			if src.Kind == directory.KindLocal {
				return nil, huma.Error409Conflict("a custom (local) directory has no upstream departments")
			}
			r, err := connectors.Reader(string(src.Kind), src.Config, src.Secrets)
			if err != nil {
				return nil, huma.Error409Conflict("the source's settings cannot open a connector: " + scrubSecrets(err.Error()))
			}
			var roots []string
			if in.Root != "" {
				roots = []string{in.Root}
			}
			rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			depts, err := r.Departments(rctx, roots)
			if err != nil {
				return nil, huma.Error502BadGateway("the platform refused the read: " + scrubSecrets(err.Error()))
			}
			out := &struct {
				Body struct {
					Items []UpstreamDepartment `json:"items"`
				}
			}{}
			out.Body.Items = []UpstreamDepartment{}
			for _, d := range depts {
				out.Body.Items = append(out.Body.Items, UpstreamDepartment{ID: d.ID, ParentID: d.ParentID, Name: d.Name})
			}
			return out, nil
		})
}
