//go:build lambda

package main

import (
	"context"
	"log/slog"

	"github.com/edgepoll/edgepoll/poll"
)

// localStateBuilt: the Lambda bootstrap (built with -tags lambda, see `make
// build-EdgepollFunction`) has no local state backends: Lambda's filesystem
// does not persist between invocations, and leaving SQLite out halves the
// binary. --state sqlite:/json: is refused when the configuration is
// validated.
const localStateBuilt = false

func openLocalStore(context.Context, string, string, *slog.Logger) (poll.Store, error) {
	return nil, &UsageError{Msg: "--state: only dynamodb:TABLE is built into the Lambda bootstrap"}
}
