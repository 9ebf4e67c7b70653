// Package runner runs the connections of one edgepoll process, one code
// path each for a one-shot run (Run), a --loop daemon (Run with Loop) and
// AWS Lambda invocations (ServeLambda): the connections of a --config
// file, or the single connection given by flags, which is a fleet of one.
// How the single connection's output differs is a policy set once, when the
// runner is built (New or NewOne), not a question asked along the way.
//
// cmd/edgepoll turns flags into Conns (their settings, and funcs that
// build the key, store, dead letter and target); the runner sets them up,
// shares one store per --state, one dead letter per --dead-letter and one
// pool of API connections among them, and drives poll's cycles, daemons
// and fleet.
package runner

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/edgepoll/edgepoll/internal/syncio"
	"github.com/edgepoll/edgepoll/metrics"
	"github.com/edgepoll/edgepoll/poll"
)

// Exit codes of a run (cli.md): 0 every connection ok (or its lease held
// elsewhere, or a graceful stop), 1 a connection failed.
const (
	ExitOK     = 0
	ExitFailed = 1
)

// Options are the process's settings, the same for every connection.
type Options struct {
	// Owner names this run in leases (RunID); inside Lambda each
	// invocation's request id does.
	Owner  string
	Log    *slog.Logger
	Stdout io.Writer
	// MaxParallel is how many connections run a cycle at the same time.
	MaxParallel int
	// Loop runs daemons (--loop); Port and ListenAddr serve their
	// /health, /ready and /metrics (0: none).
	Loop       bool
	Port       int
	ListenAddr string
	// MetricsFile is a one-shot run's Prometheus textfile ("": none).
	MetricsFile string
	// Lambda: the runner serves AWS Lambda invocations (ServeLambda).
	Lambda bool
	// IsConfigError tells a configuration error (exit 2): never retried,
	// never a deferred target.
	IsConfigError func(error) bool
}

// policy is how the runner's set-up and output follow from where its
// connections came from.
type policy struct {
	// setUpFirst: the connection is set up whole (its target too) before
	// it runs, and an error doing so ends the run. Otherwise each
	// connection that cannot be set up fails on its own (a daemon retries
	// it, a Lambda function at its next invocation), a one-shot run sets
	// each up in its worker and lets it go after its cycle, a Lambda
	// function sets each up in its worker at its first cycle, and an idle
	// daemon connection holds no target connection.
	setUpFirst bool
	// named: logs carry each connection's name and metrics its label; a
	// one-shot run ends with a summary line, a Lambda invocation returns
	// every connection's result.
	named bool
}

// Runner runs the connections of one process.
type Runner struct {
	opts  Options
	pol   policy
	conns []*Conn
	apps  []*app
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

// New is the runner of a --config file's connections.
func New(conns []*Conn, opts Options) *Runner {
	opts.Stdout = syncio.NewWriter(opts.Stdout) // several stdout sinks: whole lines, never interleaved
	return newRunner(conns, opts, policy{named: true})
}

// NewOne is the runner of the single connection given by flags: set up
// before it runs (an error ends the run), its logs and metrics without a
// connection name, no run summary.
func NewOne(c *Conn, opts Options) *Runner {
	return newRunner([]*Conn{c}, opts, policy{setUpFirst: true})
}

func newRunner(conns []*Conn, opts Options, pol policy) *Runner {
	return &Runner{opts: opts, pol: pol, conns: conns,
		apps: make([]*app, len(conns)), broken: make([]error, len(conns)),
		stores: map[string]poll.Store{}, deads: map[string]poll.DeadLetter{},
		transport: poll.NewTransport(0, 0, max(2, opts.MaxParallel))}
}

// Run runs every connection: one cycle each (exit 0 when every one
// succeeded or found its lease held elsewhere, 1 when any failed), or with
// Loop their daemons until ctx ends (then 0). err is the set-up error that
// ends the run of the single connection (NewOne).
func (r *Runner) Run(ctx context.Context) (code int, err error) {
	if r.pol.setUpFirst || r.opts.Loop { // a one-shot run of a file sets each connection up when its cycle starts
		if err := r.setUpAll(ctx); err != nil {
			return ExitFailed, err
		}
	}
	if r.opts.Loop {
		return r.loop(ctx), nil
	}
	return r.once(ctx), nil
}

// keyError is a connection's connector key that could not be had.
type keyError struct{ error }

func (e keyError) Unwrap() error { return e.error }

// setUpAll prepares every connection (a daemon's, a Lambda function's; a
// one-shot run of a file sets each up when its cycle starts). With
// setUpFirst the connection is set up whole (its sink too) and its error
// returned. Otherwise a connection whose key or store cannot be had fails
// on its own when it runs, and its sink is built by its worker when its
// cycle starts.
func (r *Runner) setUpAll(ctx context.Context) error {
	if r.pol.setUpFirst {
		a, err := r.setUp(ctx, 0, nil)
		if err == nil {
			err = a.openSink(ctx, r.opts.Stdout, r.deferOutage(), r.opts.IsConfigError)
		}
		r.apps[0] = a
		return err
	}
	// A store that cannot be opened is tried once at start, not once per
	// connection naming it.
	storeErr := map[string]error{}
	for i := range r.conns {
		r.apps[i], r.broken[i] = r.setUp(ctx, i, storeErr)
	}
	return nil
}

// deferOutage: a target that is down is a deferred sink, retried at
// delivery, for a daemon and inside Lambda; a one-shot run fails fast.
func (r *Runner) deferOutage() bool { return r.opts.Loop || r.opts.Lambda }

// connLog is connection i's logger: with its name when named.
func (r *Runner) connLog(log *slog.Logger, i int) *slog.Logger {
	if !r.pol.named {
		return log
	}
	return log.With("connection", r.conns[i].Name)
}

// invocation is what this process passes to each of connection i's cycles
// outside Lambda: its run id as the lease owner, its logger, and for a
// one-shot run the final poll that acknowledges its last items with HA (a
// daemon's next cycle, or its stop, acknowledges them).
func (r *Runner) invocation(i int) poll.Invocation {
	return poll.Invocation{Owner: r.opts.Owner, Log: r.connLog(r.opts.Log, i), FinalAck: !r.opts.Loop}
}

// setUp builds connection i: its key, its store and dead letter (opened
// once for the connections naming the same --state and --dead-letter) and
// its app. With storeErr (guarded by mu), a store that failed to open for
// an earlier connection is not tried again.
func (r *Runner) setUp(ctx context.Context, i int, storeErr map[string]error) (*app, error) {
	c := r.conns[i]
	key, err := c.Key(ctx)
	if err != nil {
		return nil, keyError{err}
	}
	store, err := r.store(ctx, c, storeErr)
	if err != nil {
		return nil, err
	}
	dead, err := r.deadLetter(ctx, c)
	if err != nil {
		return nil, err
	}
	log := r.connLog(r.opts.Log, i)
	a, err := newApp(c, key, log, store, dead, r.transport)
	if err != nil {
		return nil, err
	}
	if c.Seed != nil {
		if err := c.Seed(ctx, log, store, key); err != nil {
			a.close()
			return nil, err
		}
	}
	return a, nil
}

// deadLetter returns the open dead letter of c's --dead-letter (nil for
// none), opening it if need be.
func (r *Runner) deadLetter(ctx context.Context, c *Conn) (poll.DeadLetter, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := c.DeadLetter + "\x00" + c.State
	if d, ok := r.deads[id]; ok {
		return d, nil
	}
	d, err := c.OpenDeadLetter(ctx)
	if err != nil {
		return nil, err
	}
	r.deads[id] = d
	return d, nil
}

// store returns the open store of c's --state, opening it if need be.
func (r *Runner) store(ctx context.Context, c *Conn, storeErr map[string]error) (poll.Store, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.stores[c.State]; ok {
		return s, nil
	}
	if err := storeErr[c.State]; err != nil {
		return nil, err
	}
	s, err := c.OpenStore(ctx, r.opts.Log)
	if err != nil {
		if storeErr != nil {
			storeErr[c.State] = err
		}
		return nil, err
	}
	r.stores[c.State] = s
	return s, nil
}

// Close lets every connection's target, store and dead letter go.
func (r *Runner) Close() {
	for _, a := range r.apps {
		if a != nil {
			a.close()
		}
	}
	for state, s := range r.stores {
		if err := s.Close(); err != nil {
			r.opts.Log.Warn("closing the state store", "state", state, "err", err)
		}
	}
	for _, d := range r.deads {
		if d != nil {
			if err := d.Close(); err != nil {
				r.opts.Log.Warn("closing the dead letter", "err", err)
			}
		}
	}
	r.transport.CloseIdleConnections()
}

// Cycle is connection i's cycle and what a one-shot run passes it, once
// the connection is set up (benchmarks drive it directly).
func (r *Runner) Cycle(ctx context.Context, i int) (*poll.Cycle, poll.Invocation, error) {
	if r.apps[i] == nil {
		if err := r.setUpAll(ctx); err != nil {
			return nil, poll.Invocation{}, err
		}
	}
	if r.apps[i] == nil {
		return nil, poll.Invocation{}, r.broken[i]
	}
	return r.apps[i].cycle, r.invocation(i), nil
}

// members are the connections as the poll fleet runner sees them: each is
// set up in its worker when its cycle starts, unless it is already (the
// single connection; a Lambda function's after its first cycle), its sink
// built there too, so what a one-shot run holds follows --max-parallel,
// not the number of connections. A connection set up there is observed by
// fm (if set). One that could not be set up (its key or store could not
// be had) tries again at the next members: a Lambda function builds them
// for each invocation, so an outage at the cold start does not last as
// long as the execution environment. A store that fails to open is tried
// once per members, not once per connection naming it; a configuration
// error is not retried.
func (r *Runner) members(fm *metrics.Fleet) []poll.FleetMember {
	storeErr := map[string]error{}
	ms := make([]poll.FleetMember, len(r.conns))
	for i, c := range r.conns {
		ms[i].Name, ms[i].Invocation = c.Name, r.invocation(i)
		ms[i].Open = func(ctx context.Context) (*poll.Cycle, error) {
			a := r.apps[i]
			if a == nil {
				if err := r.broken[i]; err != nil && r.opts.IsConfigError(err) {
					return nil, err
				}
				var err error
				if a, err = r.setUp(ctx, i, storeErr); err != nil {
					r.broken[i] = err
					return nil, err
				}
				r.apps[i], r.broken[i] = a, nil
				if fm != nil {
					a.cycle.Observer = fm.Metrics[i]
				}
				if !r.opts.Lambda {
					a.warnRandomInstance()
				}
			}
			return a.cycle, a.openSink(ctx, r.opts.Stdout, r.deferOutage(), r.opts.IsConfigError)
		}
	}
	return ms
}

// metrics are the connections' metrics: when named each labelled with its
// name. A daemon without -p serves none: it keeps only the connections'
// health.
func (r *Runner) metrics(process bool) *metrics.Fleet {
	if process && r.opts.Port == 0 {
		return metrics.HealthOnly(len(r.conns))
	}
	if !r.pol.named {
		return metrics.NewOne(r.conns[0].Mode, process)
	}
	names := make([]string, len(r.conns))
	modes := make([]string, len(r.conns))
	for i, c := range r.conns {
		names[i], modes[i] = c.Name, c.Mode
	}
	return metrics.NewFleet(names, modes)
}

// once runs one cycle for every connection, --max-parallel at a time, and
// exits 0 when every connection succeeded or its lease was held elsewhere,
// 1 when any failed. Named connections end with a summary line naming each
// one's outcome.
func (r *Runner) once(ctx context.Context) int {
	var fm *metrics.Fleet
	if r.opts.MetricsFile != "" {
		fm = r.metrics(false)
	}
	members := r.members(fm)
	if r.pol.setUpFirst { // set up already (setUpAll)
		if fm != nil {
			r.apps[0].cycle.Observer = fm.Metrics[0]
		}
		r.apps[0].warnRandomInstance()
	}
	codes := make([]int, len(members))
	results := poll.RunFleetOnce(ctx, context.Background(), members, r.opts.MaxParallel, func(i int, res poll.FleetResult) {
		a := r.apps[i]
		if a == nil {
			r.opts.Log.Error("cycle failed", "connection", res.Name, "err", res.Err)
			codes[i] = ExitFailed
			return
		}
		var m *metrics.Metrics
		if fm != nil {
			m = fm.Metrics[i]
		}
		codes[i] = a.finishOnce(res.Summary, res.Err, res.Took, m)
		if !r.pol.setUpFirst {
			a.close()
			r.apps[i] = nil
		}
	})
	if fm != nil {
		if err := fm.WriteTextfile(r.opts.MetricsFile); err != nil {
			r.opts.Log.Warn("writing the metrics file failed", "path", r.opts.MetricsFile, "err", err)
		}
	}
	if !r.pol.named {
		return codes[0]
	}
	return r.summary(results, codes)
}

// summary logs the outcome of named connections after a one-shot run and
// returns its exit code.
func (r *Runner) summary(results []poll.FleetResult, codes []int) int {
	var outcomes []string
	failed := 0
	for i, res := range results {
		outcome := "ok"
		switch {
		case codes[i] != ExitOK:
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
		r.opts.Log.Error("run done: some connections failed", attrs...)
		return ExitFailed
	}
	r.opts.Log.Info("run done", attrs...)
	return ExitOK
}
