package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/connectors"
	"github.com/qiao-gateway/qiao/internal/httpx"
)

// MaxEventBody caps a callback body; real contact events are a few KB.
const MaxEventBody = 256 << 10

// sourceEvents is the event callback of a source ({external_url}/e/{enterprise}/sources/{source}/events):
// WeCom's URL verification (GET) and events (POST), DingTalk's pushes (POST). An event is stored
// in the durable inbox before it is acknowledged; the inbox worker applies it.
func (g *Gateway) sourceEvents(w http.ResponseWriter, r *http.Request) {
	ent, srcID := r.PathValue("enterprise"), r.PathValue("source")
	log := g.Log.With("enterprise", ent, "source", srcID, "request_id", httpx.RequestID(r.Context()))
	src, err := g.Store.GetSource(r.Context(), ent, srcID)
	if errors.Is(err, directory.ErrNotFound) {
		httpx.WriteError(w, r, http.StatusNotFound, "unknown_source", "no identity source "+srcID+" in enterprise "+ent)
		return
	}
	if err != nil {
		httpx.WriteError(w, r, http.StatusServiceUnavailable, "store_unavailable", "the directory cannot be read right now; the platform will retry")
		return
	}
	dec, err := connectors.Decoder(string(src.Kind), src.Config, src.Secrets)
	if err != nil {
		log.Warn("event callback for a source without callback settings", "err", err)
		httpx.WriteError(w, r, http.StatusNotFound, "callbacks_not_configured", "this source has no event callback configured: "+err.Error())
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxEventBody))
	if err != nil {
		httpx.WriteError(w, r, http.StatusRequestEntityTooLarge, "body_too_large", "callback bodies are capped at 256 KiB")
		return
	}
	cb, err := dec.Decode(r.Method, r.URL.Query(), body)
	switch {
	case errors.Is(err, federation.ErrForged):
		log.Warn("event callback rejected: signature or receive ID does not verify (check the callback token and AES key)", "err", err)
		httpx.WriteError(w, r, http.StatusForbidden, "bad_signature", "the callback signature or receive ID does not verify")
		return
	case err != nil:
		log.Warn("event callback rejected: malformed", "err", err)
		httpx.WriteError(w, r, http.StatusBadRequest, "malformed_callback", err.Error())
		return
	}
	now := time.Now()
	skew := g.Config.EventMaxSkew.D()
	if d := now.Sub(cb.Timestamp); d > skew || d < -skew {
		log.Warn("event callback rejected: timestamp outside the window", "timestamp", cb.Timestamp, "window", skew.String())
		httpx.WriteError(w, r, http.StatusForbidden, "stale_callback", "the callback timestamp is outside the accepted window")
		return
	}
	sum := sha256.Sum256([]byte(ent + "\x00" + srcID + "\x00" + cb.Timestamp.String() + "\x00" + cb.Nonce + "\x00" + cb.Signature))
	fresh, err := g.State.PutIfAbsent(r.Context(), "evreplay:"+hex.EncodeToString(sum[:]), []byte{1}, 2*skew)
	if err != nil {
		httpx.WriteError(w, r, http.StatusServiceUnavailable, "state_unavailable", "replay protection is unavailable; the platform will retry")
		return
	}
	if !fresh {
		log.Warn("event callback rejected: replayed (timestamp, nonce, signature)")
		httpx.WriteError(w, r, http.StatusForbidden, "replayed_callback", "this callback was already received")
		return
	}
	stored := 0
	for _, ev := range cb.Events {
		payload, _ := json.Marshal(ev)
		added, err := g.Store.AddSourceEvent(r.Context(), &directory.SourceEvent{EnterpriseID: ent, SourceID: srcID, DedupeKey: ev.Key,
			EventType: ev.Type, Payload: payload, ReceivedAt: now})
		if err != nil {
			// Not stored: do not acknowledge, so the platform delivers it again. Forget the replay
			// marker so that redelivery is accepted.
			_ = g.State.Delete(r.Context(), "evreplay:"+hex.EncodeToString(sum[:]))
			log.Error("event not stored", "err", err)
			httpx.WriteError(w, r, http.StatusServiceUnavailable, "store_unavailable", "the event could not be stored; the platform will retry")
			return
		}
		if added {
			stored++
		}
	}
	if stored > 0 {
		select {
		case g.eventNotify <- struct{}{}:
		default:
		}
	}
	if len(cb.Events) > 0 {
		log.Info("event received", "type", cb.Events[0].Type, "stored", stored, "duplicates", len(cb.Events)-stored)
	}
	w.Header().Set("Content-Type", cb.ReplyType)
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(cb.Reply)
}
