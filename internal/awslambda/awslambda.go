// Package awslambda is what edgepoll needs of the AWS Lambda environment
// beyond aws-lambda-go: an invocation's deadline budget and request id,
// Lambda's log settings, and reporting an init failure to the Runtime API.
package awslambda

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

// Deadline budget inside Lambda. With a remaining time R before the
// invocation deadline:
//   - no new poll or delivery starts after R − soft, where soft is 10% of R
//     but at least MinSoftMargin, and at most R/2 (so at least half of a
//     short invocation goes to polling and delivering): room for the item
//     in flight to finish (an HTTP target's own timeout can be longer; the
//     hard limit below then aborts it) and for persisting;
//   - in-flight deliveries are aborted at R − hard, hard = min(2s, soft/2)
//     (the item in flight at the soft deadline always gets a grace);
//   - persisting the cursor and releasing the lease get 3/4 of hard, which
//     ends before the deadline.
//
// Below MinRemaining nothing useful fits: the invocation is refused with an
// error naming the time it had, instead of reporting a success that
// delivered nothing.
const (
	MinSoftMargin = 5 * time.Second
	HardMargin    = 2 * time.Second
	MinRemaining  = 3 * time.Second
)

// Budget derives the soft and hard deadlines and the persist budget of one
// invocation, or refuses an invocation too short to make progress.
func Budget(now, deadline time.Time) (soft, hard time.Time, persist time.Duration, err error) {
	remaining := deadline.Sub(now)
	if remaining < MinRemaining {
		return time.Time{}, time.Time{}, 0, fmt.Errorf(
			"the invocation had %s left before its deadline: too short to poll, deliver and persist the cursor; raise the function timeout (at least %s, 30s or more recommended)",
			remaining.Round(10*time.Millisecond), MinRemaining)
	}
	softMargin := min(max(remaining/10, MinSoftMargin), remaining/2)
	hardMargin := min(HardMargin, softMargin/2) // the item in flight gets a grace
	return deadline.Add(-softMargin), deadline.Add(-hardMargin), hardMargin * 3 / 4, nil
}

// Invocation is one Lambda invocation: its request id (the cycles' lease
// owner), its logger, and the soft and hard limits and persist budget
// derived from its deadline (Budget). Cancel releases the limits.
type Invocation struct {
	Owner      string
	Log        *slog.Logger
	Soft, Hard context.Context
	Persist    time.Duration
	Cancel     func()
}

// NewInvocation reads ctx's request id and deadline; an invocation too
// short to make progress is refused (logged, and the error returned).
func NewInvocation(ctx context.Context, log *slog.Logger) (Invocation, error) {
	inv := Invocation{Owner: "lambda", Soft: ctx, Hard: ctx, Cancel: func() {}}
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		inv.Owner = lc.AwsRequestID
	}
	inv.Log = log.With("request_id", inv.Owner)
	if dl, ok := ctx.Deadline(); ok {
		s, h, persist, err := Budget(time.Now(), dl)
		if err != nil {
			inv.Log.Error("invocation refused", "err", err)
			return inv, err
		}
		var c1, c2 context.CancelFunc
		inv.Soft, c1 = context.WithDeadline(ctx, s)
		inv.Hard, c2 = context.WithDeadline(context.WithoutCancel(ctx), h)
		inv.Persist, inv.Cancel = persist, func() { c1(); c2() }
	}
	return inv, nil
}

// Logger honours Lambda's log settings: AWS_LAMBDA_LOG_FORMAT (JSON unless
// explicitly Text and EDGEPOLL_LOG_FORMAT is not json; EDGEPOLL_LOG_FORMAT
// text wins) and AWS_LAMBDA_LOG_LEVEL (overrides verbose, -v's count).
// replace is the JSON handler's ReplaceAttr.
func Logger(verbose int, w io.Writer, replace func([]string, slog.Attr) slog.Attr) *slog.Logger {
	level := slog.LevelInfo
	if verbose >= 1 {
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
	opts.ReplaceAttr = replace
	return slog.New(slog.NewJSONHandler(w, opts))
}

// PostInitError posts an init error to the Lambda Runtime API
// (AWS_LAMBDA_RUNTIME_API), so the invocation fails with msg.
func PostInitError(typ, msg string) {
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
