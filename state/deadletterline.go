package state

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/edgepoll/edgepoll/poll"
)

// deadLetterLine is the JSON form of a record (the payload is spliced in verbatim).
type deadLetterLine struct {
	ID         int64           `json:"id"`
	Reason     string          `json:"reason"`
	Status     *int            `json:"status"`
	Error      string          `json:"error"`
	SkippedAt  string          `json:"skipped_at"`
	Connection string          `json:"connection,omitempty"`
	Payload    json.RawMessage `json:"payload,omitempty"`
}

// EncodeDeadLetter renders rec as one line of the dead letter (with the
// newline): the contract's JSON form, the payload spliced in verbatim.
func EncodeDeadLetter(rec poll.DeadLetterRecord) ([]byte, error) {
	l := deadLetterLine{ID: rec.ID, Reason: rec.Reason, Error: rec.Error, Connection: rec.Connection,
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

// DecodeDeadLetter parses one line written by EncodeDeadLetter.
func DecodeDeadLetter(b []byte) (poll.DeadLetterRecord, error) {
	var l deadLetterLine
	if err := json.Unmarshal(b, &l); err != nil {
		return poll.DeadLetterRecord{}, err
	}
	rec := poll.DeadLetterRecord{ID: l.ID, Reason: l.Reason, Error: l.Error, Connection: l.Connection}
	if l.Status != nil {
		rec.Status = *l.Status
	}
	rec.SkippedAt, _ = time.Parse(time.RFC3339Nano, l.SkippedAt)
	if len(l.Payload) > 0 && string(l.Payload) != "null" {
		rec.Payload = append([]byte(nil), l.Payload...)
	}
	return rec, nil
}
