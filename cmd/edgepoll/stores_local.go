//go:build !lambda

package main

import (
	"context"
	"log/slog"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state/ilagent"
	"github.com/edgepoll/edgepoll/state/jsonfile"
	"github.com/edgepoll/edgepoll/state/sqlite"
)

// localStateBuilt: this build has the local state backends (sqlite:, json:).
// The Lambda bootstrap (-tags lambda) leaves them out.
const localStateBuilt = true

func openLocalStore(ctx context.Context, scheme, path string, log *slog.Logger) (poll.Store, error) {
	switch scheme {
	case "sqlite":
		return sqlite.Open(ctx, path, log)
	case "json":
		return jsonfile.Open(ctx, path, log)
	}
	return nil, &UsageError{Msg: "--state: unknown scheme " + scheme}
}

// The reference agent's SQLite file (--ilagent-db, state import-ilagent).
var (
	readIlagentCursor = ilagent.ReadCursor
	errIlagentNothing = ilagent.ErrNothing
)
