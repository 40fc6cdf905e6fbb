package store

import (
	"context"
	"time"
)

// EventKind says what an Event reports.
type EventKind int

// Kinds of events.
const (
	// EventEvicted: the token with TokenID was removed; stop serving it.
	EventEvicted EventKind = iota + 1
	// EventSessionRevoked: session SessionID is revoked until Until.
	EventSessionRevoked
	// EventResync: events may have been missed (a reconnect): rebuild every
	// local view from the store.
	EventResync
	// EventSynced: every change made before At has been delivered.
	EventSynced
	// EventUnavailable: the feed was lost at At, for the reason Err; sent
	// once when it is lost, not per retry. EventResync follows when it is
	// back.
	EventUnavailable
)

// Event is a change made by some replica, as seen by a watcher.
type Event struct {
	Kind      EventKind
	TokenID   string
	SessionID string
	Until     time.Time
	At        time.Time
	Err       error // EventUnavailable's reason
}

// Watcher is implemented by stores shared between processes. Watch delivers
// every replica's changes (its own included) to handle until ctx ends,
// starting with an EventResync; after a reconnect it delivers EventResync
// again. It sends EventSynced at least every second while the backend is
// reachable, and while it is not, no EventSynced but one EventUnavailable
// saying why: a replica that has not seen an EventSynced lately must not
// trust its local views.
type Watcher interface {
	Watch(ctx context.Context, handle func(Event)) error
}
