package stdout

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/testenv"
	"github.com/edgepoll/edgepoll/poll"
)

func TestOneLinePerEventBytesUnchanged(t *testing.T) {
	var out strings.Builder
	s := New(&out)
	in := []string{
		`{"id":"1","big":123456789012345678901234567890,"s":"\u00e9 é \"q\""}`,
		"{\n  \"id\": \"2\",\n  \"n\": 1.50e10,\n  \"s\": \"a b\\nc\"\n}",
	}
	for i, p := range in {
		require.NoError(t, s.Deliver(context.Background(), poll.NewEvent(int64(i+1), []byte(p))))
	}
	assert.Equal(t, in[0]+"\n"+`{"id":"2","n":1.50e10,"s":"a b\nc"}`+"\n", out.String(), "flushed per event")
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestWriteErrorIsRetryable(t *testing.T) {
	s := New(failWriter{})
	err := s.Deliver(context.Background(), poll.NewEvent(1, []byte(`{}`)))
	require.Error(t, err)
	assert.False(t, poll.IsPermanent(err))
	assert.Equal(t, "write", poll.ReasonOf(err))
}

// diskFull writes part of a line then fails, fails times; then it works.
type diskFull struct {
	out   strings.Builder
	fails int
}

func (d *diskFull) Write(p []byte) (int, error) {
	if d.fails > 0 {
		d.fails--
		n := len(p) / 2
		d.out.Write(p[:n])
		return n, syscall.ENOSPC
	}
	return d.out.Write(p)
}

// A full disk: the delivery fails (retryable) and the sink recovers once
// writes work again; the fragment a failed write left (a pipe cannot take it
// back) is a line of its own, never joined to the next line.
func TestRecoversAfterFullDiskFragmentStaysALineOfItsOwn(t *testing.T) {
	w := &diskFull{}
	s := New(w)
	ctx := context.Background()
	require.NoError(t, s.Deliver(ctx, poll.NewEvent(1, []byte(`{"n":1}`))))
	w.fails = 2
	for range 2 {
		err := s.Deliver(ctx, poll.NewEvent(2, []byte(`{"n":2,"pad":"xxxxxxxxxx"}`)))
		require.Error(t, err)
		assert.Equal(t, "write", poll.ReasonOf(err))
		assert.False(t, poll.IsPermanent(err))
	}
	require.NoError(t, s.Deliver(ctx, poll.NewEvent(2, []byte(`{"n":2,"pad":"xxxxxxxxxx"}`))), "space is back")
	require.NoError(t, s.Deliver(ctx, poll.NewEvent(3, []byte(`{"n":3}`))))
	var complete []string
	for _, l := range strings.Split(strings.TrimSuffix(w.out.String(), "\n"), "\n") {
		if json.Valid([]byte(l)) {
			complete = append(complete, l)
		}
	}
	assert.Equal(t, []string{`{"n":1}`, `{"n":2,"pad":"xxxxxxxxxx"}`, `{"n":3}`}, complete, "output: %q", w.out.String())
	assert.True(t, strings.HasSuffix(w.out.String(), "\n"+`{"n":2,"pad":"xxxxxxxxxx"}`+"\n"+`{"n":3}`+"\n"), "%q", w.out.String())
}

// On a regular file the fragment of a failed write is cut off again, so the
// file only ever holds complete lines. The file size limit (RLIMIT_FSIZE,
// with SIGXFSZ ignored) makes the kernel write part of the line and then
// fail with EFBIG, as a full disk does with ENOSPC.
func TestRegularFileNeverHoldsATornLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.jsonl")
	f, err := os.Create(p)
	require.NoError(t, err)
	defer f.Close()
	s := New(f)
	ctx := context.Background()
	require.NoError(t, s.Deliver(ctx, poll.NewEvent(1, []byte(`{"n":1}`))))

	signal.Ignore(syscall.SIGXFSZ)
	defer signal.Reset(syscall.SIGXFSZ)
	var old syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old))
	lim := old
	lim.Cur = 20 // room for part of the next line only
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim))
	err = s.Deliver(ctx, poll.NewEvent(2, []byte(`{"n":2,"pad":"xxxxxxxxxxxxxxxxxxxx"}`)))
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old))
	require.Error(t, err)
	b, _ := os.ReadFile(p)
	assert.Equal(t, `{"n":1}`+"\n", string(b), "the fragment is cut off")

	require.NoError(t, s.Deliver(ctx, poll.NewEvent(2, []byte(`{"n":2,"pad":"xxxxxxxxxxxxxxxxxxxx"}`))))
	b, _ = os.ReadFile(p)
	assert.Equal(t, `{"n":1}`+"\n"+`{"n":2,"pad":"xxxxxxxxxxxxxxxxxxxx"}`+"\n", string(b))
}

// /dev/full: every write fails with ENOSPC: a retryable failure each time.
func TestDevFullIsRetryable(t *testing.T) {
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		testenv.Missing(t, "/dev/full", "a Linux /dev")
	}
	defer f.Close()
	s := New(f)
	for range 2 {
		err := s.Deliver(context.Background(), poll.NewEvent(1, []byte(`{}`)))
		require.ErrorIs(t, err, syscall.ENOSPC)
		assert.Equal(t, "write", poll.ReasonOf(err))
	}
}
