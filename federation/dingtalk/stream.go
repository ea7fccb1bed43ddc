package dingtalk

// Stream mode: the gateway dials out to DingTalk and receives events over a WebSocket, so no
// public callback URL, certificate or inbound allow-listing is needed. The protocol is
// open-dingtalk/developerpedia docs/learn/stream/protocol.md (see federation/dingtalk/dingtalksim
// stream.go for what is taken from where): POST /v1.0/gateway/connections/open → {endpoint,
// ticket}; WebSocket to endpoint?ticket=…; EVENT frames answered with an ACK; SYSTEM ping
// answered with its opaque; SYSTEM disconnect → reconnect with a fresh ticket.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/upstream"
)

// Event delivery modes (config events).
const (
	// EventsHTTP: DingTalk pushes events to the gateway's callback URL (the default).
	EventsHTTP = "http"
	// EventsStream: the gateway holds a Stream connection to DingTalk.
	EventsStream = "stream"
)

// StreamUA is the ua the connection credential request names (name-sdk-lang/version).
const StreamUA = "qiao-stream-go/1.0"

// Stream is a source's Stream-mode event connection. Run holds it until its context ends.
type Stream struct {
	Settings Settings
	// Store stores an event durably (dedup by Event.Key). The event is acknowledged only after it
	// returns nil; an error answers LATER, and DingTalk pushes the event again.
	Store func(ctx context.Context, ev federation.Event) error
	Log   *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between failed connection attempts (defaults 1 s
	// and 60 s, doubling, with jitter); a connection that was established resets it.
	MinBackoff, MaxBackoff time.Duration
	// KeepAlive is the interval of WebSocket pings that find a dead connection the server
	// cannot tell us about (default 30 s; a ping unanswered for 10 s closes it).
	KeepAlive time.Duration

	connects, events, stored, pings atomic.Int64
}

// StreamStats counts what a Stream has done.
type StreamStats struct {
	Connects int64 // WebSocket connections established
	Events   int64 // EVENT frames received (redeliveries included)
	Stored   int64 // events handed to Store successfully and acknowledged
	Pings    int64 // SYSTEM pings answered
}

// Stats reports the counters.
func (s *Stream) Stats() StreamStats {
	return StreamStats{Connects: s.connects.Load(), Events: s.events.Load(), Stored: s.stored.Load(), Pings: s.pings.Load()}
}

// NewStream returns the source's Stream connection; the source must be configured with
// events: stream.
func (c *Config) NewStream(store func(context.Context, federation.Event) error, log *slog.Logger) (*Stream, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Events != EventsStream {
		return nil, &federation.SettingError{Key: "config.events", Reason: "is not stream"}
	}
	if log == nil {
		log = slog.Default()
	}
	return &Stream{Settings: c.Settings, Store: store, Log: log}, nil
}

// errDisconnect ends a connection the server asked us to leave: reconnect at once.
var errDisconnect = errors.New("the server asked to disconnect")

// Run connects, receives and acknowledges events, and reconnects with backoff and a fresh ticket
// until ctx ends; then it closes the connection and returns.
func (s *Stream) Run(ctx context.Context) {
	minB, maxB := s.MinBackoff, s.MaxBackoff
	if minB <= 0 {
		minB = time.Second
	}
	if maxB < minB {
		maxB = max(60*time.Second, minB)
	}
	backoff := minB
	for ctx.Err() == nil {
		before := s.connects.Load()
		err := s.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errDisconnect) {
			s.Log.Info("dingtalk stream: the server asked to reconnect", "app_key", s.Settings.AppKey)
			backoff = minB
			continue
		}
		if s.connects.Load() > before {
			// It was connected: a dropped connection is retried after the shortest wait; only
			// failures to connect again and again back off further.
			backoff = minB
		}
		wait := backoff + time.Duration(rand.Int64N(int64(backoff)/4+1))
		s.Log.Warn("dingtalk stream: connection lost; reconnecting", "app_key", s.Settings.AppKey, "err", err, "in", wait.Round(time.Millisecond).String())
		if upstream.Sleep(ctx, wait) != nil {
			return
		}
		backoff = min(2*backoff, maxB)
	}
}

// endpoint asks for a connection credential: POST /v1.0/gateway/connections/open.
func (s *Stream) endpoint(ctx context.Context, hc *http.Client) (string, error) {
	body, _ := json.Marshal(map[string]any{"clientId": s.Settings.AppKey, "clientSecret": s.Settings.AppSecret, "ua": StreamUA,
		"subscriptions": []map[string]string{{"type": "EVENT", "topic": "*"}}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Settings.APIBase+"/v1.0/gateway/connections/open", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("connections/open: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(raw, &e)
		return "", fmt.Errorf("connections/open: HTTP %d %s %s", resp.StatusCode, e.Code, e.Message)
	}
	var ep struct {
		Endpoint string `json:"endpoint"`
		Ticket   string `json:"ticket"`
	}
	if err := json.Unmarshal(raw, &ep); err != nil || ep.Endpoint == "" || ep.Ticket == "" {
		return "", errors.New("connections/open: the answer has no endpoint and ticket")
	}
	return ep.Endpoint + "?ticket=" + ep.Ticket, nil
}

// frame is a message from the server.
type frame struct {
	SpecVersion string            `json:"specVersion"`
	Type        string            `json:"type"`
	Headers     map[string]string `json:"headers"`
	Data        string            `json:"data"`
}

// session holds one connection until it fails, the server disconnects us, or ctx ends.
func (s *Stream) session(ctx context.Context) error {
	timeout := s.Settings.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	hc, err := upstream.NewHTTPClient(timeout, s.Settings.Proxies)
	if err != nil {
		return err
	}
	u, err := s.endpoint(ctx, hc)
	if err != nil {
		return err
	}
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		if resp != nil {
			return fmt.Errorf("stream handshake: HTTP %d", resp.StatusCode)
		}
		return fmt.Errorf("stream handshake: %w", err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(4 << 20)
	s.connects.Add(1)
	s.Log.Info("dingtalk stream: connected", "app_key", s.Settings.AppKey)

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.keepAlive(cctx, ws)
	for {
		_, b, err := ws.Read(cctx)
		if err != nil {
			if ctx.Err() != nil {
				_ = ws.Close(websocket.StatusNormalClosure, "shutting down")
				return ctx.Err()
			}
			return fmt.Errorf("stream read: %w", err)
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil || f.Headers == nil {
			s.Log.Warn("dingtalk stream: a frame that is not the protocol's; ignored", "bytes", len(b))
			continue
		}
		switch f.Type {
		case "SYSTEM":
			switch f.Headers["topic"] {
			case "ping":
				s.pings.Add(1)
				if err := s.ack(cctx, ws, f, 200, "OK", f.Data); err != nil {
					return err
				}
			case "disconnect":
				// Acknowledge, then leave: the server closes the connection anyway, and events it
				// had in flight here come again on the next one.
				_ = s.ack(cctx, ws, f, 200, "OK", "")
				_ = ws.Close(websocket.StatusNormalClosure, "disconnect")
				return errDisconnect
			default:
				_ = s.ack(cctx, ws, f, 404, "unknown system topic", "")
			}
		case "EVENT":
			s.events.Add(1)
			if err := s.event(cctx, ws, f); err != nil {
				return err
			}
		default: // CALLBACK or anything else: not subscribed.
			_ = s.ack(cctx, ws, f, 404, "topic not subscribed", "")
		}
	}
}

// event stores one EVENT and acknowledges it once stored.
func (s *Stream) event(ctx context.Context, ws *websocket.Conn, f frame) error {
	ev, err := streamEvent(f.Headers["eventType"], f.Headers["eventId"], []byte(f.Data))
	if err != nil {
		// Malformed: storing it again will not help; acknowledge so it is not pushed forever.
		s.Log.Warn("dingtalk stream: event not understood; acknowledged and dropped", "type", f.Headers["eventType"], "event_id", f.Headers["eventId"], "err", err)
		return s.ack(ctx, ws, f, 200, "OK", eventStatus("SUCCESS", "not understood"))
	}
	if ev != nil {
		if err := s.Store(ctx, *ev); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.Log.Error("dingtalk stream: event not stored; DingTalk will push it again", "type", ev.Type, "event_id", ev.Key, "err", err)
			return s.ack(ctx, ws, f, 500, "internal error", eventStatus("LATER", "not stored"))
		}
		s.stored.Add(1)
	}
	return s.ack(ctx, ws, f, 200, "OK", eventStatus("SUCCESS", "success"))
}

func eventStatus(status, msg string) string {
	b, _ := json.Marshal(map[string]string{"status": status, "message": msg})
	return string(b)
}

// ack answers a frame: {code, headers{messageId, contentType}, message, data}.
func (s *Stream) ack(ctx context.Context, ws *websocket.Conn, f frame, code int, msg, data string) error {
	b, _ := json.Marshal(map[string]any{"code": code, "headers": map[string]string{"messageId": f.Headers["messageId"], "contentType": "application/json"},
		"message": msg, "data": data})
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := ws.Write(wctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("stream write: %w", err)
	}
	return nil
}

// keepAlive pings the WebSocket; a connection that does not answer is closed, which ends the
// read loop and reconnects.
func (s *Stream) keepAlive(ctx context.Context, ws *websocket.Conn) {
	every := s.KeepAlive
	if every <= 0 {
		every = 30 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := ws.Ping(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			s.Log.Warn("dingtalk stream: keepalive ping not answered; reconnecting", "err", err)
			_ = ws.CloseNow()
			return
		}
	}
}

// streamEvent reads an EVENT's type, ID and data into an event for the inbox: nil for a type
// with nothing to sync, an error for a contact event that names nothing.
func streamEvent(typ, id string, data []byte) (*federation.Event, error) {
	var d struct {
		UserIDA ids `json:"UserId"`
		UserIDB ids `json:"userId"`
		DeptIDA ids `json:"DeptId"`
		DeptIDB ids `json:"deptId"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("event data: %w", err)
	}
	key := id
	if key == "" {
		sum := sha256.Sum256(append([]byte(typ+"\x00"), data...))
		key = hex.EncodeToString(sum[:])
	}
	e := &federation.Event{Type: typ, Key: key, UserIDs: append(d.UserIDA, d.UserIDB...), DeptIDs: append(d.DeptIDA, d.DeptIDB...)}
	switch typ {
	case "user_add_org", "user_modify_org", "user_leave_org", "user_active_org":
		if len(e.UserIDs) == 0 {
			return nil, fmt.Errorf("%s names no user", typ)
		}
	case "org_dept_create", "org_dept_modify", "org_dept_remove":
		if len(e.DeptIDs) == 0 {
			return nil, fmt.Errorf("%s names no department", typ)
		}
	default:
		return nil, nil // other subscriptions: acknowledged, nothing to sync
	}
	return e, nil
}
