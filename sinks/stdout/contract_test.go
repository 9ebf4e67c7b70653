package stdout_test

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/edgepoll/edgepoll/internal/testenv"
	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/sinks"
	"github.com/edgepoll/edgepoll/sinks/contract"
	"github.com/edgepoll/edgepoll/sinks/stdout"
)

// switchedOutput is the sink's standard output: a regular file, or
// /dev/full (every write fails with ENOSPC) while the target is broken.
type switchedOutput struct {
	mu   sync.Mutex
	out  *os.File
	file *os.File
}

func (s *switchedOutput) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.Write(p)
}

func (s *switchedOutput) set(f *os.File) {
	s.mu.Lock()
	s.out = f
	s.mu.Unlock()
}

// lines returns the items of the complete lines written to the file.
func (s *switchedOutput) lines(t *testing.T) []string {
	b, err := os.ReadFile(s.file.Name())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		out = append(out, contract.ItemOfPayload(sc.Bytes()))
	}
	return out
}

func TestContract(t *testing.T) {
	contract.Run(t, contract.Harness{
		New: func(t *testing.T) contract.Target {
			full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
			if err != nil {
				testenv.Missing(t, "/dev/full", "a Linux /dev")
			}
			t.Cleanup(func() { full.Close() })
			f, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			w := &switchedOutput{out: f, file: f}
			s := contract.Open(t, stdout.Registration.New(), sinks.Shared{}, sinks.Env{Stdout: w})
			return contract.Target{
				Sink:     s,
				Received: func() []string { return w.lines(t) },
				Break:    func() func() { w.set(full); return func() { w.set(f) } },
			}
		},
		// Pretty-printed (a raw newline) and not JSON: it cannot be
		// written as one line.
		Refused: func(ev poll.Event) poll.Event {
			return poll.NewEvent(ev.ID, append(append([]byte{}, ev.Payload...), "\n}"...))
		},
	})
}
