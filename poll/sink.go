package poll

import (
	"context"
	"errors"
	"sync"
)

// Sink delivers events to one target. A sink knows its transport and its
// error classes, nothing about cursors.
//
// Send delivers evs in order. For every event it finished with it calls
// report(i, err) exactly once (err nil: delivered; otherwise a
// DeliveryError, see Retryable and Permanent). report may be called from any
// goroutine and in any order, but never concurrently with itself from two
// goroutines without the sink's own ordering (the cycle serialises calls with
// a mutex anyway). report only records the outcome and returns: it never
// waits for storage (the cycle's Saver persists the cursor: in the caller
// for a local store, whose save is a memory write, so that when report
// returns the cursor is saved as far as the reports allow; in the
// background, one save at a time, for a remote store) and holds the
// cycle's lock only for that bookkeeping. A pipelined sink may therefore
// call it from its transport's goroutine (a Kafka promise, the MQTT
// reader). A sequential sink must not start event i+1 before report(i)
// returned.
//
// report returns false when the cycle wants no new delivery started (a
// retryable failure happened, a graceful stop or the invocation deadline is
// near, the cursor could not be saved, or the cursor reached a refused
// item): the sink then finishes or abandons what is in flight, starts
// nothing new, and returns. After a refusal the cycle settles it on its own
// goroutine (the skip limit, the dead letter) and calls Send again with the
// items the cursor has not passed yet. Send returns
// once every event it started has been reported, or earlier after a
// retryable failure or when ctx is done (ctx is the hard limit: cancelling
// it aborts in-flight deliveries). Events never reported count as not
// delivered. Send must not start a new delivery once ctx is done. Every
// report happens before Send returns: a report after that is ignored and
// logged (the batch's cursor is final once Send returned).
//
// The cycle moves the cursor over the longest prefix of evs whose events were
// delivered or failed permanently; everything after the first retryable
// failure is sent again next cycle (at-least-once). This rule lives in the
// cycle, in one place, for every sink.
type Sink interface {
	Send(ctx context.Context, evs []Event, report func(i int, err error) (more bool))
	Close() error
}

// Deliverer delivers one event at a time. OneByOne turns it into a Sink.
type Deliverer interface {
	Deliver(ctx context.Context, ev Event) error
	Close() error
}

// OneByOne adapts a Deliverer into a sequential Sink: one event at a time, in
// order, stopping at the first retryable failure or when ctx is done.
func OneByOne(d Deliverer) Sink { return oneByOne{d} }

type oneByOne struct{ d Deliverer }

func (o oneByOne) Send(ctx context.Context, evs []Event, report func(int, error) bool) {
	for i, ev := range evs {
		if ctx.Err() != nil {
			return
		}
		err := o.d.Deliver(ctx, ev)
		if !report(i, err) || !passable(err) {
			return
		}
	}
}

func (o oneByOne) Close() error { return o.d.Close() }

// Deferred is a Sink built at first use: for a target whose constructor
// connects (MQTT, Kafka) and that was down at start. Every Send builds the
// sink until that works; until then the batch's first event fails with the
// construction error, always retryable (a target that cannot be reached
// never makes an item skipped), so a daemon treats it as the outage it is:
// health endpoints up, /ready 503, retry, recovery.
func Deferred(build func(ctx context.Context) (Sink, error)) Sink {
	return &deferred{build: build}
}

// Releasable is s (nil: not built yet), built again by build after
// Release: a Deferred sink that a daemon of many connections lets go after
// each cycle, so an idle connection holds no connection to its target.
func Releasable(s Sink, build func(ctx context.Context) (Sink, error)) Sink {
	return &deferred{build: build, s: s}
}

// Release closes what a Releasable or Deferred sink built, if anything, and
// forgets it: the next Send builds it again. Other sinks are left as they
// are. It must not run concurrently with Send.
func Release(s Sink) error {
	d, ok := s.(*deferred)
	if !ok {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.s == nil {
		return nil
	}
	err := d.s.Close()
	d.s = nil
	return err
}

type deferred struct {
	mu    sync.Mutex
	build func(ctx context.Context) (Sink, error)
	s     Sink
}

func (d *deferred) sink(ctx context.Context) (Sink, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.s == nil {
		s, err := d.build(ctx)
		if err != nil {
			var de *DeliveryError
			if !errors.As(err, &de) || de.Permanent {
				err = Retryable("connect", err)
			}
			return nil, err
		}
		d.s = s
	}
	return d.s, nil
}

func (d *deferred) Send(ctx context.Context, evs []Event, report func(int, error) bool) {
	s, err := d.sink(ctx)
	if err != nil {
		if len(evs) > 0 {
			report(0, err)
		}
		return
	}
	s.Send(ctx, evs, report)
}

func (d *deferred) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.s == nil {
		return nil
	}
	return d.s.Close()
}
