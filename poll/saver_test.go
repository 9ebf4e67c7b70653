package poll

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// deadlineLease records the deadline of every Save (a remote lease: not a
// CheapSaver).
type deadlineLease struct {
	Lease
	mu        sync.Mutex
	deadlines []time.Time
}

func (l *deadlineLease) Save(ctx context.Context, _ Position) error {
	dl, _ := ctx.Deadline()
	l.mu.Lock()
	l.deadlines = append(l.deadlines, dl)
	l.mu.Unlock()
	return ctx.Err()
}

// Once the cycle's hard context is done, the saves still owed share one
// persist budget instead of getting a fresh timeout each (a Lambda deadline
// leaves time for one budget, not for one per save).
func TestSaverSharesOneBudgetOnceTheCycleIsCancelled(t *testing.T) {
	hard, cancel := context.WithCancel(context.Background())
	l := &deadlineLease{}
	s := NewSaver(hard, l, time.Hour, nil)
	defer s.Close()
	save := func(c int64) {
		require.NoError(t, s.Advance(Position{Cursor: c}))
		_, err := s.Wait()
		require.NoError(t, err, "a save outlives the cycle's cancellation")
	}
	save(1)
	cancel()
	save(2)
	save(3)
	require.Len(t, l.deadlines, 3)
	assert.True(t, l.deadlines[2].Equal(l.deadlines[1]), "the saves after the cancellation share one deadline: %v", l.deadlines)
	assert.False(t, l.deadlines[0].IsZero())
}
