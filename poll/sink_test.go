package poll_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/poll"
)

// countingSink delivers everything and counts its Close calls.
type countingSink struct{ sent, closed int }

func (s *countingSink) Send(_ context.Context, evs []poll.Event, report func(int, error) bool) {
	for i := range evs {
		s.sent++
		report(i, nil)
	}
}

func (s *countingSink) Close() error { s.closed++; return nil }

// A Releasable sink is closed by Release and built again by the next Send:
// a fleet's idle connection holds nothing of its target between cycles.
func TestReleasableBuildsAgainAfterRelease(t *testing.T) {
	first := &countingSink{}
	var built []*countingSink
	s := poll.Releasable(first, func(context.Context) (poll.Sink, error) {
		b := &countingSink{}
		built = append(built, b)
		return b, nil
	})
	send := func() { s.Send(context.Background(), []poll.Event{{ID: 1}}, func(int, error) bool { return true }) }
	send()
	assert.Equal(t, 1, first.sent, "the sink given is used until released")
	require.NoError(t, poll.Release(s))
	assert.Equal(t, 1, first.closed)
	require.NoError(t, poll.Release(s), "releasing again does nothing")
	assert.Equal(t, 1, first.closed)
	assert.Empty(t, built, "nothing is built before a Send needs it")
	send()
	require.Len(t, built, 1)
	assert.Equal(t, 1, built[0].sent)
	require.NoError(t, s.Close())
	assert.Equal(t, 1, built[0].closed)
	other := &countingSink{}
	require.NoError(t, poll.Release(other), "a plain sink is left alone")
	assert.Equal(t, 0, other.closed)
}
