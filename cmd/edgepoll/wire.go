package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/edgepoll/edgepoll/metrics"
	"github.com/edgepoll/edgepoll/poll"
)

// app is one configured connection: client, sink, store and cycle (the
// store and the dead letter belong to the runner: one of each per --state
// and --dead-letter for all connections).
type app struct {
	cli    *CLI
	log    *slog.Logger
	owner  string // names this run in leases (a run id)
	key    string // the connector key (the reference agent's cursor is per key)
	client *poll.Client
	cycle  *poll.Cycle
	store  poll.Store
	sink   poll.Sink
	dead   poll.DeadLetter // nil with --dead-letter none
}

// newApp builds the client (on the shared transport rt) and the cycle of
// one connection on store and dead (nil: none); the sink comes with
// openSink. The store and the dead letter belong to the runner.
func newApp(cli *CLI, key, owner string, log *slog.Logger, store poll.Store, dead poll.DeadLetter, rt http.RoundTripper) (*app, error) {
	client, err := poll.NewClient(poll.ClientConfig{BaseURL: cli.APIURL, Key: key, Transport: rt})
	if err != nil {
		return nil, &UsageError{Msg: "--api-url: " + err.Error()}
	}
	a := &app{cli: cli, log: log, owner: owner, key: key, client: client, store: store, dead: dead}
	conn, fan := stateKeys(cli, key)
	a.cycle = &poll.Cycle{
		Client:    client,
		Store:     store,
		Conn:      conn,
		FanOut:    fan,
		SkipLimit: cli.SkipLimit,
		StateName: cli.State,
	}
	if dead != nil {
		a.cycle.DeadLetter = dead
	}
	if cli.ClusterID != "" {
		inst := cli.InstanceID
		if inst == "" {
			inst = randomInstanceID()
		}
		a.cycle.HA = &poll.HA{ClusterID: cli.ClusterID, InstanceID: inst}
	}
	return a, nil
}

// openSink builds the --mode target (once; later calls do nothing). For a
// daemon (loop) or inside Lambda a target that is down is a deferred sink.
func (a *app) openSink(ctx context.Context, stdout io.Writer, loop bool) error {
	if a.sink != nil {
		return nil
	}
	sink, err := newSink(ctx, a.cli, a.log, stdout)
	var ue *UsageError
	if err != nil && !errors.As(err, &ue) && (loop || inLambda()) {
		// The target is down (its constructor connects): for a daemon or
		// a Lambda function an outage like any other, retried at delivery,
		// not a reason to stay down. A one-shot run fails fast (exit 1).
		a.log.Warn("the target is not reachable yet; delivery will retry it", "err", err)
		cli, log := a.cli, a.log
		sink, err = poll.Deferred(func(ctx context.Context) (poll.Sink, error) { return newSink(ctx, cli, log, stdout) }), nil
	}
	if err != nil {
		return err
	}
	a.sink, a.cycle.Sink = sink, sink
	return nil
}

func (a *app) close() {
	if a.sink != nil {
		if err := a.sink.Close(); err != nil {
			a.log.Warn("closing the sink", "err", err)
		}
	}
}

// invocation is what this process passes to each of the connection's
// cycles outside Lambda: its run id as the lease owner, its logger, and
// for a one-shot run the final poll that acknowledges its last items with
// HA (a daemon's next cycle acknowledges them).
func (a *app) invocation() poll.Invocation {
	return poll.Invocation{Owner: a.owner, Log: a.log, FinalAck: !a.cli.Loop}
}

// warnRandomInstance: a one-shot HA run without --instance-id is a new
// instance each time.
func (a *app) warnRandomInstance() {
	if a.cycle.HA != nil && a.cli.InstanceID == "" {
		a.log.Warn("--cluster-id without --instance-id: this run is a new HA instance with a random id; give every scheduled run the same --instance-id so the server keeps its role across runs",
			"instance", a.cycle.HA.InstanceID)
	}
}

// finishOnce logs a one-shot cycle's outcome, pings the heartbeat after a
// successful one, and maps the outcome to an exit code.
func (a *app) finishOnce(sum poll.Summary, err error, took time.Duration, m *metrics.Metrics) int {
	if m != nil {
		// The failure streak and last success come from the state store:
		// the truth across runs, not just this one.
		m.Cycle(poll.CycleReport{Summary: sum, Err: err, Ready: err == nil, Failures: sum.Stats.Failures})
	}
	attrs := []any{"polls", sum.Polls, "polled", sum.Polled, "delivered", sum.Delivered, "skipped", sum.Skipped,
		"cursor", sum.Cursor, "duration", took.Round(time.Millisecond)}
	if sum.Role != "" {
		attrs = append(attrs, "role", sum.Role)
	}
	if ra := poll.RetryAfterOf(err); ra > 0 {
		attrs = append(attrs, "retry_after", ra) // the target's 429/503 Retry-After
	}
	if err != nil {
		a.log.Error("cycle failed", append(attrs, "err", err)...)
		return exitFailed
	}
	if sum.LeaseHeld {
		return exitOK
	}
	if sum.Stopped {
		a.log.Info("cycle stopped early on request; cursor persisted", attrs...)
	} else {
		a.log.Info("cycle done", attrs...)
	}
	if a.cli.Heartbeat != "" && !sum.Stopped {
		hctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := a.client.Heartbeat(hctx, a.cli.Heartbeat)
		if m != nil {
			m.Heartbeat(err)
		}
		if err != nil {
			a.log.Warn("heartbeat ping failed", "err", err)
		}
	}
	return exitOK
}

// inLambda reports whether edgepoll serves the AWS Lambda runtime.
func inLambda() bool { return os.Getenv("AWS_LAMBDA_RUNTIME_API") != "" }

func randomInstanceID() string {
	id := runID()
	return "edgepoll-" + id[len("run-"):]
}
