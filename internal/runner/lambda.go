package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/edgepoll/edgepoll/internal/awslambda"
	"github.com/edgepoll/edgepoll/poll"
)

// LambdaResult is what one invocation returns for one connection.
type LambdaResult struct {
	poll.Summary
	Connection string `json:"connection"` // hash of the key, never the key
	// The connection's stored statistics, across invocations.
	ConsecutiveFailures int     `json:"consecutive_failures"`
	LastSuccess         *string `json:"last_success"`  // RFC 3339, null: never
	LastDelivery        *string `json:"last_delivery"` // RFC 3339, null: never
}

// FleetLambdaResult is what one invocation with EDGEPOLL_CONFIG returns:
// every connection's result, in file order.
type FleetLambdaResult struct {
	Connections []FleetLambdaConn `json:"connections"`
	Failed      int               `json:"failed"`
}

// FleetLambdaConn is one connection's part of a FleetLambdaResult.
type FleetLambdaConn struct {
	Name string `json:"name"`
	LambdaResult
	Error string `json:"error,omitempty"`
	err   error
}

// lambdaResult is the invocation summary of one connection's cycle.
func lambdaResult(sum poll.Summary, conn string) LambdaResult {
	return LambdaResult{Summary: sum, Connection: conn, ConsecutiveFailures: sum.Stats.Failures,
		LastSuccess: rfc3339(sum.Stats.LastSuccess), LastDelivery: rfc3339(sum.Stats.LastDelivery)}
}

// rfc3339 is t in UTC as RFC 3339 (state show's format), nil for the zero
// time (JSON null). A copy of opscmd.RFC3339: the runner needs no store.
func rfc3339(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339)
	return &s
}

// ServeLambda serves the AWS Lambda runtime: each invocation runs one cycle
// of every connection, --max-parallel at a time, all within the
// invocation's deadline. A connection is set up once per execution
// environment: the single connection (NewOne) at the cold start, named
// connections each in its worker at its first cycle (so the init phase,
// which Lambda bounds to 10 s, does not fetch a hundred keys), and again
// at the next invocation if that failed. The single connection's
// invocation returns its LambdaResult and fails with its cycle; named
// connections' return a FleetLambdaResult and fail if any connection
// failed, naming them (the others' cursors moved regardless). The single
// connection's set-up error is reported to the Runtime API as the init
// error; the exit code is then 2 for a configuration error, else 1.
func (r *Runner) ServeLambda() int {
	if err := r.setUpFirstForLambda(); err != nil {
		var ke keyError
		switch {
		case !errors.As(err, &ke):
			return LambdaInitError(r.opts.Log, "InitError", err.Error(), ExitFailed)
		case r.opts.IsConfigError(err):
			return LambdaInitError(r.opts.Log, "ConfigError", err.Error(), 2)
		}
		return LambdaInitError(r.opts.Log, "ConfigError", err.Error(), ExitFailed)
	}
	if r.pol.named {
		lambda.Start(func(ctx context.Context, _ json.RawMessage) (FleetLambdaResult, error) { return r.invoke(ctx) })
	} else {
		lambda.Start(func(ctx context.Context, _ json.RawMessage) (LambdaResult, error) {
			res, err := r.invoke(ctx)
			if len(res.Connections) == 0 {
				return LambdaResult{Connection: r.apps[0].cycle.Conn}, err
			}
			return res.Connections[0].LambdaResult, err
		})
	}
	return ExitFailed // lambda.Start only returns on a runtime API failure
}

// setUpFirstForLambda sets the single connection up at the cold start;
// named connections are set up by their workers (members).
func (r *Runner) setUpFirstForLambda() error {
	if !r.pol.setUpFirst {
		return nil
	}
	return r.setUpAll(context.Background())
}

// invoke is one invocation: one cycle of every connection within ctx's
// deadline (the soft and hard limits of awslambda.Budget).
func (r *Runner) invoke(ctx context.Context) (FleetLambdaResult, error) {
	inv, err := awslambda.NewInvocation(ctx, r.opts.Log)
	if err != nil {
		return FleetLambdaResult{}, err
	}
	defer inv.Cancel()
	// Each connection's cycle gets this invocation: its request id,
	// logger, persist budget.
	members := r.members(nil)
	for i := range members {
		members[i].Invocation = lambdaPoll(inv, r.connLog(inv.Log, i))
	}
	res := FleetLambdaResult{Connections: make([]FleetLambdaConn, len(members))}
	poll.RunFleetOnce(inv.Soft, inv.Hard, members, r.opts.MaxParallel, func(i int, fr poll.FleetResult) {
		res.Connections[i] = r.lambdaConn(inv, i, fr)
	})
	var failed []string
	for _, c := range res.Connections {
		if c.Error != "" {
			failed = append(failed, c.Name)
		}
	}
	res.Failed = len(failed)
	if !r.pol.named {
		return res, res.Connections[0].err
	}
	if len(failed) > 0 {
		err := fmt.Errorf("%d of %d connections failed: %s", len(failed), len(members), strings.Join(failed, ", "))
		inv.Log.Error("invocation failed", "err", err)
		return res, err
	}
	inv.Log.Info("invocation done", "connections", len(members))
	return res, nil
}

// lambdaConn completes, logs and pings the heartbeat of connection i's
// cycle in invocation inv.
func (r *Runner) lambdaConn(inv awslambda.Invocation, i int, fr poll.FleetResult) FleetLambdaConn {
	a := r.apps[i]
	clog := r.connLog(inv.Log, i)
	c := FleetLambdaConn{Name: fr.Name}
	err := fr.Err
	sum := &fr.Summary
	if a != nil {
		if err == nil && sum.LeaseHeld {
			err = leaseHeldReport(inv.Hard, clog, a.store, a.cycle.LeaseConn(), sum) // with HA: this instance's lease
		}
		c.LambdaResult = lambdaResult(*sum, a.cycle.Conn)
	}
	if err == nil && sum.Stopped && sum.Polls == 0 && !sum.LeaseHeld {
		err = fmt.Errorf("not started before the invocation's deadline: raise the function timeout or --max-parallel")
	}
	attrs := []any{"polls", sum.Polls, "polled", sum.Polled, "delivered", sum.Delivered, "skipped", sum.Skipped,
		"cursor", sum.Cursor, "lease_held", sum.LeaseHeld, "stopped", sum.Stopped, "duration", fr.Took.Round(time.Millisecond),
		"consecutive_failures", c.ConsecutiveFailures, "last_success", sum.Stats.LastSuccess}
	if err != nil {
		c.Error, c.err = err.Error(), err
		clog.Error("cycle failed", append(attrs, "err", err)...)
		return c
	}
	clog.Info("cycle done", attrs...)
	if a != nil && !sum.LeaseHeld && !sum.Stopped {
		a.heartbeat(inv.Hard, 5*time.Second, clog, nil)
	}
	return c
}

// leaseHeldReport completes the summary of an invocation that found the
// lease held: the stored cursor and run statistics (a read-only Inspect,
// not zeros), and an error when the holder stopped renewing its lease — a
// run killed without releasing it (a Lambda timeout or out of memory ends
// an invocation with SIGKILL): until the lease expires the invocation
// fails naming the holder and its last renewal, so the failure alarm sees
// the stall instead of a row of successes that deliver nothing.
func leaseHeldReport(ctx context.Context, log *slog.Logger, store poll.Store, conn string, sum *poll.Summary) error {
	in, ok := store.(poll.Inspector)
	if !ok {
		return nil
	}
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := in.Inspect(ictx, conn)
	if err != nil {
		log.Warn("lease held; reading the stored state failed", "err", err)
		return nil
	}
	sum.Cursor, sum.Refusals, sum.Stats = info.Cursor, info.Refusals, info.Stats
	if !info.Lease.Held || !info.Lease.Stalled {
		return nil
	}
	return &poll.CycleError{Kind: poll.KindState, Reason: poll.ReasonLeaseStalled, Err: fmt.Errorf(
		"lease held by %s, not renewed since %s (its run was most likely killed: a Lambda timeout or out of memory); it expires at %s, then delivery resumes",
		info.Lease.Holder, info.Lease.RenewedAt.Format(time.RFC3339Nano), info.Lease.ExpiresAt.Format(time.RFC3339Nano))}
}

// lambdaPoll is what invocation inv passes to a cycle that logs to log: its
// request id as the lease owner, its persist budget, the rule that an
// invocation that could do nothing fails, and (one-shot) with HA the final
// poll that acknowledges its last items: the next invocation may run in
// another container, a new instance.
func lambdaPoll(inv awslambda.Invocation, log *slog.Logger) poll.Invocation {
	return poll.Invocation{Owner: inv.Owner, Log: log, PersistTimeout: inv.Persist, RequireProgress: true, FinalAck: true}
}

// LambdaInitError reports an init failure to the Lambda Runtime API (so the
// invocation fails with this message) and to the log, and returns code.
func LambdaInitError(log *slog.Logger, typ, msg string, code int) int {
	log.Error("init failed", "err", msg)
	awslambda.PostInitError(typ, msg)
	return code
}
