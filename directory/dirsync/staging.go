package dirsync

import (
	"context"

	"github.com/qiao-gateway/qiao/directory"
)

// stager moves a full sync's upstream user records out of memory as they are read: they wait in
// the store (Store.StageUpstream) until the apply writes them into links and records, which
// take them from there (UserLink.Staged, SyncRecord.Staged). A 100k-user read would otherwise
// hold every record (about 60 MB for WeCom's) through the plan and the apply. Records are
// numbered in the order read, which is the order the apply writes them.
type stager struct {
	store   directory.Store
	task    string
	pending []directory.StagedRecord
	size    int
	seq     int64
	used    bool
}

// stageBatch is how many bytes of records are written at a time (one implicit transaction).
const stageBatch = 1 << 20

// add stages u's record and drops it from u.
func (s *stager) add(ctx context.Context, u *upUser) error {
	s.seq++
	s.pending = append(s.pending, directory.StagedRecord{Seq: s.seq, Upstream: u.Raw})
	s.size += len(u.Raw)
	u.Raw, u.staged = nil, directory.StagedRef{Task: s.task, Seq: s.seq}
	if s.size < stageBatch {
		return nil
	}
	return s.flush(ctx)
}

func (s *stager) flush(ctx context.Context) error {
	if len(s.pending) == 0 {
		return nil
	}
	s.used = true
	err := s.store.StageUpstream(ctx, s.task, s.pending)
	s.pending, s.size = s.pending[:0], 0
	return err
}

// drop deletes what was staged, whatever became of the task.
func (s *stager) drop(ctx context.Context) error {
	if !s.used {
		return nil
	}
	return s.store.DropStaged(context.WithoutCancel(ctx), s.task)
}
