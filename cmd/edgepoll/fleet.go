package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/edgepoll/edgepoll/internal/syncio"
	"github.com/edgepoll/edgepoll/metrics"
	"github.com/edgepoll/edgepoll/poll"
)

// fleet is a --config edgepoll: one app per connection, the stores shared by
// the connections that name the same --state.
type fleet struct {
	cli    *CLI
	log    *slog.Logger
	stdout io.Writer
	owner  string
	apps   []*app
	// broken[i] is why connection i could not be set up at start (its key
	// or store could not be had); the others run regardless, and a daemon
	// retries it (retrySetup).
	broken []error
	mu     sync.Mutex // guards stores: a daemon sets connections up concurrently
	stores map[string]poll.Store
}

// buildFleet prepares every connection of the --config file. A connection
// whose key or store cannot be had fails on its own when it runs; sinks are
// built by each connection's worker when its cycle starts.
func buildFleet(ctx context.Context, cli *CLI, owner string, log *slog.Logger, stdout io.Writer) *fleet {
	f := &fleet{cli: cli, log: log, stdout: syncio.NewWriter(stdout) /* several stdout sinks: whole lines, never interleaved */, owner: owner, stores: map[string]poll.Store{}}
	f.apps = make([]*app, len(cli.fleet))
	f.broken = make([]error, len(cli.fleet))
	// A store that cannot be opened is tried once at start, not once per
	// connection naming it.
	storeErr := map[string]error{}
	for i := range cli.fleet {
		f.apps[i], f.broken[i] = f.setup(ctx, i, storeErr)
	}
	return f
}

// setup builds connection i: its key, its store (opened once for the
// connections naming the same --state) and its app. With storeErr, a store
// that failed to open for an earlier connection is not tried again.
func (f *fleet) setup(ctx context.Context, i int, storeErr map[string]error) (*app, error) {
	fc := f.cli.fleet[i]
	key := fc.Key
	if key == "" {
		kctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		k, err := fetchConnectorKey(kctx, fc.CLI)
		cancel()
		if err != nil {
			return nil, err
		}
		key = k
	}
	store, err := f.store(ctx, fc.CLI, storeErr)
	if err != nil {
		return nil, err
	}
	a, err := newApp(ctx, fc.CLI, key, f.owner, f.log.With("connection", fc.Name), store)
	if err != nil {
		return nil, err
	}
	a.sharedStore = true
	return a, nil
}

// store returns the open store of cli's --state, opening it if need be.
func (f *fleet) store(ctx context.Context, cli *CLI, storeErr map[string]error) (poll.Store, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.stores[cli.State]; ok {
		return s, nil
	}
	if err := storeErr[cli.State]; err != nil {
		return nil, err
	}
	s, err := openStore(ctx, cli, f.log)
	if err != nil {
		if storeErr != nil {
			storeErr[cli.State] = err
		}
		return nil, err
	}
	f.stores[cli.State] = s
	return s, nil
}

// retrySetup retries setting connection i up after the daemon's backoff
// (5s, 10s ... 300s), its /ready naming why meanwhile, until it succeeds
// (its app) or ctx ends (nil). A configuration error is not retried.
func (f *fleet) retrySetup(ctx context.Context, i int, health *metrics.Health) *app {
	name := f.cli.fleet[i].Name
	err := f.broken[i]
	for n := 1; ; n++ {
		health.SetReady(false, false, err.Error())
		if isUsageError(err) {
			f.log.Error("connection cannot run", "connection", name, "err", err)
			return nil
		}
		wait := poll.BackoffFor(n)
		f.log.Warn("connection setup failed; retrying", "connection", name, "err", err, "failures", n, "retry_in", wait)
		if !(poll.RealClock{}).Sleep(ctx, wait) {
			return nil
		}
		var a *app
		if a, err = f.setup(ctx, i, nil); err == nil {
			f.log.Info("connection set up", "connection", name, "failures", n)
			f.apps[i] = a
			return a
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

func isUsageError(err error) bool {
	var ue *UsageError
	return errors.As(err, &ue)
}

func (f *fleet) close() {
	for _, a := range f.apps {
		if a != nil {
			a.close()
		}
	}
	for state, s := range f.stores {
		if err := s.Close(); err != nil {
			f.log.Warn("closing the state store", "state", state, "err", err)
		}
	}
}

// members are the connections as the poll fleet runner sees them.
func (f *fleet) members() []poll.FleetMember {
	ms := make([]poll.FleetMember, len(f.apps))
	for i, a := range f.apps {
		fc := f.cli.fleet[i]
		ms[i].Name = fc.Name
		if a == nil {
			err := f.broken[i]
			ms[i].Open = func(context.Context) error { return err }
			continue
		}
		ms[i].Cycle, ms[i].Invocation = a.cycle, a.invocation()
		ms[i].Open = func(ctx context.Context) error { return a.openSink(ctx, f.stdout) }
	}
	return ms
}

// once runs one cycle for every connection, --max-parallel at a time, and
// exits 0 when every connection succeeded or its lease was held elsewhere,
// 1 when any failed. The summary line names each connection's outcome.
func (f *fleet) once(ctx context.Context) int {
	members := f.members()
	codes := make([]int, len(members))
	var fm *metrics.Fleet
	if f.cli.MetricsFile != "" {
		fm = f.metrics()
		for i, a := range f.apps {
			if a != nil {
				a.cycle.Observer = fm.Metrics[i]
			}
		}
		defer func() {
			if err := fm.WriteTextfile(f.cli.MetricsFile); err != nil {
				f.log.Warn("writing the metrics file failed", "path", f.cli.MetricsFile, "err", err)
			}
		}()
	}
	results := poll.RunFleetOnce(ctx, context.Background(), members, f.cli.MaxParallel, func(i int, r poll.FleetResult) {
		if a := f.apps[i]; a != nil {
			var m *metrics.Metrics
			if fm != nil {
				m = fm.Metrics[i]
			}
			codes[i] = a.finishOnce(r.Summary, r.Err, r.Took, m)
			return
		}
		f.log.Error("cycle failed", "connection", r.Name, "err", r.Err)
		codes[i] = exitFailed
	})
	var outcomes []string
	failed := 0
	for i, r := range results {
		outcome := "ok"
		switch {
		case codes[i] != exitOK:
			outcome = "failed"
			failed++
		case r.Summary.LeaseHeld:
			outcome = "lease-held"
		case r.Summary.Stopped:
			outcome = "stopped"
		}
		outcomes = append(outcomes, r.Name+"="+outcome)
	}
	attrs := []any{"connections", len(results), "failed", failed, "outcomes", strings.Join(outcomes, " ")}
	if failed > 0 {
		f.log.Error("run done: some connections failed", attrs...)
		return exitFailed
	}
	f.log.Info("run done", attrs...)
	return exitOK
}

// metrics are the connections' metrics, each labelled with its name.
func (f *fleet) metrics() *metrics.Fleet {
	names := make([]string, len(f.cli.fleet))
	modes := make([]string, len(f.cli.fleet))
	for i, fc := range f.cli.fleet {
		names[i], modes[i] = fc.Name, fc.CLI.Mode
	}
	return metrics.NewFleet(names, modes)
}

// loop runs every connection's daemon, each on its own schedule with its own
// backoff, HA role and heartbeat, their cycles --max-parallel at a time,
// until the first signal; then each finishes its item in flight and
// persists, and the process exits 0. /ready is 204 only while every
// connection is ready.
func (f *fleet) loop(ctx context.Context) int {
	fm := f.metrics()
	hard, cancelHard := gracefulStop(ctx, f.log, fm.Stopping)
	defer cancelHard()
	stopServing, ok := serve(f.cli, fm.Handler(), f.log)
	if !ok {
		return exitFailed
	}
	slots := poll.NewSlots(f.cli.MaxParallel)
	var wg sync.WaitGroup
	// start runs connection i's daemon; false if it cannot run.
	start := func(i int, a *app) bool {
		// A target that is down is a deferred sink (retried at delivery);
		// an error here is a configuration error of this connection.
		if err := a.openSink(ctx, f.stdout); err != nil {
			fm.Health[i].SetReady(false, false, err.Error())
			a.log.Error("connection cannot run", "err", err)
			return false
		}
		d := a.daemon(ctx, fm.Metrics[i], fm.Health[i])
		d.Slots = slots
		a.log.Info("connection started", a.daemonAttrs()...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = d.Run(ctx, hard)
		}()
		return true
	}
	running := 0
	for i, a := range f.apps {
		if a != nil {
			if start(i, a) {
				running++
			}
			continue
		}
		// Its key or store could not be had: an outage like any other,
		// retried with the daemon's backoff; a configuration error is not.
		if isUsageError(f.broken[i]) {
			fm.Health[i].SetReady(false, false, f.broken[i].Error())
			f.log.Error("connection cannot run", "connection", f.cli.fleet[i].Name, "err", f.broken[i])
			continue
		}
		running++
		wg.Add(1)
		go func() {
			defer wg.Done()
			if a := f.retrySetup(ctx, i, fm.Health[i]); a != nil {
				start(i, a)
			}
		}()
	}
	if running == 0 {
		stopServing()
		f.log.Error("no connection can run")
		return exitFailed
	}
	f.log.Info("edgepoll daemon started", "connections", len(f.apps), "running", running, "max_parallel", f.cli.MaxParallel)
	wg.Wait()
	f.log.Info("stopped: cursors persisted, leases released")
	stopServing()
	return exitOK
}
