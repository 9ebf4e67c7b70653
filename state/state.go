// Package state is what every state backend registers: its --state scheme,
// the rules for the rest of the value (one Validate) and how to open it.
// cmd/edgepoll lists the backends it is built with, one line each.
package state

import (
	"context"
	"log/slog"

	"github.com/edgepoll/edgepoll/poll"
)

// Backend is one --state scheme ("sqlite:PATH").
type Backend struct {
	// Scheme before the colon, and Form, how the whole value looks
	// ("sqlite:PATH"), for messages.
	Scheme, Form string
	// Validate checks the part after the colon; its message names no flag
	// (the caller does).
	Validate func(rest string) error
	// Open opens a validated store.
	Open func(ctx context.Context, rest string, log *slog.Logger) (poll.Store, error)
}
