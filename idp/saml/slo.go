package saml

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/beevik/etree"
	csaml "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/keys"
	"github.com/qiao-gateway/qiao/pages"
	"github.com/qiao-gateway/qiao/session"
)

// slo is IdP-side single logout for SP-initiated LogoutRequests on both bindings (crewjam has
// none): the request is checked like an AuthnRequest (known SP, Destination, time, single use,
// signature — required whenever the SP's metadata has a signing certificate), the SSO session
// ends when the request names it as that SP knows it, and a signed LogoutResponse goes back to
// the SP.
func (p *Provider) slo(w http.ResponseWriter, r *http.Request, ent string) {
	m, err := readMessage(w, r)
	if err != nil {
		p.refuseErr(w, r, err, "enterprise", ent)
		return
	}
	if m.Field == "SAMLResponse" {
		p.sloReturn(w, r, ent, m)
		return
	}
	lr, err := parseLogoutRequest(m.XML)
	if err != nil {
		p.refuseErr(w, r, err, "enterprise", ent)
		return
	}
	sp, err := p.serviceProvider(r.Context(), ent, lr.Issuer.Value)
	if err != nil {
		p.refuse(w, r, http.StatusBadRequest, "unknown service provider")
		return
	}
	if lr.Destination != "" && lr.Destination != p.base(ent)+"/slo" {
		p.refuse(w, r, http.StatusBadRequest, "Destination is not this IdP's logout URL")
		return
	}
	now := p.now()
	if lr.IssueInstant.Before(now.Add(-maxSkew)) || lr.IssueInstant.After(now.Add(maxSkew)) {
		p.refuse(w, r, http.StatusBadRequest, "IssueInstant is too old or in the future")
		return
	}
	// The requester must authenticate itself (SAML profiles §4.4.4.1): by its signature whenever
	// its metadata gives a certificate to check one with.
	if err := verifySignature(m, sp, len(sp.signing) > 0); err != nil {
		p.refuseErr(w, r, err, "sp", sp.d.EntityID)
		return
	}
	if fresh, err := p.State.PutIfAbsent(r.Context(), "saml:req:"+ent+":"+hashKey(sp.d.EntityID, lr.ID), []byte("1"), 2*maxSkew+time.Minute); err != nil || !fresh {
		p.refuse(w, r, http.StatusBadRequest, "this LogoutRequest was already used")
		return
	}
	sess, _ := p.Sessions.Load(r)
	if sess == nil || sess.User == "" || sess.Enterprise != ent {
		// No session of this enterprise in this browser: nothing to end, the person is logged out.
		p.logoutResponse(w, r, ent, sp, lr.ID, csaml.StatusSuccess, "", m.RelayState)
		return
	}
	uid, sid := sess.User, sess.SID
	if !p.logoutMatches(r.Context(), ent, uid, sid, sp, lr, sess) {
		// Not this session as the SP knows it — a forged or stray request (logout CSRF, when the
		// SP cannot sign): the session stays, and the SP hears it was the requester's fault.
		p.audit(r.Context(), ent, uid, sp.d.EntityID, "saml.logout_refused", "the LogoutRequest does not name this session")
		p.logoutResponse(w, r, ent, sp, lr.ID, csaml.StatusRequester, csaml.StatusRequestDenied, m.RelayState)
		return
	}
	// The session's end is announced over the back channels; the requester knows already.
	if err := p.Sessions.End(w, r.WithContext(context.WithValue(r.Context(), sloRequesterKey{}, sp.d.EntityID)), sess); err != nil {
		p.logoutResponse(w, r, ent, sp, lr.ID, statusResponder, "", m.RelayState)
		return
	}
	p.audit(r.Context(), ent, uid, sp.d.EntityID, "saml.logout", "")
	// The session's other SPs are told next, through the browser (SAML profiles §4.4.3.4); the
	// requester hears last.
	pd := &sloPending{Ent: ent, Requester: sp.d.EntityID, InResponseTo: lr.ID, Relay: m.RelayState, SID: sid, UID: uid}
	p.participants(r.Context(), pd, sess)
	p.propagate(w, r, "", pd)
}

// logoutMatches says whether lr names the browser's session v (person uid, index sid) as sp knows
// it: sp got an assertion in this session, lr's NameID is the one sp was given, and its
// SessionIndex, when it has one, is the one sp was given (the session's).
func (p *Provider) logoutMatches(ctx context.Context, ent, uid, sid string, sp *serviceProvider, lr *csaml.LogoutRequest, v *session.Session) bool {
	served, ok := v.ServedSP(sp.d.EntityID)
	if !ok || lr.NameID == nil || lr.NameID.Value == "" {
		return false
	}
	if served.SessionIndex != "" {
		sid = served.SessionIndex
	}
	if lr.SessionIndex != nil && lr.SessionIndex.Value != "" && lr.SessionIndex.Value != sid {
		return false
	}
	given := served.NameID
	if given == "" {
		// No NameID recorded for the SP: derive it again (a transient one cannot be).
		if sp.d.NameIDFormat == "transient" {
			return false
		}
		u, err := p.Store.GetUser(ctx, ent, uid)
		if err != nil {
			return false
		}
		if _, given, err = nameID(sp.d, u); err != nil {
			return false
		}
	}
	return lr.NameID.Value == given
}

// LogoutHop is where a browser whose SSO session v has just ended at qiao (the broker's logout,
// OIDC end_session) goes before final: through the session's SAML service providers, each sent a
// signed LogoutRequest (IdP-initiated single logout), then on to final. It is final itself when
// the session has no SP to tell.
func (p *Provider) LogoutHop(ctx context.Context, v *session.Session, final string) string {
	ent, uid, sid, ok := servedSPs(v)
	if !ok {
		return final
	}
	pd := &sloPending{Ent: ent, SID: sid, UID: uid, Final: final}
	p.participants(ctx, pd, v)
	if len(pd.Queue) == 0 {
		return final
	}
	id := strings.TrimPrefix(newID(), "id-")
	b, _ := json.Marshal(pd)
	if err := p.State.Put(ctx, sloPendingState+id, b, sloPendingTTL); err != nil {
		p.Log.Warn("saml single logout not started", "enterprise", ent, "err", err)
		return final
	}
	return p.base(ent) + "/slo/next?id=" + url.QueryEscape(id)
}

// servedSPs reads an ended session's enterprise, person and sid, and whether it served any SP
// (else there is nobody to tell).
func servedSPs(v *session.Session) (ent, uid, sid string, ok bool) {
	return v.Enterprise, v.User, v.SID, v.Enterprise != "" && v.User != "" && len(v.SPs) > 0
}

var _ session.Participant = (*Provider)(nil)

// sloNext starts an IdP-initiated logout that LogoutHop queued: the browser goes to the first SP.
func (p *Provider) sloNext(w http.ResponseWriter, r *http.Request, ent string) {
	id := r.URL.Query().Get("id")
	var pd sloPending
	if raw, err := p.State.Get(r.Context(), sloPendingState+id); id == "" || err != nil || json.Unmarshal(raw, &pd) != nil ||
		pd.Ent != ent || pd.Requester != "" || pd.Sent != "" {
		p.signedOut(w, r) // unknown, expired or already under way: the session ended anyway
		return
	}
	p.propagate(w, r, id, &pd)
}

// sloPending is a single logout being carried to the session's other service providers. An
// SP-initiated one ends with a LogoutResponse to Requester; an IdP-initiated one (no Requester)
// ends with a redirect to Final.
type sloPending struct {
	Ent, Requester, InResponseTo, Relay, SID, UID string
	Final                                         string `json:",omitempty"`
	Queue                                         []sloTarget
	Sent, SentTo                                  string // the LogoutRequest now out, and its SP
	Partial                                       bool   // some participant could not be logged out
}

// sloTarget is a participant to tell: its NameID, and its SingleLogoutService per binding.
type sloTarget struct{ SP, Format, Value, Redirect, Post, SOAP string }

const (
	sloPendingTTL   = 10 * time.Minute
	sloPendingState = "saml:slo:"
)

// participants queues every SP of the session other than the requester that hears through the
// browser. One that cannot be told (no SingleLogoutService, no NameID) makes the logout partial;
// one with a SOAP endpoint hears over the back channel instead (SessionEnded).
func (p *Provider) participants(ctx context.Context, pd *sloPending, v *session.Session) {
	front, _, partial := p.sloTargets(ctx, pd.Ent, pd.UID, pd.Requester, v)
	pd.Queue = front
	pd.Partial = pd.Partial || partial
}

// sloTargets are the session's SPs other than skip, with the NameID each was given: those told
// through the browser (front) and those with a SOAP SingleLogoutService (back). partial reports
// one that cannot be told at all; an SP no longer registered is left out.
func (p *Provider) sloTargets(ctx context.Context, ent, uid, skip string, v *session.Session) (front, back []sloTarget, partial bool) {
	var u *directory.User
	user := func() (*directory.User, error) {
		var err error
		if u == nil {
			u, err = p.Store.GetUser(ctx, ent, uid)
		}
		return u, err
	}
	for _, served := range v.SPs {
		if served.EntityID == skip {
			continue
		}
		sp, err := p.serviceProvider(ctx, ent, served.EntityID)
		if err != nil {
			continue // no longer registered: nothing to tell
		}
		t, ok, err := sloTargetOf(sp, served, user)
		if err != nil {
			return front, back, true
		}
		if !ok {
			partial = true
			continue
		}
		if t.SOAP != "" {
			back = append(back, t)
		} else {
			front = append(front, t)
		}
	}
	return front, back, partial
}

// sloTargetOf is how to tell sp, which a session served as served, that the session ended: its
// SingleLogoutService endpoints and the NameID it was given. ok is false when it cannot be told
// (no endpoint, no NameID); user is asked for the person when the NameID must be derived again,
// and its error is returned.
func sloTargetOf(sp *serviceProvider, served session.SP, user func() (*directory.User, error)) (t sloTarget, ok bool, err error) {
	t = sloTarget{SP: served.EntityID}
	if t.Redirect, t.Post, t.SOAP = sloEndpoints(sp, false); t.Redirect == "" && t.Post == "" && t.SOAP == "" {
		return t, false, nil
	}
	if sp.d.NameIDFormat == "transient" {
		t.Format = NameIDTransient
		t.Value = served.NameID
	} else {
		u, err := user()
		if err != nil {
			return t, false, err
		}
		if t.Format, t.Value, err = nameID(sp.d, u); err != nil {
			t.Value = ""
		}
	}
	return t, t.Value != "", nil
}

// logoutRequest is the LogoutRequest the IdP sends t at dest.
func (p *Provider) logoutRequest(ent, sid string, t sloTarget, dest string) *csaml.LogoutRequest {
	issuer := p.EntityID(ent)
	lr := &csaml.LogoutRequest{ID: newID(), Version: "2.0", IssueInstant: p.now(), Destination: dest, Issuer: entityIssuer(issuer),
		NameID: &csaml.NameID{Format: t.Format, NameQualifier: issuer, SPNameQualifier: t.SP, Value: t.Value}}
	if sid != "" {
		lr.SessionIndex = &csaml.SessionIndex{Value: sid}
	}
	return lr
}

// propagate sends the browser to the next participant with a signed LogoutRequest, or, when none
// is left, back to the requester with its LogoutResponse (PartialLogout if one failed).
func (p *Provider) propagate(w http.ResponseWriter, r *http.Request, id string, pd *sloPending) {
	ctx := r.Context()
	for len(pd.Queue) > 0 {
		t := pd.Queue[0]
		pd.Queue = pd.Queue[1:]
		dest := t.Redirect
		if dest == "" {
			dest = t.Post
		}
		lr := p.logoutRequest(pd.Ent, pd.SID, t, dest)
		if t.Redirect == "" { // HTTP-POST: an enveloped signature (Redirect signs the query in send)
			signed, err := p.signEnveloped(lr.Element())
			if err != nil {
				pd.Partial = true
				continue
			}
			lr.Signature = signed
		}
		if id == "" {
			id = strings.TrimPrefix(newID(), "id-")
		}
		pd.Sent, pd.SentTo = lr.ID, t.SP
		b, _ := json.Marshal(pd)
		if err := p.State.Put(ctx, sloPendingState+id, b, sloPendingTTL); err != nil {
			pd.Partial = true
			break
		}
		p.audit(ctx, pd.Ent, pd.UID, t.SP, "saml.logout_propagated", "")
		p.send(w, r, "SAMLRequest", lr.Element(), t.Redirect, t.Post, id)
		return
	}
	if id != "" {
		_ = p.State.Delete(ctx, sloPendingState+id)
	}
	if pd.Requester == "" {
		if pd.Final == "" {
			p.signedOut(w, r)
			return
		}
		http.Redirect(w, r, pd.Final, http.StatusSeeOther)
		return
	}
	requester, err := p.serviceProvider(ctx, pd.Ent, pd.Requester)
	if err != nil {
		p.signedOut(w, r)
		return
	}
	second := ""
	if pd.Partial {
		second = csaml.StatusPartialLogout
	}
	p.logoutResponse(w, r, pd.Ent, requester, pd.InResponseTo, csaml.StatusSuccess, second, pd.Relay)
}

// sloReturn takes a participant's LogoutResponse (m) and moves on to the next one. Its RelayState
// names the pending logout; it must answer the request sent and come from the SP it went to.
func (p *Provider) sloReturn(w http.ResponseWriter, r *http.Request, ent string, m *message) {
	id := m.RelayState
	var pd sloPending
	if raw, err := p.State.Get(r.Context(), sloPendingState+id); id == "" || err != nil || json.Unmarshal(raw, &pd) != nil || pd.Ent != ent || pd.Sent == "" {
		// Nothing is waiting for this response (expired, or already taken): the session ended anyway.
		p.signedOut(w, r)
		return
	}
	resp, err := parseLogoutResponse(m.XML)
	if err != nil {
		p.refuseErr(w, r, err, "enterprise", ent)
		return
	}
	if resp.InResponseTo != pd.Sent || resp.Issuer.Value != pd.SentTo {
		p.refuse(w, r, http.StatusBadRequest, "the LogoutResponse does not answer the LogoutRequest sent")
		return
	}
	if resp.Destination != "" && resp.Destination != p.base(ent)+"/slo" {
		p.refuse(w, r, http.StatusBadRequest, "Destination is not this IdP's logout URL")
		return
	}
	if now := p.now(); resp.IssueInstant.Before(now.Add(-sloPendingTTL)) || resp.IssueInstant.After(now.Add(maxSkew)) {
		p.refuse(w, r, http.StatusBadRequest, "IssueInstant is too old or in the future")
		return
	}
	sp, err := p.serviceProvider(r.Context(), ent, pd.SentTo)
	if err != nil {
		p.refuse(w, r, http.StatusBadRequest, "unknown service provider")
		return
	}
	if err := verifySignature(m, sp, sp.signsRequests()); err != nil {
		p.refuseErr(w, r, err, "sp", sp.d.EntityID)
		return
	}
	if resp.Status.StatusCode.Value != csaml.StatusSuccess {
		pd.Partial = true
		p.audit(r.Context(), ent, pd.UID, pd.SentTo, "saml.logout_failed", resp.Status.StatusCode.Value)
	}
	pd.Sent, pd.SentTo = "", ""
	p.propagate(w, r, id, &pd)
}

// notSignedOut is the page for a LogoutRequest refused to an SP that has no SingleLogoutService
// to hear it on.
func (p *Provider) notSignedOut(w http.ResponseWriter, r *http.Request, status int, why string) {
	p.Pages.Message(w, r, status, pages.Text2{"未能退出登录", "Not signed out"},
		pages.Text2{"应用的退出请求未被执行：" + reasonZH(why) + "。", "The app's logout request was not carried out: " + why + "."}, nil, "", pages.Text2{})
}

func (p *Provider) signedOut(w http.ResponseWriter, r *http.Request) {
	p.Pages.Message(w, r, http.StatusOK, pages.Text2{"已退出登录", "Signed out"}, pages.Text2{"你已退出登录。", "You have signed out."}, nil, "", pages.Text2{})
}

// sloEndpoints are the SP's SingleLogoutService locations on each binding: where responses go
// (ResponseLocation when given), or where requests go.
func sloEndpoints(sp *serviceProvider, response bool) (redirect, post, soap string) {
	d := sp.descriptor()
	if d == nil {
		return "", "", ""
	}
	for _, e := range d.SingleLogoutServices {
		loc := e.Location
		if response && e.ResponseLocation != "" {
			loc = e.ResponseLocation
		}
		switch e.Binding {
		case csaml.HTTPRedirectBinding:
			redirect = loc
		case csaml.HTTPPostBinding:
			post = loc
		case csaml.SOAPBinding:
			soap = loc
		}
	}
	return redirect, post, soap
}

// logoutResponse answers on the SP's SingleLogoutService: HTTP-Redirect (signed query) when it
// has one, else HTTP-POST (enveloped signature); a page when it has neither.
func (p *Provider) logoutResponse(w http.ResponseWriter, r *http.Request, ent string, sp *serviceProvider, inResponseTo, status, second, relay string) {
	redirect, post, _ := sloEndpoints(sp, true)
	if redirect == "" && post == "" {
		switch status {
		case csaml.StatusSuccess:
			p.signedOut(w, r)
		case csaml.StatusRequester:
			p.notSignedOut(w, r, http.StatusBadRequest, "it does not match this browser's session")
		default:
			p.notSignedOut(w, r, http.StatusInternalServerError, "the session could not be ended")
		}
		return
	}
	dest := redirect
	if dest == "" {
		dest = post
	}
	code := csaml.StatusCode{Value: status}
	if second != "" {
		code.StatusCode = &csaml.StatusCode{Value: second}
	}
	resp := &csaml.LogoutResponse{ID: newID(), InResponseTo: inResponseTo, Version: "2.0", IssueInstant: p.now(), Destination: dest,
		Issuer: entityIssuer(p.EntityID(ent)),
		Status: csaml.Status{StatusCode: code}}
	el := resp.Element()
	if redirect == "" {
		signed, err := p.signEnveloped(el)
		if err != nil {
			p.refuse(w, r, http.StatusInternalServerError, "cannot sign the LogoutResponse")
			return
		}
		resp.Signature = signed
		el = resp.Element()
	}
	p.send(w, r, "SAMLResponse", el, redirect, post, relay)
}

// signEnveloped signs el and returns the Signature element, for the caller to place where the
// schema wants it (after Issuer).
func (p *Provider) signEnveloped(el *etree.Element) (*etree.Element, error) {
	sc, err := p.signingContext()
	if err != nil {
		return nil, err
	}
	return signatureOf(sc, el)
}

// signatureOf signs el with sc and returns only the Signature element.
func signatureOf(sc *dsig.SigningContext, el *etree.Element) (*etree.Element, error) {
	signed, err := sc.SignEnveloped(el)
	if err != nil {
		return nil, err
	}
	return signed.ChildElements()[len(signed.ChildElements())-1], nil
}

// entityIssuer is the Issuer of every message the IdP sends.
func entityIssuer(entityID string) *csaml.Issuer {
	return &csaml.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: entityID}
}

// send delivers a SAML message as field: on HTTP-Redirect with a signed query when redirect is
// set, else as a self-submitting POST form (el is then already signed).
func (p *Provider) send(w http.ResponseWriter, r *http.Request, field string, el *etree.Element, redirect, post, relay string) {
	doc := etree.NewDocument()
	doc.SetRoot(el)
	raw, err := doc.WriteToBytes()
	if err != nil {
		p.refuse(w, r, http.StatusInternalServerError, "cannot encode the "+field)
		return
	}
	if redirect == "" {
		writePostForm(w, post, field, base64.StdEncoding.EncodeToString(raw), relay)
		return
	}
	var zbuf bytes.Buffer
	zw, _ := flate.NewWriter(&zbuf, flate.BestCompression)
	_, _ = zw.Write(raw)
	_ = zw.Close()
	q := field + "=" + url.QueryEscape(base64.StdEncoding.EncodeToString(zbuf.Bytes()))
	if relay != "" {
		q += "&RelayState=" + url.QueryEscape(relay)
	}
	q += "&SigAlg=" + url.QueryEscape(dsig.RSASHA256SignatureMethod)
	k, err := p.Keys.Signing(keys.SAML)
	if err != nil {
		p.refuse(w, r, http.StatusInternalServerError, "the signing key is not available")
		return
	}
	digest := sha256.Sum256([]byte(q))
	sig, err := k.Signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		p.refuse(w, r, http.StatusInternalServerError, "cannot sign the "+field)
		return
	}
	q += "&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig))
	u, err := url.Parse(redirect)
	if err != nil {
		p.refuse(w, r, http.StatusInternalServerError, "the service provider's logout URL is not a URL")
		return
	}
	if u.RawQuery != "" {
		q = u.RawQuery + "&" + q
	}
	u.RawQuery = q
	http.Redirect(w, r, u.String(), http.StatusFound)
}
