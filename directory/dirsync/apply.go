package dirsync

import (
	"context"
	"fmt"
	"slices"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/lease"
)

// bulkCreates is how many creates the apply hands a BulkUserWriter at once.
const bulkCreates = 500

// pendingCreate is a create waiting for its batch: the change, its record, and whether its link
// holds an upstream record read back from the spool (dropped once written).
type pendingCreate struct {
	uc          *UserChange
	rec         *directory.SyncRecord
	spooledLink bool
}

// apply writes the plan in one transaction, with its records, and returns whose access it took
// away: users who departed, and users who left the source but stay through another.
func (e *Engine) apply(ctx context.Context, task *directory.SyncTask, p *Plan, progress func(int)) (lostAccess, error) {
	var lost lostAccess
	total := len(p.Depts) + len(p.Users)
	err := e.Store.InTx(ctx, func(tx directory.Store) error {
		lost = lostAccess{}
		var recs []*directory.SyncRecord
		flush := func() error {
			if len(recs) == 0 {
				return nil
			}
			err := tx.AddSyncRecords(ctx, recs)
			recs = recs[:0]
			return err
		}
		done := 0
		step := func() error {
			done++
			if done%2000 == 0 {
				progress(done)
				if err := flush(); err != nil {
					return err
				}
			}
			if e.midApply != nil && done == total/2 {
				return e.midApply()
			}
			return ctx.Err()
		}
		// Parents before children for creates; children before parents for deletes.
		for _, d := range p.Depts {
			if d.Action == ActDelete {
				continue
			}
			if err := tx.PutDepartment(ctx, d.After); err != nil {
				return fmt.Errorf("department %s: %w", d.After.UpstreamID, err)
			}
			recs = append(recs, &directory.SyncRecord{TaskID: task.ID, ObjectType: "department", UpstreamID: d.After.UpstreamID,
				Action: d.Action, Upstream: d.Upstream.Raw, LocalBefore: deptJSON(d.Before), LocalAfter: deptJSON(d.After)})
			if err := step(); err != nil {
				return err
			}
		}
		// A store that writes many rows to a statement gets the creates in batches: a 100k first
		// sync on PostgreSQL made 210k round trips one row at a time. A batch is written before
		// any other change, so the writes keep the plan's order.
		bulk, _ := tx.(directory.BulkUserWriter)
		var pending []pendingCreate
		writeCreates := func() error {
			if len(pending) == 0 {
				return nil
			}
			users := make([]*directory.User, len(pending))
			links := make([]*directory.UserLink, len(pending))
			for i, pc := range pending {
				users[i] = pc.uc.After
			}
			if err := bulk.CreateUsers(ctx, users); err != nil {
				return fmt.Errorf("users %s…: %w", pending[0].uc.UpstreamID, err)
			}
			for i, pc := range pending {
				pc.uc.LinkAfter.UserID = pc.uc.After.ID
				pc.uc.LinkAfter.SyncHash = syncHash(pc.uc.hash, pc.uc.After.UpdatedAt)
				links[i] = pc.uc.LinkAfter
			}
			if err := bulk.PutUserLinks(ctx, links); err != nil {
				return fmt.Errorf("users %s…: %w", pending[0].uc.UpstreamID, err)
			}
			batch := pending
			pending = pending[:0]
			for _, pc := range batch {
				pc.rec.LocalBefore, pc.rec.LocalAfter = linkJSON(pc.uc.Before, pc.uc.LinkBefore), linkJSON(pc.uc.After, pc.uc.LinkAfter)
				if pc.spooledLink {
					pc.uc.LinkAfter.Upstream = nil
				}
				recs = append(recs, pc.rec)
				if err := step(); err != nil {
					return err
				}
			}
			return nil
		}
		for _, uc := range p.Users {
			if uc.Action != ActCreate || bulk == nil {
				if err := writeCreates(); err != nil {
					return err
				}
			}
			rec := &directory.SyncRecord{TaskID: task.ID, ObjectType: "user", UpstreamID: uc.UpstreamID, Action: uc.Action, Error: uc.Error}
			rec.Upstream = uc.Upstream
			if uc.Upstream == nil {
				rec.Staged = uc.staged
			}
			// A spooled record is read back for this write only: the plan keeps holding none.
			spooledLink := false
			if uc.Upstream == nil && uc.spooled.n > 0 {
				raw, err := p.spool.read(uc.spooled)
				if err != nil {
					return fmt.Errorf("user %s: %w", uc.UpstreamID, err)
				}
				rec.Upstream = raw
				if uc.LinkAfter != nil && uc.LinkAfter.Upstream == nil {
					uc.LinkAfter.Upstream, spooledLink = raw, true
				}
			}
			if uc.Action == ActCreate && bulk != nil {
				pending = append(pending, pendingCreate{uc: &uc, rec: rec, spooledLink: spooledLink})
				if len(pending) == bulkCreates {
					if err := writeCreates(); err != nil {
						return err
					}
				}
				continue
			}
			switch uc.Action {
			case ActCreate:
				if err := tx.CreateUser(ctx, uc.After); err != nil {
					return fmt.Errorf("user %s: %w", uc.UpstreamID, err)
				}
				uc.LinkAfter.UserID = uc.After.ID
				uc.LinkAfter.SyncHash = syncHash(uc.hash, uc.After.UpdatedAt)
				if err := tx.PutUserLink(ctx, uc.LinkAfter); err != nil {
					return fmt.Errorf("user %s: %w", uc.UpstreamID, err)
				}
			case ActUpdate, ActMove:
				if uc.Action == ActUpdate || !sameUser(uc.Before, uc.After) {
					if err := tx.UpdateUser(ctx, uc.After); err != nil {
						return fmt.Errorf("user %s: %w", uc.UpstreamID, err)
					}
				}
				// uc.After is the user as now stored (UpdateUser set its UpdatedAt; a move left it).
				uc.LinkAfter.SyncHash = syncHash(uc.hash, uc.After.UpdatedAt)
				if err := tx.PutUserLink(ctx, uc.LinkAfter); err != nil {
					return fmt.Errorf("user %s: %w", uc.UpstreamID, err)
				}
			case ActDelete:
				if err := tx.DeleteUserLink(ctx, uc.LinkBefore.EnterpriseID, uc.LinkBefore.SourceID, uc.UpstreamID); err != nil {
					return fmt.Errorf("user %s: %w", uc.UpstreamID, err)
				}
				// A user still linked to another source stays as that source says, unless this source
				// is authoritative: then they depart entirely, the other links kept for the record.
				others, err := tx.LinksOfUser(ctx, uc.Before.EnterpriseID, uc.Before.ID)
				if err != nil {
					return err
				}
				if (len(others) == 0 || p.Authoritative) && uc.Before.Status != directory.UserDeparted {
					if len(others) > 0 {
						uc.After.DepartedBy = uc.LinkBefore.SourceID
					}
					if err := tx.UpdateUser(ctx, uc.After); err != nil {
						return fmt.Errorf("user %s: %w", uc.UpstreamID, err)
					}
				} else {
					uc.After = uc.Before
					uc.Departs = false
					// Still known elsewhere: only what this source granted ends.
					lost.left = append(lost.left, uc.Before.ID)
				}
			}
			rec.LocalBefore, rec.LocalAfter = linkJSON(uc.Before, uc.LinkBefore), linkJSON(uc.After, uc.LinkAfter)
			if spooledLink {
				uc.LinkAfter.Upstream = nil
			}
			if uc.Action == ActDelete {
				rec.LocalAfter = userJSON(uc.After)
			}
			recs = append(recs, rec)
			if uc.Departs && uc.Before != nil {
				lost.departed = append(lost.departed, uc.Before.ID)
			}
			if err := step(); err != nil {
				return err
			}
		}
		if err := writeCreates(); err != nil {
			return err
		}
		dels := slices.Clone(p.Depts)
		slices.Reverse(dels)
		for _, d := range dels {
			if d.Action != ActDelete {
				continue
			}
			if err := tx.DeleteDepartment(ctx, d.Before.EnterpriseID, d.Before.SourceID, d.Before.UpstreamID); err != nil {
				return fmt.Errorf("department %s: %w", d.Before.UpstreamID, err)
			}
			recs = append(recs, &directory.SyncRecord{TaskID: task.ID, ObjectType: "department", UpstreamID: d.Before.UpstreamID,
				Action: ActDelete, LocalBefore: deptJSON(d.Before)})
			if err := step(); err != nil {
				return err
			}
		}
		if err := flush(); err != nil {
			return err
		}
		// Under a lease (the scheduler, the event inbox), commit only while still holding it: a
		// replica that lost it to another rolls back instead of writing over its successor.
		return lease.CheckContext(ctx, tx)
	})
	if err != nil {
		return lostAccess{}, err
	}
	return lost, nil
}
