// Package syncio has the one io helper several of edgepoll's programs
// share: a writer that serialises the writes of several goroutines.
package syncio

import (
	"io"
	"sync"
)

// Writer serialises writes to w: each Write reaches w whole, so lines of
// writers that write whole lines never interleave. It has no ReadFrom on
// purpose, so os/exec's output copy goes through Write (and the lock) too.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewWriter returns a Writer for w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

func (s *Writer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
