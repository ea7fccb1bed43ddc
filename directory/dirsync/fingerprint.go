package dirsync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/qiao-gateway/qiao/directory"
)

// A link's SyncHash is "<upstream fingerprint>.<the user's updated_at in ms>", written by the
// apply that last wrote the person. The upstream fingerprint covers everything the plan compares
// from the upstream side (the mapped fields, the union ID, the departments); the time says the
// user row is as that apply left it (every write of a user sets updated_at). When both match on
// the next full sync the plan would find nothing to change — the comparison is idempotent — so
// the person is counted unchanged without loading or comparing them.

// upstreamHash fingerprints what the plan compares of one upstream user.
func upstreamHash(m *mapped, unionID string, depts []string) string {
	h := sha256.New()
	field := func(s string) {
		h.Write([]byte(strconv.Itoa(len(s))))
		h.Write([]byte{':'})
		h.Write([]byte(s))
	}
	field(m.Username)
	field(m.Name)
	field(m.Email)
	field(m.Mobile)
	field(string(m.Status))
	field(strconv.FormatBool(m.KeepEmail) + strconv.FormatBool(m.KeepMobile))
	keys := make([]string, 0, len(m.Attrs))
	for k := range m.Attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	field(strconv.Itoa(len(keys)))
	for _, k := range keys {
		field(k)
		field(m.Attrs[k])
	}
	field(unionID)
	ds := slices.Clone(depts)
	slices.Sort(ds)
	field(strconv.Itoa(len(ds)))
	for _, d := range ds {
		field(d)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// syncHash is the link's SyncHash after an apply left the user with updatedAt.
func syncHash(upstream string, updatedAt time.Time) string {
	if upstream == "" {
		return ""
	}
	return upstream + "." + strconv.FormatInt(updatedAt.UnixMilli(), 10)
}

// knownLinks is a full sync's brief view of the source's links, read before the users.
type knownLinks struct {
	byUp      map[string]knownLink
	unchanged map[string]bool // upstream IDs found unchanged by their fingerprint
}

// knownLink is one link: its user, and the upstream fingerprint that would find the person
// unchanged ("" when none would: the user was written since, or the link has no fingerprint).
type knownLink struct {
	userID string
	want   string
}

func (e *Engine) loadKnownLinks(ctx context.Context, ent, src string) (*knownLinks, error) {
	states, err := e.Store.SourceLinkStates(ctx, ent, src)
	if err != nil {
		return nil, err
	}
	k := &knownLinks{byUp: make(map[string]knownLink, len(states)), unchanged: make(map[string]bool, len(states))}
	for _, st := range states {
		l := knownLink{userID: st.UserID}
		if up, at, ok := strings.Cut(st.SyncHash, "."); ok && up != "" && at == strconv.FormatInt(st.UserUpdatedAt.UnixMilli(), 10) {
			l.want = up
		}
		k.byUp[st.UpstreamID] = l
	}
	return k, nil
}

// same reports whether the upstream user with this fingerprint is as the source's last apply
// left them, and records it.
func (k *knownLinks) same(upstreamID, hash string) bool {
	if l, ok := k.byUp[upstreamID]; !ok || l.want == "" || l.want != hash {
		return false
	}
	k.unchanged[upstreamID] = true
	return true
}

// sourceUsersFor returns the source's linked users among ids: one by one when they are few,
// otherwise the whole source in one query, filtered.
func (e *Engine) sourceUsersFor(ctx context.Context, ent, src string, ids map[string]bool) ([]directory.LinkedUser, error) {
	if len(ids) > 2000 {
		all, err := e.Store.SourceUsers(ctx, ent, src)
		if err != nil {
			return nil, err
		}
		out := all[:0]
		for _, lu := range all {
			if ids[lu.Link.UpstreamID] {
				out = append(out, lu)
			}
		}
		return out, nil
	}
	var out []directory.LinkedUser
	for id := range ids {
		l, err := e.Store.GetUserLink(ctx, ent, src, id)
		if errors.Is(err, directory.ErrNotFound) {
			continue // gone since the states were read (an event): the plan takes it as new
		}
		if err != nil {
			return nil, err
		}
		u, err := e.Store.GetUser(ctx, ent, l.UserID)
		if err != nil {
			return nil, err
		}
		out = append(out, directory.LinkedUser{Link: l, User: u})
	}
	slices.SortFunc(out, func(a, b directory.LinkedUser) int {
		switch {
		case a.Link.UpstreamID < b.Link.UpstreamID:
			return -1
		case a.Link.UpstreamID > b.Link.UpstreamID:
			return 1
		}
		return 0
	})
	return out, nil
}
