// Command closebench measures closing an identity source whose people hold many live SSO sessions
// and refresh tokens: the time until every one of them is refused, and the time until the access
// job has ended them all (sessions deleted with their participants told, tokens revoked, audited).
//
//	go run ./bench/closebench -n 10000                       # SQLite + memory
//	go run ./bench/closebench -n 10000 -postgres postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable -redis redis://127.0.0.1:6379/0
package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/qiao-gateway/qiao/access"
	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/sqlstore"
	"github.com/qiao-gateway/qiao/internal/pgtemp"
	"github.com/qiao-gateway/qiao/internal/secretbox"
	"github.com/qiao-gateway/qiao/internal/state"
	"github.com/qiao-gateway/qiao/session"
)

func main() {
	n := flag.Int("n", 10000, "people, each with one live session and one refresh token through the source")
	pg := flag.String("postgres", "", "PostgreSQL server DSN (a throwaway database is created on it); empty = SQLite")
	rd := flag.String("redis", "", "Redis DSN for sessions; empty = memory")
	flag.Parse()
	if err := run(*n, *pg, *rd); err != nil {
		fmt.Fprintln(os.Stderr, "closebench:", err)
		os.Exit(1)
	}
}

// told counts the sessions whose participants heard they ended (as OIDC and SAML would).
type told struct{ n atomic.Int64 }

func (t *told) SessionEnded(context.Context, *session.Session) { t.n.Add(1) }
func (t *told) LogoutHop(_ context.Context, _ *session.Session, dest string) string {
	return dest
}

func run(n int, pg, rd string) error {
	ctx := context.Background()
	box, _ := secretbox.New(bytes.Repeat([]byte{7}, 32))
	dsn, backend := "", ""
	if pg == "" {
		dir, err := os.MkdirTemp("", "closebench")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dsn, backend = "sqlite://"+filepath.Join(dir, "q.db"), "SQLite"
	} else {
		fresh, drop, err := pgtemp.Create(pg, "qiao_closebench")
		if err != nil {
			return err
		}
		defer drop()
		dsn, backend = fresh, "PostgreSQL"
	}
	st, err := sqlstore.Open(ctx, dsn, box)
	if err != nil {
		return err
	}
	defer st.Close()
	stateDSN := "memory"
	if rd != "" {
		stateDSN = rd
		backend += " + Redis"
	} else {
		backend += " + memory"
	}
	ss, err := state.Open(stateDSN)
	if err != nil {
		return err
	}
	defer ss.Close()
	sessions := &session.Store{State: ss, CookieName: "qiao_sso", Idle: time.Hour, Absolute: 8 * time.Hour}
	participant := &told{}
	sessions.Register(participant)
	svc := &access.Service{Store: st, Sessions: sessions}

	// An enterprise whose WeCom source links n people, each logged on through it once.
	ent := "bench" + hex.EncodeToString([]byte{byte(time.Now().UnixNano())})
	if err := st.PutEnterprise(ctx, &directory.Enterprise{ID: ent, Name: ent}); err != nil {
		return err
	}
	src := &directory.IdentitySource{EnterpriseID: ent, ID: "wecom", Kind: directory.KindWeCom, Name: "企业微信", Enabled: true,
		Sync: directory.DefaultSyncSettings()}
	if err := st.PutSource(ctx, src); err != nil {
		return err
	}
	seedStart := time.Now()
	var uids, tokens []string
	for lo := 0; lo < n; lo += 1000 {
		err := st.InTx(ctx, func(tx directory.Store) error {
			for i := lo; i < min(lo+1000, n); i++ {
				u := &directory.User{EnterpriseID: ent, Username: fmt.Sprintf("u%06d", i), Name: "员工", Status: directory.UserActive}
				if err := tx.CreateUser(ctx, u); err != nil {
					return err
				}
				if err := tx.PutUserLink(ctx, &directory.UserLink{EnterpriseID: ent, SourceID: "wecom", UpstreamID: u.Username, UserID: u.ID}); err != nil {
					return err
				}
				id := fmt.Sprintf("rt-%s-%d", ent, i)
				if err := tx.CreateRefreshToken(ctx, &directory.RefreshToken{ID: id, FamilyID: id, EnterpriseID: ent, ClientID: "sase-client",
					UserID: u.ID, SourceID: "wecom", ExpiresAt: time.Now().Add(24 * time.Hour)}); err != nil {
					return err
				}
				uids, tokens = append(uids, u.ID), append(tokens, id)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, uid := range uids {
		r := httptest.NewRequest("GET", "/", nil)
		if err := sessions.Save(httptest.NewRecorder(), r, &session.Session{Enterprise: ent, User: uid, Source: "wecom"}); err != nil {
			return err
		}
	}
	fmt.Printf("%s: %d people, each with a live session and refresh token through the source (seeded in %v)\n",
		backend, n, time.Since(seedStart).Round(time.Millisecond))

	// Close it. From the commit, every session and token is refused (directory.ActiveThrough reads
	// the source's state on every use); the job then ends them.
	t0 := time.Now()
	if _, err := access.SetSourceEnabled(ctx, st, ent, "wecom", false, "bench", "closebench"); err != nil {
		return err
	}
	refused := time.Since(t0)
	verifyStart := time.Now()
	for i, uid := range uids {
		if _, err := directory.ActiveThrough(ctx, st, ent, uid, "wecom"); err == nil {
			return fmt.Errorf("person %d was not refused after the close committed", i)
		}
	}
	verify := time.Since(verifyStart)
	t1 := time.Now()
	if got := svc.DrainJobs(ctx); got != 1 {
		return fmt.Errorf("the close job did not finish (%d jobs finished)", got)
	}
	ended := time.Since(t1)
	for i, id := range tokens {
		if rt, err := st.GetRefreshToken(ctx, id); err != nil || rt.RevokedAt.IsZero() {
			return fmt.Errorf("refresh token %d not revoked", i)
		}
	}
	left := 0
	for _, uid := range uids {
		c, err := sessions.CountUserSource(ctx, ent, uid, "wecom")
		if err != nil {
			return err
		}
		left += c
	}
	if left != 0 || participant.n.Load() != int64(n) {
		return fmt.Errorf("after the job: %d sessions left, %d participant notifications (want 0 and %d)", left, participant.n.Load(), n)
	}
	audit, _ := st.ListAuditEvents(ctx, directory.AuditQuery{EnterpriseID: ent, Kind: "source.close"})
	if len(audit) != 1 {
		return fmt.Errorf("%d source.close audit events, want 1", len(audit))
	}
	fmt.Printf("  all %d refused %v after the close began (the close transaction); checking each took %v\n", n, refused.Round(time.Microsecond), verify.Round(time.Millisecond))
	fmt.Printf("  access job: %d sessions ended (participants told), %d refresh tokens revoked, audited in %v\n", n, n, ended.Round(time.Millisecond))
	fmt.Printf("  audit: %s\n", audit[0].Detail)
	return nil
}
