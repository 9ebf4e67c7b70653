// Package stdout is the stdout sink: each event's payload JSON as one line
// on standard output, nothing else.
package stdout

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"sync"

	"github.com/edgepoll/edgepoll/poll"
)

// Sink writes one line per event. It implements poll.Deliverer.
//
// Each line goes out in one Write of the complete line (payload and
// newline), unbuffered, so nothing is left in a buffer to be lost, and a
// failed write leaves no state behind: the next Deliver writes again, and
// succeeds once the output accepts data again (a full disk that got space).
//
// What a failed write (ENOSPC, EFBIG, EPIPE...) can leave in the output:
//   - a regular file (stdout redirected to a file): the part of the line that
//     was written is cut off again (truncated back to where the line began),
//     so the file only ever holds complete lines;
//   - anything else (a pipe, a terminal) cannot be cut back: the fragment
//     stays, and the next line written starts with a newline, so the fragment
//     is a line of its own (not valid JSON; a consumer skips it) and never
//     joins the next line into a wrong one. The item is written again whole.
type Sink struct {
	mu   sync.Mutex
	w    io.Writer
	file *os.File // w, when it is a regular file (fragments are cut off)
	line []byte
	// torn: the output ends in a fragment of a line; the next write
	// starts with a newline.
	torn bool
}

// New returns a sink writing to w (os.Stdout in edgepoll).
func New(w io.Writer) *Sink {
	s := &Sink{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			s.file = f
		}
	}
	return s
}

// Deliver writes ev's payload as one line. A payload with raw newlines
// (pretty-printed JSON) is compacted with json.Compact, which removes
// insignificant whitespace only: numbers and strings are untouched. A write
// error is retryable ("write").
func (s *Sink) Deliver(_ context.Context, ev poll.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.line = s.line[:0]
	if s.torn {
		s.line = append(s.line, '\n')
	}
	if bytes.ContainsAny(ev.Payload, "\r\n") {
		buf := bytes.NewBuffer(s.line)
		if err := json.Compact(buf, ev.Payload); err != nil {
			return poll.Permanent("invalid_json", err)
		}
		s.line = buf.Bytes()
	} else {
		s.line = append(s.line, ev.Payload...)
	}
	s.line = append(s.line, '\n')

	start := int64(-1)
	if s.file != nil {
		if off, err := s.file.Seek(0, io.SeekCurrent); err == nil {
			start = off
		}
	}
	n, err := s.w.Write(s.line)
	if err == nil && n == len(s.line) {
		s.torn = false
		return nil
	}
	if err == nil {
		err = io.ErrShortWrite
	}
	if n > 0 && !s.cutBack(start) {
		s.torn = true
	}
	return poll.Retryable("write", err)
}

// cutBack truncates a regular-file output back to start, where the failed
// line began, and reports whether it could.
func (s *Sink) cutBack(start int64) bool {
	if s.file == nil || start < 0 {
		return false
	}
	if err := s.file.Truncate(start); err != nil {
		return false
	}
	_, err := s.file.Seek(start, io.SeekStart)
	return err == nil
}

// Close implements poll.Deliverer (nothing is buffered).
func (s *Sink) Close() error { return nil }
