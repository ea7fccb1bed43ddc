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
	"sync"
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
type Delivery struct {
	At        time.Time `json:"at"`
	EventType string    `json:"event_type"`
	Attempts  int       `json:"attempts"`
	OK        bool      `json:"ok"`
	Error     string    `json:"error,omitempty"`
	Plaintext string    `json:"plaintext"`
}

type pusher struct {
	s       *Sim
	mu      sync.Mutex
	url     string
	queue   chan []byte
	log     []Delivery
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	backoff time.Duration
}

func newPusher(s *Sim) *pusher {
	p := &pusher{s: s, queue: make(chan []byte, 10000), stop: make(chan struct{}), done: make(chan struct{}), backoff: time.Second}
	go p.run()
	return p
}

func (p *pusher) close() {
	p.once.Do(func() {
		close(p.stop)
		<-p.done
	})
}

func (p *pusher) crypter() (*msgcrypt.Crypter, error) {
	return msgcrypt.New(p.s.cfg.CallbackToken, p.s.cfg.CallbackAESKey, p.s.cfg.EventReceiveKey)
}

// SetCallback registers the HTTP push URL after the check_url event succeeds, as the developer
// console does.
func (s *Sim) SetCallback(ctx context.Context, callbackURL string) error {
	p := s.events
	if callbackURL == "" {
		p.mu.Lock()
		p.url = ""
		p.mu.Unlock()
		return nil
	}
	if _, err := url.Parse(callbackURL); err != nil {
		return fmt.Errorf("40057 bad callback url: %w", err)
	}
	if err := p.post(ctx, callbackURL, []byte(`{"EventType":"check_url"}`), CheckURLTimeout); err != nil {
		return fmt.Errorf("check_url failed: %w", err)
	}
	p.mu.Lock()
	p.url = callbackURL
	p.mu.Unlock()
	return nil
}

// Deliveries returns the log of event pushes.
func (s *Sim) Deliveries() []Delivery {
	s.events.mu.Lock()
	defer s.events.mu.Unlock()
	return append([]Delivery(nil), s.events.log...)
}

func (p *pusher) enqueue(payload []byte) {
	p.mu.Lock()
	on := p.url != ""
	p.mu.Unlock()
	if !on {
		return
	}
	select {
	case p.queue <- payload:
	default:
		p.record(Delivery{At: time.Now(), Error: "queue full", Plaintext: string(payload)})
	}
}

func (p *pusher) record(d Delivery) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.log) > 10000 {
		p.log = p.log[5000:]
	}
	p.log = append(p.log, d)
}

func (p *pusher) run() {
	defer close(p.done)
	for {
		select {
		case <-p.stop:
			return
		case payload := <-p.queue:
			var head struct{ EventType string }
			_ = json.Unmarshal(payload, &head)
			d := Delivery{At: time.Now(), EventType: head.EventType, Plaintext: string(payload)}
			for d.Attempts < EventAttempts {
				d.Attempts++
				p.mu.Lock()
				target := p.url
				p.mu.Unlock()
				err := p.post(context.Background(), target, payload, EventTimeout)
				if err == nil {
					d.OK, d.Error = true, ""
					break
				}
				d.Error = err.Error()
				select {
				case <-p.stop:
					p.record(d)
					return
				case <-time.After(p.backoff):
				}
			}
			p.record(d)
		}
	}
}

// post sends one encrypted event and checks the reply is the encrypted, signed "success".
func (p *pusher) post(ctx context.Context, target string, payload []byte, timeout time.Duration) error {
	c, err := p.crypter()
	if err != nil {
		return err
	}
	ts := strconv.FormatInt(p.s.cfg.Now().UnixMilli(), 10)
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
	s.events.enqueue(b)
}
