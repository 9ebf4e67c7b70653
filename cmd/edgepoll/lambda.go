package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/edgepoll/edgepoll/internal/awslambda"
	"github.com/edgepoll/edgepoll/internal/runner"
	"github.com/edgepoll/edgepoll/state/deadletter"
)

// runLambda serves the AWS Lambda runtime (runner.ServeLambda): config
// comes from the environment (validated already) or a --config file in the
// deployment package (EDGEPOLL_CONFIG). A --state or --dead-letter that
// cannot last between invocations is refused first.
func runLambda(cli *CLI, stderr io.Writer) int {
	log := awslambda.Logger(cli.Verbose, stderr, durationSeconds)
	slog.SetDefault(log) // aws-lambda-go logs a failed invocation with log.Printf
	conns := cli.fleet
	if conns == nil {
		conns = []*fleetConn{{CLI: cli}}
	}
	for _, fc := range conns {
		stateName, deadName := fc.Label()+": state", fc.Label()+": dead-letter"
		if cli.fleet == nil {
			stateName, deadName = "EDGEPOLL_STATE", "EDGEPOLL_DEAD_LETTER"
		}
		if msg := notForLambda(fc.CLI, stateName, deadName); msg != "" {
			return runner.LambdaInitError(log, "ConfigError", msg, exitUsage)
		}
	}
	r := newRunner(cli, "lambda-init", log, os.Stdout, true)
	defer r.Close()
	return r.ServeLambda()
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

// inLambda reports whether edgepoll serves the AWS Lambda runtime.
func inLambda() bool { return os.Getenv("AWS_LAMBDA_RUNTIME_API") != "" }
