package oidc

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/keys"
	"github.com/qiao-gateway/qiao/session"
)

// BackchannelLogoutEvent is the events member of a logout token (OpenID Back-Channel Logout 1.0).
const BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// SessionEnded tells the relying parties that received tokens in an SSO session that it ended
// (logout, revocation of a departed user): a signed logout token POSTed to each client's
// backchannel_logout_uri. Delivery runs in the background.
func (p *Provider) SessionEnded(ctx context.Context, s *session.Session) {
	if s.Enterprise == "" || s.User == "" {
		return
	}
	p.notifyLogout(ctx, s.Enterprise, s.User, s.SID, s.RPs)
}

// LogoutHop is next: OIDC relying parties hear of a logout over the back channel only.
func (p *Provider) LogoutHop(_ context.Context, _ *session.Session, next string) string { return next }

var _ session.Participant = (*Provider)(nil)

// UserDeparted tells the clients that hold a departed user's refresh tokens (whether or not an SSO
// session of theirs is still alive) with a logout token naming the user, without a sid.
func (p *Provider) UserDeparted(ctx context.Context, ent, uid string, clients []string) {
	p.notifyLogout(ctx, ent, uid, "", clients)
}

func (p *Provider) notifyLogout(ctx context.Context, ent, uid, sid string, clients []string) {
	for _, id := range clients {
		c, err := p.Store.GetClient(ctx, ent, id)
		if err != nil || c.BackchannelLogoutURI == "" {
			continue
		}
		p.bg.Add(1)
		go func() {
			defer p.bg.Done()
			p.deliverLogout(context.WithoutCancel(ctx), c, uid, sid)
		}()
	}
}

func (p *Provider) deliverLogout(ctx context.Context, c *directory.OIDCClient, uid, sid string) {
	tok, err := p.LogoutToken(c.EnterpriseID, c.ID, uid, sid)
	if err != nil {
		p.Log.Error("back-channel logout: sign", "client", c.ID, "err", err)
		return
	}
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * time.Second)
		}
		if last = p.postLogout(ctx, c.BackchannelLogoutURI, tok); last == nil {
			break
		}
	}
	outcome, reason := "ok", ""
	if last != nil {
		outcome, reason = "failed", last.Error()
		p.Log.Warn("back-channel logout not delivered", "enterprise", c.EnterpriseID, "client", c.ID, "err", last)
	}
	_ = p.Store.AddAuditEvent(ctx, &directory.AuditEvent{EnterpriseID: c.EnterpriseID, Kind: "oidc.backchannel_logout", Actor: "oidc",
		UserID: uid, Outcome: outcome, Reason: reason, Detail: json.RawMessage(fmt.Sprintf(`{"client":%q}`, c.ID))})
}

func (p *Provider) postLogout(ctx context.Context, uri, tok string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(url.Values{"logout_token": {tok}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("the client answered %s", resp.Status)
	}
	return nil
}

// LogoutToken signs a logout token for one client (RS256, typ logout+jwt).
func (p *Provider) LogoutToken(ent, clientID, uid, sid string) (string, error) {
	k, err := p.Keys.Signing(keys.RS256)
	if err != nil {
		return "", err
	}
	priv, ok := k.Signer.(*rsa.PrivateKey)
	if !ok {
		return "", fmt.Errorf("RS256 key is %T", k.Signer)
	}
	now := p.now()
	claims := jwt.MapClaims{
		"iss": p.issuer(ent), "aud": clientID, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(), "jti": newID(16),
		"sub": uid, "events": map[string]any{BackchannelLogoutEvent: map[string]any{}},
	}
	if sid != "" {
		claims["sid"] = sid
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = k.ID
	t.Header["typ"] = "logout+jwt"
	return t.SignedString(priv)
}
