package stdout

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
