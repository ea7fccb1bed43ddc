package oidc

// The OAuth 2.0 Device Authorization Grant (RFC 8628) for devices without a usable browser: the
// device asks /device_authorization for a device code and a short user code, the person enters
// the user code on {issuer}/device in any browser, logs on through the broker as usual and
// confirms the device; meanwhile the device polls the token endpoint. Everything lives in the
// state store (memory or Redis), so any replica can answer any step.
//
// The op library's device handlers are not used: its poll answers every storage error as
// access_denied, has no slow_down of its own, and does not tell unknown codes from denied ones.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/qiao-gateway/qiao/internal/httpx"
	"github.com/qiao-gateway/qiao/internal/state"
)

// GrantDeviceCode is the device grant's name in a client's grant types.
const GrantDeviceCode = string(zoidc.GrantTypeDeviceCode)

// DeviceTiming are the device flow's clocks and limits; zero fields take the defaults.
type DeviceTiming struct {
	Lifetime time.Duration // of a device code and its user code: 10 min
	Interval time.Duration // the least time between two polls: 5 s
	SlowDown time.Duration // added to the interval at each slow_down: 5 s (RFC 8628 §3.5)
	// Wrong user codes allowed per IP address and per browser in GuessWindow: 20 and 5.
	GuessesPerIP, GuessesPerBrowser int
	GuessWindow                     time.Duration // 15 min
}

var defaultDeviceTiming = DeviceTiming{Lifetime: 10 * time.Minute, Interval: 5 * time.Second, SlowDown: 5 * time.Second,
	GuessesPerIP: 20, GuessesPerBrowser: 5, GuessWindow: 15 * time.Minute}

// SetDeviceTiming changes the device flow's clocks and limits (tests shorten them); safe while
// serving.
func (p *Provider) SetDeviceTiming(t DeviceTiming) { p.deviceTimes.Store(&t) }

func (p *Provider) deviceTiming() DeviceTiming {
	t := DeviceTiming{}
	if set := p.deviceTimes.Load(); set != nil {
		t = *set
	}
	d := defaultDeviceTiming
	if t.Lifetime == 0 {
		t.Lifetime = d.Lifetime
	}
	if t.Interval == 0 {
		t.Interval = d.Interval
	}
	if t.SlowDown == 0 {
		t.SlowDown = d.SlowDown
	}
	if t.GuessesPerIP == 0 {
		t.GuessesPerIP = d.GuessesPerIP
	}
	if t.GuessesPerBrowser == 0 {
		t.GuessesPerBrowser = d.GuessesPerBrowser
	}
	if t.GuessWindow == 0 {
		t.GuessWindow = d.GuessWindow
	}
	return t
}

// deviceGrace keeps an expired device code's record so that its polls answer expired_token rather
// than invalid_grant.
const deviceGrace = 10 * time.Minute

// User codes: RFC 8628 §6.1's base-20 consonants (no vowels: no words; no look-alikes such as
// 0/O, 1/I), eight of them (20^8 ≈ 2.6·10^10), shown as XXXX-XXXX.
const (
	userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"
	userCodeLen      = 8
)

func newUserCode() string {
	var b strings.Builder
	max := big.NewInt(int64(len(userCodeAlphabet)))
	for i := 0; i < userCodeLen; i++ {
		n, _ := rand.Int(rand.Reader, max)
		b.WriteByte(userCodeAlphabet[n.Int64()])
	}
	return b.String()
}

// normalizeUserCode accepts what a person types (lower case, dashes, spaces) and returns the code
// as stored, or "" when it cannot be one.
func normalizeUserCode(s string) string {
	if len(s) > 32 {
		return ""
	}
	var b strings.Builder
	for _, c := range strings.ToUpper(s) {
		switch {
		case c == '-' || c == ' ':
		case strings.ContainsRune(userCodeAlphabet, c):
			b.WriteRune(c)
		default:
			return ""
		}
	}
	if b.Len() != userCodeLen {
		return ""
	}
	return b.String()
}

func displayUserCode(c string) string {
	if len(c) != userCodeLen {
		return c
	}
	return c[:4] + "-" + c[4:]
}

// deviceGrant is a device authorization from its request to its redemption.
type deviceGrant struct {
	Enterprise string    `json:"ent"`
	Client     string    `json:"client"`
	Scopes     []string  `json:"scopes"`
	UserCode   string    `json:"user_code"`
	Created    time.Time `json:"created"`
	Expires    time.Time `json:"exp"`
	Status     string    `json:"status"` // pending, approved, denied
	// Set when the person approves.
	User     string    `json:"uid,omitempty"`
	Source   string    `json:"src,omitempty"`
	SID      string    `json:"sid,omitempty"`
	AMR      []string  `json:"amr,omitempty"`
	AuthTime time.Time `json:"auth_time,omitzero"`
	Family   string    `json:"family,omitempty"` // the grant's ID: its tokens are revoked together
}

const (
	devicePending  = "pending"
	deviceApproved = "approved"
	deviceDenied   = "denied"
)

// State store keys; device codes are stored hashed, like authorization codes.
func deviceKey(ent, deviceCodeHash string) string { return "oidc:device:" + ent + ":" + deviceCodeHash }
func userCodeKey(ent, code string) string         { return "oidc:usercode:" + ent + ":" + code }
func devicePollKey(ent, h string) string          { return "oidc:devpoll:" + ent + ":" + h }
func deviceSlowKey(ent, h string) string          { return "oidc:devslow:" + ent + ":" + h }
func deviceConfirmKey(ent, id string) string      { return "oidc:devconfirm:" + ent + ":" + id }

// deviceRequest is the token request of an approved device grant: a person's grant like a code's.
type deviceRequest struct{ g userGrant }

func (d *deviceRequest) GetAMR() []string       { return d.g.AMR }
func (d *deviceRequest) GetAudience() []string  { return []string{d.g.Client} }
func (d *deviceRequest) GetAuthTime() time.Time { return d.g.AuthTime }
func (d *deviceRequest) GetClientID() string    { return d.g.Client }
func (d *deviceRequest) GetScopes() []string    { return d.g.Scopes }
func (d *deviceRequest) GetSubject() string     { return d.g.User }
func (d *deviceRequest) grant() userGrant       { return d.g }

// deviceRefreshRequest is a deviceRequest that also gets a refresh token: the library issues one
// for the request types it knows (a refresh token request among them), not for ours.
type deviceRefreshRequest struct{ *deviceRequest }

func (d *deviceRefreshRequest) SetCurrentScopes([]string) {}

var _ op.RefreshTokenRequest = (*deviceRefreshRequest)(nil)

// deviceAuthorization answers POST {issuer}/device_authorization (RFC 8628 §3.1–3.2) for a client
// already authenticated (clientEndpoint).
func (p *Provider) deviceAuthorization(w http.ResponseWriter, r *http.Request, ri *reqInfo) {
	ctx := r.Context()
	c, err := p.st.client(ctx, ri.authClient)
	if err != nil {
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	if !slices.Contains(c.c.GrantTypes, GrantDeviceCode) {
		writeOAuthError(w, http.StatusBadRequest, "unauthorized_client")
		return
	}
	var scopes []string
	for _, s := range strings.Fields(r.PostForm.Get("scope")) {
		// Like the authorization endpoint: scopes the client may not have are dropped, not refused.
		known := slices.Contains(op.Scopes(p.op), s) || c.IsScopeAllowed(s)
		if s == zoidc.ScopeOfflineAccess && !slices.Contains(c.c.GrantTypes, string(zoidc.GrantTypeRefreshToken)) {
			known = false
		}
		if known && !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	if !slices.Contains(scopes, zoidc.ScopeOpenID) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_scope")
		return
	}
	t := p.deviceTiming()
	now := p.now()
	deviceCode := newID(32)
	h := hashToken(deviceCode)
	g := deviceGrant{Enterprise: ri.enterprise, Client: c.c.ID, Scopes: scopes, Created: now, Expires: now.Add(t.Lifetime), Status: devicePending}
	// A user code names one live grant of the enterprise; a clash (rare at 20^8) draws again.
	for i := 0; i < 5 && g.UserCode == ""; i++ {
		uc := newUserCode()
		fresh, err := p.State.PutIfAbsent(ctx, userCodeKey(ri.enterprise, uc), []byte(h), t.Lifetime)
		if err != nil {
			p.Log.Error("oidc device authorization: store user code", "err", err)
			writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable")
			return
		}
		if fresh {
			g.UserCode = uc
		}
	}
	if g.UserCode == "" {
		writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable")
		return
	}
	b, _ := json.Marshal(g)
	if err := p.State.Put(ctx, deviceKey(ri.enterprise, h), b, t.Lifetime+deviceGrace); err != nil {
		p.Log.Error("oidc device authorization: store device code", "err", err)
		_ = p.State.Delete(ctx, userCodeKey(ri.enterprise, g.UserCode))
		writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable")
		return
	}
	verify := p.issuer(ri.enterprise) + "/device"
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	httpx.WriteJSON(w, http.StatusOK, map[string]any{
		"device_code":               deviceCode,
		"user_code":                 displayUserCode(g.UserCode),
		"verification_uri":          verify,
		"verification_uri_complete": verify + "?" + url.Values{"user_code": {displayUserCode(g.UserCode)}}.Encode(),
		"expires_in":                int(t.Lifetime / time.Second),
		"interval":                  int((t.Interval + time.Second - 1) / time.Second),
	})
}

// deviceToken answers a device's poll of the token endpoint (RFC 8628 §3.4–3.5) for a client
// already authenticated: authorization_pending, slow_down, access_denied, expired_token, or the
// tokens — once.
func (p *Provider) deviceToken(w http.ResponseWriter, r *http.Request, ri *reqInfo) {
	ctx := r.Context()
	c, err := p.st.client(ctx, ri.authClient)
	if err != nil {
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	if !slices.Contains(c.c.GrantTypes, GrantDeviceCode) {
		writeOAuthError(w, http.StatusBadRequest, "unauthorized_client")
		return
	}
	dc := r.PostForm.Get("device_code")
	if dc == "" || len(dc) > 128 {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	h := hashToken(dc)
	key := deviceKey(ri.enterprise, h)
	g, err := p.loadDevice(ctx, key)
	if errors.Is(err, state.ErrNotFound) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	if err != nil {
		p.Log.Error("oidc device token: read device code", "err", err)
		writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable")
		return
	}
	if g.Client != ri.authClient || g.Enterprise != ri.enterprise {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	if !p.now().Before(g.Expires) {
		writeOAuthError(w, http.StatusBadRequest, "expired_token")
		return
	}
	if g.Status == deviceDenied {
		writeOAuthError(w, http.StatusBadRequest, "access_denied")
		return
	}
	if soon, err := p.pollTooSoon(ctx, ri.enterprise, h); err != nil {
		p.Log.Error("oidc device token: poll interval", "err", err)
		writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable")
		return
	} else if soon {
		writeOAuthError(w, http.StatusBadRequest, "slow_down")
		return
	}
	if g.Status != deviceApproved {
		writeOAuthError(w, http.StatusBadRequest, "authorization_pending")
		return
	}
	// Single use: of concurrent polls exactly one takes the approved grant.
	if _, err := p.State.Take(ctx, key); errors.Is(err, state.ErrNotFound) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant")
		return
	} else if err != nil {
		p.Log.Error("oidc device token: take device code", "err", err)
		writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable")
		return
	}
	if p.st.clientEndedSince(ctx, g.Client, g.Created) || p.st.activeUser(ctx, g.User, g.Source) != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	dr := &deviceRequest{g: userGrant{Client: g.Client, User: g.User, Family: g.Family, Source: g.Source, SID: g.SID,
		Scopes: g.Scopes, AMR: g.AMR, AuthTime: g.AuthTime}}
	var req op.IDTokenRequest = dr
	if slices.Contains(g.Scopes, zoidc.ScopeOfflineAccess) && slices.Contains(c.c.GrantTypes, string(zoidc.GrantTypeRefreshToken)) {
		req = &deviceRefreshRequest{dr}
	}
	info(ctx).alg = c.c.IDTokenAlg
	resp, err := op.CreateTokenResponse(op.ContextWithIssuer(ctx, p.issuer(ri.enterprise)), req, c, p.op, true, "", "")
	if err != nil {
		var oe *zoidc.Error
		if errors.As(err, &oe) && oe.ErrorType != zoidc.ServerError {
			writeOAuthError(w, http.StatusBadRequest, string(oe.ErrorType))
			return
		}
		p.Log.Error("oidc device token: issue tokens", "err", err)
		writeOAuthError(w, http.StatusInternalServerError, "server_error")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	httpx.WriteJSON(w, http.StatusOK, resp)
}

func (p *Provider) loadDevice(ctx context.Context, key string) (*deviceGrant, error) {
	b, err := p.State.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	var g deviceGrant
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, fmt.Errorf("decode device grant: %w", err)
	}
	return &g, nil
}

// pollTooSoon enforces the poll interval: a poll within the interval of the previous one is
// answered slow_down, and the interval this device must keep grows by SlowDown each time. A tenth
// of the interval is forgiven for timers and latency.
func (p *Provider) pollTooSoon(ctx context.Context, ent, h string) (bool, error) {
	t := p.deviceTiming()
	n := int64(0)
	if b, err := p.State.Get(ctx, deviceSlowKey(ent, h)); err == nil {
		n, _ = strconv.ParseInt(string(b), 10, 64)
	} else if !errors.Is(err, state.ErrNotFound) {
		return false, err
	}
	gap := t.Interval + time.Duration(n)*t.SlowDown
	fresh, err := p.State.PutIfAbsent(ctx, devicePollKey(ent, h), []byte("1"), gap-gap/10)
	if err != nil || fresh {
		return false, err
	}
	if _, err := p.State.Incr(ctx, deviceSlowKey(ent, h), t.Lifetime+deviceGrace); err != nil {
		return false, err
	}
	return true, nil
}
