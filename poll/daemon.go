package poll

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Clock is the time source of the Daemon (a fake one in tests).
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx is done; false when ctx ended it.
	Sleep(ctx context.Context, d time.Duration) bool
}

// RealClock is the wall clock.
type RealClock struct{}

// Now implements Clock.
func (RealClock) Now() time.Time { return time.Now() }

// Sleep implements Clock.
func (RealClock) Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Backoff bounds: a cycle whose poll failed (or whose state store failed)
// waits 5s, 10s, 20s ... capped at 300s; a cycle whose poll worked resets
// it. A retryable delivery failure is retried after the poll interval.
const (
	BackoffMin = 5 * time.Second
	BackoffMax = 300 * time.Second
)

// RetryAfterMax caps how long a target's Retry-After delays the next try.
const RetryAfterMax = 300 * time.Second

// BackoffFor returns the wait after the n-th consecutive failure (n >= 1).
func BackoffFor(n int) time.Duration {
	d := BackoffMin
	for i := 1; i < n && d < BackoffMax; i++ {
		d *= 2
	}
	if d > BackoffMax {
		d = BackoffMax
	}
	return d
}

// CycleReport is what the Daemon tells OnCycle after every cycle.
type CycleReport struct {
	Summary Summary
	Err     error
	// Ready: the cycle succeeded, poll and delivery (or another run holds
	// the lease). ReadyError says why not.
	Ready      bool
	ReadyError string
	// Polling: the poll worked (false when the poll, the lease or the
	// state store failed; true when only delivery failed).
	Polling bool
	// Failures is the number of consecutive failed cycles (0 after success).
	Failures int
	// Wait is how long the daemon waits before the next cycle.
	Wait time.Duration
	// RetryAfter: Wait is the target's Retry-After (longer than the poll
	// interval, at most RetryAfterMax).
	RetryAfter bool
}

// Daemon repeats cycles: one poll interval after a cycle (the cycle itself
// re-polls full batches at once, up to MaxPollsPerCycle), the standby
// interval while an HA standby, one poll interval after a retryable
// delivery failure (as the reference agent: a target that comes back gets
// its alerts within one interval), and an exponential backoff after failed
// polls (authentication included) and state errors.
type Daemon struct {
	Cycle *Cycle
	// Invocation is passed to every cycle (the daemon's lease owner, log).
	Invocation      Invocation
	Interval        time.Duration
	StandbyInterval time.Duration
	Clock           Clock
	// OnCycle, if set, is called after every cycle (health, metrics, logs).
	OnCycle func(CycleReport)
	// Slots, if set, bounds how many cycles of several daemons run at once
	// (a fleet's --max-parallel): each cycle holds one slot while it runs,
	// none while the daemon waits.
	Slots Slots
}

// Run runs cycles until soft is done (graceful stop: the cycle in progress
// finishes its item in flight and persists; with HA the last cycle's items
// no poll acknowledged yet are acknowledged, Cycle.Acknowledge); hard
// aborts in-flight work. It returns nil on a graceful stop.
func (d *Daemon) Run(soft, hard context.Context) error {
	clock := d.Clock
	if clock == nil {
		clock = RealClock{}
	}
	failures, backoffs := 0, 0 // failed cycles; failed polls and state errors
	var pending int64          // with HA: the last cycle's unacknowledged cursor
	defer func() { d.Cycle.Acknowledge(hard, d.Invocation, pending) }()
	for soft.Err() == nil {
		if !d.Slots.Take(soft) {
			break
		}
		sum, err := d.cycle(soft, hard)
		d.Slots.Put()
		if !sum.LeaseHeld {
			pending = sum.AckPending
		}
		rep := CycleReport{Summary: sum, Err: err, Ready: err == nil, Polling: true, Wait: d.Interval}
		switch {
		case err == nil:
			failures, backoffs = 0, 0
			if d.Cycle.HA != nil && sum.Role == "standby" {
				rep.Wait = d.StandbyInterval
			}
		case DeliveryFailed(err):
			// The poll worked, the target did not: retried after the poll
			// interval, not after a backoff.
			failures++
			backoffs = 0
			rep.ReadyError = err.Error()
			if ra := RetryAfterOf(err); ra > rep.Wait {
				// The target said when to come back (429/503 Retry-After).
				rep.Wait = min(ra, RetryAfterMax)
				rep.RetryAfter = true
				rep.ReadyError += fmt.Sprintf(" (the target asked to retry after %s: next try in %s)", ra, rep.Wait)
			}
		default:
			failures++
			backoffs++
			rep.Wait = BackoffFor(backoffs)
			rep.Polling = KindOf(err) == KindState && sum.Polls > 0
			rep.ReadyError = err.Error()
			if errors.Is(err, ErrAuth) {
				rep.ReadyError = ErrAuth.Error()
			}
		}
		rep.Failures = failures
		if d.OnCycle != nil {
			d.OnCycle(rep)
		}
		if soft.Err() != nil || !clock.Sleep(soft, rep.Wait) {
			break
		}
	}
	return nil
}

// cycle runs one cycle. With Slots (one of many daemons) it runs on a
// goroutine of its own, so that the daemon's goroutine, waiting most of the
// time, keeps a small stack: the stacks a cycle grows are held only by the
// cycles in flight.
func (d *Daemon) cycle(soft, hard context.Context) (sum Summary, err error) {
	if d.Slots == nil {
		return d.Cycle.RunUntil(soft, hard, d.Invocation)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sum, err = d.Cycle.RunUntil(soft, hard, d.Invocation)
	}()
	<-done
	return sum, err
}

// HeartbeatInterval is how often the daemon pings the ilert heartbeat.
const HeartbeatInterval = 30 * time.Second

// Heartbeat pings every Interval while Healthy reports true (the last cycle
// succeeded, poll and delivery), so ilert alerts when the agent is stuck:
// no ping while polls fail or the target refuses. A failed ping is reported
// to OnPing and never stops anything.
type Heartbeat struct {
	Interval time.Duration
	Clock    Clock
	Healthy  func() bool
	Ping     func(ctx context.Context) error
	OnPing   func(err error)
	// Start, if set: the first ping happens as soon as it is closed (after
	// the first successful cycle; the reference agent pings at start), then
	// every Interval.
	Start <-chan struct{}
}

// Run pings until ctx is done.
func (h *Heartbeat) Run(ctx context.Context) {
	clock := h.Clock
	if clock == nil {
		clock = RealClock{}
	}
	interval := h.Interval
	if interval <= 0 {
		interval = HeartbeatInterval
	}
	if h.Start != nil {
		select {
		case <-h.Start:
			h.ping(ctx)
		case <-ctx.Done():
			return
		}
	}
	for clock.Sleep(ctx, interval) {
		h.ping(ctx)
	}
}

func (h *Heartbeat) ping(ctx context.Context) {
	if !h.Healthy() {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := h.Ping(pctx)
	cancel()
	if h.OnPing != nil {
		h.OnPing(err)
	}
}
