package main

import (
	"context"
	"io"
	"log/slog"
)

// runLambda serves the AWS Lambda runtime (issue: Lambda).
func runLambda(cli *CLI, log *slog.Logger, stderr io.Writer) int {
	log.Error("the Lambda runtime is not implemented yet")
	return exitFailed
}

// fetchConnectorKey reads the connector key from SSM or Secrets Manager.
func fetchConnectorKey(ctx context.Context, cli *CLI) (string, error) {
	return "", &UsageError{Msg: "--connector-key-parameter/--connector-key-secret: not implemented yet"}
}
