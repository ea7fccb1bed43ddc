package broker

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/httpx"
	"github.com/qiao-gateway/qiao/pages"
)

// Reserved keys of a source's config map that the login pages read (no connector uses them).
const (
	// ConfigDescriptionEN is the source's title on English pages; description is the Chinese one.
	ConfigDescriptionEN = "description_en"
	// ConfigOrder places the source on the chooser: lower first. Without it, platform sources
	// (WeCom, DingTalk) come first and local (password) ones last.
	ConfigOrder = "order"
)

// SourceTitle is a source's title on the login pages in Chinese and English: its description
// and config.description_en, each standing in for the other, and the name without either.
func SourceTitle(s *directory.IdentitySource) pages.Text2 {
	zh, en := s.Description, s.Config[ConfigDescriptionEN]
	if zh == "" && en == "" {
		zh = s.Name
	}
	return pages.T2(zh, en)
}

// sourceOrder is where a source goes on the chooser: config.order when it is a number, else 100
// for a platform source and 1000 for a local one, so the password comes last by default.
func sourceOrder(s *directory.IdentitySource) int {
	if n, err := strconv.Atoi(strings.TrimSpace(s.Config[ConfigOrder])); err == nil {
		return n
	}
	if s.Kind == directory.KindLocal {
		return 1000
	}
	return 100
}

// orderSources sorts sources for the chooser: by order, then by ID.
func orderSources(srcs []*directory.IdentitySource) {
	sort.SliceStable(srcs, func(i, j int) bool {
		oi, oj := sourceOrder(srcs[i]), sourceOrder(srcs[j])
		if oi != oj {
			return oi < oj
		}
		return srcs[i].ID < srcs[j].ID
	})
}

// rememberEnterprise keeps the enterprise in the browser for the next sign-in (the start page and
// /login read it).
func (b *Broker) rememberEnterprise(w http.ResponseWriter, ent string) {
	http.SetCookie(w, &http.Cookie{Name: "qiao_ent", Value: ent, Path: "/", MaxAge: 365 * 24 * 3600, HttpOnly: true, Secure: b.secure(), SameSite: http.SameSiteLaxMode})
}

// typed makes what a person typed safe to log and audit: valid UTF-8, at most 64 characters,
// quoted (so controls and quotes cannot forge a log line).
func typed(v string) string {
	v = strings.ToValidUTF8(v, "\uFFFD")
	if utf8.RuneCountInString(v) > 64 {
		v = string([]rune(v)[:64]) + "…"
	}
	return strconv.Quote(v)
}

// unknownEnterprise logs and audits a sign-in that named an enterprise that does not exist, with
// what was typed. The audit record's enterprise is the typed ID when it is a well-formed one (so
// an admin who later creates it finds the attempts), and empty otherwise.
func (b *Broker) unknownEnterprise(r *http.Request, ent string) {
	b.Log.Warn("login failed", "reason", "unknown enterprise", "enterprise_typed", typed(ent), "request_id", httpx.RequestID(r.Context()), "ip", b.ip(r))
	id := ""
	if directory.ValidID(ent) {
		id = ent
	}
	b.auditFailure(r, id, "", "unknown enterprise", map[string]string{"enterprise_typed": typed(ent)})
}

// auditFailure writes a failed sign-in to the audit log where no source was resolved (yet): the
// enterprise and source are those of the path, kept only when well-formed.
func (b *Broker) auditFailure(r *http.Request, ent, srcID, reason string, detail map[string]string) {
	if !directory.ValidID(ent) {
		ent = ""
	}
	if !directory.ValidID(srcID) {
		if srcID != "" {
			if detail == nil {
				detail = map[string]string{}
			}
			detail["source_typed"] = typed(srcID)
		}
		srcID = ""
	}
	ua := r.UserAgent()
	if len(ua) > 512 {
		ua = ua[:512]
	}
	ev := &directory.AuditEvent{EnterpriseID: ent, Kind: "login.failure", Actor: "broker", SourceID: srcID, IP: b.ip(r), UserAgent: ua,
		Outcome: "denied", Reason: reason, RequestID: httpx.RequestID(r.Context())}
	if len(detail) > 0 {
		ev.Detail, _ = json.Marshal(detail)
	}
	if err := b.Store.AddAuditEvent(context.WithoutCancel(r.Context()), ev); err != nil {
		b.Log.Error("audit", "err", err)
	}
}

// App is an app a signed-in person can open from the portal.
type App struct {
	Name, URL string
}

// apps lists the enterprise's apps that can be opened from the gateway: the enabled OIDC clients
// with a launch URL (the app starts its own sign-in there), and the enabled SAML service
// providers, through the IdP-initiated launch URL.
func (b *Broker) apps(ctx context.Context, ent string) []App {
	var out []App
	clients, err := b.Store.ListClients(ctx, ent)
	if err != nil {
		b.Log.Warn("portal: list clients", "enterprise", ent, "err", err)
	}
	for _, c := range clients {
		if c.Disabled || c.LaunchURL == "" {
			continue
		}
		name := c.Name
		if name == "" {
			name = c.ID
		}
		out = append(out, App{Name: name, URL: c.LaunchURL})
	}
	sps, err := b.Store.ListServiceProviders(ctx, ent)
	if err != nil {
		b.Log.Warn("portal: list service providers", "enterprise", ent, "err", err)
	}
	for _, sp := range sps {
		if sp.Disabled {
			continue
		}
		name := sp.Name
		if name == "" {
			name = sp.EntityID
		}
		out = append(out, App{Name: name, URL: "/e/" + ent + "/saml/launch?" + url.Values{"sp": {sp.EntityID}}.Encode()})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// home is the start page: the portal for a signed-in person, the enterprise entry otherwise
// (prefilled with the remembered enterprise).
func (b *Broker) home(w http.ResponseWriter, r *http.Request) {
	if sess, _ := b.Sessions.Load(r); sess != nil && sess.User != "" {
		b.done(w, r)
		return
	}
	ent := ""
	if c, err := r.Cookie("qiao_ent"); err == nil && directory.ValidID(c.Value) {
		ent = c.Value
	}
	b.Pages.Render(w, r, http.StatusOK, "login_enterprise.html", map[string]any{"Enterprise": ent, "Home": true, "Version": b.Version})
}
