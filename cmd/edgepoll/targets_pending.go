package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/edgepoll/edgepoll/poll"
)

// Wired as their packages land.

func newMQTTSink(ctx context.Context, cli *CLI, log *slog.Logger) (poll.Sink, error) {
	return nil, errors.New("mqtt sink not available yet")
}
