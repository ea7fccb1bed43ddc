package saml

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/beevik/etree"
	csaml "github.com/crewjam/saml"
	xrv "github.com/mattermost/xml-roundtrip-validator"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/session"
)

// sloRequesterKey marks, in the context of a session's end, the SP whose LogoutRequest ended it:
// it is not told again.
type sloRequesterKey struct{}

const soapEnvelopeNS = "http://schemas.xmlsoap.org/soap/envelope/"

// SessionEnded tells the SPs of an ended SSO session that have a SOAP SingleLogoutService, with a
// signed LogoutRequest over the SOAP binding (SAML bindings §3.2). It is the only way an SP hears
// when no browser is at hand — a person departing, found by sync or an event — and it is how such
// SPs hear of a logout too (propagate leaves them out). Delivery runs in the background, retried
// twice and audited.
func (p *Provider) SessionEnded(ctx context.Context, v *session.Session) {
	ent, uid, sid, ok := servedSPs(v)
	if !ok {
		return
	}
	skip, _ := ctx.Value(sloRequesterKey{}).(string)
	_, back, _ := p.sloTargets(ctx, ent, uid, skip, v)
	for _, t := range back {
		p.bg.Add(1)
		go func() {
			defer p.bg.Done()
			p.soapLogout(context.WithoutCancel(ctx), ent, uid, sid, t)
		}()
	}
}

// Wait blocks until background deliveries (SOAP logout) are done; tests use it.
func (p *Provider) Wait() { p.bg.Wait() }

func (p *Provider) soapLogout(ctx context.Context, ent, uid, sid string, t sloTarget) {
	lr := p.logoutRequest(ent, sid, t, t.SOAP)
	var last error
	if signed, err := p.signEnveloped(lr.Element()); err != nil {
		last = fmt.Errorf("sign: %w", err)
	} else {
		lr.Signature = signed
		env := etree.NewDocument()
		e := env.CreateElement("soap11:Envelope")
		e.CreateAttr("xmlns:soap11", soapEnvelopeNS)
		e.CreateElement("soap11:Body").AddChild(lr.Element())
		raw, _ := env.WriteToBytes()
		for attempt := 0; attempt < 3; attempt++ {
			if attempt > 0 {
				time.Sleep(time.Duration(attempt) * time.Second)
			}
			if last = p.postSOAP(ctx, t, lr.ID, raw); last == nil {
				break
			}
		}
	}
	outcome, reason := "ok", ""
	if last != nil {
		outcome, reason = "failed", last.Error()
		p.Log.Warn("SAML back-channel logout not delivered", "enterprise", ent, "sp", t.SP, "err", last)
	}
	detail, _ := json.Marshal(map[string]string{"sp": t.SP})
	if err := p.Store.AddAuditEvent(ctx, &directory.AuditEvent{EnterpriseID: ent, Kind: "saml.backchannel_logout", Actor: "saml", UserID: uid,
		Outcome: outcome, Reason: reason, Detail: detail}); err != nil {
		p.Log.Error("audit", "err", err)
	}
}

// soapLogoutResponse is the SOAP envelope an SP answers with.
type soapLogoutResponse struct {
	XMLName xml.Name `xml:"http://schemas.xmlsoap.org/soap/envelope/ Envelope"`
	Body    struct {
		LogoutResponse *csaml.LogoutResponse `xml:"urn:oasis:names:tc:SAML:2.0:protocol LogoutResponse"`
	} `xml:"http://schemas.xmlsoap.org/soap/envelope/ Body"`
}

// postSOAP sends one LogoutRequest and checks the SP's answer: a LogoutResponse to that request,
// from that SP, with status Success. The answer comes straight from the endpoint in the SP's
// metadata, so its own signature is not required (SAML bindings §3.2.2.2).
func (p *Provider) postSOAP(ctx context.Context, t sloTarget, requestID string, raw []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.SOAP, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("SOAPAction", "http://www.oasis-open.org/committees/security")
	resp, err := p.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRequestXML))
	if err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the service provider answered %s", resp.Status)
	}
	if err := xrv.Validate(bytes.NewReader(body)); err != nil {
		return errors.New("the answer is not well-formed XML")
	}
	var env soapLogoutResponse
	if err := xml.Unmarshal(body, &env); err != nil || env.Body.LogoutResponse == nil {
		return errors.New("the answer is not a SOAP envelope with a LogoutResponse")
	}
	lr := env.Body.LogoutResponse
	switch {
	case lr.InResponseTo != requestID:
		return errors.New("the LogoutResponse answers another request")
	case lr.Issuer != nil && lr.Issuer.Value != t.SP:
		return fmt.Errorf("the LogoutResponse comes from %q", lr.Issuer.Value)
	case lr.Status.StatusCode.Value != csaml.StatusSuccess:
		return fmt.Errorf("the service provider answered %s", lr.Status.StatusCode.Value)
	}
	return nil
}
