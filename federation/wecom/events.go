package wecom

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/msgcrypt"
)

// Decoder verifies and decrypts WeCom callbacks (upstream-apis.md §1.8): the GET URL
// verification and POSTed change_contact events. The receive ID is the corp ID.
type Decoder struct{ c *msgcrypt.Crypter }

// NewDecoder returns a decoder for a source's callback token and EncodingAESKey.
func NewDecoder(cfg, secrets map[string]string) (*Decoder, error) {
	return newDecoder(secrets["callback_token"], secrets["encoding_aes_key"], cfg["corp_id"])
}

func newDecoder(token, aesKey, corpID string) (*Decoder, error) {
	if token == "" || aesKey == "" {
		return nil, errors.New("secrets.callback_token and secrets.encoding_aes_key are required for event callbacks")
	}
	c, err := msgcrypt.New(token, aesKey, corpID)
	if err != nil {
		return nil, fmt.Errorf("callback key: %w", err)
	}
	return &Decoder{c: c}, nil
}

var _ federation.CallbackDecoder = (*Decoder)(nil)

func seconds(ts string) (time.Time, error) {
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, fmt.Errorf("%w: timestamp %q", federation.ErrMalformed, ts)
	}
	return time.Unix(n, 0), nil
}

func verr(err error) error {
	switch {
	case errors.Is(err, msgcrypt.ErrSignature), errors.Is(err, msgcrypt.ErrReceiveID):
		return fmt.Errorf("%w: %v", federation.ErrForged, err)
	}
	return fmt.Errorf("%w: %v", federation.ErrMalformed, err)
}

// Decode implements federation.CallbackDecoder.
func (d *Decoder) Decode(method string, q url.Values, body []byte) (*federation.Callback, error) {
	ts, err := seconds(q.Get("timestamp"))
	if err != nil {
		return nil, err
	}
	cb := &federation.Callback{Timestamp: ts, Nonce: q.Get("nonce"), Signature: q.Get("msg_signature"), ReplyType: "text/plain; charset=utf-8"}
	if method == "GET" {
		// URL verification: answer the decrypted echostr exactly.
		pt, err := d.c.Decrypt(cb.Signature, q.Get("timestamp"), cb.Nonce, q.Get("echostr"))
		if err != nil {
			return nil, verr(err)
		}
		cb.Signature = d.c.Signature(q.Get("timestamp"), cb.Nonce, q.Get("echostr"))
		cb.Reply = pt
		return cb, nil
	}
	var env struct {
		ToUserName string `xml:"ToUserName"`
		Encrypt    string `xml:"Encrypt"`
	}
	if err := xml.Unmarshal(body, &env); err != nil || env.Encrypt == "" {
		return nil, fmt.Errorf("%w: body is not the <xml><Encrypt> envelope", federation.ErrMalformed)
	}
	pt, err := d.c.Decrypt(cb.Signature, q.Get("timestamp"), cb.Nonce, env.Encrypt)
	if err != nil {
		return nil, verr(err)
	}
	cb.Signature = d.c.Signature(q.Get("timestamp"), cb.Nonce, env.Encrypt)
	var ev struct {
		MsgType    string `xml:"MsgType"`
		Event      string `xml:"Event"`
		ChangeType string `xml:"ChangeType"`
		UserID     string `xml:"UserID"`
		NewUserID  string `xml:"NewUserID"`
		ID         string `xml:"Id"`
	}
	if err := xml.Unmarshal(pt, &ev); err != nil {
		return nil, fmt.Errorf("%w: event XML: %v", federation.ErrMalformed, err)
	}
	cb.Reply = []byte("success")
	if ev.MsgType != "event" || ev.Event != "change_contact" {
		return cb, nil // other events are acknowledged and ignored
	}
	sum := sha256.Sum256(pt)
	e := federation.Event{Type: ev.ChangeType, Key: hex.EncodeToString(sum[:])}
	switch {
	case strings.HasSuffix(ev.ChangeType, "_user"):
		if ev.UserID == "" {
			return nil, fmt.Errorf("%w: %s without UserID", federation.ErrMalformed, ev.ChangeType)
		}
		e.UserIDs, e.NewUserID = []string{ev.UserID}, ev.NewUserID
	case strings.HasSuffix(ev.ChangeType, "_party"):
		if ev.ID == "" {
			return nil, fmt.Errorf("%w: %s without Id", federation.ErrMalformed, ev.ChangeType)
		}
		e.DeptIDs = []string{ev.ID}
	default:
		return cb, nil // update_tag and future types: acknowledged, nothing to sync
	}
	cb.Events = []federation.Event{e}
	return cb, nil
}
