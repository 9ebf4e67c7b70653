//go:build !lambda

package main

import (
	"github.com/edgepoll/edgepoll/state"
	"github.com/edgepoll/edgepoll/state/ilagent"
	"github.com/edgepoll/edgepoll/state/jsonfile"
	"github.com/edgepoll/edgepoll/state/sqlite"
)

// localStores are the state backends on local files, one line each. The
// Lambda bootstrap (-tags lambda) leaves them out.
var localStores = []state.Backend{
	sqlite.Backend,
	jsonfile.Backend,
}

// The reference agent's SQLite file (--ilagent-db, state import-ilagent).
var (
	readIlagentCursor = ilagent.ReadCursor
	errIlagentNothing = ilagent.ErrNothing
)
