package poll

import (
	"context"
	"errors"
	"strconv"
	"time"
	"unicode/utf8"
)

// DeadLetter keeps the items a cycle skips as non-retryable (--dead-letter),
// so that no item is ever lost silently. The cycle appends every skipped
// item before the cursor moves past it; if Append fails, the item is not
// skipped (the cycle fails with a state error, the cursor stays before it).
type DeadLetter interface {
	// Append stores rec for connection conn durably (fsync, or an
	// acknowledged write) before it returns. Records of one connection are
	// kept in item order.
	Append(ctx context.Context, conn string, rec DeadLetterRecord) error
	Close() error
}

// DeadLetterRecord is one skipped item. Its JSON form is the contract's
// dead-letter line. It never holds a secret: Error is the sink's message,
// which carries no key, URL credentials or auth value.
type DeadLetterRecord struct {
	// ID is the edge item id.
	ID int64
	// Connection is the connection id (the hash of the connector key).
	Connection string
	// Reason is the bounded reason ("http_404").
	Reason string
	// Status is the HTTP status of the refusal (0: none).
	Status int
	// Error is the failure's message (bounded).
	Error string
	// SkippedAt is when the item was skipped.
	SkippedAt time.Time
	// Payload is the item's payload exactly as the API sent it.
	Payload []byte
}

// maxDeadLetterError bounds the error message kept with a record.
const maxDeadLetterError = 1024

// NewDeadLetterRecord builds the record of ev skipped for err at now.
func NewDeadLetterRecord(conn string, ev Event, err error, now time.Time) DeadLetterRecord {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if len(msg) > maxDeadLetterError {
		msg = msg[:maxDeadLetterError]
		for !utf8.ValidString(msg) {
			msg = msg[:len(msg)-1]
		}
	}
	return DeadLetterRecord{
		ID: ev.ID, Connection: conn, Reason: ReasonOf(err), Status: StatusOf(err),
		Error: msg, SkippedAt: now.UTC(), Payload: ev.Payload,
	}
}

// Event returns the item as it was polled (for a replay).
func (r DeadLetterRecord) Event() Event {
	return NewEvent(r.ID, r.Payload)
}

// StatusOf returns the HTTP status of a delivery error (0 when it has none).
func StatusOf(err error) int {
	var de *DeliveryError
	if errors.As(err, &de) {
		return de.Status
	}
	return 0
}

// refusalName names the refusal err for messages: "HTTP 404", else its
// reason.
func refusalName(err error) string {
	if st := StatusOf(err); st != 0 {
		return "HTTP " + strconv.Itoa(st)
	}
	return ReasonOf(err)
}
