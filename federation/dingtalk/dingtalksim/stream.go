package dingtalksim

// Stream mode (Stream 模式): the app dials out to DingTalk, which pushes events over a WebSocket.
//
// What is taken from where (read, not copied):
//   - open-dingtalk/developerpedia docs/learn/stream/protocol.md at commit
//     211653f90330587ee4ca112598aa760fe187ef54 (the published protocol description): the
//     connections/open request {clientId, clientSecret, subscriptions[{type, topic}], ua, localIp}
//     and answer {endpoint, ticket}; a ticket is good for 90 s and one connection; the handshake
//     is GET endpoint?ticket=…; frames {specVersion, type SYSTEM|EVENT|CALLBACK, headers{topic,
//     contentType, messageId, time, eventType, eventId, eventCorpId, eventBornTime,
//     eventUnifiedAppId}, data: a JSON string}; an EVENT subscription's topic may only be "*";
//     the ACK {code 200|404|500, headers{messageId, contentType}, message, data} whose data for
//     an event is {"status":"SUCCESS"|"LATER","message":…}; an unacknowledged event is pushed
//     again, and duplicates remain possible after an ACK; with several connections each message
//     goes to one chosen at random; SYSTEM ping carries {"opaque"} and is answered with the same
//     data; SYSTEM disconnect carries {"reason"} and the server closes the connection 10 s later.
//   - open-dingtalk/dingtalk-stream-sdk-go at commit d8d6e1f19d68b231c1514fdac973d866a2882b93:
//     payload/connection.go, payload/data_frame.go and payload/utils.go (field and header names,
//     codes 200/404/500), utils/utils.go (the path /v1.0/gateway/connections/open),
//     client/client.go (endpoint + "?ticket=", an ACK answers every frame including disconnect,
//     the pong copies the ping's data), event/frame_handler.go (event ACK: code 200 SUCCESS, 500
//     LATER).
//
// Not from a primary source, so settings or stated choices here: the error answers of
// connections/open (the new API's {code, requestid, message} with an HTTP status, §2.1; the
// exact codes are ours), the refusal of a bad ticket at the handshake (HTTP 401 before the
// upgrade), how long the server waits for an ACK before pushing again, how many times it tries,
// and how often it pings.

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/qiao-gateway/qiao/federation/simkit"
)

// StreamPath is where the simulated Stream endpoint listens (the real one is
// wss://wss-open-connection.dingtalk.com/connect).
const StreamPath = "/connect"

// StreamTicketTTL is how long a ticket may wait for its connection (protocol.md: 90 s).
const StreamTicketTTL = 90 * time.Second

// StreamOptions are the Stream gateway's timings. Zero fields take the defaults.
type StreamOptions struct {
	// AckTimeout: an event without an ACK this long after it was pushed is pushed again; a ping
	// without its answer this long closes the connection. Default 5 s.
	AckTimeout time.Duration
	// RetryDelay: after an ACK with code 500 / status LATER, the event is pushed again this much
	// later. Default 1 s.
	RetryDelay time.Duration
	// MaxAttempts: an event pushed this many times without success is given up (logged). Default 10.
	MaxAttempts int
	// PingInterval between SYSTEM pings on each connection; 0 = the default 30 s; negative = none
	// (tests ping with StreamPing).
	PingInterval time.Duration
	// DisconnectGrace is how long after a SYSTEM disconnect the server closes the connection.
	// Default 10 s (protocol.md).
	DisconnectGrace time.Duration
}

func (o StreamOptions) withDefaults() StreamOptions {
	if o.AckTimeout <= 0 {
		o.AckTimeout = 5 * time.Second
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.PingInterval == 0 {
		o.PingInterval = 30 * time.Second
	}
	if o.DisconnectGrace <= 0 {
		o.DisconnectGrace = 10 * time.Second
	}
	return o
}

// StreamDelivery is one line of the Stream log: a push, an ACK, a redelivery, a ping, a
// disconnect, or a protocol error of the client's.
type StreamDelivery struct {
	At        time.Time `json:"at"`
	Conn      string    `json:"conn"`
	Kind      string    `json:"kind"` // push, ack, later, timeout, given_up, ack_lost, ping, pong, disconnect, closed, protocol_error
	MessageID string    `json:"message_id,omitempty"`
	EventID   string    `json:"event_id,omitempty"`
	EventType string    `json:"event_type,omitempty"`
	Attempt   int       `json:"attempt,omitempty"`
	Detail    string    `json:"detail,omitempty"`
}

// StreamConnInfo describes an open Stream connection.
type StreamConnInfo struct {
	ID      string `json:"id"`
	AppKey  string `json:"app_key"`
	UA      string `json:"ua"`
	Events  bool   `json:"events"`  // subscribed to EVENT "*"
	Closing bool   `json:"closing"` // a SYSTEM disconnect was sent
}

// StreamStatus is what GET /_sim/stream shows.
type StreamStatus struct {
	EventsOverStream bool             `json:"events_over_stream"`
	Connections      []StreamConnInfo `json:"connections"`
	Pending          int              `json:"pending"` // events not yet acknowledged
	Opened           int              `json:"opened"`  // connections ever accepted
}

type streamTicket struct {
	app     *App
	ua      string
	events  bool
	expires time.Time
}

type streamMsg struct {
	eventID, eventType string
	data               []byte
	born               time.Time
	attempts           int
	msgID              string      // of the current push
	conn               *streamConn // nil: not in flight
	sentAt             time.Time
	notBefore          time.Time
}

type streamConn struct {
	id       string
	app      *App
	ua       string
	events   bool
	closing  bool
	ws       *websocket.Conn
	out      chan []byte
	done     chan struct{}
	pings    map[string]time.Time // messageId -> sent
	opaque   map[string]string    // messageId -> opaque
	lastPing time.Time
}

type streamHub struct {
	s      *Sim
	mu     sync.Mutex
	opts   StreamOptions
	on     bool // events go over Stream instead of the HTTP push
	tix    map[string]*streamTicket
	conns  map[*streamConn]bool
	queue  []*streamMsg
	log    []StreamDelivery
	loseN  int // ACKs to ignore, as if lost on the way
	opened int
	wake   chan struct{}
	stop   chan struct{}
	once   sync.Once
	loop   sync.Once
}

func (s *Sim) hub() *streamHub {
	s.streamOnce.Do(func() {
		s.stream = &streamHub{s: s, opts: StreamOptions{}.withDefaults(), tix: map[string]*streamTicket{}, conns: map[*streamConn]bool{},
			wake: make(chan struct{}, 1), stop: make(chan struct{})}
	})
	return s.stream
}

// SetStreamOptions changes the Stream gateway's timings.
func (s *Sim) SetStreamOptions(o StreamOptions) {
	h := s.hub()
	h.mu.Lock()
	h.opts = o.withDefaults()
	h.mu.Unlock()
	h.poke()
}

// SetEventsOverStream chooses how the org's events are pushed, as the developer console's push
// mode does: over Stream connections (on) or to the HTTP callback (off, the default). Events
// fired while no connection is open wait for one.
func (s *Sim) SetEventsOverStream(on bool) {
	h := s.hub()
	h.mu.Lock()
	h.on = on
	h.mu.Unlock()
}

// StreamDeliveries returns the Stream log.
func (s *Sim) StreamDeliveries() []StreamDelivery {
	h := s.hub()
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]StreamDelivery(nil), h.log...)
}

// StreamStatus reports the open connections and pending events.
func (s *Sim) StreamStatus() StreamStatus {
	h := s.hub()
	h.mu.Lock()
	defer h.mu.Unlock()
	st := StreamStatus{EventsOverStream: h.on, Pending: len(h.queue), Opened: h.opened, Connections: []StreamConnInfo{}}
	for c := range h.conns {
		st.Connections = append(st.Connections, StreamConnInfo{ID: c.id, AppKey: c.app.AppKey, UA: c.ua, Events: c.events, Closing: c.closing})
	}
	return st
}

// StreamDisconnect sends SYSTEM disconnect on every open connection and closes each one
// DisconnectGrace later, as the platform does to rebalance. It returns how many it told.
func (s *Sim) StreamDisconnect(reason string) int {
	h := s.hub()
	h.mu.Lock()
	var told []*streamConn
	for c := range h.conns {
		if c.closing {
			continue
		}
		c.closing = true
		data, _ := json.Marshal(map[string]string{"reason": reason})
		f := frame("SYSTEM", map[string]string{"topic": "disconnect", "contentType": "application/json", "messageId": msgID(),
			"time": strconv.FormatInt(s.cfg.Now().UnixMilli(), 10)}, data)
		h.record(StreamDelivery{Conn: c.id, Kind: "disconnect", Detail: reason})
		h.send(c, f)
		told = append(told, c)
	}
	grace := h.opts.DisconnectGrace
	h.mu.Unlock()
	for _, c := range told {
		go func() {
			select {
			case <-time.After(grace):
				_ = c.ws.Close(websocket.StatusNormalClosure, "disconnect")
			case <-c.done:
			}
		}()
	}
	return len(told)
}

// StreamDrop closes every connection at once, without a SYSTEM disconnect: a network failure.
func (s *Sim) StreamDrop() int {
	h := s.hub()
	h.mu.Lock()
	var cs []*streamConn
	for c := range h.conns {
		cs = append(cs, c)
	}
	h.mu.Unlock()
	for _, c := range cs {
		_ = c.ws.CloseNow()
	}
	return len(cs)
}

// StreamPing sends a SYSTEM ping on every open connection now; a connection that does not answer
// within AckTimeout is closed.
func (s *Sim) StreamPing() int {
	h := s.hub()
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for c := range h.conns {
		h.ping(c)
		n++
	}
	return n
}

// StreamLoseAcks makes the next n event ACKs vanish, as if lost on the network: those events are
// pushed again after AckTimeout although the client has them.
func (s *Sim) StreamLoseAcks(n int) {
	h := s.hub()
	h.mu.Lock()
	h.loseN = n
	h.mu.Unlock()
}

func (h *streamHub) close() {
	h.once.Do(func() { close(h.stop) })
	h.mu.Lock()
	var cs []*streamConn
	for c := range h.conns {
		cs = append(cs, c)
	}
	h.mu.Unlock()
	for _, c := range cs {
		_ = c.ws.CloseNow()
	}
}

func (h *streamHub) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// record appends to the log; h.mu is held.
func (h *streamHub) record(d StreamDelivery) {
	d.At = h.s.cfg.Now()
	if len(h.log) >= 100000 {
		h.log = h.log[1:]
	}
	h.log = append(h.log, d)
}

func msgID() string { return simkit.Token(4) + "_" + simkit.Token(6) }

func frame(typ string, headers map[string]string, data []byte) []byte {
	b, _ := json.Marshal(map[string]any{"specVersion": "1.0", "type": typ, "headers": headers, "data": string(data)})
	return b
}

// takesEvents reports whether events go over Stream.
func (h *streamHub) takesEvents() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.on
}

// enqueue queues an event for the Stream connections. data is the event body without its type
// (which travels in the eventType header).
func (h *streamHub) enqueue(eventID, eventType string, data []byte) {
	h.mu.Lock()
	h.queue = append(h.queue, &streamMsg{eventID: eventID, eventType: eventType, data: data, born: h.s.cfg.Now()})
	h.mu.Unlock()
	h.loop.Do(func() { go h.run() })
	h.poke()
}

// run pushes pending events, redelivers the unacknowledged ones and pings, until the sim closes.
func (h *streamHub) run() {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-h.wake:
		case <-t.C:
		}
		h.tick()
	}
}

func (h *streamHub) tick() {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	var ready []*streamConn
	for c := range h.conns {
		if c.events && !c.closing {
			ready = append(ready, c)
		}
		if h.opts.PingInterval > 0 && now.Sub(c.lastPing) >= h.opts.PingInterval {
			h.ping(c)
		}
		for id, sent := range c.pings {
			if now.Sub(sent) > h.opts.AckTimeout {
				delete(c.pings, id)
				h.record(StreamDelivery{Conn: c.id, Kind: "protocol_error", MessageID: id, Detail: "ping not answered; closing"})
				go c.ws.CloseNow()
			}
		}
	}
	kept := h.queue[:0]
	for _, m := range h.queue {
		if m.conn != nil && now.Sub(m.sentAt) > h.opts.AckTimeout {
			h.record(StreamDelivery{Conn: m.conn.id, Kind: "timeout", MessageID: m.msgID, EventID: m.eventID, EventType: m.eventType, Attempt: m.attempts})
			m.conn, m.notBefore = nil, now
		}
		if m.conn == nil && m.attempts >= h.opts.MaxAttempts {
			h.record(StreamDelivery{Kind: "given_up", EventID: m.eventID, EventType: m.eventType, Attempt: m.attempts})
			continue
		}
		if m.conn == nil && len(ready) > 0 && !now.Before(m.notBefore) {
			c := ready[rand.IntN(len(ready))]
			m.attempts++
			m.msgID, m.conn, m.sentAt = msgID(), c, now
			nowMS := strconv.FormatInt(h.s.cfg.Now().UnixMilli(), 10)
			f := frame("EVENT", map[string]string{"topic": "*", "contentType": "application/json", "messageId": m.msgID, "time": nowMS,
				"eventType": m.eventType, "eventId": m.eventID, "eventCorpId": h.s.cfg.CorpID, "eventBornTime": strconv.FormatInt(m.born.UnixMilli(), 10),
				"eventUnifiedAppId": "app-" + c.app.AppKey}, m.data)
			h.record(StreamDelivery{Conn: c.id, Kind: "push", MessageID: m.msgID, EventID: m.eventID, EventType: m.eventType, Attempt: m.attempts})
			h.send(c, f)
		}
		kept = append(kept, m)
	}
	clear(h.queue[len(kept):])
	h.queue = kept
}

// ping sends a SYSTEM ping; h.mu is held.
func (h *streamHub) ping(c *streamConn) {
	id, opaque := msgID(), simkit.Token(8)
	c.pings[id], c.opaque[id], c.lastPing = time.Now(), opaque, time.Now()
	data, _ := json.Marshal(map[string]string{"opaque": opaque})
	h.record(StreamDelivery{Conn: c.id, Kind: "ping", MessageID: id})
	h.send(c, frame("SYSTEM", map[string]string{"topic": "ping", "contentType": "application/json", "messageId": id,
		"time": strconv.FormatInt(h.s.cfg.Now().UnixMilli(), 10)}, data))
}

// send queues a frame for the connection's writer; a connection that cannot keep up is closed.
func (h *streamHub) send(c *streamConn, f []byte) {
	select {
	case c.out <- f:
	default:
		go c.ws.CloseNow()
	}
}

// ---- HTTP: connections/open and the WebSocket endpoint

func (s *Sim) streamRoutes() {
	s.mux.HandleFunc("POST /v1.0/gateway/connections/open", s.openConnection)
	s.mux.HandleFunc("GET "+StreamPath, s.streamConnect)
	s.mux.HandleFunc("GET /_sim/stream", func(w http.ResponseWriter, r *http.Request) {
		simkit.WriteJSON(w, http.StatusOK, map[string]any{"status": s.StreamStatus(), "deliveries": s.StreamDeliveries()})
	})
	s.mux.HandleFunc("POST /_sim/stream/mode", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			Events string `json:"events"`
		}
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil || (b.Events != "stream" && b.Events != "http") {
			ctlErr(w, http.StatusBadRequest, `want {"events": "stream" or "http"}`)
			return
		}
		s.SetEventsOverStream(b.Events == "stream")
		w.WriteHeader(http.StatusNoContent)
	})
	s.mux.HandleFunc("POST /_sim/stream/disconnect", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			Reason string `json:"reason"`
		}
		_ = json.NewDecoder(r.Body).Decode(&b)
		if b.Reason == "" {
			b.Reason = "connection is expired"
		}
		simkit.WriteJSON(w, http.StatusOK, map[string]int{"told": s.StreamDisconnect(b.Reason)})
	})
	s.mux.HandleFunc("POST /_sim/stream/drop", func(w http.ResponseWriter, r *http.Request) {
		simkit.WriteJSON(w, http.StatusOK, map[string]int{"dropped": s.StreamDrop()})
	})
	s.mux.HandleFunc("POST /_sim/stream/ping", func(w http.ResponseWriter, r *http.Request) {
		simkit.WriteJSON(w, http.StatusOK, map[string]int{"pinged": s.StreamPing()})
	})
	s.mux.HandleFunc("POST /_sim/stream/lose-acks", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			Count int `json:"count"`
		}
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil || b.Count < 0 {
			ctlErr(w, http.StatusBadRequest, `want {"count": N}`)
			return
		}
		s.StreamLoseAcks(b.Count)
		w.WriteHeader(http.StatusNoContent)
	})
}

// openConnection registers a connection credential: POST /v1.0/gateway/connections/open.
func (s *Sim) openConnection(w http.ResponseWriter, r *http.Request) {
	rec, done, good := s.newAPI(w, r, "gateway/connections/open")
	defer done()
	if !good {
		return
	}
	var b struct {
		ClientID      string `json:"clientId"`
		ClientSecret  string `json:"clientSecret"`
		Subscriptions []struct {
			Type  string `json:"type"`
			Topic string `json:"topic"`
		} `json:"subscriptions"`
		UA      string `json:"ua"`
		LocalIP string `json:"localIp"`
	}
	if !s.jsonBody(rec, r, &b) {
		return
	}
	if b.ClientID == "" || b.ClientSecret == "" {
		s.newErr(rec, http.StatusBadRequest, "MissingParameter", "clientId and clientSecret are mandatory for this action.")
		return
	}
	a := s.appByKey(b.ClientID)
	if a == nil || a.AppSecret != b.ClientSecret {
		s.newErr(rec, http.StatusUnauthorized, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
		return
	}
	if len(b.Subscriptions) == 0 {
		s.newErr(rec, http.StatusBadRequest, "MissingParameter", "subscriptions is mandatory for this action.")
		return
	}
	events := false
	for _, sub := range b.Subscriptions {
		switch {
		case sub.Type == "EVENT" && sub.Topic == "*":
			events = true
		case sub.Type == "EVENT":
			// "仅支持星号(*)": event topics are chosen in the developer console.
			s.newErr(rec, http.StatusBadRequest, "InvalidParameter", "an EVENT subscription's topic must be *")
			return
		case sub.Type == "CALLBACK" && sub.Topic != "":
		default:
			s.newErr(rec, http.StatusBadRequest, "InvalidParameter", "subscription type must be EVENT or CALLBACK, with a topic")
			return
		}
	}
	h := s.hub()
	tk := simkit.Token(16)
	scheme := "ws"
	if r.TLS != nil {
		scheme = "wss"
	}
	h.mu.Lock()
	now := s.cfg.Now()
	for k, t := range h.tix {
		if now.After(t.expires) {
			delete(h.tix, k)
		}
	}
	h.tix[tk] = &streamTicket{app: a, ua: b.UA, events: events, expires: now.Add(StreamTicketTTL)}
	h.mu.Unlock()
	s.newOK(rec, map[string]string{"endpoint": scheme + "://" + r.Host + StreamPath, "ticket": tk})
}

// streamConnect is the WebSocket endpoint: the ticket is checked and spent before the upgrade.
func (s *Sim) streamConnect(w http.ResponseWriter, r *http.Request) {
	h := s.hub()
	tk := r.URL.Query().Get("ticket")
	h.mu.Lock()
	t := h.tix[tk]
	delete(h.tix, tk) // one connection per ticket
	h.mu.Unlock()
	if t == nil || s.cfg.Now().After(t.expires) {
		s.newErr(w, http.StatusUnauthorized, "InvalidTicket", "ticket is missing, expired or already used")
		return
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered
	}
	c := &streamConn{id: "c" + simkit.Token(3), app: t.app, ua: t.ua, events: t.events, ws: ws, out: make(chan []byte, 4096),
		done: make(chan struct{}), pings: map[string]time.Time{}, opaque: map[string]string{}, lastPing: time.Now()}
	h.mu.Lock()
	h.conns[c] = true
	h.opened++
	h.mu.Unlock()
	h.loop.Do(func() { go h.run() })
	h.poke()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			select {
			case f := <-c.out:
				wctx, wc := context.WithTimeout(ctx, 5*time.Second)
				err := ws.Write(wctx, websocket.MessageText, f)
				wc()
				if err != nil {
					_ = ws.CloseNow()
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() {
		cancel()
		_ = ws.CloseNow()
		close(c.done)
		h.mu.Lock()
		delete(h.conns, c)
		h.record(StreamDelivery{Conn: c.id, Kind: "closed"})
		// What was in flight on this connection is pushed again on another.
		for _, m := range h.queue {
			if m.conn == c {
				m.conn, m.notBefore = nil, time.Time{}
			}
		}
		h.mu.Unlock()
		h.poke()
	}()
	for {
		typ, b, err := ws.Read(ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			h.mu.Lock()
			h.record(StreamDelivery{Conn: c.id, Kind: "protocol_error", Detail: "binary frame"})
			h.mu.Unlock()
			continue
		}
		h.ack(c, b)
	}
}

// ack handles a client frame: the answer to a push or a ping.
func (h *streamHub) ack(c *streamConn, b []byte) {
	var a struct {
		Code    int               `json:"code"`
		Headers map[string]string `json:"headers"`
		Message string            `json:"message"`
		Data    string            `json:"data"`
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	defer h.poke()
	if err := json.Unmarshal(b, &a); err != nil {
		h.record(StreamDelivery{Conn: c.id, Kind: "protocol_error", Detail: "not an ACK frame: " + err.Error()})
		return
	}
	id := a.Headers["messageId"]
	if id == "" || a.Headers["contentType"] == "" {
		h.record(StreamDelivery{Conn: c.id, Kind: "protocol_error", MessageID: id, Detail: "ACK without headers.messageId or headers.contentType"})
		return
	}
	if _, ok := c.pings[id]; ok {
		want := c.opaque[id]
		delete(c.pings, id)
		delete(c.opaque, id)
		var d struct {
			Opaque string `json:"opaque"`
		}
		if a.Code != 200 || json.Unmarshal([]byte(a.Data), &d) != nil || d.Opaque != want {
			h.record(StreamDelivery{Conn: c.id, Kind: "protocol_error", MessageID: id, Detail: "pong must have code 200 and the ping's opaque"})
			return
		}
		h.record(StreamDelivery{Conn: c.id, Kind: "pong", MessageID: id})
		return
	}
	var m *streamMsg
	for _, q := range h.queue {
		if q.msgID == id && q.conn == c {
			m = q
			break
		}
	}
	if m == nil {
		// A late ACK of a push already given to another connection, a disconnect's ACK, or junk.
		h.record(StreamDelivery{Conn: c.id, Kind: "ack", MessageID: id, Detail: "no push in flight with this messageId here"})
		return
	}
	if h.loseN > 0 {
		h.loseN--
		h.record(StreamDelivery{Conn: c.id, Kind: "ack_lost", MessageID: id, EventID: m.eventID, EventType: m.eventType, Attempt: m.attempts})
		return
	}
	var d struct {
		Status string `json:"status"`
	}
	_ = json.Unmarshal([]byte(a.Data), &d)
	if a.Code != 200 || d.Status != "SUCCESS" {
		h.record(StreamDelivery{Conn: c.id, Kind: "later", MessageID: id, EventID: m.eventID, EventType: m.eventType, Attempt: m.attempts,
			Detail: strconv.Itoa(a.Code) + " " + d.Status + " " + a.Message})
		m.conn, m.notBefore = nil, time.Now().Add(h.opts.RetryDelay)
		return
	}
	h.record(StreamDelivery{Conn: c.id, Kind: "ack", MessageID: id, EventID: m.eventID, EventType: m.eventType, Attempt: m.attempts})
	for i, q := range h.queue {
		if q == m {
			h.queue = append(h.queue[:i], h.queue[i+1:]...)
			break
		}
	}
}
