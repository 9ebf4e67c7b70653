// Package poll is edgepoll's core: the event, the small Sink and Store
// interfaces it needs, the ilert edge-connections client, one poll cycle and
// the loop that repeats cycles. It imports no sink, no store and no flag.
package poll

import (
	"bytes"
	"encoding/json"
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

// NewEvent builds an event from an item id and its raw payload, reading the
// metadata (eventType, id, timestamp) leniently: a missing field or one of an
// unexpected JSON type yields "", a number is kept as its JSON text.
func NewEvent(id int64, payload []byte) Event {
	ev := Event{ID: id, Payload: payload}
	var fields struct {
		EventType json.RawMessage `json:"eventType"`
		ID        json.RawMessage `json:"id"`
		Timestamp json.RawMessage `json:"timestamp"`
	}
	if json.Unmarshal(payload, &fields) == nil {
		ev.EventType = scalarText(fields.EventType)
		ev.AlertID = scalarText(fields.ID)
		ev.Timestamp = scalarText(fields.Timestamp)
	}
	return ev
}

// maxMetaLen bounds one metadata value (it becomes a header or env var).
const maxMetaLen = 256

// scalarText renders a JSON string or number as text; anything else is "".
// Control characters are dropped so the value is always safe as an HTTP
// header or environment variable.
func scalarText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	var s string
	switch raw[0] {
	case '"':
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		var n json.Number
		if json.Unmarshal(raw, &n) != nil {
			return ""
		}
		s = n.String()
	default:
		return ""
	}
	clean := make([]rune, 0, len(s))
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			continue
		}
		clean = append(clean, r)
		if len(clean) >= maxMetaLen {
			break
		}
	}
	return string(clean)
}
