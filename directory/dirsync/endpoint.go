package dirsync

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/internal/httpx"
	"github.com/qiao-gateway/qiao/internal/state"
)

// MaxEventBody caps a callback body; real contact events are a few KB.
const MaxEventBody = 256 << 10

// EventEndpoint is the event callback of every source ({external_url}/e/{enterprise}/sources/{source}/events,
// the "Request URL" pasted into the platform's console): WeCom's URL verification (GET) and
// events (POST), DingTalk's pushes (POST). It verifies, rejects stale and replayed callbacks, and
// stores each event in the durable inbox before acknowledging it; the inbox worker
// (Engine.ProcessEvents) applies it.
type EventEndpoint struct {
	Store directory.Store
	State state.Store
	// Decoder opens a source's callback decoder (federation/connectors.Decoder in production).
	Decoder func(src *directory.IdentitySource) (federation.CallbackDecoder, error)
	// MaxSkew is how far a callback's timestamp may be from now.
	MaxSkew time.Duration
	// Notify, when set, is signalled (without blocking) when an event was stored.
	Notify chan<- struct{}
	Log    *slog.Logger
}

// ServeHTTP serves a callback; the route gives the path values "enterprise" and "source".
func (e *EventEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ent, srcID := r.PathValue("enterprise"), r.PathValue("source")
	log := e.Log.With("enterprise", ent, "source", srcID, "request_id", httpx.RequestID(r.Context()))
	src, err := e.Store.GetSource(r.Context(), ent, srcID)
	if errors.Is(err, directory.ErrNotFound) {
		httpx.WriteError(w, r, http.StatusNotFound, "unknown_source", "no identity source "+srcID+" in enterprise "+ent)
		return
	}
	if err != nil {
		httpx.WriteError(w, r, http.StatusServiceUnavailable, "store_unavailable", "the directory cannot be read right now; the platform will retry")
		return
	}
	dec, err := e.Decoder(src)
	if err != nil {
		log.Warn("event callback for a source without callback settings", "err", err)
		httpx.WriteError(w, r, http.StatusNotFound, "callbacks_not_configured", "this source has no event callback configured (see the gateway log for what is missing)")
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
		httpx.WriteError(w, r, http.StatusBadRequest, "malformed_callback", "the callback is not a well-formed request of the platform")
		return
	}
	now := time.Now()
	skew := e.MaxSkew
	if d := now.Sub(cb.Timestamp); d > skew || d < -skew {
		log.Warn("event callback rejected: timestamp outside the window", "timestamp", cb.Timestamp, "window", skew.String())
		httpx.WriteError(w, r, http.StatusForbidden, "stale_callback", "the callback timestamp is outside the accepted window")
		return
	}
	sum := sha256.Sum256([]byte(ent + "\x00" + srcID + "\x00" + cb.Timestamp.String() + "\x00" + cb.Nonce + "\x00" + cb.Signature))
	fresh, err := e.State.PutIfAbsent(r.Context(), "evreplay:"+hex.EncodeToString(sum[:]), []byte{1}, 2*skew)
	if err != nil {
		httpx.WriteError(w, r, http.StatusServiceUnavailable, "state_unavailable", "replay protection is unavailable; the platform will retry")
		return
	}
	if !fresh {
		log.Warn("event callback rejected: replayed (timestamp, nonce, signature)")
		httpx.WriteError(w, r, http.StatusForbidden, "replayed_callback", "this callback was already received")
		return
	}
	stored, err := StoreEvents(r.Context(), e.Store, ent, srcID, cb.Events, now)
	if err != nil {
		// Not stored: do not acknowledge, so the platform delivers it again. Forget the replay
		// marker so that redelivery is accepted.
		_ = e.State.Delete(r.Context(), "evreplay:"+hex.EncodeToString(sum[:]))
		log.Error("event not stored", "err", err)
		httpx.WriteError(w, r, http.StatusServiceUnavailable, "store_unavailable", "the event could not be stored; the platform will retry")
		return
	}
	if stored > 0 {
		select {
		case e.Notify <- struct{}{}:
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
