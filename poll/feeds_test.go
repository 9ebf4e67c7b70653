package poll_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/poll"
)

// recordingObserver counts the outcomes the cycle reports.
type recordingObserver struct {
	poll.Observer
	items map[poll.Outcome]int
	dead  int
}

func (o *recordingObserver) Polled(string, int, time.Duration) {}
func (o *recordingObserver) Item(outcome poll.Outcome, _ string, _ time.Duration) {
	o.items[outcome]++
}
func (o *recordingObserver) Cursor(int64)  {}
func (o *recordingObserver) Role(string)   {}
func (o *recordingObserver) DeadLettered() { o.dead++ }

type memDeadLetter struct{ ids []int64 }

func (d *memDeadLetter) Append(_ context.Context, _ string, rec poll.DeadLetterRecord) error {
	d.ids = append(d.ids, rec.ID)
	return nil
}
func (d *memDeadLetter) Close() error { return nil }

// A filtered item (ErrFiltered) moves the cursor past it like a delivered
// one, is counted "filtered", is never dead-lettered and never counts as a
// refusal towards --skip-limit.
func TestCycleFilteredItemsPassTheCursor(t *testing.T) {
	sink := &scriptedSink{fail: map[int64]error{2: poll.ErrFiltered, 3: poll.ErrFiltered, 4: poll.ErrFiltered}}
	f := newFixture(t, poll.OneByOne(sink), 5)
	obs := &recordingObserver{items: map[poll.Outcome]int{}}
	dl := &memDeadLetter{}
	f.cycle.Observer, f.cycle.DeadLetter, f.cycle.SkipLimit = obs, dl, 1
	sum, err := f.cycle.Run(context.Background(), testInv)
	require.NoError(t, err)
	assert.Equal(t, []int64{1, 5}, sink.ids())
	assert.Equal(t, 3, sum.Filtered)
	assert.Equal(t, 2, sum.Delivered)
	assert.Equal(t, 0, sum.Skipped)
	assert.Equal(t, 0, sum.Refusals)
	assert.Equal(t, int64(5), f.store.cursors[f.cycle.Conn])
	assert.Equal(t, map[poll.Outcome]int{poll.OutcomeDelivered: 2, poll.OutcomeFiltered: 3}, obs.items)
	assert.Empty(t, dl.ids, "a filtered item is not a failure")

	// Never redelivered: the next cycle starts after them.
	sum, err = f.cycle.Run(context.Background(), testInv)
	require.NoError(t, err)
	assert.Equal(t, 0, sum.Polled)
}

// Filtered items reported by a pipelined sink out of order still only move
// the cursor over the longest prefix.
func TestCycleFilteredPrefixRule(t *testing.T) {
	f := newFixture(t, pipeSink{errs: map[int64]error{
		2: poll.ErrFiltered,
		4: poll.Retryable("timeout", errors.New("y")),
		5: poll.ErrFiltered,
	}}, 6)
	sum, err := f.cycle.Run(context.Background(), testInv)
	require.Error(t, err)
	assert.Equal(t, int64(3), f.store.cursors[f.cycle.Conn])
	assert.Equal(t, 1, sum.Filtered)
}

func TestRetryAfterOf(t *testing.T) {
	assert.Zero(t, poll.RetryAfterOf(nil))
	assert.Zero(t, poll.RetryAfterOf(errors.New("x")))
	de := &poll.DeliveryError{Reason: "http_429", Status: 429, RetryAfter: 42 * time.Second}
	assert.Equal(t, 42*time.Second, poll.RetryAfterOf(&poll.CycleError{Kind: "delivery", Err: de}))
	de.Permanent = true
	assert.Zero(t, poll.RetryAfterOf(de), "only a retryable failure waits")
}

// A retryable failure with a Retry-After longer than the poll interval
// makes the daemon wait that long (capped at 300 s); a shorter one changes
// nothing. /ready's error says so.
func TestDaemonWaitsForRetryAfter(t *testing.T) {
	fail := func(ra time.Duration) error {
		return &poll.DeliveryError{Reason: "http_429", Status: 429, RetryAfter: ra, Err: errors.New("target answered 429")}
	}
	sink := &scriptedSink{fail: map[int64]error{2: fail(42 * time.Second)}}
	f := newFixture(t, poll.OneByOne(sink), 3)
	r := startDaemon(t, f)
	rep := r.report(t)
	require.Error(t, rep.Err)
	assert.True(t, rep.Polling)
	assert.True(t, rep.RetryAfter)
	assert.Contains(t, rep.ReadyError, "retry after 42s")
	s := r.clock.next(t)
	assert.Equal(t, 42*time.Second, s.d)
	sink.mu.Lock()
	sink.fail[2] = fail(time.Hour)
	sink.mu.Unlock()
	s.wake <- true
	r.report(t)
	s = r.clock.next(t)
	assert.Equal(t, poll.RetryAfterMax, s.d, "capped")
	sink.mu.Lock()
	sink.fail[2] = fail(3 * time.Second)
	sink.mu.Unlock()
	s.wake <- true
	rep = r.report(t)
	assert.False(t, rep.RetryAfter)
	s = r.clock.next(t)
	assert.Equal(t, 10*time.Second, s.d, "never shorter than the poll interval")
	s.wake <- true
}
