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

// runLambda serves the AWS Lambda runtime: config comes from the
// environment (validated already), the app is built once per cold start,
// and each invocation runs one cycle bounded by the invocation's deadline.
func runLambda(cli *CLI, _ *slog.Logger, stderr io.Writer) int {
	log := lambdaLogger(cli, stderr)
	slog.SetDefault(log) // aws-lambda-go logs a failed invocation with log.Printf
	ctx := context.Background()

	if msg := notForLambda(cli, "EDGEPOLL_STATE", "EDGEPOLL_DEAD_LETTER"); msg != "" {
		return lambdaInitError(log, "ConfigError", msg, exitUsage)
	}
	kctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	key, err := connectorKey(kctx, cli)
	cancel()
	if err != nil {
		code := exitFailed
		var ue *UsageError
		if errors.As(err, &ue) {
			code = exitUsage
		}
		return lambdaInitError(log, "ConfigError", err.Error(), code)
	}
	a, err := build(ctx, cli, key, "lambda-init", log, os.Stdout)
	if err != nil {
		return lambdaInitError(log, "InitError", err.Error(), exitFailed)
	}
	defer a.close()
	conn := a.cycle.Conn

	handler := func(ctx context.Context, _ json.RawMessage) (LambdaResult, error) {
		inv, err := newLambdaInvocation(ctx, log)
		if err != nil {
			return LambdaResult{Connection: conn}, err
		}
		defer inv.cancel()
		ilog, soft, hard := inv.log, inv.soft, inv.hard
		start := time.Now()
		sum, err := a.cycle.RunUntil(soft, hard, inv.poll(ilog))
		if err == nil && sum.LeaseHeld {
			err = leaseHeldReport(hard, ilog, a.store, conn, &sum)
		}
		res := lambdaResult(sum, conn)
		attrs := []any{"polls", sum.Polls, "polled", sum.Polled, "delivered", sum.Delivered, "skipped", sum.Skipped,
			"cursor", sum.Cursor, "lease_held", sum.LeaseHeld, "stopped", sum.Stopped, "duration", time.Since(start).Round(time.Millisecond),
			"consecutive_failures", res.ConsecutiveFailures, "last_success", sum.Stats.LastSuccess}
		if err != nil {
			ilog.Error("cycle failed", append(attrs, "err", err)...)
			return res, err
		}
		ilog.Info("cycle done", attrs...)
		if cli.Heartbeat != "" && !sum.LeaseHeld && !sum.Stopped {
			hctx, cancel := context.WithTimeout(hard, 5*time.Second)
			if err := a.client.Heartbeat(hctx, cli.Heartbeat); err != nil {
				ilog.Warn("heartbeat ping failed", "err", err)
			}
			cancel()
		}
		return res, nil
	}
	lambda.Start(handler)
	return exitFailed // lambda.Start only returns on a runtime API failure
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
// request id as the lease owner, its persist budget, and the rule that an
// invocation that could do nothing fails.
func (inv lambdaInvocation) poll(log *slog.Logger) poll.Invocation {
	return poll.Invocation{Owner: inv.owner, Log: log, PersistTimeout: inv.persist, RequireProgress: true}
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
