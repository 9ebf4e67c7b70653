package poll

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSaveContextReusedWhileFreshRenewedAtHalfTime(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.Background())
	s := saveContext{parent: context.WithoutCancel(parent), timeout: time.Hour}
	first := s.ctx()
	cancelParent()
	assert.Same(t, first, s.ctx(), "reused while more than half the timeout is left")
	assert.NoError(t, first.Err(), "outlives the cycle's cancellation")
	dl, ok := first.Deadline()
	require.True(t, ok)
	assert.InDelta(t, time.Hour.Seconds(), time.Until(dl).Seconds(), 60)

	s.deadline = time.Now().Add(29 * time.Minute) // less than half left
	second := s.ctx()
	assert.NotSame(t, first, second)
	assert.ErrorIs(t, first.Err(), context.Canceled, "the replaced context's timer is released")
	s.stop()
	assert.ErrorIs(t, second.Err(), context.Canceled)
}
