package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/edgepoll/edgepoll/poll"
)

// Wired as their packages land.

func newKafkaSink(ctx context.Context, cli *CLI, log *slog.Logger) (poll.Sink, error) {
	return nil, errors.New("kafka sink not available yet")
}

func newMQTTSink(ctx context.Context, cli *CLI, log *slog.Logger) (poll.Sink, error) {
	return nil, errors.New("mqtt sink not available yet")
}
