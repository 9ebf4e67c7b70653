package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/edgepoll/edgepoll/poll"
)

// openStore opens the --state backend.
func openStore(ctx context.Context, cli *CLI, log *slog.Logger) (poll.Store, error) {
	return nil, &UsageError{Msg: "--state: no backend wired yet"}
}

// newSink builds the --mode target.
func newSink(ctx context.Context, cli *CLI, log *slog.Logger, stdout io.Writer) (poll.Sink, error) {
	return nil, &UsageError{Msg: "--mode: no sink wired yet"}
}
