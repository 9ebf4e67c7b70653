package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state/deadletter"
)

// Deadline budget inside Lambda. With a remaining time R before the
// invocation deadline:
//   - no new poll or delivery starts after R − soft, where soft is 10% of R
//     but at least lambdaMinSoftMargin, and at most R/2 (so at least half
//     of a short invocation goes to polling and delivering): room for the
//     item in flight to finish (an HTTP target's own timeout can be longer;
//     the hard limit below then aborts it) and for persisting;
//   - in-flight deliveries are aborted at R − hard, hard = min(2s, soft/2)
//     (the item in flight at the soft deadline always gets a grace);
//   - persisting the cursor and releasing the lease get 3/4 of hard, which
//     ends before the deadline.
//
// Below lambdaMinRemaining nothing useful fits: the invocation is refused
// with an error naming the time it had, instead of reporting a success
// that delivered nothing.
const (
	lambdaMinSoftMargin = 5 * time.Second
	lambdaHardMargin    = 2 * time.Second
	lambdaMinRemaining  = 3 * time.Second
)

// lambdaBudget derives the soft and hard deadlines and the persist budget
// of one invocation, or refuses an invocation too short to make progress.
func lambdaBudget(now, deadline time.Time) (soft, hard time.Time, persist time.Duration, err error) {
	remaining := deadline.Sub(now)
	if remaining < lambdaMinRemaining {
		return time.Time{}, time.Time{}, 0, fmt.Errorf(
			"the invocation had %s left before its deadline: too short to poll, deliver and persist the cursor; raise the function timeout (at least %s, 30s or more recommended)",
			remaining.Round(10*time.Millisecond), lambdaMinRemaining)
	}
	softMargin := min(max(remaining/10, lambdaMinSoftMargin), remaining/2)
	hardMargin := min(lambdaHardMargin, softMargin/2) // the item in flight gets a grace
	return deadline.Add(-softMargin), deadline.Add(-hardMargin), hardMargin * 3 / 4, nil
}

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
		LastSuccess: rfc3339(sum.Stats.LastSuccess), LastDelivery: rfc3339(sum.Stats.LastDelivery)}
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
	log := lambdaLogger(cli, stderr)
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
// (the soft and hard limits of lambdaBudget).
func (r *runner) invoke(ctx context.Context, members []poll.FleetMember) (FleetLambdaResult, error) {
	inv, err := newLambdaInvocation(ctx, r.log)
	if err != nil {
		return FleetLambdaResult{}, err
	}
	defer inv.cancel()
	// Each connection's cycle gets this invocation: its request id,
	// logger, persist budget.
	members = slices.Clone(members)
	for i := range members {
		members[i].Invocation = inv.poll(r.invocationLog(inv.log, i))
	}
	res := FleetLambdaResult{Connections: make([]FleetLambdaConn, len(members))}
	poll.RunFleetOnce(inv.soft, inv.hard, members, r.cli.MaxParallel, func(i int, fr poll.FleetResult) {
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
		inv.log.Error("invocation failed", "err", err)
		return res, err
	}
	inv.log.Info("invocation done", "connections", len(members))
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
func (r *runner) lambdaConn(inv lambdaInvocation, i int, fr poll.FleetResult) FleetLambdaConn {
	a := r.apps[i]
	clog := r.invocationLog(inv.log, i)
	c := FleetLambdaConn{Name: fr.Name}
	err := fr.Err
	sum := &fr.Summary
	if a != nil {
		if err == nil && sum.LeaseHeld {
			err = leaseHeldReport(inv.hard, clog, a.store, a.cycle.LeaseConn(), sum) // with HA: this instance's lease
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
		hctx, cancel := context.WithTimeout(inv.hard, 5*time.Second)
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

// lambdaInvocation is one Lambda invocation: its request id (the cycles'
// lease owner), its logger, and the soft and hard limits and persist
// budget derived from its deadline.
type lambdaInvocation struct {
	owner      string
	log        *slog.Logger
	soft, hard context.Context
	persist    time.Duration
	cancel     func()
}

// poll is what the invocation passes to a cycle that logs to log: its
// request id as the lease owner, its persist budget, the rule that an
// invocation that could do nothing fails, and (one-shot) with HA the final
// poll that acknowledges its last items: the next invocation may run in
// another container, a new instance.
func (inv lambdaInvocation) poll(log *slog.Logger) poll.Invocation {
	return poll.Invocation{Owner: inv.owner, Log: log, PersistTimeout: inv.persist, RequireProgress: true, FinalAck: true}
}

// newLambdaInvocation reads ctx's request id and deadline; an invocation
// too short to make progress is refused (logged, and the error returned).
func newLambdaInvocation(ctx context.Context, log *slog.Logger) (lambdaInvocation, error) {
	inv := lambdaInvocation{owner: "lambda", soft: ctx, hard: ctx, cancel: func() {}}
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		inv.owner = lc.AwsRequestID
	}
	inv.log = log.With("request_id", inv.owner)
	if dl, ok := ctx.Deadline(); ok {
		s, h, persist, err := lambdaBudget(time.Now(), dl)
		if err != nil {
			inv.log.Error("invocation refused", "err", err)
			return inv, err
		}
		var c1, c2 context.CancelFunc
		inv.soft, c1 = context.WithDeadline(ctx, s)
		inv.hard, c2 = context.WithDeadline(context.WithoutCancel(ctx), h)
		inv.persist, inv.cancel = persist, func() { c1(); c2() }
	}
	return inv, nil
}

// lambdaLogger honours Lambda's log settings: AWS_LAMBDA_LOG_FORMAT (JSON
// unless explicitly Text and no --log-format was given) and
// AWS_LAMBDA_LOG_LEVEL (overrides -v).
func lambdaLogger(cli *CLI, w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if cli.Verbose >= 1 {
		level = slog.LevelDebug
	}
	switch strings.ToUpper(os.Getenv("AWS_LAMBDA_LOG_LEVEL")) {
	case "TRACE":
		level = slog.LevelDebug - 4
	case "DEBUG":
		level = slog.LevelDebug
	case "INFO":
		level = slog.LevelInfo
	case "WARN":
		level = slog.LevelWarn
	case "ERROR", "FATAL":
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	text := strings.EqualFold(os.Getenv("AWS_LAMBDA_LOG_FORMAT"), "text") && os.Getenv("EDGEPOLL_LOG_FORMAT") != "json"
	if text || os.Getenv("EDGEPOLL_LOG_FORMAT") == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	opts.ReplaceAttr = durationSeconds
	return slog.New(slog.NewJSONHandler(w, opts))
}

// lambdaInitError reports an init failure to the Lambda Runtime API (so the
// invocation fails with this message) and to the log, then exits.
func lambdaInitError(log *slog.Logger, typ, msg string, code int) int {
	log.Error("init failed", "err", msg)
	postLambdaInitError(typ, msg)
	return code
}

// postLambdaInitError posts an init error to the Lambda Runtime API.
func postLambdaInitError(typ, msg string) {
	body, _ := json.Marshal(map[string]any{"errorMessage": msg, "errorType": typ})
	url := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/init/error"
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err == nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Lambda-Runtime-Function-Error-Type", "Runtime."+typ)
		c := &http.Client{Timeout: 5 * time.Second}
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
		}
	}
}
