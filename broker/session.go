// Package broker is the login broker: the SSO session both OIDC and SAML share and, as the login
// issue lands, the enterprise and source choice, upstream redirects and callbacks.
package broker

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

	"github.com/gorilla/sessions"

	"github.com/qiao-gateway/qiao/internal/state"
)

// Session keys the broker sets.
const (
	KeyEnterprise = "ent"
	KeyUser       = "uid"
	KeySource     = "src"
	KeyAMR        = "amr"
	KeyAuthTime   = "auth_ms" // when the person logged in, Unix milliseconds
	KeySID        = "sid"
	// KeyRPs lists the OIDC clients that received tokens in the session.
	KeyRPs = "rps"
)

// SessionStore is a gorilla/sessions Store over the project's state store (memory or Redis). The
// cookie holds only a random 256-bit ID; the values live server-side with a TTL. An ID the browser
// brings that the store does not know is never adopted (no session fixation), and Regenerate gives
// a session a fresh ID at login.
type SessionStore struct {
	State      state.Store
	CookieName string
	Idle       time.Duration // a session unused this long ends
	Absolute   time.Duration // a session ends this long after login, however used
	Secure     bool          // set when the external URL is https
	Now        func() time.Time
	// OnEnd, when set, is told the values of every session that a logout or a revocation ends,
	// so the protocols can tell their relying parties (OIDC back-channel logout).
	OnEnd func(ctx context.Context, values map[string]any)
}

var _ sessions.Store = (*SessionStore)(nil)

type stored struct {
	Values  map[string]any `json:"v"`
	Created time.Time      `json:"c"`
}

func (s *SessionStore) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s *SessionStore) name(name string) string {
	if name == "" {
		return s.CookieName
	}
	return name
}

func sessionKey(id string) string { return "sess:" + id }

func userIndexKey(ent, uid string) string { return "usess:" + ent + ":" + uid }

// Get returns the request's session, cached per request by gorilla's registry.
func (s *SessionStore) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(s, s.name(name))
}

// New loads the session the request's cookie names, or returns a new, empty one.
func (s *SessionStore) New(r *http.Request, name string) (*sessions.Session, error) {
	name = s.name(name)
	sess := sessions.NewSession(s, name)
	sess.Options = s.options()
	sess.IsNew = true
	c, err := r.Cookie(name)
	if err != nil || len(c.Value) != 43 {
		return sess, nil
	}
	b, err := s.State.Get(r.Context(), sessionKey(c.Value))
	if errors.Is(err, state.ErrNotFound) {
		return sess, nil
	}
	if err != nil {
		return sess, fmt.Errorf("session store: %w", err)
	}
	var st stored
	if err := json.Unmarshal(b, &st); err != nil {
		return sess, nil
	}
	if s.Absolute > 0 && s.now().Sub(st.Created) >= s.Absolute {
		_ = s.State.Delete(r.Context(), sessionKey(c.Value))
		return sess, nil
	}
	sess.ID, sess.IsNew = c.Value, false
	for k, v := range st.Values {
		sess.Values[k] = v
	}
	sess.Values["_created"] = st.Created.UnixMilli()
	return sess, nil
}

func (s *SessionStore) options() *sessions.Options {
	return &sessions.Options{Path: "/", HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteLaxMode}
}

// Save persists the session and sets its cookie; a session whose Options.MaxAge is negative is
// deleted (logout).
func (s *SessionStore) Save(r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
	ctx := r.Context()
	if sess.Options != nil && sess.Options.MaxAge < 0 {
		if sess.ID != "" {
			b, err := s.State.Take(ctx, sessionKey(sess.ID))
			if err != nil && !errors.Is(err, state.ErrNotFound) {
				return fmt.Errorf("session store: %w", err)
			}
			if err == nil {
				s.ended(ctx, b)
			}
		}
		http.SetCookie(w, sessions.NewCookie(sess.Name(), "", &sessions.Options{Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteLaxMode}))
		return nil
	}
	created := s.now()
	if c, ok := sess.Values["_created"].(int64); ok && sess.ID != "" {
		created = time.UnixMilli(c)
	}
	if sess.ID == "" {
		sess.ID = newID()
		created = s.now()
	}
	values := map[string]any{}
	for k, v := range sess.Values {
		ks, ok := k.(string)
		if !ok {
			return fmt.Errorf("session store: keys must be strings, got %T", k)
		}
		if ks != "_created" {
			values[ks] = v
		}
	}
	b, err := json.Marshal(stored{Values: values, Created: created})
	if err != nil {
		return fmt.Errorf("session store: values must be JSON: %w", err)
	}
	ttl := s.Idle
	if s.Absolute > 0 {
		if left := s.Absolute - s.now().Sub(created); left < ttl || ttl <= 0 {
			ttl = left
		}
	}
	if ttl <= 0 {
		return errors.New("session store: session already past its absolute timeout")
	}
	if err := s.State.Put(ctx, sessionKey(sess.ID), b, ttl); err != nil {
		return fmt.Errorf("session store: %w", err)
	}
	if ent, uid := str(values[KeyEnterprise]), str(values[KeyUser]); ent != "" && uid != "" {
		if err := s.index(ctx, ent, uid, sess.ID); err != nil {
			return err
		}
	}
	http.SetCookie(w, sessions.NewCookie(sess.Name(), sess.ID, sess.Options))
	return nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// Regenerate gives the session a new ID when it is next saved and ends the old one: call it at
// login, so an ID known before the login is worthless after it.
func (s *SessionStore) Regenerate(ctx context.Context, sess *sessions.Session) error {
	// The ID is dropped first: even when the old one cannot be deleted, it is never saved again.
	old := sess.ID
	sess.ID = ""
	delete(sess.Values, "_created")
	if old != "" {
		if err := s.State.Delete(ctx, sessionKey(old)); err != nil {
			return fmt.Errorf("session store: %w", err)
		}
	}
	return nil
}

// MaxSessionsPerUser bounds a user's concurrent sessions; a login beyond it ends the oldest.
const MaxSessionsPerUser = 50

// index records a user's session so RevokeUser can end them all.
func (s *SessionStore) index(ctx context.Context, ent, uid, id string) error {
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
		live = live[1:]
	}
	b, _ := json.Marshal(live)
	ttl := s.Absolute
	if ttl <= 0 {
		ttl = 30 * 24 * time.Hour
	}
	return s.State.Put(ctx, key, b, ttl)
}

func (s *SessionStore) lockIndex(ctx context.Context, key string) (state.Lease, error) {
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
func (s *SessionStore) RevokeUser(ctx context.Context, ent, uid string) (int, error) {
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
			s.ended(ctx, b)
		}
	}
	return ended, nil
}

// ended passes an ended session's values to OnEnd.
func (s *SessionStore) ended(ctx context.Context, b []byte) {
	if s.OnEnd == nil {
		return
	}
	var st stored
	if json.Unmarshal(b, &st) == nil {
		s.OnEnd(context.WithoutCancel(ctx), st.Values)
	}
}

// LoginTime reads when the session's person logged in (KeyAuthTime, Unix milliseconds; JSON gives
// it back as a float).
func LoginTime(values map[any]any) time.Time {
	switch n := values[KeyAuthTime].(type) {
	case int64:
		return time.UnixMilli(n)
	case float64:
		return time.UnixMilli(int64(n))
	}
	return time.Time{}
}

// Strings reads a session value that holds a list of strings (JSON gives []any back).
func Strings(v any) []string {
	switch l := v.(type) {
	case []string:
		return l
	case []any:
		out := make([]string, 0, len(l))
		for _, x := range l {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
