package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/edgepoll/edgepoll/internal/awslambda"
	"github.com/edgepoll/edgepoll/internal/opscmd"
	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state/deadletter"
)

// LambdaResult is what one invocation returns.
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
		LastSuccess: opscmd.RFC3339(sum.Stats.LastSuccess), LastDelivery: opscmd.RFC3339(sum.Stats.LastDelivery)}
}

// runLambda serves the AWS Lambda runtime: config comes from the
// environment (validated already) or a --config file in the deployment
// package (EDGEPOLL_CONFIG); the connections are set up once per cold
// start, and each invocation runs one cycle of every connection,
// --max-parallel at a time, all within the invocation's deadline. A single
// connection's invocation returns its LambdaResult and fails with its
// cycle; a file's returns a FleetLambdaResult and fails if any connection
// failed, naming them (the others' cursors moved regardless).
func runLambda(cli *CLI, stderr io.Writer) int {
	log := awslambda.Logger(cli.Verbose, stderr, durationSeconds)
	slog.SetDefault(log) // aws-lambda-go logs a failed invocation with log.Printf
	r := newRunner(cli, "lambda-init", log, os.Stdout)
	for _, fc := range r.conns {
		stateName, deadName := fc.Label()+": state", fc.Label()+": dead-letter"
		if r.single {
			stateName, deadName = "EDGEPOLL_STATE", "EDGEPOLL_DEAD_LETTER"
		}
		if msg := notForLambda(fc.CLI, stateName, deadName); msg != "" {
			return lambdaInitError(log, "ConfigError", msg, exitUsage)
		}
	}
	defer r.close()
	if err := r.setupAll(context.Background()); err != nil {
		var ke keyError
		switch {
		case !errors.As(err, &ke):
			return lambdaInitError(log, "InitError", err.Error(), exitFailed)
		case isUsageError(err):
			return lambdaInitError(log, "ConfigError", err.Error(), exitUsage)
		}
		return lambdaInitError(log, "ConfigError", err.Error(), exitFailed)
	}
	members := r.members()
	if r.single {
		lambda.Start(func(ctx context.Context, _ json.RawMessage) (LambdaResult, error) {
			res, err := r.invoke(ctx, members)
			if len(res.Connections) == 0 {
				return LambdaResult{Connection: r.apps[0].cycle.Conn}, err
			}
			return res.Connections[0].LambdaResult, err
		})
	} else {
		lambda.Start(func(ctx context.Context, _ json.RawMessage) (FleetLambdaResult, error) { return r.invoke(ctx, members) })
	}
	return exitFailed // lambda.Start only returns on a runtime API failure
}

// invoke is one invocation: one cycle of every member within ctx's deadline
// (the soft and hard limits of awslambda.Budget).
func (r *runner) invoke(ctx context.Context, members []poll.FleetMember) (FleetLambdaResult, error) {
	inv, err := awslambda.NewInvocation(ctx, r.log)
	if err != nil {
		return FleetLambdaResult{}, err
	}
	defer inv.Cancel()
	// Each connection's cycle gets this invocation: its request id,
	// logger, persist budget.
	members = slices.Clone(members)
	for i := range members {
		members[i].Invocation = lambdaPoll(inv, r.invocationLog(inv.Log, i))
	}
	res := FleetLambdaResult{Connections: make([]FleetLambdaConn, len(members))}
	poll.RunFleetOnce(inv.Soft, inv.Hard, members, r.cli.MaxParallel, func(i int, fr poll.FleetResult) {
		res.Connections[i] = r.lambdaConn(inv, i, fr)
	})
	var failed []string
	for _, c := range res.Connections {
		if c.Error != "" {
			failed = append(failed, c.Name)
		}
	}
	res.Failed = len(failed)
	if r.single {
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

// invocationLog is connection i's logger in an invocation.
func (r *runner) invocationLog(ilog *slog.Logger, i int) *slog.Logger {
	if r.single {
		return ilog
	}
	return ilog.With("connection", r.conns[i].Name)
}

// lambdaConn completes, logs and pings the heartbeat of connection i's
// cycle in invocation inv.
func (r *runner) lambdaConn(inv awslambda.Invocation, i int, fr poll.FleetResult) FleetLambdaConn {
	a := r.apps[i]
	clog := r.invocationLog(inv.Log, i)
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
	if a != nil && a.cli.Heartbeat != "" && !sum.LeaseHeld && !sum.Stopped {
		hctx, cancel := context.WithTimeout(inv.Hard, 5*time.Second)
		if err := a.client.Heartbeat(hctx, a.cli.Heartbeat); err != nil {
			clog.Warn("heartbeat ping failed", "err", err)
		}
		cancel()
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
	return &poll.CycleError{Kind: "state", Reason: "lease_stalled", Err: fmt.Errorf(
		"lease held by %s, not renewed since %s (its run was most likely killed: a Lambda timeout or out of memory); it expires at %s, then delivery resumes",
		info.Lease.Holder, info.Lease.RenewedAt.Format(time.RFC3339Nano), info.Lease.ExpiresAt.Format(time.RFC3339Nano))}
}

// notForLambda says why cli's --state or --dead-letter (named stateName and
// deadName) cannot serve inside AWS Lambda, or "".
func notForLambda(cli *CLI, stateName, deadName string) string {
	if b, _, err := parseState(cli.State); err != nil || !b.UsableInLambda() {
		return fmt.Sprintf("%s: %q keeps state on the Lambda filesystem, which does not persist between invocations; use %s", stateName, cli.State, lambdaForms())
	}
	if _, local := deadletter.LocalFile(cli.DeadLetter); local {
		return deadName + ": a file on the Lambda filesystem does not last; use dynamodb:TABLE (the state table will do)"
	}
	return ""
}

// lambdaPoll is what invocation inv passes to a cycle that logs to log: its
// request id as the lease owner, its persist budget, the rule that an
// invocation that could do nothing fails, and (one-shot) with HA the final
// poll that acknowledges its last items: the next invocation may run in
// another container, a new instance.
func lambdaPoll(inv awslambda.Invocation, log *slog.Logger) poll.Invocation {
	return poll.Invocation{Owner: inv.Owner, Log: log, PersistTimeout: inv.Persist, RequireProgress: true, FinalAck: true}
}

// lambdaInitError reports an init failure to the Lambda Runtime API (so the
// invocation fails with this message) and to the log, then exits.
func lambdaInitError(log *slog.Logger, typ, msg string, code int) int {
	log.Error("init failed", "err", msg)
	awslambda.PostInitError(typ, msg)
	return code
}
