package poll_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/poll"
)

// transportSink reports every item from a goroutine of its own (a
// transport's, like a Kafka promise) and notes when its Send returned.
type transportSink struct {
	errs     map[int64]error
	returned atomic.Bool
}

func (s *transportSink) Send(_ context.Context, evs []poll.Event, report func(int, error) bool) {
	s.returned.Store(false)
	defer s.returned.Store(true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i, ev := range evs {
			if !report(i, s.errs[ev.ID]) {
				return
			}
		}
	}()
	<-done
}
func (*transportSink) Close() error { return nil }

// checkingDeadLetter fails a record written while the sink's Send runs:
// the dead letter must be written on the cycle's goroutine, never inside
// report on the sink's transport goroutine.
type checkingDeadLetter struct {
	sink   *transportSink
	mu     sync.Mutex
	ids    []int64
	inSend []int64
	fail   map[int64]bool
}

func (d *checkingDeadLetter) Append(_ context.Context, _ string, rec poll.DeadLetterRecord) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sink != nil && !d.sink.returned.Load() {
		d.inSend = append(d.inSend, rec.ID)
	}
	if d.fail[rec.ID] {
		return errors.New("disk full")
	}
	d.ids = append(d.ids, rec.ID)
	return nil
}
func (*checkingDeadLetter) Close() error { return nil }

func TestCycleWritesTheDeadLetterOnItsOwnGoroutine(t *testing.T) {
	refuse := poll.Permanent("http_400", errors.New("400"))
	sink := &transportSink{errs: map[int64]error{3: refuse, 7: refuse}}
	f := newFixture(t, sink, 10)
	dl := &checkingDeadLetter{sink: sink}
	f.cycle.DeadLetter = dl
	sum, err := f.cycle.Run(context.Background(), testInv)
	require.NoError(t, err)
	assert.Equal(t, []int64{3, 7}, dl.ids)
	assert.Empty(t, dl.inSend, "no dead letter written while the sink's Send ran (on its transport goroutine)")
	assert.Equal(t, 8, sum.Delivered)
	assert.Equal(t, 2, sum.Skipped)
	assert.Equal(t, int64(10), f.store.cursors[f.cycle.Conn])
	assert.Equal(t, seq(1, 10), f.store.saves, "the position past a refused item is saved with it, once")
}

// A sequential sink never runs ahead of a refused item whose dead letter
// is not yet written: the next item starts once the cursor passed it.
func TestCycleDeadLetterBeforeTheNextDelivery(t *testing.T) {
	var attempts []int64
	dl := &memDeadLetter{}
	sink := &scriptedSink{fail: map[int64]error{3: poll.Permanent("http_400", errors.New("400"))}}
	f := newFixture(t, poll.OneByOne(sink), 5)
	sink.onDeliver = func(ev poll.Event) {
		attempts = append(attempts, ev.ID)
		if ev.ID == 4 {
			assert.Equal(t, []int64{3}, dl.ids, "item 3 dead-lettered before item 4 is sent")
			assert.Equal(t, int64(3), f.store.cursors[f.cycle.Conn], "and the cursor past it")
		}
	}
	f.cycle.DeadLetter = dl
	_, err := f.cycle.Run(context.Background(), testInv)
	require.NoError(t, err)
	assert.Equal(t, seq(1, 5), attempts, "every item sent once")
	assert.Equal(t, []int64{1, 2, 4, 5}, sink.ids())
}

// The skip limit stops deliveries at the refusal beyond it: nothing after
// it is sent.
func TestCycleSkipLimitStopsAtTheRefusal(t *testing.T) {
	var attempts []int64
	refuse := poll.Permanent("http_404", errors.New("404"))
	sink := &scriptedSink{fail: map[int64]error{3: refuse, 4: refuse, 5: refuse}}
	sink.onDeliver = func(ev poll.Event) { attempts = append(attempts, ev.ID) }
	f := newFixture(t, poll.OneByOne(sink), 8)
	dl := &memDeadLetter{}
	f.cycle.DeadLetter, f.cycle.SkipLimit = dl, 2
	sum, err := f.cycle.Run(context.Background(), testInv)
	var ce *poll.CycleError
	require.ErrorAs(t, err, &ce)
	assert.EqualValues(t, "delivery", ce.Kind)
	assert.EqualValues(t, "skip_limit", ce.Reason)
	assert.True(t, poll.DeliveryFailed(err))
	assert.Equal(t, seq(1, 5), attempts, "nothing sent after the refusal beyond the limit")
	assert.Equal(t, []int64{3, 4}, dl.ids)
	assert.Equal(t, int64(4), sum.Cursor)
	assert.Equal(t, 2, sum.Refusals)
	assert.Equal(t, 2, f.store.refusals[f.cycle.Conn], "the streak saved with the cursor")
}

// A dead letter that cannot be written keeps the cursor before the item
// and stops the deliveries there.
func TestCycleDeadLetterFailureStopsTheCursor(t *testing.T) {
	refuse := poll.Permanent("http_400", errors.New("400"))
	sink := &transportSink{errs: map[int64]error{3: refuse}}
	f := newFixture(t, sink, 6)
	f.cycle.DeadLetter = &checkingDeadLetter{fail: map[int64]bool{3: true}}
	sum, err := f.cycle.Run(context.Background(), testInv)
	var ce *poll.CycleError
	require.ErrorAs(t, err, &ce)
	assert.EqualValues(t, "state", ce.Kind)
	assert.EqualValues(t, "dead_letter", ce.Reason)
	assert.Equal(t, int64(2), sum.Cursor)
	assert.Equal(t, int64(2), f.store.cursors[f.cycle.Conn])
	assert.Equal(t, 0, sum.Skipped)
}

// earlyRefusalSink reports a refusal of a later item before it delivers
// the earlier ones (a route whose transform failed on it), then delivers
// the others in order.
type earlyRefusalSink struct {
	refuse int64
	got    []int64
}

func (s *earlyRefusalSink) Send(_ context.Context, evs []poll.Event, report func(int, error) bool) {
	for i, ev := range evs {
		if ev.ID == s.refuse && !report(i, poll.Permanent("transform", errors.New("x"))) {
			return
		}
	}
	for i, ev := range evs {
		if ev.ID == s.refuse {
			continue
		}
		s.got = append(s.got, ev.ID)
		if !report(i, nil) {
			return
		}
	}
}
func (*earlyRefusalSink) Close() error { return nil }

func TestCycleRefusalReportedAheadOfThePrefix(t *testing.T) {
	sink := &earlyRefusalSink{refuse: 4}
	f := newFixture(t, sink, 8)
	dl := &memDeadLetter{}
	f.cycle.DeadLetter = dl
	sum, err := f.cycle.Run(context.Background(), testInv)
	require.NoError(t, err)
	assert.Equal(t, []int64{1, 2, 3, 5, 6, 7, 8}, sink.got, "each delivered once")
	assert.Equal(t, []int64{4}, dl.ids)
	assert.Equal(t, 7, sum.Delivered)
	assert.Equal(t, 1, sum.Skipped)
	assert.Equal(t, int64(8), f.store.cursors[f.cycle.Conn])
}
