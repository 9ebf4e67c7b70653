package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/edgepoll/edgepoll/internal/syncio"
	"github.com/edgepoll/edgepoll/metrics"
	"github.com/edgepoll/edgepoll/poll"
)

// runner runs the connections of one edgepoll process, one code path for
// one-shot, --loop and Lambda: the connections of a --config file, or the
// single connection given by flags, which is a --config of one connection
// internally. A single connection keeps its own output (single): its set-up
// errors end the process, its logs and metrics carry no connection name and
// no run summary is logged.
type runner struct {
	cli    *CLI
	log    *slog.Logger
	stdout io.Writer
	owner  string // names this run in leases (a run id)
	single bool
	conns  []*fleetConn
	apps   []*app
	// broken[i] is why connection i could not be set up at start (its key
	// or store could not be had); the others run regardless, and a daemon
	// retries it (retrySetup).
	broken []error
	mu     sync.Mutex // guards stores and deads: connections are set up concurrently
	stores map[string]poll.Store
	deads  map[string]poll.DeadLetter // by --dead-letter and --state
	// transport carries every connection's requests to the ilert API: one
	// pool of connections, as many idle as --max-parallel cycles use.
	transport *http.Transport
}

// newRunner is the runner of cli's connections (its --config file, else the
// connection its flags give).
func newRunner(cli *CLI, owner string, log *slog.Logger, stdout io.Writer) *runner {
	r := &runner{cli: cli, log: log, stdout: stdout, owner: owner, conns: cli.fleet,
		stores: map[string]poll.Store{}, deads: map[string]poll.DeadLetter{},
		transport: poll.NewTransport(0, 0, max(2, cli.MaxParallel))}
	if r.conns == nil {
		r.single, r.conns = true, []*fleetConn{{CLI: cli}}
	} else {
		r.stdout = syncio.NewWriter(stdout) // several stdout sinks: whole lines, never interleaved
	}
	r.apps = make([]*app, len(r.conns))
	r.broken = make([]error, len(r.conns))
	return r
}

// keyError is a connection's connector key that could not be had.
type keyError struct{ error }

func (e keyError) Unwrap() error { return e.error }

// setupAll prepares every connection (a daemon's, a Lambda function's; a
// one-shot run of a file sets each up when its cycle starts). A single
// connection is set up whole (its sink too) and its error returned: it
// ends the process. A connection of a file whose key or store cannot be
// had fails on its own when it runs; its sink is built by its worker when
// its cycle starts.
func (r *runner) setupAll(ctx context.Context) error {
	if r.single {
		a, err := r.setup(ctx, 0, nil)
		if err == nil {
			err = a.openSink(ctx, r.stdout, r.cli.Loop)
		}
		r.apps[0] = a
		return err
	}
	// A store that cannot be opened is tried once at start, not once per
	// connection naming it.
	storeErr := map[string]error{}
	for i := range r.conns {
		r.apps[i], r.broken[i] = r.setup(ctx, i, storeErr)
	}
	return nil
}

// connLog is connection i's logger: for a file's connections, with its
// name.
func (r *runner) connLog(i int) *slog.Logger {
	if r.single {
		return r.log
	}
	return r.log.With("connection", r.conns[i].Name)
}

// setup builds connection i: its key, its store and dead letter (opened
// once for the connections naming the same --state and --dead-letter) and
// its app. With storeErr (guarded by mu), a store that failed to open for
// an earlier connection is not tried again.
func (r *runner) setup(ctx context.Context, i int, storeErr map[string]error) (*app, error) {
	cli := r.conns[i].CLI
	key, err := connectorKey(ctx, cli)
	if err != nil {
		return nil, keyError{err}
	}
	if !slices.Contains(cli.secrets, key) {
		cli.secrets = append(slices.Clip(cli.secrets), key)
	}
	store, err := r.store(ctx, cli, storeErr)
	if err != nil {
		return nil, err
	}
	dead, err := r.deadLetter(ctx, cli)
	if err != nil {
		return nil, err
	}
	log := r.connLog(i)
	a, err := newApp(cli, key, r.owner, log, store, dead, r.transport)
	if err != nil {
		return nil, err
	}
	// The reference agent's cursor (--ilagent-db, ./ilagent.db3), while the
	// connection has none: not inside Lambda. A file that cannot be read
	// fails the connection's set-up, naming it.
	if !inLambda() {
		if err := seedFromIlagent(ctx, log, cli, store, key); err != nil {
			a.close()
			return nil, err
		}
	}
	return a, nil
}

// deadLetter returns the open dead letter of cli's --dead-letter (nil for
// none), opening it if need be.
func (r *runner) deadLetter(ctx context.Context, cli *CLI) (poll.DeadLetter, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := cli.DeadLetter + "\x00" + cli.State
	if d, ok := r.deads[id]; ok {
		return d, nil
	}
	dl, err := openDeadLetterStore(ctx, cli)
	if err != nil {
		return nil, fmt.Errorf("--dead-letter: %w", err)
	}
	var d poll.DeadLetter
	if dl != nil {
		d = dl
	}
	r.deads[id] = d
	return d, nil
}

// store returns the open store of cli's --state, opening it if need be.
func (r *runner) store(ctx context.Context, cli *CLI, storeErr map[string]error) (poll.Store, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.stores[cli.State]; ok {
		return s, nil
	}
	if err := storeErr[cli.State]; err != nil {
		return nil, err
	}
	s, err := openStore(ctx, cli, r.log)
	if err != nil {
		if storeErr != nil {
			storeErr[cli.State] = err
		}
		return nil, err
	}
	r.stores[cli.State] = s
	return s, nil
}

// retrySetup retries setting connection i up after the daemon's backoff
// (5s, 10s ... 300s), its /ready naming why meanwhile, until it succeeds
// (its app) or ctx ends (nil). A configuration error is not retried.
func (r *runner) retrySetup(ctx context.Context, i int, health *metrics.Health) *app {
	name := r.conns[i].Name
	err := r.broken[i]
	for n := 1; ; n++ {
		health.SetReady(false, false, err.Error())
		if isUsageError(err) {
			r.log.Error("connection cannot run", "connection", name, "err", err)
			return nil
		}
		wait := poll.BackoffFor(n)
		r.log.Warn("connection setup failed; retrying", "connection", name, "err", err, "failures", n, "retry_in", wait)
		if !(poll.RealClock{}).Sleep(ctx, wait) {
			return nil
		}
		var a *app
		if a, err = r.setup(ctx, i, nil); err == nil {
			r.log.Info("connection set up", "connection", name, "failures", n)
			r.apps[i] = a
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

func (r *runner) close() {
	for _, a := range r.apps {
		if a != nil {
			a.close()
		}
	}
	for state, s := range r.stores {
		if err := s.Close(); err != nil {
			r.log.Warn("closing the state store", "state", state, "err", err)
		}
	}
	for _, d := range r.deads {
		if d != nil {
			if err := d.Close(); err != nil {
				r.log.Warn("closing the dead letter", "err", err)
			}
		}
	}
	r.transport.CloseIdleConnections()
}

// members are the connections as the poll fleet runner sees them; a
// connection's sink is built in its worker right before its first cycle.
func (r *runner) members() []poll.FleetMember {
	ms := make([]poll.FleetMember, len(r.apps))
	for i, a := range r.apps {
		ms[i].Name = r.conns[i].Name
		if a == nil {
			err := r.broken[i]
			ms[i].Open = func(context.Context) (*poll.Cycle, error) { return nil, err }
			continue
		}
		ms[i].Cycle, ms[i].Invocation = a.cycle, a.invocation()
		ms[i].Open = func(ctx context.Context) (*poll.Cycle, error) { return nil, a.openSink(ctx, r.stdout, r.cli.Loop) }
	}
	return ms
}

// lazyMembers are the connections of a one-shot run of a file: each is set
// up in its worker when its cycle starts (observed by fm, if set) and let
// go when it ended (once), so what the run holds follows --max-parallel,
// not the number of connections.
func (r *runner) lazyMembers(fm *metrics.Fleet) []poll.FleetMember {
	storeErr := map[string]error{}
	ms := make([]poll.FleetMember, len(r.conns))
	for i, fc := range r.conns {
		ms[i].Name, ms[i].Invocation = fc.Name, poll.Invocation{Owner: r.owner, Log: r.connLog(i)}
		ms[i].Open = func(ctx context.Context) (*poll.Cycle, error) {
			a, err := r.setup(ctx, i, storeErr)
			if err != nil {
				r.broken[i] = err
				return nil, err
			}
			r.apps[i] = a
			if fm != nil {
				a.cycle.Observer = fm.Metrics[i]
			}
			a.warnRandomInstance()
			return a.cycle, a.openSink(ctx, r.stdout, false)
		}
	}
	return ms
}

// metrics are the connections' metrics: for a file's connections each
// labelled with its name. A daemon without -p serves none: it keeps only
// the connections' health.
func (r *runner) metrics(process bool) *metrics.Fleet {
	if process && r.cli.Port == 0 {
		return metrics.HealthOnly(len(r.conns))
	}
	if r.single {
		return metrics.NewOne(r.cli.Mode, process)
	}
	names := make([]string, len(r.conns))
	modes := make([]string, len(r.conns))
	for i, fc := range r.conns {
		names[i], modes[i] = fc.Name, fc.CLI.Mode
	}
	return metrics.NewFleet(names, modes)
}

// once runs one cycle for every connection, --max-parallel at a time, and
// exits 0 when every connection succeeded or its lease was held elsewhere,
// 1 when any failed. For a file's connections the summary line names each
// connection's outcome.
func (r *runner) once(ctx context.Context) int {
	var fm *metrics.Fleet
	if r.cli.MetricsFile != "" {
		fm = r.metrics(false)
	}
	members := r.lazyMembers(fm)
	if r.single { // set up already (setupAll)
		members = r.members()
		if fm != nil {
			r.apps[0].cycle.Observer = fm.Metrics[0]
		}
		r.apps[0].warnRandomInstance()
	}
	codes := make([]int, len(members))
	results := poll.RunFleetOnce(ctx, context.Background(), members, r.cli.MaxParallel, func(i int, res poll.FleetResult) {
		a := r.apps[i]
		if a == nil {
			r.log.Error("cycle failed", "connection", res.Name, "err", res.Err)
			codes[i] = exitFailed
			return
		}
		var m *metrics.Metrics
		if fm != nil {
			m = fm.Metrics[i]
		}
		codes[i] = a.finishOnce(res.Summary, res.Err, res.Took, m)
		if !r.single {
			a.close()
			r.apps[i] = nil
		}
	})
	if fm != nil {
		if err := fm.WriteTextfile(r.cli.MetricsFile); err != nil {
			r.log.Warn("writing the metrics file failed", "path", r.cli.MetricsFile, "err", err)
		}
	}
	if r.single {
		return codes[0]
	}
	return r.summary(results, codes)
}

// summary logs the outcome of a file's connections after a one-shot run
// and returns its exit code.
func (r *runner) summary(results []poll.FleetResult, codes []int) int {
	var outcomes []string
	failed := 0
	for i, res := range results {
		outcome := "ok"
		switch {
		case codes[i] != exitOK:
			outcome = "failed"
			failed++
		case res.Summary.LeaseHeld:
			outcome = "lease-held"
		case res.Summary.Stopped:
			outcome = "stopped"
		}
		outcomes = append(outcomes, res.Name+"="+outcome)
	}
	attrs := []any{"connections", len(results), "failed", failed, "outcomes", strings.Join(outcomes, " ")}
	if failed > 0 {
		r.log.Error("run done: some connections failed", attrs...)
		return exitFailed
	}
	r.log.Info("run done", attrs...)
	return exitOK
}
