package demo

import (
	"net/http"
	"sync"
)

// sessions is a demo app's own sign-in state: a random ID in a cookie scoped to the app's path,
// the values in memory.
type sessions[T any] struct {
	cookie, path string
	mu           sync.Mutex
	m            map[string]*T
}

func newSessions[T any](cookie, path string) *sessions[T] {
	return &sessions[T]{cookie: cookie, path: path, m: map[string]*T{}}
}

// start keeps v and gives the browser its cookie.
func (s *sessions[T]) start(w http.ResponseWriter, v *T) {
	id := randomString()
	s.mu.Lock()
	s.m[id] = v
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: s.cookie, Value: id, Path: s.path, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// get is the browser's session, or nil.
func (s *sessions[T]) get(r *http.Request) *T {
	c, err := r.Cookie(s.cookie)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[c.Value]
}

// end forgets the browser's session, clears its cookie and returns what it was (nil if none).
func (s *sessions[T]) end(w http.ResponseWriter, r *http.Request) *T {
	http.SetCookie(w, &http.Cookie{Name: s.cookie, Value: "", Path: s.path, MaxAge: -1})
	c, err := r.Cookie(s.cookie)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.m[c.Value]
	delete(s.m, c.Value)
	return v
}

// endWhere forgets every session for which match is true (a logout the IdP sends names a
// person, not a browser).
func (s *sessions[T]) endWhere(match func(*T) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, v := range s.m {
		if match(v) {
			delete(s.m, id)
		}
	}
}
