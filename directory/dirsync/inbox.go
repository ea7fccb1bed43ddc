package dirsync

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/federation"
)

// StoreEvents stores a source's events in the durable inbox, skipping those whose key (the
// platform's event ID) is already there, and reports how many it added. Every way events arrive
// — the HTTP callback endpoint, a DingTalk Stream connection — stores them here, so a redelivery
// through either is applied once; Engine.ProcessEvents applies them. On an error the events
// before the failing one are stored: the caller does not acknowledge, and the redelivery stores
// the rest.
func StoreEvents(ctx context.Context, st directory.Store, enterpriseID, sourceID string, evs []federation.Event, now time.Time) (int, error) {
	added := 0
	for _, ev := range evs {
		payload, err := json.Marshal(ev)
		if err != nil {
			return added, fmt.Errorf("event %s: %w", ev.Key, err)
		}
		ok, err := st.AddSourceEvent(ctx, &directory.SourceEvent{EnterpriseID: enterpriseID, SourceID: sourceID, DedupeKey: ev.Key,
			EventType: ev.Type, Payload: payload, ReceivedAt: now})
		if err != nil {
			return added, fmt.Errorf("store event %s: %w", ev.Key, err)
		}
		if ok {
			added++
		}
	}
	return added, nil
}
