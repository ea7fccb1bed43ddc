package wecomsim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/qiao-gateway/qiao/federation/msgcrypt"
	"github.com/qiao-gateway/qiao/federation/simkit"
	"github.com/qiao-gateway/qiao/federation/simorg"
)

// Delivery timing from upstream-apis.md §1.8: the platform drops a callback after 5 s and tries
// 3 times in all.
const (
	CallbackTimeout  = 5 * time.Second
	CallbackAttempts = 3
)

// Delivery is the outcome of one event push.
type Delivery = simkit.Delivery

var callbackClient = &http.Client{Timeout: CallbackTimeout}

func (s *Sim) crypter() (*msgcrypt.Crypter, error) {
	return msgcrypt.New(s.cfg.CallbackToken, s.cfg.CallbackAESKey, s.cfg.CorpID)
}

// SetCallback configures the contact-sync callback URL after verifying it the way the console
// does: a GET with an encrypted echostr whose plaintext the receiver must answer within 1 s.
func (s *Sim) SetCallback(ctx context.Context, callbackURL string) error {
	if callbackURL == "" {
		s.events.SetURL("")
		return nil
	}
	c, err := s.crypter()
	if err != nil {
		return fmt.Errorf("callback token/EncodingAESKey: %w", err)
	}
	echo := strconv.FormatInt(time.Now().UnixNano(), 10)
	enc, err := c.Encrypt([]byte(echo))
	if err != nil {
		return err
	}
	ts, nonce := strconv.FormatInt(s.cfg.Now().Unix(), 10), strconv.Itoa(int(time.Now().UnixNano()%1e9))
	u, err := url.Parse(callbackURL)
	if err != nil {
		return fmt.Errorf("40057 invalid callback url: %w", err)
	}
	q := u.Query()
	q.Set("msg_signature", c.Signature(ts, nonce, enc))
	q.Set("timestamp", ts)
	q.Set("nonce", nonce)
	q.Set("echostr", enc)
	u.RawQuery = q.Encode()
	vctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(vctx, http.MethodGet, u.String(), nil)
	resp, err := callbackClient.Do(req)
	if err != nil {
		return fmt.Errorf("40057 callback verification failed: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK || string(body) != echo {
		return fmt.Errorf("40057 callback verification failed: answered %d %q, want the decrypted echostr exactly", resp.StatusCode, body)
	}
	s.events.SetURL(callbackURL)
	return nil
}

// Deliveries returns the log of event pushes.
func (s *Sim) Deliveries() []Delivery { return s.events.Deliveries() }

// post sends one change_contact event: the encrypted XML envelope, signed, seconds timestamps.
func (s *Sim) post(ctx context.Context, target string, plaintext []byte) error {
	c, err := s.crypter()
	if err != nil {
		return err
	}
	ts := strconv.FormatInt(s.cfg.Now().Unix(), 10)
	nonce := strconv.Itoa(int(time.Now().UnixNano() % 1e9))
	enc, sig, err := c.Seal(plaintext, ts, nonce)
	if err != nil {
		return err
	}
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("msg_signature", sig)
	q.Set("timestamp", ts)
	q.Set("nonce", nonce)
	u.RawQuery = q.Encode()
	agent := 0
	if len(s.cfg.Apps) > 0 {
		agent = s.cfg.Apps[0].AgentID
	}
	body := fmt.Sprintf("<xml><ToUserName><![CDATA[%s]]></ToUserName><Encrypt><![CDATA[%s]]></Encrypt><AgentID><![CDATA[%d]]></AgentID></xml>",
		s.cfg.CorpID, enc, agent)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(body))
	req.Header.Set("Content-Type", "text/xml")
	resp, err := callbackClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return errors.New("receiver answered " + resp.Status)
	}
	return nil
}

// ---- event XML (upstream-apis.md §1.8.1)

func cdata(s string) string {
	return "<![CDATA[" + strings.ReplaceAll(s, "]]>", "]]]]><![CDATA[>") + "]]>"
}

type xmlBuilder struct{ bytes.Buffer }

func (b *xmlBuilder) text(name, v string) {
	fmt.Fprintf(&b.Buffer, "<%s>%s</%s>", name, cdata(v), name)
}
func (b *xmlBuilder) num(name string, v int64) {
	fmt.Fprintf(&b.Buffer, "<%s>%d</%s>", name, v, name)
}

func joinInts[T int | uint32](s []T) string {
	parts := make([]string, len(s))
	for i, v := range s {
		parts[i] = strconv.FormatInt(int64(v), 10)
	}
	return strings.Join(parts, ",")
}

func (s *Sim) header(b *xmlBuilder, change string) {
	b.WriteString("<xml>")
	b.text("ToUserName", s.cfg.CorpID)
	b.text("FromUserName", "sys")
	b.num("CreateTime", s.cfg.Now().Unix())
	b.text("MsgType", "event")
	b.text("Event", "change_contact")
	b.text("ChangeType", change)
}

// userEvent builds create_user / update_user; for an update only changed fields are sent.
func (s *Sim) userEvent(change string, before, after *simorg.User, newID string) {
	var b xmlBuilder
	s.header(&b, change)
	id := after.UserID
	if before != nil && newID != "" {
		id = before.UserID
	}
	b.text("UserID", id)
	if newID != "" {
		b.text("NewUserID", newID)
	}
	minimal := s.cfg.MinimalEvents
	changed := func(f func(u *simorg.User) string) bool {
		return before == nil || f(before) != f(after)
	}
	depts := func(u *simorg.User) string { return joinInts(u.Depts) }
	if minimal || changed(depts) {
		b.text("Department", depts(after))
	}
	if !minimal {
		if changed(func(u *simorg.User) string { return u.Name }) {
			b.text("Name", after.Name)
		}
		if changed(func(u *simorg.User) string { return strconv.Itoa(u.MainDept) }) {
			b.num("MainDepartment", int64(after.MainDept))
		}
		if changed(func(u *simorg.User) string { return joinInts(u.IsLeader) }) {
			b.text("IsLeaderInDept", joinInts(after.IsLeader))
		}
		if changed(func(u *simorg.User) string { return strings.Join(u.DirectLeader, ",") }) {
			b.text("DirectLeader", strings.Join(after.DirectLeader, ","))
		}
		for _, f := range []struct {
			name string
			get  func(u *simorg.User) string
		}{
			{"Position", func(u *simorg.User) string { return u.Position }},
			{"Mobile", func(u *simorg.User) string { return u.Mobile }},
			{"Gender", func(u *simorg.User) string { return u.Gender }},
			{"Email", func(u *simorg.User) string { return u.Email }},
			{"BizMail", func(u *simorg.User) string { return u.BizMail }},
			{"Avatar", func(u *simorg.User) string { return u.Avatar }},
			{"Alias", func(u *simorg.User) string { return u.Alias }},
			{"Telephone", func(u *simorg.User) string { return u.Telephone }},
			{"Address", func(u *simorg.User) string { return u.Address }},
		} {
			if changed(f.get) {
				b.text(f.name, f.get(after))
			}
		}
		if changed(func(u *simorg.User) string { return strconv.Itoa(u.Status) }) {
			b.num("Status", int64(after.Status))
		}
		if before == nil && len(after.ExtAttrs) > 0 {
			b.WriteString("<ExtAttr>")
			for _, a := range after.ExtAttrs {
				b.WriteString("<Item>")
				b.text("Name", a.Name)
				b.num("Type", 0)
				b.WriteString("<Text>")
				b.text("Value", a.Value)
				b.WriteString("</Text></Item>")
			}
			b.WriteString("</ExtAttr>")
		}
	}
	b.WriteString("</xml>")
	s.events.Enqueue(change, b.Bytes())
}

func (s *Sim) deleteUserEvent(id string) {
	var b xmlBuilder
	s.header(&b, "delete_user")
	b.text("UserID", id)
	b.WriteString("</xml>")
	s.events.Enqueue("delete_user", b.Bytes())
}

func (s *Sim) partyEvent(change string, before, after *simorg.Dept) {
	var b xmlBuilder
	s.header(&b, change)
	b.num("Id", int64(after.ID))
	switch change {
	case "create_party":
		b.text("Name", after.Name)
		b.num("ParentId", int64(after.ParentID))
		b.num("Order", int64(after.Order))
	case "update_party":
		if before == nil || before.Name != after.Name {
			b.text("Name", after.Name)
		}
		if before == nil || before.ParentID != after.ParentID {
			b.num("ParentId", int64(after.ParentID))
		}
	}
	b.WriteString("</xml>")
	s.events.Enqueue(change, b.Bytes())
}
