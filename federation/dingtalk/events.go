package dingtalk

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/msgcrypt"
)

// Decoder verifies and decrypts DingTalk HTTP event pushes (upstream-apis.md §2.7). The receive
// key is the AppKey (app-level subscriptions from the developer console) or the CorpId
// (subscriptions registered through the API); both are accepted.
type Decoder struct{ byKey []*msgcrypt.Crypter }

// NewDecoder returns a decoder for a source's callback token and aes_key.
func NewDecoder(cfg, secrets map[string]string) (*Decoder, error) {
	return newDecoder(secrets["callback_token"], secrets["aes_key"], cfg["event_receive_key"], cfg["app_key"], cfg["corp_id"])
}

// newDecoder accepts pushes encrypted for any of the receive keys given (empty ones skipped).
func newDecoder(token, aesKey string, keys ...string) (*Decoder, error) {
	if token == "" || aesKey == "" {
		return nil, errors.New("secrets.callback_token and secrets.aes_key are required for event callbacks")
	}
	d := &Decoder{}
	seen := map[string]bool{}
	for _, k := range keys {
		if k == "" || seen[k] {
			continue
		}
		seen[k] = true
		c, err := msgcrypt.New(token, aesKey, k)
		if err != nil {
			return nil, fmt.Errorf("callback key: %w", err)
		}
		d.byKey = append(d.byKey, c)
	}
	if len(d.byKey) == 0 {
		return nil, errors.New("config.app_key or config.corp_id is required for event callbacks")
	}
	return d, nil
}

var _ federation.CallbackDecoder = (*Decoder)(nil)

// stringOrNumber accepts "TimeStamp" as either.
type ids []string

func (v *ids) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	for _, r := range raw {
		var s string
		if json.Unmarshal(r, &s) == nil {
			*v = append(*v, s)
			continue
		}
		var n json.Number
		if err := json.Unmarshal(r, &n); err != nil {
			return err
		}
		*v = append(*v, n.String())
	}
	return nil
}

// Decode implements federation.CallbackDecoder.
func (d *Decoder) Decode(method string, q url.Values, body []byte) (*federation.Callback, error) {
	if method != "POST" {
		return nil, fmt.Errorf("%w: DingTalk pushes events with POST", federation.ErrMalformed)
	}
	sig := q.Get("signature")
	if sig == "" {
		sig = q.Get("msg_signature")
	}
	tsText := q.Get("timestamp")
	if tsText == "" {
		tsText = q.Get("timeStamp")
	}
	ms, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil || ms <= 0 {
		return nil, fmt.Errorf("%w: timestamp %q", federation.ErrMalformed, tsText)
	}
	nonce := q.Get("nonce")
	var env struct {
		Encrypt string `json:"encrypt"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Encrypt == "" {
		return nil, fmt.Errorf("%w: body is not {\"encrypt\": ...}", federation.ErrMalformed)
	}
	var pt []byte
	var used *msgcrypt.Crypter
	for _, c := range d.byKey {
		pt, err = c.Decrypt(sig, tsText, nonce, env.Encrypt)
		if err == nil {
			used = c
			break
		}
		if !errors.Is(err, msgcrypt.ErrReceiveID) {
			break
		}
	}
	if used == nil {
		if errors.Is(err, msgcrypt.ErrSignature) || errors.Is(err, msgcrypt.ErrReceiveID) {
			return nil, fmt.Errorf("%w: %v", federation.ErrForged, err)
		}
		return nil, fmt.Errorf("%w: %v", federation.ErrMalformed, err)
	}
	var ev struct {
		EventType string `json:"EventType"`
		EventID   string `json:"eventId"`
		UserIDA   ids    `json:"UserId"`
		UserIDB   ids    `json:"userId"`
		DeptIDA   ids    `json:"DeptId"`
		DeptIDB   ids    `json:"deptId"`
	}
	if err := json.Unmarshal(pt, &ev); err != nil {
		return nil, fmt.Errorf("%w: event JSON: %v", federation.ErrMalformed, err)
	}
	cb := &federation.Callback{Timestamp: time.UnixMilli(ms), Nonce: nonce, Signature: used.Signature(tsText, nonce, env.Encrypt), ReplyType: "application/json"}
	if cb.Reply, err = reply(used); err != nil {
		return nil, err
	}
	key := ev.EventID
	if key == "" {
		sum := sha256.Sum256(pt)
		key = hex.EncodeToString(sum[:])
	}
	e := federation.Event{Type: ev.EventType, Key: key, UserIDs: append(ev.UserIDA, ev.UserIDB...), DeptIDs: append(ev.DeptIDA, ev.DeptIDB...)}
	switch ev.EventType {
	case "check_url":
		return cb, nil
	case "user_add_org", "user_modify_org", "user_leave_org", "user_active_org":
		if len(e.UserIDs) == 0 {
			return nil, fmt.Errorf("%w: %s names no user", federation.ErrMalformed, ev.EventType)
		}
	case "org_dept_create", "org_dept_modify", "org_dept_remove":
		if len(e.DeptIDs) == 0 {
			return nil, fmt.Errorf("%w: %s names no department", federation.ErrMalformed, ev.EventType)
		}
	default:
		return cb, nil // other subscriptions: acknowledged, nothing to sync
	}
	cb.Events = []federation.Event{e}
	return cb, nil
}

// reply is the encrypted "success" DingTalk requires, signed with a fresh timestamp and nonce.
func reply(c *msgcrypt.Crypter) ([]byte, error) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	nonce := hex.EncodeToString(b)
	ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
	enc, sig, err := c.Seal([]byte("success"), ts, nonce)
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]string{"msg_signature": sig, "timeStamp": ts, "nonce": nonce, "encrypt": enc})
}
