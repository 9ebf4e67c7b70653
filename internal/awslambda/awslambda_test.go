package awslambda

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBudget(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		remaining, soft, hard, persist time.Duration
	}{
		{60 * time.Second, 6 * time.Second, 2 * time.Second, 1500 * time.Millisecond},   // 10% of R
		{15 * time.Second, 5 * time.Second, 2 * time.Second, 1500 * time.Millisecond},   // at least 5s
		{4 * time.Second, 2 * time.Second, 1 * time.Second, 750 * time.Millisecond},     // at most R/2; hard soft/2
		{300 * time.Second, 30 * time.Second, 2 * time.Second, 1500 * time.Millisecond}, // hard at most 2s
	} {
		deadline := now.Add(tc.remaining)
		soft, hard, persist, err := Budget(now, deadline)
		require.NoError(t, err, tc.remaining)
		assert.Equal(t, deadline.Add(-tc.soft), soft, "soft, R=%s", tc.remaining)
		assert.Equal(t, deadline.Add(-tc.hard), hard, "hard, R=%s", tc.remaining)
		assert.Equal(t, tc.persist, persist, "persist, R=%s", tc.remaining)
		assert.Less(t, persist, tc.hard, "persisting ends before the deadline")
	}
	_, _, _, err := Budget(now, now.Add(2900*time.Millisecond))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "had 2.9s left")
}

// An invocation too short is refused; one without a deadline runs
// unbounded, owned by "lambda".
func TestNewInvocation(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := NewInvocation(ctx, log)
	require.Error(t, err)

	inv, err := NewInvocation(context.Background(), log)
	require.NoError(t, err)
	defer inv.Cancel()
	assert.Equal(t, "lambda", inv.Owner)
	_, bounded := inv.Hard.Deadline()
	assert.False(t, bounded)

	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	inv, err = NewInvocation(ctx, log)
	require.NoError(t, err)
	defer inv.Cancel()
	soft, _ := inv.Soft.Deadline()
	hard, _ := inv.Hard.Deadline()
	assert.True(t, soft.Before(hard), "the soft limit comes first")
	cancel()
	assert.Error(t, inv.Soft.Err(), "the soft limit ends with the invocation")
	assert.NoError(t, inv.Hard.Err(), "the hard limit does not: persisting still has its budget")
}
