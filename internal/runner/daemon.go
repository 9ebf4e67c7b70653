package runner

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/edgepoll/edgepoll/metrics"
	"github.com/edgepoll/edgepoll/poll"
)

// stopGrace bounds a graceful stop: after SIGTERM/SIGINT the item in flight
// may take this long before it is aborted (the cursor is persisted either
// way). Kubernetes' default termination grace period is 30s.
const stopGrace = 25 * time.Second

// loop runs every connection's daemon, each on its own schedule with its
// own backoff, HA role and heartbeat, their cycles --max-parallel at a
// time, until ctx is cancelled (the first SIGTERM or SIGINT); then each
// finishes its item in flight, persists and releases, and the process exits
// 0. The endpoints stay up until then: /health answers 503 from the signal
// on, /metrics keeps answering during the drain; /ready is 204 only while
// every connection is ready.
func (r *Runner) loop(ctx context.Context) int {
	log := r.opts.Log
	fm := r.metrics(true)
	hard, cancelHard := gracefulStop(ctx, log, fm.Stopping)
	defer cancelHard()
	stopServing, ok := serve(r.opts, fm.Handler())
	if !ok {
		return ExitFailed
	}
	var wg sync.WaitGroup
	running := r.startAll(ctx, hard, fm, &wg)
	if running == 0 {
		stopServing()
		log.Error("no connection can run")
		return ExitFailed
	}
	if r.pol.named {
		log.Info("edgepoll daemon started", "connections", len(r.apps), "running", running, "max_parallel", r.opts.MaxParallel)
	}
	wg.Wait()
	if r.pol.named {
		log.Info("stopped: cursors persisted, leases released")
	} else {
		log.Info("stopped: cursor persisted, lease released")
	}
	stopServing()
	return ExitOK
}

// startAll starts the daemon of every connection that can run (a
// connection whose set-up failed retries it first) and says how many.
func (r *Runner) startAll(ctx, hard context.Context, fm *metrics.Fleet, wg *sync.WaitGroup) (running int) {
	slots := poll.NewSlots(r.opts.MaxParallel)
	// start runs connection i's daemon; false if it cannot run.
	start := func(i int, a *app) bool {
		// A target that is down is a deferred sink (retried at delivery);
		// an error here is a configuration error of this connection.
		if err := a.openSink(ctx, r.opts.Stdout, true, r.opts.IsConfigError); err != nil {
			fm.Health[i].SetReady(false, false, err.Error())
			a.log.Error("connection cannot run", "err", err)
			return false
		}
		d := a.daemon(ctx, r.invocation(i), fm.Metrics[i], fm.Health[i])
		d.Slots = slots
		if r.pol.named {
			a.releaseAfterCycles(d, r.opts.Stdout)
			a.log.Info("connection started", a.daemonAttrs()...)
		} else {
			a.log.Info("edgepoll daemon started", a.daemonAttrs()...)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = d.Run(ctx, hard)
		}()
		return true
	}
	for i, a := range r.apps {
		if a != nil {
			if start(i, a) {
				running++
			}
			continue
		}
		// Its key or store could not be had: an outage like any other,
		// retried with the daemon's backoff; a configuration error is not.
		if r.opts.IsConfigError(r.broken[i]) {
			fm.Health[i].SetReady(false, false, r.broken[i].Error())
			r.opts.Log.Error("connection cannot run", "connection", r.conns[i].Name, "err", r.broken[i])
			continue
		}
		running++
		wg.Add(1)
		go func() {
			defer wg.Done()
			if a := r.retrySetup(ctx, i, fm.Health[i]); a != nil {
				start(i, a)
			}
		}()
	}
	return running
}

// gracefulStop: when ctx ends (the first signal), stopping is called and
// the returned hard context ends stopGrace later, aborting what is still in
// flight; cancel ends it at once.
func gracefulStop(ctx context.Context, log *slog.Logger, stopping func()) (hard context.Context, cancel context.CancelFunc) {
	hard, cancel = context.WithCancel(context.Background())
	go func() {
		select {
		case <-ctx.Done():
		case <-hard.Done():
			return
		}
		stopping()
		t := time.NewTimer(stopGrace)
		defer t.Stop()
		select {
		case <-t.C:
			log.Warn("graceful stop took too long: aborting the delivery in flight", "grace", stopGrace)
			cancel()
		case <-hard.Done():
		}
	}()
	return hard, cancel
}

// serve serves the daemon's endpoints with -p until the returned stop is
// called (after the graceful stop: they answer throughout it); without -p
// it does nothing.
func serve(opts Options, handler http.Handler) (stop func(), ok bool) {
	if opts.Port == 0 {
		return func() {}, true
	}
	serveCtx, stopServing := context.WithCancel(context.Background())
	done, err := metrics.Serve(serveCtx, opts.ListenAddr, opts.Port, handler, opts.Log)
	if err != nil {
		stopServing()
		opts.Log.Error("cannot serve the health endpoints", "port", opts.Port, "err", err)
		return nil, false
	}
	return func() { stopServing(); <-done }, true
}

// releaseAfterCycles lets a's sink go after each of d's cycles and builds
// it again when a cycle has something to deliver: an idle connection of a
// file holds no connection to its target (a single connection keeps its).
func (a *app) releaseAfterCycles(d *poll.Daemon, stdout io.Writer) {
	c, log := a.conn, a.log
	a.sink = poll.Releasable(a.sink, func(ctx context.Context) (poll.Sink, error) { return c.NewSink(ctx, log, stdout) })
	a.cycle.Sink = a.sink
	onCycle := d.OnCycle
	d.OnCycle = func(rep poll.CycleReport) {
		onCycle(rep)
		if err := poll.Release(a.sink); err != nil {
			a.log.Warn("closing the sink", "err", err)
		}
	}
}

func (a *app) daemonAttrs() []any {
	attrs := []any{"mode", a.conn.Mode, "interval", a.conn.PollInterval}
	if a.cycle.HA != nil {
		attrs = append(attrs, "cluster", a.cycle.HA.ClusterID, "instance", a.cycle.HA.InstanceID, "standby_interval", a.conn.StandbyInterval)
	}
	return attrs
}

// daemon wires the connection's daemon: its cycles report to m (if any) and health
// and are logged; its heartbeat (-b), if any, pings from the first
// successful cycle on while health is ready, until ctx ends.
func (a *app) daemon(ctx context.Context, inv poll.Invocation, m *metrics.Metrics, health *metrics.Health) *poll.Daemon {
	obs := poll.NoObserver // no metrics without -p
	if m != nil {
		obs = m
	}
	a.cycle.Observer = health.Observe(obs) // /ready follows the cycle in progress
	firstSuccess := make(chan struct{})
	var firstOnce sync.Once
	if a.conn.Heartbeat != "" {
		hb := &poll.Heartbeat{
			Start:   firstSuccess,
			Healthy: health.Ready,
			Ping:    func(ctx context.Context) error { return a.client.Heartbeat(ctx, a.conn.Heartbeat) },
			OnPing: func(err error) {
				if m != nil {
					m.Heartbeat(err)
				}
				if err != nil {
					a.log.Warn("heartbeat ping failed", "err", err)
				}
			},
		}
		go hb.Run(ctx)
	}
	return &poll.Daemon{
		Cycle:           a.cycle,
		Invocation:      inv,
		Interval:        a.conn.PollInterval,
		StandbyInterval: a.conn.StandbyInterval,
		OnCycle: func(rep poll.CycleReport) {
			if m != nil {
				m.Cycle(rep)
			}
			health.SetReady(rep.Ready, rep.Polling, rep.ReadyError)
			if rep.Ready {
				firstOnce.Do(func() { close(firstSuccess) })
			}
			s := rep.Summary
			attrs := []any{"polls", s.Polls, "polled", s.Polled, "delivered", s.Delivered, "skipped", s.Skipped, "cursor", s.Cursor}
			switch {
			case rep.RetryAfter:
				a.log.Warn("cycle failed; the target asked to retry later (Retry-After)", append(attrs, "err", rep.Err, "failures", rep.Failures, "retry_in", rep.Wait)...)
			case poll.DeliveryFailed(rep.Err):
				a.log.Warn("cycle failed; retrying after the poll interval", append(attrs, "err", rep.Err, "failures", rep.Failures, "retry_in", rep.Wait)...)
			case rep.Err != nil:
				a.log.Warn("cycle failed; backing off", append(attrs, "err", rep.Err, "failures", rep.Failures, "retry_in", rep.Wait)...)
			case s.Polled > 0:
				a.log.Info("cycle done", attrs...)
			default:
				a.log.Debug("cycle done", append(attrs, "lease_held", s.LeaseHeld, "role", s.Role)...)
			}
		},
	}
}

// retrySetup retries setting connection i up after the daemon's backoff
// (5s, 10s ... 300s), its /ready naming why meanwhile, until it succeeds
// (its app) or ctx ends (nil). A configuration error is not retried.
func (r *Runner) retrySetup(ctx context.Context, i int, health *metrics.Health) *app {
	name, log := r.conns[i].Name, r.opts.Log
	err := r.broken[i]
	for n := 1; ; n++ {
		health.SetReady(false, false, err.Error())
		if r.opts.IsConfigError(err) {
			log.Error("connection cannot run", "connection", name, "err", err)
			return nil
		}
		wait := poll.BackoffFor(n)
		log.Warn("connection setup failed; retrying", "connection", name, "err", err, "failures", n, "retry_in", wait)
		if !(poll.RealClock{}).Sleep(ctx, wait) {
			return nil
		}
		var a *app
		if a, err = r.setUp(ctx, i, nil); err == nil {
			log.Info("connection set up", "connection", name, "failures", n)
			r.apps[i] = a
			return a
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}
