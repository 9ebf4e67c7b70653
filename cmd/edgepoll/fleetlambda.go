package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/edgepoll/edgepoll/poll"
)

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
}

// lambdaResult is the invocation summary of one connection's cycle.
func lambdaResult(sum poll.Summary, conn string) LambdaResult {
	return LambdaResult{Summary: sum, Connection: conn, ConsecutiveFailures: sum.Stats.Failures,
		LastSuccess: rfc3339(sum.Stats.LastSuccess), LastDelivery: rfc3339(sum.Stats.LastDelivery)}
}

// runLambdaFleet serves the Lambda runtime for a --config file in the
// deployment package (EDGEPOLL_CONFIG): each invocation runs one cycle of
// every connection, --max-parallel at a time, all within the invocation's
// deadline (the same soft and hard limits as one connection). The
// invocation fails if any connection failed, naming them; the others'
// cursors moved regardless.
func runLambdaFleet(cli *CLI, stderr io.Writer) int {
	log := lambdaLogger(cli, stderr)
	ctx := context.Background()
	for _, fc := range cli.fleet {
		if msg := notForLambda(fc.CLI, fc.Label()+": state", fc.Label()+": dead-letter"); msg != "" {
			return lambdaInitError(log, "ConfigError", msg, exitUsage)
		}
	}
	f := buildFleet(ctx, cli, "lambda-init", log, os.Stdout)
	defer f.close()
	members := f.members()

	handler := func(ctx context.Context, _ json.RawMessage) (FleetLambdaResult, error) {
		inv, err := newLambdaInvocation(ctx, log)
		if err != nil {
			return FleetLambdaResult{}, err
		}
		defer inv.cancel()
		ilog, soft, hard := inv.log, inv.soft, inv.hard
		// Each connection's cycle gets this invocation: its request id,
		// logger, persist budget.
		members := slices.Clone(members)
		for i := range members {
			members[i].Invocation = inv.poll(ilog.With("connection", members[i].Name))
		}
		res := FleetLambdaResult{Connections: make([]FleetLambdaConn, len(members))}
		var failed []string
		poll.RunFleetOnce(soft, hard, members, cli.MaxParallel, func(i int, r poll.FleetResult) {
			a := f.apps[i]
			clog := ilog.With("connection", r.Name)
			c := FleetLambdaConn{Name: r.Name}
			err := r.Err
			if a != nil {
				if err == nil && r.Summary.LeaseHeld {
					err = leaseHeldReport(hard, clog, a.store, a.cycle.Conn, &r.Summary)
				}
				c.LambdaResult = lambdaResult(r.Summary, a.cycle.Conn)
			}
			if err == nil && r.Summary.Stopped && r.Summary.Polls == 0 && !r.Summary.LeaseHeld {
				err = fmt.Errorf("not started before the invocation's deadline: raise the function timeout or --max-parallel")
			}
			sum := r.Summary
			attrs := []any{"polls", sum.Polls, "polled", sum.Polled, "delivered", sum.Delivered, "skipped", sum.Skipped,
				"cursor", sum.Cursor, "lease_held", sum.LeaseHeld, "stopped", sum.Stopped, "duration", r.Took.Round(time.Millisecond)}
			if err != nil {
				c.Error = err.Error()
				clog.Error("cycle failed", append(attrs, "err", err)...)
			} else {
				clog.Info("cycle done", attrs...)
				if a != nil && a.cli.Heartbeat != "" && !sum.LeaseHeld && !sum.Stopped {
					hctx, cancel := context.WithTimeout(hard, 5*time.Second)
					if err := a.client.Heartbeat(hctx, a.cli.Heartbeat); err != nil {
						clog.Warn("heartbeat ping failed", "err", err)
					}
					cancel()
				}
			}
			res.Connections[i] = c
		})
		for _, c := range res.Connections {
			if c.Error != "" {
				failed = append(failed, c.Name)
			}
		}
		res.Failed = len(failed)
		if len(failed) > 0 {
			err := fmt.Errorf("%d of %d connections failed: %s", len(failed), len(members), strings.Join(failed, ", "))
			ilog.Error("invocation failed", "err", err)
			return res, err
		}
		ilog.Info("invocation done", "connections", len(members))
		return res, nil
	}
	lambda.Start(handler)
	return exitFailed // lambda.Start only returns on a runtime API failure
}
