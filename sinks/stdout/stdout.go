// Package stdout is the stdout sink: each event's payload JSON as one line
// on standard output, nothing else.
package stdout

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"sync"

	"github.com/edgepoll/edgepoll/poll"
)

// Sink writes one line per event. It implements poll.Deliverer.
type Sink struct {
	mu  sync.Mutex
	w   *bufio.Writer
	buf bytes.Buffer
}

// New returns a sink writing to w (os.Stdout in edgepoll).
func New(w io.Writer) *Sink { return &Sink{w: bufio.NewWriterSize(w, 64<<10)} }

// Deliver writes ev's payload as one line and flushes it before returning,
// so a line the cursor moved past is never lost in a buffer. A payload with
// raw newlines (pretty-printed JSON) is compacted with json.Compact, which
// removes insignificant whitespace only: numbers and strings are untouched.
// A write error is retryable ("write").
func (s *Sink) Deliver(_ context.Context, ev poll.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	line := ev.Payload
	if bytes.ContainsAny(line, "\r\n") {
		s.buf.Reset()
		if err := json.Compact(&s.buf, line); err != nil {
			return poll.Permanent("invalid_json", err)
		}
		line = s.buf.Bytes()
	}
	if _, err := s.w.Write(line); err != nil {
		return poll.Retryable("write", err)
	}
	if err := s.w.WriteByte('\n'); err != nil {
		return poll.Retryable("write", err)
	}
	if err := s.w.Flush(); err != nil {
		return poll.Retryable("write", err)
	}
	return nil
}

// Close flushes the output.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Flush()
}
