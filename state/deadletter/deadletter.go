// Package deadletter keeps the items edgepoll skipped as non-retryable
// (--dead-letter), so that no item is ever lost silently, and gives them
// back for `edgepoll dead-letter list|replay`.
//
// Two backends implement poll.DeadLetter:
//
//   - file:PATH appends one JSON line per skipped item and fsyncs it (and,
//     when it created the file, its directory) before Append returns:
//     {"id":..,"reason":..,"status":..,"error":..,"skipped_at":..,
//     "connection":..,"payload":..}. The payload is written verbatim (a
//     payload spread over several lines is compacted onto one).
//   - dynamodb:TABLE puts one item per skipped item under a key of its own,
//     pk "deadletter#<connection>#<item id, 20 digits>", so records sort in
//     item order per connection; the state table will do.
//
// A record never holds a secret: the connection is the hash of the key,
// the error is the sink's message (no URL credentials, no auth value).
package deadletter

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state/dynamo"
)

// Record is one dead-lettered item.
type Record = poll.DeadLetterRecord

// Store is a dead letter: the cycle appends to it; operators list it and
// remove what a replay delivered.
type Store interface {
	poll.DeadLetter
	// List returns the records of connection conn in item order.
	List(ctx context.Context, conn string) ([]Record, error)
	// Remove deletes the records of conn with these item ids (delivered by
	// a replay). Unknown ids are ignored.
	Remove(ctx context.Context, conn string, ids ...int64) error
}

// Parse checks a --dead-letter value: file:PATH or dynamodb:TABLE.
func Parse(spec string) (scheme, rest string, err error) {
	scheme, rest, ok := strings.Cut(spec, ":")
	switch {
	case !ok:
		return "", "", fmt.Errorf("%q: want file:PATH or dynamodb:TABLE", spec)
	case scheme == "file" && rest == "":
		return "", "", fmt.Errorf("file: needs a file path")
	case scheme == "file":
		return scheme, rest, nil
	case scheme == "dynamodb" && !dynamo.ValidTableName(rest):
		return "", "", fmt.Errorf("dynamodb: %q is not a valid table name (3-255 of A-Z a-z 0-9 _ - .)", rest)
	case scheme == "dynamodb":
		return scheme, rest, nil
	}
	return "", "", fmt.Errorf("unknown scheme %q: want file:PATH or dynamodb:TABLE", scheme)
}

// Open opens the dead letter named by spec (see Parse).
func Open(ctx context.Context, spec string) (Store, error) {
	scheme, rest, err := Parse(spec)
	if err != nil {
		return nil, err
	}
	if scheme == "file" {
		return OpenFile(rest)
	}
	return OpenDynamo(ctx, rest, nil)
}

// line is the JSON form of a record (the payload is spliced in verbatim).
type line struct {
	ID         int64           `json:"id"`
	Reason     string          `json:"reason"`
	Status     *int            `json:"status"`
	Error      string          `json:"error"`
	SkippedAt  string          `json:"skipped_at"`
	Connection string          `json:"connection,omitempty"`
	Payload    json.RawMessage `json:"payload,omitempty"`
}

// encode renders rec as one JSON line (with the newline).
func encode(rec Record) ([]byte, error) {
	l := line{ID: rec.ID, Reason: rec.Reason, Error: rec.Error, Connection: rec.Connection,
		SkippedAt: rec.SkippedAt.UTC().Format(time.RFC3339Nano)}
	if rec.Status != 0 {
		st := rec.Status
		l.Status = &st
	}
	b, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	// Splice the payload in as the last member, byte for byte when it is
	// valid JSON on one line.
	p := bytes.TrimSpace(rec.Payload)
	var payload []byte
	switch {
	case len(p) == 0:
		payload = []byte("null")
	case !json.Valid(p):
		payload, _ = json.Marshal(string(rec.Payload)) // not JSON: kept as a string
	case bytes.ContainsAny(p, "\r\n"):
		var buf bytes.Buffer
		_ = json.Compact(&buf, p)
		payload = buf.Bytes()
	default:
		payload = p
	}
	out := make([]byte, 0, len(b)+len(payload)+14)
	out = append(out, b[:len(b)-1]...)
	out = append(out, `,"payload":`...)
	out = append(out, payload...)
	return append(out, '}', '\n'), nil
}

// decode parses one line.
func decode(b []byte) (Record, error) {
	var l line
	if err := json.Unmarshal(b, &l); err != nil {
		return Record{}, err
	}
	rec := Record{ID: l.ID, Reason: l.Reason, Error: l.Error, Connection: l.Connection}
	if l.Status != nil {
		rec.Status = *l.Status
	}
	rec.SkippedAt, _ = time.Parse(time.RFC3339Nano, l.SkippedAt)
	if len(l.Payload) > 0 && string(l.Payload) != "null" {
		rec.Payload = append([]byte(nil), l.Payload...)
	}
	return rec, nil
}
