package sqlstore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/sqlstore"
)

func provisionStores(t *testing.T) map[string]*sqlstore.Store {
	t.Helper()
	out := map[string]*sqlstore.Store{}
	s, err := sqlstore.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "qiao.db"), box(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	out["sqlite"] = s
	if pg := newPostgresDBOrEmpty(t); pg != "" {
		p, err := sqlstore.Open(context.Background(), pg, box(t, 1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		out["postgres"] = p
	}
	return out
}

// TestProvisionOutboxTriggers: a change to a person, their departments or a department writes an
// outbox row in its own transaction — only for an enterprise with an enabled, automatic target;
// a rolled-back change writes none. Claims go to one claimer; retries and parking keep the row;
// done removes it and the object's older parked rows. The target's secrets are sealed.
func TestProvisionOutboxTriggers(t *testing.T) {
	for name, st := range provisionStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			for _, ent := range []string{"acme", "other"} {
				if err := st.PutEnterprise(ctx, &directory.Enterprise{ID: ent, Name: ent}); err != nil {
					t.Fatal(err)
				}
				if err := st.PutSource(ctx, &directory.IdentitySource{EnterpriseID: ent, ID: "local", Kind: directory.KindLocal, Name: "本地", Enabled: true,
					Sync: directory.DefaultSyncSettings()}); err != nil {
					t.Fatal(err)
				}
			}
			tgt := &directory.ProvisionTarget{EnterpriseID: "acme", Kind: "wecom", Enabled: true, AutoPush: true, Settings: directory.DefaultProvisionSettings(),
				Config: map[string]string{"corp_id": "ww1"}, Secrets: map[string]string{"contact_secret": "very-secret-value"}}
			if err := st.PutProvisionTarget(ctx, tgt); err != nil {
				t.Fatal(err)
			}
			got, err := st.GetProvisionTarget(ctx, "acme")
			if err != nil || got.Secrets["contact_secret"] != "very-secret-value" || got.Settings.RootDepartment != "1" || !got.AutoPush {
				t.Fatalf("target = %+v, %v", got, err)
			}
			for _, ent := range []string{"acme", "other"} {
				u := &directory.User{EnterpriseID: ent, Username: "lisi", Name: "李四", Status: directory.UserActive}
				if err := st.CreateUser(ctx, u); err != nil {
					t.Fatal(err)
				}
				if err := st.PutUserLink(ctx, &directory.UserLink{EnterpriseID: ent, SourceID: "local", UpstreamID: "lisi", UserID: u.ID}); err != nil {
					t.Fatal(err)
				}
				if err := st.PutDepartment(ctx, &directory.Department{EnterpriseID: ent, SourceID: "local", UpstreamID: "7", Name: "研发"}); err != nil {
					t.Fatal(err)
				}
				u.Name = "李四四"
				if err := st.UpdateUser(ctx, u); err != nil {
					t.Fatal(err)
				}
			}
			// A rolled-back change leaves nothing.
			boom := errors.New("roll back")
			if err := st.InTx(ctx, func(tx directory.Store) error {
				_ = tx.PutDepartment(ctx, &directory.Department{EnterpriseID: "acme", SourceID: "local", UpstreamID: "8", Name: "回滚"})
				return boom
			}); !errors.Is(err, boom) {
				t.Fatal(err)
			}
			if items, _ := st.ListOutbox(ctx, "other", directory.OutboxPending, 100); len(items) != 0 {
				t.Fatalf("an enterprise without a target got outbox rows: %+v", items)
			}
			items, err := st.ClaimOutbox(ctx, time.Now(), time.Now().Add(time.Minute), 100)
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, it := range items {
				kinds = append(kinds, it.ObjectType+":"+it.ObjectKey)
			}
			joined := strings.Join(kinds, ",")
			if len(items) != 4 || !strings.Contains(joined, "department:local/7") || strings.Contains(joined, "local/8") {
				t.Fatalf("outbox = %s (want user insert, link insert, department insert, user update)", joined)
			}
			if again, _ := st.ClaimOutbox(ctx, time.Now(), time.Now().Add(time.Minute), 100); len(again) != 0 {
				t.Fatalf("claimed twice: %d", len(again))
			}
			park := items[0]
			park.Status, park.Attempts, park.ErrCode, park.Error = directory.OutboxParked, 1, 60104, "mobile in use"
			if err := st.RetryOutbox(ctx, park); err != nil {
				t.Fatal(err)
			}
			retry := items[1]
			retry.Status, retry.Attempts, retry.NextAt = directory.OutboxPending, 1, time.Now().Add(time.Hour)
			if err := st.RetryOutbox(ctx, retry); err != nil {
				t.Fatal(err)
			}
			if again, _ := st.ClaimOutbox(ctx, time.Now(), time.Now().Add(time.Minute), 100); len(again) != 0 {
				t.Fatalf("claimed a parked or not yet due item: %+v", again[0])
			}
			counts, _ := st.CountOutbox(ctx, "acme")
			if counts[directory.OutboxParked] != 1 || counts[directory.OutboxPending] != 3 {
				t.Fatalf("counts = %v", counts)
			}
			// A later push of the same person clears the parked row.
			if err := st.AddOutboxItem(ctx, "acme", park.ObjectType, park.ObjectKey); err != nil {
				t.Fatal(err)
			}
			later, _ := st.ClaimOutbox(ctx, time.Now(), time.Now().Add(time.Minute), 100)
			if len(later) != 1 {
				t.Fatalf("claimed %d", len(later))
			}
			if err := st.DoneOutbox(ctx, later); err != nil {
				t.Fatal(err)
			}
			if counts, _ := st.CountOutbox(ctx, "acme"); counts[directory.OutboxParked] != 0 {
				t.Fatalf("parked row kept after a later push: %v", counts)
			}
			// Disabling the target stops the triggers.
			tgt.Enabled = false
			if err := st.PutProvisionTarget(ctx, tgt); err != nil {
				t.Fatal(err)
			}
			before, _ := st.CountOutbox(ctx, "acme")
			if err := st.PutDepartment(ctx, &directory.Department{EnterpriseID: "acme", SourceID: "local", UpstreamID: "9", Name: "关"}); err != nil {
				t.Fatal(err)
			}
			if after, _ := st.CountOutbox(ctx, "acme"); after[directory.OutboxPending] != before[directory.OutboxPending] {
				t.Fatalf("a disabled target still queues: %v → %v", before, after)
			}
			if err := st.PutProvisionedObject(ctx, &directory.ProvisionedObject{EnterpriseID: "acme", ObjectType: "user", LocalKey: "u1", RemoteID: "lisi", State: directory.ProvisionPresent}); err != nil {
				t.Fatal(err)
			}
			if o, err := st.GetProvisionedObject(ctx, "acme", "user", "u1"); err != nil || o.RemoteID != "lisi" {
				t.Fatalf("object = %+v, %v", o, err)
			}
			if err := st.DeleteProvisionTarget(ctx, "acme"); err != nil {
				t.Fatal(err)
			}
			if _, err := st.GetProvisionedObject(ctx, "acme", "user", "u1"); !errors.Is(err, directory.ErrNotFound) {
				t.Fatalf("objects kept after the target was deleted: %v", err)
			}
		})
	}
}

// newPostgresDBOrEmpty is newPostgresDB without the skip: "" when QIAO_TEST_POSTGRES is unset.
func newPostgresDBOrEmpty(t *testing.T) string {
	t.Helper()
	if os.Getenv("QIAO_TEST_POSTGRES") == "" {
		return ""
	}
	return newPostgresDB(t)
}
