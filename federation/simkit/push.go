package simkit

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Delivery is the outcome of one event push.
type Delivery struct {
	At        time.Time `json:"at"`
	Type      string    `json:"type"` // the platform's event or change type
	Attempts  int       `json:"attempts"`
	OK        bool      `json:"ok"`
	Error     string    `json:"error,omitempty"`
	Plaintext string    `json:"plaintext"`
}

type pushItem struct {
	typ     string
	payload []byte
}

// Pusher delivers a simulator's events, in order, to the registered callback URL: each event is
// tried Attempts times, Backoff apart. Post encrypts and sends one event the platform's way.
type Pusher struct {
	Backoff  time.Duration
	attempts int
	post     func(ctx context.Context, url string, payload []byte) error
	mu       sync.Mutex
	url      string
	queue    chan pushItem
	log      []Delivery
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

// NewPusher starts a pusher.
func NewPusher(attempts int, post func(ctx context.Context, url string, payload []byte) error) *Pusher {
	p := &Pusher{Backoff: time.Second, attempts: attempts, post: post, queue: make(chan pushItem, 10000),
		stop: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p
}

// SetURL registers (or, with "", clears) the callback URL; the caller has verified it.
func (p *Pusher) SetURL(u string) {
	p.mu.Lock()
	p.url = u
	p.mu.Unlock()
}

// Enqueue queues an event; nothing is queued while no callback is registered.
func (p *Pusher) Enqueue(typ string, payload []byte) {
	p.mu.Lock()
	on := p.url != ""
	p.mu.Unlock()
	if !on {
		return
	}
	select {
	case p.queue <- pushItem{typ, payload}:
	default: // a full queue drops, like a platform giving up; the log says so
		p.record(Delivery{At: time.Now(), Type: typ, Error: "queue full", Plaintext: string(payload)})
	}
}

func (p *Pusher) record(d Delivery) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.log) > 10000 {
		p.log = p.log[5000:]
	}
	p.log = append(p.log, d)
}

// Deliveries returns the log of pushes.
func (p *Pusher) Deliveries() []Delivery {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Delivery(nil), p.log...)
}

// Close stops the pusher.
func (p *Pusher) Close() {
	p.once.Do(func() {
		close(p.stop)
		<-p.done
	})
}

func (p *Pusher) run() {
	defer close(p.done)
	for {
		select {
		case <-p.stop:
			return
		case it := <-p.queue:
			d := Delivery{At: time.Now(), Type: it.typ, Plaintext: string(it.payload)}
			for d.Attempts < p.attempts {
				d.Attempts++
				p.mu.Lock()
				target := p.url
				p.mu.Unlock()
				err := p.post(context.Background(), target, it.payload)
				if err == nil {
					d.OK, d.Error = true, ""
					break
				}
				d.Error = err.Error()
				select {
				case <-p.stop:
					p.record(d)
					return
				case <-time.After(p.Backoff):
				}
			}
			p.record(d)
		}
	}
}

// Control is the part of a simulator's /_sim/ API both platforms share.
type Control struct {
	Kit           *Kit
	Pusher        *Pusher
	ExpireTokens  func()
	SetRateLimits func(bool)
	// SetCallback verifies a callback URL the platform's way and registers it.
	SetCallback func(ctx context.Context, url string) error
	FaultHelp   string
}

// Routes mounts the shared control endpoints.
func (c Control) Routes(m *http.ServeMux) {
	m.HandleFunc("POST /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		if err := json.NewDecoder(r.Body).Decode(&f); err != nil || f.API == "" {
			CtlErr(w, http.StatusBadRequest, c.FaultHelp)
			return
		}
		c.Kit.AddFault(f)
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("DELETE /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		c.Kit.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("POST /_sim/tokens/expire", func(w http.ResponseWriter, r *http.Request) {
		c.ExpireTokens()
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("POST /_sim/ratelimits", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			Enabled bool `json:"enabled"`
		}
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			CtlErr(w, http.StatusBadRequest, "want {\"enabled\": true|false}")
			return
		}
		c.SetRateLimits(b.Enabled)
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("GET /_sim/calls", func(w http.ResponseWriter, r *http.Request) { WriteJSON(w, http.StatusOK, c.Kit.Calls()) })
	m.HandleFunc("DELETE /_sim/calls", func(w http.ResponseWriter, r *http.Request) {
		c.Kit.ClearCalls()
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("POST /_sim/callback", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			URL string `json:"url"`
		}
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			CtlErr(w, http.StatusBadRequest, "want {\"url\": \"https://.../events\"}")
			return
		}
		if err := c.SetCallback(r.Context(), b.URL); err != nil {
			CtlErr(w, http.StatusBadRequest, err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("GET /_sim/events", func(w http.ResponseWriter, r *http.Request) { WriteJSON(w, http.StatusOK, c.Pusher.Deliveries()) })
}

// CtlErr answers a control-API request with a JSON error.
func CtlErr(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, map[string]string{"error": "bad_request", "message": msg})
}
