package poll

import (
	"context"
	"errors"
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

// Backoff bounds: a failing cycle waits 5s, 10s, 20s ... capped at 300s;
// the first successful cycle resets it.
const (
	BackoffMin = 5 * time.Second
	BackoffMax = 300 * time.Second
)

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
	// Ready: polling works (the last poll succeeded, or another run holds
	// the lease and polls). ReadyError says why not.
	Ready      bool
	ReadyError string
	// Failures is the number of consecutive failed cycles (0 after success).
	Failures int
	// Wait is how long the daemon waits before the next cycle.
	Wait time.Duration
}

// Daemon repeats cycles: one poll interval after a cycle (the cycle itself
// re-polls full batches at once, up to MaxPollsPerCycle), the standby
// interval while an HA standby, and an exponential backoff after failures
// (poll, authentication, retryable delivery or state errors).
type Daemon struct {
	Cycle           *Cycle
	Interval        time.Duration
	StandbyInterval time.Duration
	Clock           Clock
	// OnCycle, if set, is called after every cycle (health, metrics, logs).
	OnCycle func(CycleReport)
}

// Run runs cycles until soft is done (graceful stop: the cycle in progress
// finishes its item in flight and persists); hard aborts in-flight work.
// It returns nil on a graceful stop.
func (d *Daemon) Run(soft, hard context.Context) error {
	clock := d.Clock
	if clock == nil {
		clock = RealClock{}
	}
	failures := 0
	ready, readyErr := false, "no poll yet"
	for soft.Err() == nil {
		sum, err := d.Cycle.RunUntil(soft, hard)
		rep := CycleReport{Summary: sum, Err: err}
		var ce *CycleError
		switch {
		case err != nil:
			failures++
			rep.Wait = BackoffFor(failures)
			switch {
			case errors.As(err, &ce) && ce.Kind == "delivery":
				ready, readyErr = true, "" // the poll itself worked
			case errors.Is(err, ErrAuth):
				ready, readyErr = false, ErrAuth.Error()
			default:
				ready, readyErr = false, err.Error()
			}
		case sum.LeaseHeld:
			failures = 0
			ready, readyErr = true, ""
			rep.Wait = d.Interval
		default:
			failures = 0
			ready, readyErr = true, ""
			rep.Wait = d.Interval
			if d.Cycle.HA != nil && sum.Role == "standby" {
				rep.Wait = d.StandbyInterval
			}
		}
		rep.Failures, rep.Ready, rep.ReadyError = failures, ready, readyErr
		if d.OnCycle != nil {
			d.OnCycle(rep)
		}
		if soft.Err() != nil || !clock.Sleep(soft, rep.Wait) {
			break
		}
	}
	return nil
}

// HeartbeatInterval is how often the daemon pings the ilert heartbeat.
const HeartbeatInterval = 30 * time.Second

// Heartbeat pings every Interval while Healthy reports true, so ilert alerts
// when the agent is stuck: no ping while polls fail. A failed ping is
// reported to OnPing and never stops anything.
type Heartbeat struct {
	Interval time.Duration
	Clock    Clock
	Healthy  func() bool
	Ping     func(ctx context.Context) error
	OnPing   func(err error)
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
	for clock.Sleep(ctx, interval) {
		if !h.Healthy() {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := h.Ping(pctx)
		cancel()
		if h.OnPing != nil {
			h.OnPing(err)
		}
	}
}
