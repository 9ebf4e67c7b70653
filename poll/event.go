// Package poll is edgepoll's core: the event, the small Sink and Store
// interfaces it needs, the ilert edge-connections client, one poll cycle and
// the loop that repeats cycles. It imports no sink, no store and no flag.
package poll

import (
	"strconv"
)

// Event is one edge item as polled from ilert.
type Event struct {
	// ID is the edge item id: grows with every item of one connection; it is
	// the cursor and the deduplication key.
	ID int64
	// Payload is the item's payload exactly as the API sent it. Sinks deliver
	// these bytes unchanged (never re-encoded).
	Payload []byte
	// Metadata read leniently from the payload. Empty when absent or when the
	// JSON value is neither a string nor a number.
	EventType string
	AlertID   string
	Timestamp string
}

// ItemID is the edge item id as decimal text (headers, env vars, keys).
func (e Event) ItemID() string { return strconv.FormatInt(e.ID, 10) }
