package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/dirsync"
	"github.com/qiao-gateway/qiao/directory/lease"
	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/dingtalk"
)

// LeaseDingTalkStreamPrefix + "{enterprise}/{source}" names the lease of a DingTalk source's
// Stream connection: exactly one replica holds it.
const LeaseDingTalkStreamPrefix = "dingtalk-stream:"

// StreamTimings are how the gateway runs DingTalk Stream connections.
type StreamTimings struct {
	// Scan is how often the sources are listed to start, restart (changed settings) or stop
	// connections.
	Scan time.Duration
	// LeaseTTL is the lease of one connection: renewed every TTL/3 by its holder; a holder that
	// dies leaves it to expire, and another replica takes over within TTL + Retry.
	LeaseTTL time.Duration
	// Retry is how often a replica that does not hold a lease tries to take it.
	Retry time.Duration
	// MinBackoff and MaxBackoff bound the reconnection backoff (dingtalk.Stream).
	MinBackoff, MaxBackoff time.Duration
}

var (
	streamTimingsMu sync.Mutex
	streamTimings   = StreamTimings{Scan: 5 * time.Second, LeaseTTL: 15 * time.Second, Retry: 2 * time.Second, MinBackoff: time.Second, MaxBackoff: time.Minute}
)

// SetStreamTimings changes the timings of the Stream connections gateways start from now on
// (tests and load drivers; the defaults suit production).
func SetStreamTimings(t StreamTimings) {
	streamTimingsMu.Lock()
	streamTimings = t
	streamTimingsMu.Unlock()
}

func currentStreamTimings() StreamTimings {
	streamTimingsMu.Lock()
	defer streamTimingsMu.Unlock()
	return streamTimings
}

type streamRunner struct {
	fingerprint string
	cancel      context.CancelFunc
	done        chan struct{}
}

// startStreams runs runStreams until the returned stop is called (or ctx ends); stop waits for
// every connection to close and its lease to be released, so a replica that shuts down hands
// its connections over at once instead of after the lease expires.
func (g *Gateway) startStreams(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { g.runStreams(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// runStreams holds the Stream connection of every enabled DingTalk source configured with
// events: stream — each under its own lease, so that of N replicas exactly one connects and
// another takes over if it dies — until ctx ends.
//
// Fencing: events are stored through dirsync.StoreEvents, deduplicated by DingTalk's event ID,
// so two connections overlapping for a moment (a holder paused past its lease while its
// successor connects) store nothing twice; DingTalk itself allows several connections per app
// and pushes each message on one. The lease keeps it to one connection in the normal case.
func (g *Gateway) runStreams(ctx context.Context) {
	tm := currentStreamTimings()
	held := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "qiao_dingtalk_stream_held",
		Help: "1 while this replica holds the lease of a DingTalk source's Stream connection and runs it."}, []string{"enterprise", "source"})
	if err := g.Registry.Register(held); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			g.Log.Warn("dingtalk stream: metric", "err", err)
		} else {
			held = are.ExistingCollector.(*prometheus.GaugeVec)
		}
	}
	running := map[string]*streamRunner{}
	defer func() {
		for _, r := range running {
			r.cancel()
			<-r.done
		}
	}()
	t := time.NewTicker(tm.Scan)
	defer t.Stop()
	for {
		want, err := g.streamSources(ctx)
		if err == nil {
			for k, r := range running {
				if src, ok := want[k]; !ok || streamFingerprint(src) != r.fingerprint {
					r.cancel()
					<-r.done
					delete(running, k)
				}
			}
			for k, src := range want {
				if running[k] == nil {
					running[k] = g.startStream(ctx, src, tm, held.WithLabelValues(src.EnterpriseID, src.ID))
				}
			}
		} else if ctx.Err() == nil {
			g.Log.Warn("dingtalk stream: list sources", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// streamSources are the enabled DingTalk sources configured for Stream events, by enterprise/source.
func (g *Gateway) streamSources(ctx context.Context) (map[string]*directory.IdentitySource, error) {
	ents, err := g.Store.ListEnterprises(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]*directory.IdentitySource{}
	for _, e := range ents {
		srcs, err := g.Store.ListSources(ctx, e.ID)
		if err != nil {
			return nil, err
		}
		for _, s := range srcs {
			if s.Enabled && string(s.Kind) == dingtalk.Name && s.Config["events"] == dingtalk.EventsStream {
				out[s.EnterpriseID+"/"+s.ID] = s
			}
		}
	}
	return out, nil
}

// streamFingerprint changes when anything the connection depends on changes.
func streamFingerprint(s *directory.IdentitySource) string {
	b, _ := json.Marshal([]any{s.Config, s.Secrets})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// startStream runs one source's connection under its lease until the runner is cancelled.
func (g *Gateway) startStream(ctx context.Context, src *directory.IdentitySource, tm StreamTimings, held prometheus.Gauge) *streamRunner {
	rctx, cancel := context.WithCancel(ctx)
	r := &streamRunner{fingerprint: streamFingerprint(src), cancel: cancel, done: make(chan struct{})}
	log := g.Log.With("enterprise", src.EnterpriseID, "source", src.ID)
	ent, id := src.EnterpriseID, src.ID
	store := func(ctx context.Context, ev federation.Event) error {
		added, err := dirsync.StoreEvents(ctx, g.Store, ent, id, []federation.Event{ev}, time.Now())
		if err != nil {
			return err
		}
		if added > 0 {
			select {
			case g.eventNotify <- struct{}{}:
			default:
			}
		}
		log.Info("event received", "via", "stream", "type", ev.Type, "stored", added, "duplicates", 1-added)
		return nil
	}
	c, err := dingtalk.ParseConfig(src.Config, src.Secrets)
	var st *dingtalk.Stream
	if err == nil {
		st, err = c.NewStream(store, log)
	}
	if err != nil {
		// Not started until the settings change (the fingerprint then differs).
		log.Error("dingtalk stream: source settings refused; no Stream connection", "err", err)
		close(r.done)
		return r
	}
	st.MinBackoff, st.MaxBackoff = tm.MinBackoff, tm.MaxBackoff
	name := LeaseDingTalkStreamPrefix + ent + "/" + id
	holder := lease.Holder()
	go func() {
		defer close(r.done)
		for rctx.Err() == nil {
			err := lease.Run(rctx, g.Store, name, holder, tm.LeaseTTL, func(lctx context.Context, l *lease.Lease) error {
				log.Info("dingtalk stream: this replica holds the connection", "lease", name)
				held.Set(1)
				defer held.Set(0)
				st.Run(lctx) // returns when the lease is lost or rctx ends
				return nil
			})
			if err != nil && !errors.Is(err, lease.ErrHeld) && rctx.Err() == nil {
				log.Warn("dingtalk stream: lease", "err", err)
			}
			select {
			case <-rctx.Done():
			case <-time.After(tm.Retry):
			}
		}
	}()
	return r
}
