package dirsync

import (
	"encoding/json"
	"fmt"
	"os"
)

// spool keeps a full sync's upstream user records in a temporary file between the read and the
// apply, where the store does not stage them (PostgreSQL: staging there cost the server more
// than the sync; see sqlstore.StagingPays). A 100k-user read would otherwise hold every record
// (about 60 MB for WeCom's) through the plan and the apply; the apply reads each back, from the
// page cache, just before it writes it. The file is removed when the sync ends.
type spool struct {
	f   *os.File
	off int64
	buf []byte // records not yet written
}

// spoolRef is where a record is in the spool; n == 0: not spooled.
type spoolRef struct {
	off int64
	n   int32
}

const spoolBuffer = 1 << 20

func newSpool() (*spool, error) {
	f, err := os.CreateTemp("", "qiao-sync-*.spool")
	if err != nil {
		return nil, fmt.Errorf("spool the upstream records: %w", err)
	}
	// Unlinked at once where the OS allows it: nothing is left behind if the process dies.
	_ = os.Remove(f.Name())
	return &spool{f: f}, nil
}

// add spools u's record and drops it from u.
func (s *spool) add(u *upUser) error {
	if len(u.Raw) == 0 {
		return nil
	}
	u.spooled = spoolRef{off: s.off + int64(len(s.buf)), n: int32(len(u.Raw))}
	s.buf = append(s.buf, u.Raw...)
	u.Raw = nil
	if len(s.buf) >= spoolBuffer {
		return s.flush()
	}
	return nil
}

func (s *spool) flush() error {
	if len(s.buf) == 0 {
		return nil
	}
	if _, err := s.f.WriteAt(s.buf, s.off); err != nil {
		return fmt.Errorf("spool the upstream records: %w", err)
	}
	s.off += int64(len(s.buf))
	s.buf = s.buf[:0]
	return nil
}

// read returns the record at r (nil for none).
func (s *spool) read(r spoolRef) (json.RawMessage, error) {
	if s == nil || r.n == 0 {
		return nil, nil
	}
	if r.off >= s.off { // still in the buffer
		i := r.off - s.off
		return json.RawMessage(append([]byte(nil), s.buf[i:i+int64(r.n)]...)), nil
	}
	b := make([]byte, r.n)
	if _, err := s.f.ReadAt(b, r.off); err != nil {
		return nil, fmt.Errorf("read a spooled upstream record: %w", err)
	}
	return b, nil
}

func (s *spool) close() {
	if s != nil {
		_ = s.f.Close()
	}
}
