//go:build lambda

package main

import (
	"context"
	"errors"

	"github.com/edgepoll/edgepoll/state"
)

// localStores: the Lambda bootstrap (built with -tags lambda, see `make
// build-EdgepollFunction`) has no local state backends: Lambda's filesystem
// does not persist between invocations, and leaving SQLite out halves the
// binary. A --state naming one is refused, saying why, when the
// configuration is validated; the reference agent's SQLite file cannot be
// read either.
var localStores = state.LambdaBootstrapUnbuilt

var errIlagentNothing = errors.New("nothing to import")

func readIlagentCursor(context.Context, string, string) (int64, error) {
	return 0, errors.New("reading the reference agent's SQLite file is not built into the Lambda bootstrap; import with the general edgepoll binary")
}
