package dingtalksim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/qiao-gateway/qiao/federation/msgcrypt"
	"github.com/qiao-gateway/qiao/federation/simkit"
)

// Timing of the push (upstream-apis.md §2.7): the check_url reply is required within 1500 ms.
const (
	CheckURLTimeout = 1500 * time.Millisecond
	EventTimeout    = 5 * time.Second
	EventAttempts   = 3
)

// Delivery is the outcome of one event push.
type Delivery = simkit.Delivery

func (s *Sim) crypter() (*msgcrypt.Crypter, error) {
	return msgcrypt.New(s.cfg.CallbackToken, s.cfg.CallbackAESKey, s.cfg.EventReceiveKey)
}

// SetCallback registers the HTTP push URL after the check_url event succeeds, as the developer
// console does.
func (s *Sim) SetCallback(ctx context.Context, callbackURL string) error {
	if callbackURL == "" {
		s.events.SetURL("")
		return nil
	}
	if _, err := url.Parse(callbackURL); err != nil {
		return fmt.Errorf("40057 bad callback url: %w", err)
	}
	if err := s.post(ctx, callbackURL, []byte(`{"EventType":"check_url"}`), CheckURLTimeout); err != nil {
		return fmt.Errorf("check_url failed: %w", err)
	}
	s.events.SetURL(callbackURL)
	return nil
}

// Deliveries returns the log of event pushes.
func (s *Sim) Deliveries() []Delivery { return s.events.Deliveries() }

// push sends a queued event with the event timeout.
func (s *Sim) push(ctx context.Context, target string, payload []byte) error {
	return s.post(ctx, target, payload, EventTimeout)
}

// post sends one encrypted event and checks the reply is the encrypted, signed "success".
func (s *Sim) post(ctx context.Context, target string, payload []byte, timeout time.Duration) error {
	c, err := s.crypter()
	if err != nil {
		return err
	}
	ts := strconv.FormatInt(s.cfg.Now().UnixMilli(), 10)
	nonce := simkit.Token(4)
	enc, sig, err := c.Seal(payload, ts, nonce)
	if err != nil {
		return err
	}
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("signature", sig)
	q.Set("timestamp", ts)
	q.Set("nonce", nonce)
	u.RawQuery = q.Encode()
	body, _ := json.Marshal(map[string]string{"encrypt": enc})
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 8192))
	if resp.StatusCode != http.StatusOK {
		return errors.New("receiver answered " + resp.Status)
	}
	var reply struct {
		MsgSignature string `json:"msg_signature"`
		TimeStamp    string `json:"timeStamp"`
		Nonce        string `json:"nonce"`
		Encrypt      string `json:"encrypt"`
	}
	if err := json.Unmarshal(raw, &reply); err != nil {
		return fmt.Errorf("reply is not the encrypted success JSON: %q", raw)
	}
	pt, err := c.Decrypt(reply.MsgSignature, reply.TimeStamp, reply.Nonce, reply.Encrypt)
	if err != nil {
		return fmt.Errorf("reply does not verify: %w", err)
	}
	if string(pt) != "success" {
		return fmt.Errorf("reply decrypts to %q, want success", pt)
	}
	return nil
}

// fire builds a contact event in the configured payload shape and queues it.
func (s *Sim) fire(eventType string, userIDs []string, deptIDs []int, diff map[string]any) {
	now := s.cfg.Now()
	if h := s.hub(); h.takesEvents() {
		// Stream mode: the type and ID travel in the frame's headers, the body in data.
		d := map[string]any{"timeStamp": strconv.FormatInt(now.UnixMilli(), 10)}
		if userIDs != nil {
			d["userId"] = userIDs
		}
		if deptIDs != nil {
			d["deptId"] = deptIDs
		}
		if diff != nil {
			d["diffInfo"] = []any{diff}
		}
		b, _ := json.Marshal(d)
		h.enqueue(simkit.Token(16), eventType, b)
		return
	}
	var m map[string]any
	if s.cfg.LegacyEvents {
		m = map[string]any{"EventType": eventType, "TimeStamp": now.UnixMilli(), "CorpId": s.cfg.CorpID}
		if userIDs != nil {
			m["UserId"] = userIDs
		}
		if deptIDs != nil {
			m["DeptId"] = deptIDs
		}
	} else {
		m = map[string]any{"EventType": eventType, "EventTime": now.UnixMilli(), "CorpId": s.cfg.CorpID, "BizId": simkit.Token(8),
			"eventId": simkit.Token(16), "timeStamp": strconv.FormatInt(now.UnixMilli(), 10)}
		if userIDs != nil {
			m["userId"] = userIDs
		}
		if deptIDs != nil {
			m["deptId"] = deptIDs
		}
		if diff != nil {
			m["diffInfo"] = []any{diff}
		}
	}
	b, _ := json.Marshal(m)
	s.events.Enqueue(eventType, b)
}
