package poll

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// batch is one poll answer's items on their way to the sink, and what
// became of each. The cycle moves the cursor over the longest prefix of
// items that were delivered, filtered out or refused (failed permanently),
// handing every step to the saver; everything from the first item not
// passed on is sent again next cycle (at-least-once).
//
// The sink's report only records: an item's result, and the cursor moved
// over the delivered (and filtered) items it completes, handed to the saver
// (which never waits for storage). Where the prefix reaches a refused item
// report asks the sink to pause (more false); once Send returned, the
// cycle's goroutine settles the refusal, in this order: a refusal beyond
// SkipLimit stops the cursor (a retryable failure); the item is written to
// the dead letter, durably, before the cursor passes it (a failed write
// stops the cursor); the position past it, with the refusal streak, goes
// to the saver. Then the rest of the batch is sent. So a transport
// goroutine never waits for the dead letter, and a sequential sink never
// runs ahead of a refused item that is not yet settled.
type batch struct {
	r     *run
	items []Event
	start time.Time
	dl    saveContext // the dead letter's writes: a persist budget each
	saved Position    // what the saver persisted once the batch ended

	mu        sync.Mutex
	send      int // generation of the Send in progress: reports of another are ignored
	results   []error
	reported  []bool
	next      int // first item the cursor has not passed
	refusals  int // the refusal streak at next
	retryable int // first retryable failure (-1: none)
	failed    int // items that failed retryably
	saveErr   error
	stopErr   *CycleError // a guard stopped the cursor (skip limit, dead letter)
}

func newBatch(r *run, items []Event) *batch {
	return &batch{
		r: r, items: items, start: time.Now(),
		dl:      saveContext{parent: context.WithoutCancel(r.hard), timeout: r.inv.PersistTimeout},
		results: make([]error, len(items)), reported: make([]bool, len(items)),
		refusals: r.refusals, retryable: -1,
	}
}

// deliver sends the batch, settling each refusal between two Sends, and
// returns the batch's error once the saver persisted what it was handed.
func (b *batch) deliver() error {
	defer b.dl.stop()
	for from := 0; ; from = b.next {
		b.r.c.Sink.Send(b.r.hard, b.items[from:], b.reporter(from))
		if !b.settle() {
			break
		}
	}
	return b.finish()
}

// refused: err is a refusal (a permanent failure, not a filter's).
func refused(err error) bool { return err != nil && !IsFiltered(err) && IsPermanent(err) }

// passable: the cursor may move past an item reported with err (delivered,
// refused non-retryably, or filtered out).
func passable(err error) bool { return err == nil || IsPermanent(err) || IsFiltered(err) }

// reporter is the report of the Send of items[from:].
func (b *batch) reporter(from int) func(int, error) bool {
	b.mu.Lock()
	b.send++
	gen := b.send
	b.mu.Unlock()
	return func(i int, err error) bool { return b.report(gen, from, i, err) }
}

// report records the result of items[from+i] (from any goroutine) and says
// whether the sink may start another delivery.
func (b *batch) report(gen, from, i int, err error) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	log := b.r.log
	if gen != b.send {
		log.Error("sink reported an item after Send returned; ignoring", "index", i)
		return false
	}
	j := from + i
	if i < 0 || j >= len(b.items) || b.reported[j] {
		log.Error("sink reported an item twice or out of range; ignoring", "index", i)
		return false
	}
	b.reported[j], b.results[j] = true, err
	if !passable(err) {
		b.r.obs.Item(OutcomeFailed, ReasonOf(err), time.Since(b.start))
		b.r.sum.Failed++
		b.failed++
		if b.retryable < 0 || j < b.retryable {
			b.retryable = j
		}
		// One line per cycle names the cause (the cycle's error), not one
		// identical line per item.
		log.Debug("delivery failed, will retry next cycle", "item", b.items[j].ID, "reason", ReasonOf(err), "err", err)
	}
	b.advance(false)
	return b.more() && !b.atRefusal()
}

// advance moves the cursor over the reported items at the head of the
// prefix, refusals included only on the cycle's goroutine (settle), and
// hands the new position to the saver; it reports whether a refusal was
// passed. b.mu is held, or Send returned.
func (b *batch) advance(settle bool) (passedRefusal bool) {
	moved := false
	for b.stopErr == nil && b.next < len(b.items) && b.reported[b.next] && passable(b.results[b.next]) {
		if refused(b.results[b.next]) {
			if !settle {
				break
			}
			if b.stopErr = b.skip(b.next); b.stopErr != nil {
				break
			}
			passedRefusal = true
		} else {
			b.pass(b.next)
		}
		// Passed: its payload is released now (the sink reported it), so a
		// page's memory shrinks as it is delivered while the next page
		// arrives (issue 19).
		b.items[b.next].Payload = nil
		b.next++
		moved = true
	}
	if moved && b.saveErr == nil {
		b.saveErr = b.r.saver.Advance(Position{Cursor: b.items[b.next-1].ID, Refusals: b.refusals})
	}
	return passedRefusal
}

// more: nothing keeps the cycle from delivering further items.
func (b *batch) more() bool {
	return b.saveErr == nil && b.stopErr == nil && b.retryable < 0 && b.r.soft.Err() == nil
}

// atRefusal: the prefix stops at a refused item, waiting for settle.
func (b *batch) atRefusal() bool {
	return b.next < len(b.items) && b.reported[b.next] && refused(b.results[b.next])
}

// pass records a delivered or filtered item the cursor passes.
func (b *batch) pass(j int) {
	ev, res, d, sum, log := b.items[j], b.results[j], time.Since(b.start), &b.r.sum, b.r.log
	if IsFiltered(res) {
		b.r.obs.Item(OutcomeFiltered, "", d)
		sum.Filtered++
		log.Debug("filtered out", "item", ev.ID)
		return
	}
	b.r.obs.Item(OutcomeDelivered, "", d)
	sum.Delivered++
	sum.Stats.LastDelivery = time.Now().UTC()
	b.refusals = 0
	log.Debug("delivered", "item", ev.ID)
}

// skip lets the cursor pass the refused item j, or returns why it may not:
// the skip limit (the item counts as a retryable failure) or a dead letter
// that could not be written. On the cycle's goroutine only.
func (b *batch) skip(j int) *CycleError {
	c, ev, res, d, sum, log := b.r.c, b.items[j], b.results[j], time.Since(b.start), &b.r.sum, b.r.log
	if c.SkipLimit > 0 && b.refusals >= c.SkipLimit {
		b.r.obs.Item(OutcomeFailed, string(ReasonSkipLimit), d)
		sum.Failed++
		log.Error("refusal beyond --skip-limit: not skipping the item", "item", ev.ID, "refusals", b.refusals, "reason", ReasonOf(res), "err", res)
		return &CycleError{Kind: KindDelivery, Reason: ReasonSkipLimit, Err: SkipLimitError(c.SkipLimit, res)}
	}
	if c.DeadLetter != nil {
		if err := c.DeadLetter.Append(b.dl.ctx(), c.Conn, NewDeadLetterRecord(c.Conn, ev, res, time.Now())); err != nil {
			log.Error("writing the dead letter failed: not skipping the item", "item", ev.ID, "err", err)
			return &CycleError{Kind: KindState, Reason: ReasonDeadLetter, Err: fmt.Errorf("item %d not skipped: writing the dead letter: %w", ev.ID, err)}
		}
		b.r.obs.DeadLettered()
	}
	b.r.obs.Item(OutcomeSkipped, ReasonOf(res), d)
	sum.Skipped++
	b.refusals++
	log.Warn("delivery failed permanently, skipping item", "item", ev.ID, "reason", ReasonOf(res), "err", res)
	return nil
}

// settle runs on the cycle's goroutine once a Send returned: it ends that
// Send's reports, passes the refusals at the head of the prefix (and the
// items reported after them) and reports whether the rest of the batch is
// to be sent: only after a refusal was passed, with nothing against it.
func (b *batch) settle() (resend bool) {
	b.mu.Lock()
	b.send++ // the Send returned: its later reports are ignored
	b.mu.Unlock()
	if !b.advance(true) || !b.more() || b.next >= len(b.items) || b.r.hard.Err() != nil {
		return false
	}
	for j := b.next; j < len(b.items); j++ { // sent again: reported anew
		b.reported[j], b.results[j] = false, nil
	}
	return true
}

// finish waits for the saver's last Save and returns the batch's error.
func (b *batch) finish() error {
	saved, err := b.r.saver.Wait()
	if err != nil {
		b.saveErr = err
	}
	b.saved = saved
	next, soft, hard := b.next, b.r.soft, b.r.hard
	switch {
	case b.saveErr != nil:
		return &CycleError{Kind: KindState, Reason: ReasonSave, Err: fmt.Errorf("saving the cursor: %w", b.saveErr)}
	case b.stopErr != nil:
		return b.stopErr
	case b.retryable >= 0:
		more := ""
		if b.failed > 1 {
			more = fmt.Sprintf(" (and %d more items)", b.failed-1)
		}
		res := b.results[b.retryable]
		return &CycleError{Kind: KindDelivery, Reason: Reason(ReasonOf(res)),
			Err: fmt.Errorf("delivery of item %d failed%s: %w", b.items[b.retryable].ID, more, res)}
	case next < len(b.items) && (soft.Err() != nil || hard.Err() != nil):
		b.r.sum.Stopped = true
		if hard.Err() != nil && soft.Err() == nil {
			return &CycleError{Kind: KindDelivery, Reason: ReasonCanceled, Err: fmt.Errorf("delivery aborted at item %d: %w", b.items[next].ID, hard.Err())}
		}
		return nil
	case next < len(b.items):
		return &CycleError{Kind: KindDelivery, Reason: ReasonUnreported,
			Err: fmt.Errorf("sink returned without reporting item %d", b.items[next].ID)}
	}
	return nil
}
