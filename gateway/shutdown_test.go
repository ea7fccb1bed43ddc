package gateway

import (
	"context"
	"testing"
	"time"
)

// Close waits for the background jobs to notice their context ended before it closes the stores
// under them: a job that still reads the store on its way out finds it open. (An outbox push cut
// off by Close used to log "sql: database is closed" for every item it held.)
func TestCloseWaitsForBackgroundJobs(t *testing.T) {
	w := newWorld(t, 5, t.TempDir(), false)
	g := w.gw
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan error, 1)
	g.goBackground(func() {
		<-ctx.Done()
		time.Sleep(100 * time.Millisecond) // finishing its last item
		_, err := g.Store.ListEnterprises(context.Background())
		finished <- err
	})
	cancel()
	g.Close()
	select {
	case err := <-finished:
		if err != nil {
			t.Fatalf("the job's last read failed: the store closed under it: %v", err)
		}
	default:
		t.Fatal("Close returned before the background job ended")
	}
}
