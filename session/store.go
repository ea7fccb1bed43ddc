package session

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/qiao-gateway/qiao/internal/state"
)

// Store keeps sessions in the state store (memory or Redis). The cookie holds only a random
// 256-bit ID; the session lives server-side with a TTL. An ID the browser brings that the store
// does not know is never adopted (no session fixation), and Start gives a login a fresh ID.
type Store struct {
	State      state.Store
	CookieName string
	Idle       time.Duration // a session unused this long ends
	Absolute   time.Duration // a session ends this long after login, however used
	Secure     bool          // set when the external URL is https
	Now        func() time.Time

	participants []Participant
}

// Register adds protocols to tell when a session ends; register before serving.
func (s *Store) Register(p ...Participant) { s.participants = append(s.participants, p...) }

func (s *Store) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

// The "sso:" prefix replaced gorilla-era "sess:" when the stored value became a typed Session:
// sessions stored by an older build are not read (their people log in again) and expire by TTL.
func sessionKey(id string) string { return "sso:" + id }

func userIndexKey(ent, uid string) string { return "usess:" + ent + ":" + uid }

// entSetKey is the set of an enterprise's session IDs, each live until its session's TTL ends:
// what CountEnterprise counts.
func entSetKey(ent string) string { return "esess:" + ent }

// Load returns the session the request's cookie names, or nil when there is none (no cookie, an
// unknown or ended ID, or one past its absolute timeout). An error is the state store's.
func (s *Store) Load(r *http.Request) (*Session, error) {
	c, err := r.Cookie(s.CookieName)
	if err != nil || len(c.Value) != 43 {
		return nil, nil
	}
	b, err := s.State.Get(r.Context(), sessionKey(c.Value))
	if errors.Is(err, state.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("session store: %w", err)
	}
	var sess Session
	if err := json.Unmarshal(b, &sess); err != nil {
		return nil, nil
	}
	if s.Absolute > 0 && s.now().Sub(sess.Created) >= s.Absolute {
		_ = s.State.Delete(r.Context(), sessionKey(c.Value))
		s.uncount(r.Context(), sess.Enterprise, c.Value)
		return nil, nil
	}
	sess.ID = c.Value
	return &sess, nil
}

func (s *Store) cookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: s.CookieName, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteLaxMode}
}

// Start saves sess as a new login: under a new ID, with the session the browser had before (if
// any) ended, so an ID known before the login (planted in this browser, say) is worthless after it.
func (s *Store) Start(w http.ResponseWriter, r *http.Request, sess *Session) error {
	// The ID is dropped first: even when the old one cannot be deleted, it is never saved again.
	sess.ID = ""
	if c, err := r.Cookie(s.CookieName); err == nil && len(c.Value) == 43 {
		old, err := s.State.Take(r.Context(), sessionKey(c.Value))
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			return fmt.Errorf("session store: %w", err)
		}
		if err == nil {
			s.uncountRaw(r.Context(), c.Value, old)
		}
	}
	return s.Save(w, r, sess)
}

// Save persists the session (a new one gets its ID) and sets its cookie.
func (s *Store) Save(w http.ResponseWriter, r *http.Request, sess *Session) error {
	ctx := r.Context()
	if sess.ID == "" {
		sess.ID = newID()
		sess.Created = s.now()
	}
	b, err := json.Marshal(sess)
	if err != nil {
		return fmt.Errorf("session store: %w", err)
	}
	ttl := s.Idle
	if s.Absolute > 0 {
		if left := s.Absolute - s.now().Sub(sess.Created); left < ttl || ttl <= 0 {
			ttl = left
		}
	}
	if ttl <= 0 {
		return errors.New("session store: session already past its absolute timeout")
	}
	if err := s.State.Put(ctx, sessionKey(sess.ID), b, ttl); err != nil {
		return fmt.Errorf("session store: %w", err)
	}
	if sess.Enterprise != "" && sess.User != "" {
		if err := s.index(ctx, sess.Enterprise, sess.User, sess.ID); err != nil {
			return err
		}
	}
	if sess.Enterprise != "" {
		if err := s.State.SetAdd(ctx, entSetKey(sess.Enterprise), sess.ID, s.now().Add(ttl), s.indexTTL()); err != nil {
			return fmt.Errorf("session store: %w", err)
		}
	}
	http.SetCookie(w, s.cookie(sess.ID, 0))
	return nil
}

// End deletes the session (logout), tells the participants, and clears the cookie. Participants
// get r's context, without its cancellation.
func (s *Store) End(w http.ResponseWriter, r *http.Request, sess *Session) error {
	if sess.ID != "" {
		b, err := s.State.Take(r.Context(), sessionKey(sess.ID))
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			return fmt.Errorf("session store: %w", err)
		}
		if err == nil {
			s.uncountRaw(r.Context(), sess.ID, b)
			s.ended(r.Context(), b)
		}
	}
	http.SetCookie(w, s.cookie("", -1))
	return nil
}

// LogoutHops is where the browser goes once its session sess has ended: final, or first through
// each participant's apps that must hear of it in the browser.
func (s *Store) LogoutHops(ctx context.Context, sess *Session, final string) string {
	dest := final
	for _, p := range slices.Backward(s.participants) {
		dest = p.LogoutHop(ctx, sess, dest)
	}
	return dest
}

// MaxSessionsPerUser bounds a user's concurrent sessions; a login beyond it ends the oldest.
const MaxSessionsPerUser = 50

// index records a user's session so RevokeUser can end them all.
func (s *Store) index(ctx context.Context, ent, uid, id string) error {
	key := userIndexKey(ent, uid)
	lease, err := s.lockIndex(ctx, key)
	if err != nil {
		return err
	}
	defer func() { _ = lease.Release(context.WithoutCancel(ctx)) }()
	var ids []string
	if b, err := s.State.Get(ctx, key); err == nil {
		_ = json.Unmarshal(b, &ids)
	}
	// Drop IDs whose sessions ended, so the index stays small.
	live := ids[:0]
	for _, other := range ids {
		if other == id {
			continue
		}
		if _, err := s.State.Get(ctx, sessionKey(other)); err == nil {
			live = append(live, other)
		}
	}
	live = append(live, id)
	for len(live) > MaxSessionsPerUser {
		_ = s.State.Delete(ctx, sessionKey(live[0]))
		s.uncount(ctx, ent, live[0])
		live = live[1:]
	}
	b, _ := json.Marshal(live)
	return s.State.Put(ctx, key, b, s.indexTTL())
}

// indexTTL outlives every session the index lists.
func (s *Store) indexTTL() time.Duration {
	if s.Absolute > 0 {
		return s.Absolute
	}
	return 30 * 24 * time.Hour
}

func (s *Store) lockIndex(ctx context.Context, key string) (state.Lease, error) {
	for i := 0; i < 1000; i++ {
		lease, err := s.State.Lock(ctx, "lock:"+key, 5*time.Second)
		if err == nil {
			return lease, nil
		}
		if !errors.Is(err, state.ErrLocked) {
			return nil, fmt.Errorf("session store: %w", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil, errors.New("session store: the user's session index stayed locked")
}

// RevokeUser ends every session of a user and returns how many it ended.
func (s *Store) RevokeUser(ctx context.Context, ent, uid string) (int, error) {
	key := userIndexKey(ent, uid)
	lease, err := s.lockIndex(ctx, key)
	if err != nil {
		return 0, err
	}
	defer func() { _ = lease.Release(context.WithoutCancel(ctx)) }()
	b, err := s.State.Take(ctx, key)
	if errors.Is(err, state.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("session store: %w", err)
	}
	var ids []string
	_ = json.Unmarshal(b, &ids)
	ended := 0
	for _, id := range slices.Compact(ids) {
		if b, err := s.State.Take(ctx, sessionKey(id)); err == nil {
			ended++
			s.uncount(ctx, ent, id)
			s.ended(ctx, b)
		}
	}
	return ended, nil
}

// RevokeUserSource ends the sessions of a user that were opened through one identity source (a
// person who left that source keeps what other sources granted) and returns how many it ended.
func (s *Store) RevokeUserSource(ctx context.Context, ent, uid, source string) (int, error) {
	key := userIndexKey(ent, uid)
	lease, err := s.lockIndex(ctx, key)
	if err != nil {
		return 0, err
	}
	defer func() { _ = lease.Release(context.WithoutCancel(ctx)) }()
	ids, err := s.indexed(ctx, key)
	if err != nil || ids == nil {
		return 0, err
	}
	var kept []string
	ended := 0
	for _, id := range ids {
		sess, err := s.stored(ctx, id)
		if err != nil {
			return ended, err
		}
		if sess == nil {
			continue
		}
		if sess.Source != source {
			kept = append(kept, id)
			continue
		}
		if raw, err := s.State.Take(ctx, sessionKey(id)); err == nil {
			ended++
			s.uncount(ctx, ent, id)
			s.ended(ctx, raw)
		}
	}
	if len(kept) == 0 {
		return ended, s.State.Delete(ctx, key)
	}
	nb, _ := json.Marshal(kept)
	return ended, s.State.Put(ctx, key, nb, s.indexTTL())
}

// CountEnterprise counts the enterprise's live sessions: one read of its set, whatever the number
// of people. A session counts until it is ended or its lifetime (idle or absolute) runs out.
func (s *Store) CountEnterprise(ctx context.Context, ent string) (int64, error) {
	n, err := s.State.SetCount(ctx, entSetKey(ent))
	if err != nil {
		return 0, fmt.Errorf("session store: %w", err)
	}
	return n, nil
}

// uncount takes an ended session out of its enterprise's count. A failure leaves it counted only
// until its lifetime would have run out, so it is not an error of the ending.
func (s *Store) uncount(ctx context.Context, ent, id string) {
	if ent != "" {
		_ = s.State.SetRemove(context.WithoutCancel(ctx), entSetKey(ent), id)
	}
}

// uncountRaw is uncount for a session as stored (b).
func (s *Store) uncountRaw(ctx context.Context, id string, b []byte) {
	var sess Session
	if json.Unmarshal(b, &sess) == nil {
		s.uncount(ctx, sess.Enterprise, id)
	}
}

// CountUserSource counts a user's live sessions opened through one identity source (what
// deleting or closing it would end).
func (s *Store) CountUserSource(ctx context.Context, ent, uid, source string) (int, error) {
	ids, err := s.indexed(ctx, userIndexKey(ent, uid))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		sess, err := s.stored(ctx, id)
		if err != nil {
			return n, err
		}
		if sess != nil && sess.Source == source {
			n++
		}
	}
	return n, nil
}

// EachUserSession calls fn with each live session of a user, under the user's index lock. A
// session fn changed (it returns true) is written back with the lifetime it had left: the change
// neither extends it nor brings back one that ended meanwhile. Nobody is told: the session goes on.
func (s *Store) EachUserSession(ctx context.Context, ent, uid string, fn func(*Session) bool) error {
	key := userIndexKey(ent, uid)
	lease, err := s.lockIndex(ctx, key)
	if err != nil {
		return err
	}
	defer func() { _ = lease.Release(context.WithoutCancel(ctx)) }()
	ids, err := s.indexed(ctx, key)
	if err != nil {
		return err
	}
	for _, id := range ids {
		sess, err := s.stored(ctx, id)
		if err != nil {
			return err
		}
		if sess == nil || !fn(sess) {
			continue
		}
		nb, err := json.Marshal(sess)
		if err != nil {
			return fmt.Errorf("session store: %w", err)
		}
		if err := s.State.Replace(ctx, sessionKey(id), nb); err != nil && !errors.Is(err, state.ErrNotFound) {
			return fmt.Errorf("session store: %w", err)
		}
	}
	return nil
}

// indexed returns the session IDs a user's index lists (nil when it has none).
func (s *Store) indexed(ctx context.Context, key string) ([]string, error) {
	b, err := s.State.Get(ctx, key)
	if errors.Is(err, state.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("session store: %w", err)
	}
	var ids []string
	_ = json.Unmarshal(b, &ids)
	return slices.Compact(ids), nil
}

// stored reads a session by ID: nil when it ended (or cannot be read).
func (s *Store) stored(ctx context.Context, id string) (*Session, error) {
	raw, err := s.State.Get(ctx, sessionKey(id))
	if errors.Is(err, state.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("session store: %w", err)
	}
	var sess Session
	if json.Unmarshal(raw, &sess) != nil {
		return nil, nil
	}
	sess.ID = id
	return &sess, nil
}

// ended tells the participants of an ended session (b as stored).
func (s *Store) ended(ctx context.Context, b []byte) {
	if len(s.participants) == 0 {
		return
	}
	var sess Session
	if json.Unmarshal(b, &sess) != nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	for _, p := range s.participants {
		p.SessionEnded(ctx, &sess)
	}
}

func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
